"""What Optuna is told about each trial (searcher.py), read back from the stored study with
``optuna.load_study`` as any Optuna user would: a trial the scheduler stopped is PRUNED
with what it reached, a finished one COMPLETE, a broken one FAIL; TPE goes on sampling
after pruned trials, with one objective or two; a searcher saved and restored goes on with
the same stored study. The real search with ASHA: test_search.py."""

import optuna
import pytest
from ray import tune

from gan_search.hpo.strategies.searcher import EVALUATIONS_ATTR, StudySearch

States = optuna.trial.TrialState


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def searcher(url, metric, mode, sampler=None, baseline=None):
    search = StudySearch(
        metric=metric, mode=mode, storage_url=url, study_name="s", baseline=baseline,
        sampler=sampler or optuna.samplers.TPESampler(seed=0, n_startup_trials=2))
    search.set_search_properties(None, None, {"lr_g": tune.loguniform(1e-4, 1e-2)})
    return search


def stored(url):
    return optuna.load_study(study_name="s", storage=url).trials


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


def test_a_stopped_trial_is_pruned_with_its_per_step_values_and_tpe_goes_on(url):
    search = searcher(url, "score", "min")
    run(search, "stopped", [9.0], "running")  # ASHA stopped it after its first evaluation
    run(search, "finished", [8.0, 6.0], "finished")
    run(search, "collapsed", [7.0], "collapsed")  # ended on its own terms: a real outcome
    trials = {t.number: t for t in stored(url)}
    stopped, finished, collapsed = trials[0], trials[1], trials[2]
    # Optuna's own convention: a pruned trial's value is the last value it reported
    assert stopped.state == States.PRUNED and stopped.intermediate_values == {1: 9.0}
    assert stopped.value == 9.0
    assert finished.state == States.COMPLETE and finished.value == 6.0
    assert finished.intermediate_values == {1: 8.0, 2: 6.0}
    assert collapsed.state == States.COMPLETE and collapsed.value == 7.0
    assert [trials[n].user_attrs["status"] for n in range(3)] == ["stopped", "finished",
                                                                  "collapsed"]
    assert [trials[n].user_attrs["tune_trial"] for n in range(3)] == ["stopped", "finished",
                                                                      "collapsed"]
    assert search.suggest("next")["lr_g"] > 0  # TPE models all three


def test_two_objectives_a_stopped_trial_is_pruned_and_keeps_its_evaluations(url):
    """Optuna keeps no intermediate values in a two-objective study: the stopped trial is
    PRUNED all the same, its evaluations kept as a user attribute."""
    search = searcher(url, ["score", "score_collapse"], ["min", "min"])
    keys = ("score", "score_collapse")
    run(search, "stopped", [9.0, 8.5], "running", keys)
    run(search, "finished", [8.0, 6.0], "finished", keys)
    run(search, "another", [5.0, 4.0], "finished", keys)
    stopped, finished = stored(url)[0], stored(url)[1]
    assert stopped.state == States.PRUNED and stopped.values is None
    assert stopped.user_attrs[EVALUATIONS_ATTR] == [[1, 9.0], [2, 8.5]]
    assert finished.state == States.COMPLETE and finished.values == [6.0, 7.0]
    assert search.suggest("next")["lr_g"] > 0  # TPE samples past a pruned trial


def test_the_gp_sampler_models_the_trials_that_trained_to_the_end(url):
    """gp-asha: Optuna's GP sampler goes on proposing after pruned trials (it fits the
    complete ones)."""
    search = searcher(url, "score", "min", optuna.samplers.GPSampler(seed=0, n_startup_trials=2))
    run(search, "stopped", [9.0], "running")
    run(search, "finished", [8.0, 6.0], "finished")
    run(search, "another", [7.0, 5.0], "finished")
    states = [t.state for t in stored(url)]
    assert states == [States.PRUNED, States.COMPLETE, States.COMPLETE]
    assert 1e-4 <= search.suggest("next")["lr_g"] <= 1e-2


def test_a_trial_with_an_error_fails_and_the_baseline_comes_first(url):
    search = searcher(url, "score", "min", baseline={"lr_g": 2e-4})
    # Tune is told each trial's role with its settings: the baseline is known by its trial
    assert search.suggest("base") == {"lr_g": 2e-4, "role": "baseline"}
    assert search.suggest("broken")["role"] == "search"
    search.on_trial_complete("broken", None, error=True)
    run(search, "failed", [1e9], "failed")  # its own error: reported with the worst score
    base, broken, failed = stored(url)
    assert broken.state == States.FAIL and broken.user_attrs["status"] == "failed"
    assert failed.state == States.FAIL and failed.user_attrs["status"] == "failed"
    assert base.params == {"lr_g": 2e-4} and base.user_attrs["role"] == "baseline"
    assert broken.user_attrs["role"] == "search" and base.state == States.RUNNING


def test_a_restored_searcher_goes_on_with_the_stored_study(url, tmp_path):
    """Resume: the saved state names the study's trials; the study itself comes back from
    the storage. The baseline is not asked for again, a trial running at the save goes on
    as the same study trial, and one asked after the save (the driver killed before Tune
    saved again) is taken over by the next trial: each trial is in the study once."""
    search = searcher(url, "score", "min", baseline={"lr_g": 2e-4})
    run(search, "base", [9.0, 8.0], "finished")
    search.suggest("running")
    search.on_trial_result("running", {"training_iteration": 1, "score": 7.0,
                                       "status": "running"})
    search.suggest("late")
    search.save(str(tmp_path / "state.pkl"))
    lost = search.suggest("lost")  # asked, then the driver was killed
    search.on_trial_complete("late", {"training_iteration": 1, "score": 4.0,
                                      "status": "finished"})  # told, then killed
    resumed = searcher(url, "score", "min", baseline={"lr_g": 2e-4})
    resumed.restore(str(tmp_path / "state.pkl"))
    resumed.on_trial_result("running", {"training_iteration": 2, "score": 6.0,
                                        "status": "running"})
    resumed.on_trial_complete("running", {"training_iteration": 2, "score": 6.0,
                                          "status": "finished"})
    # Tune's saved state had "late" running: it ends again, and the study keeps its first end
    resumed.on_trial_complete("late", {"training_iteration": 1, "score": 4.5,
                                       "status": "finished"})
    assert resumed.suggest("new") == lost  # the lost trial's configuration, once
    run(resumed, "fresh", [5.0], "finished")
    trials = stored(url)
    assert [t.user_attrs["tune_trial"] for t in trials] == ["base", "running", "late", "new",
                                                           "fresh"]
    assert trials[2].value == 4.0
    assert trials[1].state == States.COMPLETE and trials[1].intermediate_values == {1: 7.0,
                                                                                     2: 6.0}
    assert [t.params["lr_g"] for t in trials].count(2e-4) == 1


def test_the_importances_plot_is_drawn_only_with_importances(tmp_path):
    """What mattered: with trials enough for importances, Optuna's plots include theirs; the
    search leaves it out when it found too few trials to say (hpo/run.py)."""
    from gan_search.hpo.outcome.analysis import importances, save_plots

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("lr_g", 1e-4, 1e-2, log=True) - 1e-3) ** 2
                   + t.suggest_float("beta1", 0.0, 0.9) * 1e-9, n_trials=6)
    assert {name for name, _ in importances(study)} == {"lr_g", "beta1"}
    names = {p.name for p in save_plots(study, ["score"], tmp_path / "a")}
    assert {"optimization_history.png", "param_importances.png"} <= names
    names = {p.name for p in save_plots(study, ["score"], tmp_path / "b", with_importances=False)}
    assert "optimization_history.png" in names and "param_importances.png" not in names
