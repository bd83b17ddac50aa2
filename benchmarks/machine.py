"""One line describing the machine a benchmark ran on (benchmarks print it beside their numbers),
the CPU-time timer of the benchmarks of small operations (bench_rl_ops.py, bench_model_ops.py), and
a process's /proc stat fields and children (bench_sweep.py, fault_recovery.py)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path


def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def describe(**versions: str) -> str:
    """CPU model, usable/logical cores, RAM, load average, Python and OS, plus ``versions``."""
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown CPU"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    mem = f", {int(mem_kb.split()[0]) / 1024 / 1024:.0f} GiB RAM" if mem_kb else ""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    extra = "".join(f", {name} {value}" for name, value in versions.items())
    return (f"{cpu}; {usable} usable of {os.cpu_count()} logical CPUs{mem}; load average {load}; "
            f"Python {platform.python_version()}{extra}; {platform.system()} {platform.release()}")


def cpu_timed(fn, calls: int, repeats: int) -> float:
    """Median CPU seconds of this process per call of ``fn`` over ``repeats`` rounds of ``calls`` calls
    (after a warm-up round): CPU time is the work done, less disturbed by other processes on a
    shared machine than wall time (single-threaded work only: threads add their CPU time)."""
    for _ in range(calls):
        fn()
    per = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(calls):
            fn()
        per.append((time.process_time() - t0) / calls)
    return statistics.median(per)


def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...), Linux; None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, from /proc (Linux)."""
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            fields = stat_fields(d.name)
            if fields is not None and int(fields[1]) == pid:
                kids.append(int(d.name))
    return kids
