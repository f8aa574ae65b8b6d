"""Shared fixtures. Every test run gets its own dataset cache, so nothing leaks between runs
or into the user's ~/.cache; one tracked search is shared by every test that reads one
(helpers.py holds the shared functions)."""

import os

import pytest

from helpers import search_runs, tiny_space, write_space


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("GAN_SEARCH_CACHE")
    os.environ["GAN_SEARCH_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("GAN_SEARCH_CACHE", None)
    else:
        os.environ["GAN_SEARCH_CACHE"] = old


# Two objectives, a cited baseline, ASHA, and a confirmation of the top two with one fresh
# seed each: every kind of record a search makes, in one small search.
TRACKED = tiny_space(
    parameters={"lr_g": {"kind": "loguniform", "low": 1e-4, "high": 1e-2},
                "lr_d": {"kind": "loguniform", "low": 1e-4, "high": 1e-2},
                "g_width": {"kind": "int", "low": 4, "high": 8}},
    fixed={"z_dim": 8, "batch_size": 32, "d_width": 8},
    objectives=["fid_lite", "collapse"],
    budget={"trials": 4, "eval_samples": 100},
    strategy="tpe-asha",
    scheduler={"collapse_threshold": 0.9},
    resources={"cpu": 0.5},
    baseline={"name": "paper", "values": {"lr_g": 2.0e-4, "lr_d": 2.0e-4, "g_width": 8},
              "sources": {"lr_g": "test", "lr_d": "test", "g_width": "test"}})


@pytest.fixture(scope="session")
def tracked(tmp_path_factory):
    """One real search recorded in the embedded MLflow store, run through the Python API a
    notebook uses: (runs dir, outcome, client, parent runs, child runs)."""
    from gan_search import load_space, search

    runs = tmp_path_factory.mktemp("runs")
    write_space(TRACKED, runs, "tracked")
    outcome = search(load_space(str(runs / "tracked.yaml")), runs_dir=str(runs),
                     name="tracked-search", confirm=2, confirm_seeds=1, log=lambda line: None)
    client, parents, children = search_runs(str(runs), "tracked-search")
    return runs, outcome, client, parents, children
