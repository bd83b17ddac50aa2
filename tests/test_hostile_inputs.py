"""Hostile and broken inputs (issue 16): every one ends in one NmlabError line, fast, with nothing written.

Each hostile file is built here, small on disk: a zip whose member inflates to 800 MB is
0.8 MB, an alias bomb is a few hundred bytes. The CLI cases run ``python -m hwmodel`` in a
subprocess under an address-space limit, so a loader that inflates or expands instead of
refusing fails the test with a MemoryError rather than taking the machine down.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from hwmodel.errors import NmlabError

REPO = Path(__file__).resolve().parents[1]
#: What every bad input must stay under (issue 16): seconds and bytes of address space.
LIMIT_S = 10.0
LIMIT_AS_BYTES = 2 << 30  # address space, not resident memory: numpy and torch map more than they touch

# ----------------------------------------------------------------------------- builders


def raw_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip archive from (name, stored data, crc32, declared uncompressed size, method) members.

    Written by hand so the declared sizes can be anything: zipfile would compute them itself.
    ``method`` is 0 (stored) or 8 (raw deflate).
    """
    body, central = io.BytesIO(), io.BytesIO()
    for name, data, crc, usize, method in members:
        offset = body.tell()
        fname = name.encode()
        body.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), usize, len(fname), 0))
        body.write(fname + data)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), usize,
                                  len(fname), 0, 0, 0, 0, 0, offset))
        central.write(fname)
    cd = central.getvalue()
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(cd), body.tell(), 0)
    return body.getvalue() + cd + eocd


def deflated(data: bytes) -> tuple[bytes, int, int, int]:
    """(raw deflate stream, crc32, size, method 8) of ``data``."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(), zlib.crc32(data), len(data), 8


def bomb_stream(head: bytes, fill: bytes, total: int) -> tuple[bytes, int, int, int]:
    """A deflate stream of ``head`` then ``fill`` bytes up to ``total`` bytes, built in 1 MiB segments.

    After a full flush deflate starts afresh, so one compressed MiB of ``fill`` repeats as is:
    the stream is ~1 KB per inflated MiB and costs nothing to build but the CRC.
    """
    mib = 1 << 20
    assert total % mib == 0 and len(head) < mib
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first_plain = head + fill * (mib - len(head))
    first = c.compress(first_plain) + c.flush(zlib.Z_FULL_FLUSH)
    seg_plain = fill * mib
    seg = c.compress(seg_plain) + c.flush(zlib.Z_FULL_FLUSH)
    n = total // mib - 1
    crc = zlib.crc32(first_plain)
    for _ in range(n):
        crc = zlib.crc32(seg_plain, crc)
    return first + seg * n + c.flush(), crc, total, 8


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


def manifest(layers: list[dict], **top) -> bytes:
    return json.dumps({"format": "nmlab-workload", "version": 1, "meta": {}, "layers": layers, **top}).encode()


def dense_layer(name: str = "actor.fc1", k: int = 8, n: int = 4, **extra) -> dict:
    return {"name": name, "network": "actor", "in_features": k, "out_features": n, "pattern": "dense", **extra}


def workload_zip(manifest_bytes: bytes, arrays: dict[str, bytes] | None = None) -> bytes:
    members = [("manifest.json", *deflated(manifest_bytes))]
    members += [(name, *deflated(data)) for name, data in (arrays or {}).items()]
    return raw_zip(members)


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    """A numpy .npy header (magic included) for an array of ``shape``, no data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def mask_bomb(total: int = 800 << 20) -> bytes:
    """0.8 MB: an 8x4 2:4 layer whose mask member inflates to ``total`` bytes (a valid npy header first)."""
    head = npy_header((total - len(npy_header((total,))),))
    return raw_zip([
        ("manifest.json", *deflated(manifest([{**dense_layer(pattern="2:4"), "mask": "layers/0/mask.npy"}]))),
        ("layers/0/mask.npy", *bomb_stream(head, b"\0", total)),
    ])


def manifest_bomb(total: int = 800 << 20) -> bytes:
    """0.8 MB: manifest.json inflates to ``total`` bytes of JSON whitespace."""
    return raw_zip([("manifest.json", *bomb_stream(b"", b" ", total))])


def lying_header_zip() -> bytes:
    """The mask member declares a plausible size but its deflate stream holds 64 MiB."""
    data, crc, _size, method = bomb_stream(b"", b"\0", 64 << 20)
    return raw_zip([
        ("manifest.json", *deflated(manifest([{**dense_layer(pattern="2:4"), "mask": "layers/0/mask.npy"}]))),
        ("layers/0/mask.npy", data, crc, 133, method),
    ])


def npy_shape_lie_zip() -> bytes:
    """A 136-byte mask npy whose header claims 10^12 elements (numpy would allocate them first)."""
    return workload_zip(manifest([{**dense_layer(pattern="2:4"), "mask": "layers/0/mask.npy"}]),
                        {"layers/0/mask.npy": npy_header((10**12,)) + b"\0" * 8})


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """Billion laughs: ``width ** levels`` leaves from a few hundred bytes of YAML, as one flow list."""
    parts = [f"&a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        parts.append(f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "[" + ", ".join(parts) + "]"
