"""A Ray cluster of several nodes on this one machine, for tests of what a cluster user meets.

Each worker node runs in a mount namespace of its own whose temp folder (``/tmp``) is a private
folder (Linux ``unshare``), as another machine's is: what a worker leaves there stays out of the
driver's sight, and the driver's temporary files out of the node's, as on a real second machine.
Every process is ours to stop (each node its own process group, stopped at the end and when the
process that started it dies): never ``ray stop``, which would stop every Ray instance of the machine.
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
#: What turns Ray's token authentication on, or gives the token.
AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
#: The temp folder each worker node gets a private one of (where Python and Ray put temporary files).
TMP = Path(tempfile.gettempdir()).resolve()


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


def _end_with_this_process() -> None:
    """In a `ray start` about to run: SIGTERM when the process that started it dies (Linux), so a
    test run killed outright (SIGTERM, SIGKILL: no ``finally``) leaves no cluster running."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG


def can_isolate_tmp() -> bool:
    """Whether a process can be given a private /tmp here (an unprivileged user + mount namespace)."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    scratch = tempfile.mkdtemp(prefix="nmlab-ns-")
    try:
        probe = subprocess.run(["unshare", "-Urm", "sh", "-c", f"mount --bind {scratch} {TMP} && test -w {TMP}"],
                               capture_output=True, timeout=10)
        return probe.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _code_under_tmp() -> list[Path]:
    """The checkout and the Python environment a node runs, those of them under the temp folder (a
    clone in /tmp), outermost only: a node's own /tmp hides them unless they are mounted into it."""
    paths = sorted({Path(__file__).resolve().parents[1], Path(sys.prefix).resolve()} - {TMP})
    under = [p for p in paths if p.is_relative_to(TMP)]
    return [p for p in under if not any(q != p and p.is_relative_to(q) for q in under)]


#: Run in a child process by :func:`_wait_for_nodes`: exits 0 once argv[2] nodes are alive at argv[1].
_COUNT_NODES = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR", configure_logging=False)
end = time.monotonic() + float(sys.argv[3])
while sum(1 for node in ray.nodes() if node["Alive"]) < int(sys.argv[2]):
    if time.monotonic() > end:
        sys.exit(1)
    time.sleep(0.2)
"""


def _wait_for_nodes(address: str, procs: list[subprocess.Popen], logs: list[Path], env: dict[str, str],
                    deadline_s: float = 60.0) -> None:
    """Until all ``procs``' nodes are alive; RuntimeError with their logs' tails where one ends first
    or they are not up within ``deadline_s`` (ray.init alone would retry a dead head for minutes).
    The nodes are counted by a child process with the nodes' ``env``: a ``ray.init`` here would fix
    this process's Ray settings (its authentication mode among them) for the local instances later
    tests start in it."""
    def failed(why: str) -> RuntimeError:
        tails = "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')[-2000:]}" for log in logs if log.exists())
        return RuntimeError(f"the simulated Ray cluster did not come up: {why}\n{tails}")

    end = time.monotonic() + deadline_s
    host, port = address.rsplit(":", 1)
    while True:
        if any(proc.poll() is not None for proc in procs):
            raise failed("a `ray start` ended")
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
            break
        if time.monotonic() > end:
            raise failed(f"nothing answers at {address} after {deadline_s} s")
        time.sleep(0.2)
    left = max(1.0, end - time.monotonic())
    try:
        counted = subprocess.run([sys.executable, "-c", _COUNT_NODES, address, str(len(procs)), str(left)], env=env,
                                 capture_output=True, text=True, timeout=left + 30)
    except subprocess.TimeoutExpired:
        raise failed(f"{len(procs)} nodes are not up after {deadline_s} s") from None
    if counted.returncode != 0:
        if any(proc.poll() is not None for proc in procs):
            raise failed("a `ray start` ended")
        raise failed(f"{len(procs)} nodes are not up after {deadline_s} s\n{counted.stderr[-2000:]}")


@contextlib.contextmanager
def cluster(worker_cpus: tuple[int, ...] = (1,), head_cpus: int = 0) -> Iterator[tuple[str, list[Path], Path]]:
    """A head node with ``head_cpus`` CPUs and one node per entry of ``worker_cpus``, each of those with
    its own /tmp. Yields the head's address, each worker node's /tmp as this process sees it, and a
    folder every node sees at the same path (shared storage)."""
    root = Path(tempfile.mkdtemp(prefix="nmlab-rc-", dir=TMP))  # short: Ray's socket paths are at most 107 bytes
    shared = root / "shared"
    shared.mkdir()
    (root / "home").mkdir()
    # A cluster without token authentication, and this process set to join it so: `ray start` turns it
    # on where ~/.ray/auth_token exists (a home of its own) or RAY_AUTH_MODE=token, which a local
    # instance started in this process earlier may have left set.
    saved = {k: os.environ.pop(k) for k in AUTH_VARS if k in os.environ}
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", HOME=str(root / "home"))
    env.pop("RAY_ADDRESS", None)
    procs: list[subprocess.Popen] = []
    log_fds: list[int] = []
    port = _free_port()
    address = f"127.0.0.1:{port}"

    def start(argv: list[str], log: str) -> None:
        log_fds.append(os.open(root / log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        procs.append(subprocess.Popen(argv, env=env, stdout=log_fds[-1], stderr=subprocess.STDOUT, start_new_session=True,
                                      preexec_fn=_end_with_this_process))

    try:
        start(
            [RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
             f"--num-cpus={head_cpus}", f"--temp-dir={root / 'head'}", "--include-dashboard=false",
             f"--ray-client-server-port={_free_port()}", "--disable-usage-stats", *_ports()], "head.log")
        tmps = []
        for i, cpus in enumerate(worker_cpus):
            tmp = root / f"node{i}"
            tmp.mkdir()
            tmps.append(tmp)
            # The shared folder is mounted into the node's own /tmp at its path here, then that /tmp over /tmp.
            inner = tmp / shared.relative_to(TMP)
            inner.mkdir(parents=True)
            # So is what the node runs, where it lies under /tmp (a checkout or its .venv there): its code and Ray.
            mounts = [f"mount --bind {shared} {inner}"]
            for path in _code_under_tmp():
                (tmp / path.relative_to(TMP)).mkdir(parents=True, exist_ok=True)
                mounts.append(f"mount --bind {path} {tmp / path.relative_to(TMP)}")
            command = (f"{' && '.join(mounts)} && mount --rbind {tmp} {TMP} && exec {RAY} start --block --address={address} "
                     f"--node-ip-address=127.0.0.1 --num-cpus={cpus} --disable-usage-stats {' '.join(_ports())}")
            start(["unshare", "-Urm", "sh", "-c", command], f"node{i}.log")
        _wait_for_nodes(address, procs, [root / "head.log", *(root / f"node{i}.log" for i in range(len(worker_cpus)))], env)
        yield address, tmps, shared
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
        for fd in log_fds:
            os.close(fd)
        shutil.rmtree(root, ignore_errors=True)
        os.environ.update(saved)
