"""SIGTERM as Ctrl-C for the long-running commands (``nmlab train``, ``nmlab campaign``, ``nmlab sweep``).

Cluster schedulers (Slurm, Kubernetes, ``timeout``) stop a job with SIGTERM; Python's default
ends the process at once (status 143, no word), and a Ray driver printed Ray's C++ stack lines
and exited 1. Inside :func:`sigterm_as_interrupt` SIGTERM raises KeyboardInterrupt, so the
command stops as it does on Ctrl-C (same one line, same resumable state), and
:func:`interrupt_status` gives the exit status: 143 (128 + SIGTERM) after SIGTERM, 130 after
SIGINT.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

#: Exit status after Ctrl-C (SIGINT) and after SIGTERM (128 + the signal's number, as a shell reports it).
SIGINT_STATUS = 128 + int(signal.SIGINT)
SIGTERM_STATUS = 128 + int(signal.SIGTERM)

_received: Optional[int] = None


def _on_sigterm(signum: int, _frame: Any) -> None:
    global _received
    _received = signum
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread while inside (elsewhere: no change)."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)


@contextmanager
def keeping_sigterm_handler() -> Iterator[None]:
    """Around a library call that installs its own SIGTERM handler (``ray.init``): where
    :func:`sigterm_as_interrupt`'s handler was on before, it is on again after."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if before is _on_sigterm and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_sigterm)


def sigterm_is_interrupt() -> bool:
    """SIGTERM is taken as Ctrl-C here now (inside :func:`sigterm_as_interrupt`, in the main thread)."""
    return signal.getsignal(signal.SIGTERM) is _on_sigterm


def note_sigterm() -> None:
    """Record a SIGTERM taken by a handler of its own (one that sets a flag rather than raising at once,
    as the sweep's local pool does): :func:`interrupt_status` then gives 143."""
    global _received
    _received = signal.SIGTERM


def interrupt_status() -> int:
    """The exit status of a command stopped by KeyboardInterrupt: 143 after SIGTERM, else 130."""
    return SIGTERM_STATUS if _received == signal.SIGTERM else SIGINT_STATUS
