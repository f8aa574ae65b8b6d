"""The gan-search command as a user runs it: output files, and bad input as one line + exit 2."""

import json

import pytest
from PIL import Image

from conftest import run_cli


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("train", "run", "spaces"):
        assert command in result.stdout


def test_train_writes_checkpoint_grids_and_summary(tmp_path):
    out = tmp_path / "out"
    result = run_cli("train", "--space", "smoke", "--iters", "20", "--set", "eval_every=10",
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
    result = run_cli("train", "--space", "smoke", "--data", str(folder), "--iters", "4",
                     "--set", "batch_size=16", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "40 images" in result.stdout and "1 unreadable files skipped" in result.stdout


def make_space(tmp_path, source="fake"):
    path = tmp_path / "space.yaml"
    path.write_text(f"data: {{source: {source}, size: 16, channels: 3}}\nfixed: {{g_width: 4}}\n")
    return str(path)


@pytest.mark.parametrize("args,message", [
    (["--set", "learning_rate=0.1"], "unknown setting 'learning_rate'; valid settings are:"),
    (["--set", "lr_g=fast"], "lr_g='fast' is not a valid float (e.g. lr_g=0.0002)"),
    (["--set", "lr_g"], "expected key=value"),
    (["--set", "image_size=30"], "image_size=30 cannot be made by the models"),
    (["--data", "EMPTY"], "has no images"),
    (["--space", "kittens"], "unknown space 'kittens'; known spaces:"),
    (["--space", "SPACE_IMAGENET"], "unknown dataset source 'imagenet'; valid sources are:"),
    (["--iters", "ten"], "argument --iters: invalid int value: 'ten'"),
    (["--space", "faces"], "source folder needs options.path"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [str(empty) if a == "EMPTY" else a for a in args]
    args = [make_space(tmp_path, "imagenet") if a == "SPACE_IMAGENET" else a for a in args]
    out = tmp_path / "out"
    command = ["train", *(["--space", "smoke"] if "--space" not in args else []), *args,
               "--out", str(out)]
    result = run_cli(*command)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and "Traceback" not in result.stderr
    assert not out.exists()  # nothing half-written


def test_spaces_lists_and_shows():
    listing = run_cli("spaces")
    assert listing.returncode == 0 and "digits" in listing.stdout and "cats" in listing.stdout
    shown = run_cli("spaces", "smoke")
    assert shown.returncode == 0 and "source: fake" in shown.stdout
