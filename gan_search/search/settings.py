"""A trial's settings as types, where they cross from the driver into Ray.

- ``SharedSettings``: what every trial of one search shares (the base values: data geometry,
  budget, fixed and ``--set`` settings; the resources it was placed with; the objectives and
  the collapse rule). Built once by the driver, handed to every trial through the object
  store, and to the tracker, which records it on every child run.
- ``TrialSettings``: one trial's own part, read from the config dict Tune gives the trial
  (Tune and Optuna need a plain dict there): a search trial's config *is* its sampled
  values; a confirmation trial's is ``{"confirm": {"of", "baseline", "settings"}}``. Its
  ``role`` says which, and the baseline is recognised by its values.

Standard library and the core only: the trainable, the tuning and the tracker all import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from gan_search.core.config import TrainConfig
from gan_search.core.vocabulary import OBJECTIVES, Objective, Role

CONFIRM_KEY = "confirm"  # a confirmation trial's Tune config: {"confirm": {...}}


@dataclass(frozen=True)
class SharedSettings:
    """What every trial of a search shares."""

    base: Mapping[str, Any]  # data geometry, budget, fixed and --set settings
    cpu: float = 1.0  # the CPUs Ray placed each trial with (torch threads)
    gpu: float = 0.0  # the GPU share each trial asked for (0: CPU trials)
    objectives: tuple[Objective, ...] = (Objective.FID_LITE,)
    collapse_threshold: float = 0.9
    collapse_patience: int = 2

    @property
    def primary(self) -> Objective:
        """The first objective: ``score``, what ASHA ranks and the confirmation averages."""
        return self.objectives[0]


@dataclass(frozen=True)
class TrialSettings:
    """One trial's own settings and what it is to its search."""

    values: Mapping[str, Any]  # sampled (or confirmed, with the fresh seed) settings
    role: Role = Role.SEARCH
    confirm_of: str | None = None  # a confirmation: the search trial it retrains
    of_baseline: bool = False  # a confirmation of the baseline's configuration

    @classmethod
    def of(cls, config: Mapping[str, Any],
           baseline: Mapping[str, Any] | None = None) -> "TrialSettings":
        """Read Tune's config dict of a trial (``baseline``: the space's baseline point)."""
        if CONFIRM_KEY in config:
            plan = config[CONFIRM_KEY]
            return cls(dict(plan["settings"]), Role.CONFIRM, str(plan["of"]),
                       bool(plan.get("baseline")))
        values = dict(config)
        is_baseline = baseline is not None and same_config(values, baseline)
        return cls(values, Role.BASELINE if is_baseline else Role.SEARCH)

    def run_name(self, trial_id: str) -> str:
        """What the trial's run is called in MLflow, its role first: ``trial_<id>`` (the
        sampler's), ``baseline_<id>``, ``confirm_<id of the search trial>_seed<seed>`` (or
        ``confirm_baseline_...``): a list of runs says what each one is."""
        if self.role == Role.CONFIRM:
            of = f"baseline_{self.confirm_of}" if self.of_baseline else self.confirm_of
            return f"confirm_{of}_seed{self.values.get('seed')}"
        return f"{'baseline' if self.role == Role.BASELINE else 'trial'}_{trial_id}"

    def train_config(self, shared: SharedSettings) -> TrainConfig:
        """The trial's whole TrainConfig: the shared base, then its own values."""
        return TrainConfig.from_dict({**shared.base, **self.values}, source="trial")


def confirm_config(of: str, baseline: bool, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The Tune config of a confirmation trial (a grid value under ``CONFIRM_KEY``)."""
    return {"of": of, "baseline": baseline, "settings": dict(settings)}


def same_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """The same settings (floats compared to 12 digits: values pass through Optuna)."""
    return set(a) == set(b) and all(
        math.isclose(a[k], b[k], rel_tol=1e-12) if isinstance(a[k], float) else a[k] == b[k]
        for k in a)


def objectives_of(names: tuple[str, ...] | list[str]) -> tuple[Objective, ...]:
    """A space's objective names as the vocabulary's members (checked by the space loader)."""
    return tuple(Objective(name) for name in names) or OBJECTIVES[:1]
