"""What Tune retries: a trial whose checkpoint the search's storage refused once (a shared
folder or s3 that hiccuped) trains on from its last checkpoint; a trial's own error is not
retried (tests/hpo/test_cluster.py: a trial promised a GPU it cannot see fails once).

The storage here is a real local folder behind Ray's own storage layer (a pyarrow
filesystem over fsspec's local one), which refuses one write: the first trial to save its
second checkpoint. A file shared by every process says whether the refusal is still due."""

import os
import sys

import pyarrow.fs
import ray.cloudpickle
from fsspec.implementations.local import LocalFileSystem

from helpers import tiny_space, write_space
from gan_search import search
from gan_search.core.vocabulary import Status
from gan_search.hpo.strategies import sampled, tuning

SECOND_CHECKPOINT = "checkpoint_000001"


class RefusesOnce(pyarrow.fs.FSSpecHandler):
    """A local folder that refuses the first ``checkpoint_000001`` folder while ``marker``
    exists (the refusal removes it: once for all processes)."""

    def __init__(self, marker: str):
        super().__init__(LocalFileSystem())
        self.marker = marker

    def create_dir(self, path, recursive):
        if str(path).rstrip("/").endswith(SECOND_CHECKPOINT):
            try:
                os.remove(self.marker)
            except FileNotFoundError:
                pass
            else:
                raise OSError(f"storage unavailable: {path} (refused once by the test)")
        return super().create_dir(path, recursive)


def test_a_checkpoint_the_storage_refused_is_retried_from_the_last_one(tmp_path, monkeypatch):
    marker = tmp_path / "refuse-once"
    marker.write_text("")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # trials unpickle the fs

    def flaky_storage(*args, **options):
        config = tuning.run_config(*args, **options)
        config.storage_filesystem = pyarrow.fs.PyFileSystem(RefusesOnce(str(marker)))
        return config

    monkeypatch.setattr(sampled, "run_config", flaky_storage)
    spec = write_space(tiny_space(), tmp_path)  # 2 trials of 40 iterations, evaluated at 20, 40
    outcome = search(spec, runs_dir=str(tmp_path / "runs"), name="flaky", confirm=0,
                     track=False, log=lambda line: None)

    assert not marker.exists()  # the storage did refuse a checkpoint
    assert [r.status for r in outcome.rows] == [Status.FINISHED] * 2
    retried = [r for r in outcome.rows if r.metrics["resumed_from_step"] > 0]
    assert [r.metrics["resumed_from_step"] for r in retried] == [20]  # from its first checkpoint
    assert all(r.metrics["step"] == 40 and r.error is None for r in outcome.rows)
