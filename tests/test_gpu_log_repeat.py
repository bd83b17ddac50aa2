"""benchmarks/gpu_log_repeat.py: the source's search-log times and the reader behind them."""


import numpy as np
import pytest

from hwmodel.errors import NmlabError
from hwmodel.gpu.measurements import bundled_files
from hwmodel.gpu.validate import load_blocks
from tests.conftest import load_benchmark

HEADER = "gpu,dtype,kind,m,k,n,us,source\n"


@pytest.fixture(scope="module")
def mod():
    return load_benchmark("gpu_log_repeat")


def test_logs_are_a_second_run_of_the_published_shapes(mod):
    """Every logged cell pairs with published rows, and the two runs agree in the median: a
    transposed (k, n), a wrong time column or a cell filed under the wrong dtype would not."""
    logs = mod.read_log_times()
    cells = {(g, d) for g, d, _ in logs}
    assert {k for _, _, k in logs} == set(mod.KINDS)
    assert all((g, d, k) in logs for g, d in cells for k in mod.KINDS)
    blocks = {b.spec.name: b.meas for b in load_blocks(bundled_files())}
    for gpu, dtype in sorted(cells):
        meas = blocks[gpu]
        rows = np.flatnonzero(meas.dtype == dtype)
        for kind, published in (("dense", meas.dense_us), ("sparse", meas.sparse_us)):
            log = mod.logged(logs, gpu, dtype, kind, meas, rows)
            paired = np.isfinite(log)
            assert paired.sum() >= 100, (gpu, dtype, kind)
            ratio = np.median(published[rows][paired] / log[paired])
            assert abs(ratio - 1) < 0.02, (gpu, dtype, kind, ratio)


@pytest.mark.parametrize("body, message", [
    ("h100_pcie,int8,dense,64,2048,2048,10.2,f.csv\nh100_pcie,int8,dense,64,2048,2048,10.3,f.csv\n", "given twice"),
    ("h100_pcie,int8,dense,64,2048,2048,0,f.csv\n", "not a positive number"),
    ("h100_pcie,int8,dense,64,2048,2048,nan,f.csv\n", "not a positive number"),
    ("h100_pcie,int8,both,64,2048,2048,10.2,f.csv\n", "not dense or sparse"),
    ("h100_pcie,int8,dense,64.5,2048,2048,10.2,f.csv\n", "line 2"),
])
def test_bad_rows_are_refused(mod, tmp_path, body, message):
    path = tmp_path / "logs.csv"
    path.write_text(HEADER + body)
    with pytest.raises(NmlabError, match=message):
        mod.read_log_times(path)


def test_wrong_columns_are_refused(mod, tmp_path):
    path = tmp_path / "logs.csv"
    path.write_text("gpu,dtype,kind,m,n,k,us,source\n")
    with pytest.raises(NmlabError, match="columns"):
        mod.read_log_times(path)


def test_repeat_statistics(mod):
    a, b = np.array([1.0, 1.3, 0.7]), np.array([1.0, 1.0, 1.0])
    assert mod.mape_pct(a, b) == pytest.approx(20.0)
    assert mod.far(a, b) == 2  # 1.3 and 0.7 are more than 20% apart, 1.0 is not
    assert np.isnan(mod.mape_pct(np.array([]), np.array([])))
