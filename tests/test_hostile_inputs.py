"""Hostile and broken inputs (issue 16): every one ends in one NmlabError line, fast, with nothing written.

Each hostile file is built here, small on disk: a zip whose member inflates to 800 MB is
0.8 MB, an alias bomb is a few hundred bytes. The CLI cases run ``python -m hwmodel`` in a
subprocess under an address-space limit, so a loader that inflates or expands instead of
refusing fails the test with a MemoryError rather than taking the machine down. Time is not
asserted here (a loaded machine would make that flaky): benchmarks/bench_hostile_inputs.py
measures seconds and peak memory of every case against the 10 s / 1 GB target.
"""

from __future__ import annotations

import io
import json
import math
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
from tests.conftest import GPU_PARAMS_TEXT, cli_refuses_file
from tests.test_design import design_data

REPO = Path(__file__).resolve().parents[1]
#: Address space a CLI run on a bad input gets (benchmarks/bench_hostile_inputs.py measures time and RSS).
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


# ----------------------------------------------------------------------------- harness


def nmlab_subprocess(*args: str, env: dict | None = None) -> tuple[int, str, str, float]:
    """(exit status, stdout, stderr, seconds) of ``python -m hwmodel ARGS`` under LIMIT_AS_BYTES."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS_BYTES, LIMIT_AS_BYTES))

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hwmodel", *args], capture_output=True, text=True, cwd=REPO,
                          preexec_fn=cap, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0


def assert_one_line_error(rc: int, out: str, err: str, *needles: str) -> str:
    """Exit status 2, nothing on stdout, one line on stderr holding every needle, no traceback."""
    assert "Traceback" not in err, err[-2000:]
    assert rc == 2, (rc, err[-2000:])
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def nmlab_inproc(capsys, *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``nmlab ARGS`` in this process (argparse errors exit)."""
    from hwmodel.cli import main

    try:
        rc = main(list(args))
    except SystemExit as exc:
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def raises_one_line(fn, *needles: str) -> str:
    """``fn()`` raises one short NmlabError line holding every needle."""
    with pytest.raises(NmlabError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg and len(msg) <= 1000
    for needle in needles:
        assert needle in msg, msg
    return msg


# ----------------------------------------------------------------------------- workload archives


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    (d / "mask_bomb.nmw").write_bytes(mask_bomb())
    (d / "manifest_bomb.nmw").write_bytes(manifest_bomb())
    return d


def test_bombs_are_small_on_disk_and_really_inflate(hostile_dir):
    """The fixtures are what they claim: < 1 MB each, one member declaring (and holding) 800 MiB."""
    for name, member in (("mask_bomb.nmw", "layers/0/mask.npy"), ("manifest_bomb.nmw", "manifest.json")):
        path = hostile_dir / name
        assert path.stat().st_size < 1_000_000
        with zipfile.ZipFile(path) as zf:
            assert zf.getinfo(member).file_size == 800 << 20
            with zf.open(member) as fh:  # the first MiB inflates as declared
                assert len(fh.read(1 << 20)) == 1 << 20


@pytest.mark.parametrize("name, needle", [("mask_bomb.nmw", "mask"), ("manifest_bomb.nmw", "NMLAB_MAX_MANIFEST_BYTES")])
def test_zip_bomb_refused_from_declared_size_without_inflating(hostile_dir, name, needle):
    from hwmodel.workload import load_workload

    raises_one_line(lambda: load_workload(hostile_dir / name), needle, "declares")


@pytest.mark.parametrize("name", ["mask_bomb.nmw", "manifest_bomb.nmw"])
def test_zip_bomb_cli_one_line_under_time_and_memory(hostile_dir, name):
    rc, out, err, _seconds = nmlab_subprocess("workload", str(hostile_dir / name))
    assert_one_line_error(rc, out, err, "nmlab workload: error:")


def test_member_inflating_past_its_declared_size_is_refused(tmp_path):
    from hwmodel.workload import load_workload

    path = tmp_path / "lying.nmw"
    path.write_bytes(lying_header_zip())
    raises_one_line(lambda: load_workload(path), "'actor.fc1': mask")


def test_npy_header_is_checked_before_numpy_allocates(tmp_path):
    from hwmodel.workload import load_workload

    path = tmp_path / "shape.nmw"
    path.write_bytes(npy_shape_lie_zip())
    raises_one_line(lambda: load_workload(path), "mask", "1,000,000,000,000 elements, expected 4")


@pytest.mark.parametrize("key, shape, descr, data", [
    ("mask", (-1, -4), "|u1", b"\xff" * 4),        # 4 packed bytes of a 4x8 mask, shape product 4
    ("weight", (-4, -8), "<f4", b"\0" * 128),      # 32 float32 weights, shape product 32
    ("weight", (-1, -1, 32), "<f4", b"\0" * 128),
])
def test_npy_header_with_negative_dimensions_is_refused(tmp_path, key, shape, descr, data):
    """A header whose negative dimensions multiply to the right count passed the count check and
    then crashed numpy's reshape (ValueError traceback)."""
    from hwmodel.workload import load_workload

    layer = dense_layer(pattern="2:4" if key == "mask" else "dense", **{key: "a.npy"})
    path = tmp_path / "neg.nmw"
    path.write_bytes(workload_zip(manifest([layer]), {"a.npy": npy_header(shape, descr) + data}))
    raises_one_line(lambda: load_workload(path), key, "negative")
    rc, out, err, _seconds = nmlab_subprocess("workload", str(path))
    assert_one_line_error(rc, out, err, "nmlab workload: error:", "negative")


def test_npy_header_with_an_unclosed_bracket_is_refused(tmp_path):
    """numpy tokenizes a header before it parses it: an unclosed bracket (one damaged byte) raised
    tokenize.TokenError, which ended in a traceback."""
    from hwmodel.workload import load_workload

    head = npy_header((8, 4), "<f4")
    bad = head.replace(b"(8, 4), }", b"(8, 4), (")
    assert len(bad) == len(head)
    layer = dense_layer(weight="a.npy")
    path = tmp_path / "bracket.nmw"
    path.write_bytes(workload_zip(manifest([layer]), {"a.npy": bad + b"\0" * 128}))
    raises_one_line(lambda: load_workload(path), "weight", "not a .npy array")
    rc, out, err, _seconds = nmlab_subprocess("workload", str(path))
    assert_one_line_error(rc, out, err, "nmlab workload: error:", "not a .npy array")


def test_a_bad_workload_among_several_is_named_by_its_file(tmp_path):
    """A sweep over several workloads said only "layer 'actor.fc1': weight: ..." of the bad one."""
    from hwmodel.workload import bundled_workloads
    from sweeps import api

    bad = tmp_path / "bad.nmw"
    bad.write_bytes(workload_zip(manifest([dense_layer(weight="a.npy")]), {"a.npy": npy_header((-4, -8), "<f4") + b"\0" * 128}))
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({"workloads": [str(bundled_workloads()[0]), str(bad)], "patterns": ["dense"],
                                      "bits": [8], "designs": ["edge_ws"], "scenarios": ["inference"], "quality": "none"}))
    msg = raises_one_line(lambda: api.run(config, tmp_path / "out", workers=1, progress=False),
                          f"workload: {bad}: layer 'actor.fc1': weight: array 'a.npy': shape (-4, -8) has a negative dimension")
    assert msg.count(str(bad)) == 1 and not (tmp_path / "out").exists()


def test_huge_dense_layer_refused_and_limit_overridable(tmp_path, monkeypatch):
    from hwmodel.workload import load_workload

    path = tmp_path / "huge.nmw"
    path.write_bytes(workload_zip(manifest([dense_layer(k=10**9, n=10**9)])))
    raises_one_line(lambda: load_workload(path), "in_features x out_features", "NMLAB_MAX_LAYER_WEIGHTS")
    small = tmp_path / "small.nmw"
    small.write_bytes(workload_zip(manifest([dense_layer(k=8, n=4)])))
    assert load_workload(small).layers[0].in_features == 8
    monkeypatch.setenv("NMLAB_MAX_LAYER_WEIGHTS", "31")  # the 8x4 layer has 32
    raises_one_line(lambda: load_workload(small), "32 is over the limit of 31")
    monkeypatch.setenv("NMLAB_MAX_LAYER_WEIGHTS", "lots")
    raises_one_line(lambda: load_workload(small), "NMLAB_MAX_LAYER_WEIGHTS", "positive integer")


def test_too_many_layers_refused(tmp_path, monkeypatch):
    from hwmodel.workload import load_workload

    path = tmp_path / "many.nmw"
    path.write_bytes(workload_zip(manifest([dense_layer(name=f"l{i}") for i in range(5)])))
    assert len(load_workload(path).layers) == 5
    monkeypatch.setenv("NMLAB_MAX_LAYERS", "4")
    raises_one_line(lambda: load_workload(path), "layers", "NMLAB_MAX_LAYERS")


def test_workload_weights_limit_counts_every_layer_and_is_inclusive(tmp_path, monkeypatch):
    """NMLAB_MAX_WORKLOAD_WEIGHTS bounds the sum of in x out over all layers (each layer alone may
    be small); a workload of exactly the limit loads, one weight more is refused naming the layer
    that crosses it."""
    from hwmodel.workload import Layer, Workload, load_workload, save_workload

    path = tmp_path / "three.nmw"
    layers = [dense_layer(name=f"actor.fc{i}", k=8, n=4) for i in (1, 2, 3)]  # 3 x 32 = 96 weights
    path.write_bytes(workload_zip(manifest(layers)))
    monkeypatch.setenv("NMLAB_MAX_LAYER_WEIGHTS", "32")  # every layer is within the per-layer limit
    monkeypatch.setenv("NMLAB_MAX_WORKLOAD_WEIGHTS", "96")
    assert len(load_workload(path).layers) == 3
    monkeypatch.setenv("NMLAB_MAX_WORKLOAD_WEIGHTS", "95")
    raises_one_line(lambda: load_workload(path), "actor.fc3", "96 is over the limit of 95", "NMLAB_MAX_WORKLOAD_WEIGHTS")
    monkeypatch.setenv("NMLAB_MAX_WORKLOAD_WEIGHTS", "63")
    raises_one_line(lambda: load_workload(path), "actor.fc2", "64 is over the limit of 63")
    # Checked as the manifest is read, before a layer's arrays are: a mask member past the limit
    # is never opened (here it does not even exist).
    monkeypatch.setenv("NMLAB_MAX_WORKLOAD_WEIGHTS", "95")
    bad = tmp_path / "array_past_limit.nmw"
    bad.write_bytes(workload_zip(manifest(layers[:2] + [dense_layer(name="actor.fc3", k=8, n=4, mask="absent.npy")])))
    raises_one_line(lambda: load_workload(bad), "actor.fc3", "96 is over the limit of 95")
    # The same rule on a workload built in memory: save_workload validates it and writes nothing.
    wl = Workload([Layer(f"actor.fc{i}", "actor", 8, 4) for i in (1, 2, 3)], {})
    out = tmp_path / "built.nmw"
    monkeypatch.setenv("NMLAB_MAX_WORKLOAD_WEIGHTS", "95")
    raises_one_line(lambda: save_workload(wl, out), "actor.fc3", "96 is over the limit of 95")
    assert not out.exists()
    monkeypatch.setenv("NMLAB_MAX_WORKLOAD_WEIGHTS", "96")
    save_workload(wl, out)
    assert len(load_workload(out).layers) == 3


@pytest.mark.parametrize("version", [True, 1.0, "1", None, 2])
def test_workload_version_must_be_a_known_int(tmp_path, version):
    from hwmodel.workload import load_workload

    path = tmp_path / "v.nmw"
    path.write_bytes(workload_zip(manifest([dense_layer()], version=version)))
    raises_one_line(lambda: load_workload(path), "version", "unknown version")


@pytest.mark.parametrize("key, bad", [("weight", np.nan), ("weight", np.inf), ("bias", -np.inf), ("bias", np.nan)])
def test_non_finite_weights_refused(tmp_path, key, bad):
    from hwmodel.workload import load_workload

    arr = np.ones((4, 8) if key == "weight" else (4,), np.float32)
    arr.flat[3] = bad
    path = tmp_path / "w.nmw"
    path.write_bytes(workload_zip(manifest([{**dense_layer(), key: f"{key}.npy"}]), {f"{key}.npy": npy_bytes(arr)}))
    raises_one_line(lambda: load_workload(path), f"'actor.fc1': {key}: non-finite value")


def test_save_refuses_non_finite_weights(tmp_path):
    from hwmodel.workload import Layer, Workload, save_workload

    w = np.ones((4, 8), np.float32)
    w[1, 2] = np.nan
    wl = Workload([Layer("a", "actor", 8, 4, weight=w)])
    raises_one_line(lambda: save_workload(wl, tmp_path / "w.nmw"), "weight: non-finite value nan at index [1, 2]")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("text", [b'{"x": NaN}', b'{"x": Infinity}', b'{"x": -Infinity}', b'{"x": 1e999}'])
def test_non_finite_numbers_in_manifest_refused(tmp_path, text):
    from hwmodel.workload import load_workload

    body = manifest([dense_layer()]).replace(b'"meta": {}', b'"meta": ' + text)
    path = tmp_path / "m.nmw"
    path.write_bytes(workload_zip(body))
    raises_one_line(lambda: load_workload(path), "manifest.json")


def test_deeply_nested_manifest_is_one_line(tmp_path):
    from hwmodel.workload import load_workload

    body = manifest([dense_layer()]).replace(b'"meta": {}', b'"meta": ' + b"[" * 100_000 + b"]" * 100_000)
    path = tmp_path / "deep.nmw"
    path.write_bytes(workload_zip(body))
    raises_one_line(lambda: load_workload(path), "manifest.json")


def test_check_cli_on_huge_layer_and_nan_weights(tmp_path):
    """The issue's cases through `nmlab check`: no 3.5 EiB allocation, no PASS on NaN weights."""
    huge = tmp_path / "huge.nmw"
    huge.write_bytes(workload_zip(manifest([dense_layer(k=10**9, n=10**9)])))
    w = np.full((4, 8), np.nan, np.float32)
    nan = tmp_path / "nan.nmw"
    nan.write_bytes(workload_zip(manifest([{**dense_layer(), "weight": "w.npy"}]), {"w.npy": npy_bytes(w)}))
    for path, needle in ((huge, "in_features x out_features"), (nan, "non-finite")):
        rc, out, err, _seconds = nmlab_subprocess("check", "edge_ws", "--workload", str(path))
        assert_one_line_error(rc, out, err, "nmlab check: error:", needle)


def test_huge_group_size_in_a_small_workload_stays_small(tmp_path):
    """A 400-byte file whose 8192 x 1 mask declares 1:4000000: the group count must not pad each
    row to M (8192 x 4M bytes, 20 GB resident before the fix) nor loop over M."""
    from hwmodel.sparsity import group_counts

    path = tmp_path / "hugem.nmw"
    packed = np.packbits(np.ones(8192, dtype=bool))
    path.write_bytes(workload_zip(manifest([dense_layer(k=1, n=8192, pattern="1:4000000", mask="m.npy")]),
                                  {"m.npy": npy_bytes(packed)}))
    assert path.stat().st_size < 1000
    for args in (("workload", str(path)), ("simulate", "--design", "flex_nm", "--workload", str(path))):
        rc, out, err, _seconds = nmlab_subprocess(*args)
        assert rc == 0 and "Traceback" not in err, err[-2000:]
    mask = np.random.default_rng(0).random((5, 300)) < 0.5
    for m in (65, 128, 299, 300, 301, 10**9):  # the large-M path against a plain sum per group
        want = [[int(row[j:j + m].sum()) for j in range(0, 300, m)] for row in mask]
        assert group_counts(mask, m).tolist() == want


@pytest.mark.parametrize("pattern", ["1:99999999999999999999999", "99999999999999999999999:99999999999999999999999"])
def test_group_size_beyond_int64_is_one_group_per_row(tmp_path, pattern):
    """M past int64 is valid N:M syntax: one group per row, not a traceback from numpy."""
    from hwmodel.workload import load_workload

    path = tmp_path / "m.nmw"
    packed = np.packbits(np.eye(4, 8, dtype=bool).ravel())
    path.write_bytes(workload_zip(manifest([dense_layer(pattern=pattern, mask="m.npy")]), {"m.npy": npy_bytes(packed)}))
    assert load_workload(path).layers[0].nnz == 4
    for args in (("workload", str(path)), ("simulate", "--design", "scalesim_default_ws", "--workload", str(path))):
        rc, out, err, _seconds = nmlab_subprocess(*args)
        assert rc == 0 and "Traceback" not in err, err[-2000:]


def test_layer_narrower_than_the_group_size_is_not_padded_to_it(tmp_path):
    """A 2^24 x 1 layer (within NMLAB_MAX_LAYER_WEIGHTS) on the layer-wise design: its
    unstructured mask is searched for the nearest N:M up to 1:64, and padding each 1-weight row
    to 64 took 2.35 GB and 20 s before the fix (a MemoryError under this address-space cap)."""
    from hwmodel.workload import Layer, Workload, save_workload

    mask = np.random.default_rng(0).random((1 << 24, 1)) < 0.5
    wl = tmp_path / "tall.nmw"
    save_workload(Workload([Layer("actor.fc1", "actor", 1, 1 << 24, "unstructured", mask)]), wl)
    rc, out, err, _seconds = nmlab_subprocess("simulate", "--design", "scalesim_default_ws", "--workload", str(wl))
    assert rc == 0 and "Traceback" not in err, err[-2000:]


def test_flexible_mapping_costs_nothing_per_mask_in_the_group_size():
    """flexible m may be 2^20 - 1: mapping each mask built a histogram of m + 1 bins and walked
    it in Python (60 ms a mask; a 10,000-layer workload of 16 x 16 masks ran over 10 minutes).
    Mapping a small mask must allocate nothing of the order of m."""
    import tracemalloc

    from hwmodel.design import parse_design
    from hwmodel.mapping import map_weights

    data = design_data("flex_nm")
    data["sparsity"].update(m=(1 << 20) - 1, n_values=[1, 2, 4])
    design = parse_design(data)
    rng = np.random.default_rng(0)
    map_weights(design, rng.random((16, 16)) < 0.3, "unstructured")  # per-design tables built once
    mask = rng.random((16, 16)) < 0.3
    tracemalloc.start()
    try:
        mapping = map_weights(design, mask, "unstructured")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "1048575" in mapping.note
    assert peak < 1 << 20, f"mapping one 16x16 mask allocated {peak:,} bytes"


def test_fixed_design_pattern_list_is_bounded():
    """Every mask is checked against each pattern's group size: a 27 kB design listing 2,000
    patterns made a 2 MB workload of 10,000 small layers take 2 min 46 s to simulate. A fixed
    design lists at most 64 patterns (hardware offers a handful)."""
    from hwmodel.design import parse_design

    data = design_data()
    data["sparsity"]["patterns"] = [f"1:{m}" for m in range(2, 67)]
    raises_one_line(lambda: parse_design(data), "sparsity.patterns", "at most 64", "65")
    data["sparsity"]["patterns"] = data["sparsity"]["patterns"][:64]
    assert len(parse_design(data).sparsity.patterns) == 64


def test_flexible_design_with_a_huge_group_size_stays_small(tmp_path):
    """flexible m may be up to 2^20; a 2048 x 2048 layer grouped by padding every row to m took
    4.2 GB and 37 s before the fix."""
    from hwmodel.workload import Layer, Workload, save_workload

    data = design_data("flex_nm")
    data["sparsity"]["m"] = (1 << 20) - 1
    design = tmp_path / "flex_huge_m.yaml"
    design.write_text(yaml.safe_dump(data))
    mask = np.random.default_rng(0).random((2048, 2048)) < 0.5
    wl = tmp_path / "big.nmw"
    save_workload(Workload([Layer("actor.fc1", "actor", 2048, 2048, "unstructured", mask)]), wl)
    rc, out, err, _seconds = nmlab_subprocess("simulate", "--design", str(design), "--workload", str(wl))
    assert rc == 0 and "Traceback" not in err, err[-2000:]
    assert "1048575" in out  # the mapping note names the group size


# ----------------------------------------------------------------------------- design and sweep YAML


def _design_yaml(**changes) -> str:
    data = design_data()
    data.update(changes)
    return yaml.safe_dump(data)


def test_design_alias_bomb_refused_before_construction(tmp_path):
    from hwmodel.design import load_design

    path = tmp_path / "bomb.yaml"
    path.write_text(_design_yaml(technology_nm=1).replace("technology_nm: 1", "technology_nm: " + alias_bomb()))
    assert path.stat().st_size < 2000
    raises_one_line(lambda: load_design(path), "aliases expanded", "NMLAB_MAX_YAML_EXPANDED")


def test_sweep_alias_bomb_refused_and_leaves_nothing(tmp_path):
    from sweeps import api

    path = tmp_path / "bomb.yaml"
    path.write_text("bits: " + alias_bomb() + "\n")
    raises_one_line(lambda: api.run(path, tmp_path / "out", workers=1, progress=False), "aliases expanded")
    assert not (tmp_path / "out").exists()


def test_sweep_design_cacti_cannot_model_refused_before_anything_is_written(tmp_path):
    """A 4 GiB SRAM loads (NMLAB_MAX_SRAM_BYTES is 16 GiB) but has no CACTI energy: the sweep wrote
    sweep.json and parts/, then stopped at the design's first point."""
    from hwmodel.design import bundled_designs

    design = yaml.safe_load(bundled_designs()["edge_ws"].read_text())
    design["storage"][1]["capacity_bytes"] = 4 << 30
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(design))
    quality = tmp_path / "quality.csv"
    quality.write_text(GOOD_QUALITY)
    config = _sweep_config(tmp_path, quality)
    config.write_text(config.read_text().replace("- edge_ws", f"- {tmp_path / 'big.yaml'}"))
    out = tmp_path / "out"
    rc, stdout, err, _seconds = nmlab_subprocess("sweep", str(config), "--out", str(out), "--workers", "1", "--quiet")
    assert_one_line_error(rc, stdout, err, "nmlab sweep: error: sweep config: designs[0]:",
                          "storage[1].capacity_bytes: 4,294,967,296 is more than CACTI 7 models")
    assert not out.exists()


def test_alias_of_a_long_string_counts_its_characters(tmp_path):
    """Few nodes, but every alias repeats a 100 kB string: 30 aliases expand to 3 MB of text."""
    from hwmodel.design import load_design

    path = tmp_path / "long.yaml"
    path.write_text(f"version: 1\nname: x\ndescription: &s {'y' * 100_000}\ntechnology_nm: [" + ", ".join(["*s"] * 30) + "]\n")
    raises_one_line(lambda: load_design(path), "aliases expanded")


def test_duplicate_yaml_keys_refused_in_every_yaml_input(tmp_path):
    """YAML loaders keep the last of a repeated key without a word: a design edited by appending
    `technology_nm: 7` below the original ran with whichever came last. Now one line names it."""
    from hwmodel.design import load_design
    from rl.campaign_config import load_config
    from sweeps import api

    design = tmp_path / "dup.yaml"
    design.write_text(_design_yaml() + "technology_nm: 7\n")
    raises_one_line(lambda: load_design(design), "key 'technology_nm' is given twice")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("bits: [8]\nbits: [4]\n")
    raises_one_line(lambda: api.run(sweep, tmp_path / "out", workers=1, progress=False), "line 2: key 'bits'")
    assert not (tmp_path / "out").exists()
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text("version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nseeds: [1]\nsteps: 10\n")
    raises_one_line(lambda: load_config(campaign), "campaign config", "key 'seeds' is given twice")
    nested = tmp_path / "nested.yaml"  # at any depth; a merge key (<<) is not a repeat
    nested.write_text("a: &x {p: 1}\nb:\n  <<: *x\n  q: 2\nc: {r: 1, r: 2}\n")
    from hwmodel.limits import load_yaml
    raises_one_line(lambda: load_yaml(nested, "design"), "line 5: key 'r' is given twice")


def test_campaign_config_gets_the_yaml_bounds(tmp_path):
    """The campaign config was read with a bare yaml.safe_load: a binary file was a
    UnicodeDecodeError traceback, and no size, nesting or alias bound applied."""
    from rl.campaign_config import load_config

    binary = tmp_path / "campaign.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    raises_one_line(lambda: load_config(binary), "campaign config", "not UTF-8")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("version: 1\nenvs: " + alias_bomb() + "\n")
    raises_one_line(lambda: load_config(bomb), "aliases expanded")


def test_recursive_alias_and_deep_nesting_refused(tmp_path):
    from hwmodel.limits import load_yaml

    rec = tmp_path / "rec.yaml"
    rec.write_text("a: &a [1, *a]\n")
    raises_one_line(lambda: load_yaml(rec, "design"), "recursive")
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 500 + "]" * 500 + "\n")
    raises_one_line(lambda: load_yaml(deep, "design"), "nest")


def test_yaml_within_the_limits_loads_with_its_aliases(tmp_path):
    """A bounded loader must still read what yaml.safe_load reads, anchors and merges included."""
    from hwmodel.limits import load_yaml

    text = "base: &b {x: 1, y: [1, 2]}\nother:\n  <<: *b\n  z: 3\nlist: [*b, *b]\n"
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    assert load_yaml(path, "design") == yaml.safe_load(text)


def test_big_yaml_file_refused_before_parsing(tmp_path, monkeypatch):
    from hwmodel.design import load_design

    path = tmp_path / "big.yaml"
    path.write_text(_design_yaml())
    load_design(path)
    monkeypatch.setenv("NMLAB_MAX_YAML_BYTES", "100")
    raises_one_line(lambda: load_design(path), "NMLAB_MAX_YAML_BYTES")


@pytest.mark.parametrize("version", ["true", "1.0", "'1'", "null"])
def test_design_and_sweep_versions_must_be_known_ints(tmp_path, version):
    from hwmodel.design import load_design
    from sweeps.config import load_config

    d = tmp_path / "d.yaml"
    d.write_text(_design_yaml().replace("version: 1", f"version: {version}"))
    raises_one_line(lambda: load_design(d), "version", "unknown version")
    s = tmp_path / "s.yaml"
    s.write_text(f"version: {version}\n")
    raises_one_line(lambda: load_config(s), "sweep config: version")


def test_design_pe_array_bounded_and_overridable(tmp_path, monkeypatch):
    from hwmodel.design import load_design

    data = design_data()
    data["compute"].update(rows=10**9, cols=10**9)
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(data))
    raises_one_line(lambda: load_design(path), "compute.rows x compute.cols", "NMLAB_MAX_PES")
    data["compute"].update(rows=64, cols=64)
    path.write_text(yaml.safe_dump(data))
    assert load_design(path).compute.pes == 4096
    monkeypatch.setenv("NMLAB_MAX_PES", "1024")
    raises_one_line(lambda: load_design(path), "4,096 is over the limit of 1,024")


@pytest.mark.parametrize("field, value", [("technology_nm", ".nan"), ("clock_mhz", ".inf"), ("clock_mhz", "-.inf")])
def test_design_non_finite_numbers_refused(tmp_path, field, value):
    from hwmodel.design import load_design

    path = tmp_path / "d.yaml"
    path.write_text(_design_yaml(**{field: 1.5}).replace(f"{field}: 1.5", f"{field}: {value}"))
    raises_one_line(lambda: load_design(path), field, "finite")


@pytest.mark.parametrize("path, value", [
    ("compute.datatypes.int8", 1e-300),          # int64 cycles wrapped: negative stalls, utilization 1.9e304
    ("compute.datatypes.int8", 1e-15),           # 1e15x slower streaming: wraps at large batches
    ("clock_mhz", 1e-300),                       # latency, leakage energy and E/dense infinite
    ("sparsity.metadata_bits_per_cycle", 1e-300),
    ("storage.0.bandwidth_gb_s", 1e-300),
])
def test_design_rates_too_small_to_model_refused(tmp_path, path, value):
    """Positive but absurdly small rates passed as '> 0' and gave wrapped or infinite figures;
    the error names the field (rates are bounded below as they are above)."""
    from hwmodel.design import load_design

    data = design_data()
    node, keys = data, [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    d = tmp_path / "d.yaml"
    d.write_text(yaml.safe_dump(data))
    field = path.replace("storage.0", "storage[0]")
    raises_one_line(lambda: load_design(d), field, "must be >= 0.001")
    node[keys[-1]] = 0.001  # the bound itself loads and gives finite, non-negative figures
    d.write_text(yaml.safe_dump(data))
    import hwmodel

    s = hwmodel.simulate(hwmodel.workload.default_workload(), load_design(d), batch=1 << 24).summary()
    figures = [v for k, v in s.items() if isinstance(v, float)]
    assert all(math.isfinite(v) and v >= 0 for v in figures), s
    assert s["utilization"] <= 1.0


def test_sweep_batch_and_grid_size_bounded(tmp_path, monkeypatch):
    from sweeps import api
    from sweeps.config import load_config

    path = tmp_path / "s.yaml"
    path.write_text("scenarios: [{scenario: inference, batch: 1000000000000000}]\n")
    raises_one_line(lambda: load_config(path), "scenarios[0].batch", "NMLAB_MAX_BATCH")
    path.write_text("patterns: [dense, '2:4']\nbits: [8, 4]\ndesigns: [edge_ws]\nquality: null\n")
    monkeypatch.setenv("NMLAB_MAX_SWEEP_POINTS", "3")
    raises_one_line(lambda: api.run(path, tmp_path / "out", workers=1, progress=False), "NMLAB_MAX_SWEEP_POINTS")
    assert not (tmp_path / "out").exists()


def test_error_quoting_a_huge_value_stays_short(tmp_path):
    from hwmodel.design import load_design

    path = tmp_path / "d.yaml"
    path.write_text(_design_yaml(technology_nm=list(range(2000))))
    msg = raises_one_line(lambda: load_design(path), "technology_nm")
    assert len(msg) < 200


# ----------------------------------------------------------------------------- quality table


def _sweep_config(tmp: Path, quality: Path) -> Path:
    from hwmodel.workload import bundled_workloads

    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump({"workloads": [str(bundled_workloads()[0])], "patterns": ["dense"], "bits": [8],
                                    "designs": ["edge_ws"], "scenarios": ["inference"], "quality": str(quality)}))
    return path


GOOD_QUALITY = "env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std\nHopper-v5,td3,dense,8,0,10,2,100.5,3.0\n"
BAD_QUALITY = {
    "binary": os.urandom(4000).replace(b"\n", b"\0") + b"\xff",
    "nul": GOOD_QUALITY.replace("100.5", "10\x000").encode(),
    "nan return": GOOD_QUALITY.replace("100.5", "nan").encode(),
    "inf return": GOOD_QUALITY.replace("100.5", "inf").encode(),
    "overflow": GOOD_QUALITY.replace("100.5", "1e999").encode(),
    "bits float": GOOD_QUALITY.replace(",8,0,", ",8.0,0,").encode(),
    "bits huge": GOOD_QUALITY.replace(",8,0,", ",1" + "0" * 5000 + ",0,").encode(),
    "missing column": GOOD_QUALITY.replace("return_mean", "ret").encode(),
    "ragged": (GOOD_QUALITY + "Hopper-v5,td3\n").encode(),
    "huge field": (GOOD_QUALITY + "Hopper-v5," + "x" * 300_000 + ",dense,8,0,1,1,1,1\n").encode(),
}


@pytest.mark.parametrize("case", sorted(BAD_QUALITY))
def test_garbage_quality_table_fails_before_any_point_and_leaves_nothing(tmp_path, case):
    from sweeps import api

    quality = tmp_path / "quality.csv"
    quality.write_bytes(BAD_QUALITY[case])
    calls = []

    def evaluate(point: dict) -> dict:
        calls.append(point)
        raise AssertionError("a point was evaluated")

    out = tmp_path / "out"
    raises_one_line(lambda: api.run(_sweep_config(tmp_path, quality), out, workers=1, evaluate=evaluate, progress=False),
                "quality")
    assert calls == [] and not out.exists()


def test_good_quality_table_still_joins(tmp_path):
    from sweeps.derived import load_quality

    quality = tmp_path / "quality.csv"
    quality.write_text(GOOD_QUALITY)
    assert load_quality(quality)[("Hopper-v5", "dense", 8)][0]["return_mean"] == 100.5
    # A one-episode evaluation has return_std 0: the bound is >= 0, and only a negative one is refused.
    quality.write_text(GOOD_QUALITY.replace(",100.5,3.0", ",100.5,0"))
    assert load_quality(quality)[("Hopper-v5", "dense", 8)][0]["return_mean"] == 100.5
    quality.write_text(GOOD_QUALITY.replace(",100.5,3.0", ",100.5,-0.5"))
    raises_one_line(lambda: load_quality(quality), "line 2: return_std: must be >= 0, got -0.5")


@pytest.mark.parametrize("edit, needle", [
    ((",100.5,", ",1e200,"), "line 2: return_mean: must be <= 1e+15, got 1e+200"),
    ((",100.5,", ",-1e200,"), "line 2: return_mean: must be >= -1e+15, got -1e+200"),
    ((",100.5,3.0", ",100.5,1e200"), "line 2: return_std: must be <= 1e+15, got 1e+200"),
])
def test_quality_returns_past_any_episode_are_refused(tmp_path, edit, needle):
    """Two seeds at 1e200 and -1e200 loaded, and their standard deviation overflowed in the join:
    an OverflowError traceback after the sweep had written sweep.json and its parts."""
    from sweeps.derived import load_quality

    quality = tmp_path / "quality.csv"
    quality.write_text(GOOD_QUALITY.replace(*edit))
    raises_one_line(lambda: load_quality(quality), needle)
    if "return_mean" in needle:  # `nmlab evaluate --csv` checks the table it appends to the same way
        from hwmodel.agents import check_quality_csv

        raises_one_line(lambda: check_quality_csv(quality), needle.split(": ", 1)[1])


def test_quality_steps_that_are_no_step_count_do_not_stop_the_join(tmp_path):
    """steps is informative (a bad value is no step count, the join goes on); one past int64 on
    every joined row ended the sweep in pyarrow's OverflowError once its parts were written."""
    import pyarrow as pa

    from sweeps.derived import join_quality, load_quality

    quality = tmp_path / "quality.csv"
    table = pa.table({"env": ["Hopper-v5"], "pattern": ["dense"], "bits": [8], "mask_source": ["trained"],
                      "method": ["td3"]})
    for steps, joined in (("10", 10), ("99999999999999999999", None), ("-5", None), ("1" + "0" * 5000, None)):
        quality.write_text(GOOD_QUALITY.replace(",0,10,2,", f",0,{steps},2,"))
        out = join_quality(table, load_quality(quality))
        assert out.column("return_steps").to_pylist() == [joined] and out.column("return_mean").to_pylist() == [100.5]


# ----------------------------------------------------------------------------- CLI numbers


@pytest.mark.parametrize("args, needle", [
    (["simulate", "--design", "edge_ws", "--batch", "1000000000000000"], "NMLAB_MAX_BATCH"),
    (["simulate", "--design", "edge_ws", "--batch", "nan"], "--batch"),
    (["simulate", "--design", "edge_ws", "--bits", "1e3"], "--bits"),
    (["check", "edge_ws", "--batch", "1000000000000000"], "NMLAB_MAX_BATCH"),
    (["check", "edge_ws", "--sram-budget", "1e999KB"], "--sram-budget"),
    (["export-timeloop", "--design", "edge_ws", "--layer", "actor.fc1", "--out", "x", "--batch", "-1"], "--batch"),
    (["train", "--learning-rate", "nan"], "--learning-rate"),
    (["train", "--gamma", "inf"], "--gamma"),
    (["train", "--buffer-size", "1000000000000"], "NMLAB_MAX_REPLAY_TRANSITIONS"),
    (["train", "--hidden", "1" + "0" * 5000], "--hidden"),
    (["evaluate", "run", "--bits", "99"], "--bits"),
    (["sweep", "--workers", "0"], "--workers"),
])
def test_bad_numbers_on_the_command_line(capsys, args, needle):
    rc, out, err = nmlab_inproc(capsys, *args)
    assert_one_line_error(rc, out, err, needle)


@pytest.mark.parametrize("args, needle", [
    (["--method", "gmp", "--sparsity", "0.9", "--prune-start-fraction", "0.6", "--prune-end-fraction", "0.4"], "prune_end_fraction"),
    (["--method", "gmp", "--sparsity", "0.9", "--prune-end-fraction", "1.01"], "prune_end_fraction"),
    (["--method", "gmp", "--sparsity", "0.9", "--prune-start-fraction", "-0.2"], "prune_start_fraction"),
    (["--method", "rlx2", "--sparsity", "0.9", "--rlx2-buffer-drop-fraction", "0"], "rlx2_buffer_drop_fraction"),
    (["--method", "rlx2", "--sparsity", "0.9", "--rlx2-buffer-drop-fraction", "inf"], "--rlx2-buffer-drop-fraction"),
    (["--method", "rlx2", "--sparsity", "0.9", "--rlx2-mismatch-samples", "0"], "--rlx2-mismatch-samples"),
    (["--eval-seed-offset", "-1"], "--eval-seed-offset"),
    (["--eval-seed-offset", str(2**32)], "--eval-seed-offset"),
])
def test_train_bad_algorithm_knobs_are_one_line_and_leave_no_run_folder(capsys, tmp_path, args, needle):
    out = tmp_path / "run"
    rc, stdout, err = nmlab_inproc(capsys, "train", "--out", str(out), *args)
    assert_one_line_error(rc, stdout, err, needle)
    assert not out.exists()


def test_train_nan_learning_rate_leaves_no_run_folder(tmp_path):
    out = tmp_path / "run"
    rc, stdout, err, _seconds = nmlab_subprocess("train", "--learning-rate", "nan", "--out", str(out))
    assert_one_line_error(rc, stdout, err, "--learning-rate")
    assert not out.exists()


# ----------------------------------------------------------------------------- output locations

BAD_OUTPUTS = ["/dev/null/x", "/proc/x", "DIR"]


def _bad_out(tmp_path: Path, where: str, kind: str) -> str:
    if where != "DIR":
        return where
    if kind == "file":
        return str(tmp_path)  # an existing directory where a file is wanted
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    return str(blocker)  # an existing file where a directory is wanted


@pytest.mark.parametrize("where", BAD_OUTPUTS)
@pytest.mark.parametrize("command", ["sweep", "train", "export", "export-timeloop", "evaluate", "gpu validate", "gpu fit"])
def test_unwritable_outputs_refused_before_work(tmp_path, capsys, command, where):
    kind = "file" if command in ("export", "evaluate", "gpu fit") else "dir"
    bad = _bad_out(tmp_path, where, kind)
    args = {
        "sweep": ["sweep", "--out", bad, "--quiet"],
        "train": ["train", "--out", bad],
        "export": ["export", str(tmp_path / "no_run"), "--out", bad],
        "export-timeloop": ["export-timeloop", "--design", "edge_ws", "--layer", "actor.fc1", "--out", bad],
        "evaluate": ["evaluate", str(tmp_path / "no_run"), "--bits", "8", "--csv", bad],
        "gpu validate": ["gpu", "validate", "--plots", bad],
        "gpu fit": ["gpu", "fit", "--out", bad],
    }[command]
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out, err = nmlab_inproc(capsys, *args)
    # The run folder does not exist: had the work started first, the error would be about it.
    assert_one_line_error(rc, out, err, "--csv" if command == "evaluate" else "--plots" if command == "gpu validate" else "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_evaluate_csv_with_another_header_refused_before_evaluating(tmp_path, capsys):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    rc, out, err = nmlab_inproc(capsys, "evaluate", str(tmp_path / "no_run"), "--bits", "8", "--csv", str(other))
    assert_one_line_error(rc, out, err, "--csv", "not a quality table", "column 'env' missing")
    assert other.read_text() == "a,b\n1,2\n"


def test_output_checks_create_nothing(tmp_path):
    from hwmodel.limits import check_output_dir, check_output_file

    assert check_output_file(tmp_path / "new" / "deeper" / "f.csv", "--csv") == tmp_path / "new" / "deeper" / "f.csv"
    assert check_output_dir(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []
    fifo = tmp_path / "fifo"  # like /dev/null: renaming a file over it would replace the device
    os.mkfifo(fifo)
    with pytest.raises(NmlabError, match="not a regular file"):
        check_output_file(fifo, "--out")


def test_atomic_write_never_replaces_a_special_file_or_folder(tmp_path, capsys):
    # `nmlab gpu fit --out /dev/null` renamed its YAML over the device; atomic_write itself
    # refuses, for any writer whose command skipped check_output_file.
    import stat

    from hwmodel.io import atomic_write

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, message in [(fifo, "not a regular file"), (tmp_path, "is a directory")]:
        with pytest.raises(NmlabError, match=message):
            with atomic_write(target, "w") as fh:
                fh.write("x")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]
    rc, out, err = nmlab_inproc(capsys, "gpu", "fit", "--out", str(fifo))
    assert_one_line_error(rc, out, err, "--out", "not a regular file")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("data", [b"", os.urandom(4096), b"\x80\x02}q\x00."])
def test_a_checkpoint_that_is_no_zip_archive_says_so(tmp_path, capsys, data):
    # Random bytes went to torch's legacy unpickler, whose message (about torch 2.6's weights_only
    # default) was cut mid-sentence into the one line.
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(data)
    rc, out, err = nmlab_inproc(capsys, "export", str(run), "--out", str(tmp_path / "w.nmw"))
    line = assert_one_line_error(rc, out, err, "is corrupt or truncated (not the zip archive torch.save writes)")
    assert "weights_only" not in line and not (tmp_path / "w.nmw").exists()


@pytest.mark.parametrize("command", ["export", "evaluate"])
def test_a_run_folder_that_is_a_file_or_missing_says_so(tmp_path, capsys, command):
    # Given the checkpoint itself, or a misspelt folder, these said
    # "checkpoint: no such file: DIR/checkpoint.pt" (a path under a file).
    given = tmp_path / "checkpoint.pt"
    given.write_bytes(b"x")
    tail = ["--out", str(tmp_path / "w.nmw")] if command == "export" else ["--bits", "8"]
    rc, out, err = nmlab_inproc(capsys, command, str(given), *tail)
    assert_one_line_error(rc, out, err, f"checkpoint: {given}: is a file, not a run folder")
    rc, out, err = nmlab_inproc(capsys, command, str(tmp_path / "rnus"), *tail)
    assert_one_line_error(rc, out, err, f"checkpoint: no such run folder: {tmp_path / 'rnus'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def _checkpoint_payload():
    import torch

    net = {"fc1.weight": torch.ones(4, 3), "fc1.bias": torch.zeros(4)}
    return {"args": {"env": "Hopper-v5", "learning_rate": 3e-4}, "global_step": 10,
            **{k: {n: t.clone() for n, t in net.items()} for k in ("actor", "qf1", "qf2", "actor_target", "qf1_target", "qf2_target")}}


def test_checkpoint_declared_size_refused_before_torch_reads_it(tmp_path, monkeypatch):
    from rl.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _checkpoint_payload())
    assert load_checkpoint(path)["global_step"] == 10
    monkeypatch.setenv("NMLAB_MAX_CHECKPOINT_BYTES", "2000")
    raises_one_line(lambda: load_checkpoint(path), "NMLAB_MAX_CHECKPOINT_BYTES")
    monkeypatch.delenv("NMLAB_MAX_CHECKPOINT_BYTES")
    bomb = tmp_path / "bomb.pt"
    bomb.write_bytes(raw_zip([("archive/data.pkl", *bomb_stream(b"", b"\0", 1100 << 20))]))
    assert bomb.stat().st_size < 2_000_000
    raises_one_line(lambda: load_checkpoint(bomb), "uncompressed size", "NMLAB_MAX_CHECKPOINT_BYTES")


@pytest.mark.parametrize("where", ["args", "weights", "version"])
def test_checkpoint_non_finite_values_and_bad_version_refused(tmp_path, where):
    import torch

    from rl.checkpoint import load_checkpoint, save_checkpoint

    payload = _checkpoint_payload()
    if where == "args":
        payload["args"]["learning_rate"] = float("nan")
    elif where == "weights":
        payload["qf2"]["fc1.weight"][1, 1] = float("inf")
    else:
        payload["version"] = True
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, payload)
    if where == "version":  # save_checkpoint puts its own version first; the payload's wins
        assert torch.load(path, weights_only=True)["version"] is True
    raises_one_line(lambda: load_checkpoint(path), {"args": "args.learning_rate", "weights": "qf2.fc1.weight",
                                                "version": "unknown version True"}[where])


class _RunsCode:
    """Pickles as a call of exec: what a hostile checkpoint carries."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        import builtins

        return (builtins.exec, (self.code,))


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path):
    # Loaded with weights_only=True: torch's restricted unpickler refuses the call, so the file
    # is one error line and nothing it names runs (a full unpickler would run it while loading).
    import torch

    from rl.checkpoint import load_checkpoint

    marker = tmp_path / "ran"
    payload = _checkpoint_payload()
    payload["args"]["note"] = _RunsCode(f"open({str(marker)!r}, 'w').close()")
    path = tmp_path / "checkpoint.pt"
    torch.save(payload, path)
    raises_one_line(lambda: load_checkpoint(path), "checkpoint")
    assert not marker.exists()


@pytest.mark.parametrize("key", ["global_step", "update_step", "episode"])
def test_checkpoint_counters_must_be_whole_numbers_of_at_least_zero(tmp_path, key):
    from rl.checkpoint import load_checkpoint, save_checkpoint

    payload = _checkpoint_payload()
    payload[key] = -1
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, payload)
    raises_one_line(lambda: load_checkpoint(path), f"{key}: must be an integer >= 0, got -1")


# ----------------------------------------------------------------------------- interrupted writers

_KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from hwmodel.io import atomic_write
with atomic_write({target!r}, "w") as fh:
    fh.write("<html>half")
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkilled_writer_leaves_a_temporary_the_next_write_removes(tmp_path):
    from hwmodel.io import atomic_write

    target = tmp_path / "report" / "index.html"
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER.format(repo=str(REPO), target=str(target))])
    assert proc.returncode == -9
    left = list(target.parent.glob(".index.html.*.tmp"))
    assert len(left) == 1 and not target.exists()
    # An old-style temporary (no pid in its name) is removed once it is old, a live writer's never.
    legacy = target.parent / ".index.html.abcd1234.tmp"
    legacy.write_text("")
    os.utime(legacy, (time.time() - 3600, time.time() - 3600))
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = target.parent / f".index.html.{live.pid}-zzzz.tmp"
        alive.write_text("")
        with atomic_write(target, "w") as fh:
            fh.write("<html>whole</html>")
        assert target.read_text() == "<html>whole</html>"
        assert sorted(p.name for p in target.parent.iterdir()) == sorted([alive.name, "index.html"])
    finally:
        live.kill()
        live.wait()


def test_report_run_removes_temporaries_of_a_killed_report(tmp_path):
    """`nmlab report` after a SIGKILLed one: the killed run's .index.html.*.tmp is gone."""
    from tests.test_sweep_engine import fake_evaluate, write_config

    from reports.build import build_report
    from sweeps import api

    out = tmp_path / "sweep"
    api.run(write_config(tmp_path, chunk_size=50), out, workers=1, evaluate=fake_evaluate, progress=False)
    target = out / "report" / "index.html"
    subprocess.run([sys.executable, "-c", _KILLED_WRITER.format(repo=str(REPO), target=str(target))])
    assert list(target.parent.glob(".*.tmp"))
    build_report(out, pngs=False)
    assert not list(target.parent.glob(".*.tmp"))
    assert target.is_file()


def test_timeloop_export_removes_temporaries_of_a_killed_export(tmp_path):
    from hwmodel.timeloop import write_folder

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".tl.{int(dead.stdout)}-abc.tmp"
    stale.mkdir()
    (stale / "arch.yaml").write_text("half")
    write_folder({"arch.yaml": "whole"}, tmp_path / "tl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tl"]


def test_integers_too_long_to_print_are_one_line(tmp_path):
    """Python refuses to convert integers of more than 4,300 digits to text: no ValueError escapes."""
    from hwmodel.design import load_design
    from hwmodel.workload import load_workload

    path = tmp_path / "d.yaml"
    path.write_text(_design_yaml(technology_nm=1).replace("technology_nm: 1", "technology_nm: 1" + "0" * 5000))
    raises_one_line(lambda: load_design(path), "cannot be read")
    path.write_text(_design_yaml(clock_mhz=10**400))
    raises_one_line(lambda: load_design(path), "clock_mhz")
    nmw = tmp_path / "w.nmw"
    nmw.write_bytes(workload_zip(manifest([{**dense_layer(pattern="2:4"), "mask": "m.npy"}]),
                                 {"m.npy": npy_header((10**18,) * 300)}))
    raises_one_line(lambda: load_workload(nmw), "about 10^5399 elements")
    nmw.write_bytes(workload_zip(manifest([dense_layer(k=7)]).replace(b'"in_features": 7', b'"in_features": 1' + b"0" * 5000)))
    raises_one_line(lambda: load_workload(nmw), "manifest.json")


# GPU timings: sizes are bounded and a bench row marked ok must carry a usable time.
def _gpu_published(tmp_path, m: str) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("source,gpu,dtype,m,k,n,dense_us,sparse_us,speedup,notes\n"
                    f"x,NVIDIA H100 PCIe,bfloat16,{m},64,64,4.6,5.0,0.9,sq\n")
    return path


def _gpu_bench(tmp_path, dense_us: float) -> Path:
    from hwmodel.gpu import schema

    rows = []
    for impl, t in (("dense", dense_us), ("sparse_cslt", 20.0)):
        row = schema.empty_row()
        row.update(run_id="r", status="ok", error="", kind="gemm", name="square", env="", width=0, dtype="bfloat16",
                   out_dtype="bfloat16", impl=impl, backend="x", m=1024, n=1024, k=1024, graph_median_us=t,
                   eager_median_us=t, device_name="NVIDIA H100 PCIe")
        rows.append(row)
    path = tmp_path / "bench.csv"
    schema.write_rows(path, rows)
    return path


@pytest.mark.parametrize("make, needle", [
    (lambda p: _gpu_published(p, "1000000000000"), "column m: '1000000000000' is over the largest GEMM dimension"),
    (lambda p: _gpu_bench(p, 0.0), "column dense time"),
    (lambda p: _gpu_bench(p, -4.0), "column dense time"),
    (lambda p: _gpu_bench(p, float("nan")), "column dense time"),
    (lambda p: _gpu_bench(p, float("inf")), "column dense time"),
])
def test_gpu_timings_bounds_and_bench_times(tmp_path, make, needle):
    from hwmodel.gpu.measurements import read_measurements

    path = make(tmp_path)
    raises_one_line(lambda: read_measurements(path), needle)


# ----------------------------------------------------------------------------- bitwidths


@pytest.mark.parametrize("args", [
    ["simulate", "--design", "edge_ws", "--bits", "33"],
    ["check", "edge_ws", "--bits", "8,33"],
    ["export-timeloop", "--design", "edge_ws", "--layer", "actor.fc1", "--out", "never_written", "--bits", "33"],
])
def test_one_bitwidth_range_for_every_command(capsys, args):
    """simulate and export-timeloop took --bits up to 64 where check and a sweep config stopped at
    32: one range now, the widest datatype a design can name (a 64-bit request could never run)."""
    from hwmodel.design import DATATYPE_BITS
    from hwmodel.limits import MAX_BITS

    assert MAX_BITS == max(DATATYPE_BITS.values())
    rc, out, err = nmlab_inproc(capsys, *args)
    line = assert_one_line_error(rc, out, err, "33")
    assert "32" in line
    assert not (REPO / "never_written").exists()


# ----------------------------------------------------------------------------- files read back (JSON, logs)

DEEP_JSON = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize("data, needle", [
    (DEEP_JSON.encode(), "nested too deeply"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"format": "nmlab-sweep", "version": 1, "config_file": "c.yaml"}' + b" " * 3000, "NMLAB_MAX_JSON_BYTES"),
    (b'["not", "a", "manifest"]', "expected a JSON object"),
])
def test_unfinished_sweep_folder_reads_sweep_json_bounded(tmp_path, capsys, monkeypatch, data, needle):
    """report on a folder with sweep.json but no table: a 200,000-deep sweep.json was a
    RecursionError traceback, and any size was read whole."""
    if needle == "NMLAB_MAX_JSON_BYTES":
        monkeypatch.setenv("NMLAB_MAX_JSON_BYTES", "2000")
    (tmp_path / "sweep.json").write_bytes(data)
    rc, out, err = nmlab_inproc(capsys, "report", str(tmp_path))
    assert_one_line_error(rc, out, err, "sweep.json", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.json"]


def test_sweep_manifest_read_back_is_bounded(tmp_path, monkeypatch):
    from sweeps import engine

    (tmp_path / "sweep.json").write_text(DEEP_JSON)
    raises_one_line(lambda: engine.read_manifest(tmp_path), "sweep.json", "nested too deeply")
    (tmp_path / "sweep.json").write_text("[1]")
    raises_one_line(lambda: engine.read_manifest(tmp_path), "expected a JSON object")
    monkeypatch.setenv("NMLAB_MAX_JSON_BYTES", "10")
    (tmp_path / "sweep.json").write_text('{"format": "nmlab-sweep"}')
    raises_one_line(lambda: engine.read_manifest(tmp_path), "NMLAB_MAX_JSON_BYTES")


@pytest.mark.parametrize("text, needle", [(DEEP_JSON, "nested too deeply"), ("[1, 2]", "expected a JSON object"),
                                          ("{", "not valid JSON")])
def test_campaign_done_json_damaged_is_one_line(tmp_path, text, needle):
    """A run's done.json: a list was an AttributeError traceback in every campaign command, a deep
    one a RecursionError, and an unreadable one made the finished run train again silently."""
    from rl.campaign import read_done

    (tmp_path / "done.json").write_text(text)
    raises_one_line(lambda: read_done(tmp_path), "done.json", needle)
    assert read_done(tmp_path / "absent") is None


def test_campaign_status_passes_over_a_binary_log(tmp_path):
    """progress.csv / eval.csv of a run are reports: a binary one was a UnicodeDecodeError traceback
    in --status; it now reads as a log with no row that parses."""
    from rl.campaign import run_state

    (tmp_path / "progress.csv").write_bytes(b"step,x\n" + os.urandom(2000).replace(b"\n", b"\xff") + b"\xff")
    (tmp_path / "eval.csv").write_text("step,return_mean\n100,5.0\n")
    s = run_state(tmp_path, 1000)
    assert s["steps_reached"] == 100 and s["last_eval"] == (100, 5.0) and s["state"] == "new"


@pytest.mark.parametrize("data, needle", [
    (b"step,return_mean\n" + b"\xff" * 100, "not UTF-8"),
    (b"step,return_mean\n100,5.0,7\n", "3 cells, the header has 2"),
    (b"step,return_mean\nten,5.0\n", "line 2: step"),
])
def test_resumed_training_log_damaged_is_one_line(tmp_path, data, needle):
    """train --resume rewrites its CSV logs up to the checkpoint's step: a binary log was a
    UnicodeDecodeError traceback, a row with an extra cell a ValueError one from csv.DictWriter."""
    from rl.td3 import CsvLog

    path = tmp_path / "eval.csv"
    path.write_bytes(data)
    raises_one_line(lambda: CsvLog(path, ["step", "return_mean"], keep_upto_step=1000), "eval.csv", needle)
    assert path.read_bytes() == data  # nothing rewritten


def test_resumed_training_log_keeps_rows_up_to_the_step(tmp_path):
    from rl.td3 import CsvLog

    path = tmp_path / "eval.csv"
    path.write_text("step,return_mean\n100,5.0\n200,6.0\n")
    log = CsvLog(path, ["step", "return_mean"], keep_upto_step=150)
    log.fh.close()
    assert path.read_text().splitlines() == ["step,return_mean", "100,5.0"]


@pytest.mark.parametrize("text, needle", [(DEEP_JSON, "nested too deeply"), ("[]", "expected a JSON object"),
                                          ('{"env": "Hopper-v5", "sparsity": "2:4", "seed": "0", "steps": 10}', "seed")])
def test_publish_args_json_damaged_is_one_line(tmp_path, text, needle):
    from rl.publish import run_info

    (tmp_path / "args.json").write_text(text)
    raises_one_line(lambda: run_info(tmp_path), "args.json", needle)


def test_publish_eval_log_damaged_is_one_line(tmp_path):
    from rl.publish import run_info

    (tmp_path / "args.json").write_text('{"env": "Hopper-v5", "sparsity": "2:4", "seed": 0, "steps": 10}')
    (tmp_path / "eval.csv").write_text("step,return_mean\n100,nan\n")
    raises_one_line(lambda: run_info(tmp_path), "eval.csv", "line 2: return_mean")
    (tmp_path / "eval.csv").write_text("step,return_mean\n100,5.5\n")
    assert run_info(tmp_path)["curve"] == [(100, 5.5)]


@pytest.mark.parametrize("text", [DEEP_JSON, "[]", '{"entries": []}', "\xff",
                                  '{"entries": {"k": {"read_pj": "x"}}}',
                                  '{"entries": {"k": {"read_pj": -1, "write_pj": 1, "leakage_mw": 1, "area_mm2": 1, '
                                  '"cacti_nm": 22, "word_bits": 64}}}'])
def test_cacti_cache_damaged_reads_as_empty(tmp_path, monkeypatch, text):
    """The user's CACTI cache is rebuilt entry by entry: a damaged file or entry reads as absent
    (a deep one was a RecursionError traceback, an entry of other keys a TypeError)."""
    from hwmodel import cacti

    path = tmp_path / "cacti_cache.json"
    path.write_text(text)
    assert cacti._entry(cacti._read_json(path).get("k")) is None
    good = {"read_pj": 1.5, "write_pj": 2, "leakage_mw": 0.1, "area_mm2": 0.01, "cacti_nm": 22, "word_bits": 64}
    assert cacti._entry(good) == cacti.SramCost(**good)


# ----------------------------------------------------------------------------- Parquet tables


def _points(tmp_path: Path, table) -> Path:
    import pyarrow.parquet as pq

    tmp_path.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, tmp_path / "points.parquet")
    return tmp_path


def test_parquet_row_count_over_the_limit_refused_from_the_footer(tmp_path, capsys, monkeypatch):
    import pyarrow as pa

    out = _points(tmp_path / "s", pa.table({"point_id": [f"{i:016x}" for i in range(50)]}))
    monkeypatch.setenv("NMLAB_MAX_SWEEP_POINTS", "10")
    rc, o, e = nmlab_inproc(capsys, "report", str(out))
    assert_one_line_error(rc, o, e, "points.parquet: rows: 50 is over the limit", "NMLAB_MAX_SWEEP_POINTS")


def test_parquet_huge_string_column_refused_from_its_declared_size(tmp_path, capsys, monkeypatch):
    """A 1 MB string cell compresses to almost nothing on disk; the footer's uncompressed size
    is what it costs to read, and is checked before the data is."""
    import pyarrow as pa

    out = _points(tmp_path / "s", pa.table({"point_id": ["a" * (1 << 20)] * 4}))
    assert (out / "points.parquet").stat().st_size < 100_000
    monkeypatch.setenv("NMLAB_MAX_TABLE_BYTES", str(1 << 20))
    rc, o, e = nmlab_inproc(capsys, "report", str(out))
    assert_one_line_error(rc, o, e, "uncompressed bytes", "NMLAB_MAX_TABLE_BYTES")


def test_parquet_footer_claiming_a_huge_length_is_one_line(tmp_path, capsys):
    import pyarrow as pa

    out = _points(tmp_path / "s", pa.table({"point_id": ["0" * 16]}))
    path = out / "points.parquet"
    data = bytearray(path.read_bytes())
    data[-8:-4] = (0xFFFFFFF0).to_bytes(4, "little")  # footer length: about 4 GiB
    path.write_bytes(bytes(data))
    rc, o, e = nmlab_inproc(capsys, "report", str(out))
    assert_one_line_error(rc, o, e, "points.parquet: unreadable")


def test_parquet_footer_strings_are_bounded_while_decoding(tmp_path, capsys):
    """17 MB of key-value metadata in the footer: over the fixed Thrift string bound (16 MiB)."""
    import pyarrow as pa

    from hwmodel.limits import PARQUET_THRIFT_STRING_BYTES

    t = pa.table({"point_id": ["0" * 16]}).replace_schema_metadata({"x": "y" * (PARQUET_THRIFT_STRING_BYTES + 1000)})
    out = _points(tmp_path / "s", t)
    rc, o, e = nmlab_inproc(capsys, "report", str(out))
    assert_one_line_error(rc, o, e, "points.parquet: unreadable")


def test_a_sweep_part_over_the_limits_is_set_aside_on_resume(tmp_path, monkeypatch, capsys):
    """A resume reads back the part files: one whose footer declares too much is set aside
    and its points evaluated again (as a damaged one), never a traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sweeps import store

    parts = store.parts_dir(tmp_path)
    parts.mkdir(parents=True)
    pq.write_table(pa.table({"point_id": [f"{i:016x}" for i in range(3)]}), parts / "part-000001.parquet")
    pq.write_table(pa.table({"point_id": [f"{i:016x}" for i in range(50)]}), parts / "part-000002.parquet")
    monkeypatch.setenv("NMLAB_MAX_SWEEP_POINTS", "10")
    ids = store.done_ids(tmp_path)
    assert len(ids) == 3
    assert (parts / "part-000002.bad").is_file()
    assert "setting aside unreadable part-000002.parquet" in capsys.readouterr().err


def test_gpu_bench_csv_counted_back_bounded(tmp_path, monkeypatch):
    """A restarted bench run counts the rows it wrote: a binary file was a UnicodeDecodeError traceback."""
    from hwmodel.gpu import schema

    path = tmp_path / "bench.csv"
    path.write_bytes(b"status\nok\n\xff\xfe")
    raises_one_line(lambda: schema.count_status(path, "ok"), "bench.csv", "not UTF-8")
    path.write_text("status\nok\nfailed\nok\n")
    assert schema.count_status(path, "ok") == 2
    monkeypatch.setenv("NMLAB_MAX_CSV_BYTES", "5")
    raises_one_line(lambda: schema.count_status(path, "ok"), "NMLAB_MAX_CSV_BYTES")


@pytest.mark.parametrize("data", [b"\xff\xfe" * 100, alias_bomb().encode(), b"sets: [1, 2]"])
def test_report_gpu_params_provenance_read_bounded(tmp_path, monkeypatch, data):
    """`gpu fit --out` rewrites the default parameter file; the report's provenance note read it
    with a bare read_text (a binary file was a UnicodeDecodeError traceback). It is optional: none."""
    from hwmodel.gpu import params
    from reports import gpu_model

    path = tmp_path / "gpu_params.yaml"
    path.write_bytes(data)
    monkeypatch.setattr(params, "default_path", lambda: path)
    assert gpu_model._params_provenance() == {}


def test_parquet_dictionary_bomb_counted_before_it_is_decoded(tmp_path):
    """One 16 MiB string in 40 rows: dictionary-encoded it is 0.8 MB on disk and declares 16.8 MB
    uncompressed, but decodes to 671 MB (640 MiB). Counted from the dictionary first; the report's
    process stays far below the decoded size (it read 2.7 GB for a 64 MiB string before)."""
    import pyarrow as pa

    out = _points(tmp_path / "s", pa.table({"point_id": ["a" * (16 << 20)] * 40}))
    rc, o, e, _ = nmlab_subprocess("report", str(out), env={"NMLAB_MAX_TABLE_BYTES": str(400 << 20)})
    assert_one_line_error(rc, o, e, "decoded bytes: 671,0", "NMLAB_MAX_TABLE_BYTES")


def test_read_parquet_gives_plain_columns(tmp_path):
    import pyarrow as pa

    from hwmodel.limits import read_parquet

    t = pa.table({"a": ["x", None, "y"], "b": [1.0, 2.0, None], "c": pa.array([None, None, None], pa.string())})
    out = _points(tmp_path / "s", t)
    assert read_parquet(out / "points.parquet", "t").equals(t)


def test_a_sweep_part_that_decodes_past_the_limit_is_set_aside_on_resume(tmp_path, monkeypatch, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sweeps import store

    parts = store.parts_dir(tmp_path)
    parts.mkdir(parents=True)
    pq.write_table(pa.table({"point_id": ["0" * 16]}), parts / "part-000001.parquet")
    pq.write_table(pa.table({"point_id": ["f" * (1 << 20)] * 40}), parts / "part-000002.parquet")
    monkeypatch.setenv("NMLAB_MAX_TABLE_BYTES", str(8 << 20))
    assert len(store.done_ids(tmp_path)) == 1
    assert (parts / "part-000002.bad").is_file()
    assert "decoded bytes" in capsys.readouterr().err


DESIGN_YAML = "name: d\nclock_mhz: 500\ncompute: {}\nstorage: []\n"
SWEEP_YAML = "version: 1\nworkloads: bundled\nbits: [8]\n"
CAMPAIGN_YAML = "version: 1\nenvs: [Hopper-v5]\nagents: ['2:4']\nseeds: [0]\nsteps: 1000\n"
REQUIREMENTS_YAML = "version: 1\nlatency_budget: 1ms\n"


@pytest.mark.parametrize("argv,text,kind", [
    (["simulate", "--design"], SWEEP_YAML, "a sweep config (for nmlab sweep)"),
    (["check", "--latency-budget", "1ms", "--design"], CAMPAIGN_YAML, "a campaign config (for nmlab campaign)"),
    (["sweep", "--out", "{tmp}/o"], DESIGN_YAML, "an accelerator design (for simulate, check or a sweep's designs)"),
    (["sweep", "--out", "{tmp}/o"], REQUIREMENTS_YAML, "check requirements (for nmlab check --requirements)"),
    (["campaign", "--status", "--out", "{tmp}/o"], SWEEP_YAML, "a sweep config (for nmlab sweep)"),
    (["check", "edge_ws", "--requirements"], DESIGN_YAML,
     "an accelerator design (for simulate, check or a sweep's designs)"),
    (["sweep", "--out", "{tmp}/o"], GPU_PARAMS_TEXT,
     "a GPU parameter file (what nmlab gpu fit --out writes; a GPU spec names it)"),
])
def test_a_yaml_file_of_another_kind_is_named_for_what_it_is(tmp_path, capsys, argv, text, kind):
    # A sweep config given as a design said only "bits: unknown key (allowed: clock_mhz, ...)", a
    # design given as a sweep config "clock_mhz: unknown key (known: bits, ...)".
    _, err = cli_refuses_file(tmp_path, capsys, argv, "given.yaml", text)
    assert len(err) == 1 and ": unknown key (" in err[0] and err[0].endswith(f"; the file looks like {kind}"), err
