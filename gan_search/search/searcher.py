"""Optuna inside Ray Tune, told what really happened to each trial.

Ray's ``OptunaSearch`` tells the study that a trial the scheduler stopped early (ASHA) is
``COMPLETE``, with the score of the evaluation it was stopped at. TPE then models a
first-rung FID-lite and a full-length one as the same objective, and the short trials
(most of an ASHA search) pull its model towards configurations that merely start well.
Optuna has a state for exactly this: ``PRUNED``, with the values the trial reported at each
step, which TPE ranks by the step reached and then by the value (after every complete
trial). ``PrunedAwareOptunaSearch`` tells a stopped trial that way.

What is a stopped trial: one whose last result says it was still running (``status``
``running``, see trainable.py). Trials that finished, collapsed or diverged ended on their
own terms and are told ``COMPLETE`` with their score, as before (a collapsed or diverged
trial's score is its worst value, which TPE should learn from).

One objective: the per-step values are the ones Ray reports to the Optuna trial (``score``,
the best so far, at each ``training_iteration``), and the one it was stopped at, which Tune
hands to the searcher only in ``on_trial_complete``. Two objectives: Optuna keeps
no intermediate values for multi-objective studies (``Trial.report`` refuses them, and
TPE's ranking of pruned trials reads ``study.direction``), so the trial is told ``PRUNED``
without them and the evaluations it reached are kept as its ``evaluations`` user
attribute, for a reader of the study.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch

from gan_search.core.vocabulary import Status

STOPPED_ATTR = "evaluations"  # user attribute of a pruned trial: [[step, value], ...]


def stopped_early(result: dict | None) -> bool:
    """The trial's last result says it was still running: the scheduler stopped it."""
    return bool(result) and result.get("status") == Status.RUNNING


class PrunedAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that tells a trial the scheduler stopped as ``PRUNED`` (with its
    per-step values for one objective), and every other trial as Ray does."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        first = self.metric[0] if isinstance(self.metric, list) else self.metric
        self._steps_of(trial_id).append([result.get("training_iteration"), result.get(first)])
        if not isinstance(self.metric, list):  # Optuna keeps per-step values of one objective
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if error or not stopped_early(result) or trial_id in self._completed_trials:
            super().on_trial_complete(trial_id, result, error)
            return
        import optuna

        ot_trial = self._ot_trials[trial_id]
        # Tune does not pass on the result at which the scheduler stops a trial (only
        # results of trials that go on): the value it was stopped at is reported here
        steps, step = self._steps_of(trial_id), result.get("training_iteration")
        if not steps or steps[-1][0] != step:
            first = self.metric[0] if isinstance(self.metric, list) else self.metric
            steps.append([step, result.get(first)])
            if not isinstance(self.metric, list):
                ot_trial.report(result[first], step)
        if isinstance(self.metric, list):
            ot_trial.set_user_attr(STOPPED_ATTR, steps)
        self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    def _steps_of(self, trial_id: str) -> list[list[Any]]:
        steps = self.__dict__.setdefault("_steps", {})  # also on a searcher restored from disk
        return steps.setdefault(trial_id, [])
