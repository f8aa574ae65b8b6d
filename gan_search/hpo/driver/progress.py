"""What a running search shows people: the live progress view (a Tune callback) and the
small actor that trials post their step and speed to."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from typing import Any, Callable

import ray
from ray.tune import Callback

from gan_search.core.restorable import Restorable
from gan_search.core.results import trial_status
from gan_search.core.vocabulary import Status


class ProgressBoard:
    """A small Ray actor (no CPU of its own): trials post their step and speed between
    evaluations; the driver's progress view reads it for its live line."""

    def __init__(self) -> None:
        self.trials: dict[str, dict[str, float]] = {}

    def post(self, trial_id: str, step: int, iters: int, rate: float, fid: float) -> None:
        self.trials[trial_id] = {"step": step, "iters": iters, "rate": rate, "fid": fid}

    def read(self) -> dict[str, dict[str, float]]:
        return self.trials


class ProgressView(Callback, Restorable):
    """One concise line per trial event, in place of Ray's tables, and a live line of the
    running trials (step of budget, iterations per second, latest FID-lite, ETA): redrawn in
    place on a terminal, printed as an event line every ``plain_every`` seconds elsewhere.

    Counts come from the trial list Tune passes with every event, so they are right
    after a resume too (when Tune restores this callback from the saved experiment).
    """

    LIVE = ("log", "board", "live")  # the driver's output and actor (core/restorable.py)
    DETACHED = {"log": print, "board": None, "live": False}

    def __init__(self, planned: int, log: Callable[[str], None] = print,
                 cluster: bool = False, board: Any = None, live: bool = False,
                 iters: int = 0, key: str = "progress") -> None:
        self.key = key
        self.planned, self.log, self.cluster = planned, log, cluster
        self.board, self.live, self.iters = board, live, iters
        self.started = time.perf_counter()
        self.waiting_since: float | None = None  # since when some trial waits for resources
        self.waiting_said = -math.inf  # when the last waiting note was printed
        self.progress_said = time.perf_counter()  # when the live line was last drawn
        self.drawn = False  # a live line is on the terminal now
        self.exploits: dict[str, str] = {}  # PBT: each member's last copy said (trainable)
        self.said_started: set[str] = set()  # trials whose start was said

    @property
    def restore_key(self) -> str:
        return self.key

    def resumed(self) -> None:
        """Restored by --resume: a new clock (the counts come from Tune's trial list)."""
        self.drawn = False
        self.started = self.progress_said = time.perf_counter()

    def say(self, line: str) -> None:
        """An event line (a live line on the terminal is cleared first)."""
        self.clear()
        self.log(line)

    def clear(self) -> None:
        """Remove the live line from the terminal (any view's: views follow each other)."""
        if self.live:
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()
        self.drawn = False

    def on_experiment_end(self, trials, **info):  # noqa: ANN001
        self.clear()

    def _line(self, text: str, trials: list, ending: tuple[str, str] | None = None) -> None:
        counts: dict[str, int] = {}
        best: tuple[float, str] | None = None
        for trial in trials:
            result = trial.last_result or {}
            score = result.get("score")
            if result.get("status") != Status.DIVERGED and isinstance(score, (int, float)):
                if best is None or score < best[0]:
                    best = (float(score), trial.trial_id)
            if ending and trial.trial_id == ending[0]:
                # Tune calls on_trial_complete/error before it marks the trial ended
                counts[ending[1]] = counts.get(ending[1], 0) + 1
            elif trial.status in ("TERMINATED", "ERROR"):
                status = Status.FAILED if trial.status == "ERROR" else trial_status(result, None)
                counts[status] = counts.get(status, 0) + 1
        running = sum(t.status == "RUNNING" and (not ending or t.trial_id != ending[0])
                      for t in trials)
        ended = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none ended"
        best_text = f"best FID-lite {best[0]:.3f} ({best[1]})" if best else "no score yet"
        self.say(f"[{time.perf_counter() - self.started:5.0f}s] {text:42s} | {running} running, "
                 f"{sum(counts.values())}/{self.planned} ended ({ended}) | {best_text}")

    def on_step_end(self, iteration, trials, **info):  # noqa: ANN001
        """The live line, and a note when trials wait for resources (e.g. GPU workers the
        autoscaler is adding)."""
        self._live(trials)
        waiting = [t for t in trials if t.status == "PENDING"]
        now = time.perf_counter()
        if not waiting:
            self.waiting_since = None
            return
        self.waiting_since = self.waiting_since or now
        if now - self.waiting_since >= WAIT_NOTE_AFTER_S and now - self.waiting_said >= WAIT_NOTE_EVERY_S:
            self.waiting_said = now
            self.say(f"[{now - self.started:5.0f}s] {waiting_note(waiting, trials, self.cluster)}")

    def _live(self, trials: list) -> None:
        every = LIVE_EVERY_S if self.live else PLAIN_EVERY_S
        now = time.perf_counter()
        if self.board is None or now - self.progress_said < every:
            return
        self.progress_said = now
        try:
            posted = ray.get(self.board.read.remote(), timeout=2)
        except Exception:  # noqa: BLE001 - the live line is a courtesy, never a failure
            return
        line = live_line(posted, trials, self.planned, self.iters)
        if line is None:
            return
        stamp = f"[{now - self.started:5.0f}s] {line}"
        if self.live:
            columns = shutil.get_terminal_size((160, 24)).columns
            sys.stdout.write("\r\x1b[K" + stamp[:columns - 1])
            sys.stdout.flush()
            self.drawn = True
        else:
            self.log(stamp)

    def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
        """Said once per trial: a PBT member is paused and started again many times."""
        said = getattr(self, "said_started", set())  # views pickled before PBT had none
        if trial.trial_id not in said:
            self.said_started = said | {trial.trial_id}
            self._line(f"trial {trial.trial_id} started", trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        """A PBT member that copied a better one says so: from whom, at which step, and the
        settings it trains on with."""
        seen = getattr(self, "exploits", {})  # views pickled before PBT had none
        copied = str(result.get("copy_id") or "")
        if copied != seen.get(trial.trial_id, ""):
            self.exploits = {**seen, trial.trial_id: copied}
            line = exploit_line(trial.trial_id, result.get("lineage"))
            if line:
                self.say(f"[{time.perf_counter() - self.started:5.0f}s] {line}")

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        self._end(trial, trials, None)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        self._end(trial, trials, Status.FAILED)

    def _end(self, trial: Any, trials: list, status: str | None) -> None:
        metrics = trial.last_result or {}
        status = status or trial_status(metrics, None)
        fid = metrics.get("score")
        detail = f" at step {metrics.get('step')}, FID-lite {fid:.3f}" if isinstance(
            fid, (int, float)) and status != Status.DIVERGED else ""
        self._line(f"trial {trial.trial_id} {status}{detail}", trials, (trial.trial_id, status))


WAIT_NOTE_AFTER_S, WAIT_NOTE_EVERY_S = 10.0, 60.0
# the live line: redrawn every 2 s on a terminal; a plain line every 30 s in a log or CI
LIVE_EVERY_S = float(os.environ.get("GAN_SEARCH_LIVE_EVERY_S", 2.0))
PLAIN_EVERY_S = float(os.environ.get("GAN_SEARCH_PLAIN_EVERY_S", 30.0))


def exploit_line(trial_id: str, lineage: str | None) -> str | None:
    """"member 00003 copied 00001 at step 400, now lr_g 0.00024, lr_d 0.0002, ..." from a
    result's lineage (trainable.schedule_metrics)."""
    try:
        last = json.loads(lineage or "[]")[-1]
    except (ValueError, IndexError):
        return None
    values = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in last["values"].items())
    return f"member {trial_id} copied {last['from']} at step {last['step']}, now {values}"


def live_line(posted: dict, trials: list, planned: int, iters: int) -> str | None:
    """"running: 3f2a 600/1200 85 it/s FID-lite 12.3 | ... | ETA 2m10s" for the running trials."""
    running = [(t.trial_id, posted[t.trial_id]) for t in trials
               if t.status == "RUNNING" and t.trial_id in posted]
    if not running:
        return None
    parts = [f"{tid} {p['step']:.0f}/{p['iters']:.0f} {p['rate']:.0f} it/s"
             + (f" FID-lite {p['fid']:.2f}" if math.isfinite(p["fid"]) else "")
             for tid, p in running]
    rate = sum(p["rate"] for _, p in running)
    ended = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
    left = sum(p["iters"] - p["step"] for _, p in running) + \
        max(0, planned - ended - len(running)) * iters
    eta = f"ETA {_duration(left / rate)}" if rate > 0 else "ETA -"
    return "running: " + " | ".join(parts) + f" | {eta}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def waiting_note(waiting: list, trials: list, cluster: bool) -> str:
    """"3 trials waiting for CPU 1, GPU 0.5 each: ..." from Tune's pending trials."""
    asks = sorted({", ".join(f"{k} {v:g}" for k, v in sorted(
        t.placement_group_factory.required_resources.items()) if v) for t in waiting})
    running = sum(t.status == "RUNNING" for t in trials)
    head = (f"{len(waiting)} trial{'s' if len(waiting) > 1 else ''} waiting for "
            f"{' / '.join(asks)} each ({running} running)")
    if cluster:
        return head + ": the autoscaler adds nodes for them (a few minutes for a new GPU " \
                      "worker), or the cluster has no node type that offers this: check cluster.yaml"
    return head + ": they start as running trials end"

