"""Labelled image grids and level plots (matplotlib), shared by previews, training sheets,
comparison sheets and PSNR plots, so that every picture the project writes has titled rows and
columns and readable text at any panel size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from plumbing.atomic import atomic_path

#: Colormap and range of error maps (FLIP is in [0, 1]).
ERROR_CMAP = "magma"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_grid(cells: Sequence[Sequence[np.ndarray | None]], path: str | Path, *,
               row_labels: Sequence[str] | None = None, col_labels: Sequence[str] | None = None,
               title: str | None = None, panel_inches: float = 2.0,
               colorbar_cell: tuple[int, int] | None = None, colorbar_label: str = "error") -> Path:
    """Write a PNG grid. cells[r][c]: uint8 RGB (H, W, 3) shown as is, float (H, W) error map in
    [0, 1] shown with ERROR_CMAP, or None (an empty slot). ``colorbar_cell`` puts the error maps'
    colorbar in that (empty) slot instead of leaving it blank."""
    plt = _pyplot()
    rows, cols = len(cells), max(len(r) for r in cells)
    first = next(img for row in cells for img in row if img is not None)
    aspect = first.shape[0] / first.shape[1]  # panels as tall as the images, not square
    size = (panel_inches * cols + 0.6, panel_inches * aspect * rows + 0.7)
    fig, axes = plt.subplots(rows, cols, figsize=size, dpi=120, squeeze=False, layout="constrained")
    mappable = None
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            img = cells[r][c] if c < len(cells[r]) else None
            if img is None:
                ax.axis("off")
                continue
            if img.ndim == 2:
                mappable = ax.imshow(img, cmap=ERROR_CMAP, vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(img, interpolation="nearest")
            if row_labels is not None and c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8)
    if col_labels is not None:  # each column's title on its top-most image
        for c in range(cols):
            top = next((r for r in range(rows) if c < len(cells[r]) and cells[r][c] is not None), None)
            if top is not None:
                axes[top][c].set_title(col_labels[c], fontsize=8)
    if colorbar_cell is not None and mappable is not None:
        slot = axes[colorbar_cell[0]][colorbar_cell[1]]
        bar = slot.inset_axes((0.45, 0.05, 0.08, 0.9))
        fig.colorbar(mappable, cax=bar, label=colorbar_label)
    if row_labels is not None:  # a first column that is empty keeps its row label visible
        for r in range(rows):
            if cells[r][0] is None:
                axes[r][0].axis("on")
                axes[r][0].set_frame_on(False)
                axes[r][0].set_xticks([])
                axes[r][0].set_yticks([])
                axes[r][0].set_ylabel(row_labels[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def level_plot(series: dict[str, Sequence[float]], path: str | Path, *, title: str,
               ylabel: str = "PSNR, tone-mapped (dB)", min_span: float = 10.0) -> Path:
    """PSNR (or any score) per level for several series (a model, its ablations, baselines):
    integer level ticks and a y range of at least ``min_span`` so that small differences are not
    drawn as dramatic ones."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(5.2, 3.4), dpi=120, layout="constrained")
    values = [v for s in series.values() for v in s if np.isfinite(v)]
    for name, s in series.items():
        ax.plot(range(len(s)), s, "o-", ms=4, label=name)
    if values:
        lo, hi = min(values), max(values)
        pad = max(0.0, min_span - (hi - lo)) / 2 + 1.0
        ax.set_ylim(lo - pad, hi + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("level (0 = finest)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
