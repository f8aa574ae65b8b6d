"""One trial's settings as a frozen dataclass, with checked construction.

``TrainConfig.from_dict`` is the one way in: unknown keys are refused with the
valid ones listed, strings (from ``--set`` or YAML) are converted to the
field's type, and every value is range-checked with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from gan_search.core.budget import Plan, plan_for
from gan_search.core.errors import ConfigError
from gan_search.core.vocabulary import DEVICES, Strategy, names
from gan_search.core.space import SearchSpec, strategy_of

# The generator starts from a BASE x BASE map (4..7) and doubles it, so the
# image sizes it can make are BASE * 2**k: 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, ...
MIN_BASE, MAX_BASE = 4, 7


def size_plan(image_size: int) -> tuple[int, int]:
    """(base, doublings) with base in 4..7 and base * 2**doublings == image_size.

    Raises ConfigError for a size the models cannot make (e.g. 30 or 36).
    """
    doublings = 0
    size = image_size
    while size > MAX_BASE and size % 2 == 0:
        size //= 2
        doublings += 1
    if not (MIN_BASE <= size <= MAX_BASE and doublings >= 1):
        makeable = sorted({b * 2**k for b in range(MIN_BASE, MAX_BASE + 1) for k in range(1, 7)})
        near = [s for s in makeable if abs(s - image_size) <= max(8, image_size // 4)]
        raise ConfigError(
            f"image_size={image_size} cannot be made by the models: it must be 4, 5, 6 or 7 "
            f"times a power of two (at least 8); nearby sizes that work: {near or makeable[:8]}")
    return size, doublings


# the settings that may change while a model trains (its optimisers' and its loss's): what
# PBT perturbs, and what a replayed PBT schedule changes at its steps (GANTrainer.retune)
TRAINING_SETTINGS = ("lr_g", "lr_d", "beta1", "beta2", "label_smoothing", "d_steps")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one trial needs to build and train its DCGAN."""

    # data geometry (from the space's data section unless overridden)
    image_size: int = 32
    channels: int = 1
    # architecture
    z_dim: int = 100
    z_dist: str = "normal"
    g_width: int = 64
    d_width: int = 64
    kernel_size: int = 4
    leaky_slope: float = 0.2
    d_dropout: float = 0.0
    batch_norm: bool = True
    # optimisation
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    label_smoothing: float = 0.0
    batch_size: int = 64
    d_steps: int = 1
    # the faces tutorial's loss balancing (engine/balance.py): skip G's update when
    # g_loss * balance_g_factor < d_loss, D's when d_loss * balance_d_factor < g_loss
    balance_losses: bool = False
    balance_g_factor: float = 1.5
    balance_d_factor: float = 2.0
    iters: int = 1000
    # evaluation, sampling and runtime
    eval_every: int = 100
    sample_bn_mode: str = "train"
    seed: int = 0
    precision: str = "auto"
    compile: str = "auto"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """Build a config from a mapping, checking keys, types and ranges.

        Args:
            values: setting name -> value (values may be strings, e.g. from ``--set``).
            source: where the values came from, named in error messages.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ConfigError(f"{source}: unknown setting {unknown[0]!r}; valid settings are: "
                              f"{', '.join(names)}")
        types = {f.name: type(f.default) for f in dataclasses.fields(cls)}
        converted = {k: _convert(k, v, types[k], source) for k, v in values.items()}
        config = cls(**converted)
        config.check(source)
        return config

    def check(self, source: str = "config") -> None:
        """Raise ConfigError naming the first setting out of range."""
        for name, (ok, rule) in _RULES.items():
            value = getattr(self, name)
            if not ok(value):
                raise ConfigError(f"{source}: {name}={value!r} is invalid: {rule}")
        try:
            size_plan(self.image_size)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})


_RULES: dict[str, tuple[Any, str]] = {
    "channels": (lambda v: v in (1, 3), "must be 1 (grey) or 3 (colour)"),
    "z_dim": (lambda v: v >= 1, "must be >= 1"),
    "z_dist": (lambda v: v in ("normal", "uniform"), "must be normal or uniform"),
    "g_width": (lambda v: v >= 1, "must be >= 1"),
    "d_width": (lambda v: v >= 1, "must be >= 1"),
    "kernel_size": (lambda v: v in (4, 5), "must be 4 or 5"),
    "leaky_slope": (lambda v: 0 <= v < 1, "must lie in [0, 1)"),
    "d_dropout": (lambda v: 0 <= v < 1, "must lie in [0, 1)"),
    "lr_g": (lambda v: 0 < v < 1, "must lie in (0, 1)"),
    "lr_d": (lambda v: 0 < v < 1, "must lie in (0, 1)"),
    "beta1": (lambda v: 0 <= v < 1, "must lie in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "must lie in [0, 1)"),
    "label_smoothing": (lambda v: 0 <= v < 0.5, "must lie in [0, 0.5): real labels become 1 - value"),
    "batch_size": (lambda v: v >= 2, "must be >= 2 (batch norm needs two samples)"),
    "d_steps": (lambda v: 1 <= v <= 10, "must lie in 1..10"),
    "balance_g_factor": (lambda v: 0 < v <= 100, "must lie in (0, 100]: G skips its update "
                                                 "when g_loss * factor < d_loss"),
    "balance_d_factor": (lambda v: 0 < v <= 100, "must lie in (0, 100]: D skips its update "
                                                 "when d_loss * factor < g_loss"),
    "iters": (lambda v: v >= 1, "must be >= 1"),
    "eval_every": (lambda v: v >= 1, "must be >= 1"),
    "sample_bn_mode": (lambda v: v in ("train", "eval"), "must be train or eval"),
    "seed": (lambda v: v >= 0, "must be >= 0"),
    "precision": (lambda v: v in ("auto", "fp32", "bf16"), "must be auto, fp32 or bf16"),
    "compile": (lambda v: v in ("auto", "on", "off"), "must be auto, on or off"),
}


def _convert(key: str, value: Any, kind: type, source: str) -> Any:
    """Convert ``value`` to ``kind`` (bool, int, float or str) or raise ConfigError."""
    def bad() -> ConfigError:
        return ConfigError(f"{source}: {key}={value!r} is not a valid {kind.__name__} "
                           f"(e.g. {key}={_EXAMPLES[kind]})")

    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise bad()
    if kind is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad() from None
        if isinstance(value, int):
            return value
        raise bad()
    if kind is float:
        if isinstance(value, bool):
            raise bad()
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad() from None
        if not math.isfinite(number):
            raise bad()
        return number
    if not isinstance(value, str):
        raise bad()
    return value


_EXAMPLES = {bool: "true", int: "64", float: "0.0002", str: "normal"}


def config_from_space(spec: SearchSpec, overrides: Mapping[str, Any] | None = None,
                      sampled: Mapping[str, Any] | None = None) -> TrainConfig:
    """The trial config for a space: its data geometry and defaults (or midpoints),
    then sampled values (from a search), then user overrides (``--set``)."""
    values: dict[str, Any] = {"image_size": spec.data.size, "channels": spec.data.channels,
                              "iters": spec.budget.iters, "eval_every": spec.budget.eval_every}
    values.update(spec.defaults())
    values.update(sampled or {})
    values.update(overrides or {})
    return TrainConfig.from_dict(values, source=spec.path if not overrides else
                                 f"{spec.path} with --set")


def check_space_params(spec: SearchSpec) -> None:
    """Every searched or fixed name in a space must be a TrainConfig setting."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for section, keys in (("parameters", spec.params), ("fixed", spec.fixed)):
        for key in keys:
            if key not in names:
                raise ConfigError(f"{spec.path}: {section}.{key}: unknown setting; valid settings "
                                  f"are: {', '.join(sorted(names))}")
    for name, param in spec.params.items():
        # every end of every range must be a valid setting too (e.g. kernel_size 3 is not)
        for value in (param.values if param.kind == "choice" else (param.low, param.high)):
            try:
                TrainConfig.from_dict({name: value})
            except ConfigError as err:
                detail = str(err).split(": ", 1)[-1]
                raise ConfigError(f"{spec.path}: parameters.{name}: {detail}") from None
    config_from_space(spec)  # the defaults must themselves form a valid config


@dataclass(frozen=True)
class SearchConfig:
    """One search: a space plus the user's command-line overrides.

    ``fixed`` holds ``--set`` values (already checked against TrainConfig); they pin a
    setting for every trial and remove it from the searched parameters.
    """

    spec: SearchSpec
    trials: int
    iters: int
    eval_every: int
    eval_samples: int
    concurrency: int
    fixed: Mapping[str, Any]
    runs_dir: str
    name: str
    seed: int = 0
    address: str | None = None
    data_source: str = ""
    data_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    storage: str | None = None  # Tune storage (s3://..., or a shared folder); None: runs_dir/tune
    optuna_storage: str | None = None  # the study's Optuna RDB URL; None: runs_dir/optuna.db
    strategy: Strategy = Strategy.TPE_ASHA  # how to search: --strategy, else the space's
    device: str = "auto"  # --device: auto, cpu or gpu (see placement.py)
    confirm: int = 3  # --confirm K: the top K configurations retrained with fresh seeds
    confirm_seeds: int = 2  # fresh seeds per confirmed configuration
    # --budget: how its iterations are spent (trials, iters and confirmation follow from it;
    # the confirmation is the plan's top rung, trained ``plan.final`` iterations)
    plan: Plan | None = None

    @property
    def confirm_iters(self) -> int:
        """How long a confirmation trial trains: the plan's final length, else the trials'."""
        return self.plan.final if self.plan is not None else self.iters

    @property
    def image_size(self) -> int:
        """The trials' image size: the space's, unless --set image_size changed it."""
        return int(self.base_values()["image_size"])

    @property
    def channels(self) -> int:
        return int(self.base_values()["channels"])

    @property
    def searched(self) -> dict[str, Any]:
        """The space's parameters that ``--set`` did not pin."""
        return {k: p for k, p in self.spec.params.items() if k not in self.fixed}

    def base_values(self) -> dict[str, Any]:
        """Settings every trial shares: data geometry, budget, the space's fixed values and
        ``--set``; a trial adds its sampled values on top."""
        values: dict[str, Any] = {"image_size": self.spec.data.size,
                                  "channels": self.spec.data.channels}
        values.update(self.spec.fixed)
        values.update(self.fixed)
        values.update({"iters": self.iters, "eval_every": self.eval_every})
        return values

    def baseline_point(self) -> dict[str, Any] | None:
        """The space's baseline as a point of the searched space (Optuna evaluates it
        first): its values, and each searched parameter's default where it gives none;
        settings pinned by --set stay pinned for the baseline too."""
        if self.spec.baseline is None:
            return None
        point = {k: p.midpoint() for k, p in self.searched.items()}
        point.update({k: v for k, v in self.spec.baseline.values.items() if k in self.searched})
        # a float setting stays a float (YAML's 0 is an int): PBT rounds a perturbed int
        return {k: float(v) if self.searched[k].kind in ("uniform", "loguniform") else v
                for k, v in point.items()}

    def trial_config(self, sampled: Mapping[str, Any]) -> TrainConfig:
        return TrainConfig.from_dict({**self.base_values(), **sampled}, source="trial")


def search_config(spec: SearchSpec, *, trials: int | None = None, iters: int | None = None,
                  concurrency: int | None = None, sets: Mapping[str, Any] | None = None,
                  runs_dir: str = "gan_search_runs", name: str | None = None, seed: int = 0,
                  address: str | None = None, data_dir: str | None = None,
                  storage: str | None = None, strategy: str | None = None,
                  device: str = "auto", confirm: int = 3, confirm_seeds: int | None = None,
                  optuna_storage: str | None = None, budget: int | None = None) -> SearchConfig:
    """Check a space and the command-line overrides together; raise ConfigError early.
    ``budget`` (else the space's ``budget.total`` when neither ``trials`` nor ``iters`` is
    given): the search's trials, their length and the confirmation follow from its plan."""
    check_space_params(spec)
    if strategy is not None and strategy not in tuple(Strategy):
        raise ConfigError(f"--strategy {strategy}: must be {names(Strategy)}")
    chosen = strategy_of(strategy) if strategy is not None else spec.strategy
    if device not in DEVICES:
        raise ConfigError(f"--device {device}: must be one of {', '.join(DEVICES)}")
    for flag, value in (("--trials", trials), ("--iters", iters), ("--concurrency", concurrency),
                        ("--budget", budget)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: must be >= 1")
    if seed < 0:
        raise ConfigError(f"--seed {seed}: must be >= 0")
    plan = _plan(spec, chosen, budget, trials, iters, confirm_seeds)
    if plan is not None:  # the top rung: the winner and the baseline on the plan's seeds
        trials, iters, confirm, confirm_seeds = plan.trials, plan.rungs[-1], 1, plan.seeds
    confirm_seeds = 2 if confirm_seeds is None else confirm_seeds
    if confirm < 0 or confirm_seeds < 1:
        raise ConfigError(f"--confirm {confirm} / --confirm-seeds {confirm_seeds}: the top K >= 0 "
                          "(0 turns confirmation off) with at least 1 fresh seed each")
    _check_population(spec, chosen, trials or spec.budget.trials)
    iters = iters or spec.budget.iters
    eval_every = min(spec.budget.eval_every, iters)
    pinned = dict(TrainConfig.from_dict({**spec.defaults(), **(sets or {})}, source="--set").to_dict())
    fixed = {k: pinned[k] for k in (sets or {})}
    if "iters" in fixed or "eval_every" in fixed:
        raise ConfigError("--set iters / eval_every: use --iters (the budget) instead")
    config = SearchConfig(
        spec=spec, trials=trials or spec.budget.trials, iters=iters, eval_every=eval_every,
        eval_samples=spec.budget.eval_samples, concurrency=concurrency or spec.concurrency,
        fixed=fixed, runs_dir=runs_dir, name=name or "", seed=seed, address=address,
        data_source="folder" if data_dir else spec.data.source,
        data_options={"path": data_dir} if data_dir else dict(spec.data.options),
        storage=storage, strategy=chosen, device=device, confirm=confirm,
        confirm_seeds=confirm_seeds, optuna_storage=optuna_storage, plan=plan)
    config.trial_config({k: p.midpoint() for k, p in config.searched.items()})  # must be valid
    return config


def _plan(spec: SearchSpec, strategy: Strategy, budget: int | None, trials: int | None,
          iters: int | None, seeds: int | None) -> Plan | None:
    """The plan of ``--budget`` (or of the space's ``budget.total`` when the command gives
    neither --trials nor --iters); None: a search of trials of a fixed length."""
    if budget is not None and (trials is not None or iters is not None):
        raise ConfigError(f"--budget {budget} with --trials/--iters: give the budget (the search "
                          "plans its trials and their lengths) or the trials and iterations")
    total = budget or (spec.budget.total if trials is None and iters is None else 0)
    if not total:
        return None
    if seeds is not None and seeds < 1:
        raise ConfigError(f"--confirm-seeds {seeds}: must be >= 1 (the final runs of a budget)")
    source = "--budget" if budget else f"{spec.path}: budget.total"
    return plan_for(spec, strategy, total, seeds or 1, source)


def _check_population(spec: SearchSpec, strategy: Strategy, trials: int) -> None:
    """PBT needs a population (2 members or more) and a searched setting it can perturb."""
    if strategy != Strategy.PBT:
        return
    if trials < 2:
        raise ConfigError(f"--strategy pbt with {trials} trial: PBT needs a population; give "
                          "--trials 2 or more (each trial is a member)")
    if not set(spec.params) & set(TRAINING_SETTINGS):
        raise ConfigError(f"--strategy pbt: space {spec.name!r} searches none of "
                          f"{', '.join(TRAINING_SETTINGS)}, the settings PBT changes while "
                          "members train; search one of them, or use --strategy tpe-asha")


def check_batch_fits(batch_size: int, images: int, source: str = "the data") -> None:
    """A batch must fit the training images (one rule for ``train``, a search's trials and
    the trainer itself)."""
    if batch_size > images:
        raise ConfigError(f"batch_size={batch_size} exceeds the {images} training images of "
                          f"{source}; use --set batch_size=N with a smaller N")


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """``["lr_g=0.001", ...]`` -> ``{"lr_g": "0.001"}``; types are checked by TrainConfig."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set lr_g=0.0005")
        out[key.strip()] = value.strip()
    return out
