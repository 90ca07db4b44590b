"""Typed configuration of ``neumip-bench`` (conf/bench.yaml, conf/suite/*.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plumbing.conf_dir import CONF_DIR
from plumbing.config_checks import require
from renderer.baselines import METHODS as SVBRDF_METHODS
from renderer.baselines import BaselineConfig


def neumip_methods() -> dict[str, str]:
    """NeuMIP methods of the suite and the model option each one trains: ``neumip`` the faithful
    ``model=full`` (ModelConfig's defaults), and ``neumip_<name>`` every conf/model/<name>.yaml
    (a new model variant joins the suite by its config file alone)."""
    files = sorted((Path(CONF_DIR) / "model").glob("*.yaml"))
    return {"neumip": "full", **{f"neumip_{f.stem}": f.stem for f in files}}


NEUMIP_METHODS = neumip_methods()

#: Methods made from the BTF file alone (no maps, no training): they run on every material,
#: captures included. ``measured_interp``: the file's training pairs interpolated across
#: directions (renderer.materials.MeasuredInterpMaterial).
BTF_METHODS = ("measured_interp",)
#: The parts of a run, in the order they run (``only`` picks some).
PARTS = ("quality", "images", "exports", "speed")

#: Material families (quality.describe): SVBRDF maps with a normal map, with a heightfield, or none.
FAMILIES = ("normal-mapped", "displaced", "measured")


def model_fields(name: str) -> dict[str, Any]:
    """Every field of the model that ``neumip-train model=<name>`` trains, as a plain dict: hydra
    composes conf/train.yaml with ``model=<name>`` (conf/model/<name>.yaml over ModelConfig's
    defaults, neumip/config_store.py), so a field added to ModelConfig is here with its default.
    Inside neumip-bench's own hydra app this composes with that app's hydra; elsewhere (scripts,
    tests) it opens conf/ for the call."""
    import dataclasses

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from neumip.config import ModelConfig
    from neumip.config_store import register_configs
    from plumbing.structured_config import to_dataclass

    register_configs()
    overrides = [f"model={name}"]
    if GlobalHydra.instance().is_initialized():
        cfg = compose("train", overrides=overrides)
    else:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=overrides)
    return dataclasses.asdict(to_dataclass(ModelConfig, cfg.model))


@dataclass
class SuiteConfig:
    """What the suite measures (conf/suite/quick.yaml, conf/suite/full.yaml)."""

    name: str = "quick"
    materials: list[str] = field(default_factory=lambda: ["bumps_flat", "weave"])
    """Procedural materials (both families: normal-mapped and displaced)."""
    extra_files: list[str] = field(default_factory=list)
    """The user's own BTF files (e.g. imported UBO2014 captures), scored by the NeuMIP methods;
    SVBRDF methods need SVBRDF maps and leave those cells empty, saying why."""
    resolution: int = 128
    directions: str = "medium"
    methods: list[str] = field(default_factory=lambda: ["neumip", "naive", "lean"])
    """NeuMIP methods (neumip and neumip_<name> of every conf/model/<name>.yaml), SVBRDF
    baselines (naive, gaussian, toksvig, lean, mipnet, fit) and BTF baselines (measured_interp)."""
    train_overrides: list[str] = field(default_factory=lambda: ["preset=cpu"])
    """neumip-train options of every NeuMIP cell (the preset, steps...)."""
    method_overrides: dict[str, list[str]] = field(default_factory=dict)
    """Further neumip-train options of one NeuMIP method (e.g. neumip_plus: its longer schedule)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds of every NeuMIP cell, unless family_seeds or method_seeds say otherwise."""
    family_seeds: dict[str, list[int]] = field(default_factory=dict)
    """Seeds of the NeuMIP cells of one material family (normal-mapped, displaced, measured)."""
    method_seeds: dict[str, list[int]] = field(default_factory=dict)
    """Seeds of one NeuMIP method (first choice; e.g. the ablations: one seed)."""
    method_families: dict[str, list[str]] = field(default_factory=dict)
    """The material families one method runs on (default: every family it applies to); its other
    cells stay empty and the table says so."""
    levels: int = 6
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    """The SVBRDF methods' options (as neumip-render's ``baselines``); every option is part of
    the SVBRDF cells' keys, so a changed option recomputes them."""
    render_width: int = 512
    render_height: int = 384
    reference_spp: int = 8
    """Reference: reference_spp^2 samples per pixel of level 0."""
    render_methods: list[str] = field(default_factory=list)
    """Methods rendered in the image comparison (empty: every method of the suite)."""
    speed: bool = True
    speed_batch: int = 2**20
    speed_train_steps: int = 16
    speed_frames: list[list[int]] = field(default_factory=lambda: [[512, 512], [1920, 1080]])

    def __post_init__(self) -> None:
        known = (*NEUMIP_METHODS, *SVBRDF_METHODS, *BTF_METHODS)
        for m in self.methods + self.render_methods:
            require(m in known, "suite.methods", m, f"one of {', '.join(known)}")
        require(self.levels >= 1, "suite.levels", self.levels, ">= 1")
        require(self.reference_spp >= 1, "suite.reference_spp", self.reference_spp, ">= 1")
        for name, seeds in [
            ("suite.seeds", self.seeds),
            *(
                (f"suite.{group}.{k}", v)
                for group in ("family_seeds", "method_seeds")
                for k, v in getattr(self, group).items()
            ),
        ]:
            require(bool(seeds), name, seeds, "at least one seed")
        for method, families in self.method_families.items():
            for f in families:
                require(f in FAMILIES, f"suite.method_families.{method}", f, f"one of {', '.join(FAMILIES)}")

    def baseline_options(self) -> dict[str, Any]:
        """What determines an SVBRDF pyramid: every baseline option but where and how visibly it
        runs (device, progress bar)."""
        options = asdict(self.baselines)
        options.pop("device")
        options["fit"].pop("progress")
        return options

    def seeds_of(self, method: str, family: str) -> list[int]:
        """The seeds of one NeuMIP method on a material of one family."""
        return self.method_seeds.get(method) or self.family_seeds.get(family) or self.seeds


@dataclass
class BenchConfig:
    """Options of ``neumip-bench`` (conf/bench.yaml)."""

    suite: SuiteConfig = field(default_factory=SuiteConfig)
    out_root: str = "outputs/bench"
    """Cells are kept in out_root/cells; each run writes out_root/runs/<date>_<suite>/."""
    rerun: bool = False
    """Recompute every cell instead of reusing finished ones."""
    publish: bool = False
    """Copy RESULTS.md, results.json and the plots into docs/ (docs/RESULTS.md ...)."""
    docs_dir: str = "docs"
    readme: str = "README.md"
    """With publish: the README whose headline block (between neumip-bench's markers) is rewritten."""
    only: list[str] = field(default_factory=list)
    """Run only these parts: quality, images, exports, speed (empty: all)."""
    report_from: str | None = None
    """A results.json: render its report again (RESULTS.md, plots; with ``publish``, docs/ and the
    README's headline) with this version's report code, computing no cell."""
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for part in self.only:
            require(part in PARTS, "only", part, ", ".join(PARTS))
