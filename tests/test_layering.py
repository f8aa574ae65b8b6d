"""The layers (README.md, "Layout"), per folder: core <- engine <- hpo (the search layer);
core <- tracking (search and tracking are siblings); both <- app <- cli.

Two checks: every import statement in the package's source (lazy ones inside functions
included) obeys its folder's rule; and importing a light module loads nothing heavy (the
CLI checks its input before the slow imports)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gan_search"
GLUE = ("ray", "optuna", "mlflow")
# folder -> what it must never import (packages or gan_search layers): search and tracking
# are siblings over core, which holds the vocabulary both speak (results, settings, resume)
RULES = {
    "core": ("torch", "torchvision", *GLUE, "gan_search.engine", "gan_search.hpo",
             "gan_search.tracking", "gan_search.app", "gan_search.cli"),
    "engine": (*GLUE, "gan_search.hpo", "gan_search.tracking", "gan_search.app",
               "gan_search.cli"),
    "hpo": ("mlflow", "gan_search.tracking", "gan_search.app", "gan_search.cli"),
    "tracking": ("optuna", "torchvision", "gan_search.app", "gan_search.cli", "gan_search.engine",
                 "gan_search.hpo"),
}
TRACKING_RAY = ("ray.tune",)  # the Callback base class and Checkpoint: nothing deeper


def imports(path: Path) -> set[str]:
    """Every module an import statement in the file names (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def test_every_layer_has_a_folder_and_nothing_sits_beside_them():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "app.py", "cli.py"]
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == \
        sorted(RULES)


@pytest.mark.parametrize("layer", sorted(RULES))
def test_no_import_runs_against_the_layers(layer):
    wrong = []
    for path in layer_files(layer):
        for name in imports(path):
            if any(under(name, forbidden) for forbidden in RULES[layer]):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
            if layer == "tracking" and under(name, "ray") and name not in TRACKING_RAY:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name} (a Ray internal)")
    assert wrong == []


def test_the_rule_check_sees_a_wrong_import(tmp_path):
    """The AST check itself: a lazy import inside a function counts."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import ray.tune\n    from gan_search.hpo import run\n")
    assert imports(module) == {"ray.tune", "gan_search.hpo"}


# inside search: a room -> what it must never import (the run, the trainable and the
# dashboard sit on top of the three rooms; what a search found is told by outcome/ alone)
ROOMS = {
    "strategies": ("gan_search.hpo.outcome", "gan_search.hpo.run",
                   "gan_search.hpo.trainable", "gan_search.hpo.dashboard"),
    "driver": ("gan_search.hpo.outcome", "gan_search.hpo.run",
               "gan_search.hpo.trainable", "gan_search.hpo.dashboard"),
    "outcome": ("gan_search.hpo.run", "gan_search.hpo.trainable",
                "gan_search.hpo.dashboard"),
}


def test_search_is_in_rooms_and_no_import_runs_against_them():
    assert sorted(p.name for p in (PACKAGE / "hpo").glob("*.py")) == [
        "__init__.py", "dashboard.py", "run.py", "trainable.py"]
    wrong = [f"{path.relative_to(PACKAGE)} imports {name}"
             for room, forbidden in ROOMS.items()
             for path in sorted((PACKAGE / "hpo" / room).rglob("*.py"))
             for name in imports(path) if any(under(name, f) for f in forbidden)]
    assert wrong == []


def test_only_tracking_imports_mlflow():
    importers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                       if any(under(n, "mlflow") for n in imports(p)))
    assert importers and all(p.startswith("tracking/") for p in importers), importers


# module(s) imported alone -> what must not be loaded then
LIGHT = {
    "gan_search.core.space": ("torch", "gan_search.core.config", "gan_search.engine", *GLUE),
    "gan_search.core.config": ("torch", *GLUE),
    "gan_search.engine.trainer": (*GLUE, "torchvision"),  # torchvision costs each trial a second
    "gan_search.engine.metrics": (*GLUE, "sklearn"),
    # what the CLI checks input with, before anything heavy loads
    "gan_search.hpo.driver.placement, gan_search.hpo.driver.names, "
    "gan_search.hpo.driver.paths, gan_search.hpo.driver.cluster, "
    "gan_search.hpo.outcome.confirm, gan_search.core.settings, gan_search.core.results, "
    "gan_search.hpo.strategies.study, gan_search.hpo.dashboard":
        ("torch", *GLUE),
    "gan_search.cli": ("torch", *GLUE),
    "gan_search.hpo.strategies.tuners, gan_search.hpo.outcome.analysis":
        ("mlflow", "torch.nn"),
    "gan_search.hpo.trainable, gan_search.hpo.driver.progress": ("optuna", "mlflow"),
}


def test_light_modules_load_nothing_heavy():
    """Each in a fresh interpreter (all at once: each is a process waiting on imports)."""
    runs = {module: subprocess.Popen(
        [sys.executable, "-c", f"import sys, {module}; "
                               f"print(' '.join(m for m in {forbidden!r} if m in sys.modules))"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for module, forbidden in LIGHT.items()}
    loaded = {}
    for module, run in runs.items():
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        loaded[module] = out.strip()
    assert loaded == {module: "" for module in LIGHT}


def test_the_study_is_read_through_optunas_public_api_only():
    """A search's Optuna study is opened with ``optuna.load_study`` on its storage, never
    through the private ``_ot_study`` / ``_ot_trials`` of Ray's ``OptunaSearch``."""
    hits = [f"{path.relative_to(PACKAGE)}:{number}" for path in PACKAGE.rglob("*.py")
            for number, line in enumerate(path.read_text().splitlines(), 1) if "._ot_" in line]
    assert not hits


def test_a_strategy_is_made_from_its_name_only_by_the_space_parser():
    """One enum from the space file to the tuner: ``Strategy(name)`` is called in
    core/space.py (``strategy_of``) and nowhere else; the rest pass the enum along."""
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (
                    isinstance(node.func, ast.Name) and node.func.id == "Strategy" or
                    isinstance(node.func, ast.Attribute) and node.func.attr == "Strategy"):
                calls.append(str(path.relative_to(PACKAGE)))
    assert calls == ["core/space.py"]


def test_no_module_is_longer_than_450_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}
