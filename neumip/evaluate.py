"""Held-out evaluation: per-level PSNR of tone-mapped values (x / (1 + x), then sRGB) against the
level's ground truth, with a markdown table and a plot saved next to the checkpoint."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from btf_data.btf_file import BTFFile
from neumip.model import NeuMIP
from plumbing.atomic import atomic_path
from plumbing.thread_share import adjust_threads
from plumbing.tonemap import to_uint8, tonemap


def texel_centres(resolution: tuple[int, int], device: torch.device) -> torch.Tensor:
    """uv (H * W, 2) of every texel centre, row-major."""
    h, w = resolution
    i, j = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([(j.flatten() + 0.5) / w, (i.flatten() + 0.5) / h], dim=1).float()


#: Anything that answers material queries: (uv (N, 2), wi (N, 3), wo (N, 3), lod (N,)) -> rgb (N, 3).
#: A NeuMIP model (:func:`model_query`) and every renderer material's ``eval`` are queries, so
#: that NeuMIP and the SVBRDF baselines are scored by the same code against the same files.
Query = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def model_query(model: NeuMIP) -> Query:
    """A NeuMIP model as a query (inputs already valid: no checks per batch)."""
    return lambda uv, wi, wo, lod: model(uv, wi, wo, lod, check=False)


@torch.no_grad()
def predict_image(query: Query, resolution: tuple[int, int], wi: np.ndarray, wo: np.ndarray,
                  lod: float, device: torch.device, chunk: int = 2**18) -> np.ndarray:
    """The query's image (H, W, 3) at texel centres for one (wi, wo) pair at ``lod``."""
    uv = texel_centres(resolution, device)
    n = uv.shape[0]
    out = []
    wi_t = torch.as_tensor(wi, dtype=torch.float32, device=device).expand(n, 3)
    wo_t = torch.as_tensor(wo, dtype=torch.float32, device=device).expand(n, 3)
    lod_t = torch.full((n,), float(lod), device=device)
    for s in range(0, n, chunk):
        e = s + chunk
        out.append(query(uv[s:e], wi_t[s:e], wo_t[s:e], lod_t[s:e]))
    return torch.cat(out).reshape(*resolution, 3).cpu().numpy()


def psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


#: Light-elevation bands (degrees from the normal) the scores are split into: overhead, mid and
#: grazing light; the grazing band is where cast shadows carry most of the error.
LIGHT_BANDS_DEG = (0.0, 35.0, 60.0, 90.0)


def light_band_labels(edges: tuple[float, ...] = LIGHT_BANDS_DEG) -> list[str]:
    return [f"light {a:g}-{b:g} deg" for a, b in zip(edges[:-1], edges[1:], strict=True)]


@dataclass
class LevelScore:
    level: int
    resolution: int
    psnr: float
    """PSNR (dB) of tone-mapped values, from the MSE over all held-out images of the level."""
    mse_tonemapped: float
    mse_linear: float
    psnr_cos: float = float("nan")
    """The same images as a renderer shows them: values times cos(theta_i), then tone-mapped."""
    psnr_by_light: dict[str, float | None] | None = None
    """PSNR (tone-mapped) of the pairs in each light-elevation band (None: no pair there; NaN in
    files of older versions)."""
    pairs_by_light: dict[str, int] | None = None


def spread_subset(pairs: np.ndarray, max_pairs: int | None) -> np.ndarray:
    """``max_pairs`` rows of ``pairs`` (P, 2) spread evenly over them (rows floor(i P / max_pairs),
    i < max_pairs), or all of them when there are no more."""
    if max_pairs is None or len(pairs) <= max_pairs:
        return pairs
    return pairs[(np.arange(max_pairs) * len(pairs)) // max_pairs]


@torch.no_grad()
def evaluate_query(query: Query, btf: BTFFile, levels: int = 6, subset: str = "held_out",
                   device: str | torch.device = "cpu", max_pairs: int | None = None,
                   bands: tuple[float, ...] = LIGHT_BANDS_DEG) -> list[LevelScore]:
    """Per-level scores of any query on the ``subset`` pairs (all of them, or max_pairs spread
    evenly over them, so that a subset sees views and lights of every elevation, not only the
    first, near head-on ones), against the file's level-0 images and
    ``pyramid/<k>``: overall, as a renderer shows them (times cos theta_i), and split by the
    light's elevation."""
    if levels < 1:
        raise ValueError(f"levels={levels}: must be >= 1 (levels 0..levels-1 are scored)")
    device = torch.device(device)
    pairs = spread_subset(btf.pairs(subset), max_pairs)
    if len(pairs) == 0:
        raise ValueError(f"{btf.path}: no {subset} (wo, wi) pairs to evaluate on")
    labels = light_band_labels(bands)
    theta = np.degrees(np.arccos(np.clip(btf.wi_dirs[:, 2], -1.0, 1.0)))
    band_of = np.clip(np.searchsorted(bands, theta, side="right") - 1, 0, len(labels) - 1)
    scores = []
    for k in range(min(levels, btf.n_levels)):
        res = btf.resolution(k)
        se_t = se_l = se_c = 0.0
        count = 0
        band_se, band_n = np.zeros(len(labels)), np.zeros(len(labels), dtype=np.int64)
        for i_wo, i_wi in pairs:
            adjust_threads()
            gt = btf.image(int(i_wo), int(i_wi), k)
            pred = predict_image(query, res, btf.wi_dirs[i_wi], btf.wo_dirs[i_wo], k, device)
            se = float(((tonemap(pred) - tonemap(gt)) ** 2).sum())
            cos = float(btf.wi_dirs[i_wi][2])
            se_t += se
            se_l += float(((pred - gt) ** 2).sum())
            se_c += float(((tonemap(pred * cos) - tonemap(gt * cos)) ** 2).sum())
            count += gt.size
            band_se[band_of[i_wi]] += se
            band_n[band_of[i_wi]] += gt.size
        mse_t, mse_l = se_t / count, se_l / count
        by_light = {lab: psnr(band_se[b] / band_n[b]) if band_n[b] else None  # None: no pairs there
                    for b, lab in enumerate(labels)}
        n_pairs = {lab: int(band_n[b] // (gt.size or 1)) for b, lab in enumerate(labels)}
        scores.append(LevelScore(k, res[0], psnr(mse_t), mse_t, mse_l, psnr(se_c / count), by_light, n_pairs))
    return scores


@torch.no_grad()
def evaluate_levels(model: NeuMIP, btf: BTFFile, levels: int = 6, subset: str = "held_out",
                    device: str | torch.device = "cpu", max_pairs: int | None = None) -> list[LevelScore]:
    """Per-level scores of a NeuMIP model (in eval mode) on the ``subset`` pairs."""
    was_training = model.training
    model.eval()
    scores = evaluate_query(model_query(model), btf, levels, subset, device, max_pairs)
    model.train(was_training)
    return scores


def scores_markdown(scores: list[LevelScore], title: str) -> str:
    """The per-level table: PSNR, MSEs, PSNR as rendered (x cos theta_i) and PSNR per light band
    (with the number of held-out pairs in each band in the header)."""
    bands = list(scores[0].psnr_by_light or {}) if scores else []
    counts = scores[0].pairs_by_light or {} if scores else {}
    head = "| level | resolution | PSNR (dB) | MSE tone-mapped | MSE linear | PSNR x cos |"
    head += "".join(f" {b} ({counts.get(b, 0)} pairs) |" for b in bands)
    lines = [f"### {title}", "", head, "|---" * (6 + len(bands)) + "|"]
    for s in scores:
        row = (f"| {s.level} | {s.resolution} | {s.psnr:.2f} | {s.mse_tonemapped:.3e} | "
               f"{s.mse_linear:.3e} | {s.psnr_cos:.2f} |")
        row += "".join(f" {_band_cell((s.psnr_by_light or {}).get(b))} |" for b in bands)
        lines.append(row)
    return "\n".join(lines) + "\n"


def _band_cell(v: float | None) -> str:
    return "no pairs" if v is None or math.isnan(v) else f"{v:.2f}"


def direction_label(d: np.ndarray) -> str:
    """A unit direction (3,) as its polar and azimuth angles in degrees."""
    theta = math.degrees(math.acos(float(np.clip(d[2], -1.0, 1.0))))
    phi = math.degrees(math.atan2(float(d[1]), float(d[0]))) % 360.0
    return f"theta {theta:.0f}, phi {phi:.0f} deg"


def write_report(scores: list[LevelScore], out_dir: str | Path, title: str) -> dict[str, Path]:
    """eval.md, eval.json and eval_psnr.png in out_dir (each written atomically)."""
    from plumbing.figures import level_plot

    out_dir = Path(out_dir)
    paths = {"md": out_dir / "eval.md", "json": out_dir / "eval.json", "png": out_dir / "eval_psnr.png"}
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(scores_markdown(scores, title))
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps([s.__dict__ for s in scores], indent=2))
    level_plot({"NeuMIP": [s.psnr for s in scores]}, paths["png"], title=title)
    return paths


@torch.no_grad()
def level_sheet(model: NeuMIP, btf: BTFFile, i_wo: int, i_wi: int, levels: int, path: str | Path,
                device: str | torch.device = "cpu", title: str = "") -> Path:
    """A labelled PNG: ground truth (top) and the model (bottom) for one direction pair, one column
    per level, each shown at level-0 size."""
    from plumbing.figures import image_grid

    device = torch.device(device)
    was_training = model.training
    model.eval()
    top, bottom, cols = [], [], []
    for k in range(min(levels, btf.n_levels)):
        gt = btf.image(i_wo, i_wi, k)
        pred = predict_image(model_query(model), btf.resolution(k), btf.wi_dirs[i_wi], btf.wo_dirs[i_wo], k,
                             device)
        for row, img in ((top, gt), (bottom, pred)):
            row.append(to_uint8(np.repeat(np.repeat(img, 2**k, 0), 2**k, 1)))
        cols.append(f"level {k} ({btf.resolution(k)[0]}x{btf.resolution(k)[1]})")
    model.train(was_training)
    pair = (f"view {direction_label(btf.wo_dirs[i_wo])} (#{i_wo}), "
            f"light {direction_label(btf.wi_dirs[i_wi])} (#{i_wi})")
    return image_grid([top, bottom], path, row_labels=["ground truth", "NeuMIP"], col_labels=cols,
                      title=f"{title}: {pair}" if title else pair, panel_inches=1.8)
