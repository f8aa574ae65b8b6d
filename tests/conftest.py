"""Shared fixtures. Every test run gets its own dataset cache, so nothing leaks
between runs or into the user's ~/.cache."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


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


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed `gan-search` entry point as a user would."""
    script = Path(sys.executable).parent / "gan-search"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gan_search.cli"]
    return subprocess.run([*command, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
