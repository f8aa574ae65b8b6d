"""What a search shows people: the live progress view (a Tune callback), each trial's
outcome, the Pareto front and the leaderboard table."""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import ray
from ray.tune import Callback

from gan_search.trainable import trial_status


@dataclass
class TrialRow:
    """One trial's outcome, for the leaderboard and MLflow."""

    trial_id: str
    status: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    path: str | None = None
    checkpoint: str | None = None
    error: str | None = None
    pareto: bool = False
    baseline: bool = False  # the space's hand-picked configuration, evaluated first

    @property
    def score(self) -> float:
        value = self.metrics.get("score")
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.inf


@dataclass
class SearchOutcome:
    name: str
    path: str
    rows: list[TrialRow]
    interrupted: bool
    seconds: float
    objectives: list[str] = field(default_factory=list)
    study: Any = None  # the Optuna study (from Tune's saved searcher state)
    logging_seconds: float = 0.0  # time spent writing MLflow records
    fit_seconds: float = 0.0  # the search's Tune fit alone (no start-up, confirmation, plots)
    parent_run_id: str | None = None
    confirmation: list | None = None  # confirm.Candidate, best mean first (None: not run)
    confirm_rows: list[TrialRow] = field(default_factory=list)  # the confirmation's trials
    importances: list[tuple[str, float]] = field(default_factory=list)
    plots: list = field(default_factory=list)  # PNG paths of Optuna's plots

    @property
    def best(self) -> TrialRow | None:
        """What the summary, `sample --run best` and MLflow's best_run_id point to: with a
        confirmation, the confirmed winner's best fresh-seed run (full budget); else the
        search's best trial (best_row)."""
        if self.confirmation:
            runs = {r.trial_id: r for r in self.confirm_rows}
            winner = [runs[run["trial_id"]] for run in self.confirmation[0].runs
                      if run["trial_id"] in runs]
            found = best_row(winner)
            if found is not None:
                return found
        return best_row(self.rows)

    @property
    def baseline(self) -> TrialRow | None:
        return next((r for r in self.rows if r.baseline), None)


def best_row(rows: list[TrialRow]) -> TrialRow | None:
    """The search's best trial, one rule for the summary, `sample --run best` and MLflow:
    the lowest score among trials that trained to a normal end (finished, or stopped early
    by ASHA); only when there is none, among collapsed trials; never a diverged, failed or
    interrupted one."""
    for statuses in (("finished", "stopped"), ("collapsed",)):
        scored = [r for r in rows if r.status in statuses and math.isfinite(r.score)]
        if scored:
            return min(scored, key=lambda r: r.score)
    return None


def versus_baseline(outcome: SearchOutcome, name: str, iters: int) -> str | None:
    """One line: the search's best against the hand-picked baseline, at the same budget per
    trial; after a confirmation, both as means over the same fresh seeds."""
    base = outcome.baseline
    if base is None:
        return None
    budget = f"at the same budget per trial ({iters:,} iterations)"
    if outcome.confirmation:
        win = outcome.confirmation[0]
        mine = next((c for c in outcome.confirmation if c.baseline), None)
        if win.baseline or mine is None or not math.isfinite(win.mean):
            return (f"the baseline {name} (trial {base.trial_id}) is the confirmed winner: the "
                    f"search did not beat it {budget}")
        return (f"confirmed winner, trial {win.trial_id}: {win.mean:.3f} ± {win.spread:.3f} vs the "
                f"baseline {name} (trial {base.trial_id}): {mine.mean:.3f} ± {mine.spread:.3f} over "
                f"the same fresh seeds, {_change(win.mean, mine.mean)}, {budget}")
    best = best_row(outcome.rows)
    if best is None or best is base:
        return f"the baseline {name} (trial {base.trial_id}) is the best trial {budget}"
    return (f"best found, trial {best.trial_id}: {best.score:.3f} vs the baseline {name} (trial "
            f"{base.trial_id}): {base.score:.3f}, {_change(best.score, base.score)}, {budget}")


def _change(mine: float, theirs: float) -> str:
    if not math.isfinite(theirs) or theirs <= 0:
        return "the baseline has no finite score"
    share = 100 * (theirs - mine) / theirs
    return f"{share:.0f}% lower" if share >= 0 else f"{-share:.0f}% higher (worse)"


def pareto_front(rows: list[TrialRow], keys: list[str]) -> None:
    """Mark rows not dominated on every key (all minimised)."""
    scored = [r for r in rows if all(isinstance(r.metrics.get(k), (int, float)) for k in keys)]
    for row in scored:
        mine = [row.metrics[k] for k in keys]
        row.pareto = not any(
            all(o <= m for o, m in zip([other.metrics[k] for k in keys], mine)) and
            any(o < m for o, m in zip([other.metrics[k] for k in keys], mine))
            for other in scored if other is not row)


class ProgressBoard:
    """A small Ray actor (no CPU of its own): trials post their step and speed between
    evaluations; the driver's progress view reads it for its live line."""

    def __init__(self) -> None:
        self.trials: dict[str, dict[str, float]] = {}

    def post(self, trial_id: str, step: int, iters: int, rate: float, fid: float) -> None:
        self.trials[trial_id] = {"step": step, "iters": iters, "rate": rate, "fid": fid}

    def read(self) -> dict[str, dict[str, float]]:
        return self.trials


RESTORED_VIEWS: list["ProgressView"] = []  # views Tuner.restore unpickled (see search._fit)


class ProgressView(Callback):
    """One concise line per trial event, in place of Ray's tables, and a live line of the
    running trials (step of budget, iterations per second, latest FID-lite, ETA): redrawn in
    place on a terminal, printed as an event line every ``plain_every`` seconds elsewhere.

    Counts come from the trial list Tune passes with every event, so they are right
    after a resume too (when Tune restores this callback from the saved experiment).
    """

    def __init__(self, planned: int, log: Callable[[str], None] = print,
                 cluster: bool = False, board: Any = None, live: bool = False,
                 iters: int = 0) -> None:
        self.planned, self.log, self.cluster = planned, log, cluster
        self.board, self.live, self.iters = board, live, iters
        self.started = time.perf_counter()
        self.waiting_since: float | None = None  # since when some trial waits for resources
        self.waiting_said = -math.inf  # when the last waiting note was printed
        self.progress_said = time.perf_counter()  # when the live line was last drawn
        self.drawn = False  # a live line is on the terminal now

    def __getstate__(self) -> dict:  # Tune pickles callbacks: no log function, no actor
        return {k: v for k, v in self.__dict__.items() if k not in ("log", "board")}

    def __setstate__(self, state: dict) -> None:  # restored by Tuner.restore: a new clock
        self.__dict__.update(state)
        self.log, self.board, self.drawn = (lambda line: print(line, flush=True)), None, False
        self.started = self.progress_said = time.perf_counter()
        RESTORED_VIEWS.append(self)

    def attach(self, log: Callable[[str], None], board: Any, live: bool) -> None:
        """After a restore: the search's own output and progress board."""
        self.log, self.board, self.live = log, board, live

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
            if result.get("status") != "diverged" and isinstance(score, (int, float)):
                if best is None or score < best[0]:
                    best = (float(score), trial.trial_id)
            if ending and trial.trial_id == ending[0]:
                # Tune calls on_trial_complete/error before it marks the trial ended
                counts[ending[1]] = counts.get(ending[1], 0) + 1
            elif trial.status in ("TERMINATED", "ERROR"):
                status = "failed" if trial.status == "ERROR" else trial_status(result, None)
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
        self._line(f"trial {trial.trial_id} started", trials)

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        self._end(trial, trials, None)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        self._end(trial, trials, "failed")

    def _end(self, trial: Any, trials: list, status: str | None) -> None:
        metrics = trial.last_result or {}
        status = status or trial_status(metrics, None)
        fid = metrics.get("score")
        detail = f" at step {metrics.get('step')}, FID-lite {fid:.3f}" if isinstance(
            fid, (int, float)) and status != "diverged" else ""
        self._line(f"trial {trial.trial_id} {status}{detail}", trials, (trial.trial_id, status))


WAIT_NOTE_AFTER_S, WAIT_NOTE_EVERY_S = 10.0, 60.0
# the live line: redrawn every 2 s on a terminal; a plain line every 30 s in a log or CI
LIVE_EVERY_S = float(os.environ.get("GAN_SEARCH_LIVE_EVERY_S", 2.0))
PLAIN_EVERY_S = float(os.environ.get("GAN_SEARCH_PLAIN_EVERY_S", 30.0))


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


def leaderboard(outcome: SearchOutcome, searched: list[str], top: int = 20) -> str:
    """A plain-text table of trials, best first (Pareto members marked with *)."""
    two = len(outcome.objectives) > 1
    rows = sorted(outcome.rows, key=lambda r: (r.status in ("diverged", "failed"), r.score))
    # every score is the trial's best evaluation (at `step`), or the collapsing one
    header = ["rank", "trial", "status", "FID-lite", "step", "collapse", "KID",
              *(["pareto"] if two else []), *searched]
    collapsed = lambda row, key, at_best: row.metrics.get(key if row.status == "collapsed"  # noqa: E731
                                                          else at_best)
    lines = [header]
    for rank, row in enumerate(rows[:top], 1):
        fmt = lambda v, spec=".3f": format(v, spec) if isinstance(v, (int, float)) and not \
            isinstance(v, bool) else "-"  # noqa: E731
        cells = [str(rank), row.trial_id + (" (baseline)" if row.baseline else ""), row.status,
                 fmt(collapsed(row, "fid_lite", "score_fid_lite")),
                 str(collapsed(row, "step", "best_step") or "-"),
                 fmt(collapsed(row, "collapse", "collapse_at_best")),
                 fmt(collapsed(row, "kid", "kid_best"), ".4f"),
                 *(["*" if row.pareto else ""] if two else []),
                 *[fmt(row.params.get(k), ".3g") if isinstance(row.params.get(k), float)
                   else str(row.params.get(k, "-")) for k in searched]]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)
