"""Every hostile input of issue 16 through the CLI: wall seconds and peak RSS against 10 s / 1 GB.

Run: ``python benchmarks/bench_hostile_inputs.py`` (from the repository root). Each case runs
``python -m hwmodel ...`` in a fresh process (interpreter start and imports included, as a
user sees it); peak RSS is the child's ``ru_maxrss``. Exit status 1 when a case misses the
target or does not end in one error line with status 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine import describe  # noqa: E402
from tests.test_hostile_inputs import (  # noqa: E402
    alias_bomb, dense_layer, lying_header_zip, manifest, manifest_bomb, mask_bomb, npy_bytes, npy_header,
    npy_shape_lie_zip, workload_zip,
)

TARGET_S, TARGET_RSS_BYTES = 10.0, 1 << 30


def run(args: list[str]) -> tuple[int, str, float, int]:
    """(exit status, last stderr line, seconds, peak RSS bytes) of ``python -m hwmodel ARGS``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "hwmodel", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = err.strip().splitlines()
    return proc.returncode, (lines[-1] if lines else "") if len(lines) == 1 else f"{len(lines)} lines", \
        seconds, usage.ru_maxrss * 1024


def cases(d: Path) -> list[tuple[str, list[str]]]:
    """(name, nmlab arguments) of every hostile input, files built in ``d``."""
    files = {
        "mask_bomb.nmw": mask_bomb(), "manifest_bomb.nmw": manifest_bomb(), "lying.nmw": lying_header_zip(),
        "npy_shape.nmw": npy_shape_lie_zip(),
        "huge_layer.nmw": workload_zip(manifest([dense_layer(k=10**9, n=10**9)])),
        "version_true.nmw": workload_zip(manifest([dense_layer()], version=True)),
        "version_float.nmw": workload_zip(manifest([dense_layer()], version=1.0)),
        "nan_weight.nmw": workload_zip(manifest([{**dense_layer(), "weight": "w.npy"}]),
                                       {"w.npy": npy_bytes(np.full((4, 8), np.nan, np.float32))}),
        # negative dimensions whose product is the layer's 32 weights
        "negative_npy_shape.nmw": workload_zip(manifest([{**dense_layer(), "weight": "w.npy"}]),
                                               {"w.npy": npy_header((-4, -8), "<f4") + bytes(128)}),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    base = yaml.safe_load((REPO / "hwmodel/data/designs/edge_ws.yaml").read_text())
    (d / "bomb.yaml").write_text(yaml.safe_dump({**base, "technology_nm": 1}).replace("technology_nm: 1", "technology_nm: " + alias_bomb()))
    (d / "pes.yaml").write_text(yaml.safe_dump({**base, "compute": {**base["compute"], "rows": 10**9, "cols": 10**9}}))
    tiny = {**base["compute"], "datatypes": {**base["compute"]["datatypes"], "int8": 1e-300}}
    (d / "tiny_rate.yaml").write_text(yaml.safe_dump({**base, "compute": tiny}))
    big = {**base, "storage": [dict(s) for s in base["storage"]]}
    big["storage"][1].update(capacity_bytes=1 << 31, banks=1)
    (d / "sram_2gib.yaml").write_text(yaml.safe_dump(big))
    (d / "sweep_bomb.yaml").write_text("bits: " + alias_bomb() + "\n")
    (d / "garbage.csv").write_bytes(os.urandom(3000))
    (d / "sweep_garbage.yaml").write_text(f"patterns: [dense]\nbits: [8]\ndesigns: [edge_ws]\nquality: {d / 'garbage.csv'}\n")
    (d / "other.csv").write_text("a,b\n1,2\n")
    out = []

    def label(bad: str) -> str:
        return bad.replace(str(d), "TMP")

    for name in files:
        out.append((f"workload {name}", ["workload", str(d / name)]))
    out.append(("check huge_layer.nmw", ["check", "edge_ws", "--workload", str(d / "huge_layer.nmw")]))
    out.append(("check nan_weight.nmw", ["check", "edge_ws", "--workload", str(d / "nan_weight.nmw")]))
    out.append(("simulate design alias bomb", ["simulate", "--design", str(d / "bomb.yaml")]))
    out.append(("simulate 10^9 x 10^9 PEs", ["simulate", "--design", str(d / "pes.yaml")]))
    out.append(("simulate --batch 10^15", ["simulate", "--design", "edge_ws", "--batch", "1000000000000000"]))
    out.append(("simulate MAC rate 1e-300", ["simulate", "--design", str(d / "tiny_rate.yaml")]))
    out.append(("simulate 2 GiB SRAM (past CACTI)", ["simulate", "--design", str(d / "sram_2gib.yaml")]))
    out.append(("crosscheck --array 8192,8192", ["crosscheck", "scalesim", "--gemm", "1,8,8", "--array", "8192,8192"]))
    out.append(("sweep alias bomb", ["sweep", str(d / "sweep_bomb.yaml"), "--out", str(d / "s1")]))
    out.append(("sweep garbage quality", ["sweep", str(d / "sweep_garbage.yaml"), "--out", str(d / "s2")]))
    for bad in ("/dev/null/x", "/proc/x", str(d / "other.csv")):
        out.append((f"sweep --out {label(bad)}", ["sweep", "--out", bad]))
        out.append((f"train --out {label(bad)}", ["train", "--out", bad]))
        out.append((f"export-timeloop --out {label(bad)}",
                    ["export-timeloop", "--design", "edge_ws", "--layer", "actor.fc1", "--out", bad]))
    for bad in ("/dev/null/x", "/proc/x", str(d)):
        out.append((f"export --out {label(bad)}", ["export", str(d / "run"), "--out", bad]))
        out.append((f"evaluate --csv {label(bad)}", ["evaluate", str(d / "run"), "--bits", "8", "--csv", bad]))
        out.append((f"gpu validate --plots {label(bad)}", ["gpu", "validate", "--plots", bad if bad != str(d) else str(d / "other.csv")]))
    out.append(("evaluate --csv other header", ["evaluate", str(d / "run"), "--bits", "8", "--csv", str(d / "other.csv")]))
    out.append(("train --learning-rate nan", ["train", "--learning-rate", "nan", "--out", str(d / "nanrun")]))
    return out


def main() -> int:
    print(describe())
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        print(f"{'case':<40}{'exit':>5}{'seconds':>9}{'peak RSS MB':>13}  error line")
        worst_s = worst_rss = 0.0
        for name, args in cases(d):
            rc, line, seconds, rss = run(args)
            ok = rc == 2 and "error:" in line and seconds < TARGET_S and rss < TARGET_RSS_BYTES
            failed += not ok
            worst_s, worst_rss = max(worst_s, seconds), max(worst_rss, rss)
            print(f"{name:<40}{rc:>5}{seconds:>9.2f}{rss / 1e6:>13.0f}  {'' if ok else 'MISSED: '}{line[:110]}")
        leftovers = [p.name for p in d.iterdir() if p.name in ("s1", "s2", "nanrun")]
        print(f"worst: {worst_s:.2f} s, {worst_rss / 1e6:.0f} MB; target {TARGET_S:.0f} s, {TARGET_RSS_BYTES / 1e6:.0f} MB; "
              f"output folders left behind: {leftovers or 'none'}")
        failed += bool(leftovers)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
