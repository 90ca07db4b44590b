"""Rendered images to files: linear EXR, tone-mapped PNG, and comparison sheets with per-method
error maps and their PSNR / FLIP against the reference. Every file is written atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from plumbing.atomic import atomic_path
from plumbing.figures import image_grid
from plumbing.tonemap import to_uint8, tonemap


def write_exr(path: str | Path, image: np.ndarray) -> Path:
    """Linear float32 RGB EXR (ZIP compression)."""
    import OpenEXR

    path = Path(path)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with atomic_path(path) as tmp, OpenEXR.File(header, {"RGB": image.astype(np.float32)}) as f:
        f.write(str(tmp))
    return path


def write_png(path: str | Path, image: np.ndarray, linear: bool = True) -> Path:
    """PNG of a linear image (tone-mapped x / (1 + x), sRGB) or of uint8 / [0, 1] display data."""
    from PIL import Image

    path = Path(path)
    data = to_uint8(image) if linear else (image if image.dtype == np.uint8
                                           else np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    with atomic_path(path) as tmp:
        Image.fromarray(data).save(tmp, format="PNG")
    return path


@dataclass
class ImageScore:
    name: str
    psnr: float
    """PSNR (dB) of tone-mapped values against the reference."""
    flip: float
    """Mean FLIP error (LDR FLIP of the tone-mapped images; 0 = identical)."""


def score(reference: np.ndarray, test: np.ndarray, name: str) -> tuple[ImageScore, np.ndarray]:
    """Scores of a linear image against the linear reference, and the FLIP error map (H, W) in
    [0, 1]."""
    import flip_evaluator as flip

    ref_t, test_t = tonemap(reference).astype(np.float32), tonemap(test).astype(np.float32)
    mse = float(np.mean((ref_t - test_t) ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
    err_map, mean_err, _ = flip.evaluate(ref_t, test_t, "LDR", applyMagma=False)
    err = np.asarray(err_map, dtype=np.float32)
    return ImageScore(name, psnr, float(mean_err)), (err[..., 0] if err.ndim == 3 else err)


def comparison_sheet(reference: np.ndarray, images: dict[str, np.ndarray], path: str | Path,
                     title: str = "") -> tuple[Path, list[ImageScore]]:
    """Write the sheet (PNG): top row the reference and each method, titled with PSNR / FLIP;
    bottom row each method's FLIP map, with the FLIP colorbar under the reference."""
    scores, top, bottom, labels = [], [to_uint8(reference)], [None], ["reference"]
    for name, img in images.items():
        sc, err = score(reference, img, name)
        scores.append(sc)
        top.append(to_uint8(img))
        bottom.append(err)
        labels.append(f"{name}\n{sc.psnr:.2f} dB, FLIP {sc.flip:.4f}")
    h, w, _ = reference.shape
    panel = max(2.0, min(4.0, 2.0 * w / max(h, 1)))
    path = image_grid([top, bottom], path, col_labels=labels, row_labels=["image", "FLIP error"],
                      title=title, panel_inches=panel, colorbar_cell=(1, 0), colorbar_label="FLIP error")
    return path, scores


def scores_markdown(scores: list[ImageScore], title: str) -> str:
    lines = [f"### {title}", "", "| method | PSNR (dB, tone-mapped) | mean FLIP |", "|---|---|---|"]
    lines += [f"| {s.name} | {s.psnr:.2f} | {s.flip:.4f} |" for s in scores]
    return "\n".join(lines) + "\n"
