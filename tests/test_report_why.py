"""reports/why.py: the limiter, energy share, SRAM cliff and skipped-MAC share of a row, by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from reports.why import limiters, skipped_share


def _rows():
    base = dict(env="Hopper-v5", design="edge_ws", scenario="inference", batch=1, bits=8, mask_source="trained",
                latency_s=1e-6, sram_bytes=65536.0, energy_dram_pj=0.0)
    return pd.DataFrame([
        # dense: 200 cycles, 150 of them DRAM stalls; its 100 KB of weights miss the 64 KB SRAM
        {**base, "pattern": "dense", "cycles": 200.0, "stall_cycles_dram": 150.0, "stall_cycles_metadata": 0.0,
         "energy_pj": 1000.0, "energy_mac_pj": 200.0, "energy_dram_pj": 800.0, "fits_in_sram": False,
         "model_bytes": 100e3, "macs_issued": 100.0, "speedup_vs_dense": 1.0},
        # 2:4: 100 cycles, 60 waiting for metadata and 10 for DRAM; fits; issues a quarter of dense's MACs
        {**base, "pattern": "2:4", "cycles": 100.0, "stall_cycles_dram": 10.0, "stall_cycles_metadata": 60.0,
         "energy_pj": 400.0, "energy_mac_pj": 300.0, "energy_dram_pj": 100.0, "fits_in_sram": True,
         "model_bytes": 60e3, "macs_issued": 25.0, "speedup_vs_dense": 2.0},
        # 1:8: issues every dense MAC; misses the SRAM as dense does
        {**base, "pattern": "1:8", "cycles": 200.0, "stall_cycles_dram": 20.0, "stall_cycles_metadata": 30.0,
         "energy_pj": 900.0, "energy_mac_pj": 450.0, "energy_dram_pj": 450.0, "fits_in_sram": False,
         "model_bytes": 90e3, "macs_issued": 100.0, "speedup_vs_dense": 1.0},
    ])


def test_limiters_by_hand():
    lim = limiters(_rows())
    # dense: 150 of 200 cycles are DRAM stalls; 2:4: compute is 100 - 10 - 60 = 30, metadata 60 of 100;
    # 1:8: compute 150 of 200.
    assert lim.latency_limiter.tolist() == ["DRAM bandwidth", "metadata", "compute"]
    assert lim.latency_share.tolist() == pytest.approx([0.75, 0.6, 0.75])
    assert lim.energy_top.tolist() == ["dram", "mac", "mac"]
    assert lim.energy_top_share.tolist() == pytest.approx([0.8, 0.75, 0.5])
    assert lim.sram.tolist() == ["misses", "fits, dense misses", "misses"]
    assert lim.skips_macs.tolist() == [False, True, False]
    assert lim.why[1].startswith("SRAM cliff: these weights (60 KB) fit the 65.5 KB SRAM, dense (100 KB) does not")
    assert "80% of dense's energy" in lim.why[1]
    assert lim.why[0].startswith("DRAM-bound: 150 of 200 cycles are DRAM stalls")


def test_sram_cliff_the_other_way():
    df = _rows()
    df.loc[0, "fits_in_sram"] = True        # dense fits, the 1:8 row (with its metadata) misses
    lim = limiters(df)
    assert lim.sram.tolist() == ["fits", "fits", "misses, dense fits"]
    assert lim.why[2].startswith("SRAM cliff: these weights with their metadata (90 KB) miss the 65.5 KB SRAM")


def test_skipped_share_by_hand():
    assert skipped_share(25.0, 100.0) == 0.75
    assert skipped_share(100.0, 100.0) == 0.0
    assert skipped_share(120.0, 100.0) == 0.0
    assert skipped_share(None, 100.0) != skipped_share(None, 100.0)  # NaN
