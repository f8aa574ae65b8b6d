"""The trial's scoring rules, on evaluations made up here: what Tune, ASHA and Optuna see."""

import dataclasses
import pytest

from gan_search.core.settings import SharedSettings, objectives_of
from gan_search.hpo.trainable import _progress_metrics, ended_scores, new_progress
from gan_search.hpo.strategies.tuning import CollapseStopper

RULE = SharedSettings(base={}, collapse_threshold=0.9, collapse_patience=2)


def evaluations(*pairs):
    """Feed (fid_lite, collapse) evaluations at steps 100, 200, ... through the trial's rule."""
    progress = new_progress()
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
    # each objective's own best so far; the best FID-lite evaluation's collapse beside it
    assert third["score_collapse"] == 0.1 and third["collapse_at_best"] == 0.2
    assert third["score_kid"] == 0.05 and third["kid_best"] == 0.05


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


@pytest.mark.parametrize("objectives", [["fid_lite"], ["kid"], ["collapse", "fid_lite"]])
def test_every_objective_is_reported_by_every_trial_and_score_is_the_first(objectives):
    rule = dataclasses.replace(RULE, objectives=objectives_of(objectives))
    progress = new_progress()
    for fid, collapse, kid in ((9.0, 0.4, 0.2), (6.0, 0.5, 0.3)):
        metrics = _progress_metrics({"fid_lite": fid, "collapse": collapse, "kid": kid,
                                     "fid_lite_extractor": "x"}, progress, 100, rule)
    best = {"fid_lite": 6.0, "collapse": 0.4, "kid": 0.2}
    assert metrics["score"] == best[objectives[0]]
    ended = ended_scores(rule)  # a diverged or failed trial
    for name in ("fid_lite", "collapse", "kid"):
        assert metrics[f"score_{name}"] == best[name] and f"score_{name}" in ended
    assert ended["score"] == ended[f"score_{objectives[0]}"]
