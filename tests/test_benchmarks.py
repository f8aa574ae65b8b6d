"""The benchmark suite's --quick mode runs end to end and writes its tables; the search-
efficiency arithmetic is checked on trials made up here. Timings are never asserted (the
machines are shared and noisy). The sections that run whole searches (orchestration,
efficiency, the default run) run in the full suite: `python benchmarks/run.py`."""

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_quick_benchmark_suite_produces_its_tables(tmp_path):
    sections = ["throughput", "bf16_choice", "packing", "evaluation", "precision_quality"]
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                             "--out", str(tmp_path), "--only", *sections],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reports = list(tmp_path.glob("quick-*.json"))
    assert len(reports) == 1 and reports[0].with_suffix(".md").is_file()
    report = json.loads(reports[0].read_text())
    assert set(report) >= {"meta", *sections, "seconds"} and report["meta"]["cpu"]
    row = report["throughput"][0]
    assert row["engine_ratio"] > 0 and row["engine_fp32_ratio"] > 0 and row["gflop_per_image"] > 0
    assert set(report["bf16_choice"]) >= {"native_bf16", "this_cpu", "without_bf16_isa"}
    assert report["evaluation"][0]["space"] == "digits"
    assert len(report["precision_quality"][0]["fp32"]) == 1
    assert "## 1. Training throughput" in result.stdout and "## 7. bf16 vs fp32" in result.stdout


def test_rank_agreement_of_a_rung_with_the_final_best():
    """Trials whose order at evaluation 1 is the reverse of their final order: Spearman -1
    and none of the final top third kept; at the last evaluation the order is the final."""
    from rung_rank import table

    fid = {f"t{i}": {1: 30.0 + i, 2: 20.0 - i} for i in range(6)}  # best: t5, t4 (a third)
    rows = {r["evaluation"]: r for r in table(fid)}
    assert rows[1]["spearman"] == -1.0 and rows[1]["top_third_kept"] == "0/2"
    assert rows[2]["spearman"] == 1.0 and rows[2]["top_third_kept"] == "2/2"
    assert rows[1]["trials"] == 6


def test_the_balance_benchmark_makes_a_folder_of_real_photographs(tmp_path):
    """Crops of the photographs installed packages ship, at the asked size, as PNGs that the
    real folder source reads."""
    from balance import make_folder, shipped_photos
    from gan_search.engine.data import load_dataset

    assert len(shipped_photos()) == 3 and all(p.is_file() for p in shipped_photos())
    folder = make_folder(tmp_path / "photos", 12, 40)
    data = load_dataset("folder", 40, 3, {"path": str(folder)})
    assert data.images.shape == (12, 3, 40, 40) and data.images.float().std() > 20


def test_the_verdict_counts_each_evaluation_with_the_iterations_behind_it():
    """Evaluations in the order Tune received them: a trial's iterations since its previous
    evaluation, or since its restart (a PBT member that copied another's step-40
    checkpoint has trained 20 iterations for its step-60 evaluation, not 40)."""
    from efficiency import Evaluations, best_within, spent, to_reach

    seen = Evaluations()
    for trial, step, fid, start in [("a", 20, 50.0, 0), ("b", 20, 40.0, 0), ("a", 40, 30.0, 0),
                                    ("b", 60, 20.0, 40), ("b", 80, 10.0, 40), ("a", 40, 30.0, 40)]:
        seen.on_trial_result(0, [], type("T", (), {"trial_id": trial})(),
                             {"step": step, "fid_lite": fid, "resumed_from_step": start})
    assert [s[3] for s in seen.seen] == [20, 20, 20, 20, 20, 0]  # the last: scored, not trained
    assert spent(seen.seen) == 100
    assert to_reach(seen.seen, 20.0) == 80 and to_reach(seen.seen, 5.0) == math.inf
    assert best_within(seen.seen, 60) == ("a", 30.0)
    assert best_within(seen.seen, 100) == ("b", 10.0)


def test_the_score_noise_table_pools_the_best_trials_and_ranks_against_the_check():
    """score_noise.py: a score's noise is pooled over the 10 best trials by the independent
    check (root mean of their variances over generated sets), its spread is over the 10
    lowest first-set scores, and Spearman compares first-set scores with the check."""
    from score_noise import summarise

    rows = {f"t{i}": {"check": float(i), "scores": {
        "fid@N": [10.0 + i, 10.0 + i + (2.0 if i < 10 else 0.0)],  # variance 2 for the best 10
        "delta@N": [1.5, 1.5]}} for i in range(12)}
    rows["t11"]["scores"]["fid@N"][0] = 0.0  # the worst by the check scores best: one swap
    table = summarise({"rows": rows})
    assert [row["score"] for row in table] == ["fid@N"]
    row = table[0]
    assert math.isclose(row["noise"], math.sqrt(2.0)) and math.isclose(row["estimated"], 1.5)
    assert math.isclose(row["spearman_top"], 1.0) and row["spearman_all"] < 0.9
    assert math.isclose(row["spread_top"], statistics.stdev([0.0, *[10.0 + i for i in range(9)]]))


def test_the_budget_verdict_counts_a_win_only_beyond_noise_in_both_feature_spaces(tmp_path):
    from budget_verdict import report

    def record(seed, arm, fid, fid_std, fd, fd_std):
        return {"variant": "v", "seed": seed, "arm": arm, "budget": 100, "fid_lite": fid,
                "fid_lite_std": fid_std, "mlp_fd": fd, "mlp_fd_std": fd_std, "spent": 100,
                "final": 40 if arm == "budget" else 100, "baseline_won": False}
    log = tmp_path / "verdict.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [
        record(0, "budget", 5.0, 0.1, 8.0, 0.2), record(0, "baseline-whole", 7.0, 0.1, 9.0, 0.2),
        record(1, "budget", 5.0, 0.1, 8.0, 0.2),  # beyond noise in FID-lite only
        record(1, "baseline-whole", 7.0, 0.1, 8.1, 0.2),
        record(2, "budget", 9.0, 0.1, 9.0, 0.2), record(2, "baseline-whole", 7.0, 0.1, 8.0, 0.2)]))
    table = report(log)
    assert "| v | 0 | win | win |" in table and "| v | 1 | win | tie |" in table
    assert "| v | 2 | loss | loss |" in table
    assert table.endswith("in both feature spaces on 1 of 3 seeds.")
