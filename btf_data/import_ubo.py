"""Convert a UBO2014 FMF1 file to the HDF5 BTF format, view by view and a few lights at a time,
so that memory stays bounded whatever the size of the capture."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from btf_data.btf_file import BTFWriter
from btf_data.directions import split_pairs
from btf_data.pyramid import check_sigma_scale
from btf_data.ubo2014 import UBO2014Reader
from plumbing.atomic import check_output_file
from plumbing.config_checks import require


@dataclass
class ImportConfig:
    """Options of ``btf-import-ubo`` (conf/import_ubo.yaml)."""

    path: str = "???"
    """The FMF1 .btf file to read."""
    out: str = "???"
    """The HDF5 file to write."""
    crop: int = 0
    """Centre-crop to crop x crop texels (0: keep all). A power of two gives a full pyramid."""
    lights_per_chunk: int = 16
    """Lights reconstructed at once (bounds memory: chunk x H x W x 3 float32)."""
    cache_mib: int = 2048
    """SxV is held as float32 in memory when it fits this many MiB, else streamed."""
    dtype: str = "float16"
    filter: str = "box"
    sigma_scale: float = 0.5
    held_out_fraction: float = 0.1
    seed: int = 0
    compression: str | None = "gzip"
    progress: bool = True

    def __post_init__(self) -> None:
        require(0.0 < self.held_out_fraction < 1.0, "held_out_fraction", self.held_out_fraction,
                "in (0, 1): training evaluates on the held-out pairs, e.g. 0.1")
        check_sigma_scale(self.sigma_scale)


def import_ubo(cfg: ImportConfig) -> Path:
    """Write cfg.out from cfg.path; returns the output path."""
    check_output_file(cfg.out)
    reader = UBO2014Reader(cfg.path, cache_bytes=cfg.cache_mib * 2**20)
    hd = reader.header
    h, w = hd.height, hd.width
    y0 = x0 = 0
    if cfg.crop:
        if cfg.crop > min(h, w):
            raise ValueError(f"crop={cfg.crop} is larger than the capture ({w} x {h})")
        y0, x0 = (h - cfg.crop) // 2, (w - cfg.crop) // 2
        h = w = cfg.crop
    split = split_pairs(reader.n_views, reader.n_lights, cfg.held_out_fraction, cfg.seed)
    out = Path(cfg.out)
    writer = BTFWriter(
        out,
        wo_dirs=hd.views,
        wi_dirs=hd.lights,
        resolution=(h, w),
        split=split,
        name=Path(cfg.path).stem,
        source=f"ubo2014:{Path(cfg.path).name}",
        filter=cfg.filter,
        sigma_scale=cfg.sigma_scale,
        dtype=cfg.dtype,
        compression=cfg.compression,
        texel_size_mm=1.0 / hd.ppmm if hd.ppmm > 0 else float("nan"),
        config=asdict(cfg),
    )
    step = max(1, cfg.lights_per_chunk)
    with writer, tqdm(
        total=reader.n_views * reader.n_lights, desc="import", unit="img", disable=not cfg.progress
    ) as bar:
        for v in range(reader.n_views):
            for l0 in range(0, reader.n_lights, step):
                l1 = min(l0 + step, reader.n_lights)
                imgs = reader.images(v, l0, l1)[:, y0 : y0 + h, x0 : x0 + w]
                writer.write(v, imgs, wi_start=l0)
                bar.update(l1 - l0)
    return out
