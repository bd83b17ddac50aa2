"""The speed benchmark script still runs end to end (its targets are checked by running it, not here)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_hwmodel.py"


@pytest.mark.slow
def test_bench_script_runs_and_both_runs_count_the_same():
    out = subprocess.run([sys.executable, str(SCRIPT), "--skip-scalesim", "--evaluations", "1", "--workers", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert text.startswith("machine: ")
    total = int(re.search(r"\[2\] ([\d,]+) layer evaluations", text).group(1).replace(",", ""))
    one = int(re.search(r"1 process : ([\d,]+) evaluations", text).group(1).replace(",", ""))
    two = int(re.search(r"2 processes: ([\d,]+) evaluations", text).group(1).replace(",", ""))
    assert total == one == two > 0
