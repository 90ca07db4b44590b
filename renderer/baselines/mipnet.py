"""``mipnet``: MIPNet (Gauthier et al. 2022), a cascade of two convolutional networks that
turns each level's normal and roughness into the next coarser level's, as its official code
(AlbanGauthier/mipnet_neural_mipmap) builds it.

Per texel a level is the vector x = (n_x, n_y, m0, m1, m2, h): the normal's xy, the symmetric
square root S = [[m0, m2], [m2, m1]] of the GGX tensor T = S^2 (level 0: S = alpha I) and the
height in uv units. Two networks, weights shared by every level:

- H_A: conv 2x2 stride 2 (6 -> width_a), then ``layers_a - 1`` 1x1 convs (width_a), then 1x1 to 5.
- H_B: conv 4x4/4 of level i + conv 2x2/2 of level i+1 + conv 1x1 of H_A's estimate of level
  i+2 (each 6 -> width_b, summed), then ``layers_b - 1`` 1x1 convs and a 1x1 to 5.

Both networks output residuals of (n_x, n_y, m0, m1, m2) over the 2x2 box average of the
previous level's vector (the height is that average), clamped to valid values as the official
code does (|n_xy| <= 0.999, m0, m1 in [min_alpha, 1], |m2| bounded so that S stays positive
definite). Level 1 = clamp(box(x0) + H_A(x0)); level k >= 2 refines H_A's estimate with
H_B(x_{k-2}, x_{k-1}, estimate). LeakyReLU(0.01) between layers. Albedo, metallic and specular
are box-averaged.

Departure: the last conv of each network starts at zero (the official code keeps PyTorch's
default init), so that training starts from the box average instead of random residuals; on
the CPU budget this saves the first part of the run.

The networks are trained on shading, not on parameters (``renderer.baselines.mipnet_train``):
the one BRDF of the project, whose NDF and masking use one sign of the off-diagonal term (the
released code uses opposite signs in the two; this does not copy that).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from btf_data.brdf import tensor_from_sqrt, tensor_sqrt
from btf_data.pyramid import level_count
from btf_data.svbrdf import SVBRDFMaps
from plumbing.tensor_files import read_checkpoint, save_checkpoint
from renderer.baselines.pyramid import SVBRDFPyramid, box_levels, level0_fields, pyramid_from_levels

#: The checkpoint shipped with the repository (trained with ``mipnet-train`` and its cpu preset).
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "mipnet_cpu.safetensors"

IN_CHANNELS = 6
OUT_CHANNELS = 5


@dataclass
class MIPNetArch:
    """Sizes of the two networks (conf/mipnet_preset/*.yaml); the paper's are the defaults."""

    width_a: int = 512
    """Hidden width of H_A."""
    layers_a: int = 2
    """Hidden layers of H_A, the 2x2 input conv included."""
    width_b: int = 1024
    """Hidden width of H_B."""
    layers_b: int = 3
    """Hidden layers of H_B, the summed input convs included."""
    negative_slope: float = 0.01
    """LeakyReLU slope."""
    min_alpha: float = 2e-3
    """Smallest GGX alpha along a principal axis (the official code's clamp)."""


class MIPNet(nn.Module):
    """The cascade H_A / H_B over vectors (B, 6, R, R), channels first as convolutions want."""

    def __init__(self, arch: MIPNetArch) -> None:
        super().__init__()
        self.arch = arch
        act = nn.LeakyReLU(arch.negative_slope)
        a_layers: list[nn.Module] = [nn.Conv2d(IN_CHANNELS, arch.width_a, 2, stride=2), act]
        for _ in range(arch.layers_a - 1):
            a_layers += [nn.Conv2d(arch.width_a, arch.width_a, 1), act]
        a_layers.append(nn.Conv2d(arch.width_a, OUT_CHANNELS, 1))
        self.h_a = nn.Sequential(*a_layers)
        self.b_in4 = nn.Conv2d(IN_CHANNELS, arch.width_b, 4, stride=4)
        self.b_in2 = nn.Conv2d(IN_CHANNELS, arch.width_b, 2, stride=2)
        self.b_in1 = nn.Conv2d(IN_CHANNELS, arch.width_b, 1)
        b_layers: list[nn.Module] = [act]
        for _ in range(arch.layers_b - 1):
            b_layers += [nn.Conv2d(arch.width_b, arch.width_b, 1), act]
        b_layers.append(nn.Conv2d(arch.width_b, OUT_CHANNELS, 1))
        self.h_b = nn.Sequential(*b_layers)
        for last in (self.h_a[-1], self.h_b[-1]):  # residuals start at zero: the box average
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        """Vectors (B, 6, H, W) moved into the valid range (the official code's clamps)."""
        lo = self.arch.min_alpha
        xy = x[:, 0:2]
        xy = 0.999 * xy / xy.norm(dim=1, keepdim=True).clamp_min(0.999)
        m0 = x[:, 2:3].clamp(lo, 1.0)
        m1 = x[:, 3:4].clamp(lo, 1.0)
        bound2 = torch.minimum(m0 * m1 - lo * lo, (1.0 - m0) * (1.0 - m1))
        bound2 = torch.minimum(bound2, (m0 - lo) * (m1 - lo))
        bound = bound2.clamp_min(1e-20).sqrt()
        m2 = torch.maximum(torch.minimum(x[:, 4:5], bound), -bound)
        return torch.cat([xy, m0, m1, m2, x[:, 5:6]], dim=1)

    @staticmethod
    def _with_residual(bar: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return torch.cat([bar[:, :OUT_CHANNELS] + delta, bar[:, OUT_CHANNELS:]], dim=1)

    def forward(self, x0: torch.Tensor, n_levels: int) -> list[torch.Tensor]:
        """x0 (B, 6, R, R) -> vectors of levels 0..n_levels-1, [(B, 6, R / 2^k, R / 2^k)]."""
        out = [x0]
        for k in range(1, n_levels):
            prev = out[-1]
            bar = nn.functional.avg_pool2d(prev, 2)
            estimate = self.clamp(self._with_residual(bar, self.h_a(prev)))
            if k == 1:
                out.append(estimate)
                continue
            hidden = self.b_in4(out[-2]) + self.b_in2(prev) + self.b_in1(estimate)
            out.append(self.clamp(self._with_residual(bar, self.h_b(hidden))))
        return out


def encode(normal: torch.Tensor, tensor: torch.Tensor, height: torch.Tensor) -> torch.Tensor:
    """normal (..., R, R, 3), tensor (..., R, R, 3), height (..., R, R) in uv units ->
    vectors (B, 6, R, R)."""
    x = torch.cat([normal[..., :2], tensor_sqrt(tensor), height[..., None]], dim=-1)
    return x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2)


def decode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectors (B, 6, H, W) -> (unit normal (B, H, W, 3), tensor (B, H, W, 3))."""
    v = x.permute(0, 2, 3, 1)
    xy = v[..., 0:2]
    z = (1.0 - (xy * xy).sum(-1, keepdim=True)).clamp_min(1e-3).sqrt()
    normal = torch.cat([xy, z], dim=-1)
    return normal / normal.norm(dim=-1, keepdim=True), tensor_from_sqrt(v[..., 2:5])


def height_channel(maps: SVBRDFMaps) -> torch.Tensor:
    """The maps' height in uv units, centred (R, R): zero for a normal-mapped plane."""
    h = torch.as_tensor(maps.height, dtype=torch.float32) / maps.resolution[0]
    return h - h.mean()


def save_mipnet(path: str | Path, model: MIPNet, meta: dict, half: bool = True) -> Path:
    """Weights (fp16 by default: what ships) and their architecture, as a safetensors checkpoint."""
    tensors = {k: (v.half() if half else v) for k, v in model.state_dict().items()}
    return save_checkpoint(path, tensors, {"kind": "mipnet", "arch": asdict(model.arch), **meta})


def load_mipnet(path: str | Path = SHIPPED_CHECKPOINT,
                device: str | torch.device = "cpu") -> tuple[MIPNet, dict]:
    """(model in float32 eval mode, metadata) of a MIPNet checkpoint."""
    tensors, meta = read_checkpoint(path, device)
    if meta.get("kind") != "mipnet":
        from plumbing.tensor_files import CheckpointError

        raise CheckpointError(path, "not a MIPNet checkpoint (train one with mipnet-train)")
    model = MIPNet(MIPNetArch(**meta["arch"])).to(device)
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model.eval(), meta


@torch.no_grad()
def mipnet_pyramid(maps: SVBRDFMaps, checkpoint: str | Path = SHIPPED_CHECKPOINT,
                   device: str | torch.device = "cpu", model: MIPNet | None = None) -> SVBRDFPyramid:
    """MIPNet's pyramid of the maps, from a trained checkpoint (default: the shipped one)."""
    if model is None:
        model, _ = load_mipnet(checkpoint, device)
    device = next(model.parameters()).device
    level0 = level0_fields(maps)
    n = level_count(*maps.resolution)
    levels = box_levels(level0, n)
    x0 = encode(torch.as_tensor(level0["normal"], device=device),
                torch.as_tensor(level0["tensor"], device=device),
                height_channel(maps).to(device))
    for k, x in enumerate(model(x0, n)):
        if k > 0:
            levels[k]["normal"], levels[k]["tensor"] = (t[0].cpu() for t in decode(x))
    return pyramid_from_levels(levels, "mipnet")


def parameter_count(model: MIPNet) -> int:
    return int(sum(np.prod(p.shape) for p in model.parameters()))
