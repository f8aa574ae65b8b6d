"""Winners checked over seeds: which configurations are confirmed, and how they rank."""

import json
import math

from gan_search.hpo.outcome.confirm import Candidate, assign_runs, fresh_seeds, pick_candidates, ranked, table, trial_configs
from gan_search.core.results import TrialRow


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


def test_a_baseline_that_ranked_first_does_not_take_a_proposals_place():
    """The baseline is the reference, confirmed beside the k best proposals: when it ranked
    first (a budget's last rung won by the baseline), the best proposal is still confirmed
    and the top rung trains the two the plan paid for."""
    rows = [row("base", "finished", 1.0, baseline=True), row("a", "finished", 4.0),
            row("b", "stopped", 3.0)]
    assert [c.trial_id for c in pick_candidates(rows, 1)] == ["b", "base"]
    assert [c.trial_id for c in pick_candidates(rows[:1], 1)] == ["base"]


def test_every_candidate_gets_the_same_fresh_seeds():
    candidates = [Candidate("a", {"lr_g": 0.1}), Candidate("b", {"lr_g": 0.2}, baseline=True)]
    configs = trial_configs(candidates, fresh_seeds(2))
    assert [(c["of"], c["settings"]["seed"]) for c in configs] == \
        [("a", 1001), ("a", 1002), ("b", 1001), ("b", 1002)]
    assert all(c["settings"]["lr_g"] in (0.1, 0.2) for c in configs)


def confirming(of, seed, status, score):
    return TrialRow(f"{of}-{seed}", status, {"confirm": {"of": of, "settings": {"seed": seed}}},
                    {"score": score})


def test_ranking_is_by_the_mean_over_fresh_seeds_not_the_lucky_search_run():
    lucky, steady = Candidate("lucky", {}), Candidate("steady", {})
    assign_runs([lucky, steady], [confirming("lucky", 1001, "finished", 9.0),
                                  confirming("lucky", 1002, "finished", 3.0),
                                  confirming("steady", 1001, "finished", 5.0),
                                  confirming("steady", 1002, "finished", 6.0)])
    assert lucky.mean == 6.0 and math.isclose(lucky.spread, math.sqrt(18))
    assert steady.mean == 5.5
    assert [c.trial_id for c in ranked([lucky, steady])] == ["steady", "lucky"]
    text = table([lucky, steady], "fid_lite")
    # 5.5 against 6.0 with seeds 3 apart: within noise, so shown as a tie, steady first
    assert [line.split()[:2] for line in text.splitlines()[1:3]] == [["1=", "steady"],
                                                                    ["1=", "lucky"]]
    assert "tied" in text.splitlines()[-1]


def test_a_fresh_seed_run_that_broke_counts_as_the_worst_value():
    """One good run and one that diverged (or collapsed with a fair-looking score, or failed
    without any) is not ranked on the good run: the broken one counts as the worst value."""
    steady = Candidate("steady", {}, worst=100.0)
    fragile = [Candidate(f"fragile-{how}", {}, worst=100.0)
               for how in ("diverged", "collapsed", "failed")]
    assign_runs([steady, *fragile], [
        confirming("steady", 1001, "finished", 6.0), confirming("steady", 1002, "finished", 7.0),
        *[run for c, (status, score) in zip(fragile, [("diverged", 100.0), ("collapsed", 2.0),
                                                       ("failed", math.inf)])
          for run in (confirming(c.trial_id, 1001, "finished", 1.0),
                      confirming(c.trial_id, 1002, status, score))]])
    for candidate in fragile:
        assert candidate.scores == [1.0, 100.0] and candidate.mean == 50.5 and candidate.broken == 1
    assert ranked([*fragile, steady])[0] is steady
    text = table([steady, *fragile], "fid_lite")
    assert "diverged" in text and "counts as 100 in its mean" in text


def test_a_member_that_copied_another_at_its_last_step_is_not_confirmed_twice():
    """A PBT member that took another's weights at its last evaluation trained nothing of its
    own: its replay is the other's (its new settings come into effect at the end)."""
    start = {"step": 0, "values": {"lr_g": 1e-3}}
    donor = TrialRow("donor", "finished", {"lr_g": 1e-3, "g_width": 8},
                     {"score": 2.0, "step": 100, "schedule": json.dumps([start])})
    copier = TrialRow("copier", "finished", {"lr_g": 1.2e-3, "g_width": 8},
                      {"score": 2.0, "step": 100, "schedule": json.dumps(
                          [start, {"step": 100, "values": {"lr_g": 1.2e-3}}])})
    earlier = TrialRow("earlier", "finished", {"lr_g": 1.2e-3, "g_width": 8},
                       {"score": 2.5, "step": 100, "schedule": json.dumps(
                           [start, {"step": 60, "values": {"lr_g": 1.2e-3}}])})
    picked = [c.trial_id for c in pick_candidates([donor, copier, earlier], 3)]
    assert picked == ["donor", "earlier"]  # a copy at step 60 trained on: a run of its own


def test_under_a_budget_only_trials_that_reached_the_last_rung_are_confirmed():
    rows = [TrialRow("short", "stopped", {"lr_g": 0.1}, {"score": 1.0, "step": 20}),
            TrialRow("long", "finished", {"lr_g": 0.2}, {"score": 3.0, "step": 40})]
    assert [c.trial_id for c in pick_candidates(rows, 1, reached=40)] == ["long"]
    assert [c.trial_id for c in pick_candidates(rows, 1)] == ["short"]
