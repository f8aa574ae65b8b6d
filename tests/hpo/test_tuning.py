"""The search's promises that live in its Tune objects: ASHA ranks the baseline like any
trial but never stops it (the baseline gets the full budget it is compared at)."""

from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler

from gan_search.core.config import search_config
from gan_search.core.settings import with_role
from gan_search.core.space import parse_space
from gan_search.core.vocabulary import Role
from gan_search.hpo.strategies.sampled import BaselineASHA, build_scheduler
from helpers import tiny_space

SPACE = tiny_space(budget={"trials": 4, "iters": 80, "eval_every": 20},
                   strategy="tpe-asha", scheduler={"grace_period": 1, "reduction_factor": 2},
                   baseline={"name": "paper", "values": {"lr_g": 2.0e-4},
                             "sources": {"lr_g": "test"}})


def feed(scheduler, trials_and_scores):
    """Each (trial, score) reports its first evaluation (training_iteration 1); ASHA's
    decision for each, in order."""
    for trial, _ in trials_and_scores:
        scheduler.on_trial_add(None, trial)
    return [scheduler.on_trial_result(None, trial, {"training_iteration": 1, "score": score})
            for trial, score in trials_and_scores]


def test_asha_stops_a_worse_trial_at_its_rung_but_never_the_baseline():
    config = search_config(parse_space(SPACE, "asha.yaml"), name="x")
    scheduler = build_scheduler(config)
    assert isinstance(scheduler, BaselineASHA)
    good = SimpleNamespace(trial_id="good", config=with_role({"lr_g": 1e-3}, Role.SEARCH))
    worse = SimpleNamespace(trial_id="worse", config=with_role({"lr_g": 5e-3}, Role.SEARCH))
    baseline = SimpleNamespace(trial_id="base", config=with_role({"lr_g": 2e-4}, Role.BASELINE))
    # the sampler may propose the baseline's settings again: that trial is not the baseline
    again = SimpleNamespace(trial_id="again", config=with_role({"lr_g": 2e-4}, Role.SEARCH))
    actions = feed(scheduler, [(good, 1.0), (worse, 5.0), (baseline, 9.0), (again, 9.5)])
    # the worse trials are cut at the first rung; the baseline, worse still, goes on
    assert actions == [TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.CONTINUE,
                       TrialScheduler.STOP]
    assert scheduler.baseline_id == "base"
