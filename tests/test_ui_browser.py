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
from PIL import Image, ImageStat

from gan_search.core.config import search_config
from gan_search.app import run_search
from gan_search.core.space import load_space

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


def test_the_link_gan_search_ui_prints_opens_the_trials_sorted_by_score(tmp_path):
    space = {"data": {"source": "fake", "size": 16, "channels": 3, "options": {"n": 128}},
             "parameters": {"lr_g": {"kind": "loguniform", "low": 1e-4, "high": 1e-2}},
             "fixed": {"z_dim": 8, "batch_size": 32, "g_width": 4, "d_width": 4},
             "budget": {"trials": 3, "iters": 20, "eval_every": 20, "eval_samples": 64},
             "resources": {"cpu": 1}, "concurrency": 2}
    (tmp_path / "uitest.yaml").write_text(yaml.safe_dump(space))
    spec = load_space(str(tmp_path / "uitest.yaml"))
    outcome = run_search(search_config(spec, runs_dir=str(tmp_path), name="ui-search", confirm=0),
                         log=lambda l: None)
    ranked = [r.trial_id for r in sorted(outcome.rows, key=lambda r: r.metrics["fid_lite_best"])]

    port = free_port()
    ui = subprocess.Popen([str(Path(sys.executable).parent / "gan-search"), "ui", "--runs-dir",
                           str(tmp_path), "--port", str(port), "--no-browser"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    try:
        printed = [ui.stdout.readline(), ui.stdout.readline()]
        url = printed[1].strip()  # exactly the link the command printed
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/"), printed
        assert "workflowType=machine_learning" in url and "viewStateShareKey=ui-search" in url
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url.split("#")[0], timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or ui.poll() is not None:
                    pytest.fail(f"the MLflow UI did not start on {url}")
                time.sleep(1)
        dom = chromium(url, tmp_path / "profile1", "--dump-dom").stdout
        import re
        text = " ".join(re.sub(r"<[^>]+>", " ", dom).split())
        assert "Observability" not in text  # the training runs view, not the GenAI overview
        assert "3 matching runs" in text and "ui-search" not in text.replace(  # trials only
            "ui-search: trials by best FID-lite", ""), text[:3000]
        positions = [text.find(f"trial_{t}") for t in ranked]
        assert all(p >= 0 for p in positions) and positions == sorted(positions), (ranked, text[:3000])
        assert "fid_lite_best" in dom and "best_step" in dom  # the score columns are shown
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "mlflow_ui_runs.png"
        chromium(url, tmp_path / "profile2", f"--screenshot={shot}")
        with Image.open(shot) as image:
            assert image.size == (1400, 900)
            grey = image.convert("L")
            assert ImageStat.Stat(grey).stddev[0] > 10  # not a blank page
            assert len(grey.getcolors(1 << 16) or []) > 20
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)
