"""Training curves on disk, next to the run's checkpoints: the loss and the held-out PSNR per
level over steps as CSV (``curves_loss.csv``: step, loss, blur_sigma; ``curves_psnr.csv``: step,
level, psnr) and a labelled plot (``curves.png``), readable without wandb."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from plumbing.atomic import atomic_path


class TrainingCurves:
    """Appends rows as training goes; a resumed run drops the rows after its checkpoint's step.

    Appending, not rewriting, is safe here: nothing resumes from these files (they are a record),
    a crash can cut only the last row, which then lacks its line end and is not read, and a resume
    rewrites each file atomically without the rows after its checkpoint's step.
    """

    def __init__(self, out_dir: str | Path, resume_step: int | None) -> None:
        out_dir = Path(out_dir)
        self.loss_path = out_dir / "curves_loss.csv"
        self.psnr_path = out_dir / "curves_psnr.csv"
        self.plot_path = out_dir / "curves.png"
        for path, header in ((self.loss_path, ["step", "loss", "blur_sigma"]),
                             (self.psnr_path, ["step", "level", "psnr"])):
            rows = self._rows(path) if resume_step is not None else []
            rows = [r for r in rows if int(float(r["step"])) <= (resume_step or 0)]
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                w.writerows([[r[h] for h in header] for r in rows])

    @staticmethod
    def _rows(path: Path) -> list[dict[str, str]]:
        if not path.exists():
            return []
        with open(path, newline="") as fh:
            text = fh.read()
        if not text.endswith("\n"):  # a row cut by a crash: its line end is written last
            text = text[: text.rfind("\n") + 1]
        rows = csv.DictReader(io.StringIO(text, newline=""))
        return [r for r in rows if None not in r.values() and "" not in r.values()]

    def log_loss(self, step: int, loss: float, blur_sigma: float) -> None:
        with open(self.loss_path, "a", newline="") as fh:
            csv.writer(fh).writerow([step, f"{loss:.6g}", f"{blur_sigma:.4g}"])

    def last_psnr_step(self) -> int | None:
        """The step of the last PSNR row written (None before the first)."""
        rows = self._rows(self.psnr_path)
        return int(rows[-1]["step"]) if rows else None

    def log_psnr(self, step: int, psnr_per_level: list[float]) -> None:
        with open(self.psnr_path, "a", newline="") as fh:
            csv.writer(fh).writerows([[step, k, f"{p:.4f}"] for k, p in enumerate(psnr_per_level)])

    def plot(self, title: str) -> Path:
        """curves.png: the loss (log scale) and each level's held-out PSNR over steps."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        loss = self._rows(self.loss_path)
        psnr = self._rows(self.psnr_path)
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=120, layout="constrained")
        if loss:
            a.plot([int(r["step"]) for r in loss], [float(r["loss"]) for r in loss], lw=0.8)
            a.set_yscale("log")
        a.set_xlabel("step")
        a.set_ylabel("training loss")
        a.grid(alpha=0.3)
        for level in sorted({int(r["level"]) for r in psnr}):
            rows = [r for r in psnr if int(r["level"]) == level]
            b.plot([int(r["step"]) for r in rows], [float(r["psnr"]) for r in rows], "o-", ms=3,
                   label=f"level {level}")
        b.set_xlabel("step")
        b.set_ylabel("held-out PSNR, tone-mapped (dB)")
        b.grid(alpha=0.3)
        if psnr:
            b.legend(fontsize=7)
        fig.suptitle(title, fontsize=9)
        with atomic_path(self.plot_path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        return self.plot_path
