"""The benchmark suite's --quick mode runs end to end and writes its table. Timings are
never asserted here (the machines are shared and noisy)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_suite_produces_its_table(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reports = list(tmp_path.glob("quick-*.json"))
    assert len(reports) == 1 and reports[0].with_suffix(".md").is_file()
    report = json.loads(reports[0].read_text())
    assert set(report) >= {"meta", "throughput", "packing", "orchestration", "evaluation",
                           "efficiency", "seconds"}
    assert report["meta"]["torch"] and report["throughput"][0]["ratio"] > 0
    assert report["orchestration"]["ratio"] > 0 and report["evaluation"][0]["space"] == "digits"
    assert len(report["efficiency"]["seeds"]) == 1
    assert "## 5. Search efficiency" in result.stdout
