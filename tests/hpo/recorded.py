"""A Tune callback for tests that read what the trials reported (a module of its own: it
imports Ray, which tests/helpers.py keeps out)."""

from ray.tune import Callback


class Results(Callback):
    """Every result Tune receives, in order (what the trials reported)."""

    def __init__(self):
        self.seen = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen.append((trial.trial_id, dict(result)))
