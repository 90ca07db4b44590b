"""The hydra configs of every command. This folder installs as the package ``plumbing.conf``
(pyproject.toml maps it and ships its yaml files as package data) so that a wheel carries the
configs; plumbing/conf_dir.py finds them through that package. Hydra skips this file."""
