"""The MLflow UI as a user sees it: `gan-search ui` on a search's store, the experiment's
runs page in headless Chromium (Debian's `chromium`), the trial runs listed, and a
non-blank screenshot kept in test-artifacts/ for a person to look at."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from helpers import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("GAN_SEARCH_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / "test-artifacts"))
# CI installs chromium and sets this, so that there a missing browser fails instead of skipping
REQUIRED = os.environ.get("GAN_SEARCH_REQUIRE_BROWSER") == "1"
pytestmark = pytest.mark.skipif(CHROMIUM is None and not REQUIRED,
                                reason="needs Debian's chromium (apt-get install chromium)")

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,900", "--virtual-time-budget=20000"]


def chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "chromium is not installed (apt-get install chromium)"
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=120)


def wait_until_served(url: str, server: subprocess.Popen, what: str) -> None:
    """Until ``url`` answers 200 (at most 120 s, and only while the server runs)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail(f"{what} did not start on {url}")
            time.sleep(1)


def test_the_link_gan_search_ui_prints_opens_the_trials_sorted_by_score(tracked, tmp_path):
    runs, outcome, _, _, children = tracked  # the shared search (conftest.py)
    rows = [*outcome.rows, *outcome.confirm_rows]  # the search's trials and confirmation runs
    names = {c.data.tags["gan_search.trial_id"]: c.info.run_name for c in children}
    ranked = [names[r.trial_id] for r in sorted(rows, key=lambda r: r.metrics["fid_lite_best"])]
    assert len(children) == len(rows)

    port = free_port()
    ui = subprocess.Popen([str(Path(sys.executable).parent / "gan-search"), "ui", "--runs-dir",
                           str(runs), "--port", str(port), "--no-browser"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    try:
        printed = [ui.stdout.readline(), ui.stdout.readline()]
        url = printed[1].strip()  # exactly the link the command printed
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/"), printed
        assert "workflowType=machine_learning" in url and "viewStateShareKey=tracked-search" in url
        wait_until_served(url.split("#")[0], ui, "the MLflow UI")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "mlflow_ui_runs.png"  # one browser run: the page's DOM and a picture
        dom = chromium(url, tmp_path / "profile", "--dump-dom", f"--screenshot={shot}").stdout
        import re
        text = " ".join(re.sub(r"<[^>]+>", " ", dom).split())
        assert "Observability" not in text  # the training runs view, not the GenAI overview
        assert f"{len(rows)} matching runs" in text and "tracked-search" not in text.replace(
            "tracked-search: trials by best FID-lite", ""), text[:3000]  # trials only
        # each run by its whole name (baseline_x is also part of confirm_baseline_x_seed1001)
        found = [re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) for name in ranked]
        positions = [m.start() if m else -1 for m in found]
        assert all(p >= 0 for p in positions) and positions == sorted(positions), (ranked, text[:3000])
        assert "fid_lite_best" in dom and "best_step" in dom  # the score columns are shown
        with Image.open(shot) as image:
            assert image.size == (1400, 900)
            grey = image.convert("L")
            assert ImageStat.Stat(grey).stddev[0] > 10  # not a blank page
            assert len(grey.getcolors(1 << 16) or []) > 20
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)


def test_gan_search_ui_optuna_shows_the_searchs_study_in_optuna_dashboard(tracked, tmp_path):
    """`gan-search ui --optuna`: optuna-dashboard on the runs folder's study storage; the
    link it prints opens the search's study, whose trials list shows every trial of the
    search with its state, and the baseline (trial 0) with its settings and role."""
    runs, outcome, _, _, _ = tracked
    port = free_port()
    ui = subprocess.Popen([str(Path(sys.executable).parent / "gan-search"), "ui", "--optuna",
                           "--runs-dir", str(runs), "--port", str(port), "--no-browser"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    try:
        printed = [ui.stdout.readline(), ui.stdout.readline()]
        url = printed[1].strip()
        assert "the Optuna study of search tracked-search" in printed[0], printed
        assert url.startswith(f"http://127.0.0.1:{port}/dashboard/studies/"), printed
        wait_until_served(url, ui, "optuna-dashboard")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "optuna_dashboard_trials.png"  # one browser run: DOM and picture
        dom = chromium(f"{url}/trials", tmp_path / "profile", "--dump-dom",
                       f"--screenshot={shot}").stdout
        import re
        text = " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<style.*?</style>", "", dom,
                                                       flags=re.S)).split())
        trials = len(outcome.rows)
        assert "tracked-search (id=" in text and f"{trials} Trials" in text, text[-3000:]
        states = re.findall(r"Trial (\d+) (Complete|Pruned|Fail|Running)", text)
        assert sorted({int(n) for n, _ in states}) == list(range(trials)), text[-3000:]
        assert "Running" not in {s for _, s in states}  # every trial ended, none left running
        baseline = next(r for r in outcome.rows if r.baseline)  # trial 0, shown first
        assert f"role baseline status {baseline.status} tune_trial {baseline.trial_id}" in text
        with Image.open(shot) as image:
            grey = image.convert("L")
            assert ImageStat.Stat(grey).stddev[0] > 10  # not a blank page
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)
