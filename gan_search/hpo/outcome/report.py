"""What a search prints at its end: the leaderboard, failed trials' messages, the
confirmation table, the best-found-vs-baseline line, what mattered and where things are.
Plain text from the result model (core/results.py)."""

from __future__ import annotations

import math
from pathlib import Path

from gan_search.core.config import SearchConfig
from gan_search.core.results import SearchOutcome, TrialRow, best_row
from gan_search.core.vocabulary import BROKEN, TRAINED, Status, Strategy
from gan_search.hpo.outcome.noise import TIE_SIGMAS, number, rank_labels, score_noise, verdict


def versus_baseline(outcome: SearchOutcome, name: str, iters: int,
                    budget: bool = False) -> str | None:
    """One line: the search's best against the hand-picked baseline, at the same budget per
    trial; after a confirmation, both as means over the same fresh seeds (``budget``: a
    search under a budget, whose confirmation is its top rung of ``iters``)."""
    base = outcome.baseline
    if base is None:
        return None
    budget = (f"both trained the final length ({iters:,} iterations) from scratch" if budget else
              f"at the same budget per trial ({iters:,} iterations)"
              f"{_not_equal_compute(outcome, iters)}")
    if outcome.confirmation:
        win = outcome.confirmation[0]
        mine = next((c for c in outcome.confirmation if c.baseline), None)
        if win.baseline or mine is None or not math.isfinite(win.mean):
            return (f"the baseline {name} (trial {base.trial_id}) is the confirmed winner: the "
                    f"search did not beat it {budget}")
        return (f"confirmed winner, trial {win.trial_id}: {win.mean:.3f} ± {win.spread:.3f} vs the "
                f"baseline {name} (trial {base.trial_id}): {mine.mean:.3f} ± {mine.spread:.3f} over "
                f"the same fresh seeds, {_change(win.mean, mine.mean)}, "
                f"{verdict(win.mean, win.noise, mine.mean, mine.noise)}, {budget}")
    best = best_row(outcome.rows)
    if best is None or best is base:
        return f"the baseline {name} (trial {base.trial_id}) is the best trial {budget}"
    noise = [score_noise(row.metrics) for row in (best, base)]
    return (f"best found, trial {best.trial_id}: {best.score:.3f} vs the baseline {name} (trial "
            f"{base.trial_id}): {base.score:.3f}, {_change(best.score, base.score)}, "
            f"{verdict(best.score, noise[0], base.score, noise[1])}, {budget}")


def budget_lines(outcome: SearchOutcome, config: SearchConfig) -> list[str]:
    """What the search trained against its budget, and the generator it delivers."""
    from gan_search.core.budget import spent_share

    lines = []
    if config.plan is not None:
        lines.append(f"budget: trained {spent_share(outcome.spent, config.plan.total)} "
                     f"iterations (planned {config.plan.iters:,})")
    if outcome.delivered:
        best = outcome.best
        whose = ("the baseline's generator: no configuration the search found beat it"
                 if outcome.baseline_won else
                 f"the winner's generator (configuration of trial {outcome.winner_id})")
        lines.append(f"delivered: {whose}, run {best.trial_id} trained "
                     f"{best.metrics.get('step'):,} iterations, {config.spec.objectives[0]} "
                     f"{best.score:.3f}: {outcome.delivered}")
    return lines


def exit_status(outcome: SearchOutcome) -> tuple[int, str | None]:
    """What ``gan-search run`` exits with, and its one line on stderr: 0 when a trial ended
    usable (finished, or stopped early by ASHA); 1 when none did (every one failed,
    diverged or collapsed); 0 with a warning when some did not."""
    unusable = [r for r in outcome.rows if r.status not in TRAINED]
    counts = ", ".join(f"{sum(r.status == s for r in unusable)} {s}" for s in
                       dict.fromkeys(r.status for r in unusable))
    if outcome.rows and len(unusable) == len(outcome.rows):
        return 1, (f"gan-search: no trial ended usable ({counts}): nothing is delivered; each "
                   "trial's error is above and in the leaderboard")
    if unusable:
        return 0, f"gan-search: warning: {len(unusable)} of {len(outcome.rows)} trials did not " \
            f"end usable ({counts})"
    return 0, None


def _not_equal_compute(outcome: SearchOutcome, iters: int) -> str:
    """What the comparison is not: the search's whole compute against one trial's."""
    spent = sum(int(r.metrics.get("step") or 0) for r in [*outcome.rows, *outcome.confirm_rows])
    if spent <= iters:
        return ""
    return (f"; not at equal compute: the search trained {spent:,} iterations in all, "
            f"{spent / iters:.1f}x the baseline's one trial")


def _change(mine: float, theirs: float) -> str:
    if not math.isfinite(theirs) or theirs <= 0:
        return "the baseline has no finite score"
    share = 100 * (theirs - mine) / theirs
    return f"{share:.0f}% lower" if share >= 0 else f"{-share:.0f}% higher (worse)"



def leaderboard(outcome: SearchOutcome, searched: list[str], top: int = 20) -> str:
    """A plain-text table of trials, best first (Pareto members marked with *)."""
    two = len(outcome.score_keys) > 1
    rows = sorted(outcome.rows, key=lambda r: (r.status in BROKEN, r.score))
    # every score is the trial's best evaluation (at `step`), or the collapsing one
    pbt = any(r.metrics.get("exploits") for r in rows)  # a PBT member copied another
    header = ["rank", "trial", "status", "FID-lite", "step", "collapse", "KID",
              *(["pareto"] if two else []), *(["copies"] if pbt else []), *searched]
    collapsed = lambda row, key, at_best: row.metrics.get(key if row.status == Status.COLLAPSED  # noqa: E731
                                                          else at_best)
    lines = [header]
    ranks = _ranks(rows[:top])
    for rank, row in zip(ranks, rows[:top]):
        fmt = lambda v, spec=".3f": format(v, spec) if isinstance(v, (int, float)) and not \
            isinstance(v, bool) else "-"  # noqa: E731
        cells = [rank, row.trial_id + (" (baseline)" if row.baseline else ""), row.status,
                 _with_noise(collapsed(row, "fid_lite", "score_fid_lite"),
                             collapsed(row, "fid_lite_std", "fid_lite_std_at_best")),
                 str(collapsed(row, "step", "best_step") or "-"),
                 fmt(collapsed(row, "collapse", "collapse_at_best")),
                 fmt(collapsed(row, "kid", "kid_best"), ".4f"),
                 *(["*" if row.pareto else ""] if two else []),
                 *([_copies(row.metrics)] if pbt else []),
                 *[fmt(row.params.get(k), ".3g") if isinstance(row.params.get(k), float)
                   else str(row.params.get(k, "-")) for k in searched]]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)
    if any(rank.endswith("=") for rank in ranks):
        table += f"\n(=: tied, FID-lite within {TIE_SIGMAS:g} standard deviations of the " \
                 "difference from the first of its group; ± is a score's noise)"
    return table


def _ranks(rows: list[TrialRow]) -> list[str]:
    """Rank labels, ties within noise marked (by FID-lite, when it is what ranks)."""
    return rank_labels([(row.score if row.status not in BROKEN else math.inf,
                         score_noise(row.metrics)) for row in rows])


def _with_noise(value, noise) -> str:
    """"5.223 ± 0.190" (a score and its noise), "5.223" without a noise, "-" without a score."""
    value, noise = number(value), number(noise)
    if not math.isfinite(value):
        return "-"
    return f"{value:.3f} ± {noise:.3f}" if math.isfinite(noise) else f"{value:.3f}"


def _copies(metrics: dict) -> str:
    """A PBT member's copies: "2, last 00001@400" (copies in its weights' lineage, and the
    member's own last one; its settings in the table are the current ones)."""
    count = int(metrics.get("exploits") or 0)
    return f"{count}, last {metrics.get('copied')}" if count else "0"


def outcome_lines(outcome: SearchOutcome, config: SearchConfig, summary: Path) -> list[str]:
    """Everything ``gan-search run`` prints once a search has ended (or was interrupted)."""
    from gan_search.hpo.outcome import analysis, confirm

    lines = ["", leaderboard(outcome, sorted(config.searched))]
    lines += [f"trial {row.trial_id} {row.status}: {row.error}" for row in outcome.rows
              if row.status in BROKEN and row.error]
    if outcome.confirmation:
        lines += ["", confirm.table(outcome.confirmation, config.spec.objectives[0])]
    lines.append("")
    if config.spec.baseline is not None:
        line = versus_baseline(outcome, config.spec.baseline.name, config.confirm_iters,
                               budget=config.plan is not None)
        lines.append(line or "the baseline trial did not run (interrupted before it started)")
    lines += budget_lines(outcome, config)
    if config.strategy == Strategy.PBT:
        schedule = next((p for p in outcome.plots if p.name == "pbt_schedule.png"), None)
        lines.append("what mattered: no importances for pbt (members change their settings "
                     "while they train); " + (f"the winner's schedule: {schedule}" if schedule
                                              else "the winner kept its settings throughout"))
    elif not outcome.interrupted:
        lines.append(analysis.top_line(outcome.importances))
    best = outcome.best
    if best is not None and best.checkpoint:
        lines.append(f"best run: trial {best.trial_id}, {config.spec.objectives[0]} "
                     f"{best.score:.3f} at step {best.metrics.get('best_step')}; sample grid "
                     f"{best.checkpoint}/samples.png")
    plots = f"; plots: {outcome.plots[0].parent}" if outcome.plots else ""
    lines.append(f"search {outcome.name} took {outcome.seconds:.0f} s; results in {outcome.path} "
                 f"(leaderboard: {summary}{plots})")
    return lines
