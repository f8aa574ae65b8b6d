"""What a search delivers: the winner's long-trained generator, as files beside its summary.

``<search folder>/delivered/``: ``generator.pt`` (G's weights, its TrainConfig and step:
``gan-search sample`` and ``engine.models.Generator`` read it), ``samples.png`` (its grid)
and ``delivered.json`` (which run it is, of which configuration, its score, whether it is
the baseline's, and the settings to train it again). The run is the search's best
(``SearchOutcome.best``): after a confirmation, the confirmed winner's best fresh-seed run,
which under a budget is trained the plan's final length. When the baseline is the
confirmed winner, its generator is what is delivered, and ``delivered.json`` says so.
Written to a temporary folder and renamed into place: never half there.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from gan_search.core.results import GENERATOR_FILE, GRID_FILE, SearchOutcome
from gan_search.hpo.driver.paths import DELIVERED_DIR



def deliver(outcome: SearchOutcome, folder: Path) -> Path | None:
    """Copy the best run's generator into ``folder/delivered``; its path (None: no run
    trained to a usable end, or its checkpoint is on remote storage)."""
    best = outcome.best
    if best is None or not best.checkpoint or "://" in best.checkpoint:
        return None
    source = Path(best.checkpoint)
    if not (source / GENERATOR_FILE).is_file():
        return None
    about = {"run": best.trial_id, "configuration": outcome.winner_id,
             "baseline": outcome.baseline_won, "score": best.score, "best_step": best.metrics.get("best_step"),
             "step": best.metrics.get("step"), "checkpoint": best.checkpoint,
             "settings": dict(best.params.get("confirm", {}).get("settings", best.params))}
    target = folder / DELIVERED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".delivered-", dir=folder))
    for name in (GENERATOR_FILE, GRID_FILE):
        if (source / name).is_file():
            shutil.copy2(source / name, staging / name)
    (staging / "delivered.json").write_text(json.dumps(about, indent=2, default=str))
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target
