"""MLflow records of a real search (the shared `tracked` search, conftest.py), read back
through MlflowClient; `sample`; a tracking server that cannot be reached; the UI refusing a
missing store."""

import json
import math
import time
from pathlib import Path

import pytest
from PIL import Image

from gan_search.core.vocabulary import BROKEN
from gan_search.tracking import CONFIRM_OF_TAG, ROLE_TAG, SEARCH_TAG, STATUS_TAG, TRIAL_TAG
from gan_search.tracking.store import logged_grid_steps
from helpers import cli


def test_one_parent_and_one_child_per_trial_and_per_confirmation_run(tracked):
    _, outcome, client, parents, children = tracked
    assert len(parents) == 1 and parents[0].info.run_name == "tracked-search"
    assert parents[0].data.tags[SEARCH_TAG] == "tracked-search"
    assert parents[0].data.tags[ROLE_TAG] == "parent"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    by_role = {}
    for child in children:
        by_role.setdefault(child.data.tags[ROLE_TAG], []).append(child.data.tags[TRIAL_TAG])
    baseline = outcome.baseline
    assert by_role["baseline"] == [baseline.trial_id]
    assert sorted(by_role["search"] + by_role["baseline"]) == sorted(r.trial_id for r in outcome.rows)
    # confirmation: the top 2 and the baseline, one fresh seed each
    assert sorted(by_role["confirm"]) == sorted(r.trial_id for r in outcome.confirm_rows)
    confirmed = {c.trial_id for c in outcome.confirmation}
    assert len(outcome.confirm_rows) == len(confirmed) and baseline.trial_id in confirmed
    for child in children:
        if child.data.tags[ROLE_TAG] == "confirm":
            assert child.data.tags[CONFIRM_OF_TAG] in confirmed
            assert child.data.params["seed"] == "1001"
    # each run's name says what it is: a list of runs needs no tags opened to tell them apart
    names = {c.data.tags[TRIAL_TAG]: c.info.run_name for c in children}
    assert names[baseline.trial_id] == f"baseline_{baseline.trial_id}"
    for trial_id in by_role["search"]:
        assert names[trial_id] == f"trial_{trial_id}"
    for child in (c for c in children if c.data.tags[ROLE_TAG] == "confirm"):
        of = child.data.tags[CONFIRM_OF_TAG]
        assert child.info.run_name == f"confirm_{'baseline_' if of == baseline.trial_id else ''}" \
                                      f"{of}_seed1001"


def test_children_hold_params_metric_histories_images_and_status(tracked):
    _, outcome, client, _, children = tracked
    rows = {r.trial_id: r for r in [*outcome.rows, *outcome.confirm_rows]}
    for child in children:
        row = rows[child.data.tags[TRIAL_TAG]]
        settings = row.params.get("confirm", {}).get("settings", row.params)
        for key in ("lr_g", "lr_d", "g_width"):  # every sampled parameter, as sampled
            assert float(child.data.params[key]) == pytest.approx(settings[key], rel=1e-6)
        assert child.data.params["z_dim"] == "8" and child.data.params["image_size"] == "16"
        history = client.get_metric_history(child.info.run_id, "fid_lite")
        steps = sorted(m.step for m in history)
        assert steps == ([20, 40] if row.metrics["step"] == 40 else [20])
        assert all(math.isfinite(m.value) for m in history)
        assert client.get_metric_history(child.info.run_id, "collapse")
        assert logged_grid_steps(client, child.info.run_id) == steps  # one grid per evaluation
        # the numbers the search ranked by, as the child's final metrics
        assert child.data.metrics["fid_lite_best"] == pytest.approx(row.metrics["fid_lite_best"])
        assert child.data.metrics["best_step"] == row.metrics["best_step"]
        # how often each side skipped its update (loss balancing, off here): every trial
        assert child.data.metrics["skipped_d"] == child.data.metrics["skipped_g"] == 0.0
        assert child.data.metrics["collapse_at_best"] == pytest.approx(row.metrics["collapse_at_best"])
        assert child.data.tags[STATUS_TAG] == row.status
        assert child.info.status == ("FAILED" if row.status in BROKEN else "FINISHED")


def test_parent_holds_settings_summary_pareto_and_the_confirmed_winner(tracked):
    _, outcome, client, (parent,), children = tracked
    assert parent.data.params["trials"] == "4" and parent.data.params["space"] == "tracked"
    assert parent.info.status == "FINISHED"
    artifacts = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert {"leaderboard.txt", "leaderboard.json", "pareto_front.json", "space", "analysis"} <= artifacts
    plots = {f.path for f in client.list_artifacts(parent.info.run_id, "analysis")}
    assert {"analysis/optimization_history.png", "analysis/pareto_front.png"} <= plots
    runs_of = {c.data.tags[TRIAL_TAG]: c.info.run_id for c in children}
    # best_run_id: the confirmed winner's best fresh-seed run (what `sample --run best` uses)
    winner = outcome.confirmation[0]
    assert parent.data.tags["gan_search.confirmed_trial_id"] == winner.trial_id
    best_run = parent.data.tags["gan_search.best_run_id"]
    assert best_run == runs_of[outcome.best.trial_id]
    assert outcome.best.trial_id in {run["trial_id"] for run in winner.runs}
    assert "checkpoint/generator.pt" in {f.path for f in client.list_artifacts(best_run, "checkpoint")}
    assert parent.data.tags["gan_search.baseline_run_id"] == runs_of[outcome.baseline.trial_id]
    # the Pareto front: exactly the children of the trials no other trial dominates
    points = {r.trial_id: (r.metrics["score"], r.metrics["score_collapse"]) for r in outcome.rows}
    front = {t for t, p in points.items()
             if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points.values())}
    assert set(parent.data.tags["gan_search.pareto_run_ids"].split(",")) == {runs_of[t] for t in front}
    assert parent.data.metrics["logging_seconds"] > 0


def test_sample_writes_a_fresh_grid_from_the_best_checkpoint(tracked, tmp_path):
    runs = tracked[0]
    out = tmp_path / "grid.png"
    result = cli("sample", "--runs-dir", str(runs), "--run", "best", "--n", "16",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as grid:
        assert grid.size == (4 * 18 + 2, 4 * 18 + 2)  # 4 x 4 grid of 16 px samples
    bad = cli("sample", "--runs-dir", str(runs), "--run", "0123abcd", "--out", str(out))
    assert bad.returncode == 2 and "--run 0123abcd: no such run" in bad.stderr


def test_unreachable_tracking_server_fails_before_any_trial(tmp_path):
    started = time.monotonic()
    result = cli("run", "--space", "smoke", "--runs-dir", str(tmp_path),
                 "--tracking-uri", "http://127.0.0.1:9")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the MLflow tracking server" in lines[0]
    assert not (tmp_path / "tune").exists()  # no trial started
    assert time.monotonic() - started < 60


def test_ui_refuses_a_missing_store(tmp_path):
    result = cli("ui", "--runs-dir", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "no MLflow store in" in result.stderr


REGISTERED = """
import sys, torch, mlflow, mlflow.pytorch
mlflow.set_tracking_uri(sys.argv[1])
with torch.no_grad():
    torch.save(mlflow.pytorch.load_model(sys.argv[2])(torch.load(sys.argv[3])), sys.argv[4])
print("gan_search" in sys.modules)
"""


def test_the_delivered_generator_is_a_registered_model_loaded_without_gan_search(tracked,
                                                                                 tmp_path):
    import subprocess
    import sys

    import torch

    from gan_search.engine.models import load_generator
    from gan_search.tracking.store import store_paths

    runs, outcome, client, (parent,), _ = tracked
    uri = parent.data.tags["gan_search.model"]
    assert uri == "models:/tracked-search/1"
    version = client.get_model_version("tracked-search", "1")
    assert version.run_id == parent.info.run_id and version.status == "READY"
    delivered = json.loads((Path(outcome.delivered) / "delivered.json").read_text())
    assert version.tags["run"] == delivered["run"]
    z = torch.randn(6, 8, 1, 1, generator=torch.Generator().manual_seed(0))
    torch.save(z, tmp_path / "z.pt")
    loaded = subprocess.run([sys.executable, "-c", REGISTERED, store_paths(str(runs))[0], uri,
                             str(tmp_path / "z.pt"), str(tmp_path / "x.pt")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split()[-1] == "False"  # MLflow and torch alone
    generator, _, _ = load_generator(Path(outcome.delivered) / "generator.pt")
    with torch.no_grad():
        assert torch.allclose(torch.load(tmp_path / "x.pt"), generator(z), atol=1e-6)
