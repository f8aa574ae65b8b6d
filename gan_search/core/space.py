"""The search-space model: parameter kinds, YAML loading and validation.

A space file (``search_spaces/NAME.yaml``) says which data a search trains on,
which hyperparameters it searches and over what ranges, which it fixes, and how
the search is run (objectives, budget, scheduler, resources, concurrency).

This module is a leaf of the package (standard library, yaml and core/vocabulary.py). Whether a
parameter name is a real trial setting is checked in ``config.py``; translating
the space to Ray Tune / Optuna lives in ``hpo/strategies/``.

Bounds of every kind are inclusive, as written in the file.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from gan_search.core.errors import SpaceError
from gan_search.core.vocabulary import Objective, Sampler, Scheduler, Strategy

KINDS = ("uniform", "loguniform", "int", "choice")
# names that become folders, MLflow experiment and run names, and filter values
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
OBJECTIVES = tuple(o.value for o in Objective)  # the shared vocabulary, as plain names
SCHEDULERS = (Scheduler.ASHA.value, Scheduler.NONE.value)  # scheduler.kind, the older spelling
STRATEGIES = tuple(s.value for s in Strategy)

_TOP_KEYS = (
    "name", "description", "data", "parameters", "fixed", "objectives",
    "budget", "strategy", "scheduler", "resources", "concurrency", "baseline",
)
_BASELINE_KEYS = ("name", "description", "values", "sources")
_DATA_KEYS = ("source", "size", "channels", "options")
_BUDGET_KEYS = ("trials", "iters", "eval_every", "eval_samples", "total")
_SCHEDULER_KEYS = (
    "kind", "grace_period", "reduction_factor", "collapse_threshold", "collapse_patience",
    "perturbation_interval",
)
_RESOURCE_KEYS = ("cpu", "gpu")
_PARAM_KEYS = {
    "uniform": ("kind", "low", "high", "default"),
    "loguniform": ("kind", "low", "high", "default"),
    "int": ("kind", "low", "high", "default", "log"),
    "choice": ("kind", "values", "default"),
}


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter. Bounds are inclusive."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    values: tuple[Any, ...] = ()
    default: Any = None
    log: bool = False

    def midpoint(self) -> Any:
        """The default if given, else the middle of the range (geometric for log)."""
        if self.default is not None:
            return self.default
        if self.kind == "choice":
            return self.values[0]
        if self.kind == "loguniform" or (self.kind == "int" and self.log):
            mid = math.sqrt(self.low * self.high)
        else:
            mid = (self.low + self.high) / 2
        return int(round(mid)) if self.kind == "int" else mid

    def contains(self, value: Any) -> bool:
        """True if ``value`` lies in this parameter's range (inclusive)."""
        if self.kind == "choice":
            return value in self.values
        return self.low <= value <= self.high


@dataclass(frozen=True)
class DataSpec:
    source: str
    size: int
    channels: int
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    trials: int = 8
    iters: int = 500
    eval_every: int = 100
    eval_samples: int = 1000
    total: int = 0  # iterations of the whole search (gan-search run --budget); 0: none


@dataclass(frozen=True)
class SchedulerSpec:
    """ASHA's rungs (when the strategy stops early), PBT's interval (under ``pbt``) and the
    collapse stopper (always). ``kind`` is the older spelling of the strategy's early
    stopping (``strategy:``)."""

    kind: str = "asha"
    grace_period: int = 1
    reduction_factor: int = 2
    collapse_threshold: float = 0.9
    collapse_patience: int = 3
    perturbation_interval: int = 1  # PBT: evaluations between a member's exploit decisions


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class Baseline:
    """The configuration a person would have picked by hand (a tutorial's), which a search
    evaluates first and must beat. ``sources`` says where each value comes from."""

    name: str
    description: str
    values: Mapping[str, Any]
    sources: Mapping[str, str]


@dataclass(frozen=True)
class SearchSpec:
    """A parsed, validated search-space file."""

    name: str
    path: str
    description: str
    data: DataSpec
    params: Mapping[str, Param]
    fixed: Mapping[str, Any]
    objectives: tuple[str, ...]
    budget: Budget
    scheduler: SchedulerSpec
    resources: Resources
    concurrency: int
    baseline: Baseline | None = None
    strategy: Strategy = Strategy.TPE_ASHA  # how to search

    def defaults(self) -> dict[str, Any]:
        """Fixed values plus each searched parameter's default (or midpoint)."""
        values = dict(self.fixed)
        values.update({name: p.midpoint() for name, p in self.params.items()})
        return values


def spaces_dirs() -> list[Path]:
    """Folders searched for space files, first match wins.

    ``$GAN_SEARCH_SPACES`` (if set), the checkout's ``search_spaces/`` (editable
    install), then the copy installed with the package under ``share/``.
    """
    dirs = []
    if os.environ.get("GAN_SEARCH_SPACES"):
        dirs.append(Path(os.environ["GAN_SEARCH_SPACES"]))
    dirs.append(Path(__file__).resolve().parents[2] / "search_spaces")
    dirs.append(Path(sys.prefix) / "share" / "gan-search" / "search_spaces")
    return [d for d in dirs if d.is_dir()]


def list_spaces() -> dict[str, Path]:
    """Known space names mapped to their files."""
    found: dict[str, Path] = {}
    for folder in spaces_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def resolve_space(name_or_path: str) -> Path:
    """A space name (``digits``) or a path to a YAML file -> the file's path."""
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise SpaceError(f"space file {name_or_path} does not exist; give a YAML file path "
                             f"or one of the known names: {', '.join(list_spaces())}")
        return path
    known = list_spaces()
    if name_or_path not in known:
        raise SpaceError(f"unknown space {name_or_path!r}; known spaces: {', '.join(known)} "
                         "(or give a path to a YAML file)")
    return known[name_or_path]


def load_space(name_or_path: str) -> SearchSpec:
    """Read and validate a space file; raises SpaceError naming file and key."""
    path = resolve_space(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpaceError(f"{path}: not valid YAML: {err}".replace("\n", " ")) from None
    return parse_space(raw, str(path))


def parse_space(raw: Any, path: str) -> SearchSpec:
    """Validate a loaded YAML mapping and build a SearchSpec."""
    where = _Where(path)
    top = where.mapping(raw, "", _TOP_KEYS)
    data = _parse_data(where, top.get("data"))
    params = {}
    for name, body in where.mapping(top.get("parameters", {}), "parameters").items():
        params[name] = _parse_param(where, name, body)
    fixed = dict(where.mapping(top.get("fixed", {}), "fixed"))
    both = sorted(set(params) & set(fixed))
    if both:
        raise SpaceError(f"{path}: {both[0]} is both searched (parameters) and fixed; "
                         "keep it in one of the two sections")
    name = str(top.get("name", Path(path).stem))
    if not PLAIN_NAME.fullmatch(name):
        raise SpaceError(f"{path}: name: {name!r} is not a plain name; use letters, digits, "
                         "'.', '_' and '-' (it names the MLflow experiment and the searches)")
    return SearchSpec(
        name=name,
        path=path,
        description=str(top.get("description", "")),
        data=data,
        params=params,
        fixed=fixed,
        objectives=_parse_objectives(where, top.get("objectives", ["fid_lite"])),
        budget=Budget(**where.section(top.get("budget"), "budget", _BUDGET_KEYS, Budget())),
        scheduler=_parse_scheduler(where, top.get("scheduler")),
        resources=_parse_resources(where, top.get("resources")),
        concurrency=where.positive_int(top.get("concurrency", 1), "concurrency"),
        baseline=_parse_baseline(where, top.get("baseline"), params, fixed),
        strategy=_parse_strategy(where, top.get("strategy"), top.get("scheduler")),
    )


class _Where:
    """Carries the file name into every message."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str, message: str) -> SpaceError:
        return SpaceError(f"{self.path}: {key}: {message}" if key else f"{self.path}: {message}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None = None) -> dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping of keys to values, got {value!r}")
        if allowed is not None:
            unknown = [k for k in value if k not in allowed]
            if unknown:
                raise self.fail(f"{key}.{unknown[0]}" if key else str(unknown[0]),
                                f"unknown key; valid keys are: {', '.join(allowed)}")
        return value

    def number(self, value: Any, key: str) -> float:
        # YAML 1.1 reads `2e-4` (no dot) as a string: accept it as the number it means.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, f"expected a finite number, got {value!r}")
        return value

    def positive_int(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, f"expected a whole number >= 1, got {value!r}")
        return value

    def section(self, value: Any, key: str, allowed: tuple[str, ...], defaults: Any) -> dict:
        """A mapping whose values must have the types of ``defaults``' fields."""
        body = self.mapping(value, key, allowed)
        out = {}
        for name, given in body.items():
            expected = type(getattr(defaults, name))
            sub = f"{key}.{name}"
            if expected is int:
                out[name] = self.positive_int(given, sub)
            elif expected is float:
                out[name] = float(self.number(given, sub))
            else:
                out[name] = given
        return out


def _parse_data(where: _Where, raw: Any) -> DataSpec:
    body = where.mapping(raw, "data", _DATA_KEYS)
    if "source" not in body:
        raise where.fail("data.source", "missing; name a dataset source such as digits or folder")
    if not isinstance(body["source"], str):
        raise where.fail("data.source", f"expected a source name, got {body['source']!r}")
    size = where.positive_int(body.get("size", 64), "data.size")
    channels = body.get("channels", 3)
    if channels not in (1, 3):
        raise where.fail("data.channels", f"must be 1 (grey) or 3 (colour), got {channels!r}")
    options = where.mapping(body.get("options", {}), "data.options")
    return DataSpec(source=body["source"], size=size, channels=channels, options=options)


def _parse_param(where: _Where, name: str, raw: Any) -> Param:
    key = f"parameters.{name}"
    if not isinstance(raw, dict) or "kind" not in raw:
        raise where.fail(key, f"expected a mapping with kind: one of {', '.join(KINDS)}")
    kind = raw["kind"]
    if kind not in KINDS:
        raise where.fail(f"{key}.kind", f"unknown kind {kind!r}; valid kinds are: {', '.join(KINDS)}")
    body = where.mapping(raw, key, _PARAM_KEYS[kind])
    if kind == "choice":
        values = body.get("values")
        if not isinstance(values, list) or not values:
            raise where.fail(f"{key}.values", "a choice needs a non-empty list of values")
        default = body.get("default")
        if default is not None and default not in values:
            raise where.fail(f"{key}.default", f"{default!r} is not one of the values {values}")
        return Param(name=name, kind=kind, values=tuple(values), default=default)
    for bound in ("low", "high"):
        if bound not in body:
            raise where.fail(f"{key}.{bound}", f"missing; a {kind} parameter needs low and high")
    low, high = where.number(body["low"], f"{key}.low"), where.number(body["high"], f"{key}.high")
    if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
        raise where.fail(key, f"an int parameter needs whole-number bounds, got low={low}, high={high}")
    if not low <= high:
        raise where.fail(key, f"low <= high must hold, but got low={low}, high={high}")
    log = bool(body.get("log", False)) or kind == "loguniform"
    if log and low <= 0:
        raise where.fail(f"{key}.low", f"a log range needs low > 0, got low={low}")
    default = body.get("default")
    if default is not None:
        default = where.number(default, f"{key}.default")
        if kind == "int" and not isinstance(default, int):
            raise where.fail(f"{key}.default", f"expected a whole number, got {default!r}")
        if not low <= default <= high:
            raise where.fail(f"{key}.default", f"{default} is outside [{low}, {high}]")
    return Param(name=name, kind=kind, low=low, high=high, default=default, log=log)


def _parse_baseline(where: _Where, raw: Any, params: Mapping[str, Param],
                    fixed: Mapping[str, Any]) -> Baseline | None:
    """Each value must be a searched parameter's (inside its range) or equal a fixed one,
    and name its source; searched parameters it leaves out take their default."""
    if raw is None:
        return None
    body = where.mapping(raw, "baseline", _BASELINE_KEYS)
    name = str(body.get("name", "baseline"))
    if not PLAIN_NAME.fullmatch(name):
        raise where.fail("baseline.name", f"{name!r} is not a plain name")
    values = dict(where.mapping(body.get("values"), "baseline.values"))
    sources = where.mapping(body.get("sources"), "baseline.sources")
    for key, value in values.items():
        sub = f"baseline.values.{key}"
        if key in params:
            param = params[key]
            if param.kind != "choice":
                value = values[key] = where.number(value, sub)
            if not param.contains(value):
                allowed = param.values if param.kind == "choice" else f"[{param.low}, {param.high}]"
                raise where.fail(sub, f"{value!r} is outside the searched range {allowed}; widen "
                                      "the range or change the value")
        elif key in fixed:
            if fixed[key] != value:
                raise where.fail(sub, f"{value!r} differs from fixed.{key} = {fixed[key]!r}; every "
                                      "trial shares fixed values, the baseline too")
        else:
            raise where.fail(sub, "not a searched (parameters) or fixed setting of this space")
        if not str(sources.get(key, "")).strip():
            raise where.fail(f"baseline.sources.{key}", "missing; say where the value comes from")
    extra = sorted(set(sources) - set(values))
    if extra:
        raise where.fail(f"baseline.sources.{extra[0]}", "a source for a value the baseline does not set")
    return Baseline(name=name, description=str(body.get("description", "")), values=values,
                    sources={k: str(v) for k, v in sources.items()})


def _parse_objectives(where: _Where, raw: Any) -> tuple[str, ...]:
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not 1 <= len(names) <= 2:
        raise where.fail("objectives", f"expected one or two of {', '.join(OBJECTIVES)}, got {raw!r}")
    for name in names:
        if name not in OBJECTIVES:
            raise where.fail("objectives", f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}")
    if len(set(names)) != len(names):
        raise where.fail("objectives", f"an objective is listed twice: {names}")
    return tuple(names)


def _parse_scheduler(where: _Where, raw: Any) -> SchedulerSpec:
    body = where.section(raw, "scheduler", _SCHEDULER_KEYS, SchedulerSpec())
    if body.get("kind", "asha") not in SCHEDULERS:
        raise where.fail("scheduler.kind", f"unknown scheduler {body['kind']!r}; valid: {', '.join(SCHEDULERS)}")
    threshold = body.get("collapse_threshold", 0.9)
    if not 0 < threshold <= 1:
        raise where.fail("scheduler.collapse_threshold", f"must lie in (0, 1], got {threshold}")
    for key in ("grace_period", "reduction_factor", "collapse_patience", "perturbation_interval"):
        if key in body:
            where.positive_int(body[key], f"scheduler.{key}")
    return SchedulerSpec(**body)


def _parse_strategy(where: _Where, raw: Any, scheduler_raw: Any) -> Strategy:
    """``strategy:``, or from the older ``scheduler.kind`` (TPE, with or without ASHA; its
    kind already checked by _parse_scheduler); the two may not disagree."""
    old_kind = scheduler_raw.get("kind") if isinstance(scheduler_raw, dict) else None
    if raw is None:
        return Strategy.of(Sampler.TPE, Scheduler(old_kind or Scheduler.ASHA))
    if raw not in STRATEGIES:
        raise where.fail("strategy", f"unknown strategy {raw!r}; valid: {', '.join(STRATEGIES)}")
    if old_kind is not None and Scheduler(old_kind) != strategy_of(raw).scheduler:
        raise where.fail("scheduler.kind", f"{old_kind!r} contradicts strategy {raw!r}; drop "
                         "scheduler.kind (the strategy says whether ASHA stops trials early)")
    return strategy_of(raw)


def strategy_of(name: str) -> Strategy:
    """The one place a strategy is made from its name (a space's ``strategy:``, or
    ``--strategy`` through core/config.py, each checked first): from here on it is the enum."""
    return Strategy(name)


def _parse_resources(where: _Where, raw: Any) -> Resources:
    body = where.section(raw, "resources", _RESOURCE_KEYS, Resources())
    cpu, gpu = body.get("cpu", 1.0), body.get("gpu", 0.0)
    if cpu <= 0:
        raise where.fail("resources.cpu", f"must be > 0, got {cpu}")
    if gpu < 0 or (gpu > 1 and gpu != int(gpu)):
        raise where.fail("resources.gpu", f"must be a fraction in [0, 1] or a whole number of GPUs, got {gpu}")
    return Resources(cpu=cpu, gpu=gpu)
