"""What a search trained: the iterations counted from its trials' reports, against its budget.

Each report carries the trial's step and the step its process started from
(``resumed_from_step``: a trial resumed, retried, paused by successive halving and
resumed, or a PBT member that took another's checkpoint) and the member's last copy
(``copy_id``). A stretch of training is one (trial, start step, copy): it trained its
latest step less its start. The sum over stretches is what was trained, search and
confirmation together; training that no report shows (an interrupted stretch, a failed
trial's) is not counted.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from gan_search.core.restorable import Restorable


class Spending(Restorable, Callback):
    """A Tune callback that counts what the trials trained (saved with the experiment: a
    resumed search goes on counting)."""

    def __init__(self) -> None:
        self.stretches: dict[str, int] = {}

    @property
    def restore_key(self) -> str:
        return "spending"

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if not isinstance(result.get("step"), int):
            return  # a failed trial's report: it trained nothing it reported
        start = int(result.get("resumed_from_step") or 0)
        key = f"{trial.trial_id}@{start}:{result.get('copy_id', '')}"
        self.stretches[key] = max(self.stretches.get(key, 0), result["step"] - start)

    @property
    def iters(self) -> int:
        return sum(self.stretches.values())
