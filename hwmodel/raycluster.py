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
import socket
import warnings
from typing import Any, Optional

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
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise a one-line NmlabError unless something accepts a TCP connection at the head's address."""
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
        raise NmlabError(f"--ray: cannot join the Ray cluster at {address}: nothing answers at "
                         f"{host}:{port} ({why}); give the address `ray start --head` printed, or `auto` on a "
                         f"node of the cluster") from None


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
    ray = import_ray()
    kw: dict[str, Any] = dict(log_to_driver=False, logging_level="ERROR", configure_logging=False)
    if is_local(address):
        # address="local": a new instance even where RAY_ADDRESS or Ray's last-cluster file
        # names a running one (joining it would refuse num_cpus with a traceback).
        ray.init(address="local", num_cpus=workers, include_dashboard=False, **kw)
        return ray
    check_reachable(address)
    try:
        with warnings.catch_warnings():  # Ray Client warns of its timeout on stderr before raising it
            warnings.simplefilter("ignore")
            ray.init(address=address, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = ""
        # Only a refused connection can be the token (not a malformed address).
        if (isinstance(exc, ConnectionError) and address != "auto"
                and os.environ.get("RAY_AUTH_MODE", "").lower() != "token"):
            hint = ("; a cluster with token authentication (`ray start` turns it on where ~/.ray/auth_token "
                    "exists) also needs RAY_AUTH_MODE=token here, with the cluster's token in that file or RAY_AUTH_TOKEN")
        raise NmlabError(f"--ray: cannot join the Ray cluster at {address} ({first}){hint}") from None
    return ray
