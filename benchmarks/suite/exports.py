"""The suite's export cells (issue 21): each NeuMIP method's trained checkpoint (its first seed)
exported for the browser viewer at every precision: the folders' bytes, and the held-out PSNR
per level of each precision evaluated through the torch model with exactly the export's rounding
(``renderer.export.quantised_model``)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.suite.cells import Cell, cell_key
from benchmarks.suite.config import SuiteConfig
from benchmarks.suite.quality import MaterialFile
from benchmarks.suite.results import ExportRun, export_run_from_json
from btf_data.btf_file import BTFFile, file_fingerprint
from renderer.export import PRECISIONS, export_material, held_out_by_precision, read_manifest
from renderer.materials import NeuMIPMaterial

#: The code an export cell's numbers depend on (the exporter, the model it reads, scoring).
EXPORT_CODE = ("renderer.export", "neumip.evaluate", "btf_data.sampler", "btf_data.lookup")


def export_cell(
    mat: MaterialFile, method: str, checkpoint: str, suite: SuiteConfig, cells: Path
) -> Cell[ExportRun]:
    """Export ``checkpoint`` (a NeuMIP cell's) at every precision and score each on the held-out
    pairs. Keyed by the checkpoint's contents."""
    key = cell_key(mat.name, method, file_fingerprint(checkpoint), suite.levels)

    def compute(cell_dir: Path) -> ExportRun:
        material = NeuMIPMaterial(checkpoint, backend="torch")
        model = material.model
        folders = {p: export_material(material, cell_dir / p, p, f"neumip:{checkpoint}") for p in PRECISIONS}
        with BTFFile(mat.path) as btf:
            held_out = held_out_by_precision(model, btf, suite.levels)
        return ExportRun(
            method=method,
            checkpoint_bytes=Path(checkpoint).stat().st_size,
            export_bytes={p: int(read_manifest(f)["bytes"]) for p, f in folders.items()},
            held_out=held_out,
        )

    return Cell(
        cells / mat.name / f"export_{method}_{key}",
        compute,
        export_run_from_json,
        data=mat.path,
        code=EXPORT_CODE,
    )
