"""Search efficiency and the verdict at equal compute (issue 22): what each strategy
delivers for the compute random search spends. Two spaces hard enough that configurations
really differ (wide learning rates, widths, D steps, dropout, smoothing, batch sizes: much of
the space collapses or learns slowly), at 16 and 32 px, on the offline `digits` data;
compute counted in training iterations (the machine is shared and noisy).

Per space size and seed, every strategy searches on the same compute:

- ``random``: random search, RANDOM_TRIALS trials of the full length; its best evaluation is
  the target, its iterations the budget;
- ``tpe-asha-old``: TPE + ASHA as it was (as Ray's OptunaSearch does, Optuna is told a trial ASHA
  stopped as COMPLETE with its first-rung score);
- ``tpe-asha``: TPE + ASHA as it is (stopped trials told to Optuna as PRUNED);
- ``pbt``: population-based training, a population of RANDOM_TRIALS members (the baseline
  and Optuna's QMC configurations) trained to the full length, which spends the budget.

Every evaluation is counted in the order Tune received it, with the iterations trained for
it (a PBT member that copies another trains on from the copied step). For each strategy:
the iterations it needed until an evaluation reached random search's target, and what it
*delivers*: the configuration (for PBT, the schedule) of its best evaluation within the
budget, retrained from scratch on fresh seeds at the full trial length, mean ± std of the
best FID-lite on the held-out reference. Beside them, the baseline configuration trained
once for the whole budget (random search's planned one: every trial to its end) on the
same fresh seeds (what a tutorial user does), and for one trial's length.

(Its first form, TPE + ASHA against random search alone with trials in the order they
ended, wrote results/cpu-vm-efficiency.md.)

    python benchmarks/efficiency.py digits-hard-16 5 verdict-16.jsonl   # seeds are logged: rerun
                                                                     # to continue a stopped run
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any, Iterator

from ray.tune import Callback

from gan_search.engine.metrics.evaluator import GENERATED_PER_REFERENCE

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
STRATEGIES = ("random", "tpe-asha-old", "tpe-asha", "pbt")
# name: (image size, iterations per trial, eval every, random trials, N). At 32 px, 400
# iterations could not tell the space's configurations apart (the first rung's rank
# correlation with the final best was 0.70 at 200 and 0.96 only from 600: rung-rank.md);
# 1,200 iterations give each trial three evaluations past that point.
VARIANTS = {
    "digits-hard-16": (16, 800, 200, 16, 400),
    "digits-hard-32": (32, 1200, 200, 8, 400),
}
QUICK = {"digits-hard-16": (16, 40, 20, 3, 64)}
FRESH = (1001, 1002)  # the retrains' seeds: never a search trial's
WORST = 1.0e4  # a retrain that diverged counts as this (core.vocabulary.DIVERGED_SCORE)


class Evaluations(Callback):
    """Every evaluation of a search, in the order Tune received it: (trial, step, FID-lite,
    iterations trained for it)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, float, int]] = []
        self._last: dict[str, tuple[int, int]] = {}  # trial -> (step, restarted from)

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        if "step" not in result:
            return
        step, start = int(result["step"]), int(result.get("resumed_from_step") or 0)
        self.seen.append((trial.trial_id, step, float(result.get("fid_lite", math.inf)),
                          trained(self._last.get(trial.trial_id), step, start)))
        self._last[trial.trial_id] = (step, start)


def trained(last: tuple[int, int] | None, step: int, start: int) -> int:
    """Iterations behind an evaluation at ``step`` of a run (re)started at ``start``: since
    the trial's previous evaluation, or since the start when it restarted (a PBT member
    that copied another starts from the copied step)."""
    if last is None or last[1] != start:
        return step - start
    return step - last[0]


def spent(seen: list) -> int:
    return sum(s[3] for s in seen)


def to_reach(seen: list, target: float) -> float:
    """Iterations trained until an evaluation scored ``target`` or better; inf if never."""
    used = 0
    for _, _, fid, cost in seen:
        used += cost
        if fid <= target:
            return used
    return math.inf


def best_within(seen: list, budget: int) -> tuple[str | None, float]:
    """The trial of the best evaluation among those trained within ``budget``, and its score."""
    used, best = 0, (None, math.inf)
    for trial_id, _, fid, cost in seen:
        used += cost
        if used > budget:
            break
        if fid < best[1]:
            best = (trial_id, fid)
    return best


@contextlib.contextmanager
def searcher_as_it_was() -> Iterator[None]:
    """TPE + ASHA before issue 22: a trial ASHA stopped told to Optuna as COMPLETE with the
    score it was stopped at (what Ray's own OptunaSearch does)."""
    from gan_search.hpo.strategies import searcher

    repaired = searcher.StudySearch

    class AsItWas(repaired):
        def _outcome(self, trial_id: str, result: dict | None, error: bool) -> tuple:
            if searcher.stopped_early(result):
                result = {**result, "status": "stopped as complete"}
            return super()._outcome(trial_id, result, error)

    searcher.StudySearch = AsItWas
    try:
        yield
    finally:
        searcher.StudySearch = repaired


@contextlib.contextmanager
def startup_trials(count: int) -> Iterator[None]:
    """The sampler with ``count`` random start-up trials instead of the product's rule."""
    import optuna

    from gan_search.hpo import tuning

    product = tuning.build_sampler

    def build(config: Any) -> Any:
        sampler = product(config)
        if isinstance(sampler, optuna.samplers.TPESampler):
            return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=count,
                                              multivariate=True)
        if isinstance(sampler, optuna.samplers.GPSampler):
            return optuna.samplers.GPSampler(seed=config.seed, n_startup_trials=count)
        return sampler
    tuning.build_sampler = build
    try:
        yield
    finally:
        tuning.build_sampler = product


def how(strategy: str) -> tuple[str, Any]:
    """A benchmark strategy as the product's strategy and what to change for it:
    ``tpe-asha-old`` (the searcher as it was), ``<strategy>-startupK`` (K start-up trials)."""
    if strategy.endswith("-old"):
        return strategy.removesuffix("-old"), searcher_as_it_was()
    found = re.fullmatch(r"(.+)-startup(\d+)", strategy)
    if found:
        return found[1], startup_trials(int(found[2]))
    return strategy, contextlib.nullcontext()


def search(spec: Any, folder: Path, strategy: str, seed: int, trials: int) -> tuple[Any, list]:
    from gan_search.app import run_search
    from gan_search.core.config import search_config

    name, context = how(strategy)
    evaluations = Evaluations()
    with context:
        outcome = run_search(search_config(spec, name=f"{spec.name}-{strategy}-{seed}",
                                           strategy=name, trials=trials, runs_dir=str(folder),
                                           seed=seed, confirm=0),
                             log=lambda line: None, track=False, callbacks=[evaluations])
    return outcome, evaluations.seen


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


def pick(outcome: Any, trial_id: str | None) -> dict[str, Any] | None:
    """What a strategy delivers: its best trial's settings, and its schedule (PBT)."""
    from gan_search.hpo.outcome.confirm import changed_schedule

    row = next((r for r in outcome.rows if r.trial_id == trial_id), None)
    if row is None:
        return None
    return {"trial": trial_id, "params": dict(row.params),
            "schedule": changed_schedule(row.metrics)}


def retrain(job: tuple) -> float:
    """One fresh-seed run of a configuration (and schedule): its best FID-lite on the
    held-out reference, evaluated every ``every`` iterations (a process of its own)."""
    space_file, params, schedule, iters, every, seed = job
    import torch

    from gan_search.core.config import config_from_space
    from gan_search.core.space import parse_space
    from gan_search.engine.data import load_splits
    from gan_search.engine.metrics import Evaluator
    from gan_search.engine.trainer import GANTrainer
    from gan_search.core.settings import TrialSettings

    torch.set_num_threads(1)  # as one trial of the searches (two at a time on two cores)
    spec = parse_space(json.loads(Path(space_file).read_text()), space_file)
    n = spec.budget.eval_samples
    splits = load_splits("digits", spec.data.size, 1, {}, n)
    evaluator = Evaluator.for_splits(splits, n)
    plan = TrialSettings(params, schedule=tuple(schedule))
    config = config_from_space(spec, {**params, **plan.values_at(0), "iters": iters,
                                      "eval_every": every, "seed": seed})
    trainer, best = GANTrainer(config, splits.train.images, device="cpu"), math.inf
    while trainer.step < iters:
        trainer.retune(plan.values_at(trainer.step))
        target = min(iters, (trainer.step // every + 1) * every,
                     plan.next_change(trainer.step) or iters)
        if trainer.train(target, sync_every=25).status != "finished":
            return WORST
        if trainer.step % every == 0 or trainer.step == iters:
            best = min(best, float(evaluator.score(trainer.sample(evaluator.generated))["fid_lite"]))
    return best


def retrain_all(jobs: list[tuple]) -> list[float]:
    """The fresh-seed runs, two at a time in processes of their own (spawned: the benchmark's
    process holds a Ray driver)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        return pool.map(retrain, jobs)


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 3),
            "std": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
            "runs": [round(v, 3) for v in values]}


def measure(spec: Any, folder: Path, strategy: str, seed: int, trials: int, iters: int,
            every: int, reference: dict | None) -> dict:
    """One strategy on one seed: the compute it needed to reach random search's best, and
    what it delivers. ``reference``: random search's record of the seed (None: this is it,
    and its best and its iterations become the target and the budget)."""
    asha = how(strategy)[0].endswith("-asha")  # ASHA stops trials: let it propose more
    outcome, seen = search(spec, folder, strategy, seed, 3 * trials if asha else trials)
    budget = reference["budget_iters"] if reference else spent(seen)
    target = reference["target"] if reference else min(s[2] for s in seen)
    trial_id, best = best_within(seen, budget)
    chosen = pick(outcome, trial_id)
    scores = retrain_all([(spec.path, chosen["params"], chosen["schedule"], iters, every, fresh)
                          for fresh in FRESH])
    out = {"iters_to_reach": to_reach(seen, target), "spent": spent(seen),
           "best_within_budget": round(best, 3), "trials": len(outcome.rows),
           "stopped": sum(r.status == "stopped" for r in outcome.rows), "pick": chosen,
           "delivered": mean_std(scores)}
    if reference is None:
        out.update(target=round(target, 6), budget_iters=budget)
    return out


def seed_records(done: list[dict], variant: str, seed: int) -> dict[str, dict]:
    """What the log holds of one seed, by strategy (lines of one strategy each, or of a
    whole seed with every strategy in it, as the first runs wrote them)."""
    found: dict[str, dict] = {}
    for record in done:
        if record.get("variant") != variant or record.get("seed") != seed:
            continue
        if "strategy" in record:
            found[record["strategy"]] = record["result"]
        else:
            found.update({k: v for k, v in record.items() if k in STRATEGIES or "-" in k})
            found["random"] = {**found["random"], "target": record["target"],
                               "budget_iters": record["budget_iters"]}
    return found


def baseline_runs(spec: Any, budget: int, iters: int, every: int) -> dict:
    """The baseline configuration on the fresh seeds, for the whole budget and for one
    trial's length."""
    params = dict(spec.baseline.values)
    jobs = [(spec.path, params, [], length, every, fresh)
            for length in (budget, iters) for fresh in FRESH]
    scores = retrain_all(jobs)
    return {"budget_iters": budget, "whole_budget": mean_std(scores[:len(FRESH)]),
            "one_trial": mean_std(scores[len(FRESH):])}


def check_scores(done: list[dict], log: Path | None) -> None:
    """A log is only continued with the FID-lite it was measured with: lines from before
    FID-lite compared 2 x N generated images (2026-12-02) carry no count and used N."""
    used = {d.get("fid_lite_generated_per_n", 1) for d in done}
    if used and used != {GENERATED_PER_REFERENCE}:
        raise SystemExit(f"{log}: measured with FID-lite on {sorted(used)} x N generated images, "
                         f"this code uses {GENERATED_PER_REFERENCE} x N; continue it with the code "
                         "it was started with (git worktree add ... 69cd598) or start a new log")


def verdict(quick: bool, folder: Path, seeds: int, only: list[str] | None = None,
            log: Path | None = None, strategies: tuple[str, ...] = STRATEGIES) -> dict:
    """Every variant (or ``only`` these), seed and strategy (random search first: it sets
    the target and the budget); with ``log``, each result is appended as it ends and what
    is there already is not run again (a stopped run continues; strategies can be added)."""
    done = [json.loads(line) for line in log.read_text().splitlines()] \
        if log is not None and log.is_file() else []
    check_scores(done, log)

    def logged(record: dict) -> dict:
        record["fid_lite_generated_per_n"] = GENERATED_PER_REFERENCE
        if log is not None:
            with log.open("a") as f:
                f.write(json.dumps(record, default=str) + "\n")
        return record

    out = {}
    for name, (size, iters, every, trials, n) in (QUICK if quick else VARIANTS).items():
        if only and name not in only:
            continue
        spec = variant_space(name, folder, size, iters, every, trials, n)
        # the baseline first, for random search's planned budget (every trial to its end)
        found = [d for d in done if d.get("variant") == name and d.get("baseline")]
        base = found[0]["baseline"] if found else logged(
            {"variant": name, "baseline": baseline_runs(spec, trials * iters, iters,
                                                        every)})["baseline"]
        per_seed = []
        for seed in range(seeds):
            records = seed_records(done, name, seed)
            for strategy in ("random", *[s for s in strategies if s != "random"]):
                if strategy not in records:
                    records[strategy] = logged({"variant": name, "seed": seed,
                                                "strategy": strategy, "result": measure(
                        spec, folder, strategy, seed, trials, iters, every,
                        records.get("random"))})["result"]
            per_seed.append({"seed": seed, "target": records["random"]["target"],
                             "budget_iters": records["random"]["budget_iters"], **records})
        if per_seed:
            out[name] = summarise(per_seed, base, size, iters, every, trials)
    return out


def summarise(per_seed: list[dict], base: dict, size: int, iters: int, every: int,
              trials: int) -> dict:
    """Per strategy: the median share of random's compute it needed to reach random's
    target, and in how many seeds its fresh-seed mean beat the baseline's whole-budget one."""
    line = base["whole_budget"]["mean"]
    strategies = {}
    present = [k for k in per_seed[0] if isinstance(per_seed[0][k], dict)]
    for strategy in present:
        shares = [s[strategy]["iters_to_reach"] / s["random"]["iters_to_reach"]
                  for s in per_seed]
        strategies[strategy] = {
            "median_compute_share": round(statistics.median(shares), 3),
            "reached_in": sum(math.isfinite(x) for x in shares),
            "beats_baseline_whole_budget": sum(s[strategy]["delivered"]["mean"] < line
                                               for s in per_seed),
            "delivered_median": round(statistics.median(
                s[strategy]["delivered"]["mean"] for s in per_seed), 3)}
    return {"size": size, "iters_per_trial": iters, "eval_every": every,
            "random_trials": trials, "seeds": per_seed, "baseline": base,
            "strategies": strategies}


def markdown(results: dict) -> list[str]:
    """The verdict's tables (per variant: seeds x strategies, then the goals)."""
    lines = []
    for name, v in results.items():
        base = v["baseline"]
        names = list(v["strategies"])
        lines += [f"### {name}: {v['size']} px, {v['iters_per_trial']} iterations a trial "
                  f"(evaluated every {v['eval_every']}), random search {v['random_trials']} "
                  "trials a seed", "",
                  "Per seed: iterations to reach random search's best (share of random's "
                  "own) and what the strategy delivers: its pick retrained on fresh seeds "
                  f"{', '.join(map(str, FRESH))}, mean ± std of best FID-lite.", "",
                  "| seed | target | budget | " + " | ".join(names) + " |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |"]
        for s in v["seeds"]:
            cells = []
            for strategy in names:
                r = s[strategy]
                share = r["iters_to_reach"] / s["random"]["iters_to_reach"]
                cells.append(f"{r['iters_to_reach']} ({share:.2f}); "
                             f"{r['delivered']['mean']} ± {r['delivered']['std']}")
            lines.append(f"| {s['seed']} | {s['target']:.3f} | {s['budget_iters']} | "
                         + " | ".join(cells) + " |")
        whole, one = base["whole_budget"], base["one_trial"]
        lines += ["", f"Baseline (the DCGAN paper's configuration) on the same fresh seeds: "
                  f"trained once for the whole budget ({base['budget_iters']:,} iterations) "
                  f"**{whole['mean']} ± {whole['std']}**; for one trial's length "
                  f"{one['mean']} ± {one['std']}.", "",
                  "| strategy | median compute share to reach random's best (reached) | "
                  "seeds whose delivered mean beats the baseline's whole budget | "
                  "median delivered |", "| --- | --- | --- | --- |"]
        for strategy, g in v["strategies"].items():
            lines.append(f"| {strategy} | {g['median_compute_share']} ({g['reached_in']} of "
                         f"{len(v['seeds'])}) | {g['beats_baseline_whole_budget']} of "
                         f"{len(v['seeds'])} | {g['delivered_median']} |")
        lines.append("")
    return lines


if __name__ == "__main__":
    import argparse
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report_md import cpu_model  # noqa: E402

    parser = argparse.ArgumentParser(description="the verdict at equal compute")
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("seeds", type=int)
    parser.add_argument("log", type=Path, help="JSON lines: results so far (continued)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--strategies", nargs="*", default=list(STRATEGIES),
                        help="e.g. gp-asha tpe-asha-startup4 (random always runs first)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = verdict(args.quick, Path(tmp), args.seeds, [args.variant], args.log,
                          tuple(args.strategies))
    print(f"CPU {cpu_model()}")
    print("\n".join(markdown(results)))
