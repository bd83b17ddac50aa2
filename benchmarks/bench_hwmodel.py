#!/usr/bin/env python
"""Speed of the hardware model: against SCALE-Sim v3, and raw throughput on a sweep grid.

Part 1 times SCALE-Sim and our model on the same TD3-shaped GEMM layers on the same 32x32
weight-stationary array (the bundled ``scalesim_default_ws`` design), checks that the
stall-free compute cycles are equal, and prints the per-layer time ratio. Ours is timed as
the columnar model runs in a sweep (one ``hwmodel.model.evaluate`` call over 10,000 points of
the layer: per-layer time = call time / 10,000) and as one ``simulate()`` call.
Target: columnar >= 100,000x faster than SCALE-Sim on every layer at equal compute cycles.

Part 2 times 100,000 layer evaluations (layers x designs x patterns x bitwidths x batch
sizes) through the columnar model (each workload mapped onto each design, then one
evaluate_many() call per design over every workload's bitwidth/batch points) on 1 and on
``--workers`` processes. Target: < 2 us per layer evaluation.

A layer evaluation is one GEMM of one layer on one design at one pattern, bitwidth and batch,
with everything ``simulate`` reports for it (cycles with stalls, traffic, energy by component);
the dense reference is not counted.

``--baseline DIR`` (a checkout of the earlier engine, e.g. ``git worktree add /tmp/before
6fee389``) also times that engine's ``simulate()`` on the same layers in the same run, and
prints our speed as a ratio first, then absolute figures.

Usage:
    .venv/bin/python benchmarks/bench_hwmodel.py [--evaluations 100000] [--workers 2]
        [--skip-scalesim] [--repeat 200] [--baseline DIR] [--profile]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402  (benchmarks/machine.py)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")   # one BLAS thread per process: the workers are the parallelism

import numpy as np  # noqa: E402

import hwmodel  # noqa: E402
from hwmodel.design import load_design  # noqa: E402
from hwmodel.workload import Workload, synthetic_td3_workload  # noqa: E402

# TD3 layer shapes M,K,N (Hopper obs 11, act 3; HalfCheetah obs 17, act 6): control-loop
# batch 1 and replay batch 256, dense and 2:4.
SCALESIM_LAYERS = [
    "1,11,256", "1,256,256", "1,256,3", "256,14,256", "256,256,1", "256,256,256",
    "1,17,256,2:4", "1,256,256,2:4", "256,23,256,2:4", "256,256,256,2:4",
]
ENVS = {"hopper": (11, 3), "halfcheetah": (17, 6), "ant": (27, 8), "humanoid": (376, 17)}
PATTERNS = ("dense", "2:4", "1:4", "1:8", "2:8", "4:8")
BITS = (4, 8, 16)
BATCHES = (1, 32, 256)


def machine() -> str:
    return describe(numpy=np.__version__)


# --- part 1: SCALE-Sim vs ours ------------------------------------------------------------------

def _best_time(make_calls, repeat: int) -> tuple[float, float]:
    """Best of 5 (wall, CPU) seconds per call; ``make_calls(repeat)`` builds the calls, untimed."""
    best_wall = best_cpu = float("inf")
    for _ in range(5):
        calls = make_calls(repeat)
        t0, c0 = time.perf_counter(), time.process_time()
        for call in calls:
            call()
        best_wall = min(best_wall, (time.perf_counter() - t0) / repeat)
        best_cpu = min(best_cpu, (time.process_time() - c0) / repeat)
    return best_wall, best_cpu


COLUMNAR_POINTS = 10_000

_BASELINE_LAYER = """
import json, time
import hwmodel
from hwmodel.peers.crosscheck import BITS, equivalent_design, scalesim_mask
from hwmodel.peers.scalesim import parse_gemm
from hwmodel.workload import Layer, Workload
design = equivalent_design(32, 32)
out = {}
for text in LAYERS:
    g = parse_gemm(text)
    wl = Workload([Layer("gemm", "crosscheck", g.k, g.n, str(g.pattern), scalesim_mask(g), BITS)])
    hwmodel.simulate(wl, design, batch=g.m, bits=BITS)
    best = float("inf")
    for _ in range(5):
        c0 = time.process_time()
        for _ in range(REPEAT):
            hwmodel.simulate(wl, design, batch=g.m, bits=BITS)
        best = min(best, (time.process_time() - c0) / REPEAT)
    out[text] = best
print(json.dumps(out))
"""


def bench_scalesim(repeat: int, baseline: str | None) -> None:
    from hwmodel.model import evaluate, map_program
    from hwmodel.peers.crosscheck import BITS as XBITS
    from hwmodel.peers.crosscheck import equivalent_design, run_ours, scalesim_mask
    from hwmodel.peers.scalesim import parse_gemm, run_scalesim
    from hwmodel.program import build_program
    from hwmodel.workload import Layer

    design = equivalent_design(32, 32)
    sram_kb = tuple(max(1, design.sram_for(op).capacity_bytes // 1024) for op in ("inputs", "weights", "outputs"))
    before = None
    if baseline:
        from baseline import run_in

        code = f"LAYERS = {SCALESIM_LAYERS!r}\nREPEAT = {repeat}\n" + _BASELINE_LAYER
        before = run_in(baseline, code)
    print(f"\n[1] SCALE-Sim v3 vs nmlab on {design.name} (32x32 WS), one layer per SCALE-Sim run; CPU seconds.")
    print(f"    columnar = one evaluate() call over {COLUMNAR_POINTS:,} points of the layer, per point (the "
          "sweep's path); simulate = one simulate() call (mask analysed: warm), best of 5 x "
          f"{repeat}" + ("; before = the same simulate() call of the engine in --baseline" if before else ""))
    head = f"{'layer M,K,N[,n:m]':<18}{'SCALE-Sim s':>12}{'columnar us':>13}{'simulate us':>13}"
    head += f"{'before us':>11}{'x before':>10}" if before else ""
    print(head + f"{'x SCALE-Sim':>13}{'SS+1':>7}{'ours':>7}  cycles")
    worst = float("inf")
    all_equal = True
    rows = []
    for text in SCALESIM_LAYERS:
        g = parse_gemm(text)
        c0 = time.process_time()
        peer = run_scalesim([g], 32, 32, sram_kb=sram_kb)[0]
        c_peer = time.process_time() - c0
        ours = run_ours(g, design)        # warm-up: CACTI cache, imports
        wl = Workload([Layer("gemm", "crosscheck", g.k, g.n, str(g.pattern), scalesim_mask(g), XBITS)])
        mp = map_program(build_program(wl, "inference"), design)
        bits = np.full(COLUMNAR_POINTS, XBITS)
        batch = np.full(COLUMNAR_POINTS, g.m)
        ev = evaluate(mp, bits, batch)
        best = float("inf")
        for _ in range(5):
            c0 = time.process_time()
            ev = evaluate(mp, bits, batch)
            best = min(best, (time.process_time() - c0) / COLUMNAR_POINTS)
        c_sim, _w = _best_time(lambda n: [lambda: hwmodel.simulate(wl, design, batch=g.m, bits=XBITS)] * n, repeat)
        # Compute cycles of every columnar point (stall-free: cycles minus stalls) equal SCALE-Sim's + 1.
        compute = ev.gemm["cycles"][:, 0] - ev.gemm["stall_cycles_dram"][:, 0] - ev.gemm["stall_cycles_metadata"][:, 0]
        equal = bool(np.all(compute == peer.compute_cycles + 1)) and ours.compute_cycles == peer.compute_cycles + 1
        all_equal &= equal
        worst = min(worst, c_peer / best)
        line = f"{text:<18}{c_peer:>12.3f}{best * 1e6:>13.3f}{c_sim * 1e6:>13.1f}"
        if before:
            line += f"{before[text] * 1e6:>11.1f}{before[text] / best:>10,.0f}"
        rows.append(line + f"{c_peer / best:>13,.0f}{peer.compute_cycles + 1:>7}{ours.compute_cycles:>7.0f}  "
                    f"{'equal' if equal else 'DIFFERENT'}")
    print("\n".join(rows))
    print(f"=> columnar is at least {worst:,.0f}x faster than SCALE-Sim on every layer (target >= 100,000x): "
          f"{'met' if worst >= 100_000 else 'NOT met'}; compute cycles {'equal on every layer' if all_equal else 'DIFFER on some layer'}")


# --- part 2: throughput -------------------------------------------------------------------------

def build_grid(evaluations: int) -> tuple[list, int]:
    """Jobs (workload, design name, bits, batch) adding up to at least ``evaluations`` layer evaluations.

    Each workload holds the 18 layers of TD3's six networks for one environment, pattern and
    seed (random weights, real N:M masks), all in one network named after the environment, so
    that inference runs all 18 (it runs a file's ``actor``, or its one network).
    """
    designs = {name: load_design(name) for name in ("edge_ws", "stc_hbm", "flex_nm", "scalesim_default_ws")}
    combos = []
    for name, d in designs.items():
        for b in BITS:
            try:
                d.datatype_for(b)
            except hwmodel.NmlabError:
                continue
            combos.append((name, b))
    jobs, count, seed = [], 0, 0
    while count < evaluations:
        for env, (obs, act) in ENVS.items():
            for pattern in PATTERNS:
                wl = synthetic_td3_workload(obs, act, pattern, seed=seed)
                for layer in wl.layers:
                    layer.network = env
                for name, b in combos:
                    for batch in BATCHES:
                        jobs.append((wl, name, b, batch))
                        count += len(wl.layers)
        seed += 1
    return jobs, count


_DESIGNS: dict = {}   # loaded once in the parent; forked workers inherit them


def _run_jobs(jobs: list) -> int:
    """Evaluate jobs (workload, design name, bits, batch) with the columnar model: each
    (workload, design) is mapped once, then one evaluate_many() call per design runs every
    workload's (bits, batch) points. Returns layer evaluations done."""
    from hwmodel.model import evaluate_many, map_program
    from hwmodel.program import build_program

    groups: dict[tuple, list] = {}
    for wl, name, bits, batch in jobs:
        groups.setdefault((id(wl), name), [wl, [], []])
        g = groups[(id(wl), name)]
        g[1].append(bits)
        g[2].append(batch)
    programs: dict[int, object] = {}
    by_design: dict[str, list] = {}
    for (key, name), (wl, bits, batch) in groups.items():
        d = _DESIGNS.get(name)
        if d is None:
            d = _DESIGNS[name] = load_design(name)
        prog = programs.get(key)
        if prog is None:
            prog = programs[key] = build_program(wl, "inference")
        by_design.setdefault(name, []).append((map_program(prog, d), bits, batch))
    n = 0
    for runs in by_design.values():
        n += sum(ev.gemm["cycles"].size for ev in evaluate_many(runs))
    return n


_JOBS: list = []


def _worker(bounds: tuple[int, int]) -> int:
    return _run_jobs(_JOBS[bounds[0]:bounds[1]])


_BASELINE_THROUGHPUT = """
import json, time
import hwmodel
from hwmodel.design import load_design
from hwmodel.workload import synthetic_td3_workload
designs = {name: load_design(name) for name in DESIGNS}
jobs = []
for env, (obs, act) in ENVS.items():
    for pattern in PATTERNS:
        wl = synthetic_td3_workload(obs, act, pattern, seed=0)
        for layer in wl.layers:
            layer.network = env + "." + layer.network
        for name, b in COMBOS:
            jobs.append((wl, name, b, 32))
n = 0
c0 = time.process_time()
for wl, name, b, batch in jobs:
    n += len(hwmodel.simulate(wl, designs[name], batch=batch, bits=b, with_dense=False).layers)
print(json.dumps({"evaluations": n, "cpu_s": time.process_time() - c0}))
"""


def bench_throughput(evaluations: int, workers: int, profile: bool, baseline: str | None) -> None:
    global _JOBS
    t0 = time.perf_counter()
    jobs, count = build_grid(evaluations)
    t_build = time.perf_counter() - t0
    combos = sorted({(j[1], j[2]) for j in jobs})
    before = None
    if baseline:
        from baseline import run_in

        code = (f"ENVS = {ENVS!r}\nPATTERNS = {PATTERNS!r}\nCOMBOS = {combos!r}\n"
                f"DESIGNS = {sorted({c[0] for c in combos})!r}\n" + _BASELINE_THROUGHPUT)
        before = run_in(baseline, code)
    print(f"\n[2] {count:,} layer evaluations = {len(jobs):,} (workload, design, bits, batch) points of 18 layers: "
          f"{len(ENVS)} environments x {len(PATTERNS)} patterns x {len(combos)} design/bitwidth pairs "
          f"x {len(BATCHES)} batch sizes x seeds (grid and masks built in {t_build:.1f} s, not timed)")
    print(f"    design/bitwidth pairs: {', '.join(f'{n}@{b}' for n, b in combos)}")
    # Warm-up on masks outside the grid: imports, CACTI and energy tables. The grid's own masks
    # are analysed inside the timed runs (the parallel run goes first and in forked workers, and
    # the single-process run gets the grid built anew after it: it inherits no memoised mask
    # analyses, and does not pay the copy-on-write faults of writing to pages the fork shared).
    warm_wls = [synthetic_td3_workload(11, 3, p, seed=10**6) for p in PATTERNS[:2]]
    for wl in warm_wls:
        for layer in wl.layers:
            layer.network = "warmup"
    warm = [(wl, name, b, 1) for wl in warm_wls for name, b in combos]
    _run_jobs(warm)
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        _run_jobs(jobs[: max(1, len(jobs) // 10)])
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    t2 = float("inf")
    lines = []
    if workers > 1:
        _JOBS = jobs
        step = -(-len(jobs) // workers)
        bounds = [(i, min(i + step, len(jobs))) for i in range(0, len(jobs), step)]
        ctx = mp.get_context("fork")
        gc.collect()
        before_t = os.times()
        t0 = time.perf_counter()
        pool = ctx.Pool(workers)
        n2 = sum(pool.map(_worker, bounds))
        pool.close()
        pool.join()
        t2 = time.perf_counter() - t0
        after = os.times()
        c2 = (after.children_user + after.children_system) - (before_t.children_user + before_t.children_system)
        lines.append(f"    {workers} processes: {n2:,} evaluations in {t2:.2f} s wall, {c2:.2f} s CPU in the workers "
                     f"= {n2 / t2:,.0f}/s (wall includes forking the workers)")
    if workers > 1:
        _JOBS = []
        jobs, _count = build_grid(evaluations)  # same seeds: the same shapes and masks, new arrays
    gc.collect()  # the grid's own garbage is collected before the timed run, not inside it
    t0, c0 = time.perf_counter(), time.process_time()
    n1 = _run_jobs(jobs)
    t1, c1 = time.perf_counter() - t0, time.process_time() - c0
    if before:
        per_before = before["cpu_s"] / before["evaluations"]
        print(f"    ratio: {per_before / (c1 / n1):,.0f}x fewer CPU seconds per layer evaluation than the engine in "
              f"--baseline ({per_before * 1e6:.1f} us CPU each over {before['evaluations']:,} simulate() layer "
              f"evaluations at batch 32, measured in this run)")
    print("\n".join(lines))
    print(f"    1 process : {n1:,} evaluations in {t1:.2f} s wall, {c1:.2f} s CPU = {n1 / t1:,.0f}/s "
          f"({t1 / n1 * 1e6:.2f} us wall, {c1 / n1 * 1e6:.2f} us CPU each)")
    print(f"    target: < 2 us per layer evaluation: {'met' if c1 / n1 < 2e-6 else 'NOT met'} "
          f"({c1 / n1 * 1e6:.2f} us CPU in one process; wall time on a shared machine includes other processes' time)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--evaluations", type=int, default=100_000, help="layer evaluations in part 2")
    ap.add_argument("--workers", type=int, default=2, help="processes in part 2 (default 2)")
    ap.add_argument("--repeat", type=int, default=200, help="our-model repetitions per layer in part 1")
    ap.add_argument("--skip-scalesim", action="store_true", help="only part 2")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the columnar evaluation")
    ap.add_argument("--baseline", metavar="DIR", help="checkout of the earlier engine to compare with in the same run")
    args = ap.parse_args()
    print("machine:", machine())
    if not args.skip_scalesim:
        bench_scalesim(args.repeat, args.baseline)
    bench_throughput(args.evaluations, args.workers, args.profile, args.baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
