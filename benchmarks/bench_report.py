"""Benchmark of ``nmlab report`` on the default sweep: this checkout against an earlier revision, in one run.

    .venv/bin/python benchmarks/bench_report.py                     # vs the report code of main
    .venv/bin/python benchmarks/bench_report.py --baseline REV -n 5 # vs another revision, 5 runs each

Target (issue 15): the default report (no PNGs) in under 3 s wall, as a user runs it: a fresh
``python -m hwmodel report DIR`` process, imports included. The baseline is the ``reports/``
package of ``--baseline`` (``git archive``, put first on PYTHONPATH; everything else is this
checkout's), run with its own defaults (it drew the PNGs by default) and with ``--no-png``.
Runs alternate between the variants so load changes hit both alike; the medians, their ratios
and the load average before and after are printed. Nothing is estimated.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402  (benchmarks/machine.py)

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 3.0


def _baseline_tree(rev: str, dest: Path) -> Path:
    """``reports/`` of ``rev`` extracted under ``dest`` (returned: the directory to put on PYTHONPATH)."""
    blob = subprocess.run(["git", "-C", str(REPO), "archive", rev, "reports"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _run(pythonpath: str, args: list[str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of ``python -m hwmodel ARGS`` with ``pythonpath`` (CPU: user + system of the process
    and its workers, which other load on the machine inflates far less than wall). ``cwd`` must not hold a
    package named like ours (python puts the working directory before PYTHONPATH)."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hwmodel", *args], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default="main", help="git revision whose reports/ is the baseline (default main)")
    ap.add_argument("-n", type=int, default=3, help="runs of each variant (default 3)")
    args = ap.parse_args()
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory(prefix="nmlab-bench-report-") as d:
        tmp = Path(d)
        base = _baseline_tree(args.baseline, tmp / "baseline")
        run_dir = tmp / "run"
        subprocess.run([sys.executable, "-m", "hwmodel", "sweep", "--out", str(run_dir)], check=True, cwd=tmp,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        here = str(REPO)
        variants = {
            f"{args.baseline} default (PNGs)": (f"{base}{os.pathsep}{here}", ["report", str(run_dir)]),
            f"{args.baseline} --no-png": (f"{base}{os.pathsep}{here}", ["report", str(run_dir), "--no-png"]),
            "this checkout, default": (here, ["report", str(run_dir), "-q"]),
            "this checkout, --png": (here, ["report", str(run_dir), "-q", "--png"]),
        }
        load_before = os.getloadavg()[0]
        times: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        for name, (path, _) in variants.items():  # each variant imports the report code it claims to
            where = subprocess.run([sys.executable, "-c", "import reports; print(reports.__file__)"], cwd=tmp,
                                   env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True).stdout
            assert where.startswith(str(base) if name.startswith(args.baseline) else here), (name, where)
        for _ in range(args.n):
            for name, (path, argv) in variants.items():
                wall, used = _run(path, argv, tmp)
                times[name].append(wall)
                cpu[name].append(used)
        load_after = os.getloadavg()[0]
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    new = med["this checkout, default"]
    new_cpu = med_cpu["this checkout, default"]
    print(f"nmlab report on the default sweep ({args.n} runs each, alternating; median wall of a fresh process; "
          f"load average {load_before:.2f} before, {load_after:.2f} after):")
    for name, m in med.items():
        ratio = f"{m / new:.1f}x the new default" if name != "this checkout, default" else "reference"
        print(f"  {name:<28} {m:6.2f} s wall ({ratio}; runs {', '.join(f'{t:.2f}' for t in times[name])}); "
              f"CPU {med_cpu[name]:.2f} s ({med_cpu[name] / new_cpu:.1f}x)")
    verdict = "meets" if new < TARGET_S else "misses"
    print(f"default report: {new:.2f} s, {verdict} the {TARGET_S:g} s target")


if __name__ == "__main__":
    main()
