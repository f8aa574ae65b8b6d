"""A store written by the previous release is still read by `gan-search sample` and the UI's
link: fixtures/store-9f193cb.tar.gz is the MLflow store (SQLite + artifacts) of a small
search (2 trials and a baseline, a confirmation) made by release 9f193cb, before the
layers moved into folders. MLflow keeps absolute artifact paths, so the store is moved
here as a user moving a runs folder would have to: its two artifact columns re-pointed."""

import sqlite3
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from gan_search.core.vocabulary import Role
from gan_search.tracking import ROLE_TAG
from gan_search.tracking.store import find_run, require_store, search_url
from helpers import cli, search_runs

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "store-9f193cb.tar.gz"
WRITTEN_AT = "file:///tmp/oldstore/runs"  # where the old release wrote it


@pytest.fixture(scope="module")
def old_store(tmp_path_factory):
    runs = tmp_path_factory.mktemp("old") / "runs"
    runs.mkdir()
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(runs, filter="data")
    with sqlite3.connect(runs / "mlflow.db") as db:
        db.execute("update runs set artifact_uri = replace(artifact_uri, ?, ?)",
                   (WRITTEN_AT, runs.as_uri()))
        db.execute("update experiments set artifact_location = replace(artifact_location, ?, ?)",
                   (WRITTEN_AT, runs.as_uri()))
    return runs


def test_the_old_search_and_its_roles_are_found(old_store):
    _, parents, children = search_runs(str(old_store), "old-release")
    assert len(parents) == 1 and parents[0].data.tags[ROLE_TAG] == Role.PARENT
    roles = sorted(c.data.tags[ROLE_TAG] for c in children)
    assert roles == [Role.BASELINE, Role.CONFIRM, Role.CONFIRM, Role.SEARCH]
    url = search_url(require_store(str(old_store)), None, "http://127.0.0.1:5000")
    assert f"#/experiments/{parents[0].info.experiment_id}/runs?" in url
    assert "viewStateShareKey=old-release" in url and "workflowType=machine_learning" in url


def test_sample_draws_from_the_old_best_run(old_store, tmp_path):
    _, run_id = find_run(str(old_store), None, "best")
    _, parents, _ = search_runs(str(old_store), "old-release")
    assert run_id == parents[0].data.tags["gan_search.best_run_id"]
    out = tmp_path / "old.png"
    result = cli("sample", "--runs-dir", str(old_store), "--run", "best", "--n", "4",
                 "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"wrote 4 samples of run {run_id} (step 20)" in result.stdout
    with Image.open(out) as grid:
        assert grid.size == (2 * 18 + 2, 2 * 18 + 2)  # 2 x 2 samples of 16 px
