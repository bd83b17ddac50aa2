"""A Ray cluster of several nodes on this one machine, for tests of what a cluster user meets.

Each extra node runs in a mount namespace of its own whose ``/tmp`` is a private folder (Linux
``unshare``), as another machine's temp folder is: what a worker leaves in its ``/tmp`` stays
out of the driver's sight, as it would on a real second machine. Every process is ours to stop
(its own process group, SIGKILLed at the end): never ``ray stop``, which would stop every Ray
instance of the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ports() -> list[str]:
    """Ports of their own for a node's services (defaults such as 10001 or 52365 may be another
    instance's on a shared machine)."""
    names = ["node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port"]
    return [f"--{name}={_free_port()}" for name in names]


def can_isolate_tmp() -> bool:
    """Whether a process can be given a private /tmp here (an unprivileged user + mount namespace)."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    scratch = tempfile.mkdtemp(prefix="nmlab-ns-")
    try:
        probe = subprocess.run(["unshare", "-Urm", "sh", "-c", f"mount --bind {scratch} /tmp && test -w /tmp"],
                               capture_output=True, timeout=10)
        return probe.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _wait_for_nodes(address: str, n: int, deadline_s: float = 30.0) -> None:
    import ray

    ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=False)
    try:
        end = time.monotonic() + deadline_s
        while sum(1 for node in ray.nodes() if node["Alive"]) < n:
            if time.monotonic() > end:
                raise RuntimeError(f"{n} Ray nodes did not come up in {deadline_s} s")
            time.sleep(0.2)
    finally:
        ray.shutdown()


@contextlib.contextmanager
def cluster(worker_cpus: tuple[int, ...] = (1,), head_cpus: int = 0) -> Iterator[tuple[str, list[Path]]]:
    """A head node with ``head_cpus`` CPUs and one node per entry of ``worker_cpus``, each of those with
    its own /tmp. Yields the head's address and each worker node's /tmp as this process sees it."""
    root = Path(tempfile.mkdtemp(prefix="nmlab-rc-"))  # short: Ray's socket paths are at most 107 bytes
    (root / "home").mkdir()
    # A home of its own: `ray start` turns token authentication on where ~/.ray/auth_token exists.
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", HOME=str(root / "home"))
    env.pop("RAY_ADDRESS", None)
    procs: list[subprocess.Popen] = []
    port = _free_port()
    address = f"127.0.0.1:{port}"
    try:
        procs.append(subprocess.Popen(
            [RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
             f"--num-cpus={head_cpus}", f"--temp-dir={root / 'head'}", "--include-dashboard=false",
             f"--ray-client-server-port={_free_port()}", "--disable-usage-stats", *_ports()],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        tmps = []
        for i, cpus in enumerate(worker_cpus):
            tmp = root / f"node{i}"
            tmp.mkdir()
            tmps.append(tmp)
            start = (f"mount --bind {tmp} /tmp && exec {RAY} start --block --address={address} "
                     f"--node-ip-address=127.0.0.1 --num-cpus={cpus} --disable-usage-stats {' '.join(_ports())}")
            procs.append(subprocess.Popen(["unshare", "-Urm", "sh", "-c", start], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
        _wait_for_nodes(address, 1 + len(worker_cpus))
        yield address, tmps
    finally:
        # SIGTERM to `ray start --block` first: it stops its node's processes and reaps them (an
        # orphan SIGKILLed here may never be reaped where PID 1 does not); then SIGKILL what is left.
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
