"""The MLP backends of NeuMIP's decoder and offset network. This is the only module that
imports ``tinycudann``.

Both backends hold the same parameters in tiny-cuda-nn's flat layout, so a checkpoint moves
between them unchanged:
- bias-free linear layers in order (input, hidden..., output), ReLU between them;
- each weight matrix row-major ``[out, in]``;
- the input padded to a multiple of 16 with the constant 1 (the padded columns of the first
  matrix act as a bias); the output padded to a multiple of 16 (extra rows unused).

``torch`` is the reference and runs everywhere; ``tcnn`` (FullyFusedMLP, half precision) needs
CUDA and tiny-cuda-nn; ``auto`` picks tcnn when it imports and CUDA is present, else torch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Literal, TypeVar

import torch
from torch import nn

from neumip import mlp_native

log = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "tcnn"]
T = TypeVar("T")
TCNN_WIDTHS = (16, 32, 64, 128)


def _pad16(n: int) -> int:
    return ((n + 15) // 16) * 16


def flat_param_count(n_in: int, n_out: int, width: int, hidden_layers: int) -> int:
    """tiny-cuda-nn's parameter count of a FullyFusedMLP: padded input x width, (hidden - 1)
    width x width blocks, width x padded output."""
    return _pad16(n_in) * width + (hidden_layers - 1) * width * width + width * _pad16(n_out)


def tcnn_available() -> tuple[bool, str]:
    """(available, reason): whether tinycudann imports and CUDA is present."""
    if not torch.cuda.is_available():
        return False, "CUDA is not available"
    try:
        import tinycudann  # noqa: F401
    except (ImportError, OSError) as e:  # tinycudann raises OSError without CUDA libraries
        return False, f"tinycudann does not import ({type(e).__name__}: {e})"
    return True, "tinycudann imports and CUDA is present"


def resolve_backend(backend: str) -> str:
    """'auto' -> 'tcnn' or 'torch' (logged); 'tcnn' where it is missing is an error."""
    if backend not in ("auto", "torch", "tcnn"):
        raise ValueError(f"MLP backend must be 'auto', 'torch' or 'tcnn', got {backend!r}")
    ok, reason = tcnn_available()
    if backend == "tcnn" and not ok:
        raise RuntimeError(f"MLP backend 'tcnn' was asked for but {reason}; use backend=torch")
    if backend == "auto":
        backend = "tcnn" if ok else "torch"
        log.info("MLP backend auto -> %s (%s)", backend, reason)
    return backend


class FlatMLP(nn.Module):
    """Common part: one flat parameter vector in tiny-cuda-nn's layout, and the shapes."""

    def __init__(self, n_in: int, n_out: int, width: int, hidden_layers: int) -> None:
        super().__init__()
        if hidden_layers < 1:
            raise ValueError(f"hidden_layers must be >= 1, got {hidden_layers}")
        self.n_in, self.n_out, self.width, self.hidden_layers = n_in, n_out, width, hidden_layers
        self.in_pad, self.out_pad = _pad16(n_in), _pad16(n_out)
        shapes = [(width, self.in_pad)] + [(width, width)] * (hidden_layers - 1)
        shapes.append((self.out_pad, width))
        self.shapes = shapes
        self.params = nn.Parameter(torch.empty(flat_param_count(n_in, n_out, width, hidden_layers)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform matrices (tiny-cuda-nn's default initialisation)."""
        with torch.no_grad():
            for w in self.matrices():
                bound = math.sqrt(6.0 / (w.shape[0] + w.shape[1]))
                w.uniform_(-bound, bound)

    def matrices(self) -> list[torch.Tensor]:
        """Views [out, in] of the flat vector, in layer order."""
        out, start = [], 0
        for rows, cols in self.shapes:
            out.append(self.params[start : start + rows * cols].view(rows, cols))
            start += rows * cols
        return out

    def compute_shapes(self) -> list[tuple[int, int]]:
        """The [out, in] matrices this backend multiplies per query: tiny-cuda-nn's padded layout
        (:attr:`shapes`); a backend that skips the padding overrides it. FLOP counts (and the
        speed bounds derived from them) read these."""
        return list(self.shapes)

    def zero_output_layer(self) -> None:
        """Make the network output exactly 0 (used so that the neural offset starts at zero)."""
        with torch.no_grad():
            self.matrices()[-1].zero_()


def _fused_linear_available() -> bool:
    """Whether oneDNN's linear with a fused ReLU (``torch.ops.mkldnn._linear_pointwise``, what
    torch.compile emits on the CPU) runs here."""
    try:
        x = torch.ones(2, 3)
        return bool(torch.backends.mkldnn.is_available()) and torch.equal(
            torch.ops.mkldnn._linear_pointwise(x, -torch.ones(4, 3), None, "relu", [], ""), torch.zeros(2, 4))
    except (AttributeError, RuntimeError):
        return False


class TorchMLP(FlatMLP):
    """Pure-PyTorch MLP with tiny-cuda-nn's parameter layout (the reference backend).

    Same math as the layout says, computed without its padding copies: the constant-1 input
    columns become a bias (the sum of their weights) of the first layer, and only the n_out real
    rows of the padded output layer are multiplied. Without autograd (evaluation, rendering) the
    layers run through oneDNN's linear with the ReLU fused where it is available, in bfloat16
    when CPU autocast to bfloat16 is on (weights cast once, kept until they change), in chunks of
    ``chunk`` rows so that the activations stay in cache (issue 22: 1.2-1.3x the unfused
    layers on 2 cores). In bfloat16 on a CPU with AVX512-BF16 the native kernel
    (``mlp_kernel.c``) runs instead: every layer of a few rows in one pass, with oneDNN's bf16
    rounding (its output kept in fp32); in training too (:class:`mlp_native.TrainMLP`: its
    forward keeps each layer's input, its backward takes a block of rows through every layer).
    """

    backend = "torch"
    chunk = 8192
    #: Bytes of one layer's activations per chunk of the inference path: rows per chunk = this
    #: over (width x element size), a power of two. Measured 2026-12-01 on 2 cores (ns/query,
    #: chunks of 2^13..2^16 rows): it picks the best chunk of all four cases, the offset MLP
    #: (width 32) 2^15 rows in fp32, 2^16 in bf16 (23.3 -> 21.1 ns against 31.7 at the former
    #: fixed 2^14), the decoder (width 64) 2^14 in fp32, 2^15 in bf16 (61.8 -> 59.3 ns).
    inference_bytes = 4 * 2**20
    _fused: bool | None = None  # whether oneDNN's fused linear runs here (checked once)

    def compute_shapes(self) -> list[tuple[int, int]]:
        """The real inputs, the hidden layers, the real outputs: no padding rows or columns (the
        constant-1 columns are a bias, an addition per unit)."""
        w = self.width
        return [(w, self.n_in)] + [(w, w)] * (self.hidden_layers - 1) + [(self.n_out, w)]

    def _split(self, mats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(first layer's matrix on the real inputs, its bias from the constant-1 columns, the
        output layer's real rows)."""
        first = mats[0]
        bias = first[:, self.n_in :].sum(dim=1) if self.in_pad > self.n_in else None
        return first[:, : self.n_in], bias, mats[-1][: self.n_out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, n_in) -> (N, n_out) float32."""
        if not torch.is_grad_enabled() and x.device.type == "cpu":
            return self._inference(x)
        mats = self.matrices()
        w_in, bias, w_out = self._split(mats)
        if x.device.type == "cpu" and mlp_native.cpu_bf16_autocast() and \
                mlp_native.serves(self.n_in, self.n_out, self.width):
            return mlp_native.TrainMLP.apply(x, bias, w_in, *mats[1:-1], w_out)
        if torch.is_grad_enabled() or x.shape[0] <= self.chunk:
            return self._layers(x, w_in, bias, mats[1:-1], w_out)
        return torch.cat([self._layers(x[s : s + self.chunk], w_in, bias, mats[1:-1], w_out)
                          for s in range(0, x.shape[0], self.chunk)])

    def _derived(self, tag: object, build: Callable[[list[torch.Tensor]], T]) -> T:
        """``build(matrices)`` of the detached matrices, kept under ``tag`` until the parameters
        change (in place: their version counter; or replaced: their storage), so that chunked
        queries derive it once."""
        key = (self.params._version, self.params.data_ptr())
        cache = self.__dict__.setdefault("_derived_cache", {})
        if tag not in cache or cache[tag][0] != key:
            cache[tag] = (key, build([m.detach() for m in self.matrices()]))
        return cache[tag][1]

    def _inference_weights(self, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """(weight, bias) per layer in ``dtype``, contiguous; rebuilt when the parameters change."""
        def build(mats: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
            w_in, bias, w_out = self._split(mats)
            layers = [(w_in, bias), *[(w, None) for w in mats[1:-1]], (w_out, None)]
            return [(w.to(dtype).contiguous(), None if b is None else b.to(dtype)) for w, b in layers]

        return self._derived(dtype, build)

    def native_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The layers packed for the native bf16 kernel and the first layer's fp32 bias; rebuilt
        when the parameters change."""
        def build(mats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
            w_in, bias, w_out = self._split(mats)
            return (mlp_native.pack([w_in, *mats[1:-1], w_out]),
                    None if bias is None else bias.float().contiguous())

        return self._derived("native", build)

    def _inference(self, x: torch.Tensor) -> torch.Tensor:
        bf16 = mlp_native.cpu_bf16_autocast()
        if bf16 and mlp_native.serves(self.n_in, self.n_out, self.width):
            packed, bias = self.native_weights()
            return mlp_native.mlp_bf16(x, packed, bias, self.width, self.hidden_layers, self.n_out)
        dtype = torch.bfloat16 if bf16 else torch.float32
        layers = self._inference_weights(dtype)
        if TorchMLP._fused is None:
            TorchMLP._fused = _fused_linear_available()
        out = torch.empty(x.shape[0], self.n_out, dtype=torch.float32, device=x.device)
        rows = self.inference_rows(dtype)
        with torch.autocast("cpu", enabled=False):
            for s in range(0, x.shape[0], rows):
                h = x[s : s + rows].to(dtype)
                for i, (w, b) in enumerate(layers):
                    relu = i < len(layers) - 1
                    if TorchMLP._fused:
                        h = torch.ops.mkldnn._linear_pointwise(h, w, b, "relu" if relu else "none", [], "")
                    else:
                        h = torch.nn.functional.linear(h, w, b)
                        h = torch.relu_(h) if relu else h
                out[s : s + rows] = h
        return out

    def inference_rows(self, dtype: torch.dtype) -> int:
        """Rows per chunk of the inference path in ``dtype``: :attr:`inference_bytes` of one
        layer's activations, rounded down to a power of two (at least 1)."""
        per_row = self.width * torch.empty((), dtype=dtype).element_size()
        return 1 << max(0, (self.inference_bytes // per_row).bit_length() - 1)

    @staticmethod
    def _layers(x: torch.Tensor, w_in: torch.Tensor, bias: torch.Tensor | None,
                hidden: list[torch.Tensor], w_out: torch.Tensor) -> torch.Tensor:
        h = torch.addmm(bias, x, w_in.t()) if bias is not None else x @ w_in.t()
        h = torch.relu_(h)
        for w in hidden:
            h = torch.relu_(h @ w.t())
        return h @ w_out.t()


class TcnnMLP(FlatMLP):
    """tiny-cuda-nn FullyFusedMLP (half precision) over the same flat parameters."""

    backend = "tcnn"

    def __init__(self, n_in: int, n_out: int, width: int, hidden_layers: int) -> None:
        if width not in TCNN_WIDTHS:
            raise ValueError(f"tcnn FullyFusedMLP needs width in {TCNN_WIDTHS}, got {width}")
        super().__init__(n_in, n_out, width, hidden_layers)
        import tinycudann as tcnn

        net = tcnn.Network(
            n_input_dims=n_in,
            n_output_dims=n_out,
            network_config={
                "otype": "FullyFusedMLP",
                "activation": "ReLU",
                "output_activation": "None",
                "n_neurons": width,
                "n_hidden_layers": hidden_layers,
            },
        )
        if net.params.numel() != self.params.numel():
            raise RuntimeError(
                f"tiny-cuda-nn has {net.params.numel()} parameters, the flat layout "
                f"{self.params.numel()}: layouts disagree"
            )
        # The tcnn module is kept out of the module tree so that the only parameter (and the only
        # state_dict key) is our flat ``params``, the same as the torch backend's; it reads ours.
        object.__setattr__(self, "_net", net)
        self._link()

    def _link(self) -> None:
        del self._net.params
        self._net.params = self.params

    def _apply(self, fn, recurse=True):  # .to(), .cuda(), .half(): keep tcnn on our parameter
        out = super()._apply(fn, recurse)
        self._link()
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._net(x.contiguous()).float()


def make_mlp(n_in: int, n_out: int, width: int, hidden_layers: int, backend: str = "auto") -> FlatMLP:
    """An MLP n_in -> [width] x hidden_layers -> n_out on the resolved backend."""
    cls = TcnnMLP if resolve_backend(backend) == "tcnn" else TorchMLP
    return cls(n_in, n_out, width, hidden_layers)
