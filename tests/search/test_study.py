"""The search's Optuna study in its storage (study.py), as Optuna users open it: a search
whose driver is killed with SIGKILL and then resumed keeps one stored study with each trial
once; two searches that run at once into one runs folder keep separate, whole studies.
(Ctrl-C and resume: test_search.py; PBT: test_pbt.py; the dashboard: test_ui_browser.py.)"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from helpers import cli

SCRIPT = str(Path(sys.executable).parent / "gan-search")


def stored_trials(runs: Path, name: str) -> list:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{runs / 'optuna.db'}").trials


def leaderboard_ids(runs: Path, name: str) -> list[str]:
    board = json.loads((runs / "tune" / name / "leaderboard.json").read_text())
    return sorted(t["trial_id"] for t in board["trials"])


def stop_session(leader: int) -> None:
    """What the killed driver left running (Ray's processes, in its session): stopped, by
    process id."""
    listing = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        pid, sid = (int(x) for x in line.split())
        if sid == leader and pid != leader:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_search_killed_with_sigkill_resumes_with_each_trial_once_in_its_study(tmp_path):
    runs = tmp_path / "runs"
    common = ["--space", "smoke", "--trials", "5", "--concurrency", "1", "--iters", "40",
              "--runs-dir", str(runs), "--confirm", "0", "--name", "killed"]
    driver = subprocess.Popen([SCRIPT, "run", *common], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen, deadline = [], time.monotonic() + 240
    try:
        for line in driver.stdout:
            seen.append(line)
            if "2/5 ended" in line or time.monotonic() > deadline:
                break
        driver.kill()  # SIGKILL: no chance to save anything
        driver.wait(timeout=60)
    finally:
        stop_session(driver.pid)
    assert any("2/5 ended" in line for line in seen), "".join(seen)
    before = stored_trials(runs, "killed")
    assert 2 <= len(before) <= 5  # what the killed driver had asked for

    resumed = cli("run", *common, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = stored_trials(runs, "killed")
    ids = [t.user_attrs["tune_trial"] for t in trials]
    assert sorted(ids) == leaderboard_ids(runs, "killed") and len(set(ids)) == 5, ids
    assert all(t.state.is_finished() for t in trials), [t.state for t in trials]
    assert [t.number for t in trials if t.user_attrs["role"] == "baseline"] == [0]


def test_two_searches_at_once_into_one_runs_folder_keep_separate_studies(tmp_path):
    runs = tmp_path / "runs"
    common = ["--space", "smoke", "--trials", "3", "--concurrency", "1", "--iters", "20",
              "--runs-dir", str(runs), "--confirm", "0"]
    searches = {name: subprocess.Popen([SCRIPT, "run", *common, "--name", name],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, start_new_session=True)
                for name in ("first", "second")}
    for name, search in searches.items():
        output, _ = search.communicate(timeout=600)
        assert search.returncode == 0, output
    assert sorted(optuna.get_all_study_names(f"sqlite:///{runs / 'optuna.db'}")) == \
        ["first", "second"]
    for name in searches:
        trials = stored_trials(runs, name)
        assert sorted(t.user_attrs["tune_trial"] for t in trials) == leaderboard_ids(runs, name)
        assert all(t.state.is_finished() for t in trials) and len(trials) == 3
        assert trials[0].user_attrs["role"] == "baseline"
