"""Winners checked over seeds: GANs are seed-sensitive, so one run's best can be luck.

After a search, the top configurations (and the baseline, so that it is compared on the
same footing) are trained again at the full budget with fresh seeds, the same seeds for
every configuration. They are ranked by the mean of the first objective's best value over
those fresh runs only: the search's own run of a configuration is left out, because it was
chosen for being good (the winner's curse). A fresh-seed run that diverged, collapsed or
failed counts as the objective's worst value (``core.vocabulary.WORST``) in that mean: a
configuration that works on one seed of two is not ranked on its lucky run.
A PBT member's configuration is its schedule: each fresh run replays the settings the
member trained with, changed at the steps its lineage changed them (a replay retrains from
scratch, as Ray's ``PopulationBasedTrainingReplay`` does; it copies no weights).
Pure Python: hpo/run.py runs the trials.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from gan_search.core.settings import CONFIRM_KEY, confirm_config
from gan_search.core.vocabulary import BROKEN, DIVERGED_SCORE, TRAINED, Status
from gan_search.hpo.outcome.noise import TIE_SIGMAS, rank_labels, score_noise

FRESH_SEED_BASE = 1000  # fresh seeds 1001, 1002, ...: never a search trial's seed


@dataclass
class Candidate:
    """One configuration under confirmation, and what its fresh-seed runs scored."""

    trial_id: str  # the search trial it comes from
    params: dict[str, Any]
    baseline: bool = False
    runs: list[dict[str, Any]] = field(default_factory=list)  # {seed, score, status, ...}
    worst: float = DIVERGED_SCORE  # what a run that did not train to its end counts as
    # a PBT member's schedule (settings.TrialSettings.schedule), replayed by each fresh run
    schedule: list[dict[str, Any]] = field(default_factory=list)

    @property
    def scores(self) -> list[float]:
        """Each fresh-seed run's score; the worst value for one that diverged, collapsed
        or failed (or has no finite score)."""
        return [self.worst if broken(r) else r["score"] for r in self.runs]

    @property
    def broken(self) -> int:
        """How many of its fresh-seed runs diverged, collapsed or failed."""
        return sum(broken(r) for r in self.runs)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores) if self.scores else math.inf

    @property
    def spread(self) -> float:
        """Sample standard deviation over the fresh seeds (0 for a single run)."""
        return statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0

    @property
    def noise(self) -> float:
        """The standard error of the mean: the spread over its fresh seeds, but never less
        than its runs' own score noise (two seeds can agree by chance), over sqrt(runs)."""
        if not self.runs:
            return math.nan
        own = [r["std"] ** 2 for r in self.runs
               if not broken(r) and math.isfinite(r.get("std", math.nan))]
        variance = max(self.spread ** 2, statistics.fmean(own) if own else 0.0)
        return math.sqrt(variance / len(self.runs))


def broken(run: dict[str, Any]) -> bool:
    return run["status"] in (*BROKEN, Status.COLLAPSED) or not math.isfinite(run["score"])


def pick_candidates(rows: list, k: int, worst: float = DIVERGED_SCORE,
                    reached: int = 0) -> list[Candidate]:
    """The k best trials the search proposed that trained to a normal end (finished, or
    stopped by ASHA: they get the full budget now), then the baseline trial (the reference
    they are confirmed against, never one of the k: a search whose best trial was the
    baseline still confirms its best proposals, and a budget's top rung still trains the
    winner its plan paid for). ``worst``:
    the first objective's worst value, what a broken fresh-seed run counts as; ``reached``:
    only trials that trained this many iterations (a budget's last search rung). A trial
    whose configuration and schedule equal a better one's (a PBT member that copied
    another) is not confirmed again: its fresh runs would be the same runs."""
    ranked = sorted((r for r in rows if r.status in TRAINED and math.isfinite(r.score)
                     and r.metrics.get("step", 0) >= reached and not r.baseline),
                    key=lambda r: r.score)
    chosen: list = []
    trains: set[str] = set()  # what the chosen ones' fresh runs would train
    for row in ranked:
        if len(chosen) < k and replayed(row) not in trains:
            chosen.append(row)
            trains.add(replayed(row))
    baseline = next((r for r in rows if r.baseline), None)
    if baseline is not None and baseline.status in (*TRAINED, Status.COLLAPSED):
        chosen.append(baseline)
    return [Candidate(r.trial_id, dict(r.params), r.baseline, worst=worst,
                      schedule=changed_schedule(r.metrics)) for r in chosen]


def replayed(row: Any) -> str:
    """What a confirmation run of the trial trains: its settings at step 0, and each change
    of them before its last step (one at its last step changed nothing it trained)."""
    schedule = changed_schedule(row.metrics)
    last = row.metrics.get("step", math.inf)
    start = {**row.params, **(schedule[0]["values"] if schedule else {})}
    changes = [e for e in schedule[1:] if e["step"] < last]
    return json.dumps([start, changes], sort_keys=True, default=str)


def changed_schedule(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """A trial's schedule of settings (trainable.schedule_metrics) when its settings changed
    while it trained (a PBT member that copied another); [] when they never did."""
    try:
        schedule = json.loads(metrics.get("schedule") or "[]")
    except (TypeError, ValueError):
        return []
    return schedule if len(schedule) > 1 else []


def fresh_seeds(count: int) -> list[int]:
    return [FRESH_SEED_BASE + i for i in range(1, count + 1)]


def trial_configs(candidates: list[Candidate], seeds: list[int],
                  iters: int | None = None) -> list[dict[str, Any]]:
    """One confirmation trial per (candidate, seed): the candidate's settings with the seed
    (and ``iters``, a budget's final length, when given), and which search trial it confirms
    (Tune grid values under ``CONFIRM_KEY``)."""
    length = {} if iters is None else {"iters": iters}
    return [confirm_config(c.trial_id, c.baseline, {**c.params, "seed": seed, **length},
                           c.schedule) for c in candidates for seed in seeds]


def assign_runs(candidates: list[Candidate], rows: list) -> None:
    """Give each candidate the confirmation runs made for it."""
    by_trial = {c.trial_id: c for c in candidates}
    for row in rows:
        confirming = by_trial.get(row.params.get(CONFIRM_KEY, {}).get("of"))
        if confirming is not None:
            confirming.runs.append({"trial_id": row.trial_id, "status": row.status,
                                    "seed": row.params[CONFIRM_KEY]["settings"]["seed"],
                                    "score": row.score, "checkpoint": row.checkpoint,
                                    "std": score_noise(row.metrics)})


def ranked(candidates: list[Candidate]) -> list[Candidate]:
    """Best mean first; a candidate without a finite run last."""
    return sorted(candidates, key=lambda c: (c.mean, c.spread))


def table(candidates: list[Candidate], objective: str) -> str:
    """The confirmation table, best mean first (a broken run counted as the worst value)."""
    order = ranked(candidates)
    ranks = rank_labels([(c.mean, c.noise) for c in order])
    lines = [f"rank  trial (configuration)      mean {objective} ± std over fresh seeds   "
             "std error   runs"]
    for rank, c in zip(ranks, order):
        label = c.trial_id + (" (baseline)" if c.baseline else
                              f" ({len(c.schedule) - 1} changes)" if c.schedule else "")
        runs = ", ".join(str(r["status"]) if broken(r) else f"{r['score']:.3f}"
                         for r in c.runs) or "none"
        mean = f"{c.mean:.3f} ± {c.spread:.3f}" if math.isfinite(c.mean) else "-"
        lines.append(f"{rank:<5} {label:<26} {mean:<37} {c.noise:<11.3f} {runs}")
    if any(rank.endswith("=") for rank in ranks):
        lines.append(f"(=: tied, means within {TIE_SIGMAS:g} standard errors of the difference "
                     "from the first of their group)")
    if any(c.broken for c in candidates):
        worst = next(c.worst for c in candidates if c.broken)
        lines.append(f"(a run that diverged, collapsed or failed counts as {worst:g} in its mean)")
    return "\n".join(lines)
