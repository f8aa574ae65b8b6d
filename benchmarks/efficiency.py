"""Search efficiency: TPE + ASHA against random search, and the search against the baseline.

Two spaces hard enough that configurations really differ (wide learning rates, widths,
D steps, dropout, smoothing, batch sizes: much of the space collapses or learns slowly),
one at 16 px and one at 32 px, both on the offline `digits` data. Per seed:

- random search (Optuna's RandomSampler, no early stopping) runs RANDOM_TRIALS full trials;
  its final best FID-lite is the target, its total iterations the budget;
- TPE + ASHA (the product's search) runs as many trials as fit in that budget;
- compute to reach the target: the iterations each spent, trials counted in the order they
  ended, until its best so far was at least as good as random search's final best
  (goal: TPE + ASHA in a third of random's or less);
- the baseline configuration trained once for the whole budget (what a tutorial does: one
  hand-picked configuration, trained long) against the best configuration TPE + ASHA found
  with the same budget spread over many short trials.

Compute is counted in training iterations, not seconds: the machine is shared and noisy.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

SPACE = {
    "data": {"source": "digits", "size": 16, "channels": 1},
    "parameters": {
        "lr_g": {"kind": "loguniform", "low": 1.0e-5, "high": 1.0e-2},
        "lr_d": {"kind": "loguniform", "low": 1.0e-5, "high": 1.0e-2},
        "beta1": {"kind": "uniform", "low": 0.0, "high": 0.95},
        "beta2": {"kind": "choice", "values": [0.9, 0.99, 0.999]},
        "label_smoothing": {"kind": "uniform", "low": 0.0, "high": 0.4},
        "g_width": {"kind": "choice", "values": [8, 16, 32, 64]},
        "d_width": {"kind": "choice", "values": [8, 16, 32, 64]},
        "z_dim": {"kind": "choice", "values": [8, 32, 100]},
        "kernel_size": {"kind": "choice", "values": [4, 5]},
        "leaky_slope": {"kind": "uniform", "low": 0.0, "high": 0.4},
        "d_dropout": {"kind": "uniform", "low": 0.0, "high": 0.5},
        "d_steps": {"kind": "int", "low": 1, "high": 3},
        "batch_size": {"kind": "choice", "values": [16, 64, 128]},
    },
    "objectives": ["fid_lite"],
    "strategy": "tpe-asha",
    "scheduler": {"grace_period": 1, "reduction_factor": 3},
    "resources": {"cpu": 1},
    "concurrency": 2,
    # the DCGAN paper's settings, as the tutorials quote them (see search_spaces/digits.yaml)
    "baseline": {"name": "dcgan-paper",
                 "values": {"lr_g": 2.0e-4, "lr_d": 2.0e-4, "beta1": 0.5, "beta2": 0.999,
                            "label_smoothing": 0.0, "g_width": 64, "d_width": 64,
                            "z_dim": 100, "kernel_size": 4, "leaky_slope": 0.2,
                            "d_dropout": 0.0, "d_steps": 1, "batch_size": 128},
                 "sources": {k: "search_spaces/digits.yaml and the seeds it cites" for k in (
                     "lr_g", "lr_d", "beta1", "beta2", "label_smoothing", "g_width", "d_width",
                     "z_dim", "kernel_size", "leaky_slope", "d_dropout", "d_steps",
                     "batch_size")}},
}
VARIANTS = {  # name: (image size, iterations per trial, eval every, random trials, N)
    "digits-hard-16": (16, 800, 200, 16, 400),
    "digits-hard-32": (32, 400, 100, 8, 400),
}
QUICK = {"digits-hard-16": (16, 40, 20, 3, 100)}


def variant_space(name: str, folder: Path, size: int, iters: int, every: int, trials: int,
                  n: int) -> Any:
    from gan_search.core.space import parse_space

    raw = json.loads(json.dumps(SPACE))
    raw.update(name=name, budget={"trials": trials, "iters": iters, "eval_every": every,
                                  "eval_samples": n})
    raw["data"]["size"] = size
    path = folder / f"{name}.json"
    path.write_text(json.dumps(raw))
    return parse_space(raw, str(path))


def iterations_to_reach(rows: list, target: float) -> float:
    """Training iterations spent (trials in the order they ended) until the best FID-lite
    so far is <= target; inf if never."""
    done = 0
    for row in sorted(rows, key=lambda r: r.metrics.get("timestamp", 0)):
        done += int(row.metrics.get("step", 0) or 0)
        if row.metrics.get("fid_lite_best", math.inf) <= target:
            return done
    return math.inf


def within_budget(rows: list, budget: int) -> list:
    """The trials (in the order they ended) whose iterations fit in ``budget``."""
    used, kept = 0, []
    for row in sorted(rows, key=lambda r: r.metrics.get("timestamp", 0)):
        used += int(row.metrics.get("step", 0) or 0)
        if used > budget:
            break
        kept.append(row)
    return kept


def baseline_long(spec: Any, iters: int, every: int, n: int) -> float:
    """The baseline configuration trained once for ``iters``: its best FID-lite on the
    same held-out reference, at the same evaluation interval."""
    import torch

    from gan_search.core.config import config_from_space
    from gan_search.engine.data import load_splits
    from gan_search.engine.metrics import Evaluator
    from gan_search.engine.trainer import GANTrainer

    splits = load_splits("digits", spec.data.size, 1, {}, n)
    evaluator = Evaluator(splits.reference, n=min(n, len(splits.reference.images)),
                          train=splits.train)
    config = config_from_space(spec, {**spec.baseline.values, "iters": iters,
                                      "eval_every": every})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as one trial of the searches (concurrency 2 on 2 cores)
    trainer, best = GANTrainer(config, splits.train.images, device="cpu"), math.inf
    try:
        while trainer.step < iters:
            if trainer.train(trainer.step + every, sync_every=25).status != "finished":
                break
            best = min(best, evaluator.score(trainer.sample(evaluator.n))["fid_lite"])
    finally:
        torch.set_num_threads(threads)
    return best


def one_seed(spec: Any, folder: Path, seed: int, trials: int, iters: int, every: int,
             n: int) -> dict:
    from gan_search.core.config import search_config
    from gan_search.app import run_search

    common = dict(runs_dir=str(folder), seed=seed, confirm=0)
    random = run_search(search_config(spec, name=f"{spec.name}-random-{seed}", strategy="random",
                                      trials=trials, **common),
                        log=lambda line: None, track=False)
    budget = sum(int(r.metrics.get("step", 0) or 0) for r in random.rows)
    target = min(r.metrics.get("fid_lite_best", math.inf) for r in random.rows)
    tpe = run_search(search_config(spec, name=f"{spec.name}-tpe-{seed}", strategy="tpe-asha",
                                   trials=3 * trials, **common),
                     log=lambda line: None, track=False)
    kept = within_budget(tpe.rows, budget)
    best = min((r.metrics.get("fid_lite_best", math.inf) for r in kept), default=math.inf)
    return {"seed": seed, "random_best": round(target, 3), "budget_iters": budget,
            "random_iters_to_best": iterations_to_reach(random.rows, target),
            "tpe_asha_iters_to_reach": iterations_to_reach(kept, target),
            "tpe_asha_best": round(best, 3), "tpe_asha_trials": len(kept),
            "tpe_asha_stopped": sum(r.status == "stopped" for r in kept)}


def efficiency(quick: bool, folder: Path, seeds: int, only: list[str] | None = None,
               log: Path | None = None) -> dict:
    """Every variant (or ``only`` these), every seed; the medians and the baseline
    comparison. With ``log``, each seed's result is appended to it as it ends, and seeds
    already there are not run again (a long run can be stopped and continued)."""
    done = [json.loads(line) for line in log.read_text().splitlines()] \
        if log is not None and log.is_file() else []
    out = {}
    for name, (size, iters, every, trials, n) in (QUICK if quick else VARIANTS).items():
        if only and name not in only:
            continue
        spec = variant_space(name, folder, size, iters, every, trials, n)
        per_seed = []
        for seed in range(seeds):
            found = [d for d in done if d.get("variant") == name and d["seed"] == seed]
            result = found[0] if found else {"variant": name, **one_seed(
                spec, folder, seed, trials, iters, every, n)}
            if log is not None and not found:
                with log.open("a") as f:
                    f.write(json.dumps(result) + "\n")
            per_seed.append(result)
        # the compute TPE + ASHA needed to reach random search's final best, as a share of
        # what random search needed to find it (and, beside it, of random's whole budget)
        shares = [s["tpe_asha_iters_to_reach"] / s["random_iters_to_best"] for s in per_seed]
        budget = int(statistics.median(s["budget_iters"] for s in per_seed))
        base = baseline_long(spec, budget, every, n)
        out[name] = {"size": size, "iters_per_trial": iters, "random_trials": trials,
                     "seeds": per_seed,
                     "median_compute_share": round(statistics.median(shares), 3),
                     "median_share_of_budget": round(statistics.median(
                         s["tpe_asha_iters_to_reach"] / s["budget_iters"] for s in per_seed), 3),
                     "reached_in": sum(math.isfinite(s) for s in shares),
                     "baseline_long_iters": budget, "baseline_long_best": round(base, 3),
                     "tpe_asha_best_median": round(statistics.median(
                         s["tpe_asha_best"] for s in per_seed), 3)}
    return out


if __name__ == "__main__":  # one variant alone: python benchmarks/efficiency.py NAME SEEDS LOG
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(efficiency(False, Path(tmp), int(sys.argv[2]), [sys.argv[1]],
                                    Path(sys.argv[3])), indent=2, default=str))
