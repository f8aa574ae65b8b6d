"""Optuna inside Ray Tune: a search's study in a real Optuna storage (study.py), told what
really happened to each trial, through Optuna's public API only.

``StudySearch`` is a Ray Tune ``Searcher`` that asks the study for each trial's
configuration (``study.ask`` over the space's distributions; the baseline enqueued first,
so it is trial 0; each configuration goes to Tune with the study trial's role, so the
baseline is known by its trial from then on) and tells it how the trial ended:

- a trial the scheduler stopped early (ASHA; its last result says it was still
  ``running``) is ``PRUNED``, with the values it reported at each step. Ray's own
  ``OptunaSearch`` tells it ``COMPLETE`` with a first-rung score, and TPE would model a
  first-rung FID-lite and a full-length one as one objective; Optuna ranks pruned trials by
  the step reached and then the value, after every complete trial;
- a trial that finished, collapsed or diverged ended on its own terms: ``COMPLETE`` with
  its score (a collapsed or diverged trial's score is its worst value, which TPE should
  learn from), its way of ending in the ``status`` attribute;
- a trial that failed (its own error, reported by the trial with the worst scores; or an
  error Tune saw), or one without a score: ``FAIL`` (not a fact about its configuration
  that TPE should learn).

Per-step values are the first objective (``score``, the best so far) at each
``training_iteration``, reported as they come (optuna-dashboard shows them live). Two
objectives: Optuna keeps no intermediate values for multi-objective studies, so they are
kept as the trial's ``evaluations`` attribute instead.

Resume: the searcher's saved state is small (which Tune trial is which study trial, by
number); the study itself is re-opened from the storage, so a resumed search goes on with
the same stored study. A trial the study holds as running that no Tune trial owns was
asked after Tune last saved its state (the driver was killed): the next Tune trial takes
it over, with its configuration, so the study holds each trial once.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils.util import unflatten_dict

from gan_search.core.settings import with_role
from gan_search.core.vocabulary import Role, Status
from gan_search.hpo.strategies import study as stored

EVALUATIONS_ATTR = "evaluations"  # two objectives: a trial's [[step, value], ...]
ROLE = stored.ROLE_ATTR


def stopped_early(result: dict | None) -> bool:
    """The trial's last result says it was still running: the scheduler stopped it."""
    return bool(result) and result.get("status") == Status.RUNNING


class StudySearch(Searcher):
    """Ray Tune searcher over a stored Optuna study (see the module docstring)."""

    LIVE = ("_study", "_storage", "_handles")  # of this driver process: never pickled

    def __init__(self, metric: str | list[str], mode: str | list[str], sampler: Any,
                 storage_url: str, study_name: str, baseline: dict[str, Any] | None = None,
                 metric_names: list[str] | None = None,
                 about: dict[str, Any] | None = None) -> None:
        """``about``: what the search is (space, strategy, seed...), kept as the study's
        user attributes with the sampler's name."""
        super().__init__(metric=metric, mode=mode)
        self.sampler, self.storage_url, self.study_name = sampler, storage_url, study_name
        self.baseline, self.metric_names = baseline, metric_names
        self.about = dict(about or {})
        self.space: dict[str, Any] = {}  # Optuna distributions, from Tune's param_space
        self.numbers: dict[str, int] = {}  # Tune trial id -> study trial number
        self.steps: dict[str, list[list[Any]]] = {}  # Tune trial id -> [[step, value], ...]
        self.ended: set[str] = set()
        self._detach()

    def _detach(self) -> None:
        self._study, self._storage, self._handles = None, None, {}

    # --- Tune's Searcher interface -----------------------------------------------------
    def set_search_properties(self, metric: Any, mode: Any, config: dict, **spec: Any) -> bool:
        if self.space:
            return False
        self.space = OptunaSearch.convert_search_space(config)
        return True

    def suggest(self, trial_id: str) -> dict | None:
        study = self.study()
        orphan = self._orphan(study)
        trial = self._handle_of(orphan) if orphan is not None else \
            study.ask(fixed_distributions=self.space)
        if ROLE not in trial.user_attrs:
            trial.set_user_attr(ROLE, Role.SEARCH.value)
        trial.set_user_attr(stored.TUNE_TRIAL_ATTR, trial_id)
        self.numbers[trial_id] = trial.number
        self._handles[trial_id] = trial
        return with_role(unflatten_dict(trial.params), Role(trial.user_attrs[ROLE]))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.numbers and trial_id not in self.ended:
            self._record_step(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id not in self.numbers or trial_id in self.ended:
            return
        self.ended.add(trial_id)
        number, study = self.numbers[trial_id], self.study()
        if stored.finished(study, number):  # told before the driver was killed
            return
        state, values = self._outcome(trial_id, result, error)
        trial = self.handle(trial_id)
        status = Status.FAILED if error or not result else \
            Status.STOPPED if stopped_early(result) else result.get("status", Status.FAILED)
        trial.set_user_attr(stored.STATUS_ATTR, str(status))  # as the leaderboard says
        if self.multi:
            trial.set_user_attr(EVALUATIONS_ATTR, self.steps.get(trial_id, []))
        study.tell(number, values, state=state)

    # --- state ------------------------------------------------------------------------
    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as out:
            pickle.dump(self.__getstate__(), out)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as saved:
            self.__setstate__(pickle.load(saved))

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self.LIVE}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._detach()

    # --- the study --------------------------------------------------------------------
    @property
    def multi(self) -> bool:
        return isinstance(self.metric, list)

    def study(self) -> Any:
        """The stored study (created with the baseline enqueued when new; re-opened on
        resume)."""
        if self._study is None:
            modes = self.mode if self.multi else [self.mode]
            self._study, self._storage, new = stored.create(
                self.storage_url, self.study_name, self.sampler,
                ["minimize" if m == "min" else "maximize" for m in modes], self.about,
                self.metric_names or [])
            if new and self.baseline:  # the baseline first
                self._study.enqueue_trial(self.baseline, user_attrs={ROLE: Role.BASELINE.value})
        return self._study

    def handle(self, trial_id: str) -> Any:
        """The ``optuna.trial.Trial`` of a Tune trial (re-made from the storage after a
        resume)."""
        if trial_id not in self._handles:
            self._handles[trial_id] = self._handle_of(self.numbers[trial_id])
        return self._handles[trial_id]

    def _handle_of(self, number: int) -> Any:
        return stored.handle(self.study(), self._storage, number)

    def _orphan(self, study: Any) -> int | None:
        """A running study trial that no Tune trial owns (asked after Tune last saved)."""
        import optuna

        owned = set(self.numbers.values())
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        return next((t.number for t in running if t.number not in owned), None)

    def _record_step(self, trial_id: str, result: dict) -> None:
        first = self.metric[0] if self.multi else self.metric
        step, value = result.get("training_iteration"), result.get(first)
        steps = self.steps.setdefault(trial_id, [])
        if step is None or (steps and steps[-1][0] == step):
            return
        steps.append([step, value])
        if not self.multi and stored.finite(value):
            with warnings.catch_warnings():  # a step reported before a resume is kept
                warnings.simplefilter("ignore")
                self.handle(trial_id).report(float(value), int(step))

    def _outcome(self, trial_id: str, result: dict | None, error: bool) -> tuple[Any, Any]:
        """(state, values) to tell: FAIL without a score, PRUNED when the scheduler stopped
        it (its value: the last one it reported), else COMPLETE with its score."""
        import optuna

        states = optuna.trial.TrialState
        keys = self.metric if self.multi else [self.metric]
        values = [(result or {}).get(k) for k in keys]
        failed = (result or {}).get("status") == Status.FAILED  # its own error (trainable.py)
        if error or failed or not all(stored.finite(v) for v in values):
            return states.FAIL, None
        self._record_step(trial_id, result)  # Tune hands a trial's last result only here
        if stopped_early(result):
            return states.PRUNED, None
        return states.COMPLETE, [float(v) for v in values] if self.multi else float(values[0])


