"""The benchmark report as Markdown: one section per measurement run (see run.py); the
CPU's name and the writing of a report's JSON and Markdown, for every benchmark script."""

from __future__ import annotations

import json
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's name, with family/model and its bf16 instruction sets (a VM may report only
    "AMD EPYC": family 26 is Zen 5, Intel's AMX marks Sapphire Rapids or later)."""
    try:
        info: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    flags = [f for f in ("avx512_bf16", "amx_bf16") if f in info.get("flags", "").split()]
    return (f"{info.get('model name', platform.machine())} (family {info.get('cpu family', '?')} "
            f"model {info.get('model', '?')}; {', '.join(flags) or 'no bf16 instructions'})")


def write_report(out: Path, report: dict, text: str) -> None:
    """``out``.json (the whole report) and ``out``.md (``text``), and the text printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    out.with_suffix(".md").write_text(text)
    print(text)


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows]]


def throughput_md(rows: list[dict]) -> list[str]:
    variants = [k[:-6] for k in rows[0] if k.endswith("_ratio")]
    header = ["case", "GFLOP/image-it", "plain loop img/s",
              *[f"{v} img/s (ratio, GFLOP/s)" for v in variants], "bf16 in auto"]
    body = [[r["case"], r["gflop_per_image"], r["baseline_img_s"],
             *[f"{r[v + '_img_s']} (**{r[v + '_ratio']}**, {r[v + '_gflop_s']})" for v in variants],
             r["bf16"]] for r in rows]
    return _table(header, body)


def markdown(report: dict) -> str:
    m = report["meta"]
    lines = [f"# gan-search benchmarks ({'quick' if report['quick'] else 'full'})", "",
             f"{m['date']} on {m['machine']}: CPU {m['cpu']} ({m['cores']} cores, native bf16: "
             f"{m['native_bf16']}), GPU {m['gpu'] or 'none'}; Python {m['python']}, torch "
             f"{m['torch']}, ray {m['ray']}, optuna {m['optuna']}. Suite time {report['seconds']:.0f} s.", ""]
    if "throughput" in report:
        lines += ["## 1. Training throughput (engine / pytorch-examples-style loop; goal >= 1.3 at "
                  "32 and 64 px on CPU, >= 4 on GPU)", "", *throughput_md(report["throughput"]), ""]
    if "bf16_choice" in report:
        b = report["bf16_choice"]
        lines += ["## 2. Why `precision: auto` asks the CPU (bf16 + channels-last over fp32, per step)", ""]
        if "skipped" in b:
            lines += [b["skipped"], ""]
        else:
            cases = sorted(set(b["this_cpu"]) | set(b["without_bf16_isa"]))
            lines += _table(["case", "this CPU (native bf16: %s)" % b["native_bf16"],
                             "oneDNN held below bf16 (ONEDNN_MAX_CPU_ISA=AVX512_CORE)"],
                            [[c, b["this_cpu"].get(c), b["without_bf16_isa"].get(c)] for c in cases])
            lines.append("")
    if "packing" in report:
        p = report["packing"]
        lines += ["## 3. Packing K trials on one GPU (goal: K = 8 gives >= 3x one)", ""]
        lines += [p["skipped"]] if "skipped" in p else _table(
            ["size", "width", "K", "total img/s", "speedup vs K=1", "peak GPU MiB each"],
            [[r["size"], r["width"], r["k"], r["img_s_total"], r["speedup_vs_1"], r["peak_mib_each"]]
             for r in p["rows"]])
        lines.append("")
    if "orchestration" in report:
        o = report["orchestration"]
        lines += ["## 4. Orchestration overhead (goal <= 1.10)", "",
                  f"{o['trials']} trials x {o['iters']} iterations, concurrency {o['concurrency']}: "
                  f"the search's Tune fit {o['fit_s']} s vs the same trials run "
                  f"{o['concurrency']} at a time in plain processes (no Ray, Tune, checkpoints "
                  f"or MLflow) {o['bare_parallel_s']} s: **{o['ratio']}**. Against the bare "
                  f"trials' serial sum / concurrency ({o['ideal_s']} s, which assumes the cores "
                  f"do not slow each other): {o['ratio_vs_serial']}. The whole run_search, with its fixed "
                  f"start-up (Ray, the MLflow store, the reference statistics) and end "
                  f"(importances, plots, summary), {o['search_s']} s: {o['whole_ratio']}. "
                  f"MLflow logging {o['mlflow_logging_s']} s (on its own thread); the driver process "
                  f"used {o.get('driver_cpu_s', '?')} s of CPU.", ""]
    if "evaluation" in report:
        lines += ["## 5. Evaluation cost (goal <= 5% of an eval interval)", "", *_table(
            ["space", "size", "N", "eval (s)", "train per interval (s)", "share"],
            [[r["space"], f"{r['size']}x{r['size']}x{r['channels']}", r["n"], r["eval_s"],
              f"{r['interval_train_s']} ({r['eval_every']} it)", f"{100 * r['eval_share']:.1f}%"]
             for r in report["evaluation"]]), ""]
    if "efficiency" in report:
        from efficiency import markdown

        lines += ["## 6. Search efficiency and the verdict at equal compute (goals: the default "
                  "strategy reaches random search's best with 1/3 of random's compute or less, "
                  "and its pick, retrained on fresh seeds, beats the baseline trained for the "
                  "whole budget in 4 of 5 seeds)", "", *markdown(report["efficiency"])]
    if "precision_quality" in report:
        lines += ["## 7. bf16 vs fp32: FID-lite after the same iterations (best evaluation)", "",
                  *_table(["size", "iterations", "seeds", "fp32", "bf16", "fp32 mean ± std",
                           "bf16 mean ± std"],
                          [[r["size"], r["iters"], r["seeds"], r["fp32"], r["bf16"],
                            f"{r['fp32_mean']} ± {r['fp32_std']}", f"{r['bf16_mean']} ± {r['bf16_std']}"]
                           for r in report["precision_quality"]]), ""]
    if "default_run" in report:
        d = report["default_run"]
        lines += ["## 8. The default `gan-search run`", ""]
        lines += [d["skipped"]] if "skipped" in d else [
            f"{d['seconds']} s wall (exit {d['exit']}):", "", *[f"    {line}" for line in d["summary"]]]
        lines.append("")
    return "\n".join(lines)
