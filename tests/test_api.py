"""The Python API a notebook uses (``from gan_search import search, load_space``): a whole
search as ``gan-search run`` runs it, its input checked in one clear error, and an import
that loads nothing heavy and changes no process-wide setting."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_search.core.errors import ConfigError
from helpers import tiny_space, write_space


def test_importing_the_api_loads_nothing_heavy_and_changes_no_setting():
    code = ("import os, sys; before = dict(os.environ); "
            "from gan_search import search, load_space, configure, list_spaces; "
            "heavy = [m for m in ('ray', 'torch', 'optuna', 'mlflow') if m in sys.modules]; "
            "print(heavy, dict(os.environ) == before, callable(search), 'digits' in list_spaces())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "True", "True", "True"]


def test_a_search_from_python_as_the_readme_shows(tracked, tmp_path):
    """The session's tracked search ran through ``search(load_space(path), ...)``
    (conftest.py): its outcome is what a notebook reads."""
    from gan_search import search

    runs, outcome, _, parents, _ = tracked
    assert search.__module__ == "gan_search.app"  # still the function after a search ran
    assert outcome.name == "tracked-search" and parents[0].info.run_name == "tracked-search"
    assert outcome.best is not None and outcome.confirmation
    generator = torch.load(Path(outcome.delivered) / "generator.pt", weights_only=True)
    assert generator  # the delivered weights, a plain state dict
    assert (runs / "tune" / "tracked-search" / "leaderboard.json").is_file()


def test_the_api_refuses_bad_input_before_anything_runs(tmp_path):
    from gan_search import search

    write_space(tiny_space(), tmp_path)
    with pytest.raises(ConfigError, match="--name"):
        search("digits", name="../elsewhere", runs_dir=str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match="no search 'notebook'"):
        search(str(tmp_path / "tiny.yaml"), name="notebook", runs_dir=str(tmp_path / "runs"),
               resume=True)
    with pytest.raises(ConfigError, match="trials"):
        search(str(tmp_path / "tiny.yaml"), trials=0, runs_dir=str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()  # nothing written
