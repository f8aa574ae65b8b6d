"""Winners checked over seeds: which configurations are confirmed, and how they rank."""

import math

from gan_search.search.confirm import (Candidate, assign_runs, fresh_seeds, pick_candidates, ranked,
                                table, trial_configs)
from gan_search.search.results import TrialRow


def row(trial_id, status, score, baseline=False):
    return TrialRow(trial_id, status, {"lr_g": float(score) / 1000}, {"score": score},
                    baseline=baseline)


def test_the_top_k_that_trained_to_an_end_and_the_baseline_are_confirmed():
    rows = [row("a", "finished", 9.0), row("b", "stopped", 3.0), row("c", "diverged", 1.0),
            row("d", "finished", 5.0), row("base", "finished", 20.0, baseline=True),
            row("e", "collapsed", 2.0)]
    picked = pick_candidates(rows, 2)
    assert [c.trial_id for c in picked] == ["b", "d", "base"]  # never diverged or collapsed
    assert picked[-1].baseline
    assert [c.trial_id for c in pick_candidates(rows, 5)] == ["b", "d", "a", "base"]


def test_every_candidate_gets_the_same_fresh_seeds():
    candidates = [Candidate("a", {"lr_g": 0.1}), Candidate("b", {"lr_g": 0.2}, baseline=True)]
    configs = trial_configs(candidates, fresh_seeds(2))
    assert [(c["of"], c["settings"]["seed"]) for c in configs] == \
        [("a", 1001), ("a", 1002), ("b", 1001), ("b", 1002)]
    assert all(c["settings"]["lr_g"] in (0.1, 0.2) for c in configs)


def test_ranking_is_by_the_mean_over_fresh_seeds_not_the_lucky_search_run():
    lucky, steady = Candidate("lucky", {}), Candidate("steady", {})
    runs = [TrialRow("r1", "finished", {"confirm": {"of": "lucky", "settings": {"seed": 1001}}},
                     {"score": 9.0}),
            TrialRow("r2", "finished", {"confirm": {"of": "lucky", "settings": {"seed": 1002}}},
                     {"score": 3.0}),
            TrialRow("r3", "finished", {"confirm": {"of": "steady", "settings": {"seed": 1001}}},
                     {"score": 5.0}),
            TrialRow("r4", "diverged", {"confirm": {"of": "steady", "settings": {"seed": 1002}}},
                     {"score": math.inf})]
    assign_runs([lucky, steady], runs)
    assert lucky.mean == 6.0 and math.isclose(lucky.spread, math.sqrt(18))
    assert steady.scores == [5.0] and steady.mean == 5.0  # a run without a score is left out
    assert [c.trial_id for c in ranked([lucky, steady])] == ["steady", "lucky"]
    text = table([lucky, steady], "fid_lite")
    assert text.splitlines()[1].split()[:2] == ["1", "steady"] and "diverged" in text
