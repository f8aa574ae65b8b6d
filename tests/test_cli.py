"""The gan-search command as a user runs it (in this process: what `main` prints and returns;
the installed entry point itself is run by test_bad_input.py): output files and listings."""

import json

from PIL import Image

from helpers import cli


def test_help_lists_the_commands():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("train", "run", "spaces"):
        assert command in result.stdout


def test_train_writes_checkpoint_grids_and_summary(tmp_path):
    out = tmp_path / "out"
    result = cli("train", "--space", "smoke", "--iters", "20", "--set", "eval_every=10",
                     "--set", "lr_g=0.002", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "checkpoint.pt").is_file()
    grids = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert grids == ["step_000000.png", "step_000010.png", "step_000020.png"]
    with Image.open(out / "samples" / "step_000020.png") as grid:
        assert grid.size == (146, 146)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["step"] == 20
    assert summary["config"]["lr_g"] == 0.002 and summary["config"]["image_size"] == 16
    assert summary["iters_per_second"] > 0


def test_train_on_a_folder_of_images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(40):
        Image.new("RGB", (30, 30), (i * 5, 100, 200)).save(folder / f"{i}.png")
    (folder / "bad.png").write_bytes(b"nope")
    result = cli("train", "--space", "smoke", "--data", str(folder), "--iters", "4",
                     "--set", "batch_size=16", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "30 training images" in result.stdout and "1 unreadable files skipped" in result.stdout
    assert "held-out 25% of folder (10 of 40 images)" in result.stdout


def test_spaces_lists_and_shows():
    listing = cli("spaces")
    assert listing.returncode == 0 and "digits" in listing.stdout and "cats" in listing.stdout
    shown = cli("spaces", "smoke")
    assert shown.returncode == 0 and "source: fake" in shown.stdout


def test_a_search_where_no_trial_ended_usable_exits_1_with_one_line(tmp_path):
    """Adam with beta2 = 0 and a large step diverges within 20 steps: every trial."""
    from helpers import space_file, tiny_space

    raw = tiny_space(budget={"trials": 2, "iters": 40, "eval_every": 20, "eval_samples": 64},
                     fixed={"z_dim": 16, "batch_size": 32, "g_width": 8, "d_width": 8,
                            "beta1": 0.9, "beta2": 0.0, "lr_g": 0.5, "lr_d": 0.5,
                            "leaky_slope": 0.0},
                     parameters={"label_smoothing": {"kind": "uniform", "low": 0.0, "high": 0.1}})
    result = cli("run", "--space", space_file(raw, tmp_path, "d"), "--runs-dir",
                 str(tmp_path / "runs"), "--confirm", "0")
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "gan-search: no trial ended usable (2 diverged): nothing is delivered; each trial's "
        "error is above and in the leaderboard")


def test_a_search_where_some_trials_failed_warns_with_the_count():
    from gan_search.hpo.outcome.report import exit_status
    from gan_search.core.results import SearchOutcome, TrialRow

    rows = [TrialRow("a", "finished", {}, {"score": 1.0}), TrialRow("b", "failed", {}, {}),
            TrialRow("c", "collapsed", {}, {}), TrialRow("d", "stopped", {}, {"score": 2.0})]
    outcome = SearchOutcome("s", "p", rows, interrupted=False, seconds=1.0)
    assert exit_status(outcome) == (0, "gan-search: warning: 2 of 4 trials did not end usable "
                                       "(1 failed, 1 collapsed)")
    outcome.rows = rows[:1]
    assert exit_status(outcome) == (0, None)
    outcome.rows = rows[1:3]
    assert exit_status(outcome)[0] == 1
