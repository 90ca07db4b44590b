"""One source for config defaults: the dataclasses. conf/train.yaml's model/full, optim/adam,
schedule/paper and logger/wandb are the dataclasses' defaults themselves (neumip/config_store.py);
the yaml files that remain may not write a default a second time with another value.

Each yaml file follows one rule, by what it is for:

* ``DIFFERS``: a file that extends a registered dataclass option (conf/model/plus.yaml:
  ``defaults: [full, _self_]``), or another such file (conf/model/hybrid.yaml extends plus), sets
  only the keys it changes; a default repeated there would
  silently keep its old value when the dataclass's default changes, so it is refused (the
  stronger one-source rule: it holds for every such file).
* ``MIRROR``: a file that restates a dataclass's defaults on purpose (a command's primary config,
  whose keys and comments are what ``--cfg job`` and ``--help`` show; the data and material
  options, whose restated keys make each file readable alone; the default option of a btf_data or
  renderer group) keeps every value equal to the dataclass default, apart from the keys listed
  with the reason they differ. The stronger rule does not hold for these files (they restate
  almost every key), and moving them onto the ConfigStore too would make each command's config
  unreadable in conf/; this rule still catches the drift.
* ``VARIANT``: presets, suites, the other scenes: bundles of chosen values, free to differ; only
  their keys are checked (each must be a field of the dataclass).
"""

from __future__ import annotations

import dataclasses
import typing
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from benchmarks.suite.config import BenchConfig, SuiteConfig, model_fields
from btf_data.btf_render import RenderConfig
from btf_data.generate import GenerateConfig, MaterialConfig, PyramidConfig
from btf_data.import_ubo import ImportConfig
from neumip.config import DataConfig, ModelConfig, TrainConfig
from neumip.config_store import NODES, register_configs
from plumbing.conf_dir import CONF_DIR
from plumbing.structured_config import to_dataclass
from renderer.baselines.mipnet_train import MIPNetTrainConfig
from renderer.command import RenderCommandConfig
from renderer.scene_config import SceneConfig

DIFFERS, MIRROR, VARIANT = "differs", "mirror", "variant"

#: Every yaml file of conf/ (first matching pattern): the dataclass it fills (``# @package
#: _global_`` files: the command's whole config), its rule, and for MIRROR files the keys that
#: differ from the dataclass default on purpose, with the reason.
FILES: list[tuple[str, type, str, dict[str, str]]] = [
    ("train.yaml", TrainConfig, MIRROR,
     {"out_dir": "the command adds ${data.directions_tag}/${hydra:runtime.choices.model} (hydra's)"}),
    ("generate.yaml", GenerateConfig, MIRROR, {}),
    ("import_ubo.yaml", ImportConfig, MIRROR, {}),
    ("mipnet_train.yaml", MIPNetTrainConfig, MIRROR,
     {"out_dir": "the command adds ${hydra:runtime.choices.mipnet_preset} (hydra's)"}),
    ("neumip_render.yaml", RenderCommandConfig, MIRROR,
     {"out": "the command names the folder after ${scene.name}"}),
    ("bench.yaml", BenchConfig, MIRROR, {}),
    ("model/*.yaml", ModelConfig, DIFFERS, {}),
    ("data/*.yaml", DataConfig, MIRROR, {
        "name": "the material the option is named after",
        "path": "data=file: the user's file (???)",
        "generate_if_missing": "data=file: never generated",
        "generate.material.name": "the material the option is named after",
        "generate.out": "the file it makes is the one it reads (${data.path})",
    }),
    ("material/*.yaml", MaterialConfig, MIRROR, {
        "name": "the material the option is named after",
        "kind": "material=maps: the user's maps",
    }),
    ("render/default.yaml", RenderConfig, MIRROR, {}),
    ("render/*.yaml", RenderConfig, VARIANT, {}),
    ("pyramid/box.yaml", PyramidConfig, MIRROR, {}),
    ("pyramid/*.yaml", PyramidConfig, VARIANT, {}),
    ("scene/plane.yaml", SceneConfig, MIRROR, {}),
    ("scene/*.yaml", SceneConfig, VARIANT, {}),
    ("suite/*.yaml", SuiteConfig, VARIANT, {}),
    ("preset/*.yaml", TrainConfig, VARIANT, {}),
    ("dirs/*.yaml", TrainConfig, VARIANT, {}),
    ("mipnet_preset/*.yaml", MIPNetTrainConfig, VARIANT, {}),
]

#: Expected model configs, typed here independently of conf/ (the values each option changes); an
#: option missing here is expected to be its own file's keys over ModelConfig's defaults.
MODELS: dict[str, dict[str, Any]] = {
    "full": {},
    "plus": {"latent_channels": 16, "decoder_width": 64},
    "no_offset": {"use_offset": False},
    "single_level": {"levels": 1},
}

#: What each preset sets (device, schedule.steps, schedule.batch_size, optim.lr).
PRESETS: dict[str, tuple[str, int, int, float]] = {
    "cpu": ("cpu", 12000, 8192, 3e-3),
    "gpu": ("cuda", 30000, 2**20, 1e-3),
    "debug": ("cpu", 20, 2048, 1e-3),
}

UNKNOWN = object()


def conf_files() -> list[str]:
    return sorted(str(p.relative_to(CONF_DIR)) for p in Path(CONF_DIR).rglob("*.yaml"))


def model_options() -> list[str]:
    """The options of the model group: conf/model/*.yaml and the registered ones."""
    files = {p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml")}
    return sorted(files | {name for group, name in NODES if group == "model"})


def _yaml_model_fields(name: str) -> dict:
    """The fields conf/model/<name>.yaml sets, its parents' (a variant of a variant) underneath,
    read from the files themselves, without hydra."""
    if name == "full":
        return {}
    node = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "model" / f"{name}.yaml"))
    parents = [d for d in node.pop("defaults", []) if d != "_self_"]
    return {**(_yaml_model_fields(parents[0]) if parents else {}), **node}


def expected_model(name: str) -> ModelConfig:
    if name in MODELS:
        return ModelConfig(**MODELS[name])
    return ModelConfig(**_yaml_model_fields(name))


def rule_of(rel: str) -> tuple[type, str, dict[str, str]]:
    for pattern, cls, rule, allowed in FILES:
        if fnmatch(rel, pattern):
            return cls, rule, allowed
    raise AssertionError(f"conf/{rel} is mapped to no dataclass: add it to {__name__}.FILES")


def leaves(node: dict, cls: type, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, the yaml's value, the dataclass default; UNKNOWN when the dataclass has no such
    field) of every value a yaml file sets, descending into fields that are dataclasses."""
    hints = typing.get_type_hints(cls)
    defaults = OmegaConf.to_container(OmegaConf.structured(cls), resolve=False)
    out = []
    for key, value in node.items():
        if not prefix and key in ("defaults", "hydra"):
            continue
        if key not in defaults:
            out.append((prefix + key, value, UNKNOWN))
        elif dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            out += leaves(value, hints[key], f"{prefix}{key}.")
        else:
            out.append((prefix + key, value, defaults[key]))
    return out


@pytest.mark.parametrize("rel", conf_files())
def test_no_default_is_written_twice_with_another_value(rel):
    cls, rule, allowed = rule_of(rel)
    node = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / rel), resolve=False)
    problems = []
    for key, value, default in leaves(node, cls):
        if default is UNKNOWN:
            problems.append(f"{key} is no field of {cls.__name__}")
        elif rule == DIFFERS and value == default:
            problems.append(f"{key}: {value!r} repeats {cls.__name__}'s default: delete it (the "
                            "dataclass is the one source)")
        elif rule == MIRROR and value != default and key not in allowed:
            problems.append(f"{key}: {value!r} here, {default!r} in {cls.__name__}: one default "
                            "written twice with two values (make them equal, or list the key in "
                            f"{__name__}.FILES with the reason it differs)")
    assert not problems, f"conf/{rel}:\n  " + "\n  ".join(problems)
    if rule == DIFFERS:  # it extends the registered option, or a variant that does, and nothing else
        seen, cur = [rel], node
        while True:
            parents = [d for d in cur.get("defaults", []) if d != "_self_"]
            assert len(parents) == 1, (rel, parents)
            if parents[0] == "full":
                break
            parent = f"{Path(rel).parent}/{parents[0]}.yaml"
            assert parent not in seen and (Path(CONF_DIR) / parent).exists(), (rel, seen, parent)
            seen.append(parent)
            cur = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / parent), resolve=False)


def test_registered_options_have_no_yaml_copy():
    """A yaml file beside a registered option would be a second source (hydra reads it first)."""
    for group, name in NODES:
        assert not (Path(CONF_DIR) / group / f"{name}.yaml").exists(), f"conf/{group}/{name}.yaml"


def train_config(overrides: list[str]) -> TrainConfig:
    """conf/train.yaml composed as ``neumip-train`` composes it, as the typed config."""
    cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return to_dataclass(TrainConfig, cfg)


def test_hydra_sees_every_model_option():
    register_configs()
    register_configs()  # idempotent
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        options = GlobalHydra.instance().config_loader().get_group_options("model")
    assert sorted(options) == model_options() and set(MODELS) <= set(options)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("model", model_options())
def test_train_config_composes_with_every_model_and_preset(model, preset):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        train = train_config([f"model={model}", f"preset={preset}"])
    # every ModelConfig field, a field added later included, from the dataclass
    assert dataclasses.asdict(train.model) == dataclasses.asdict(expected_model(model))
    device, steps, batch_size, lr = PRESETS[preset]
    assert (train.device, train.schedule.steps, train.schedule.batch_size) == (device, steps, batch_size)
    assert train.optim.lr == pytest.approx(lr)
    # values no preset sets are the dataclasses' defaults
    assert train.schedule.l1_weight == 0.1 and train.schedule.lod_sampling == "official"
    assert train.optim.beta2 == 0.999 and train.logger.project == "neumip"
    assert train.out_dir.endswith(f"/{model}")


def test_model_fields_are_every_field_of_the_composed_model():
    assert model_fields("full") == dataclasses.asdict(ModelConfig())
    assert model_fields("plus") == dataclasses.asdict(ModelConfig(latent_channels=16, decoder_width=64))
    for name in model_options():
        assert model_fields(name) == dataclasses.asdict(expected_model(name)), name
    assert model_fields("plus")["latent_channels"] == 16 and model_fields("plus")["backend"] == "auto"


def test_model_fields_inside_a_hydra_app():
    """neumip-bench calls it inside its own hydra app (GlobalHydra initialised with conf/)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        bench = compose("bench")
        assert model_fields("single_level") == dataclasses.asdict(ModelConfig(levels=1))
    assert bench.suite.name == "quick"
