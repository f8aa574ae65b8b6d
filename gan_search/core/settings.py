"""A trial's settings as types, where they cross from the driver into Ray.

- ``SharedSettings``: what every trial of one search shares (the base values: data geometry,
  budget, fixed and ``--set`` settings; the resources it was placed with; the objectives and
  the collapse rule). Built once by the driver, handed to every trial through the object
  store, and to the tracker, which records it on every child run.
- ``TrialSettings``: one trial's own part, read from the config dict Tune gives the trial
  (Tune and Optuna need a plain dict there): a search trial's config *is* its sampled
  values and its role under ``ROLE_KEY`` (decided once, where the trial is made: the
  searcher gives the study trial's role, PBT's starting population names its baseline; a
  PBT member keeps its own role when it copies another); a confirmation trial's is
  ``{"confirm": {"of", "baseline", "settings"}}`` (and ``"schedule"`` when it replays a PBT
  member's). Its ``role`` says which: nothing compares settings to find the baseline.

Standard library and the core only: the trainable, the tuning and the tracker all import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from gan_search.core.config import TrainConfig
from gan_search.core.vocabulary import OBJECTIVES, Objective, Role

CONFIRM_KEY = "confirm"  # a confirmation trial's Tune config: {"confirm": {...}}
ROLE_KEY = "role"  # a search trial's Tune config: its vocabulary.Role (never a setting's name)


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
    # a replayed PBT schedule: ({"step": s, "values": {...}}, ...), the first at step 0; the
    # values (``TRAINING_SETTINGS``) of an entry are in effect from its step to the next's
    schedule: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> "TrialSettings":
        """Read Tune's config dict of a trial (a search trial without a role is the
        sampler's)."""
        if CONFIRM_KEY in config:
            plan = config[CONFIRM_KEY]
            return cls(dict(plan["settings"]), Role.CONFIRM, str(plan["of"]),
                       bool(plan.get("baseline")), tuple(plan.get("schedule") or ()))
        return cls(settings_of(config), Role(config.get(ROLE_KEY, Role.SEARCH)))

    def run_name(self, trial_id: str) -> str:
        """What the trial's run is called in MLflow, its role first: ``trial_<id>`` (the
        sampler's), ``member_<id>`` (PBT's), ``baseline_<id>``, ``confirm_<id of the search
        trial>_seed<seed>`` (or ``confirm_baseline_...``; ``replay_<id>_seed<seed>`` for a
        PBT schedule): a list of runs says what each one is."""
        if self.role == Role.CONFIRM:
            of = f"baseline_{self.confirm_of}" if self.of_baseline else self.confirm_of
            kind = "replay" if self.schedule else "confirm"
            return f"{kind}_{of}_seed{self.values.get('seed')}"
        prefix = {Role.BASELINE: "baseline", Role.MEMBER: "member"}.get(self.role, "trial")
        return f"{prefix}_{trial_id}"

    def train_config(self, shared: SharedSettings) -> TrainConfig:
        """The trial's whole TrainConfig: the shared base, then its own values (for a
        replayed schedule, its values at step 0)."""
        return TrainConfig.from_dict({**shared.base, **self.values, **self.values_at(0)},
                                     source="trial")

    def values_at(self, step: int) -> dict[str, Any]:
        """The schedule's values in effect at ``step`` ({} without a schedule)."""
        current: dict[str, Any] = {}
        for entry in self.schedule:
            if entry["step"] <= step:
                current.update(entry["values"])
        return current

    def next_change(self, step: int) -> int | None:
        """The first step after ``step`` at which the schedule changes a value."""
        return next((int(e["step"]) for e in self.schedule if e["step"] > step), None)


def confirm_config(of: str, baseline: bool, settings: Mapping[str, Any],
                   schedule: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The Tune config of a confirmation trial (a grid value under ``CONFIRM_KEY``); with a
    PBT member's ``schedule``, the trial replays it."""
    plan = {"of": of, "baseline": baseline, "settings": dict(settings)}
    if schedule:
        plan["schedule"] = [dict(entry) for entry in schedule]
    return plan


def with_role(values: Mapping[str, Any], role: Role) -> dict[str, Any]:
    """A search trial's Tune config: its settings and its role."""
    return {**values, ROLE_KEY: role.value}


def settings_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """A search trial's settings: its Tune config without its role."""
    return {k: v for k, v in config.items() if k != ROLE_KEY}


def same_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """The same settings (floats compared to 12 digits: values pass through Optuna)."""
    return set(a) == set(b) and all(
        math.isclose(a[k], b[k], rel_tol=1e-12) if isinstance(a[k], float) else a[k] == b[k]
        for k in a)


def objectives_of(names: tuple[str, ...] | list[str]) -> tuple[Objective, ...]:
    """A space's objective names as the vocabulary's members (checked by the space loader)."""
    return tuple(Objective(name) for name in names) or OBJECTIVES[:1]
