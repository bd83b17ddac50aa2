"""Bounded memo tables for the model's caches.

A grid repeats the same shapes, masks and designs, so the model memoises what they decide
(mapped programs, fold tables, mappings per mask counts). Each table is a :class:`BoundedMemo`:
a dict that empties itself before an insert would take it past its limit, which bounds a
long-lived process's memory at no cost per hit (an LRU would do bookkeeping on every hit of
the hot path).

Figures computed per integer code (a batch, a packed (bits, batch) pair) are kept per key as
sorted arrays, ``table[key] = (sorted codes, values, ...)``, looked up for many codes at once
(:func:`sorted_hits`) and extended with the ones that were missing (:func:`sorted_insert`).
"""

from __future__ import annotations

from typing import Any, Hashable

import numpy as np


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


def sorted_hits(known: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hit, at): whether each of ``codes`` is in the sorted array ``known``, and its index there
    (meaningless where it is not)."""
    if not len(known):
        return np.zeros(len(codes), dtype=bool), np.zeros(len(codes), dtype=np.intp)
    at = np.minimum(np.searchsorted(known, codes), len(known) - 1)
    return known[at] == codes, at


def sorted_insert(table: dict, key: Hashable, codes: np.ndarray, *values: np.ndarray) -> None:
    """Add ``codes`` (none of them held under ``key`` yet) and their ``values`` (float arrays, one
    entry per code each) to ``table[key] = (sorted int64 codes, values...)``."""
    old = table.get(key) or (np.zeros(0, dtype=np.int64), *(np.zeros(0) for _ in values))
    codes = np.concatenate([old[0], codes])
    order = np.argsort(codes, kind="stable")
    table[key] = (codes[order], *(np.concatenate([o, v])[order] for o, v in zip(old[1:], values)))


def sorted_size(table: dict) -> int:
    """Codes held over every key of a table of :func:`sorted_insert`."""
    return sum(len(v[0]) for v in table.values())
