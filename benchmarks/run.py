"""gan-search benchmark suite: the engine against a plain DCGAN loop, side by side in one run.

    python benchmarks/run.py            # full suite (see benchmarks/README.md for its time)
    python benchmarks/run.py --quick    # small sizes, 1 seed: checks that everything runs

Each figure is a median over repeats that interleave the two sides (shared, noisy
machines): ratios, not absolute times, are the result. Writes the table as JSON and
Markdown (machine, date, versions) to --out (default benchmarks/results/).

1. throughput: GANTrainer vs a pytorch/examples-style DCGAN loop (DataLoader over decoded
   images, per-batch host-to-device copy, fp32 eager, default Adam, a .item() per step),
   same models, data, batch size and steps; images per second, ratio.
2. packing (GPU only): K trials sharing one GPU vs the same K one after another.
3. orchestration: a search of fixed-length trials vs the sum of the same trials' bare
   time (training + evaluations) divided by the concurrency (goal <= 1.10).
4. evaluation: one evaluation as a share of the training time of one eval interval at
   the space's defaults (goal <= 5%).
5. search efficiency on digits: TPE + ASHA vs random search without early stopping at
   equal compute, over seeds: the compute (training iterations) each needs to reach random
   search's final best FID-lite (goal: TPE + ASHA in a third or less).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from eval_cost import measure as measure_eval  # noqa: E402

from gan_search.config import TrainConfig, search_config  # noqa: E402
from gan_search.data import load_dataset  # noqa: E402
from gan_search.models import build_models  # noqa: E402
from gan_search.space import load_space, parse_space  # noqa: E402
from gan_search.train import GANTrainer  # noqa: E402


# ---------------------------------------------------------------- 1. throughput

def baseline_loop(config: TrainConfig, images: torch.Tensor, steps: int, device: str) -> float:
    """The pytorch/examples dcgan loop, same models: seconds for `steps` G steps."""
    torch.manual_seed(config.seed)
    gen, disc = build_models(config)
    gen, disc = gen.to(device), disc.to(device)
    opt_g = torch.optim.Adam(gen.parameters())  # default Adam, as the 'plain' baseline
    opt_d = torch.optim.Adam(disc.parameters())
    decoded = images.float().div(127.5).sub(1)  # decoded on the host, as a Dataset would hold
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(decoded),
                                         batch_size=config.batch_size, shuffle=True, drop_last=True)
    done = 0
    started = time.perf_counter()
    while done < steps:
        for (real,) in loader:
            real = real.to(device)  # per-batch host-to-device copy
            z = torch.randn(real.shape[0], config.z_dim, device=device)
            fake = gen(z)
            out_real, out_fake = disc(real), disc(fake.detach())
            loss_d = F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real)) + \
                F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            out = disc(fake)
            loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            loss_d.item(), loss_g.item()  # the example prints both every step: a host sync
            done += 1
            if done == steps:
                break
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def engine_loop(config: TrainConfig, images: torch.Tensor, steps: int, device: str) -> float:
    trainer = GANTrainer(config, images, device=device)
    started = time.perf_counter()
    trainer.train(steps, sync_every=25)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def throughput(quick: bool, device: str, repeats: int) -> list[dict]:
    cases = [("digits", 16, 1, 32, 64)] if quick else [
        ("digits", 16, 1, 32, 64), ("digits", 32, 1, 64, 64), ("fake", 64, 3, 64, 64)]
    steps = 20 if quick else 60
    if device.startswith("cuda"):
        steps *= 10
    rows = []
    for source, size, channels, width, batch in cases:
        options = {"n": 2000} if source == "fake" else {}
        images = load_dataset(source, size, channels, options).images
        config = TrainConfig(image_size=size, channels=channels, g_width=width, d_width=width,
                             batch_size=batch, z_dim=100)
        engine_loop(config, images, 3, device), baseline_loop(config, images, 3, device)  # warm up
        ours, base = [], []
        for _ in range(repeats):  # interleaved
            ours.append(engine_loop(config, images, steps, device))
            base.append(baseline_loop(config, images, steps, device))
        per_s = lambda t: steps * batch / statistics.median(t)  # noqa: E731
        rows.append({"case": f"{source} {size}x{size}x{channels}, width {width}, batch {batch}",
                     "device": device, "steps": steps, "engine_img_s": round(per_s(ours), 1),
                     "baseline_img_s": round(per_s(base), 1),
                     "ratio": round(per_s(ours) / per_s(base), 3)})
    return rows


# ---------------------------------------------------------------- 2. packing (GPU)

def packing(quick: bool, k: int = 4) -> dict:
    """K trials at once on one GPU (processes) vs the same K one after another."""
    if not torch.cuda.is_available():
        return {"skipped": "no GPU on this machine"}
    steps = 200 if quick else 1000
    script = ("import sys, torch; from gan_search.config import TrainConfig; "
              "from gan_search.data import load_dataset; from gan_search.train import GANTrainer; "
              "c = TrainConfig(image_size=32, channels=1, g_width=32, d_width=32, batch_size=64); "
              "d = load_dataset('digits', 32, 1).images; "
              f"GANTrainer(c, d, device='cuda').train({steps}); torch.cuda.synchronize()")
    run = lambda n: [subprocess.Popen([sys.executable, "-c", script]) for _ in range(n)]  # noqa: E731
    for p in run(1):  # warm caches
        p.wait()
    together, alone = [], []
    for _ in range(3):
        started = time.perf_counter()
        for p in run(k):
            p.wait()
        together.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(k):
            for p in run(1):
                p.wait()
        alone.append(time.perf_counter() - started)
    return {"k": k, "steps": steps, "packed_s": round(statistics.median(together), 2),
            "sequential_s": round(statistics.median(alone), 2),
            "speedup": round(statistics.median(alone) / statistics.median(together), 3)}


# ---------------------------------------------------------------- 3. orchestration

ORCH_SPACE = {
    "data": {"source": "digits", "size": 16, "channels": 1},
    "parameters": {"lr_g": {"kind": "loguniform", "low": 1e-4, "high": 2e-3},
                   "lr_d": {"kind": "loguniform", "low": 1e-4, "high": 2e-3}},
    "fixed": {"z_dim": 32, "batch_size": 64, "g_width": 32, "d_width": 32},
    "scheduler": {"kind": "none", "collapse_threshold": 1.0},
    "resources": {"cpu": 1},
}


def bare_trial(config: TrainConfig, images: torch.Tensor, evaluator_state: dict) -> float:
    """One trial's own work outside Ray: training plus its evaluations, 1 thread."""
    from gan_search.metrics import Evaluator

    torch.set_num_threads(1)
    started = time.perf_counter()
    trainer = GANTrainer(config, images, device="cpu")
    evaluator = Evaluator.from_state(evaluator_state)
    while trainer.step < config.iters:
        trainer.train(trainer.step + config.eval_every, sync_every=25)
        evaluator.score(trainer.sample(evaluator.n))
    return time.perf_counter() - started


def orchestration(quick: bool, folder: Path) -> dict:
    from gan_search.data import dataset_key
    from gan_search.metrics import Evaluator
    from gan_search.search import run_search

    trials, iters, concurrency = (4, 200, 2) if quick else (8, 600, 2)
    raw = {**ORCH_SPACE, "budget": {"trials": trials, "iters": iters, "eval_every": iters // 2,
                                    "eval_samples": 500}, "concurrency": concurrency}
    path = folder / "orchestration.yaml"
    path.write_text(json.dumps(raw))
    config = search_config(parse_space(raw, str(path)), runs_dir=str(folder), name="orchestration",
                           confirm=0)
    started = time.perf_counter()
    outcome = run_search(config, log=lambda line: None)
    search_s = time.perf_counter() - started
    data = load_dataset("digits", 16, 1)
    state = Evaluator(data, n=500, dataset_key=dataset_key("digits", 16, 1, {})).state()
    threads = torch.get_num_threads()
    bare = [bare_trial(config.trial_config(r.params), data.images, state) for r in outcome.rows]
    torch.set_num_threads(threads)
    ideal = sum(bare) / concurrency
    return {"trials": trials, "iters": iters, "concurrency": concurrency,
            "search_s": round(search_s, 2), "bare_sum_s": round(sum(bare), 2),
            "ideal_s": round(ideal, 2), "ratio": round(search_s / ideal, 3),
            "mlflow_logging_s": round(outcome.logging_seconds, 2)}


# ---------------------------------------------------------------- 5. search efficiency

def iterations_to_reach(rows: list, target: float) -> float:
    """Training iterations consumed (trials in order of finishing) until the best
    FID-lite so far is <= target; inf if never."""
    done = 0
    for row in sorted(rows, key=lambda r: r.metrics.get("timestamp", 0)):
        done += int(row.metrics.get("step", 0))
        if row.metrics.get("fid_lite_best", math.inf) <= target:
            return done
    return math.inf


def efficiency(quick: bool, folder: Path, seeds: int) -> dict:
    from gan_search.search import run_search

    spec = load_space("smoke" if quick else "digits")
    trials = 4 if quick else 12
    per_seed = []
    for seed in range(seeds):
        common = dict(runs_dir=str(folder), trials=trials, seed=seed, confirm=0)
        random = run_search(search_config(spec, name=f"random-{seed}", sampler="random",
                                          scheduler="none", **common), log=lambda line: None)
        budget = sum(int(r.metrics.get("step", 0)) for r in random.rows)
        target = min(r.metrics.get("fid_lite_best", math.inf) for r in random.rows)
        # TPE + ASHA gets the same compute: as many trials as fit in random's iterations
        # (ASHA stops most early), capped at 3x the trials
        tpe = run_search(search_config(spec, name=f"tpe-{seed}", sampler="tpe",
                                       scheduler="asha", **{**common, "trials": 3 * trials}),
                         log=lambda line: None)
        ordered = sorted(tpe.rows, key=lambda r: r.metrics.get("timestamp", 0))
        used, kept = 0, []
        for row in ordered:
            if used + int(row.metrics.get("step", 0)) > budget:
                break
            used += int(row.metrics.get("step", 0))
            kept.append(row)
        per_seed.append({
            "seed": seed, "random_best": round(target, 3),
            "random_iters_to_best": iterations_to_reach(random.rows, target),
            "random_iters_total": budget,
            "tpe_asha_best_at_equal_compute": round(min(
                (r.metrics.get("fid_lite_best", math.inf) for r in kept), default=math.inf), 3),
            "tpe_asha_iters_to_reach": iterations_to_reach(kept, target)})
    shares = [s["tpe_asha_iters_to_reach"] / s["random_iters_to_best"] for s in per_seed]
    return {"space": spec.name, "trials_random": trials, "seeds": per_seed,
            "median_compute_ratio": round(statistics.median(shares), 3)}


# ---------------------------------------------------------------- report

def machine() -> dict:
    import optuna
    import ray

    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.node(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "gpu": torch.cuda.get_device_name(0)
            if torch.cuda.is_available() else None, "python": platform.python_version(),
            "torch": torch.__version__, "ray": ray.__version__, "optuna": optuna.__version__}


def markdown(report: dict) -> str:
    m = report["meta"]
    lines = [f"# gan-search benchmarks ({'quick' if report['quick'] else 'full'})", "",
             f"{m['date']} on {m['machine']}: {m['cores']} cores, GPU {m['gpu'] or 'none'}; "
             f"Python {m['python']}, torch {m['torch']}, ray {m['ray']}, optuna {m['optuna']}. "
             f"Suite time {report['seconds']:.0f} s.", "",
             "## 1. Training throughput (GANTrainer / pytorch-examples-style loop)", "",
             "| case | device | engine img/s | baseline img/s | ratio |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['case']} | {r['device']} | {r['engine_img_s']} | {r['baseline_img_s']} | "
              f"{r['ratio']} |" for r in report["throughput"]]
    p = report["packing"]
    lines += ["", "## 2. Packing K trials on one GPU", "",
              p.get("skipped") or f"K={p['k']}: packed {p['packed_s']} s vs one after another "
                                  f"{p['sequential_s']} s: {p['speedup']}x"]
    o = report["orchestration"]
    lines += ["", "## 3. Orchestration overhead (goal <= 1.10)", "",
              f"{o['trials']} trials x {o['iters']} iterations, concurrency {o['concurrency']}: "
              f"search {o['search_s']} s vs bare sum / concurrency {o['ideal_s']} s: "
              f"**{o['ratio']}** (MLflow logging {o['mlflow_logging_s']} s)"]
    lines += ["", "## 4. Evaluation cost (goal <= 5% of an eval interval)", "",
              "| space | size | N | eval (s) | train per interval (s) | share |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['space']} | {r['size']}x{r['size']}x{r['channels']} | {r['n']} | {r['eval_s']} | "
              f"{r['interval_train_s']} ({r['eval_every']} it) | {100 * r['eval_share']:.1f}% |"
              for r in report["evaluation"]]
    e = report["efficiency"]
    lines += ["", "## 5. Search efficiency (goal: TPE+ASHA in 1/3 of random's compute or less)", "",
              f"space {e['space']}, random search {e['trials_random']} full trials per seed", "",
              "| seed | random best FID-lite | random iters to its best | TPE+ASHA best at equal compute | TPE+ASHA iters to reach it |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {s['seed']} | {s['random_best']} | {s['random_iters_to_best']} | "
              f"{s['tpe_asha_best_at_equal_compute']} | {s['tpe_asha_iters_to_reach']} |" for s in e["seeds"]]
    lines += ["", f"median compute ratio (TPE+ASHA / random): **{e['median_compute_ratio']}**", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="gan-search benchmark suite")
    parser.add_argument("--quick", action="store_true", help="small sizes and 1 seed (CI)")
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for JSON + Markdown")
    parser.add_argument("--repeats", type=int, help="repeats per side (default 3, quick 2)")
    parser.add_argument("--seeds", type=int, help="seeds for search efficiency (default 3)")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    seeds = args.seeds or (1 if args.quick else 3)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    report: dict = {"quick": args.quick, "meta": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        report["throughput"] = throughput(args.quick, device, repeats)
        report["packing"] = packing(args.quick)
        report["orchestration"] = orchestration(args.quick, Path(tmp))
        spaces = ["digits"] if args.quick else ["digits", "mnist", "svhn", "faces", "cats"]
        report["evaluation"] = [measure_eval(s, repeats, 10 if args.quick else 40) for s in spaces]
        report["efficiency"] = efficiency(args.quick, Path(tmp), seeds)
    report["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{'quick-' if args.quick else ''}{'gpu' if device == 'cuda' else 'cpu'}-{platform.node()}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    (out / f"{stem}.md").write_text(text)
    print(text)
    print(f"written: {out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
