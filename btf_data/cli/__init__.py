"""Command-line entry points. Only these modules see hydra's DictConfig."""
