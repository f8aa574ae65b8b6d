"""A PBT search's population in its stored Optuna study (study.py).

Under PBT, Optuna only proposes the starting population (QMC, pbt.py): Ray refuses PBT
with a searcher, so no searcher tells the study anything. ``PopulationStudy`` does instead,
as a Tune callback: before the search starts each member is a trial of the search's study
(the baseline first, role ``baseline``, the others ``member``) with the settings it starts
from, running until it ends; each evaluation is reported as the member's intermediate value
(its current FID-lite, which PBT ranks members by); at its end it is ``COMPLETE`` with its
score, or ``FAIL``, with its status, the copies it made (``exploits``) and its schedule
(the settings it trained with, step by step) as attributes. Its parameters stay the ones
Optuna proposed: what a member ends with is in its schedule.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from ray.tune import Callback

from gan_search.core.config import SearchConfig
from gan_search.core.settings import ROLE_KEY, same_config, settings_of
from gan_search.core.vocabulary import Status
from gan_search.hpo.strategies import study as stored


class PopulationStudy(Callback):
    """Tells the stored study how each PBT member went (see the module docstring)."""

    LIVE = ("_study", "_storage")  # reopened from the storage after a resume

    def __init__(self, config: SearchConfig, members: list[dict[str, Any]],
                 distributions: dict[str, Any], about: dict[str, Any]) -> None:
        import optuna

        self.url, self.name = stored.url_of(config), config.name
        self._study, self._storage, _ = stored.create(
            self.url, self.name, optuna.samplers.RandomSampler(seed=config.seed), ["minimize"],
            {**about, "sampler": "QMCSampler (the starting population; PBT after it)",
             "population": len(members)}, ["fid_lite"])
        self.members: list[tuple[int, dict[str, Any]]] = []  # (study trial, its Tune config)
        for member in members:
            self._study.enqueue_trial(settings_of(member),
                                      user_attrs={stored.ROLE_ATTR: member[ROLE_KEY]})
            self.members.append((self._study.ask(distributions).number, member))
        self.numbers: dict[str, int] = {}  # Tune trial id -> study trial number

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self.LIVE}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._study = self._storage = None

    def get_state(self) -> dict:
        """Which Tune trial is which member, saved with Tune's state (a resumed search
        restores the callback as it was created, before any member started)."""
        return {"numbers": dict(self.numbers)}

    def set_state(self, state: dict) -> None:
        self.numbers = dict(state.get("numbers", {}))

    def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
        if trial.trial_id in self.numbers:
            return
        taken = set(self.numbers.values())
        number = next((n for n, m in self.members if n not in taken and
                       same_config(dict(trial.config), m)), None)
        if number is not None:
            self.numbers[trial.trial_id] = number
            self._handle(trial.trial_id).set_user_attr(stored.TUNE_TRIAL_ATTR, trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        value, step = result.get("fid_lite"), result.get("training_iteration")
        if trial.trial_id in self.numbers and stored.finite(value) and step is not None:
            with warnings.catch_warnings():  # a step reported again after a copy is kept
                warnings.simplefilter("ignore")
                self._handle(trial.trial_id).report(float(value), int(step))

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        self._tell(trial, trial.last_result or {})

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        self._tell(trial, {**(trial.last_result or {}), "status": Status.FAILED})

    def _tell(self, trial: Any, result: dict) -> None:
        import optuna

        number = self.numbers.get(trial.trial_id)
        if number is None or stored.finished(self._open(), number):
            return
        status, score = str(result.get("status", Status.FAILED)), result.get("score")
        handle = self._handle(trial.trial_id)
        handle.set_user_attr(stored.STATUS_ATTR, status)
        handle.set_user_attr("exploits", int(result.get("exploits", 0) or 0))
        handle.set_user_attr("schedule", json.loads(result.get("schedule") or "[]"))
        ok = status != Status.FAILED and stored.finite(score)
        self._study.tell(number, float(score) if ok else None,
                         state=optuna.trial.TrialState.COMPLETE if ok else
                         optuna.trial.TrialState.FAIL)

    def _open(self) -> Any:
        if self._study is None:
            self._storage = stored.open_storage(self.url)
            self._study = stored.load(self.url, self.name)
        return self._study

    def _handle(self, trial_id: str) -> Any:
        return stored.handle(self._open(), self._storage, self.numbers[trial_id])

