"""The search's Optuna study in its storage (study.py), as Optuna users open it: two
searches run at once into one runs folder, one of them killed with SIGKILL and resumed;
each keeps its own stored study, whole, with each trial once. (Ctrl-C and resume:
test_search.py; PBT: test_pbt.py; the dashboard: test_ui_browser.py.)"""

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


def test_two_searches_at_once_one_killed_with_sigkill_keep_whole_separate_studies(tmp_path):
    runs = tmp_path / "runs"
    common = ["--space", "smoke", "--iters", "40", "--concurrency", "1", "--runs-dir",
              str(runs), "--confirm", "0"]
    killed = [*common, "--trials", "4", "--name", "killed"]
    other = subprocess.Popen([SCRIPT, "run", *common, "--trials", "3", "--name", "other"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    driver = subprocess.Popen([SCRIPT, "run", *killed], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen, deadline = [], time.monotonic() + 240
    try:
        for line in driver.stdout:
            seen.append(line)
            if "1/4 ended" in line or time.monotonic() > deadline:
                break
        driver.kill()  # SIGKILL: no chance to save anything
        driver.wait(timeout=60)
    finally:
        stop_session(driver.pid)
    assert any("1/4 ended" in line for line in seen), "".join(seen)
    assert 1 <= len(stored_trials(runs, "killed")) <= 4  # what it had asked for

    output, _ = other.communicate(timeout=600)  # the other search went on meanwhile
    assert other.returncode == 0, output
    resumed = cli("run", *killed, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    assert sorted(optuna.get_all_study_names(f"sqlite:///{runs / 'optuna.db'}")) == \
        ["killed", "other"]
    for name, count in (("killed", 4), ("other", 3)):
        trials = stored_trials(runs, name)
        ids = [t.user_attrs["tune_trial"] for t in trials]
        assert sorted(ids) == leaderboard_ids(runs, name) and len(set(ids)) == count, ids
        assert all(t.state.is_finished() for t in trials), [t.state for t in trials]
        assert [t.number for t in trials if t.user_attrs["role"] == "baseline"] == [0]
