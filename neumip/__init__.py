"""NeuMIP (Kuznetsov et al. 2021): a latent mip pyramid, a neural offset for parallax and a small
decoder, queried as ``model(uv, wi, wo, lod) -> rgb``.

    from neumip import NeuMIP
    model = NeuMIP.load("outputs/demo/neumip_weave/checkpoints/last.safetensors")
    rgb = model(uv, wi, wo, lod)          # numpy, lists or tensors; lod may be a scalar
"""

from neumip.config import ModelConfig, TrainConfig
from neumip.evaluate import evaluate_levels, evaluate_query
from neumip.model import NeuMIP
from neumip.train import Trainer

__all__ = ["ModelConfig", "NeuMIP", "TrainConfig", "Trainer", "evaluate_levels", "evaluate_query"]
