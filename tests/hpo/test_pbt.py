"""Population-based training (``--strategy pbt``): a real local Ray Tune PBT search, its
members copying better members' checkpoints and training on with perturbed settings, the
winner's schedule replayed in the confirmation, and what MLflow shows of it."""

import json
import math
from pathlib import Path

import optuna
import pytest

from helpers import search_runs, tiny_space, write_space
from recorded import Results
from gan_search.app import run_search
from gan_search.core.config import search_config
from gan_search.core.settings import TrialSettings
from gan_search.hpo.outcome.report import leaderboard, outcome_lines
from gan_search.hpo.trainable import new_progress, note_exploit

PBT = tiny_space(
    parameters={"lr_g": {"kind": "loguniform", "low": 1e-5, "high": 1e-1},
                "lr_d": {"kind": "loguniform", "low": 1e-5, "high": 1e-1},
                "beta1": {"kind": "uniform", "low": 0.0, "high": 0.9}},
    budget={"trials": 4, "iters": 100, "eval_every": 20},
    strategy="pbt", scheduler={"perturbation_interval": 1},
    baseline={"name": "paper", "values": {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5},
              "sources": {"lr_g": "t", "lr_d": "t", "beta1": "t"}})


def test_note_exploit_continues_the_copied_schedule_and_restarts_the_best_so_far():
    class Trainer:  # what note_exploit reads: the step and the settings in effect
        step = 40
        config = search_config(write_space(PBT, __import__("tempfile").mkdtemp()),
                               name="x").trial_config({"lr_g": 1e-3, "lr_d": 2e-3, "beta1": 0.2})

        seeds = []

        def reseed(self, salt):
            self.seeds.append(salt)

    donor = new_progress("a", Trainer.config)
    donor["best"]["fid_lite"], donor["best_step"] = 12.0, 40
    assert not note_exploit(donor, "a", Trainer())  # its own (resume, retry): no change
    assert donor["lineage"] == [] and len(donor["schedule"]) == 1 and Trainer.seeds == []
    saved = json.loads(json.dumps(donor))
    assert note_exploit(donor, "b", Trainer())  # b copied a's checkpoint at step 40
    assert donor["member"] == "b" and donor["best"]["fid_lite"] == math.inf
    entry = donor["lineage"][0]
    assert {k: entry[k] for k in ("member", "from", "step")} == {"member": "b", "from": "a",
                                                                "step": 40}
    assert entry["values"] == donor["schedule"][1]["values"]
    assert donor["schedule"][1]["step"] == 40 and donor["schedule"][1]["values"]["lr_g"] == 1e-3
    assert len(Trainer.seeds) == 1  # b draws its own batches and noise from here
    assert note_exploit(saved, "b", Trainer())  # the same checkpoint copied a second time
    assert saved["lineage"][0]["copy"] != entry["copy"]  # ... is a copy of its own


def test_a_schedule_gives_the_values_in_effect_at_each_step():
    trial = TrialSettings.of({"confirm": {"of": "x", "settings": {"seed": 1001}, "schedule": [
        {"step": 0, "values": {"lr_g": 1e-3}}, {"step": 40, "values": {"lr_g": 5e-4}}]}})
    assert trial.values_at(0) == trial.values_at(39) == {"lr_g": 1e-3}
    assert trial.values_at(40) == {"lr_g": 5e-4}
    assert trial.next_change(0) == 40 and trial.next_change(40) is None
    assert trial.run_name("t") == "replay_x_seed1001"


def test_pbt_members_copy_better_ones_train_on_with_new_settings_and_the_winner_replays(
        tmp_path):
    results = Results()
    config = search_config(write_space(PBT, tmp_path, "pbt"), runs_dir=str(tmp_path),
                           name="pbt-test", confirm=3, confirm_seeds=1)
    lines = []
    outcome = run_search(config, log=lines.append, callbacks=[results])
    rows = {r.trial_id: r for r in outcome.rows}
    assert len(rows) == 4 and all(r.status == "finished" for r in rows.values())
    assert all(r.metrics["step"] == 100 for r in rows.values())  # every member: full length
    baseline = outcome.baseline
    assert baseline is not None and baseline.metrics["exploits"] == 0  # never replaced
    # the population trains together: every member's first evaluation comes before any
    # member's last (members take turns; none waits for others to end before it starts)
    order = [(t, r["step"]) for t, r in results.seen if "fid_lite" in r]
    firsts = [order.index((t, 20)) for t in rows]
    assert max(firsts) < min(i for i, (t, step) in enumerate(order) if step == 100)
    for row in rows.values():  # its best checkpoint is of the weights it ended with
        kept = json.loads((Path(row.checkpoint) / "progress.json").read_text())
        assert kept["lineage"] == json.loads(row.metrics["lineage"])
        # each copy it made is kept in its own folder: the copied member deletes its older
        # checkpoints, and a member waiting for its turn must still find the one it copied
        made = [e for e in json.loads(row.metrics["lineage"]) if e["member"] == row.trial_id]
        assert bool(made) <= bool(list(Path(row.path).glob("copied_checkpoint_*")))

    # every copy: a member took another's checkpoint at that one's step, trained on from it
    # with perturbed settings that its optimisers really use
    copies = 0
    for position, (trial_id, result) in enumerate(results.seen):
        earlier = [r for t, r in results.seen[:position] if t == trial_id]
        if not result.get("copy_id") or (earlier and earlier[-1].get("copy_id") ==
                                         result["copy_id"]):
            continue
        copies += 1
        entry = json.loads(result["lineage"])[-1]
        assert entry["member"] == trial_id and entry["from"] in rows and entry["from"] != trial_id
        assert result["resumed_from_step"] == entry["step"]  # from the copied checkpoint
        # it trained on from there (one given a finished member's checkpoint is scored once)
        assert result["step"] == min(entry["step"] + 20, 100)
        assert entry["step"] in [r["step"] for t, r in results.seen[:position]
                                 if t == entry["from"]]  # a step the donor had reported
        assert result["opt_lr_g"] == result["setting_lr_g"] == entry["values"]["lr_g"]
        assert result["opt_lr_d"] == entry["values"]["lr_d"]
        assert result["opt_beta1"] == entry["values"]["beta1"]
        donor = [r for t, r in results.seen[:position] if t == entry["from"]][-1]
        assert any(not math.isclose(donor[f"setting_{k}"], entry["values"][k])
                   for k in ("lr_g", "lr_d", "beta1"))  # perturbed, not just copied
        assert 1e-5 <= entry["values"]["lr_g"] <= 1e-1 and 0 <= entry["values"]["beta1"] <= 0.9
    assert copies >= 1 and any("copied" in line and "at step" in line for line in lines)
    # no copy at a last evaluation: a member copying there, or copying a finished member's
    # last checkpoint, would train nothing more and end a duplicate of the one it copied
    assert all(r.get("resumed_from_step") != 100 for t, r in results.seen)
    assert all(e["step"] < 100 for row in rows.values()
               for e in json.loads(row.metrics["lineage"]))
    finals = [(r.metrics["score"], r.metrics["collapse_best"]) for r in rows.values()]
    assert len(set(finals)) == len(finals)  # no two members ended as the same weights

    # the confirmation replays each confirmed member's schedule from scratch on a fresh seed
    client, parents, children = search_runs(str(tmp_path), "pbt-test")
    by_name = {run.info.run_name: run for run in children}
    replayed = [c for c in outcome.confirmation if c.schedule]
    assert replayed  # a member that copied another has a schedule with a change
    for candidate in replayed:
        run = by_name[f"replay_{candidate.trial_id}_seed1001"]
        assert candidate.runs[0]["status"] == "finished"
        trial = TrialSettings.of(next(r.params for r in outcome.confirm_rows
                                      if r.trial_id == run.data.tags["gan_search.trial_id"]))
        assert trial.schedule == tuple(candidate.schedule)
        history = client.get_metric_history(run.info.run_id, "setting_lr_g")
        assert [m.step for m in history] == [20, 40, 60, 80, 100]
        for metric in history:  # reported at step s: the value in effect before s
            assert metric.value == trial.values_at(metric.step - 1)["lr_g"]
        assert len({m.value for m in history}) > 1 or len({
            json.dumps(e["values"]) for e in candidate.schedule}) > 1

    # MLflow: members say what they are, copies are tagged, the winner's schedule is plotted
    names = sorted(run.info.run_name for run in children)
    assert sum(n.startswith("member_") for n in names) == 3
    assert sum(n.startswith("baseline_") for n in names) == 1
    copied = [run for run in children if run.data.tags.get("gan_search.lineage")]
    assert copied and all(run.data.tags["gan_search.role"] == "member" for run in copied)
    for run in copied:
        row = rows[run.data.tags["gan_search.trial_id"]]
        assert json.loads(run.data.tags["gan_search.lineage"]) == json.loads(
            row.metrics["lineage"])
        assert run.data.metrics["exploits"] == row.metrics["exploits"]
    parent = parents[0].info.run_id
    plots = [a.path for a in client.list_artifacts(parent, "analysis")]
    winner = outcome.confirmation[0]
    assert ("analysis/pbt_schedule.png" in plots) == bool(winner.schedule)
    summary = "\n".join(outcome_lines(outcome, config, tmp_path / "leaderboard.json"))
    assert ("the winner's schedule: " in summary) == bool(winner.schedule)
    assert "what mattered: no importances for pbt" in summary
    # the stored Optuna study: the population Optuna proposed, each member one trial (the
    # baseline first) with the settings it started from, ended with its score and copies
    study = optuna.load_study(study_name="pbt-test", storage=f"sqlite:///{tmp_path}/optuna.db")
    trials = {t.user_attrs["tune_trial"]: t for t in study.trials}
    assert trials.keys() == rows.keys() and len(study.trials) == 4
    assert study.trials[0].user_attrs["role"] == "baseline" and \
        study.trials[0].user_attrs["tune_trial"] == baseline.trial_id
    assert study.trials[0].params == pytest.approx(config.baseline_point())
    assert [t.user_attrs["role"] for t in study.trials[1:]] == ["member"] * 3
    for trial_id, trial in trials.items():
        row = rows[trial_id]
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.value == pytest.approx(row.metrics["score"])
        assert trial.user_attrs["exploits"] == row.metrics["exploits"]
        assert trial.user_attrs["schedule"] == json.loads(row.metrics["schedule"])
        # its FID-lite at each evaluation (Tune's iteration; a copy goes on from the donor's)
        assert min(trial.intermediate_values) == 1 and len(trial.intermediate_values) >= 4
    board = leaderboard(outcome, sorted(config.searched)).splitlines()
    assert board[0].split()[7] == "copies"  # the leaderboard shows each member's copies
    for row in rows.values():
        line = next(line for line in board[1:] if line.split()[1] == row.trial_id)
        copies = row.metrics["exploits"]
        assert (f"{copies}, last {row.metrics['copied']}" if copies else " 0 ") in line


def test_ctrl_c_then_resume_of_a_pbt_search_runs_no_member_twice(tmp_path):
    """Ctrl-C once a member has finished, then --resume: the population stays the four
    members it was (no new trial), the finished one is not trained again, the others go on
    from their checkpoints to the end, and the confirmation replays the winner."""
    import sys
    from pathlib import Path

    from helpers import cli, interrupt, space_file

    space = space_file({**PBT, "budget": {**PBT["budget"], "iters": 160}}, tmp_path, "pbt")
    script = Path(sys.executable).parent / "gan-search"
    common = ["--space", space, "--runs-dir", str(tmp_path / "runs"), "--name", "pbt-rs",
              "--confirm", "1", "--confirm-seeds", "1"]
    output = interrupt([str(script), "run", *common],
                       lambda line, seen: "ended (1 finished)" in line)
    board = tmp_path / "runs" / "tune" / "pbt-rs" / "leaderboard.json"
    before = {t["trial_id"]: t for t in json.loads(board.read_text())["trials"]}
    finished = {k: t for k, t in before.items() if t["status"] == "finished"}
    assert len(before) == 4 and 1 <= len(finished) < 4, output

    resumed = cli("run", *common, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "warning: MLflow" not in resumed.stdout, resumed.stdout  # every record taken
    summary = json.loads(board.read_text())
    after = {t["trial_id"]: t for t in summary["trials"]}
    assert after.keys() == before.keys()  # the same population, no member added
    assert all(t["status"] == "finished" and t["metrics"]["step"] == 160 for t in after.values())
    for trial_id, trial in finished.items():  # not trained again
        assert after[trial_id]["metrics"]["time_total_s"] == trial["metrics"]["time_total_s"]
    for trial_id, trial in before.items():  # the others went on from a checkpoint
        if trial_id not in finished and trial["metrics"].get("step"):
            assert after[trial_id]["metrics"]["resumed_from_step"] > 0
    assert len(list(board.parent.glob("trial_*"))) == 4
    assert len(summary["confirm_trials"]) == 2  # the winner (replayed) and the baseline
    _, _, children = search_runs(str(tmp_path / "runs"), "pbt-rs")
    assert len([c for c in children if c.data.tags["gan_search.role"] != "confirm"]) == 4
    study = optuna.load_study(study_name="pbt-rs",
                              storage=f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}")
    assert sorted(t.user_attrs["tune_trial"] for t in study.trials) == sorted(after)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials), \
        [(t.number, t.state, t.user_attrs) for t in study.trials]


def test_a_members_best_checkpoint_is_among_those_of_the_weights_it_ended_with(tmp_path):
    """A member's checkpoint from before its last copy scored 5.0, one after it 9.0: the
    leaderboard's (and `gan-search sample`'s) checkpoint is the one of the weights it has."""
    from types import SimpleNamespace

    from ray import tune

    from gan_search.hpo.outcome.collect import trial_rows
    from gan_search.core.results import of_current_weights

    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    before, after = (tune.Checkpoint.from_directory(str(tmp_path / n)) for n in ("before", "after"))
    kept = [(before, {"fid_lite": 5.0, "copy_id": ""}), (after, {"fid_lite": 9.0, "copy_id": "c1"})]
    result = SimpleNamespace(metrics={"copy_id": "c1", "status": "finished", "score": 9.0},
                             error=None, config={"lr_g": 1e-3}, best_checkpoints=kept,
                             path=str(tmp_path / "trial_x_00001"))
    assert trial_rows([result], None, {})[0].checkpoint.endswith("after")
    assert of_current_weights(kept, {}) == kept[:1]  # one that never copied: its own


def test_a_member_that_copies_the_baseline_stays_a_member_and_the_baseline_is_its_own_trial(
        tmp_path):
    """The baseline is known by the trial made with its role: a member that copies the
    baseline's settings (PBT's exploit) keeps its own role, and of two trials that end with
    the same settings only the baseline's row is the baseline."""
    from types import SimpleNamespace

    from gan_search.core.settings import with_role
    from gan_search.core.vocabulary import Role
    from gan_search.hpo.outcome.collect import trial_rows
    from gan_search.hpo.strategies.pbt import BaselinePBT

    pbt = BaselinePBT(time_attr="step", metric="fid_lite", mode="min", perturbation_interval=20,
                      hyperparam_mutations={"lr_g": [1e-4, 2e-4, 4e-4]})
    baseline = SimpleNamespace(trial_id="b", config=with_role({"lr_g": 2e-4}, Role.BASELINE))
    member = SimpleNamespace(trial_id="m", config=with_role({"lr_g": 1e-4}, Role.MEMBER))
    copied, _ = pbt._get_new_config(member, baseline)
    assert copied["role"] == "member" and copied["lr_g"] in (1e-4, 2e-4, 4e-4)

    def result(name, config):
        return SimpleNamespace(metrics={"status": "finished", "score": 1.0}, error=None,
                               config=config, best_checkpoints=[], path=str(tmp_path / name))
    rows = trial_rows([result("trial_m", {**copied, "lr_g": 2e-4}),
                       result("trial_b", baseline.config)], None, {})
    assert [(r.trial_id, r.baseline, r.params) for r in rows] == [
        ("m", False, {"lr_g": 2e-4}), ("b", True, {"lr_g": 2e-4})]
