"""Benchmark of the main job: default sweep (+ report) from a cold start, and big sweeps' time and memory.

    .venv/bin/python benchmarks/bench_sweep.py                        # default, 100k and 1M points
    .venv/bin/python benchmarks/bench_sweep.py --baseline /tmp/before # ... beside an earlier engine
    .venv/bin/python benchmarks/bench_sweep.py --points 100000        # only one big sweep size
    .venv/bin/python benchmarks/bench_sweep.py --skip-big             # only the cold start

Targets (issue 14): a 1,000,000-point sweep under 60 s wall and under 1 GB peak RSS of the
whole process tree; 100,000 points under 6 s; on 2 cores. ``--baseline DIR`` (a checkout of
the earlier engine, e.g. ``git worktree add /tmp/before 6fee389``) runs the same commands with
that engine in the same invocation: the default sweep in full, the big grid on
``--baseline-points`` points (it is ~100x slower); ratios are of points per second. Everything
is measured here, by running the real commands as subprocesses and sampling /proc (RSS of
the command and all its descendants); nothing is estimated.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import children, describe  # noqa: E402  (benchmarks/machine.py)

import yaml

REPO = Path(__file__).resolve().parents[1]
NMLAB = [sys.executable, "-m", "hwmodel"]


def machine() -> str:
    return describe()


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_sampled(cmd: list[str], progress_dir: Path | None = None, interval_s: float = 0.2,
                env: dict | None = None) -> dict:
    """Run ``cmd``; sample the RSS of it plus all its descendants. Returns wall time, peaks and a series."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=None if env is None else env["PYTHONPATH"])
    peak_tree = peak_one = 0
    series: list[tuple[float, int, int]] = []   # (seconds, tree RSS, part files)
    while proc.poll() is None:
        tree = [proc.pid]
        i = 0
        while i < len(tree):
            tree.extend(children(tree[i]))
            i += 1
        rss = [_rss_bytes(p) for p in tree]
        peak_tree = max(peak_tree, sum(rss))
        peak_one = max(peak_one, max(rss, default=0))
        parts = len(list((progress_dir / "parts").glob("part-*.parquet"))) if progress_dir and (progress_dir / "parts").is_dir() else 0
        series.append((time.perf_counter() - t0, sum(rss), parts))
        time.sleep(interval_s)
    out, err = proc.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": cpu, "peak_tree": peak_tree, "peak_one": peak_one, "series": series,
            "stdout": out, "stderr": err}


def _env(checkout: Path | None) -> dict | None:
    return None if checkout is None else {**os.environ, "PYTHONPATH": str(checkout.resolve())}


def bench_default(tmp: Path, baseline: Path | None = None, with_report: bool = True) -> float:
    if baseline is not None:
        old = run_sampled([*NMLAB, "sweep", "--out", str(tmp / "results-before"), "--quiet"], env=_env(baseline))
        new = run_sampled([*NMLAB, "sweep", "--out", str(tmp / "results-warmup"), "--quiet"])
        import pyarrow.parquet as pq

        n_old = pq.ParquetFile(tmp / "results-before" / "points.parquet").metadata.num_rows
        n_new = pq.ParquetFile(tmp / "results-warmup" / "points.parquet").metadata.num_rows
        # The default grids may differ (GPU design points joined it): say both sizes.
        print(f"default sweep, cold start: {old['seconds'] / new['seconds']:.1f}x less wall time and "
              f"{old['cpu_seconds'] / max(new['cpu_seconds'], 1e-9):.1f}x less CPU than the engine in --baseline "
              f"({n_old} points: {old['seconds']:.2f} s wall, {old['cpu_seconds']:.2f} s CPU; this engine "
              f"{n_new} points: {new['seconds']:.2f} s, {new['cpu_seconds']:.2f} s)")
    out = tmp / "results"
    sweep = run_sampled([*NMLAB, "sweep", "--out", str(out), "--quiet"])
    if not with_report:
        print(f"default sweep (cold start): {sweep['seconds']:.2f} s wall, {sweep['cpu_seconds']:.2f} s CPU")
        return sweep["seconds"]
    report = run_sampled([*NMLAB, "report", str(out)])
    import pandas as pd

    n = len(pd.read_parquet(out / "points.parquet"))
    total = sweep["seconds"] + report["seconds"]
    print(f"default sweep (cold start): {n} points in {sweep['seconds']:.1f} s; report in {report['seconds']:.1f} s; "
          f"total {total:.1f} s wall (target < 30 s) -> {'OK' if total < 30 else 'OVER TARGET'}")
    print(f"  CPU time (user+sys, all processes): sweep {sweep['cpu_seconds']:.1f} s, report {report['cpu_seconds']:.1f} s; "
          f"load average now {os.getloadavg()[0]:.2f} (other work on the machine inflates wall time)")
    print(f"  peak RSS: sweep tree {sweep['peak_tree'] / 2**20:.0f} MiB, report tree {report['peak_tree'] / 2**20:.0f} MiB")
    return total


def big_config(tmp: Path, target: int) -> tuple[Path, int]:
    """A grid of at least ``target`` points over the bundled workloads and designs (many patterns and batches)."""
    sys.path.insert(0, str(REPO))
    from hwmodel.workload import bundled_workloads
    from sweeps.config import parse_config
    from sweeps.grid import plan

    workloads: object = "bundled"
    if not bundled_workloads():  # before the RL exports land: synthetic TD3 workloads of two envs
        from hwmodel.workload import save_workload, synthetic_td3_workload

        workloads = []
        for env, (obs, act) in {"Hopper-v5": (11, 3), "HalfCheetah-v5": (17, 6)}.items():
            wl = synthetic_td3_workload(obs, act, seed=0, with_weights=True)
            wl.meta.update(env=env, sparsity="dense", method="synthetic")
            p = tmp / f"{env.split('-')[0].lower()}_dense_s0.nmw"
            save_workload(wl, p)
            workloads.append(str(p))
    patterns = ["dense"] + [f"{n}:{m}" for m in (2, 4, 8, 16) for n in range(1, m)]
    base = {"workloads": workloads, "patterns": patterns, "bits": [4, 8, 16, 32], "quality": None,
            "scenarios": [{"scenario": "inference", "batch": 1}]}
    per_batch = len(plan(parse_config(base, base=tmp)))
    batches = -(-target // per_batch)
    half = (batches + 1) // 2
    base["scenarios"] = [{"scenario": "inference", "batch": list(range(1, half + 1))},
                         {"scenario": "train_step", "batch": [16 * i for i in range(1, batches - half + 1)]}]
    n = len(plan(parse_config(base, base=tmp)))
    path = tmp / "big.yaml"
    path.write_text(yaml.safe_dump(base))
    return path, n


def _ratio(x: float) -> str:
    """A ratio with a decimal below 10 (1.4x, not 1x), whole above."""
    return f"{x:.1f}" if x < 10 else f"{x:,.0f}"


def bench_big(tmp: Path, target: int, baseline: Path | None = None, baseline_points: int = 10_000,
              goal_s: float | None = None) -> None:
    cfg, n = big_config(tmp, target)
    out = tmp / f"big{target}"
    import pyarrow.parquet as pq

    if baseline is not None:
        bcfg, bn = big_config(tmp / "before", baseline_points) if (tmp / "before").mkdir() is None else (None, 0)
        bout = tmp / "before" / "out"
        b = run_sampled([*NMLAB, "sweep", str(bcfg), "--out", str(bout), "--quiet"], progress_dir=bout, interval_s=0.5,
                        env=_env(baseline))
    r = run_sampled([*NMLAB, "sweep", str(cfg), "--out", str(out), "--quiet"], progress_dir=out, interval_s=0.5)
    rows = pq.ParquetFile(out / "points.parquet").metadata.num_rows
    load = os.getloadavg()[0]
    if baseline is not None:
        brows = pq.ParquetFile(bout / "points.parquet").metadata.num_rows
        speed, cpu = rows / r["seconds"] / (brows / b["seconds"]), b["cpu_seconds"] / brows / (r["cpu_seconds"] / rows)
        print(f"big sweep of {rows:,} points: {_ratio(speed)}x the points per second "
              f"of the engine in --baseline (wall; CPU per point {_ratio(cpu)}x "
              f"less), measured on {brows:,} points of the same kind of grid: {brows / b['seconds']:,.0f} points/s "
              f"({b['seconds']:.1f} s wall, {b['cpu_seconds']:.1f} s CPU), "
              f"{b['cpu_seconds'] / brows * 1e3:.3f} ms CPU per point, peak tree RSS {b['peak_tree'] / 2**20:.0f} MiB")
        if brows != rows:   # start-up cost weighs differently on grids of different sizes
            print(f"  (rates of runs of different size: pass --baseline-points {target} for a like-for-like ratio)")
    verdict = ""
    if goal_s is not None:
        ok = r["seconds"] < goal_s and r["peak_tree"] < 2**30
        verdict = f" (target < {goal_s:.0f} s and < 1024 MiB) -> {'OK' if ok else 'OVER TARGET'}"
    print(f"big sweep: {rows:,} points (grid {n:,}) in {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU "
          f"({rows / r['seconds']:,.0f} points/s); peak RSS of the whole process tree {r['peak_tree'] / 2**20:.0f} MiB, "
          f"largest process {r['peak_one'] / 2**20:.0f} MiB{verdict}; load average at the end {load:.2f}")
    # Flat memory: tree RSS at quarters of the run (by part files written) should not grow with points done.
    series = [s for s in r["series"] if s[2] > 0]
    if series:
        last = max(s[2] for s in series)
        marks = []
        for q in (0.1, 0.25, 0.5, 0.75, 0.95):
            s = next((s for s in series if s[2] >= q * last), series[-1])
            marks.append(f"{int(q * 100)}%: {s[1] / 2**20:.0f} MiB")
        print("  tree RSS while sweeping (by share of part files written): " + ", ".join(marks))
    print(f"  table: {(out / 'points.parquet').stat().st_size / 2**20:.1f} MiB on disk, "
          f"{len(list((out / 'parts').glob('part-*.parquet')))} part files")
    shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, action="append", help="size of a big sweep (default: 100000 and 1000000)")
    ap.add_argument("--skip-big", action="store_true", help="only the cold-start default sweep")
    ap.add_argument("--skip-default", action="store_true", help="only the big sweeps")
    ap.add_argument("--with-report", action="store_true", help="also time nmlab report after the default sweep")
    ap.add_argument("--baseline", type=Path, metavar="DIR", help="checkout of the earlier engine to compare with")
    ap.add_argument("--baseline-points", type=int, default=10_000, help="big-grid points the baseline runs (default 10000)")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    goals = {100_000: 6.0, 1_000_000: 60.0}
    with tempfile.TemporaryDirectory(prefix="nmlab-bench-") as d:
        tmp = Path(d)
        if not args.skip_default:
            bench_default(tmp, args.baseline, args.with_report)
        if not args.skip_big:
            for i, points in enumerate(args.points or [100_000, 1_000_000]):
                sub = tmp / f"g{i}"
                sub.mkdir()
                bench_big(sub, points, args.baseline if i == 0 else None, args.baseline_points, goals.get(points))


if __name__ == "__main__":
    main()
