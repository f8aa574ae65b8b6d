"""What a search shows while it runs: the progress view's lines, from Tune's trial list."""

from types import SimpleNamespace

from ray.tune.execution.placement_groups import PlacementGroupFactory

from gan_search.hpo.driver import progress
from gan_search.hpo.driver.progress import ProgressView


def trial(trial_id, status, cpu=1, gpu=0.5):
    return SimpleNamespace(trial_id=trial_id, status=status, last_result={},
                           placement_group_factory=PlacementGroupFactory([{"CPU": cpu, "GPU": gpu}]))


def test_trials_waiting_for_resources_are_reported_not_silent(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
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


def test_plain_output_gets_the_progress_as_one_event_per_line(monkeypatch):
    """Where output is not a terminal (CI, logs), the live line is printed as an event line,
    from what the trials posted to the search's progress board (a real Ray actor)."""
    import ray

    from gan_search.hpo.driver.progress import ProgressBoard
    from gan_search.hpo.driver.prepare import connect

    connect(None)
    board = ray.remote(num_cpus=0)(ProgressBoard).remote()
    ray.get([board.post.remote("aaaa1111", 300, 1200, 150.0, float("inf")),
             board.post.remote("bbbb2222", 900, 1200, 50.0, 12.5)])
    lines = []
    view = ProgressView(4, log=lines.append, board=board, live=False, iters=1200)
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    view.on_step_end(0, [trial("aaaa1111", "RUNNING"), trial("bbbb2222", "RUNNING"),
                         trial("cccc3333", "PENDING")])
    assert len(lines) == 1 and "\r" not in lines[0] and "\x1b" not in lines[0]
    assert "running: aaaa1111 300/1200 150 it/s | bbbb2222 900/1200 50 it/s FID-lite 12.50" in lines[0]
    # left: 900 + 300 iterations of the running trials and 2 x 1200 not started, at 200 it/s
    assert lines[0].endswith("ETA 0m18s")


def test_the_live_line_tells_running_trials_apart():
    """Confirmation trials have Tune's ids (`0aa41_00000`, `0aa41_00001`): the live line
    names each in full, with its step of its budget, its speed and latest FID-lite."""
    from gan_search.hpo.driver.progress import live_line

    trials = [SimpleNamespace(trial_id=f"0aa41_0000{i}", status="RUNNING") for i in range(2)]
    posted = {"0aa41_00000": {"step": 850, "iters": 1200, "rate": 68.0, "fid": 5.94},
              "0aa41_00001": {"step": 775, "iters": 1200, "rate": 84.0, "fid": float("nan")}}
    line = live_line(posted, trials, planned=2, iters=1200)
    assert "0aa41_00000 850/1200 68 it/s FID-lite 5.94" in line
    assert "0aa41_00001 775/1200 84 it/s |" in line and line.endswith("ETA 0m05s")
