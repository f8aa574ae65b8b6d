"""The modules' dependency direction (DESIGN.md): lower modules never import the
glue libraries, and the space model imports nothing from the rest."""

import subprocess
import sys

import pytest

HEAVY = ("ray", "optuna", "mlflow")


@pytest.mark.parametrize("module,forbidden", [
    ("gan_search.space", ("torch", "gan_search.config", "gan_search.data", *HEAVY)),
    ("gan_search.config", ("torch", *HEAVY)),
    ("gan_search.models", HEAVY),
    ("gan_search.data", HEAVY),
    ("gan_search.train", (*HEAVY, "torchvision")),  # torchvision costs each trial a second
    # the glue the CLI checks input with, before anything heavy loads
    ("gan_search.placement, gan_search.search_names, gan_search.cluster, gan_search.confirm, "
     "gan_search.files", ("torch", *HEAVY)),
    ("gan_search.tuning, gan_search.analysis", ("mlflow", "torch.nn")),
    ("gan_search.metrics", (*HEAVY, "sklearn")),
    ("gan_search.cli", ("torch", *HEAVY)),
    ("gan_search.trainable", ("optuna", "mlflow")),
    ("gan_search.report", ("optuna", "mlflow")),
    ("gan_search.search", ()),  # the CLI imports heavy modules only when a command needs them
])
def test_module_does_not_import(module, forbidden):
    code = (f"import sys, {module}; "
            f"print(' '.join(m for m in {forbidden!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{module} imports {result.stdout.strip()}"


def test_only_tracking_imports_mlflow():
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "gan_search"
    importers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                       if "import mlflow" in p.read_text() or "from mlflow" in p.read_text())
    assert importers == ["tracking/checkpoints.py", "tracking/store.py", "tracking/tracker.py"]
