"""Bench CSV schema (round trip, version checks, docs) and the timing statistics."""

import random
from pathlib import Path

import numpy as np
import pytest

from hwmodel.errors import NmlabError
from hwmodel.gpu import schema, stats

DOCS = Path(__file__).resolve().parents[1] / "docs" / "gpu.md"


def _row(**kw):
    row = schema.empty_row()
    row.update(run_id="r1", status="ok", error="", kind="gemm", name="square", env="", width=0,
               dtype="bfloat16", out_dtype="bfloat16", impl="dense", backend="cublas", m=256, n=256, k=256,
               m_pad=256, n_pad=256, k_pad=256, alg_id=-1, eager_median_us=12.5, eager_reps=100,
               graph_median_us=4.25, check_ok=True, max_rel_err=1.5e-3, flops=2 * 256**3,
               device_name="NVIDIA H200", mem_bytes=150_000_000_000)
    row.update(kw)
    return row


def test_round_trip_types_and_empty_cells(tmp_path):
    rows = [_row(), _row(impl="sparse_cslt", check_ok=False, graph_median_us=None,
                         error="line one\nline two", graph_error="capture failed")]
    path = tmp_path / "b.csv"
    assert schema.write_rows(path, rows) == 2
    back = schema.read_rows(path)
    assert back[0]["m"] == 256 and isinstance(back[0]["m"], int)
    assert back[0]["eager_median_us"] == 12.5 and back[0]["check_ok"] is True
    assert back[0]["mem_bytes"] == 150_000_000_000
    assert back[1]["graph_median_us"] is None and back[1]["check_ok"] is False
    assert back[1]["error"] == "line one line two"  # one line per cell, whatever the exception said
    assert back[0]["sm_clock_mhz"] is None
    assert set(back[0]) == set(schema.FIELDNAMES)
    assert not (tmp_path / "b.csv.partial").exists()


def test_writer_leaves_partial_file_until_closed(tmp_path):
    w = schema.RowWriter(tmp_path / "x.csv")
    w.write(_row())
    assert (tmp_path / "x.csv.partial").exists() and not (tmp_path / "x.csv").exists()
    assert len((tmp_path / "x.csv.partial").read_text().splitlines()) == 2  # flushed as it goes
    w.close()
    assert len(schema.read_rows(tmp_path / "x.csv")) == 1
    with pytest.raises(KeyError):
        schema.RowWriter(tmp_path / "y.csv").write({"not_a_column": 1})


def test_reader_rejects_other_versions_and_foreign_files(tmp_path):
    p = tmp_path / "v9.csv"
    schema.write_rows(p, [_row(schema_version=9)])
    with pytest.raises(NmlabError, match="schema_version: 9 is not supported"):
        schema.read_rows(p)
    q = tmp_path / "other.csv"
    q.write_text("a,b\n1,2\n")
    with pytest.raises(NmlabError, match="missing columns"):
        schema.read_rows(q)
    r = tmp_path / "bad.csv"
    schema.write_rows(r, [_row(m="many")])
    with pytest.raises(NmlabError, match="column m: 'many' is not a int"):
        schema.read_rows(r)
    with pytest.raises(NmlabError, match="no such file"):
        schema.read_rows(tmp_path / "absent.csv")


def test_measured_time_only_for_ok_rows():
    assert schema.measured_time_us(_row(), "graph") == 4.25
    assert schema.measured_time_us(_row(status="error"), "graph") is None
    assert schema.measured_time_us(_row(graph_median_us=None), "graph") is None


def test_docs_list_every_column():
    text = DOCS.read_text()
    assert f"version {schema.SCHEMA_VERSION}" in text
    for name in schema.FIELDNAMES:
        assert f"`{name}`" in text, name


def test_percentiles_match_numpy():
    rng = random.Random(1)
    for n in (1, 2, 5, 100, 101):
        xs = [rng.lognormvariate(2, 0.5) for _ in range(n)]
        for q in (0, 10, 50, 90, 100):
            assert stats.percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))
    s = stats.summarize([5.0, 1.0, 3.0, 100.0])
    assert s == {"median_us": 4.0, "p10_us": pytest.approx(1.6), "p90_us": pytest.approx(71.5), "reps": 4}
    with pytest.raises(ValueError):
        stats.median([])


def test_reps_and_rotation():
    assert stats.choose_reps(5.0) == 200          # short calls: capped
    assert stats.choose_reps(10_000.0) == 10      # long calls: floor
    assert stats.choose_reps(300.0, target_us=30_000.0) == 100
    l2 = 50 * 2**20
    for set_bytes in (10**6, 3 * 10**7, 10**9):
        n = stats.rotation_sets(set_bytes, l2)
        assert n >= 2
        assert n * set_bytes >= 2 * l2 or n == 256  # the data exceed L2 unless capped
    assert stats.rotation_sets(100, l2) == 256
