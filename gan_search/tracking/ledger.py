"""What MLflow must end up holding for a search, kept where a failure cannot lose it.

One ``TrialRecord`` per trial: its settings, tags, the evaluations and sample grids not yet
written, how it ended. The ledger keeps the records and saves those MLflow has not taken
yet (with their grids, already on disk) under ``<search>/mlflow_pending/``, so that
``finish`` and ``--resume`` can retry them. It knows nothing of MLflow's API or of threads.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gan_search.core.files import write_text_atomic
from gan_search.core.settings import TrialSettings
from gan_search.core.vocabulary import Role, Status
from gan_search.tracking.tags import CONFIRM_OF_TAG, ROLE_TAG, SEARCH_TAG, STATUS_TAG, TRIAL_TAG



@dataclass
class TrialRecord:
    """What MLflow must hold for one trial, and what of it is not written yet."""

    trial_id: str
    params: dict[str, str]
    tags: dict[str, str]
    name: str = ""  # the run's name (settings.TrialSettings.run_name); "" in older ledgers
    run_id: str | None = None
    started: bool = False  # params and tags written
    retag: bool = False  # tags changed since: write them again (never the params: MLflow
    # refuses a changed parameter, and a PBT member's settings change as it copies others)
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)  # step -> unwritten
    grids: list[int] = field(default_factory=list)  # steps whose grid waits on disk
    # the last evaluation and grid Tune reported: a trial retried from an older checkpoint
    # (its node was lost) reports those steps again, and MLflow must hold each once
    last_step: int = -1
    last_grid: int = -1
    copied: str = ""  # a PBT member's last copy of another seen (its steps may then repeat)
    status: str | None = None
    message: str | None = None
    checkpoint: str | None = None  # the best checkpoint (URI), for checkpoint/generator.pt
    closed: bool = False
    check_first: bool = False  # a write may have half-happened: look before writing again

    @property
    def pending(self) -> bool:
        return bool(not self.started or self.retag or self.metrics or self.grids or
                    (self.status and not self.closed))


class Ledger:
    """The records of one search's trials, and the folder where unwritten ones are kept.

    Args:
        folder: the search's folder; records MLflow did not take go to ``mlflow_pending/``.
        search: the search's name (a tag of every run).
        base: the settings every trial shares (recorded as each child's parameters).
    """

    def __init__(self, folder: str | Path, search: str, base: Mapping[str, Any]) -> None:
        self.folder = Path(folder) / "mlflow_pending"
        self.search, self.base = search, dict(base)
        self.records: dict[str, TrialRecord] = {}
        self.nodes: dict[str, str] = {}  # the Ray node each trial last reported from
        self.parent_id: str | None = None
        self.resumed = False  # a resumed search looks in MLflow before writing

    def record(self, trial_id: str, config: Mapping[str, Any]) -> TrialRecord:
        """The entry of a trial (made at its first event), from Tune's config of it."""
        if trial_id not in self.records:
            trial = TrialSettings.of(config)  # its role: tagged baseline, member, confirm...
            tags = {TRIAL_TAG: trial_id, SEARCH_TAG: self.search,
                    STATUS_TAG: Status.RUNNING, ROLE_TAG: trial.role}
            if trial.role == Role.CONFIRM:
                tags[CONFIRM_OF_TAG] = str(trial.confirm_of)
            params = {**self.base, **trial.values}
            self.records[trial_id] = TrialRecord(
                trial_id, {k: text(v) for k, v in params.items()},
                {k: str(v) for k, v in tags.items()}, trial.run_name(trial_id),
                check_first=self.resumed)
        return self.records[trial_id]

    def left(self) -> list[TrialRecord]:
        return [r for r in self.records.values() if r.pending]

    def grid_file(self, trial_id: str, step: int) -> Path:
        return self.folder / f"grid_{trial_id}_{step:09d}.png"

    def save(self) -> None:
        """The unwritten records on disk (grids are there already), or nothing."""
        path = self.folder / "records.json"
        left = [dataclasses.asdict(r) for r in self.left()]
        if left or self.parent_id is None:
            write_text_atomic(path, json.dumps({"parent_id": self.parent_id, "records": left},
                                               default=str))
        else:
            path.unlink(missing_ok=True)
            try:
                self.folder.rmdir()  # only when empty
            except OSError:  # not there, or a grid arrived from Tune's thread meanwhile
                pass

    def load(self) -> None:
        """Records an earlier run of the search could not write (each checked first)."""
        path = self.folder / "records.json"
        if not path.is_file():
            return
        state = json.loads(path.read_text())
        self.parent_id = self.parent_id or state.get("parent_id")
        for raw in state["records"]:
            raw["metrics"] = {int(k): v for k, v in raw["metrics"].items()}
            self.records.setdefault(raw["trial_id"], TrialRecord(**{**raw, "check_first": True}))


def text(value: Any) -> str:
    """A setting as an MLflow parameter value (lists as JSON)."""
    return json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
