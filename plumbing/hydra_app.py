"""Every hydra command's entry point: ``@hydra_command("generate", "btf-generate")`` in place of
``@hydra.main(...)``.

Hydra reports a bad command line itself, over ten lines and with exit status 1: an unknown
config-group option lists every option and the config search path, a key the config does not
have adds a hint and the struct error. Before hydra runs, this module composes the command line
once with hydra's compose API and turns those errors into the house form (plumbing.user_errors):
one line on stderr naming the override and the valid choices (or the key it may have meant), exit
status 2. A command line that composes is then handed to ``hydra.main`` untouched, so ``--help``,
``--cfg job``, ``-m`` sweeps and ``hydra.*`` overrides behave as always (hydra's own overrides
and flags are left to hydra; with ``-m`` every value of every sweep is composed once).
``NEUMIP_TRACEBACK=1`` skips the check and lets hydra speak for itself.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import hydra
from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from plumbing.conf_dir import CONF_DIR
from plumbing.thread_share import share_threads
from plumbing.user_errors import BAD_INPUT

Task = Callable[[DictConfig], None]


def hydra_command(config_name: str, prog: str) -> Callable[[Task], Callable[[], None]]:
    """Decorate a command's ``main(cfg)`` as ``hydra.main`` does (conf/<config_name>.yaml), with
    the command line checked first: bad overrides end the command with one line and exit 2."""

    def decorate(task: Task) -> Callable[[], None]:
        app = hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)(task)

        @functools.wraps(task)
        def main() -> None:
            if not os.environ.get("NEUMIP_TRACEBACK"):
                problem = command_line_problem(config_name, sys.argv[1:], prog)
                if problem:
                    _refuse(prog, problem)
            share_threads()  # beside another project command, each takes its share of the cores
            app()

        return main

    return decorate


def _refuse(prog: str, problem: str) -> NoReturn:
    print(f"{prog}: {problem}", file=sys.stderr)
    sys.exit(BAD_INPUT)


def command_line_problem(config_name: str, argv: list[str], prog: str = "") -> str | None:
    """One line saying what is wrong with a hydra command line, or None when it composes (or is
    hydra's own business: --help, --info, another config dir...)."""
    parser = get_args_parser()
    parser.error = lambda message: _refuse(prog or parser.prog, message)  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    hydras_own = ("help", "hydra_help", "shell_completion", "info", "experimental_rerun",
                  "config_path", "config_dir")
    if any(getattr(args, flag, None) for flag in hydras_own):
        return None
    overrides: list[Override] = []
    for line in args.overrides:
        try:
            override = OverridesParser.create().parse_overrides([line])[0]
        except OverrideParseException as e:
            detail = _first_line(e)
            if detail.startswith("LexerNoViableAltException"):
                detail = "a character it does not take unquoted"
            return (f"{line}: hydra cannot parse this override ({detail}); quote a value with "
                    f"spaces, non-ASCII letters or special characters, e.g. 'out=\"my dir/x (1).h5\"'")
        if not override.is_hydra_override():
            overrides.append(override)
    jobs = _sweep_jobs(overrides) if args.multirun else [[o.input_line for o in overrides]]
    name = args.config_name or config_name
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        for job in jobs:
            problem = _compose_problem(name, job)
            if problem:
                return problem
    return None


def _sweep_jobs(overrides: list[Override]) -> list[list[str]]:
    """Override lists that together use every value of every sweep once: the first takes each
    sweep's first value, each further one changes a single sweep's value. Glob and interval
    sweeps are the sweeper's to expand and are not checked."""
    values: list[list[str]] = []
    for o in overrides:
        if not o.is_sweep_override():
            values.append([o.input_line])
        elif o.is_discrete_sweep() and o.value_type != ValueType.GLOB_CHOICE_SWEEP:
            key = o.get_key_element()
            values.append([f"{key}={v}" for v in o.sweep_string_iterator()] or [o.input_line])
    first = [v[0] for v in values]
    jobs = [first]
    for i, vs in enumerate(values):
        jobs += [[*first[:i], v, *first[i + 1:]] for v in vs[1:]]
    return jobs


def _key(line: str) -> str:
    """The key or group an override sets: ``+a.b@p=1`` -> ``a.b``."""
    return line.lstrip("~+").split("=", 1)[0].split("@", 1)[0]


def _first_line(e: BaseException) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)


def _compose_problem(config_name: str, job: list[str]) -> str | None:
    try:
        compose(config_name, job)
    except MissingConfigException as e:
        return _missing_config(e, config_name, job)
    except HydraException as e:
        return _composition_problem(e, config_name, job)
    except Exception:  # noqa: BLE001 - anything else is hydra's to report, as it always has been
        return None
    return None


def _missing_config(e: MissingConfigException, config_name: str, job: list[str]) -> str:
    group, _, option = (e.missing_cfg_file or "").rpartition("/")
    if not group:
        return f"config {config_name!r} not found in {CONF_DIR}"
    given = next((line for line in job if _key(line) == group), None)
    choices = f"; choose one of {', '.join(e.options)}" if e.options else ""
    if given is None:  # named by a config file's defaults, not on the command line
        return f"{group}/{option}: no such config in {CONF_DIR}/{group}{choices}"
    return f"{given}: unknown {group} option{choices}"


def _composition_problem(e: HydraException, config_name: str, job: list[str]) -> str:
    m = re.match(r"Could not override '([^']+)'", str(e))
    if m:
        key = m.group(1)
        given = next((line for line in job if _key(line) == key), key)
        others = [line for line in job if line is not given]
        keys = _config_keys(config_name, others)
        if key in keys:  # the key exists: hydra's own reason (e.g. "use +key=..." for an empty dict)
            reason = "; ".join(ln.strip() for ln in str(e).splitlines()[1:] if ln.strip())
            return f"{given}: hydra cannot override {key}" + (f" ({reason})" if reason else "")
        leaf = key.rsplit(".", 1)[-1]
        near = ([k for k in keys if k.endswith(f".{leaf}")][:3]  # device -> settings.device
                or difflib.get_close_matches(key, keys, n=1, cutoff=0.6))  # schedul.steps -> schedule.
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        return f"{given}: the config has no key {key}{hint}"
    lines = []
    for ln in str(e).splitlines():
        if ln.startswith("Config search path"):
            break
        if ln.strip():
            lines.append(ln.strip())
    return "; ".join(lines) or type(e).__name__


def _config_keys(config_name: str, job: list[str]) -> list[str]:
    """Every dotted key of the config the other overrides compose (none when they do not)."""
    try:
        cfg = compose(config_name, job)
    except HydraException:
        return []

    def walk(node: Any, prefix: str) -> list[str]:
        if not isinstance(node, dict):
            return []
        return [k for key, v in node.items() for k in (f"{prefix}{key}", *walk(v, f"{prefix}{key}."))]

    return walk(OmegaConf.to_container(cfg, resolve=False), "")
