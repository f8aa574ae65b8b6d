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
