"""The Ray Tune function trainable: one DCGAN trial. The only module that calls
``tune.report``.

A trial trains for ``eval_every`` iterations, evaluates N samples against the real
statistics it received through the object store, and reports every score with a
checkpoint (trainer state, sample grid, progress). It never touches the driver's disk
or the MLflow store: on a cluster everything it makes travels through Ray.

What the search sees (``score`` and, for two objectives, ``score_collapse``):
- normally the best evaluation so far (FID-lite, and the collapse score at that
  evaluation), with its step in ``best_step``: GANs often get worse late;
- once a trial is collapsed (``collapse`` above the threshold for ``patience``
  evaluations in a row), the values of the evaluation that declared it, so that
  Optuna learns the region ends badly; the collapse stopper ends the trial there;
- a diverged trial (non-finite losses) reports the worst scores (``core.vocabulary.WORST``) and ends.

Settings that change while a trial trains (``TRAINING_SETTINGS``):
- a PBT member that Ray made copy a better member gets that member's checkpoint with its
  own, perturbed, config: the trainer keeps the config's settings (not the checkpoint's),
  and the record notes the copy (``lineage``) and the new values (``schedule``);
- a confirmation trial that replays a PBT member's schedule changes its settings at the
  schedule's steps (between evaluations where need be).
Every result carries the settings in effect (``setting_<name>``) and the schedule.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any, Iterator

import ray
import torch
from ray import tune

from gan_search.core.config import TRAINING_SETTINGS, TrainConfig
from gan_search.core.results import GENERATOR_FILE, GRID_FILE, PROGRESS_FILE, TRAINER_FILE
from gan_search.core.settings import SharedSettings, TrialSettings
from gan_search.core.vocabulary import OBJECTIVES, WORST, Objective, Status
from gan_search.engine.metrics import Evaluator
from gan_search.engine.trainer import GANTrainer

# every trial reports score_<objective> for each objective; WORST when it diverged or failed
# set on the nodes of a Ray fake multi-node cluster, whose "GPUs" are only resource labels:
# trials given such a GPU train on the CPU instead of failing
FAKE_GPU_ENV = "GAN_SEARCH_FAKE_GPU"


class TrialError(RuntimeError):
    """A trial that cannot run for its own reasons; it fails once, with this message."""


class StorageError(RuntimeError):
    """The search's storage (a shared folder, ``s3://``) refused a checkpoint of this trial
    or could not give one back: not the trial's fault, so Tune retries the trial from its
    last checkpoint (``FailureConfig``) instead of taking it as failed."""


def run_trial(config: dict[str, Any], *, images: torch.Tensor, evaluator_state: dict,
              settings: SharedSettings, board: Any = None) -> None:
    """Train and evaluate one configuration, reporting each evaluation to Tune.

    A trial that fails for its own reasons (an error in its code or configuration, a GPU
    it was promised but cannot see) reports status ``failed`` with the message and ends:
    retrying would fail again. Tune retries what is not the trial's doing (``FailureConfig``,
    3 times): a lost node or a killed worker, which never reach here, and a storage that
    refused a checkpoint (``StorageError``, raised on to Tune).

    Args:
        config: the sampled hyperparameters (Tune's trial config).
        images: the shared uint8 dataset (from the object store).
        evaluator_state: ``Evaluator.state()`` of the driver (real statistics).
        settings: what every trial of the search shares (base values, resources, objectives,
            the collapse rule).
        board: the search's ProgressBoard actor (progress.py), told the step and speed between
            evaluations for the live progress line; None: nobody listens.
    """
    try:
        _train_and_report(config, images, evaluator_state, settings, board)
    except StorageError:
        raise  # transient: Tune retries the trial from its last checkpoint
    except Exception as err:  # noqa: BLE001 - the trial's own error: reported, not retried
        message = f"{type(err).__name__}: {' '.join(str(err).split())}"[:500]
        tune.report({"status": Status.FAILED, "message": message, **ended_scores(settings)})


def trial_device(settings: SharedSettings) -> str:
    """cuda for a trial that Ray gave a GPU share, else cpu; a trial given a GPU it cannot
    see fails instead of training on the CPU unnoticed."""
    if settings.gpu <= 0:
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if os.environ.get(FAKE_GPU_ENV) == "1":  # Ray's fake multi-node clusters (tests)
        return "cpu"
    node = ray.get_runtime_context().get_node_id()[:8]
    raise TrialError(f"this trial was given GPU {settings.gpu:g} on node {node} but torch sees no "
                     f"CUDA device there (CUDA_VISIBLE_DEVICES="
                     f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}, torch {torch.__version__}); "
                     "install a CUDA build of torch and the NVIDIA driver on the GPU nodes, or "
                     "run with --device cpu")


def _train_and_report(config: dict[str, Any], images: torch.Tensor, evaluator_state: dict,
                      settings: SharedSettings, board: Any = None) -> None:
    trial = TrialSettings.of(config)
    trial_config = trial.train_config(settings)
    torch.set_num_threads(max(1, int(settings.cpu)))
    trainer = GANTrainer(trial_config, images, device=trial_device(settings))
    evaluator = Evaluator.from_state(evaluator_state, device=trainer.device)
    me = tune.get_context().get_trial_id() or "trial"
    progress = new_progress(me, trainer.config, trial.schedule)
    copied = False

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # resumed, retried, or a PBT member given a better one's
        with _from_storage(checkpoint) as folder:
            trainer.load_checkpoint(folder / TRAINER_FILE)  # keeps this trial's settings
            progress = json.loads((folder / PROGRESS_FILE).read_text())
        copied = note_exploit(progress, me, trainer)

    resumed_from = trainer.step  # > 0 when Tune restored this trial (resume, lost node)
    every = trial_config.eval_every
    poster = _Poster(board, trial_config.iters, trainer.step)
    while True:
        if trainer.step < trial_config.iters:
            trainer.retune(trial.values_at(trainer.step))  # a replayed PBT schedule
            target = min(trial_config.iters, (trainer.step // every + 1) * every,
                         trial.next_change(trainer.step) or trial_config.iters)
            outcome = trainer.train(target, sync_every=min(25, every), on_sync=poster)
            if outcome.status == Status.DIVERGED:
                tune.report({"status": Status.DIVERGED, "step": trainer.step,
                             "resumed_from_step": resumed_from, "message": outcome.message,
                             **ended_scores(settings)})
                return
            if trainer.step % every and trainer.step < trial_config.iters:
                continue  # a scheduled change between evaluations
            losses = outcome.history[-1] if outcome.history else {}
        elif copied:  # a PBT member given a finished member's checkpoint: score it once
            losses = {}
        else:  # its own last checkpoint (resumed after its last report): nothing left
            return
        poster.fid = _evaluate_and_report(trainer, evaluator, progress, losses, settings,
                                          resumed_from)
        if trainer.step >= trial_config.iters:
            return
        # a collapsed trial is ended by the collapse stopper (tuning.CollapseStopper) at its
        # report: Tune stops the function before it trains another interval


def _evaluate_and_report(trainer: GANTrainer, evaluator: Evaluator, progress: dict,
                         losses: dict, settings: SharedSettings, resumed_from: int) -> float:
    """Score N samples, report every metric with a checkpoint; the FID-lite."""
    scores = evaluator.score(trainer.sample(evaluator.generated))
    metrics = _progress_metrics(scores, progress, trainer.step, settings)
    metrics.update({"loss_d": losses.get("loss_d"), "loss_g": losses.get("loss_g"),
                    "d_real": losses.get("d_real"), "d_fake": losses.get("d_fake")})
    metrics.update(_trained_as(trainer))
    metrics.update(trainer.skip_shares())  # loss balancing: how often each side skipped
    metrics.update(schedule_metrics(progress, trainer.config))
    metrics["node_id"] = ray.get_runtime_context().get_node_id()  # where it ran (clusters)
    metrics["gpu_share"] = settings.gpu  # what Ray placed it with
    metrics["resumed_from_step"] = resumed_from
    metrics["status"] = (Status.COLLAPSED if metrics["collapsed"] else Status.FINISHED
                         if trainer.step >= trainer.config.iters else Status.RUNNING)
    with tempfile.TemporaryDirectory() as folder:
        trainer.save_checkpoint(Path(folder) / TRAINER_FILE)
        trainer.save_generator(Path(folder) / GENERATOR_FILE)
        trainer.save_grid(Path(folder) / GRID_FILE)
        (Path(folder) / PROGRESS_FILE).write_text(json.dumps(progress))
        try:  # Tune copies the folder to the search's storage here
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        except Exception as err:  # noqa: BLE001 - the storage's error, whatever its kind
            raise StorageError(f"the search's storage refused this trial's checkpoint at step "
                               f"{trainer.step}: {type(err).__name__}: {err}") from err
    return float(scores["fid_lite"])


@contextlib.contextmanager
def _from_storage(checkpoint: Any) -> Iterator[Path]:
    """A checkpoint's folder here (downloaded when the storage is remote); a storage that
    cannot give it back raises ``StorageError`` (retried), not the trial's own error."""
    with contextlib.ExitStack() as stack:
        try:
            folder = Path(stack.enter_context(checkpoint.as_directory()))
        except Exception as err:  # noqa: BLE001 - the storage's error, whatever its kind
            raise StorageError(f"the search's storage could not give back the checkpoint "
                               f"{checkpoint.path}: {type(err).__name__}: {err}") from err
        yield folder


class _Poster:
    """Posts the step and speed to the progress board at most every POST_EVERY_S, without
    waiting for an answer (the driver reads the board for the live line)."""

    POST_EVERY_S = 1.0

    def __init__(self, board: Any, iters: int, step: int) -> None:
        self.board, self.iters, self.fid = board, iters, math.inf
        self.trial_id = tune.get_context().get_trial_id() if board is not None else None
        self.last, self.last_step = time.perf_counter(), step

    def __call__(self, trainer: GANTrainer, means: dict[str, float]) -> None:
        now = time.perf_counter()
        if self.board is None or now - self.last < self.POST_EVERY_S:
            return
        rate = (trainer.step - self.last_step) / (now - self.last)
        self.board.post.remote(self.trial_id, trainer.step, self.iters, rate, self.fid)
        self.last, self.last_step = now, trainer.step


def _trained_as(trainer: GANTrainer) -> dict[str, Any]:
    """What the optimizers and the device really use, so that a search can prove it trains
    what it sampled, where it was placed."""
    group_g, group_d = trainer.opt_g.param_groups[0], trainer.opt_d.param_groups[0]
    up = [m for m in trainer.gen.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    down = [m for m in trainer.disc.modules() if isinstance(m, torch.nn.Conv2d)]
    device = trainer.device.type
    if device == "cuda":
        device = f"cuda:{torch.cuda.current_device()} {torch.cuda.get_device_name()}"
    return {"opt_lr_g": group_g["lr"], "opt_lr_d": group_d["lr"],
            "opt_beta1": group_g["betas"][0], "opt_beta2": group_g["betas"][1],
            "opt_beta1_d": group_d["betas"][0], "opt_beta2_d": group_d["betas"][1],
            # the built models: G's last hidden width, D's first width, the kernels, z
            "model_g_width": up[-1].in_channels, "model_d_width": down[0].out_channels,
            "model_kernel_size_g": up[-1].kernel_size[0],
            "model_kernel_size_d": down[0].kernel_size[0], "model_z_dim": up[0].in_channels,
            "device": device}


def new_progress(member: str = "", config: TrainConfig | None = None,
                 schedule: tuple = ()) -> dict:
    """A trial's record, saved with every checkpoint: its best so far, its collapse streak,
    and the settings it trained with: ``schedule`` (the values of ``TRAINING_SETTINGS`` from
    step 0 on, each entry in effect from its step) and ``lineage`` (each time, as a PBT
    member, it took another member's checkpoint: from whom, at which step, the new values).
    ``member``: the trial whose weights these are."""
    start = [{"step": 0, "values": training_values(config)}] if config is not None else []
    return {"best": {name: math.inf for name in OBJECTIVES}, "best_step": 0,
            "collapse_at_best": 1.0, "streak": 0, "member": member,
            "schedule": [dict(e) for e in schedule] or start, "lineage": []}


def training_values(config: TrainConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in TRAINING_SETTINGS}


def note_exploit(progress: dict, me: str, trainer: GANTrainer) -> bool:
    """A checkpoint of another trial: PBT made this member copy it (Ray's exploit) and
    perturbed this member's settings (in ``trainer.config`` already). The copied schedule
    goes on with the new values from this step, the lineage says from whom (each copy with
    an id of its own: a member may copy the same checkpoint twice); the best-so-far starts
    again, since this member's earlier evaluations were of other weights; and the member
    draws its own batches and noise from here, not the ones the copied member draws.
    True when it was a copy."""
    owner = progress.get("member") or me  # older checkpoints carry no owner: this trial's
    if owner == me:
        return False
    values = training_values(trainer.config)
    progress.setdefault("schedule", []).append({"step": trainer.step, "values": values})
    progress.setdefault("lineage", []).append({"member": me, "from": owner, "step": trainer.step,
                                               "values": values, "copy": uuid.uuid4().hex[:8]})
    progress.update(best={name: math.inf for name in OBJECTIVES}, best_step=0,
                    collapse_at_best=1.0, member=me)
    trainer.reseed(zlib.crc32(f"{me}@{trainer.step}".encode()))
    return True


def schedule_metrics(progress: dict, config: TrainConfig) -> dict[str, Any]:
    """The settings in effect now (``setting_<name>``); ``exploits``: how many copies the
    lineage of this member's weights holds; ``copied``: this member's last copy as
    ``<from>@<step>`` (the lineage's last entry is always the member's own last copy), "" if
    it never copied, and ``copy_id`` that copy's id; the schedule and lineage as JSON."""
    lineage = progress.get("lineage", [])
    last = lineage[-1] if lineage else None
    metrics: dict[str, Any] = {f"setting_{k}": v for k, v in training_values(config).items()}
    metrics.update(exploits=len(lineage), exploited_from=last["from"] if last else "",
                   copied=f"{last['from']}@{last['step']}" if last else "",
                   copy_id=last.get("copy", "") if last else "",
                   schedule=json.dumps(progress.get("schedule", [])),
                   lineage=json.dumps(lineage))
    return metrics


def _progress_metrics(scores: dict, progress: dict, step: int,
                      settings: SharedSettings) -> dict:
    """Update the best-so-far record and the collapse streak; the metrics to report.

    Each objective's score (``score_<name>``) is its best value so far; ``score`` is the
    first objective's (ASHA ranks by it). The best FID-lite evaluation also gives
    ``best_step``, ``collapse_at_best`` and ``fid_lite_std_at_best``: the checkpoint kept as
    the trial's best, and that score's noise.
    """
    values = {name: float(scores[name]) for name in OBJECTIVES}
    best = progress["best"]
    if values["fid_lite"] < best["fid_lite"]:
        progress.update(best_step=step, collapse_at_best=values["collapse"],
                        fid_lite_std_at_best=float(scores.get("fid_lite_std", math.nan)))
    for name, value in values.items():
        best[name] = min(best[name], value)
    above = values["collapse"] > settings.collapse_threshold
    progress["streak"] = progress["streak"] + 1 if above else 0
    collapsed = progress["streak"] >= settings.collapse_patience
    reported = values if collapsed else best  # a collapsed trial: the evaluation that said so
    metrics = {k: v for k, v in scores.items() if isinstance(v, (int, float))}
    metrics.update({
        "step": step, "fid_lite_extractor": scores["fid_lite_extractor"],
        "fid_lite_best": best["fid_lite"], "best_step": progress["best_step"],
        "collapse_at_best": progress["collapse_at_best"], "kid_best": best["kid"],
        # the noise of the best FID-lite (over generated sets, the reference fixed)
        "fid_lite_std_at_best": progress.get("fid_lite_std_at_best", math.nan),
        "collapse_best": best["collapse"],
        "collapse_streak": progress["streak"], "collapsed": collapsed,
        **{f"score_{name}": reported[name] for name in OBJECTIVES},
        "score": reported[settings.primary],
    })
    return metrics


def ended_scores(settings: SharedSettings) -> dict[str, Any]:
    """The scores of a trial that diverged or failed: the worst of every objective, so that
    every objective key is reported by every trial (Optuna and ASHA need them all)."""
    return {**{f"score_{name}": WORST[name] for name in OBJECTIVES},
            "score": WORST[settings.primary], "fid_lite_best": WORST[Objective.FID_LITE],
            "collapsed": False}
