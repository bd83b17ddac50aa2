"""Bounded memo tables for the model's caches.

A grid repeats the same shapes, masks and designs, so the model memoises what they decide
(mapped programs, fold tables, mappings per mask counts). Each table is a :class:`BoundedMemo`:
a dict that empties itself before an insert would take it past its limit, which bounds a
long-lived process's memory at no cost per hit (an LRU would do bookkeeping on every hit of
the hot path).
"""

from __future__ import annotations

from typing import Any, Hashable


class BoundedMemo(dict):
    """A dict of at most ``limit`` entries: :meth:`put` clears it when it is full."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Hashable, value: Any) -> Any:
        """Store ``value`` under ``key`` (emptying the table first if it is full) and return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
