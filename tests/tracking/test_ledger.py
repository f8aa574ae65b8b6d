"""The ledger (what MLflow must hold of each trial, kept on disk until written) and the
recorder (the guarded MLflow I/O) on their own, on a real embedded MLflow store: a trial's
record says what it is, unwritten records survive a restart and are checked before they are
written again, nothing is logged twice, and a failing MLflow never raises."""

import json

from mlflow.tracking import MlflowClient

from gan_search.core.settings import confirm_config, with_role
from gan_search.core.vocabulary import Role, Status
from gan_search.tracking.ledger import Ledger
from gan_search.tracking.recorder import Recorder
from gan_search.tracking.store import store_paths


def test_a_records_params_tags_and_name_say_what_the_trial_is(tmp_path):
    ledger = Ledger(tmp_path, "s1", {"image_size": 16, "sizes": [1, 2]})
    base = ledger.record("b", with_role({"lr_g": 2e-4}, Role.BASELINE))
    member = ledger.record("m", with_role({"lr_g": 1e-3}, Role.MEMBER))
    again = ledger.record("c", {"confirm": confirm_config("b", True, {"lr_g": 2e-4, "seed": 1001})})
    assert (base.name, base.tags["gan_search.role"]) == ("baseline_b", "baseline")
    assert base.params == {"image_size": "16", "sizes": "[1, 2]", "lr_g": "0.0002"}
    assert "role" not in member.params and member.tags["gan_search.role"] == "member"
    assert (again.name, again.tags["gan_search.confirm_of"]) == ("confirm_baseline_b_seed1001", "b")
    # the record is made at a trial's first event: a later config (a PBT copy) changes nothing
    assert ledger.record("m", with_role({"lr_g": 9e-3}, Role.MEMBER)) is member


def test_unwritten_records_are_kept_on_disk_and_checked_after_a_restart(tmp_path):
    ledger = Ledger(tmp_path, "s1", {})
    ledger.parent_id = "parent"
    record = ledger.record("t", {"lr_g": 1e-3})
    record.metrics[20] = {"fid_lite": 5.0}
    ledger.save()
    saved = json.loads((tmp_path / "mlflow_pending" / "records.json").read_text())
    assert saved["parent_id"] == "parent" and [r["trial_id"] for r in saved["records"]] == ["t"]

    restarted = Ledger(tmp_path, "s1", {})
    restarted.load()
    kept = restarted.records["t"]
    assert restarted.parent_id == "parent" and kept.metrics == {20: {"fid_lite": 5.0}}
    assert kept.check_first  # its write may have half-happened: MLflow is asked first
    kept.started, kept.metrics = True, {}
    restarted.save()  # nothing left: the folder goes
    assert not (tmp_path / "mlflow_pending").exists()


def recorder(tmp_path, log=print):
    (tmp_path / "space.yaml").write_text("data: {source: fake}\n")
    return Recorder(str(tmp_path), None, "exp", {"searched": ["lr_g"], "trials": 2},
                    str(tmp_path / "space.yaml"), log)


def test_the_recorder_writes_the_ledger_once_and_a_rewrite_adds_no_step(tmp_path):
    ledger, mlflow = Ledger(tmp_path / "s1", "s1", {"iters": 40}), recorder(tmp_path)
    record = ledger.record("t", with_role({"lr_g": 1e-3}, Role.SEARCH))
    record.metrics = {20: {"fid_lite": 6.0}, 40: {"fid_lite": 5.0}}
    record.status = Status.FINISHED
    mlflow.sync(ledger)
    client = MlflowClient(store_paths(str(tmp_path))[0])
    run = client.get_run(record.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "trial_t"
    assert run.data.params == {"iters": "40", "lr_g": "0.001"}
    assert run.data.tags["mlflow.parentRunId"] == ledger.parent_id
    assert run.data.tags["gan_search.status"] == "finished"
    assert not record.pending and not (tmp_path / "s1" / "mlflow_pending").exists()

    # a restart that lost which run it wrote (its write half-happened): found, not doubled
    record.run_id, record.check_first = None, True
    record.metrics, record.closed = {40: {"fid_lite": 5.0}, 60: {"fid_lite": 4.0}}, False
    mlflow.sync(ledger)
    assert record.run_id == run.info.run_id
    assert [m.step for m in client.get_metric_history(run.info.run_id, "fid_lite")] == [20, 40, 60]
    assert len(client.search_runs([run.info.experiment_id])) == 2  # the parent and one child


def test_a_failing_mlflow_never_raises_is_said_once_and_waits_before_trying_again(tmp_path):
    said = []
    mlflow = recorder(tmp_path, said.append)
    calls = []

    def broken():
        calls.append(1)
        raise OSError("the store is gone")
    assert not mlflow.guarded("a record", broken)
    assert not mlflow.guarded("a record", broken)  # not due: not even tried
    assert calls == [1] and not mlflow.due()
    assert mlflow.guarded("a record", broken, force=False) is False and len(said) == 1
    assert "the store is gone" in said[0] and "kept and retried" in said[0]
    assert not mlflow.guarded("a record", broken, force=True)  # the search's end forces it
    assert calls == [1, 1] and len(said) == 1  # said once
