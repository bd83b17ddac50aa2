"""benchmarks/bench_td3.py without Stable-Baselines3: one line and exit 2 before any run."""

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_td3.py"


def test_missing_sb3_is_one_line_before_any_run(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("bench_td3_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "stable_baselines3" else real_find_spec(name, *a))

    def no_run(*args, **kwargs):
        raise AssertionError("a training run started before the missing SB3 was reported")

    monkeypatch.setattr(mod, "run_ours", no_run)
    monkeypatch.setattr(mod, "run_sb3", no_run)
    monkeypatch.setattr(sys, "argv", ["bench_td3.py", "--updates", "10", "--repeats", "1"])
    assert mod.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench_td3: error: stable-baselines3 is not installed (pip install -e .[bench], or pass --no-sb3)"]
    # --no-sb3 does not ask for it: the script goes on to its runs.
    monkeypatch.setattr(sys, "argv", ["bench_td3.py", "--updates", "10", "--repeats", "1", "--no-sb3"])
    try:
        mod.main()
    except AssertionError as e:
        assert "training run started" in str(e)
    else:
        raise AssertionError("--no-sb3 did not reach the runs")
