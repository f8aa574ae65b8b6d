"""gan-search benchmark suite: every figure side by side in one run, as ratios.

    python benchmarks/run.py            # full suite (see benchmarks/README.md for its time)
    python benchmarks/run.py --quick    # small sizes, 1 seed: checks that everything runs (CI)

Each timing is a median over repeats that interleave the sides compared (shared, noisy
machines): ratios, not absolute times, are the result. Writes JSON and Markdown (machine,
CPU model, date, versions) to --out (default benchmarks/results/).

1. throughput: GANTrainer (precision auto: bf16 + channels-last where the CPU runs bf16
   natively, and on CUDA) and GANTrainer in fp32, against a pytorch/examples-style DCGAN loop
   (DataLoader over decoded images, per-batch host-to-device copy, fp32 eager, default Adam,
   a .item() per step); same models, data, batch and steps; images/s, ratio, and achieved
   GFLOP/s from torch's FLOP counter. On CUDA also the compiled step.
2. the bf16 choice: the same bf16 / fp32 ratio with oneDNN held below bf16 instructions
   (ONEDNN_MAX_CPU_ISA=AVX512_CORE), i.e. on a CPU without native bf16 (CPU only).
3. packing (GPU only): K = 1, 2, 4, 8 trials as separate processes on one GPU.
4. orchestration: a search of fixed-length trials against the sum of the same trials' bare
   time (training + evaluations) divided by the concurrency (goal <= 1.10).
5. evaluation: one evaluation as a share of one eval interval's training (goal <= 5%).
6. search efficiency and the verdict at equal compute (efficiency.py): each strategy's
   compute to reach random search's best, and what it delivers retrained on fresh seeds,
   against the baseline trained once for the whole budget.
7. precision quality: FID-lite after the same iterations, fp32 vs bf16, over seeds.
8. the default `gan-search run`, timed as a user runs it (full suite only).
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

from efficiency import verdict  # noqa: E402
from eval_cost import measure as measure_eval  # noqa: E402
from report_md import cpu_model  # noqa: E402

from gan_search.core.config import TrainConfig, search_config  # noqa: E402
from gan_search.engine.data import load_dataset, load_splits  # noqa: E402
from gan_search.engine.models import build_models  # noqa: E402
from gan_search.core.space import parse_space  # noqa: E402
from gan_search.engine.trainer import GANTrainer, native_bf16_cpu  # noqa: E402


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
    trainer.train(3, sync_every=3)  # warm-up (and compilation, when compiled)
    started = time.perf_counter()
    trainer.train(3 + steps, sync_every=25)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def flops_per_image(config: TrainConfig, images: torch.Tensor) -> float:
    """FLOPs of one training iteration per image (D and G, forward and backward), counted by
    torch's FLOP counter on one fp32 step on the CPU."""
    from torch.utils.flop_counter import FlopCounterMode

    trainer = GANTrainer(config.replace(precision="fp32", compile="off"), images, device="cpu")
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    return counter.get_total_flops() / config.batch_size


def throughput_cases(quick: bool, device: str) -> list[tuple]:
    """(source, size, channels, width, batch) of each throughput row."""
    if quick:
        return [("digits", 16, 1, 32, 64)]
    if device.startswith("cuda"):
        return [("fake", size, 3, width, batch) for size in (32, 64) for width in (64, 128)
                for batch in (64, 128)]
    return [("digits", 16, 1, 32, 64), ("digits", 32, 1, 64, 64), ("fake", 64, 3, 64, 64)]


def throughput(quick: bool, device: str, repeats: int) -> list[dict]:
    rows = []
    variants = {"engine": {}, "engine_fp32": {"precision": "fp32"}}
    if device.startswith("cuda"):
        variants.update(engine_compiled={"compile": "on"},
                        engine_compiled_fp32={"compile": "on", "precision": "fp32"})
    for source, size, channels, width, batch in throughput_cases(quick, device):
        images = load_dataset(source, size, channels, {"n": 2000} if source == "fake" else {}).images
        config = TrainConfig(image_size=size, channels=channels, g_width=width, d_width=width,
                             batch_size=batch, z_dim=100, compile="off")
        steps = (5 if quick else max(6, int(3000 / (size * width / 16)))) * \
            (20 if device.startswith("cuda") else 1)
        baseline_loop(config, images, 2, device)  # warm up
        times: dict[str, list[float]] = {k: [] for k in ("baseline", *variants)}
        for _ in range(repeats):  # interleaved
            times["baseline"].append(baseline_loop(config, images, steps, device))
            for name, changes in variants.items():
                times[name].append(engine_loop(config.replace(**changes), images, steps, device))
        per_s = {k: steps * batch / statistics.median(v) for k, v in times.items()}
        flops = flops_per_image(config, images)
        row = {"case": f"{source} {size}x{size}x{channels}, width {width}, batch {batch}",
               "device": device, "steps": steps, "gflop_per_image": round(flops / 1e9, 3),
               "baseline_img_s": round(per_s["baseline"], 1)}
        for name in variants:
            row[f"{name}_img_s"] = round(per_s[name], 1)
            row[f"{name}_ratio"] = round(per_s[name] / per_s["baseline"], 3)
            row[f"{name}_gflop_s"] = round(per_s[name] * flops / 1e9, 1)
        row["bf16"] = GANTrainer(config, images[:batch], device=device).use_bf16
        rows.append(row)
    return rows


# ---------------------------------------------------------------- 2. the bf16 choice

BF16_PROBE = """
import json, statistics, sys, time, torch
from gan_search.core.config import TrainConfig
from gan_search.engine.data import load_dataset
from gan_search.engine.trainer import GANTrainer
torch.set_num_threads(1)
out = {}
for size, channels, width in json.loads(sys.argv[1]):
    images = load_dataset("fake", size, channels, {"n": 600}).images
    seconds = {}
    for precision in ("fp32", "bf16"):
        trainer = GANTrainer(TrainConfig(image_size=size, channels=channels, g_width=width,
                                         d_width=width, precision=precision), images, device="cpu")
        trainer.train(2)
        steps, runs = int(sys.argv[2]), []
        for _ in range(3):
            started = time.perf_counter()
            trainer.train(trainer.step + steps)
            runs.append((time.perf_counter() - started) / steps)
        seconds[precision] = statistics.median(runs)
    out[f"{size}x{size}x{channels} width {width}"] = round(seconds["fp32"] / seconds["bf16"], 3)
print(json.dumps(out))
"""


def bf16_choice(quick: bool) -> dict:
    """bf16 + channels-last over fp32 (per step, one thread), with this CPU's own ISA and with
    oneDNN held below bf16 instructions: why `precision: auto` asks the CPU first."""
    cases = [(16, 1, 32)] if quick else [(16, 1, 32), (32, 1, 64), (64, 3, 64)]
    steps = "1" if quick else "8"
    out = {"native_bf16": native_bf16_cpu()}
    for label, env in (("this_cpu", {}), ("without_bf16_isa", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"})):
        done = subprocess.run([sys.executable, "-c", BF16_PROBE, json.dumps(cases), steps],
                              env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=3600)
        out[label] = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 \
            else {"error": done.stderr[-300:]}
    return out


# ---------------------------------------------------------------- 3. packing (GPU)

PACK_WORKER = """
import json, sys, time, torch
from gan_search.core.config import TrainConfig
from gan_search.engine.data import load_dataset
from gan_search.engine.trainer import GANTrainer
size, width, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
config = TrainConfig(image_size=size, channels=3, g_width=width, d_width=width, batch_size=64,
                     iters=steps)
trainer = GANTrainer(config, load_dataset("fake", size, 3, {"n": 2000}).images, device="cuda")
trainer.train(20)
torch.cuda.synchronize()
started = time.perf_counter()
trainer.train(20 + steps)
torch.cuda.synchronize()
print(json.dumps({"seconds": time.perf_counter() - started,
                  "peak_mib": torch.cuda.max_memory_allocated() / 2**20}))
"""


def packing(quick: bool) -> dict:
    """K trials at once on one GPU (separate processes, as fractional resources.gpu makes
    them) against one alone: total images/s and each one's GPU memory."""
    if not torch.cuda.is_available():
        return {"skipped": "no GPU on this machine"}
    load_dataset("fake", 64, 3, {"n": 2000})
    steps = 100 if quick else 1000
    rows = []
    for size, width in ((32, 64), (64, 64)):
        for k in (1, 2, 4, 8):
            procs = [subprocess.Popen([sys.executable, "-c", PACK_WORKER, str(size), str(width),
                                       str(steps)], stdout=subprocess.PIPE, text=True)
                     for _ in range(k)]
            reports = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            wall = max(r["seconds"] for r in reports)
            rows.append({"size": size, "width": width, "k": k, "steps": steps,
                         "img_s_total": round(k * steps * 64 / wall, 1),
                         "peak_mib_each": round(max(r["peak_mib"] for r in reports))})
    for row in rows:
        alone = next(r for r in rows if r["size"] == row["size"] and r["k"] == 1)
        row["speedup_vs_1"] = round(row["img_s_total"] / alone["img_s_total"], 3)
    return {"rows": rows}


# ---------------------------------------------------------------- 4. orchestration

ORCH_SPACE = {
    "data": {"source": "digits", "size": 16, "channels": 1},
    "parameters": {"lr_g": {"kind": "loguniform", "low": 1e-4, "high": 2e-3},
                   "lr_d": {"kind": "loguniform", "low": 1e-4, "high": 2e-3}},
    "fixed": {"z_dim": 32, "batch_size": 64, "g_width": 32, "d_width": 32},
    "strategy": "tpe",
    "scheduler": {"collapse_threshold": 1.0},
    "resources": {"cpu": 1},
}


def bare_trial(config: TrainConfig, images: torch.Tensor, evaluator_state: dict) -> float:
    """One trial's own work outside Ray: training plus its evaluations, 1 thread."""
    from gan_search.engine.metrics import Evaluator

    torch.set_num_threads(1)
    started = time.perf_counter()
    trainer = GANTrainer(config, images, device="cpu")
    evaluator = Evaluator.from_state(evaluator_state)
    while trainer.step < config.iters:
        trainer.train(trainer.step + config.eval_every, sync_every=25)
        evaluator.score(trainer.sample(evaluator.generated))
    return time.perf_counter() - started


def orchestration(quick: bool, folder: Path) -> dict:
    from gan_search.engine.metrics import Evaluator
    from gan_search.app import run_search

    trials, iters, concurrency = (2, 100, 2) if quick else (8, 600, 2)
    raw = {**ORCH_SPACE, "budget": {"trials": trials, "iters": iters, "eval_every": iters // 2,
                                    "eval_samples": 400}, "concurrency": concurrency}
    path = folder / "orchestration.yaml"
    path.write_text(json.dumps(raw))
    config = search_config(parse_space(raw, str(path)), runs_dir=str(folder), name="orchestration",
                           confirm=0)
    started, cpu = time.perf_counter(), time.process_time()
    outcome = run_search(config, log=lambda line: None)
    search_s, driver_cpu = time.perf_counter() - started, time.process_time() - cpu
    splits = load_splits("digits", 16, 1, {}, 400)
    state = Evaluator(splits.reference, n=400, train=splits.train).state()
    configs = [config.trial_config(r.params) for r in outcome.rows]
    threads = torch.get_num_threads()
    bare = [bare_trial(c, splits.train.images, state) for c in configs]
    torch.set_num_threads(threads)
    parallel = bare_in_parallel(configs, splits.train.images, state, concurrency)
    ideal = sum(bare) / concurrency
    return {"trials": trials, "iters": iters, "concurrency": concurrency,
            "search_s": round(search_s, 2), "fit_s": round(outcome.fit_seconds, 2),
            "bare_parallel_s": round(parallel, 2), "bare_sum_s": round(sum(bare), 2),
            "ideal_s": round(ideal, 2),
            "ratio": round(outcome.fit_seconds / parallel, 3),
            "ratio_vs_serial": round(outcome.fit_seconds / ideal, 3),
            "whole_ratio": round(search_s / parallel, 3),
            "mlflow_logging_s": round(outcome.logging_seconds, 2),
            "driver_cpu_s": round(driver_cpu, 2)}  # the driver's own CPU time, all its threads


def bare_in_parallel(configs: list, images: torch.Tensor, state: dict, concurrency: int) -> float:
    """Wall time of the same trials run ``concurrency`` at a time in plain processes (no Ray,
    Tune, checkpoints or MLflow): what the search would take with no orchestration at all,
    on the same cores. The processes are started and warm before the clock starts."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(concurrency, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_warm, range(concurrency)))
        started = time.perf_counter()
        list(pool.map(bare_trial, configs, [images] * len(configs), [state] * len(configs)))
        return time.perf_counter() - started


def _warm(_: int) -> None:
    time.sleep(0.5)  # every worker process up (torch and gan_search imported) before timing


# ---------------------------------------------------------------- 7. precision quality

def precision_quality(quick: bool) -> list[dict]:
    """FID-lite (best of the evaluations) after the same iterations in fp32 and bf16, over
    seeds, on digits at 16 and 32 px: does bf16 hurt the result beyond seed-to-seed spread?"""
    from gan_search.engine.metrics import Evaluator

    cases = [(16, 40, 20, 1)] if quick else [(16, 1200, 400, 3), (32, 800, 400, 3)]
    rows = []
    for size, iters, every, seeds in cases:
        splits = load_splits("digits", size, 1, {}, 400)
        evaluator = Evaluator.for_splits(splits, 400)  # its statistics and classifier cached
        scores: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for seed in range(seeds):
            for precision in scores:
                config = TrainConfig(image_size=size, channels=1, z_dim=32, g_width=32,
                                     d_width=32, lr_g=1e-3, lr_d=1e-3, iters=iters, seed=seed,
                                     precision=precision)
                trainer, best = GANTrainer(config, splits.train.images, device="cpu"), math.inf
                while trainer.step < iters:
                    trainer.train(trainer.step + every)
                    best = min(best, evaluator.score(trainer.sample(evaluator.generated))["fid_lite"])
                scores[precision].append(round(best, 3))
        spread = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
        rows.append({"size": size, "iters": iters, "seeds": seeds, **scores,
                     "fp32_mean": round(statistics.fmean(scores["fp32"]), 3),
                     "bf16_mean": round(statistics.fmean(scores["bf16"]), 3),
                     "fp32_std": round(spread(scores["fp32"]), 3),
                     "bf16_std": round(spread(scores["bf16"]), 3)})
    return rows


# ---------------------------------------------------------------- 8. the default run

def default_run(folder: Path) -> dict:
    """`gan-search run` as the README's first command runs it, timed from outside."""
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "gan-search"), "run", "--runs-dir",
                           str(folder / "default")], capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    tail = [line for line in done.stdout.splitlines() if line.startswith(
        ("confirmed winner", "the baseline", "best found", "what mattered", "search "))]
    return {"seconds": round(seconds, 1), "exit": done.returncode, "summary": tail,
            "output": done.stdout}  # the whole of what the user saw (JSON only)


# ---------------------------------------------------------------- report

def machine() -> dict:
    import optuna
    import ray

    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "native_bf16": native_bf16_cpu(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__,
            "ray": ray.__version__, "optuna": optuna.__version__}


def main() -> int:
    parser = argparse.ArgumentParser(description="gan-search benchmark suite")
    parser.add_argument("--quick", action="store_true", help="small sizes and 1 seed (CI)")
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for JSON + Markdown")
    parser.add_argument("--repeats", type=int, help="repeats per side (default 3, quick 1)")
    parser.add_argument("--seeds", type=int, help="seeds for search efficiency (default 5)")
    parser.add_argument("--only", nargs="*", help="sections to run (default: all)")
    parser.add_argument("--efficiency-log", type=Path,
                        help="JSON lines file: each efficiency seed is appended as it ends, and "
                             "seeds already there are not run again (continue a stopped run)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    seeds = args.seeds or (1 if args.quick else 5)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    report: dict = {"quick": args.quick, "meta": machine()}
    sections = {
        "throughput": lambda tmp: throughput(args.quick, device, repeats),
        "bf16_choice": lambda tmp: bf16_choice(args.quick) if device == "cpu" else {"skipped": "GPU"},
        "packing": lambda tmp: packing(args.quick),
        "orchestration": lambda tmp: orchestration(args.quick, tmp),
        "evaluation": lambda tmp: [measure_eval(s, repeats, 10 if args.quick else 40) for s in
                                   (["digits"] if args.quick else
                                    ["digits", "mnist", "svhn", "faces", "cats"])],
        "efficiency": lambda tmp: verdict(args.quick, tmp, seeds, log=args.efficiency_log),
        "precision_quality": lambda tmp: precision_quality(args.quick),
        "default_run": lambda tmp: {"skipped": "full suite only"} if args.quick else default_run(tmp),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in sections.items():
            if args.only and name not in args.only:
                continue
            began = time.perf_counter()
            report[name] = run(Path(tmp))
            print(f"{name}: {time.perf_counter() - began:.0f} s", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = "-" + "-".join(args.only) if args.only else ""
    stem = f"{'quick-' if args.quick else ''}{'gpu' if device == 'cuda' else 'cpu'}-{platform.node()}{only}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str))
    from report_md import markdown

    text = markdown(report)
    (out / f"{stem}.md").write_text(text)
    print(text)
    print(f"written: {out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
