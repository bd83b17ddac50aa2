"""SCALE-Sim v3 side by side with our model: compute cycles must be equal on every shape.

SCALE-Sim costs about 0.1 ms per simulated cycle, so the shapes are small and each array
size's shapes go through SCALE-Sim in one run (two: dense and N:M). One test per array size
keeps pytest-xdist from running the same SCALE-Sim job on both workers.
"""

from __future__ import annotations

import sys

import pytest

from hwmodel.errors import NmlabError
from hwmodel.peers.scalesim import Gemm, parse_array, parse_gemm, run_scalesim, ws_compute_cycles_reference
from hwmodel.sparsity import meta_bits_per_value

# (array rows, cols) -> GEMM shapes "M,K,N[,n:m]" (M = batch rows, K = reduction, N = outputs).
SHAPES: dict[tuple[int, int], list[str]] = {
    # SCALE-Sim's default array; TD3 shapes (Hopper obs 11, act 3; HalfCheetah obs 17, act 6).
    (32, 32): [
        "1,11,256", "1,256,256", "1,256,3", "256,14,256", "256,256,1", "256,256,256",
        "1,256,256,2:4", "256,256,256,2:4", "256,14,256,2:4", "1,11,256,1:4", "256,23,256,1:8",
        "1,376,256,4:8", "1,256,256,2:8", "256,256,1,1:2",
    ],
    # Odd sizes: M > R, K < R, N < C, partial folds on both sides.
    (8, 8): [
        "3,5,7", "9,13,11", "17,8,8", "1,3,20", "12,7,5", "10,33,9",
        "9,13,11,2:4", "9,30,10,1:2", "6,17,9,4:8", "5,19,12,2:8", "7,21,6,1:8", "11,40,13,1:4",
    ],
    # Non-square arrays, and partial last N:M groups that cross a fold boundary (K % m < n).
    (4, 12): ["20,9,30", "5,5,5", "33,17,2", "20,18,30,2:4", "8,9,13,4:8", "3,10,12,2:8"],
    (5, 4): ["2,9,4,2:4", "2,9,4,4:8", "3,26,7,3:8", "4,6,9", "1,1,1", "2,11,3,1:2"],
    (16, 8): ["64,100,40", "64,100,40,2:4", "64,100,40,1:8", "2,50,17,4:8"],
}


@pytest.fixture(scope="module")
def scalesim_available():
    # A declared test dependency (pyproject [test]): if it is missing the SCALE-Sim comparison
    # must fail, not skip and leave the suite green.
    import scalesim  # noqa: F401


# --- the SCALE-Sim driver itself --------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("1,2", "expected M,K,N"),
    ("1,2,3,2:4,9", "expected M,K,N"),
    ("0,4,4", "M must be >= 1"),
    ("4,x,4", "K must be a positive integer"),
    ("4,4,4,5:4", "pattern"),
    ("4,4,4,unstructured", "pattern"),
    # Past the batch and layer limits (docs/limits.md): SCALE-Sim was run into a MemoryError.
    ("99999999999,4,4", "M: 99,999,999,999 is over the limit of 16,777,216 batch rows"),
    ("1,100000,100000", "K x N: 10,000,000,000 is over the limit of 16,777,216 weights of one workload layer"),
])
def test_parse_gemm_errors_name_the_value(text, message):
    with pytest.raises(NmlabError, match=message) as err:
        parse_gemm(text)
    assert repr(text) in str(err.value) and "\n" not in str(err.value)


def test_parse_gemm_and_array():
    g = parse_gemm("256, 14, 256, 2:4")
    assert (g.m, g.k, g.n, str(g.pattern)) == (256, 14, 256, "2:4")
    assert str(parse_gemm("1,2,3,dense").pattern) == "dense"
    assert str(parse_gemm("1,2,3,4:4").pattern) == "dense"
    assert parse_array("32, 16") == (32, 16)
    for bad in ("32", "32,0", "a,4", "1,2,3"):
        with pytest.raises(NmlabError, match="--array"):
            parse_array(bad)


@pytest.mark.parametrize("k, pattern, kept", [
    (16, "2:4", 8), (9, "2:4", 5), (11, "2:4", 6), (9, "4:8", 5), (17, "3:8", 7), (7, "dense", 7),
])
def test_kept_reduction_drops_padding(k, pattern, kept):
    assert parse_gemm(f"1,{k},1,{pattern}").kept_k == kept


def test_missing_scalesim_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "scalesim.scale_sim", None)  # makes the import fail
    with pytest.raises(NmlabError, match="scalesim is not installed"):
        run_scalesim(["1,4,4"], 4, 4)


def test_driver_reads_scalesim_reports(scalesim_available):
    """Cycles, accesses and metadata land in the right fields (one small mixed run)."""
    shapes = ["2,9,4,2:4", "2,9,4,4:8", "4,9,8", "3,20,5,1:4"]
    layers = run_scalesim(shapes, 5, 4)
    assert [layer.gemm.label() for layer in layers] == shapes
    for layer in layers:
        g = layer.gemm
        # SCALE-Sim's WS schedule, which it reports one cycle short.
        assert layer.compute_cycles == ws_compute_cycles_reference(g, 5, 4) - 1
        assert layer.stall_cycles == 0              # CALC bandwidth mode never stalls
        assert layer.sram_filter_reads == g.kept_k * g.n
        row_folds, col_folds = -(-g.kept_k // 5), -(-g.n // 4)
        # Partial sums are written once per reduction fold; each ifmap row is re-read per
        # column fold (and m/n times under N:M: SCALE-Sim assumes no broadcast).
        assert layer.sram_ofmap_writes == g.m * g.n * row_folds
        reread = g.pattern.m / g.pattern.n if g.pattern.is_nm else 1
        assert layer.sram_ifmap_reads == pytest.approx(g.m * g.kept_k * col_folds * reread)
        if g.pattern.is_nm:
            assert layer.metadata_bits == g.kept_k * g.n * meta_bits_per_value(g.pattern.m)
        else:
            assert layer.metadata_bits is None
    # K=9 under 2:4 keeps 5 rows: one fold of a 5-row array, not two.
    assert layers[0].compute_cycles == 13


def test_driver_rejects_sparse_non_ws(scalesim_available):
    with pytest.raises(NmlabError, match="need dataflow 'ws'"):
        run_scalesim([Gemm(1, 8, 8, parse_gemm("1,8,8,2:4").pattern)], 4, 4, dataflow="os")


# --- our model against SCALE-Sim ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("array", list(SHAPES), ids=lambda a: f"{a[0]}x{a[1]}")
def test_compute_cycles_equal_scalesim(scalesim_available, array):
    """Dense and layer-wise N:M: our stall-free cycles == SCALE-Sim's schedule on every shape."""
    from hwmodel.peers.crosscheck import crosscheck

    rows = crosscheck(SHAPES[array], *array)
    assert len(rows) == len(SHAPES[array])
    # Compared here, not through the product's own ``equal``: a lenient ``equal`` (>=) let an
    # off-by-one in our fold count through.
    different = [(r.gemm.label(), r.scalesim.compute_cycles + 1, r.ours.compute_cycles) for r in rows
                 if r.ours.compute_cycles != r.scalesim.compute_cycles + 1]
    assert not different, f"(shape, SCALE-Sim + 1, ours) differ on a {array[0]}x{array[1]} array: {different}"
    for r in rows:
        assert r.equal and r.to_dict()["equal"] is True
        # The sparse layers really ran sparse on our side (the mask is SCALE-Sim's n-of-m).
        assert r.ours.hw_pattern == str(r.gemm.pattern)
        # Stalls only ever add cycles.
        assert r.ours.total_cycles >= r.ours.compute_cycles


@pytest.mark.parametrize("ours, equal", [(100, True), (99, False), (101, False), (200, False)])
def test_a_row_is_equal_only_when_ours_is_scalesims_report_plus_one(ours, equal):
    """``equal`` (the crosscheck table's verdict and its "N/M shapes equal" line) is exact: SCALE-Sim
    reports 99 for a 100-cycle schedule; 99, 101 or twice as many are different."""
    from types import SimpleNamespace

    from hwmodel.peers.crosscheck import CrosscheckRow

    row = CrosscheckRow(gemm=None, scalesim=SimpleNamespace(compute_cycles=99), ours=SimpleNamespace(compute_cycles=ours))
    assert row.scalesim_schedule_cycles == 100
    assert row.equal is equal


def test_scalesim_mask_is_first_n_of_every_m():
    from hwmodel.peers.crosscheck import scalesim_mask

    mask = scalesim_mask(parse_gemm("1,10,3,2:4"))
    assert mask.shape == (3, 10)
    assert mask[0].tolist() == [1, 1, 0, 0, 1, 1, 0, 0, 1, 1]
    assert (mask == mask[0]).all()
    assert scalesim_mask(parse_gemm("1,10,3")) is None


def test_equivalent_design_resizes_and_rejects_non_ws():
    from hwmodel.peers.crosscheck import equivalent_design

    d = equivalent_design(8, 4)
    assert (d.compute.rows, d.compute.cols, d.compute.dataflow) == (8, 4, "ws")
    with pytest.raises(NmlabError, match="systolic ws"):
        equivalent_design(8, 4, design="stc_hbm")


def test_design_our_model_cannot_run_fails_before_scalesim(tmp_path, monkeypatch):
    """docs/crosscheck.md: bad values fail before anything runs. A --design without an 8-bit
    datatype (or an SRAM CACTI cannot model) failed only in our model, after SCALE-Sim's run."""
    import yaml

    from hwmodel.io import data_path
    from hwmodel.peers import crosscheck as cc

    def no_scalesim(*args, **kwargs):
        raise AssertionError("SCALE-Sim ran before the design was checked")

    monkeypatch.setattr(cc, "run_scalesim", no_scalesim)
    monkeypatch.setenv("NMLAB_CACHE_DIR", str(tmp_path))
    base = yaml.safe_load(data_path("designs", "scalesim_default_ws.yaml").read_text())
    fp16 = {**base, "name": "fp16only", "compute": {**base["compute"], "datatypes": {"fp16": 1}}}
    big = {**base, "name": "bigsram", "storage": [dict(s) for s in base["storage"]]}
    big["storage"][1].update(capacity_bytes=1 << 31, banks=1)
    for data, needle in ((fp16, "no datatype of 8 bits"), (big, "capacity_bytes")):
        path = tmp_path / f"{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(NmlabError, match=needle):
            cc.crosscheck(["1,8,8"], 4, 4, design=str(path))


def test_cli_bad_values_are_one_line_exit_2(capsys):
    from hwmodel.cli import main

    for argv in (["--gemm", "1,2"], ["--gemm", "1,2,3", "--array", "4"], ["--gemm", "1,2,3,3:2"],
                 ["--gemm", "1,0,3"], ["--gemm", "1,2,3", "--array", "0,4"]):
        assert main(["crosscheck", "scalesim", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("nmlab crosscheck scalesim: error:"), err


def test_array_is_held_to_the_design_pe_limit(monkeypatch, capsys):
    """--array 8192,8192 (2^26 PEs, over NMLAB_MAX_PES) bypassed the limit every design has and
    ran SCALE-Sim for 167 s at 9.5 GB; it is refused before any work, and the limit overrides."""
    from hwmodel.cli import main

    assert main(["crosscheck", "scalesim", "--gemm", "1,8,8", "--array", "8192,8192"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--array" in err[0] and "NMLAB_MAX_PES" in err[0], err
    monkeypatch.setenv("NMLAB_MAX_PES", "100")
    with pytest.raises(NmlabError, match="NMLAB_MAX_PES"):
        parse_array("16,16")
    assert parse_array("10,10") == (10, 10)


def test_cli_json(scalesim_available, capsys):
    import json

    from hwmodel.cli import main

    assert main(["crosscheck", "scalesim", "--gemm", "3,10,6", "4,16,5,2:4", "--array", "4,4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["array"] == [4, 4] and len(out["shapes"]) == 2
    for s in out["shapes"]:
        assert s["equal"] == (s["ours_compute_cycles"] == s["scalesim_compute_cycles_reported"] + 1)
        assert s["ours_total_cycles"] >= s["ours_compute_cycles"]
    assert out["shapes"][1]["gemm"]["pattern"] == "2:4"


@pytest.mark.slow
def test_os_dataflow_differs_by_output_drain(scalesim_available):
    """Output stationary (outside the WS contract): our schedule drains each fold's R x C outputs
    out of the array (R cycles) and SCALE-Sim does not, so ours = SCALE-Sim + 1 + R x folds."""
    import dataclasses

    from hwmodel.cycles import compute_cycles
    from hwmodel.peers.crosscheck import equivalent_design

    shapes = ["3,5,7", "9,13,11", "17,8,8", "1,3,20", "12,7,5", "20,9,30"]
    for rows, cols in ((8, 8), (4, 12)):
        d = equivalent_design(rows, cols)
        d = dataclasses.replace(d, compute=dataclasses.replace(d.compute, dataflow="os"))
        for g, peer in zip(map(parse_gemm, shapes), run_scalesim(shapes, rows, cols, dataflow="os")):
            folds = -(-g.m // rows) * -(-g.n // cols)
            ours = compute_cycles(d, g.m, g.k, g.n, "dense", 8)
            assert ours == peer.compute_cycles + 1 + rows * folds, (rows, cols, g.label())


def test_cli_runs_the_designs_own_array_and_says_when_the_hardware_differs(scalesim_available, capsys):
    """--design without --array runs the design's own array (edge_ws: 16 x 16), not 32 x 32, and
    says so; an n:m shape that the design runs as another pattern (edge_ws has fixed 2:4 and
    1:4: a 2:8 mask runs 2:4, K' 32 against SCALE-Sim's layer-wise 16) is marked as run on
    different hardware, not just DIFFERENT. A dense shape stays equal."""
    import json

    from hwmodel.cli import main

    argv = ["crosscheck", "scalesim", "--gemm", "4,20,5", "4,64,5,2:8", "--design", "edge_ws"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("array 16x16 (the design's own), design edge_ws"), lines[0]
    dense, sparse = lines[2], lines[3]
    assert dense.split()[-1] == "equal", dense
    assert sparse.split()[-4] == "2:4" and "DIFFERENT, other hardware" in sparse, sparse
    assert any("SCALE-Sim ran 2:8 layer-wise" in x and "edge_ws ran 2:4" in x for x in lines[4:]), lines
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["array"] == [16, 16] and out["array_source"] == "design"
    assert [s["same_hardware"] for s in out["shapes"]] == [True, False]
    assert main([*argv[:-2], "--array", "8,8", "--design", "edge_ws"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(
        "array 8x8 (--array; design edge_ws's own is 16x16), design edge_ws")
