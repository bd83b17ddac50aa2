"""Run a timing snippet against another checkout of nmlab (the engine a benchmark compares with).

``--baseline DIR`` in the benchmarks names a checkout of the earlier engine, e.g.
``git worktree add /tmp/nmlab-before 6fee389``; the snippet runs there in a subprocess of
the same benchmark invocation (same machine, same minute) and prints one JSON object.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_in(checkout: str | Path, code: str, timeout_s: float = 3600) -> dict[str, Any]:
    """Run ``code`` with ``checkout`` first on sys.path; return the JSON object it prints last."""
    env = {**os.environ, "PYTHONPATH": str(Path(checkout).resolve()), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=str(checkout), timeout=timeout_s)
    if out.returncode != 0:
        raise SystemExit(f"baseline run in {checkout} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
