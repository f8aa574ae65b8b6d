"""Every bad input is refused at the boundary: one line on stderr naming what is wrong and
how to fix it, exit code 2, no traceback, and nothing written to the working folder.

The table runs `gan-search`'s `main()` in this process (an uncaught exception fails the test
as a traceback would); `test_the_installed_command_refuses_in_one_line` runs a few through the
installed entry point to show the same from a shell."""

import socket

import numpy as np
import pytest

from helpers import run_cli
from gan_search.cli import main

BAD_YAML = "data: {source: fake\n"
UNKNOWN_KEY = "data: {source: fake, size: 16}\nfoo: 1\n"
BAD_BOUNDS = "data: {source: fake}\nparameters:\n  lr_g: {kind: uniform, low: 1, high: 0}\n"
BAD_NAME = "name: my space\ndata: {source: fake, size: 16}\n"
IMAGENET = "data: {source: imagenet, size: 16, channels: 3}\nfixed: {g_width: 4}\n"
NO_TRAINING = "data: {source: fake, size: 16}\nparameters:\n  g_width: {kind: int, low: 4, high: 8}\n"
NO_INTERVAL = "data: {source: fake, size: 16}\nscheduler: {perturbation_interval: 0}\n"

# (command line, a fragment of the one line it must print); UPPER-CASE words are replaced
# by paths made in `fixtures`
CASES = [
    # run
    ("run --name it's-mine", "a search name must be a plain name"),
    ("run --name ../escape", "a search name must be a plain name"),
    ("run --name a/b", "a search name must be a plain name"),
    ("run --trials 0", "--trials 0: must be >= 1"),
    ("run --budget 0", "--budget 0: must be >= 1"),
    ("run --budget 20000 --trials 4", "--budget 20000 with --trials/--iters: give the budget"),
    ("run --budget 200", "--budget 200: too small for successive halving"),
    ("run --budget 100 --strategy pbt", "--budget 100: too small for"),
    ("run --budget 20000 --confirm-seeds 0", "--confirm-seeds 0: must be >= 1"),
    ("run --iters 0", "--iters 0: must be >= 1"),
    ("run --concurrency 0", "--concurrency 0: must be >= 1"),
    ("run --trials many", "argument --trials: invalid int value: 'many'"),
    ("run --seed -1", "--seed -1: must be >= 0"),
    ("run --set lr=1", "unknown setting 'lr'; valid settings are:"),
    ("run --set lr_g=fast", "lr_g='fast' is not a valid float"),
    ("run --set lr_g=2", "lr_g=2.0 is invalid: must lie in (0, 1)"),
    ("run --set image_size=30", "image_size=30 cannot be made by the models"),
    ("run --set iters=5", "use --iters"),
    ("run --set lr_g", "expected key=value"),
    ("run --space kittens", "unknown space 'kittens'; known spaces:"),
    ("run --space BAD_YAML", "not valid YAML"),
    ("run --space UNKNOWN_KEY", "foo: unknown key; valid keys are:"),
    ("run --space BAD_BOUNDS", "parameters.lr_g: low <= high must hold"),
    ("run --space BAD_NAME", "name: 'my space' is not a plain name"),
    ("run --address 127.0.0.1:1", "cannot reach a Ray cluster there"),
    ("run --address nonsense", "expected host:port"),
    ("run --tracking-uri http://127.0.0.1:9", "cannot reach the MLflow tracking server"),
    ("run --resume --runs-dir EMPTY_DIR", "--resume: no earlier search of space 'smoke'"),
    ("run --resume --name nosuch --runs-dir RUNS", "--resume: no search 'nosuch'"),
    ("run --name taken --runs-dir RUNS", "a search named 'taken' already exists"),
    ("run --device tpu", "argument --device: invalid choice: 'tpu'"),
    ("run --strategy grid", "argument --strategy: invalid choice: 'grid'"),
    ("run --strategy pbt --trials 1", "PBT needs a population; give --trials 2 or more"),
    ("run --space NO_TRAINING --strategy pbt", "searches none of lr_g, lr_d, beta1, beta2"),
    ("run --space NO_INTERVAL", "scheduler.perturbation_interval: expected a whole number >= 1"),
    ("run --storage ftp://host/x", "--storage ftp://host/x: expected s3://bucket/path"),
    ("run --storage A_FILE", "exists and is not a folder"),
    ("run --runs-dir A_FILE", "--runs-dir A_FILE: exists and is not a folder"),
    ("run --data MISSING", "image folder MISSING does not exist"),
    ("run --data EMPTY_DIR", "has no images"),
    ("run --frobnicate", "unrecognized arguments: --frobnicate"),
    # train
    ("train --iters 0", "--iters 0: must be >= 1"),
    ("train --iters 10 --out /proc/gan-search-out", "--out /proc/gan-search-out: cannot write there"),
    ("train --iters 10 --out A_FILE", "exists and is not a folder"),
    ("train --device tpu", "--device tpu: expected auto, cpu, gpu or cuda:N"),
    ("train --set batch_size=5000", "batch_size=5000 exceeds the 192 training images"),
    ("run --set batch_size=5000", "batch_size=5000 exceeds the 192 training images"),
    ("train --space faces", "source folder needs options.path"),
    ("train --data EMPTY_DIR", "has no images"),
    ("train --space IMAGENET", "unknown dataset source 'imagenet'; valid sources are:"),
    ("train --set channels=2", "channels=2 is invalid: must be 1 (grey) or 3 (colour)"),
    ("train --set balance_g_factor=0", "balance_g_factor=0.0 is invalid: must lie in (0, 100]"),
    ("run --set balance_d_factor=-2", "balance_d_factor=-2.0 is invalid: must lie in (0, 100]"),
    # score
    ("score --images MISSING", "is neither a folder of images nor a .npy/.pt file"),
    ("score --images TWO_CHANNELS", "have no channel axis of 1 (grey), 3 (RGB) or 4 (RGBA)"),
    ("score --images FLOATS", "expected a uint8 array"),
    ("score --images CORRUPT", "could not read it as a .npy array"),
    ("score --images FEW --n 5", "--n 5: at least 10 samples are needed"),
    ("score --images FEW", "has 40 images, fewer than the 128 (for N=64)"),
    ("score --images EMPTY_DIR", "has no images"),
    ("score --images FEW --extractor vgg", "argument --extractor: invalid choice: 'vgg'"),
    ("score --images FEW --n 10 --extractor inception --inception-weights MISSING",
     "Inception weights file MISSING does not exist"),
    # sample
    ("sample --n 0", "--n 0: must lie in 1..4096"),
    ("sample --out grid.txt", "--out grid.txt: name an image file ending in .png"),
    ("sample --runs-dir EMPTY_DIR", "no MLflow store in EMPTY_DIR"),
    ("sample --out /proc/gan-search/grid.png", "--out /proc/gan-search: cannot write there"),
    # ui
    ("ui --port 70000", "--port 70000: must lie in 1..65535"),
    ("ui --host nohost.invalid", "--host nohost.invalid: not an address of this machine"),
    ("ui --runs-dir EMPTY_DIR", "no MLflow store in EMPTY_DIR"),
    ("ui --port BUSY_PORT", "cannot listen there"),
    # spaces
    ("spaces kittens", "unknown space 'kittens'"),
    ("spaces BAD_YAML", "not valid YAML"),
    # the Optuna study storage
    ("run --optuna-storage s3://bucket/studies", "not a database URL"),
    ("run --runs-dir RUNS --name studied", "already holds a study named 'studied'"),
    ("ui --optuna --runs-dir EMPTY_DIR", "no Optuna study in"),
    ("ui --optuna --runs-dir RUNS --search nosuch", "no Optuna study of that name"),
    ("ui --optuna --optuna-storage https://example.org/db", "not a database URL"),
]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """Paths the table refers to, outside the working folder."""
    root = tmp_path_factory.mktemp("fixtures")
    paths = {"EMPTY_DIR": root / "empty", "RUNS": root / "runs", "MISSING": root / "missing",
             "A_FILE": root / "a_file.txt"}
    paths["EMPTY_DIR"].mkdir()
    (paths["RUNS"] / "tune" / "taken").mkdir(parents=True)  # an earlier search named taken
    import optuna  # a study named studied, whose Tune folder is gone

    optuna.create_study(study_name="studied", storage=f"sqlite:///{paths['RUNS']}/optuna.db")
    paths["A_FILE"].write_text("not a folder")
    for name, text in (("BAD_YAML", BAD_YAML), ("UNKNOWN_KEY", UNKNOWN_KEY),
                       ("BAD_BOUNDS", BAD_BOUNDS), ("BAD_NAME", BAD_NAME),
                       ("IMAGENET", IMAGENET), ("NO_TRAINING", NO_TRAINING),
                       ("NO_INTERVAL", NO_INTERVAL)):
        paths[name] = root / f"{name.lower()}.yaml"
        paths[name].write_text(text)
    arrays = {"TWO_CHANNELS": np.zeros((30, 16, 16, 2), np.uint8),
              "FLOATS": np.zeros((30, 3, 16, 16), np.float32),
              "FEW": np.zeros((40, 3, 16, 16), np.uint8)}
    for name, array in arrays.items():
        paths[name] = root / f"{name.lower()}.npy"
        np.save(paths[name], array)
    paths["CORRUPT"] = root / "corrupt.npy"
    paths["CORRUPT"].write_bytes(b"\x93NUMPY garbage")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    paths["BUSY_PORT"] = str(busy.getsockname()[1])
    yield {k: str(v) for k, v in paths.items()}
    busy.close()


def snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1)
                  for p in folder.rglob("*"))


@pytest.mark.parametrize("command,message", CASES, ids=[c for c, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(command, message, fixtures, tmp_path,
                                                          monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("the user's own file")
    monkeypatch.chdir(work)
    words = [fixtures.get(w, w) for w in command.split()]
    if words[0] in ("run", "train", "score") and "--space" not in words:
        words += ["--space", "smoke"]
    before = snapshot(work)
    try:
        code = main(words)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    err = capsys.readouterr().err
    expected = message
    for name in sorted(fixtures, key=len, reverse=True):
        expected = expected.replace(name, fixtures[name])
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err and "Traceback" not in err
    assert snapshot(work) == before


def test_there_are_at_least_40_distinct_cases_across_every_command():
    assert len({c for c, _ in CASES}) == len(CASES) >= 40
    assert {c.split()[0] for c, _ in CASES} == {"run", "train", "score", "sample", "ui", "spaces"}


@pytest.mark.parametrize("args,message", [
    (["run", "--space", "smoke", "--name", "../escape"], "a search name must be a plain name"),
    (["train", "--space", "smoke", "--out", "/proc/x"], "--out /proc/x: cannot write there"),
])
def test_the_installed_command_refuses_in_one_line(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr and not list(tmp_path.iterdir())


def test_an_rgba_array_is_scored_as_rgb_with_a_warning(tmp_path, capsys):
    rgba = np.random.default_rng(0).integers(0, 255, (800, 16, 16, 4), dtype=np.uint8)
    np.save(tmp_path / "rgba.npy", rgba)
    assert main(["score", "--space", "smoke", "--images", str(tmp_path / "rgba.npy")]) == 0
    captured = capsys.readouterr()
    assert "dropped the alpha channel of RGBA images" in captured.err
    assert '"fid_lite"' in captured.out
