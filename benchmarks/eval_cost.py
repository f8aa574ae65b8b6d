"""Evaluation cost per space: one evaluation (sampling N images, embedding them and every
metric, against the space's held-out reference with the evaluator a search builds) against
the training time of one eval interval at the space's defaults.

Datasets that need a download are replaced by the synthetic `fake` source at the
space's size and channels with 10 classes: the cost depends on shapes, not content.
Training time per iteration is the median of interleaved short runs, times eval_every.

    python benchmarks/eval_cost.py [--repeats 3] [--train-iters 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone

import torch

from gan_search.core.config import config_from_space
from gan_search.engine.data import load_splits
from gan_search.engine.metrics import Evaluator
from gan_search.core.space import list_spaces, load_space
from gan_search.engine.trainer import GANTrainer


def measure(space: str, repeats: int, train_iters: int) -> dict:
    spec = load_space(space)
    config = config_from_space(spec)
    source, options = spec.data.source, dict(spec.data.options)
    if source not in ("digits", "fake"):
        # enough that the held-out quarter is the space's N
        source, options = "fake", {"n": 4 * max(spec.budget.eval_samples, config.batch_size),
                                   "classes": 10}
    # as a search builds them: the held-out reference and the cached evaluator of its splits
    splits = load_splits(source, config.image_size, config.channels, options,
                         spec.budget.eval_samples)
    evaluator = Evaluator.for_splits(splits, spec.budget.eval_samples)
    n = evaluator.n
    trainer = GANTrainer(config, splits.train.images, device="cpu")
    trainer.train(2)  # warm-up
    evaluator.score(trainer.sample(evaluator.generated))
    eval_times, iter_times = [], []
    for _ in range(repeats):  # interleave the two sides
        started = time.perf_counter()
        evaluator.score(trainer.sample(evaluator.generated))
        eval_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        trainer.train(trainer.step + train_iters, sync_every=train_iters)
        iter_times.append((time.perf_counter() - started) / train_iters)
    eval_s, iter_s = statistics.median(eval_times), statistics.median(iter_times)
    interval_s = iter_s * config.eval_every
    return {"space": space, "size": config.image_size, "channels": config.channels, "n": n,
            "extractor": evaluator.extractor_name, "eval_s": round(eval_s, 3),
            "iter_s": round(iter_s, 4), "eval_every": config.eval_every,
            "interval_train_s": round(interval_s, 2), "eval_share": round(eval_s / interval_s, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-iters", type=int, default=20)
    parser.add_argument("--spaces", nargs="*", default=sorted(list_spaces()))
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = [measure(s, args.repeats, args.train_iters) for s in args.spaces]
    print("| space | size | N | extractor | eval (s) | train per eval interval (s) | eval share |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['space']} | {r['size']}x{r['size']}x{r['channels']} | {r['n']} | {r['extractor']} | "
              f"{r['eval_s']:.3f} | {r['interval_train_s']:.1f} ({r['eval_every']} it) | "
              f"{100 * r['eval_share']:.1f}% |")
    if args.json:
        meta = {"date": datetime.now(timezone.utc).isoformat(), "machine": platform.node(),
                "cpu_threads": torch.get_num_threads(), "torch": torch.__version__}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
