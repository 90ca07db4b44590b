"""Command-line entry points of the model. Only these modules see hydra's DictConfig."""
