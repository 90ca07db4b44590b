"""Command-line entry points of the renderer. Only these modules see hydra's DictConfig."""
