"""Ties: scores within noise of each other are shown as tied, in the leaderboard, the
confirmation table and the best-vs-baseline line."""

import math

from gan_search.core.results import SearchOutcome, TrialRow
from gan_search.core.vocabulary import Status
from gan_search.hpo.outcome.noise import rank_labels, tied
from gan_search.hpo.outcome.report import leaderboard, versus_baseline


def test_values_within_two_standard_deviations_of_the_difference_are_tied():
    assert tied(5.0, 0.2, 5.5, 0.2)  # 0.5 <= 2 * 0.283
    assert not tied(5.0, 0.2, 5.6, 0.2)
    assert not tied(5.0, math.nan, 5.0, 0.2)  # unknown noise: never a tie
    # a group is the values tied with its first one, not a chain of neighbours
    assert rank_labels([(5.0, 0.2), (5.3, 0.2), (5.8, 0.2), (9.0, 0.2)]) == ["1=", "1=", "3", "4"]


def trial(name, score, noise, status=Status.FINISHED, baseline=False):
    return TrialRow(name, status, {"lr_g": 1e-3},
                    {"score": score, "score_fid_lite": score, "fid_lite_std_at_best": noise,
                     "best_step": 400, "step": 1200}, baseline=baseline)


def test_two_generators_within_noise_are_reported_tied():
    rows = [trial("b", 5.1, 0.2), trial("c", 9.0, 0.3), trial("a", 5.0, 0.2, baseline=True)]
    outcome = SearchOutcome("s", "/x", rows, interrupted=False, seconds=1.0, score_keys=["score"])
    lines = leaderboard(outcome, ["lr_g"]).splitlines()
    assert [line.split()[:2] for line in lines[1:4]] == [["1=", "a"], ["1=", "b"], ["3", "c"]]
    assert "5.000 ± 0.200" in lines[1] and "tied" in lines[-1]
    line = versus_baseline(outcome, "dcgan-paper", 1200)
    assert "the baseline dcgan-paper (trial a) is the best trial" in line
    rows[2].metrics.update(score=5.5, score_fid_lite=5.5)  # 0.4 apart: still within noise
    assert "within noise, a tie" in versus_baseline(outcome, "dcgan-paper", 1200)
    rows[2].metrics.update(score=7.0, score_fid_lite=7.0)  # 1.9 apart: 6.7 standard deviations
    line = versus_baseline(outcome, "dcgan-paper", 1200)
    assert "best found, trial b" in line and "beyond noise (the difference is 6.7x" in line


def test_scores_without_noise_are_ranked_as_before():
    """A search whose first objective is not FID-lite (or records from before the noise was
    measured) ranks plainly: no ties claimed without a noise."""
    rows = [trial("a", 5.0, 0.2), trial("b", 5.1, 0.2)]
    for row in rows:
        row.metrics["score"] = row.metrics["score_fid_lite"] / 10  # ranked by another objective
    outcome = SearchOutcome("s", "/x", rows, interrupted=False, seconds=1.0, score_keys=["score"])
    lines = leaderboard(outcome, ["lr_g"]).splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["1", "2"] and "tied" not in lines[-1]
