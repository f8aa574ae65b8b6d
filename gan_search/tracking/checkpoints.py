"""The few files of a Tune checkpoint that MLflow records need, read alone from any storage
(``core.results.read_checkpoint_file``): the sample grid and the generator; never the full
trainer state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from gan_search.core.results import (GENERATOR_FILE, GRID_FILE, best_checkpoint_of,
                                     read_checkpoint_file)


def best_checkpoint(trial: Any) -> Any:
    """The trial's kept checkpoint with the lowest FID-lite (a ``tune.Checkpoint``; of a PBT
    member, among those of the weights it ended with), or None."""
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    results = list(getattr(manager, "best_checkpoint_results", None) or [])
    return best_checkpoint_of([(r.checkpoint, r.metrics) for r in results],
                              getattr(trial, "last_result", None) or {})


def log_generator(client: MlflowClient, run_id: str, checkpoint: Any) -> None:
    """The best checkpoint's generator (weights, config, step: loads with weights_only) and
    grid as ``checkpoint/`` artifacts, read alone from the checkpoint."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for name in (GENERATOR_FILE, GRID_FILE):
            (Path(folder) / name).write_bytes(read_checkpoint_file(checkpoint, name))
            client.log_artifact(run_id, str(Path(folder) / name), "checkpoint")
