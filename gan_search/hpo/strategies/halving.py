"""Successive halving by a budget's plan (core/budget.py), on Ray Tune's synchronous
``HyperBandScheduler``: one bracket, whose trials pause at each rung until every live one
has reached it; then the best ``arms[k + 1]`` proposed configurations go on from their
checkpoints, the others stop, and the baseline always goes on (it is an arm of every rung,
never stopped). Ray's own bracket sizes and rungs (``max_t * eta**-s``) are replaced by the
plan's (Ray 2.60: ``_create_bracket`` and ``_Bracket.successive_halving``), so that what
the search trains is what the plan printed.

Every trial of the bracket exists from the start (the searcher proposes them together: the
search's Tuner lets ``plan.trials`` be pending, where Ray's default for a searcher is one at
a time), and a rung is done only when all of them have reached it. How many train at once
is what the resources allow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.tune.schedulers.hyperband import HyperBandScheduler, _Bracket

from gan_search.core.budget import Plan
from gan_search.hpo.strategies.tuning import BaselineAware


class PlanBracket(_Bracket):
    """A bracket whose rungs and survivors are the plan's; ``keep(trial)``: a trial that
    always goes on (the baseline)."""

    def __init__(self, plan: Plan, keep: Any, time_attr: str) -> None:
        # stop_last_trials=False: at the last rung trials train on to their own end (their
        # iters) rather than pause there while others catch up (Ray 2.60 then leaves a trial
        # paused for good when its pause is still being saved as the rung completes)
        super().__init__(time_attr=time_attr, max_trials=plan.trials, init_t_attr=plan.rungs[0],
                         max_t_attr=plan.rungs[-1], eta=2, s=len(plan.rungs) - 1,
                         stop_last_trials=False)
        self.plan, self.keep, self.rung = plan, keep, 0

    def cur_iter_done(self) -> bool:
        """The rung is done when every trial of the plan exists and has reached it (Ray
        halves the trials the bracket has so far: with fewer created, too many go on)."""
        return len(self._all_trials) >= self.plan.trials and super().cur_iter_done()

    def successive_halving(self, metric: str, metric_op: float) -> tuple[list, list]:
        """The best ``arms[k + 1]`` proposed trials at rung ``k`` go on, with the baseline."""
        self._halves -= 1
        self.rung += 1
        survivors = self.plan.arms[self.rung]
        self._r = self._cumul_r = self.plan.rungs[self.rung]
        kept = [t for t in self._live_trials if self.keep(t)]
        ranked = sorted((t for t in self._live_trials if not self.keep(t)),
                        key=lambda t: -metric_op * _score(self._live_trials[t], metric))
        good, bad = ranked[:survivors], ranked[survivors:]
        self._n = len(good) + len(kept)
        return [*good, *kept], bad


def _score(result: dict | None, metric: str) -> float:
    """A trial's metric at its last result (one without it ranks last)."""
    value = (result or {}).get(metric)
    return float(value) if isinstance(value, (int, float)) and np.isfinite(value) else np.inf


class PlanHyperBand(BaselineAware, HyperBandScheduler):
    """HyperBand with one bracket: the plan's successive halving (module docstring)."""

    def __init__(self, plan: Plan, metric: str, mode: str) -> None:
        super().__init__(time_attr="step", metric=metric, mode=mode,
                         max_t=plan.rungs[-1], reduction_factor=2)
        self.plan = plan

    def _create_bracket(self, s: int) -> PlanBracket:
        return PlanBracket(self.plan, self.is_baseline, self._time_attr)

    def _cur_band_filled(self) -> bool:
        return False  # one bracket of plan.trials: the search creates no more trials

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        """Ray stops a paused trial (one a rung ended) without marking it for the saved
        experiment state (Ray 2.60 ``_schedule_trial_stop`` returns early for a trial with
        no actor), which then says PAUSED: a resume would run it again, and the search
        would count it as interrupted. It is marked here."""
        super().on_trial_remove(tune_controller, trial)
        mark = getattr(tune_controller, "_mark_trial_to_checkpoint", None)
        if mark is not None:
            mark(trial)
