"""One Ray node lost mid-sweep (docs/sweeps.md "Running: local pool, Ray, resume"), reproduced on one machine.

    python benchmarks/ray_node_loss.py        # about 40 s on 2 cores

A two-node cluster (``ray.cluster_utils.Cluster``, one CPU each) runs a 6,240-point sweep of the bundled
workloads and designs (``nmlab sweep --ray ADDRESS``); the second node's raylet is SIGKILLed as soon as the
sweep's progress bar appears. Prints the sweep's exit status, the ``(raylet)`` lines on its stderr and
stdout, and whether its ``points.parquet`` equals, byte for byte, that of the same grid run with
``--workers 1``. Everything is written in a temporary folder, removed at the end.
"""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """version: 1
workloads: bundled
designs: bundled
gpus: none
patterns: [dense, "2:4", "1:4", "1:8", "2:8", "4:8", "1:16", "2:16", "unstructured:0.9", "unstructured:0.5"]
bits: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
scenarios:
  - {scenario: inference, batch: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16, 24, 32, 48, 64, 96, 128, 256]}
  - {scenario: train_step, batch: [64, 128, 256, 512]}
chunk_size: 200
"""


def main() -> int:
    from ray.cluster_utils import Cluster

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    sweep = [sys.executable, "-m", "hwmodel.cli", "sweep"]
    with tempfile.TemporaryDirectory(prefix="nmlab-node-loss-") as tmp:
        tmp = Path(tmp)
        cfg = tmp / "c.yaml"
        cfg.write_text(CONFIG)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        try:
            node = cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            out, err = tmp / "ray.out", tmp / "ray.err"
            with open(out, "w") as o, open(err, "w") as e:
                proc = subprocess.Popen(sweep + [str(cfg), "--out", str(tmp / "ray"), "--ray", cluster.address],
                                        env=env, stdout=o, stderr=e)
                while proc.poll() is None and "pt/s" not in err.read_text():
                    time.sleep(0.1)
                killed = proc.poll() is None
                os.kill(node.all_processes["raylet"][0].process.pid, signal.SIGKILL)
                rc = proc.wait(timeout=600)
        finally:
            cluster.shutdown()
        print(f"raylet SIGKILLed mid-sweep: {killed}; sweep exit status: {rc}")
        for name, path in (("stderr", err), ("stdout", out)):
            lines = [line for chunk in path.read_text().split("\r") for line in chunk.splitlines()
                     if line.startswith("(raylet)") or "(raylet)" in line]
            print(f"(raylet) lines on {name}: {len(lines)}")
            for line in lines:
                print("   ", line[line.index("(raylet)"):][:120])
        ref = subprocess.run(sweep + [str(cfg), "--out", str(tmp / "w1"), "--workers", "1"], env=env,
                             capture_output=True)
        same = filecmp.cmp(tmp / "ray" / "points.parquet", tmp / "w1" / "points.parquet", shallow=False)
        print(f"--workers 1 exit status: {ref.returncode}; points.parquet equal byte for byte: {same}")
    return 0 if killed and rc == 0 and same else 1


if __name__ == "__main__":
    sys.exit(main())
