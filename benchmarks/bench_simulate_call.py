"""Fixed cost of one ``hwmodel.simulate()`` call: CPU per call, by how the inputs are given.

    .venv/bin/python benchmarks/bench_simulate_call.py                   # this engine
    .venv/bin/python benchmarks/bench_simulate_call.py --baseline DIR    # ... beside an earlier one
    .venv/bin/python benchmarks/bench_simulate_call.py --baseline DIR --runs 3   # alternated 3 times

A bundled workload (the 2:4 Hopper agent) on an accelerator (flex_nm) and a GPU (h100_sxm),
batch-1 inference and a batch-256 train step, given as files/names (what the CLI and most
scripts pass) and as loaded objects; and one-layer workloads (two of bench_hwmodel.py's
SCALE-Sim layers, M,K,N[,n:m]) on its 32x32 WS design, batch-M inference. Each engine runs in its own subprocess (its checkout
first on the path), one warm-up call, then the median CPU time per call of 7 rounds of
``--calls`` calls. With ``--runs N`` the engines are measured N times each, alternated (this
engine, the baseline, this engine, ...), and each cell gives the range over the runs, the
ratio of the two engines' best runs, and the median and range of the per-run ratios: on a
shared machine the load moves between runs, the ratio of two engines measured back to back
less so. Measured here; nothing is estimated.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402  (benchmarks/machine.py)

REPO = Path(__file__).resolve().parents[1]
CASES = [(design, scenario, batch) for design in ("flex_nm", "h100_sxm")
         for scenario, batch in (("inference", 1), ("train_step", 256))]

_MEASURE = r"""
import json, statistics, sys, time
from hwmodel import simulate
from hwmodel.io import data_path
from hwmodel.workload import load_workload
calls = int(sys.argv[1])
path = str(data_path("workloads", "hopper_2of4_s0.nmw"))
wl = load_workload(path)
try:
    from hwmodel.gpu.design_point import load_design_point as load
except ImportError:
    from hwmodel.design import load_design as load


def per_call(*a, **kw):
    # One warm-up call, then the median CPU seconds per call of 7 rounds of `calls` calls.
    simulate(*a, **kw)
    rounds = []
    for _ in range(7):
        c = time.process_time()
        for _ in range(calls):
            simulate(*a, **kw)
        rounds.append((time.process_time() - c) / calls)
    return statistics.median(rounds)


out = {}
for design, scenario, batch in json.loads(sys.argv[2]):
    try:
        obj = load(design)
    except Exception:  # an engine without this design: its cells read n/a
        continue
    for how, w, d in (("files", path, design), ("objects", wl, obj)):
        out[f"{design}|{scenario}|{how}"] = per_call(w, d, batch=batch, bits=8, scenario=scenario)
# One-layer workloads (bench_hwmodel.py's SCALE-Sim layers) on its 32x32 WS design, as objects.
from hwmodel.peers.crosscheck import BITS, equivalent_design, scalesim_mask
from hwmodel.peers.scalesim import parse_gemm
from hwmodel.workload import Layer, Workload
design = equivalent_design(32, 32)
for text in json.loads(sys.argv[3]):
    g = parse_gemm(text)
    one = Workload([Layer("gemm", "crosscheck", g.k, g.n, str(g.pattern), scalesim_mask(g), BITS)])
    out[f"32x32 ws|{text}|objects"] = per_call(one, design, batch=g.m, bits=BITS)
print(json.dumps(out))
"""
#: One-layer calls (M,K,N[,n:m], bench_hwmodel.py's notation): the fixed cost of a call.
LAYERS = ["1,256,256,2:4", "256,256,256"]


def measure(checkout: Path, calls: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    res = subprocess.run([sys.executable, "-c", _MEASURE, str(calls), json.dumps(CASES), json.dumps(LAYERS)], env=env, cwd=str(checkout),
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"measuring {checkout} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _range(values: list, scale: float = 1.0, fmt: str = ".2f") -> str:
    lo, hi = min(values) * scale, max(values) * scale
    return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}}-{hi:{fmt}}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, metavar="DIR", help="checkout of the earlier engine to compare with")
    ap.add_argument("--calls", type=int, default=20, help="calls per timed round (default 20)")
    ap.add_argument("--runs", type=int, default=1, help="measure each engine this many times, alternated (default 1)")
    args = ap.parse_args()
    if args.runs < 1:
        raise SystemExit("--runs: must be a positive integer")
    print(f"machine: {describe()}")
    now, before, loads = [], [], []
    for _ in range(args.runs):
        now.append(measure(REPO, args.calls))
        if args.baseline:
            before.append(measure(args.baseline, args.calls))
        loads.append(os.getloadavg()[0])
    runs = f"{args.runs} runs alternated, ranges over the runs" if args.runs > 1 else "one run"
    print(f"simulate() CPU per call, median of 7 x {args.calls} (hopper_2of4_s0 at 8 bits, one-layer workloads at "
          f"the crosscheck's bits); {runs}"
          + ("; before = the engine in --baseline, same run" if before else ""))
    head = f"{'design':<10}{'scenario':<15}{'inputs as':<10}{'ms now':>12}"
    if before:
        head += f"{'ms before':>12}{'best/best':>10}" + ("   per-run ratios: median (range)" if len(before) > 1 else "")
    print(head)
    rows = [(d, sc, how) for d, sc, _b in CASES for how in ("files", "objects")]
    rows += [("32x32 ws", text, "objects") for text in LAYERS]  # scenario: the one layer, inference at batch M
    for design, scenario, how in rows:
        key = f"{design}|{scenario}|{how}"
        t = [r.get(key) for r in now]
        line = f"{design:<10}{scenario:<15}{how:<10}{_range(t, 1e3):>12}"
        if before:
            b = [r.get(key) for r in before]
            if all(b):
                ratios = [x / y for x, y in zip(b, t)]
                line += f"{_range(b, 1e3):>12}{min(b) / min(t):>8.2f}x"
                line += f"{statistics.median(ratios):>8.2f}x ({_range(ratios)}x)" if len(ratios) > 1 else ""
            else:
                line += f"{'n/a':>12}"
        print(line)
    print(f"load average after each run: {', '.join(f'{x:.2f}' for x in loads)}")


if __name__ == "__main__":
    main()
