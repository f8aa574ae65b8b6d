"""The search: space translation, a real local Ray Tune + Optuna search on `smoke`,
statuses, the collapse stopper, and bad input at the command line."""

import json
import math
from pathlib import Path

import optuna
import pytest
from ray.tune.search.optuna import OptunaSearch

from helpers import cli, interrupt, search_runs, tiny_space, write_space
from gan_search.app import run_search
from gan_search.core.config import search_config
from gan_search.core.errors import ConfigError
from gan_search.core.results import TrialRow, pareto_front
from gan_search.core.results import trial_status
from gan_search.core.space import parse_space
from gan_search.hpo.outcome.report import leaderboard
from gan_search.hpo.strategies.tuning import tune_space

SPACE = tiny_space(
    parameters={
        "g_width": {"kind": "int", "low": 4, "high": 8},
        "d_width": {"kind": "int", "low": 4, "high": 16, "log": True},
        "lr_g": {"kind": "loguniform", "low": 1e-4, "high": 1e-2},
        "beta1": {"kind": "uniform", "low": 0.1, "high": 0.8},
        "kernel_size": {"kind": "choice", "values": [4, 5]},
    },
    fixed={"z_dim": 8, "batch_size": 32},
    budget={"trials": 4, "eval_samples": 100},
    strategy="tpe-asha",
    scheduler={"grace_period": 1, "reduction_factor": 2, "collapse_threshold": 0.9},
    resources={"cpu": 0.5})


def test_inclusive_yaml_bounds_survive_the_tune_to_optuna_conversion():
    spec = parse_space(SPACE, "space.yaml")
    distributions = OptunaSearch.convert_search_space(tune_space(dict(spec.params)))
    assert distributions["g_width"] == optuna.distributions.IntDistribution(4, 8)
    assert distributions["d_width"] == optuna.distributions.IntDistribution(4, 16, log=True)
    assert distributions["lr_g"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert distributions["beta1"] == optuna.distributions.FloatDistribution(0.1, 0.8)
    assert distributions["kernel_size"] == optuna.distributions.CategoricalDistribution([4, 5])
    # and sampling reaches both inclusive ends
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {study.ask({"g_width": distributions["g_width"]}).params["g_width"] for _ in range(200)}
    assert seen == {4, 5, 6, 7, 8}


def test_set_pins_a_setting_and_removes_it_from_the_search():
    spec = parse_space(SPACE, "space.yaml")
    config = search_config(spec, sets={"lr_g": "0.003"}, name="x")
    assert "lr_g" not in config.searched and config.fixed == {"lr_g": 0.003}
    assert config.trial_config({"g_width": 5}).lr_g == 0.003


def test_set_image_size_changes_what_the_data_is_decoded_at_and_what_trials_build():
    """--set image_size=32 on a 16 px space: the data loads at 32 px and every trial's models
    make 32 px images (before, the data stayed at 16 px and every trial failed)."""
    config = search_config(parse_space(SPACE, "space.yaml"), sets={"image_size": "32"}, name="x")
    assert parse_space(SPACE, "space.yaml").data.size == 16
    assert config.image_size == 32 and config.trial_config({"g_width": 5}).image_size == 32


@pytest.mark.parametrize("kwargs,message", [
    ({"sets": {"lr": "1"}}, "unknown setting 'lr'"),
    ({"sets": {"g_width": "wide"}}, "g_width='wide' is not a valid int"),
    ({"trials": 0}, "--trials 0: must be >= 1"),
    ({"sets": {"iters": "5"}}, "use --iters"),
])
def test_search_config_refuses_bad_overrides(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        search_config(parse_space(SPACE, "space.yaml"), name="x", **kwargs)


def test_trial_status_mapping():
    assert trial_status({"status": "finished"}, None) == "finished"
    assert trial_status({"status": "running", "step": 20}, None) == "stopped"
    assert trial_status({"status": "collapsed"}, None) == "collapsed"
    assert trial_status({"status": "diverged"}, None) == "diverged"
    assert trial_status({"status": "finished"}, RuntimeError("x")) == "failed"
    assert trial_status({}, None) == "failed"


def test_pareto_front_marks_non_dominated_trials():
    rows = [TrialRow(str(i), "finished", {}, {"score": f, "score_collapse": c})
            for i, (f, c) in enumerate([(1, 0.9), (2, 0.5), (3, 0.1), (3, 0.6), (4, 0.2)])]
    pareto_front(rows, ["score", "score_collapse"])
    assert [r.pareto for r in rows] == [True, True, True, False, False]


def test_the_search_builds_asha_with_a_rung_per_evaluation_and_seeded_tpe():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from gan_search.hpo.strategies.sampled import build_sampler, build_scheduler

    spec = parse_space({**SPACE, "budget": {"trials": 9, "iters": 120, "eval_every": 20}}, "s.yaml")
    scheduler = build_scheduler(search_config(spec, name="x"))
    assert isinstance(scheduler, ASHAScheduler)
    assert scheduler._time_attr == "training_iteration" and scheduler._max_t == 6
    assert [milestone for milestone, _ in scheduler._brackets[0]._rungs] == [4, 2, 1]
    assert isinstance(build_scheduler(search_config(spec, name="x", strategy="tpe")), FIFOScheduler)
    assert isinstance(build_scheduler(search_config(spec, name="x", strategy="random")), FIFOScheduler)
    sampler = build_sampler(search_config(spec, name="x", seed=7))
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._multivariate and sampler._n_startup_trials == 3
    gp = build_sampler(search_config(spec, name="x", strategy="gp-asha", seed=7))
    assert isinstance(gp, optuna.samplers.GPSampler) and gp._n_startup_trials == 3
    random = build_sampler(search_config(spec, name="x", strategy="random-asha"))
    assert isinstance(random, optuna.samplers.RandomSampler)
    assert isinstance(build_scheduler(search_config(spec, name="x", strategy="random-asha")),
                      ASHAScheduler)


@pytest.fixture(scope="module")
def smoke_search(tmp_path_factory):
    """One real search (local Ray, Optuna TPE, ASHA) on a tiny synthetic space; one trial
    at a time, so that ASHA's decisions follow from the (seeded) scores alone."""
    runs = tmp_path_factory.mktemp("runs")
    spec = write_space({**SPACE, "concurrency": 1}, runs, "space")
    # seed 3: TPE's seeded start-up draws two learning rates so low that those trials are
    # far behind (FID-lite about 420-450 against 240-260) at the first rung
    config = search_config(spec, runs_dir=str(runs), name="smoke-test", seed=3,
                           confirm=0)
    lines = []
    outcome = run_search(config, log=lines.append)
    return config, outcome, lines


def test_smoke_search_ends_every_trial_with_a_score_or_a_status(smoke_search):
    config, outcome, lines = smoke_search
    assert not outcome.interrupted and len(outcome.rows) == 4
    assert len({r.trial_id for r in outcome.rows}) == 4
    for row in outcome.rows:
        assert row.status in ("finished", "stopped", "collapsed", "diverged"), row.error
        assert math.isfinite(row.score) and row.metrics["fid_lite_extractor"] == "randconv32-v1"
        assert row.metrics["best_step"] in (20, 40)
    assert any(r.status == "finished" for r in outcome.rows)
    # ASHA ran: a trial worse than the median at the first rung stopped there
    stopped = [r for r in outcome.rows if r.status == "stopped"]
    assert stopped and all(r.metrics["step"] == 20 for r in stopped)
    # the live view printed a line per start and per end, not Ray's tables
    assert sum("started" in line for line in lines) == 4
    assert sum("4/4 ended" in line for line in lines) == 1
    # the search's progress board (a Ray actor, a process) ended with it
    from ray._private import state

    boards = [a for a in state.actors().values() if a["ActorClassName"] == "ProgressBoard"]
    assert boards and all(a["State"] == "DEAD" for a in boards), boards


def test_each_trial_trains_with_its_sampled_values(smoke_search):
    config, outcome, _ = smoke_search
    lrs = set()
    for row in outcome.rows:
        m, p = row.metrics, row.params
        trial = config.trial_config(p)
        assert m["opt_lr_g"] == pytest.approx(p["lr_g"]) and m["opt_beta1"] == pytest.approx(p["beta1"])
        assert m["opt_lr_d"] == trial.lr_d and m["opt_beta2"] == trial.beta2  # fixed values too
        assert m["opt_beta1_d"] == pytest.approx(p["beta1"]) and m["opt_beta2_d"] == trial.beta2
        # the models were built with the sampled architecture
        assert m["model_g_width"] == p["g_width"] and m["model_d_width"] == p["d_width"]
        assert m["model_kernel_size_g"] == m["model_kernel_size_d"] == p["kernel_size"]
        assert m["model_z_dim"] == 8
        assert 4 <= p["g_width"] <= 8 and p["kernel_size"] in (4, 5)
        lrs.add(p["lr_g"])
    assert len(lrs) == 4  # every trial got its own value


def test_optuna_is_tpe_and_learns_what_each_trial_really_scored(smoke_search):
    """A trial that trained its whole budget is COMPLETE with its score; one ASHA stopped is
    PRUNED with the score it had at each evaluation it reached, not COMPLETE with an early
    score that TPE would take for a full-length one."""
    _, outcome, _ = smoke_search
    study = outcome.study
    assert study.user_attrs["sampler"] == "TPESampler" and study.user_attrs["seed"] == 3
    told = {t.params["lr_g"]: t for t in study.trials}
    assert len(told) == len(outcome.rows)
    states = optuna.trial.TrialState
    for row in outcome.rows:
        trial = told[row.params["lr_g"]]
        if row.status == "stopped":
            assert trial.state == states.PRUNED
            steps = trial.intermediate_values
            assert max(steps) == row.metrics["training_iteration"] < 2  # stopped at rung 1
            assert steps[max(steps)] == row.metrics["score"]
        else:
            assert row.status == "finished" and trial.state == states.COMPLETE
            assert trial.value == row.metrics["score"]
    assert {r.status for r in outcome.rows} == {"stopped", "finished"}


def test_leaderboard_lists_best_first_with_a_checkpoint(smoke_search, tmp_path):
    config, outcome, _ = smoke_search
    table = leaderboard(outcome, sorted(config.searched))
    assert table.splitlines()[0].split()[:4] == ["rank", "trial", "status", "FID-lite"]
    assert outcome.best.trial_id in table.splitlines()[1]
    assert Path(outcome.best.checkpoint, "samples.png").is_file()
    assert Path(outcome.best.checkpoint, "trainer.pt").is_file()
    # the leaderboard's first row is the trial with the lowest score
    assert outcome.best.score == min(r.score for r in outcome.rows)


def test_collapsed_trials_are_stopped_by_the_stopper_and_told_to_optuna(tmp_path):
    """With a threshold every sample set exceeds and patience 2, each trial is declared
    collapsed at its second evaluation; the collapse stopper ends it there (not at 100),
    and Optuna receives that evaluation's FID-lite."""
    raw = {**SPACE, "budget": {"trials": 2, "iters": 100, "eval_every": 20, "eval_samples": 100},
           "strategy": "tpe", "scheduler": {"collapse_threshold": 0.01, "collapse_patience": 2}}
    config = search_config(write_space(raw, tmp_path, "c"), runs_dir=str(tmp_path),
                           name="collapse-test", confirm=0)
    outcome = run_search(config, log=lambda line: None)
    assert [r.status for r in outcome.rows] == ["collapsed", "collapsed"]
    assert all(r.metrics["step"] == 40 and r.metrics["collapse_streak"] == 2 for r in outcome.rows)
    assert all(r.metrics["score"] == r.metrics["fid_lite"] for r in outcome.rows)
    told = sorted(t.value for t in outcome.study.trials)
    assert told == sorted(r.metrics["fid_lite"] for r in outcome.rows)
    assert {t.user_attrs["status"] for t in outcome.study.trials} == {"collapsed"}
    # two trials are too few for importances: no plot of them either, the history all the same
    names = {p.name for p in outcome.plots}
    assert not outcome.importances and "param_importances.png" not in names
    assert "optimization_history.png" in names


def test_a_diverged_trial_scores_worst_and_is_recorded_as_diverged(tmp_path):
    """Adam with beta2 = 0 and a large step diverges (non-finite losses) within 20 steps."""
    from gan_search.core.vocabulary import DIVERGED_SCORE
    from gan_search.tracking import MESSAGE_TAG, STATUS_TAG

    raw = {**SPACE, "budget": {"trials": 2, "iters": 60, "eval_every": 20, "eval_samples": 100},
           "fixed": {"z_dim": 16, "batch_size": 32, "g_width": 8, "d_width": 8, "beta1": 0.9,
                     "beta2": 0.0, "lr_g": 0.5, "lr_d": 0.5, "leaky_slope": 0.0},
           "parameters": {"label_smoothing": {"kind": "uniform", "low": 0.0, "high": 0.1}}}
    config = search_config(write_space(raw, tmp_path, "d"), runs_dir=str(tmp_path),
                           name="diverge-test", confirm=0)
    outcome = run_search(config, log=lambda line: None)
    assert [r.status for r in outcome.rows] == ["diverged", "diverged"]
    for row in outcome.rows:
        assert row.score == DIVERGED_SCORE and row.metrics["step"] == 20
        assert "non-finite loss" in row.error
    assert outcome.best is None  # never a diverged trial
    told = [t.value for t in outcome.study.trials]
    assert told == [DIVERGED_SCORE, DIVERGED_SCORE]  # COMPLETE, worst: TPE learns from it
    assert [t.user_attrs["status"] for t in outcome.study.trials] == ["diverged", "diverged"]
    _, _, runs = search_runs(str(tmp_path), "diverge-test")
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FAILED" and run.data.tags[STATUS_TAG] == "diverged"
        assert "non-finite loss" in run.data.tags[MESSAGE_TAG]


def test_ctrl_c_then_resume_runs_each_planned_trial_exactly_once(tmp_path):
    """Ctrl-C in the search, --resume without --name (the space's latest search in the
    shared --storage folder), Ctrl-C in the confirmation, --resume again: every planned
    trial and confirmation run exactly once; the Optuna study, in the storage
    --optuna-storage names, keeps the trials from before, each once."""
    import sys

    storage = tmp_path / "shared"  # what a cluster's NFS folder would be
    script = Path(sys.executable).parent / "gan-search"
    studies = f"sqlite:///{storage / 'studies.db'}"  # a storage the user names (a cluster's)
    common = ["--space", "smoke", "--trials", "5", "--concurrency", "1", "--iters", "40",
              "--runs-dir", str(tmp_path / "runs"), "--storage", str(storage),
              "--optuna-storage", studies, "--confirm", "1", "--confirm-seeds", "2"]
    output = interrupt([str(script), "run", *common, "--name", "smoke-rs"],
                       lambda line, seen: "2/5 ended" in line)
    assert f"--storage {storage} --optuna-storage {studies} --resume --name smoke-rs" in output
    board = storage / "smoke-rs" / "leaderboard.json"
    assert not (tmp_path / "runs" / "tune").exists()  # Tune's state went to --storage only
    before = {t["trial_id"]: t for t in json.loads(board.read_text())["trials"]}
    ended = {k: t for k, t in before.items() if t["status"] != "interrupted"}
    assert 2 <= len(ended) < 5 and json.loads(board.read_text())["confirmation"] is None

    # no --name: the latest search in --storage; stopped again during the confirmation
    output = interrupt([str(script), "run", *common, "--resume"], lambda line, seen: any(
        "confirming" in s for s in seen) and "1/" in line and "ended (1 " in line)
    assert "resuming search smoke-rs" in output
    confirmed_before = [t for t in json.loads(board.read_text())["confirm_trials"]
                        if t["status"] != "interrupted"]
    assert len(confirmed_before) >= 1

    resumed = cli("run", *common, "--resume", "--name", "smoke-rs")  # in this process: no signal
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # the summary a user reads: the baseline row, the confirmation table, best vs baseline,
    # and what mattered
    out = resumed.stdout
    assert "(baseline)  " in out and "mean fid_lite ± std over fresh seeds" in out
    assert "vs the baseline dcgan-paper" in out or "dcgan-paper (trial" in out
    assert "at the same budget per trial (40 iterations)" in out
    assert "what mattered (Optuna importances): " in out
    summary = json.loads(board.read_text())
    after = summary["trials"]
    assert len(after) == 5 and len({t["trial_id"] for t in after}) == 5
    assert all(t["status"] in ("finished", "stopped", "collapsed", "diverged") for t in after)
    for trial in after:  # trials that had ended were not run again
        if trial["trial_id"] in ended:
            assert trial["metrics"]["score"] == ended[trial["trial_id"]]["metrics"]["score"]
            assert trial["metrics"]["time_total_s"] == ended[trial["trial_id"]]["metrics"]["time_total_s"]
    assert len(list((storage / "smoke-rs").glob("trial_*"))) == 5
    # the confirmation: every candidate with both fresh seeds, each run once
    confirm_trials = summary["confirm_trials"]
    # and that comparison says plainly that it is not one at equal compute
    spent = sum(t["metrics"]["step"] for t in [*after, *confirm_trials])
    assert f"not at equal compute: the search trained {spent:,} iterations in all, " \
           f"{spent / 40:.1f}x the baseline's one trial" in out
    assert len(confirm_trials) == 2 * len(summary["confirmation"]) == \
        len(list((storage / "smoke-rs" / "confirm").glob("trial_*")))
    assert all(sorted(r["seed"] for r in c["runs"]) == [1001, 1002] for c in summary["confirmation"])
    for trial in confirmed_before:
        again = next(t for t in confirm_trials if t["trial_id"] == trial["trial_id"])
        assert again["metrics"]["time_total_s"] == trial["metrics"]["time_total_s"]
    # the stored Optuna study, as optuna.load_study gives it, holds each of the five trials
    # once (across two interrupts), ended, with what it scored
    trials = optuna.load_study(study_name="smoke-rs", storage=studies).trials
    assert not (tmp_path / "runs" / "optuna.db").exists()  # only in the storage named
    assert sorted(t.user_attrs["tune_trial"] for t in trials) == \
        sorted(t["trial_id"] for t in after)
    assert all(t.state.is_finished() for t in trials)
    told = {t.user_attrs["tune_trial"]: t.value for t in trials}  # pruned: its last value
    assert all(round(told[t["trial_id"]], 6) == round(t["metrics"]["score"], 6) for t in after)
    # trial 0 is the space's baseline, with its settings, and says so
    baseline = next(t for t in after if t["baseline"])
    assert [t.number for t in trials if t.user_attrs["role"] == "baseline"] == [0]
    assert trials[0].user_attrs["tune_trial"] == baseline["trial_id"]
    assert trials[0].params == pytest.approx(baseline["params"])
    # MLflow: the same parent run, one child per trial and confirmation run, none left open
    from gan_search.tracking import STATUS_TAG, TRIAL_TAG

    client, parents, children = search_runs(str(tmp_path / "runs"), "smoke-rs")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.tags[TRIAL_TAG] for c in children) == \
        sorted(t["trial_id"] for t in [*after, *confirm_trials])
    assert all(c.data.tags[STATUS_TAG] != "running" and c.info.status != "RUNNING" for c in children)
    for child in children:  # no step logged twice across the interrupts
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "fid_lite")]
        assert len(steps) == len(set(steps))
