"""What Optuna is told about each trial (searcher.py): a trial the scheduler stopped is
PRUNED with what it reached, every other one as Ray tells it; TPE goes on sampling after
pruned trials, with one objective or two. The real search with ASHA: test_search.py."""

import optuna
from ray import tune

from gan_search.search.searcher import STOPPED_ATTR, PrunedAwareOptunaSearch

States = optuna.trial.TrialState


def searcher(metric, mode, sampler=None):
    return PrunedAwareOptunaSearch(
        space={"lr_g": tune.loguniform(1e-4, 1e-2)}, metric=metric, mode=mode,
        sampler=sampler or optuna.samplers.TPESampler(seed=0, n_startup_trials=2))


def run(search, trial_id, scores, last_status, keys=("score",)):
    """A trial that reports ``scores`` (one per evaluation), ending with ``last_status``, as
    Tune tells a searcher: a result at which the scheduler stops the trial ("running": it
    would have gone on) reaches only ``on_trial_complete``."""
    search.suggest(trial_id)
    result = {}
    for step, score in enumerate(scores, 1):
        status = last_status if step == len(scores) else "running"
        result = {"training_iteration": step, "status": status,
                  **{key: score + i for i, key in enumerate(keys)}}
        if not (step == len(scores) and status == "running"):
            search.on_trial_result(trial_id, result)
    search.on_trial_complete(trial_id, result)


def test_a_stopped_trial_is_pruned_with_its_per_step_values_and_tpe_goes_on():
    search = searcher("score", "min")
    run(search, "stopped", [9.0], "running")  # ASHA stopped it after its first evaluation
    run(search, "finished", [8.0, 6.0], "finished")
    run(search, "collapsed", [7.0], "collapsed")  # ended on its own terms: a real outcome
    trials = {t.number: t for t in search._ot_study.trials}
    stopped, finished, collapsed = trials[0], trials[1], trials[2]
    # Optuna's own convention: a pruned trial's value is the last value it reported
    assert stopped.state == States.PRUNED and stopped.intermediate_values == {1: 9.0}
    assert stopped.value == 9.0
    assert finished.state == States.COMPLETE and finished.value == 6.0
    assert finished.intermediate_values == {1: 8.0, 2: 6.0}
    assert collapsed.state == States.COMPLETE and collapsed.value == 7.0
    assert search.suggest("next")["lr_g"] > 0  # TPE models all three


def test_two_objectives_a_stopped_trial_is_pruned_and_keeps_its_evaluations():
    """Optuna keeps no intermediate values in a two-objective study: the stopped trial is
    PRUNED all the same, its evaluations kept as a user attribute."""
    search = searcher(["score", "score_collapse"], ["min", "min"])
    keys = ("score", "score_collapse")
    run(search, "stopped", [9.0, 8.5], "running", keys)
    run(search, "finished", [8.0, 6.0], "finished", keys)
    run(search, "another", [5.0, 4.0], "finished", keys)
    stopped, finished = search._ot_study.trials[0], search._ot_study.trials[1]
    assert stopped.state == States.PRUNED and stopped.values is None
    assert stopped.user_attrs[STOPPED_ATTR] == [[1, 9.0], [2, 8.5]]
    assert finished.state == States.COMPLETE and finished.values == [6.0, 7.0]
    assert search.suggest("next")["lr_g"] > 0  # TPE samples past a pruned trial


def test_the_gp_sampler_models_the_trials_that_trained_to_the_end():
    """gp-asha: Optuna's GP sampler goes on proposing after pruned trials (it fits the
    complete ones)."""
    search = searcher("score", "min", optuna.samplers.GPSampler(seed=0, n_startup_trials=2))
    run(search, "stopped", [9.0], "running")
    run(search, "finished", [8.0, 6.0], "finished")
    run(search, "another", [7.0, 5.0], "finished")
    states = [t.state for t in search._ot_study.trials]
    assert states == [States.PRUNED, States.COMPLETE, States.COMPLETE]
    assert 1e-4 <= search.suggest("next")["lr_g"] <= 1e-2


def test_a_trial_with_an_error_fails_as_before():
    search = searcher("score", "min")
    search.suggest("broken")
    search.on_trial_complete("broken", None, error=True)
    assert search._ot_study.trials[0].state == States.FAIL


def test_the_importances_plot_is_drawn_only_with_importances(tmp_path):
    """What mattered: with trials enough for importances, Optuna's plots include theirs; the
    search leaves it out when it found too few trials to say (search/run.py)."""
    from gan_search.search.analysis import importances, save_plots

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("lr_g", 1e-4, 1e-2, log=True) - 1e-3) ** 2
                   + t.suggest_float("beta1", 0.0, 0.9) * 1e-9, n_trials=6)
    assert {name for name, _ in importances(study)} == {"lr_g", "beta1"}
    names = {p.name for p in save_plots(study, ["score"], tmp_path / "a")}
    assert {"optimization_history.png", "param_importances.png"} <= names
    names = {p.name for p in save_plots(study, ["score"], tmp_path / "b", with_importances=False)}
    assert "optimization_history.png" in names and "param_importances.png" not in names
