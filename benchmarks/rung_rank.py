"""Is the first rung predictive? For GAN trials, how well does a trial's FID-lite at each
evaluation rank it by its final best, which is what ASHA bets on when it stops trials at a
rung. Real trials of a random search (every trial trains its whole budget, no early stop),
their FID-lite at every evaluation recorded by a Tune callback; Spearman's rank correlation
between the FID-lite at evaluation k and the trial's best over all its evaluations, and the
share of the final top third that a rung keeping its top third would have kept.

    python benchmarks/rung_rank.py [--trials 24] [--sizes 16 32] [--seeds 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import math
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from ray.tune import Callback
from scipy.stats import spearmanr

from gan_search.core.config import search_config
from gan_search.core.space import load_space

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report_md import cpu_model, write_report  # noqa: E402
# (image size, iterations a trial, evaluation interval): digits' own budget at 16 px; at
# 32 px a trial costs about four times as much, so fewer iterations, more evaluations
CASES = {16: (1200, 200), 32: (800, 200)}


class History(Callback):
    """FID-lite at every evaluation of every trial: {trial_id: {iteration: fid_lite}}."""

    def __init__(self) -> None:
        self.fid: dict[str, dict[int, float]] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        if "fid_lite" in result:
            self.fid.setdefault(trial.trial_id, {})[int(result["training_iteration"])] = \
                float(result["fid_lite"])


def one_search(size: int, trials: int, seed: int, folder: Path) -> dict[str, dict[int, float]]:
    from gan_search.app import run_search

    iters, every = CASES[size]
    config = search_config(load_space("digits"), trials=trials, iters=iters, seed=seed,
                           sets={"image_size": size} if size != 16 else None,
                           runs_dir=str(folder), name=f"rung-{size}-{seed}", confirm=0,
                           strategy="random")
    config = dataclasses.replace(config, eval_every=every)
    history = History()
    run_search(config, callbacks=[history], log=lambda line: None, track=False)
    return history.fid


def table(fid: dict[str, dict[int, float]]) -> list[dict]:
    """Per evaluation k: over the trials that reached it (a collapsed trial ends early),
    Spearman(FID at k, the trial's best) and how many of their top third by best the top
    third at k holds."""
    fid = {t: {int(k): v for k, v in h.items() if math.isfinite(v)} for t, h in fid.items()}
    best = {t: min(h.values()) for t, h in fid.items() if h}
    rows = []
    for k in sorted({k for h in fid.values() for k in h}):
        at_k = {t: h[k] for t, h in fid.items() if k in h}
        if len(at_k) < 3:
            continue
        third = max(1, len(at_k) // 3)
        top = set(sorted(at_k, key=best.get)[:third])
        kept = set(sorted(at_k, key=at_k.get)[:third])
        rho = spearmanr([at_k[t] for t in at_k], [best[t] for t in at_k]).statistic
        rows.append({"evaluation": k, "spearman": round(float(rho), 3),
                     "top_third_kept": f"{len(kept & top)}/{third}", "trials": len(at_k)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cpu-vm-rung-rank")
    parser.add_argument("--tables-from", type=Path, metavar="JSON",
                        help="recompute the tables of an earlier report's histories, run nothing")
    args = parser.parse_args()
    if args.tables_from:
        report = json.loads(args.tables_from.read_text())
        for data in report["sizes"].values():
            data["rows"] = table(data["history"])
        write_report(args.out, report, markdown(report))
        return 0
    started, report = time.perf_counter(), {"sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for seed in args.seeds:
                fid = one_search(size, args.trials, seed, Path(tmp))
                report["sizes"][f"{size}px seed {seed}"] = {
                    "iters": CASES[size][0], "every": CASES[size][1], "rows": table(fid),
                    "history": fid}
                print(size, seed, report["sizes"][f"{size}px seed {seed}"]["rows"], flush=True)
    report.update(when=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  cpu=cpu_model(), cores=os.cpu_count(), seconds=round(time.perf_counter() - started, 1))
    write_report(args.out, report, markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = [f"# Is the first rung predictive? ({report['when']}, {report['seconds']:.0f} s)", "",
             f"CPU {report['cpu']}, {report['cores']} cores.", "",
             "Random search on digits, every trial its whole budget. Spearman's rank correlation "
             "between a trial's FID-lite at evaluation k and its best over all evaluations; "
             "`top third kept`: of the trials whose best is in the top third, how many the top "
             "third at evaluation k holds (what a rung keeping a third would keep).", "",
             "| case | iterations (every) | evaluation k | Spearman | top third kept |",
             "| --- | --- | --- | --- | --- |"]
    for case, data in report["sizes"].items():
        for row in data["rows"]:
            lines.append(f"| {case} ({row['trials']} trials) | {data['iters']} ({data['every']}) "
                         f"| {row['evaluation']} | {row['spearman']} | {row['top_third_kept']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
