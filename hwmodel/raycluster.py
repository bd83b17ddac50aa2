"""Start a local Ray instance or join a running cluster, for ``nmlab sweep --ray`` and ``nmlab campaign``.

One place for what Ray does not say in one line: a local instance must stay local even when
``RAY_ADDRESS`` names a cluster (Ray would join it and refuse the CPU count).
"""

from __future__ import annotations

from typing import Any, Optional

from hwmodel.errors import NmlabError


def import_ray() -> Any:
    """The ``ray`` module, or a one-line NmlabError where it is not installed."""
    try:
        import ray
    except ImportError:
        raise NmlabError("--ray: the ray package is not installed (pip install ray)") from None
    return ray


def init_ray(address: Optional[str], workers: int, **kw: Any) -> Any:
    """``ray`` after ``ray.init``: a new local instance with ``workers`` CPUs when ``address`` is
    None or ``local``, else the cluster at ``address`` (``auto``, ``host:port``, ``ray://host:port``).

    Every failure to join is a one-line NmlabError.
    """
    ray = import_ray()
    if address in (None, "", "local"):
        # address="local": a new instance even where RAY_ADDRESS or Ray's last-cluster file
        # names a running one (joining it would refuse num_cpus with a traceback).
        ray.init(address="local", num_cpus=workers, include_dashboard=False, **kw)
        return ray
    try:
        ray.init(address=address, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NmlabError(f"--ray: cannot join the Ray cluster at {address} ({first})") from None
    return ray
