"""A search under a budget (``gan-search run --budget N``): the plan (core/budget.py), its
successive halving on Ray Tune's HyperBandScheduler (hpo/strategies/halving.py), the baseline kept
to the last rung, the top rung on fresh seeds, the iterations counted, the generator
delivered."""

import json
from pathlib import Path

import pytest
import torch

from helpers import tiny_space, write_space
from recorded import Results
from gan_search.app import run_search
from gan_search.core.budget import Plan, halving_plan, single_rung_plan
from gan_search.core.config import search_config
from gan_search.core.errors import ConfigError
from gan_search.hpo.outcome.report import outcome_lines

BUDGETED = tiny_space(
    parameters={"lr_g": {"kind": "loguniform", "low": 1e-4, "high": 1e-2},
                "lr_d": {"kind": "loguniform", "low": 1e-4, "high": 1e-2}},
    budget={"trials": 4, "iters": 40, "eval_every": 20, "total": 480},
    strategy="tpe-asha", scheduler={"grace_period": 1, "reduction_factor": 2},
    baseline={"name": "paper", "values": {"lr_g": 2e-4, "lr_d": 2e-4},
              "sources": {"lr_g": "t", "lr_d": "t"}})


def test_a_halving_plan_spends_the_budget_on_a_long_final_length():
    plan = halving_plan(30000, first=400, eta=2, breadth=7, seeds=1, grain=400)
    # 8 proposed arms halve at 400, 800, 1600 (the baseline beside them), then the winner
    # and the baseline train the final length from scratch on one fresh seed each; what
    # the rounding of the final length leaves buys one more first-rung arm
    assert plan == Plan(30000, (400, 800, 1600), (9, 4, 2), 10800, 1, True)
    assert plan.search_iters == 9 * 400 + 4 * 400 + 2 * 800 + 1600
    assert plan.iters == plan.search_iters + 2 * 10800 <= 30000
    assert 30000 - plan.iters < 400  # nothing left that would buy another arm
    longer = Plan(30000, plan.rungs, plan.arms, plan.final + 400, 1, True)
    assert longer.iters > 30000  # the final length is the longest the budget pays for
    assert plan.describe() == [
        "budget 30,000 iterations: 30,000 planned (8,400 search, 21,600 top rung), final "
        "length 10,800 iterations (36% of the budget)",
        "  rung 1: 9 proposed configurations and the baseline train to 400 iterations "
        "(4,000 iterations); the best 4 go on",
        "  rung 2: 4 proposed configurations and the baseline train to 800 iterations "
        "(2,000 iterations); the best 2 go on",
        "  rung 3: 2 proposed configurations and the baseline train to 1,600 iterations "
        "(2,400 iterations); the best 1 goes on",
        "  rung 4 (final length): the winner and the baseline trained from scratch for 10,800 "
        "iterations on 1 fresh seed each (21,600 iterations); the winner's best long-trained "
        "generator is delivered"]


def test_a_single_rung_plan_and_a_budget_too_small_say_what_they_are():
    plan = single_rung_plan(30000, arms=7, seeds=1, grain=400)  # PBT: members the final length
    assert plan.rungs == (2800,) and plan.final == 2800 and plan.trials == 8
    assert plan.iters == 10 * 2800 and not plan.halving
    with pytest.raises(ConfigError, match=r"--budget 5000: too small .* give at least 14400"):
        halving_plan(5000, first=400, eta=2, breadth=7, seeds=1, grain=400)


def test_budget_options_are_checked_together(tmp_path):
    spec = write_space(BUDGETED, tmp_path)
    with pytest.raises(ConfigError, match="--budget 480 with --trials/--iters"):
        search_config(spec, budget=480, trials=3)
    config = search_config(spec)  # the space's budget.total
    assert config.plan is not None and config.plan.total == 480
    assert search_config(spec, trials=3).plan is None  # a trial count: no plan
    assert config.trials == config.plan.trials and config.iters == config.plan.rungs[-1]
    assert config.confirm == 1 and config.confirm_iters == config.plan.final


def test_a_budget_search_halves_keeps_the_baseline_and_delivers_a_long_trained_winner(tmp_path):
    config = search_config(write_space(BUDGETED, tmp_path), runs_dir=str(tmp_path),
                           name="budget-test", budget=480)
    plan = config.plan
    assert plan == Plan(480, (20, 40), (4, 2), 160, 1, True)
    lines, results = [], Results()
    outcome = run_search(config, log=lines.append, track=False, callbacks=[results])
    assert all(line in lines for line in plan.describe())  # the plan, as it starts
    rows = outcome.rows
    assert len(rows) == plan.trials
    reached = {r.trial_id: r.metrics["step"] for r in rows}
    base = outcome.baseline
    assert reached[base.trial_id] == 40  # the baseline reaches the last rung, never stopped
    proposed = [r for r in rows if not r.baseline]
    assert sorted(reached[r.trial_id] for r in proposed) == [20, 20, 40, 40]
    # a rung ends when every trial of the plan has reached it: no trial trains on from the
    # first rung before all five have reported there
    order = [(t, r["step"]) for t, r in results.seen if "fid_lite" in r]
    assert max(order.index((t, 20)) for t in reached) < min(
        i for i, (t, step) in enumerate(order) if step == 40)
    # the two that went on were the best two at the first rung
    at_first = {t: r["score"] for t, r in results.seen if r.get("step") == 20}
    first = sorted(proposed, key=lambda r: at_first[r.trial_id])
    assert {r.trial_id for r in first[:2]} == {r.trial_id for r in proposed if reached[r.trial_id] == 40}
    # the top rung: the last rung's winner and the baseline, from scratch, the final length
    assert [c.baseline for c in outcome.confirmation].count(True) == 1
    winner = min((r for r in proposed if reached[r.trial_id] == 40), key=lambda r: r.score)
    assert {c.trial_id for c in outcome.confirmation} == {winner.trial_id, base.trial_id}
    assert [r.metrics["step"] for r in outcome.confirm_rows] == [160, 160]
    assert all(r.metrics["resumed_from_step"] == 0 for r in outcome.confirm_rows)
    assert outcome.spent == plan.iters and abs(outcome.spent - 480) <= 0.05 * 480
    # the delivered generator: the confirmed winner's run, loadable, with what it is
    delivered = Path(outcome.delivered)
    about = json.loads((delivered / "delivered.json").read_text())
    assert about["run"] == outcome.best.trial_id and about["step"] == 160
    assert about["baseline"] == outcome.confirmation[0].baseline
    state = torch.load(delivered / "generator.pt", weights_only=True)
    # its best evaluation of the run that trained the final length
    assert state["step"] == about["best_step"] and state["config"]["iters"] == 160
    text = "\n".join(outcome_lines(outcome, config, tmp_path / "leaderboard.json"))
    assert f"budget: trained {plan.iters} of 480" in text.replace(",", "")
    assert "delivered: " in text and str(delivered) in text
