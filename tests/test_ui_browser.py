"""The MLflow UI as a user sees it: `gan-search ui` on a search's store, the experiment's
runs page in headless Chromium (Debian's `chromium`), the trial runs listed, and a
non-blank screenshot kept in test-artifacts/ for a person to look at."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image, ImageStat

from gan_search.config import search_config
from gan_search.search import run_search
from gan_search.space import load_space
from gan_search.tracking import store_paths

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("GAN_SEARCH_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent.parent / "test-artifacts"))
# CI installs chromium and sets this, so that there a missing browser fails instead of skipping
REQUIRED = os.environ.get("GAN_SEARCH_REQUIRE_BROWSER") == "1"
pytestmark = pytest.mark.skipif(CHROMIUM is None and not REQUIRED,
                                reason="needs Debian's chromium (apt-get install chromium)")

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,900", "--virtual-time-budget=20000"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "chromium is not installed (apt-get install chromium)"
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=120)


def test_mlflow_ui_lists_the_trials_of_a_search(tmp_path):
    space = {"data": {"source": "fake", "size": 16, "channels": 3, "options": {"n": 128}},
             "parameters": {"lr_g": {"kind": "loguniform", "low": 1e-4, "high": 1e-2}},
             "fixed": {"z_dim": 8, "batch_size": 32, "g_width": 4, "d_width": 4},
             "budget": {"trials": 3, "iters": 20, "eval_every": 20, "eval_samples": 64},
             "resources": {"cpu": 1}, "concurrency": 2}
    (tmp_path / "uitest.yaml").write_text(yaml.safe_dump(space))
    spec = load_space(str(tmp_path / "uitest.yaml"))
    run_search(search_config(spec, runs_dir=str(tmp_path), name="ui-search", confirm=0),
               log=lambda l: None)
    experiment = MlflowClient(store_paths(str(tmp_path))[0]).get_experiment_by_name("uitest")

    port = free_port()
    ui = subprocess.Popen([str(Path(sys.executable).parent / "gan-search"), "ui", "--runs-dir",
                           str(tmp_path), "--port", str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or ui.poll() is not None:
                    pytest.fail(f"the MLflow UI did not start on {url}")
                time.sleep(1)
        page = f"{url}#/experiments/{experiment.experiment_id}/runs"
        dom = chromium(page, tmp_path / "profile1", "--dump-dom").stdout
        assert "ui-search" in dom  # the search's parent run, by name
        import re
        text = " ".join(re.sub(r"<[^>]+>", " ", dom).split())
        assert "4 matching runs" in text, text[:3000]  # the parent and its three trial runs
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "mlflow_ui_runs.png"
        chromium(page, tmp_path / "profile2", f"--screenshot={shot}")
        with Image.open(shot) as image:
            assert image.size == (1400, 900)
            grey = image.convert("L")
            assert ImageStat.Stat(grey).stddev[0] > 10  # not a blank page
            assert len(grey.getcolors(1 << 16) or []) > 20
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)
