"""What a search shows while it runs: the progress view's lines, from Tune's trial list."""

from types import SimpleNamespace

from ray.tune.execution.placement_groups import PlacementGroupFactory

from gan_search import report
from gan_search.report import ProgressView


def trial(trial_id, status, cpu=1, gpu=0.5):
    return SimpleNamespace(trial_id=trial_id, status=status, last_result={},
                           placement_group_factory=PlacementGroupFactory([{"CPU": cpu, "GPU": gpu}]))


def test_trials_waiting_for_resources_are_reported_not_silent(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(report.time, "perf_counter", lambda: clock[0])
    lines = []
    view = ProgressView(4, log=lines.append, cluster=True)
    trials = [trial("a", "RUNNING"), trial("b", "PENDING"), trial("c", "PENDING"),
              trial("d", "PENDING")]
    view.on_step_end(0, trials)
    clock[0] += 5
    view.on_step_end(1, trials)
    assert lines == []  # a trial is pending for a moment between any two trials
    clock[0] += 6
    view.on_step_end(2, trials)
    assert len(lines) == 1
    assert "3 trials waiting for CPU 1, GPU 0.5 each (1 running)" in lines[0]
    assert "the autoscaler adds nodes" in lines[0] and "cluster.yaml" in lines[0]
    clock[0] += 30
    view.on_step_end(3, trials)
    assert len(lines) == 1  # not every loop step: at most once a minute
    clock[0] += 31
    view.on_step_end(4, trials)
    assert len(lines) == 2
    view.on_step_end(5, [trial("a", "RUNNING")])  # nothing waits: the clock restarts
    clock[0] += 11
    view.on_step_end(6, [trial("e", "PENDING", gpu=0)])
    assert len(lines) == 2


def test_locally_waiting_trials_start_as_others_end():
    lines = []
    view = ProgressView(2, log=lines.append, cluster=False)
    view.waiting_since = -1e9
    view.on_step_end(0, [trial("a", "RUNNING", gpu=0), trial("b", "PENDING", gpu=0)])
    assert lines and "1 trial waiting for CPU 1 each (1 running): they start as running" in lines[0]
