"""Shared plumbing of every package of the project (btf_data -> neumip -> renderer -> benchmarks
all import it; it imports none of them): atomic output files (``atomic``), the commands' one-line
refusal of bad input (``user_errors``), config range checks (``config_checks``), hydra configs as
typed dataclasses and where they live (``structured_config``, ``conf_dir``), tensor files with a
JSON header (``tensor_files``), the display encoding (``tonemap``) and labelled figures
(``figures``)."""
