"""Fixed cost of one ``hwmodel.simulate()`` call: CPU per call, by how the inputs are given.

    .venv/bin/python benchmarks/bench_simulate_call.py                   # this engine
    .venv/bin/python benchmarks/bench_simulate_call.py --baseline DIR    # ... beside an earlier one

A bundled workload (the 2:4 Hopper agent) on an accelerator (flex_nm) and a GPU (h100_sxm),
batch-1 inference and a batch-256 train step, given as files/names (what the CLI and most
scripts pass) and as loaded objects. Each engine runs in its own subprocess (its checkout
first on the path), one warm-up call, then the median CPU time per call of 7 rounds of
``--calls`` calls. Measured here; nothing is estimated.
"""

from __future__ import annotations

import argparse
import json
import os
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
out = {}
for design, scenario, batch in json.loads(sys.argv[2]):
    try:
        obj = load(design)
    except Exception as exc:
        out[f"{design}|{scenario}"] = None
        continue
    for how, w, d in (("files", path, design), ("objects", wl, obj)):
        simulate(w, d, batch=batch, bits=8, scenario=scenario)
        rounds = []
        for _ in range(7):
            c = time.process_time()
            for _ in range(calls):
                simulate(w, d, batch=batch, bits=8, scenario=scenario)
            rounds.append((time.process_time() - c) / calls)
        out[f"{design}|{scenario}|{how}"] = statistics.median(rounds)
print(json.dumps(out))
"""


def measure(checkout: Path, calls: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    res = subprocess.run([sys.executable, "-c", _MEASURE, str(calls), json.dumps(CASES)], env=env, cwd=str(checkout),
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"measuring {checkout} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, metavar="DIR", help="checkout of the earlier engine to compare with")
    ap.add_argument("--calls", type=int, default=20, help="calls per timed round (default 20)")
    args = ap.parse_args()
    print(f"machine: {describe()}")
    now = measure(REPO, args.calls)
    before = measure(args.baseline, args.calls) if args.baseline else None
    print(f"simulate() CPU per call, median of 7 x {args.calls} (hopper_2of4_s0, 8 bits)"
          + ("; before = the engine in --baseline, same run" if before else ""))
    print(f"{'design':<10}{'scenario':<12}{'inputs as':<10}{'ms now':>8}" + (f"{'ms before':>11}{'ratio':>8}" if before else ""))
    for design, scenario, _batch in CASES:
        for how in ("files", "objects"):
            key = f"{design}|{scenario}|{how}"
            t = now.get(key)
            line = f"{design:<10}{scenario:<12}{how:<10}{t * 1e3:>8.2f}"
            if before is not None:
                b = before.get(key)
                line += f"{b * 1e3:>11.2f}{b / t:>7.1f}x" if b else f"{'n/a':>11}"
            print(line)
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
