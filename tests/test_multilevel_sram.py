"""What an SRAM level outside the innermost one does (docs/hwmodel.md, "Several SRAM levels")."""

import yaml

from hwmodel.simulate import simulate
from hwmodel.workload import bundled_workloads

DESIGN = {
    "version": 1, "name": "twolevel", "technology_nm": 22, "clock_mhz": 500,
    "compute": {"kind": "systolic", "dataflow": "ws", "rows": 16, "cols": 16, "datatypes": {"int8": 1},
                "accumulator_bits": 24},
    "sparsity": {"support": "fixed", "patterns": ["2:4", "1:4"], "metadata_bits_per_cycle": 32},
    "storage": [
        {"name": "DRAM", "class": "dram", "type": "LPDDR4", "bandwidth_gb_s": 12.8, "latency_ns": 100},
        {"name": "L2", "class": "sram", "holds": ["weights", "inputs", "outputs", "metadata"],
         "capacity_bytes": 1 << 20, "word_bits": 256, "banks": 8},
        {"name": "L1W", "class": "sram", "holds": ["weights", "metadata"], "capacity_bytes": 16384,
         "word_bits": 128, "banks": 2},
        {"name": "L1A", "class": "sram", "holds": ["inputs", "outputs"], "capacity_bytes": 16384,
         "word_bits": 128, "banks": 2},
    ],
}


def _run(tmp_path, l2_bytes, batch):
    d = {**DESIGN, "storage": [dict(s) for s in DESIGN["storage"]]}
    d["storage"][1]["capacity_bytes"] = l2_bytes
    path = tmp_path / f"l2_{l2_bytes}.yaml"
    path.write_text(yaml.safe_dump(d))
    wl = next(w for w in sorted(bundled_workloads()) if "2of4" in w.name)
    return simulate(str(wl), str(path), batch=batch, bits=8, scenario="inference")


def test_an_outer_sram_level_adds_capacity_for_residency_and_leakage_only(tmp_path):
    small, big = _run(tmp_path, 1 << 20, 256), _run(tmp_path, 2 << 20, 256)
    # The 2:4 weights (tens of KB) overflow the 16 KB L1W but fit L1W + L2: resident, no weight DRAM reads.
    assert small.total.bytes_weights > 16384 and small.extra["weights_resident"]
    # A larger L2: the same cycles, reads, writes and DRAM traffic; only its leakage grows.
    for f in ("cycles", "bits_sram_read", "bits_sram_write", "bits_dram_read", "energy_sram_pj"):
        assert getattr(small.total, f) == getattr(big.total, f), f
    assert big.total.energy_leakage_pj > small.total.energy_leakage_pj


def test_activations_over_the_innermost_input_sram_spill_to_dram_past_an_l2(tmp_path):
    # Batch 256: an input (256 x obs bytes) or hidden activation (256 x 256 bytes) overflows the
    # 16 KB L1A though the 1 MB L2 holds inputs: it goes to DRAM. Batch 1 stays on chip.
    one, many = _run(tmp_path, 1 << 20, 1), _run(tmp_path, 1 << 20, 256)
    assert many.extra["weights_resident"]
    spilled = [r for r in many.layers if r.figures.bits_dram_write > 0 and not r.name.endswith("fc3")]
    assert spilled, "no hidden activation spilled"
    assert all(r.figures.bits_dram_write == 0 for r in one.layers if not r.name.endswith("fc3"))
