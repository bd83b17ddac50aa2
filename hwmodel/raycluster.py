"""Start a local Ray instance or join a running cluster, for ``nmlab sweep --ray`` and ``nmlab campaign``.

One place for what Ray does not say in one line: an address where nothing answers (Ray
retries for minutes, logging as it goes), a cluster that wants a token (``ray start``
turns token authentication on where ``~/.ray/auth_token`` exists, and Ray sends the token to
an explicit address only when ``RAY_AUTH_MODE=token``: without it, 20 s of retries and
"Failed to connect"), and a local instance that must stay local even when
``RAY_ADDRESS`` names a cluster (Ray would join it and refuse the CPU count).
"""

from __future__ import annotations

import os
import re
import socket
import sys
import tempfile
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from hwmodel.errors import NmlabError
from hwmodel.limits import short

#: Seconds to wait for a TCP answer from the head's address before giving up on it.
CONNECT_TIMEOUT_S = 10.0


def is_local(address: Optional[str]) -> bool:
    """Whether ``address`` asks for a new local Ray instance (None, "" or ``local``), not a running cluster."""
    return address in (None, "", "local")


#: Where Ray Client goes for ``ray://HOST`` without a port: gRPC's default port, not Ray's 10001.
GRPC_DEFAULT_PORT = 443


def _head_endpoint(address: str) -> Optional[tuple[str, int]]:
    """``(host, port)`` that Ray connects to for ``host:port`` or ``ray://host[:port]``; None for
    what Ray resolves or refuses itself (``auto``, a host without a port)."""
    client = address.startswith("ray://")
    target = address[len("ray://"):] if client else address
    host, sep, port = target.rpartition(":")
    if client and (not sep or target.endswith("]")):  # ray://HOST, ray://[::1]: no port given
        host, port = target, str(GRPC_DEFAULT_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S, name: Optional[str] = None) -> None:
    """Raise a one-line NmlabError unless something accepts a TCP connection at the head's address
    (``name``: ``auto`` where the user gave that and ``address`` is what it stands for)."""
    endpoint = _head_endpoint(address)
    if endpoint is None:
        return
    host, port = endpoint
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except UnicodeError as exc:  # a name IDNA cannot encode: an empty label (a..b), one over 63 characters
        raise NmlabError(f"--ray: cannot join the Ray cluster at {address}: {short(host)} is not a host name "
                         f"({exc})") from None
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        if name == "auto":
            source = ("the address RAY_ADDRESS gives" if os.environ.get("RAY_ADDRESS") else
                      "where the last cluster `ray start` started on this node ran")
            raise NmlabError(f"--ray: cannot join the Ray cluster at auto: nothing answers at {host}:{port} ({why}), "
                             f"{source}; start the cluster again (`ray start --head`) or give a running "
                             f"cluster's address") from None
        raise NmlabError(f"--ray: cannot join the Ray cluster at {address}: nothing answers at "
                         f"{host}:{port} ({why}); give the address `ray start --head` printed, or `auto` on a "
                         f"node of the cluster") from None


#: What a malformed address (not ``auto``, ``HOST:PORT`` or ``ray://HOST[:PORT]``) is told.
ADDRESS_FORMS = "give auto, HOST:PORT as `ray start --head` printed it, or ray://HOST:10001"

#: What Ray's core logs when the cluster refuses the token sent (or that none was sent).
TOKEN_REFUSED = ("InvalidAuthToken", "Authentication token is missing or incorrect")


@contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Hold what is written to file descriptor 2 (Ray's C++ core logs there, not through Python's
    ``sys.stderr``) and yield a list that gets its text (the last 64 KiB) when the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    box: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield box
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(max(0, tmp.seek(0, os.SEEK_END) - 65536))
            box.append(tmp.read().decode("utf-8", "replace"))


def resolve_auto() -> str:
    """The address ``auto`` stands for, as Ray resolves it: ``RAY_ADDRESS`` where set, else the
    cluster ``ray start`` last started on this node (Ray's address file, which outlives the
    cluster), else any running one. A one-line NmlabError where there is none."""
    try:
        from ray._private.services import get_ray_address_from_environment
    except ImportError:  # another Ray version: it resolves (and reports) `auto` itself
        return "auto"
    try:
        with _stderr_captured():  # "Found multiple active Ray instances" (Ray takes the last started)
            found = get_ray_address_from_environment("auto", None)
    except ConnectionError:
        found = None
    if not found:
        raise NmlabError("--ray: cannot join the Ray cluster at auto: no Ray cluster runs on this node "
                         "(`ray start --head` starts one); on another node, give the address it printed")
    return found


def import_ray() -> Any:
    """The ``ray`` module, or a one-line NmlabError where it is not installed."""
    try:
        import ray
    except ImportError:
        raise NmlabError("--ray: the ray package is not installed (pip install ray)") from None
    return ray


def init_ray(address: Optional[str], workers: int) -> Any:
    """``ray`` after ``ray.init``: a new local instance with ``workers`` CPUs when ``address`` is
    None or ``local``, else the cluster at ``address`` (``auto``, ``host:port``, ``ray://host:port``).

    Ray's own logging stays off the command's output (its errors reach the caller as exceptions).
    Every failure to join is a one-line NmlabError, and an unreachable address fails within
    :data:`CONNECT_TIMEOUT_S` instead of Ray's minutes of retries.
    """
    from hwmodel.stop import keeping_sigterm_handler

    ray = import_ray()
    # ray.init installs its own SIGTERM handlers (a Python one that exits 15, and its core's,
    # which prints C++ stack lines): a command that stops on SIGTERM as on Ctrl-C keeps its own.
    with keeping_sigterm_handler():
        ray = _init_ray(ray, address, workers)
    _cluster_messages_on_stderr()
    return ray


#: How Ray's message about a node whose raylet ended begins; its first line ends with the
#: announcement of that raylet's last log lines, which follow (Ray publishes 20).
RAYLET_DIED = "Raylet is terminated"
RAYLET_LOG_TAIL = re.compile(r"\s*Last \d+ lines of the Raylet logs:\s*$")


def _cluster_messages_on_stderr() -> None:
    """Print what the cluster publishes to the driver (Ray's ``(raylet)`` messages: a node lost, a
    task retried) on stderr, one line each, rather than on stdout, which is the command's own output.

    A node whose raylet ends (SIGKILL, the OOM killer, a machine gone) is reported twice, each time
    with that raylet's last 20 log lines, and again by the head once it marks the node dead: 47
    lines of state dump on a sweep's stdout for one node lost, while the sweep itself goes on (Ray
    retries the node's tasks on the others). Here that is the note's first line, once, and the
    head's note with its line breaks joined. Other output (a task's own, Ray's autoscaler) is
    printed as Ray prints it, and so is anything not shaped as this Ray version's raylet messages
    (Ray's printer is called with whatever arguments it was given); a Ray without this printer is
    left as it is."""
    worker = sys.modules.get("ray._private.worker")
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "nmlab_condensed", False):
        return
    said: set[str] = set()

    def printer(data: Any, *args: Any, **kwargs: Any) -> None:
        # Ray's listener thread calls this; an exception here would end that thread and every later
        # message with it, so only a dict with a list of raylet lines is condensed.
        lines = data.get("lines") if isinstance(data, dict) and data.get("pid") == "raylet" else None
        if not isinstance(lines, list):
            original(data, *args, **kwargs)
            return
        for message in lines:
            text = str(message)
            first = text.split("\n", 1)[0]
            if first.startswith(RAYLET_DIED):
                text = f"{RAYLET_LOG_TAIL.sub('', first).strip()} (its log: raylet.out in the node's Ray session folder)"
                if text in said:  # each of the node's watchers publishes it
                    continue
                said.add(text)
            sys.stderr.write(f"(raylet) {' '.join(text.split())}\n")
        sys.stderr.flush()

    printer.nmlab_condensed = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = printer


def _one_line(exc: BaseException) -> str:
    """What a failed join says, on one line: the first line of Ray's message (the rest is retries,
    tracebacks), except for a version mismatch, whose versions are on the lines after it."""
    text = str(exc).strip()
    if text.startswith("Version mismatch"):
        # "The cluster was started with:\n    Ray: 2.9.0\n    Python: 3.10.12\nThis process on ..."
        return " ".join(text.split())
    return (text.splitlines() or [type(exc).__name__])[0]


def _init_ray(ray: Any, address: Optional[str], workers: int) -> Any:
    kw: dict[str, Any] = dict(log_to_driver=False, logging_level="ERROR", configure_logging=False)
    if is_local(address):
        # address="local": a new instance even where RAY_ADDRESS or Ray's last-cluster file
        # names a running one (joining it would refuse num_cpus with a traceback).
        logged: list[str] = []
        try:
            # Ray notes token authentication on stderr at every start where ~/.ray/auth_token exists.
            with _stderr_captured() as logged:
                ray.init(address="local", num_cpus=workers, include_dashboard=False, **kw)
        except BaseException:
            sys.stderr.write("".join(logged))
            raise
        return ray
    if address == "auto":
        # Ray reads `auto` from its address file, which outlives the cluster: one that is down was
        # minutes of retries and C++ log lines on stderr (never an error), not one line.
        check_reachable(resolve_auto(), name="auto")
    elif _head_endpoint(address) is None:
        # Ray logged a traceback for some (`:`), dialled nowhere for 30 s for others (`ray://`).
        raise NmlabError(f"--ray: cannot join the Ray cluster at {address} (not an address: {ADDRESS_FORMS})")
    else:
        check_reachable(address)
    logged: list[str] = []
    try:
        # Ray's core logs every retry of a refused join on stderr (20 lines over 20 s for a wrong
        # token), and a note on token authentication at every join: the outcome is one line here.
        with warnings.catch_warnings(), _stderr_captured() as logged:  # Ray Client warns of its timeout
            warnings.simplefilter("ignore")
            ray.init(address=address, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = _one_line(exc)
        token_mode = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
        hint = ""
        if any(t in "".join(logged) for t in TOKEN_REFUSED):
            hint = ("; the cluster refused the token: give the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
                    if token_mode or address == "auto" else
                    "; the cluster has token authentication: set RAY_AUTH_MODE=token here, with the cluster's token "
                    "in ~/.ray/auth_token or RAY_AUTH_TOKEN")
        elif first.startswith("Version mismatch"):
            hint = "; run nmlab where Ray and Python are the cluster's versions"
        # Only a refused connection can be the token (not a malformed address).
        elif isinstance(exc, ConnectionError) and address != "auto" and not token_mode:
            hint = ("; a cluster with token authentication (`ray start` turns it on where ~/.ray/auth_token "
                    "exists) also needs RAY_AUTH_MODE=token here, with the cluster's token in that file or RAY_AUTH_TOKEN")
        raise NmlabError(f"--ray: cannot join the Ray cluster at {address} ({first}){hint}") from None
    except BaseException:
        # Anything else (Ctrl-C, a Ray bug) goes on as before, with what Ray logged.
        sys.stderr.write("".join(logged))
        raise
    return ray


def on_every_node(ray: Any, fn: Any, *args: Any, timeout_s: float) -> list[tuple[str, Any]]:
    """``fn(*args)`` as a Ray task on each alive node of the cluster that has CPUs (the nodes
    that run nmlab's tasks), pinned there (``NodeAffinitySchedulingStrategy``, soft=False) and
    needing no CPU of its own, so it runs beside busy workers. Returns (the node's address, the
    result) for the nodes that answered within ``timeout_s`` (together): a node lost meanwhile,
    or one too slow to start a worker, is left out rather than waited for."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) > 0]
    if not nodes:
        return []
    task = ray.remote(fn)
    refs = {}
    for node in nodes:
        strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ref = task.options(num_cpus=0, max_retries=0, scheduling_strategy=strategy).remote(*args)
        refs[ref] = node.get("NodeManagerAddress", "?")
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    answers = []
    for ref in ready:
        try:
            answers.append((refs[ref], ray.get(ref)))
        except ray.exceptions.RayError:  # its node went away after all
            pass
    return answers


def require_cpus(ray: Any, address: Optional[str]) -> None:
    """Refuse a cluster without a CPU (one NmlabError line): every nmlab task needs one, and Ray
    holds tasks it cannot place without a word, so the command would wait forever at 0%. A cluster
    whose CPUs are all busy is fine: its tasks wait their turn."""
    if float(ray.cluster_resources().get("CPU", 0)) >= 1:
        return
    alive = sum(1 for node in ray.nodes() if node.get("Alive"))
    raise NmlabError(f"--ray: the Ray cluster at {address} has no CPU (its {alive} node(s) alive have none): Ray would "
                     f"hold every task until a node with CPUs joins; start one (`ray start --address=HEAD:PORT`), "
                     f"or give an autoscaling cluster one at its minimum, then run the same command")
