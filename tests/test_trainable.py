"""The trial's scoring rules, on evaluations made up here: what Tune, ASHA and Optuna see."""

import math

import pytest

from gan_search.search import CollapseStopper
from gan_search.trainable import _progress_metrics

RULE = {"collapse_threshold": 0.9, "collapse_patience": 2}


def evaluations(*pairs):
    """Feed (fid_lite, collapse) evaluations at steps 100, 200, ... through the trial's rule."""
    progress = {"best_fid": math.inf, "best_step": 0, "best_collapse": 1.0, "best_kid": math.inf,
                "streak": 0}
    out = []
    for i, (fid, collapse) in enumerate(pairs, 1):
        scores = {"fid_lite": fid, "collapse": collapse, "kid": fid / 100,
                  "fid_lite_extractor": "randconv32-v1"}
        out.append(_progress_metrics(scores, progress, 100 * i, RULE))
    return out


def test_a_trial_scores_its_best_evaluation_so_far_not_its_latest():
    first, second, third = evaluations((5.0, 0.2), (9.0, 0.3), (7.0, 0.1))
    assert [m["score"] for m in (first, second, third)] == [5.0, 5.0, 5.0]
    assert third["best_step"] == 100 and third["fid_lite"] == 7.0  # latest kept beside it
    assert third["score_collapse"] == 0.2  # the collapse of the best evaluation


def test_a_collapsed_trial_reports_the_evaluation_that_declared_it():
    """Optuna must learn that the region ends badly: the collapsing evaluation's FID-lite,
    not the trial's earlier best."""
    first, second, third = evaluations((5.0, 0.5), (9.0, 0.95), (12.0, 0.97))
    assert not second["collapsed"] and second["score"] == 5.0  # one evaluation above: a streak
    assert third["collapsed"] and third["collapse_streak"] == 2
    assert third["score"] == 12.0 and third["score_collapse"] == 0.97


def test_the_collapse_streak_restarts_below_the_threshold():
    metrics = evaluations((5.0, 0.95), (6.0, 0.5), (7.0, 0.95))
    assert [m["collapse_streak"] for m in metrics] == [1, 0, 1]
    assert not any(m["collapsed"] for m in metrics)


@pytest.mark.parametrize("result,stop", [({"collapsed": True}, True), ({"collapsed": False}, False),
                                         ({}, False)])
def test_the_collapse_stopper_stops_exactly_the_collapsed_trials(result, stop):
    assert CollapseStopper()("trial", result) is stop
    assert CollapseStopper().stop_all() is False
