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


def _slower_rows(issued: float) -> pd.DataFrame:
    """Dense and an unstructured point on one design, all in SRAM, leakage-dominated: the sparse point waits 100 of
    its 500 cycles for index metadata and issues ``issued`` of dense's 1000 MACs (flex_nm at 4 bits runs an
    unstructured mask 4:4: every dense MAC, and the indices still sent)."""
    base = dict(env="Hopper-v5", design="flex_nm", scenario="inference", batch=1, bits=4, mask_source="trained",
                latency_s=1e-6, sram_bytes=524288.0, fits_in_sram=True, stall_cycles_dram=0.0, macs_dense=1000.0)
    return pd.DataFrame([
        {**base, "pattern": "dense", "cycles": 400.0, "stall_cycles_metadata": 0.0, "energy_pj": 1000.0,
         "energy_mac_pj": 100.0, "energy_leakage_pj": 900.0, "model_bytes": 36e3, "macs_issued": 1000.0,
         "speedup_vs_dense": 1.0},
        {**base, "pattern": "unstructured", "cycles": 500.0, "stall_cycles_metadata": 100.0, "energy_pj": 1250.0,
         "energy_mac_pj": 100.0, "energy_metadata_pj": 25.0, "energy_leakage_pj": 1125.0, "model_bytes": 25e3,
         "macs_issued": issued, "speedup_vs_dense": 0.8},
    ])


def test_slower_than_dense_says_nothing_pays_for_the_metadata_wait_and_energy_follows_latency():
    """A sparse point slower than dense on a sparse design (flex_nm at 4 bits, unstructured agents: 0.81x speed,
    1.24x energy) said only that cycles wait for metadata; the reader could not tell why sparsity did not pay
    for them (no MAC skipped) nor why the energy rose (leakage, 90% here, follows the longer run)."""
    why = limiters(_slower_rows(1000.0)).why[1]
    assert why == ("slower than dense: 100 of 500 cycles wait for N:M/index metadata, which dense never loads, "
                   "while the design issues every dense MAC (it cannot exploit this sparsity), so nothing pays for "
                   "that wait; leakage is 90% of the energy, so energy follows latency")
    # Next to none skipped (a one-shot mask whose folds mostly run 4:4): the share issued, in words.
    assert "while the design issues 99% of dense's MACs (it cannot" in limiters(_slower_rows(990.0)).why[1]
    # A point that skips MACs and is slower anyway: no claim that nothing was skipped.
    assert "issues" not in limiters(_slower_rows(500.0)).why[1]


def test_a_slower_than_dense_point_reads_slower_in_the_glance_not_runs_dense():
    """flex_nm at 4 bits, unstructured agents (0.811x dense, every dense MAC issued): the glance cell read "runs dense",
    as if it ran at dense's speed, beside a why line (its tooltip) "slower than dense: ...". limiter_word decided
    "runs dense" itself from skips_macs; the word now follows the verdict alone, whatever MACs it skips."""
    from reports.answer import GLANCE_HELP, limiter_word
    from reports.why import Verdict

    for issued in (1000.0, 990.0, 500.0):
        df = _slower_rows(issued)
        lim = limiters(df)
        r = {**df.iloc[1].to_dict(), **lim.iloc[1].to_dict()}
        assert lim.verdict[1] == Verdict.SLOWER and r["why"].startswith("slower than dense: ")
        assert limiter_word(r) == "slower", issued
    assert "slower (over 5% slower than dense" in GLANCE_HELP


def test_the_glance_word_is_the_verdicts_whatever_else_the_record_says():
    """The word followed skips_macs, sram, runs_as_pattern and the latency limiter before the verdict, so a word and
    its why line could disagree. Every verdict has one word, and a record's other columns do not change it."""
    from reports.answer import GLANCE_HELP, limiter_word
    from reports.why import VERDICT_WORDS, Verdict

    assert set(VERDICT_WORDS) == set(Verdict)
    misleading = {"skips_macs": False, "sram": "fits, dense misses", "latency_limiter": "metadata", "gpu": False}
    for v in Verdict:
        assert limiter_word({**misleading, "verdict": v}) == VERDICT_WORDS[v]
        assert VERDICT_WORDS[v] in GLANCE_HELP, v  # every word is explained under the glance
    assert limiter_word({**misleading, "verdict": Verdict.RUNS_AS, "runs_as_pattern": "2:4"}) == "runs as 2:4"


def test_glance_word_says_no_gain_where_the_why_line_does():
    """A sparse accelerator point within NO_GAIN of dense whose largest share of cycles is DRAM stalls, but not
    over half of them: the why line (the glance cell's tooltip) says 'no gain' (it puts DRAM first only past half
    the cycles), and the glance word said 'DRAM' beside it. Both now give the one verdict."""
    from reports.answer import limiter_word

    base = dict(env="Hopper-v5", design="edge_ws", scenario="inference", batch=1, bits=8, mask_source="trained",
                latency_s=1e-6, sram_bytes=65536.0, energy_pj=100.0, energy_mac_pj=60.0, energy_dram_pj=40.0,
                fits_in_sram=True, model_bytes=30e3)
    df = pd.DataFrame([
        {**base, "pattern": "dense", "cycles": 102.0, "stall_cycles_dram": 41.0, "stall_cycles_metadata": 0.0,
         "macs_issued": 100.0, "speedup_vs_dense": 1.0},
        # 100 cycles: 40 DRAM stalls (the largest share, 0.4), 25 metadata, 35 compute; skips half the MACs
        {**base, "pattern": "2:4", "cycles": 100.0, "stall_cycles_dram": 40.0, "stall_cycles_metadata": 25.0,
         "macs_issued": 50.0, "speedup_vs_dense": 1.02},
    ])
    lim = limiters(df)
    r = {**df.iloc[1].to_dict(), **lim.iloc[1].to_dict()}
    assert (r["latency_limiter"], r["latency_share"]) == ("DRAM bandwidth", pytest.approx(0.4))
    assert r["why"].startswith("no gain")
    assert limiter_word(r) == "no gain"
    # Past half the cycles the why line is DRAM's, and so is the word.
    df.loc[1, ["stall_cycles_dram", "stall_cycles_metadata"]] = [60.0, 5.0]
    r = {**df.iloc[1].to_dict(), **limiters(df).iloc[1].to_dict()}
    assert r["why"].startswith("DRAM-bound") and limiter_word(r) == "DRAM"


def test_glance_word_follows_the_verdict_not_the_why_lines_words():
    """``limiters`` gives each row a verdict (the cause its why line gives first) and the glance word is derived
    from it, not from the why line's text: rewording the line changes no word, and a verdict of no gain is the
    word 'no gain' whatever the line says."""
    from reports.answer import limiter_word
    from reports.why import Verdict

    df = _rows()
    lim = limiters(df)
    # Row 2 issues every dense MAC: its verdict, why line and glance word are all "runs dense" (the why line and
    # the why table said "no gain" beside the glance's "runs dense").
    assert list(lim.verdict) == [Verdict.DRAM_BOUND, Verdict.SRAM_CLIFF, Verdict.RUNS_DENSE]
    assert all(w.startswith(v) for v, w in zip(lim.verdict, lim.why))
    r = {**df.iloc[2].to_dict(), **lim.iloc[2].to_dict()}
    assert r["why"].startswith("runs dense") and limiter_word(r) == "runs dense"
    r.update(skips_macs=True, verdict=Verdict.NO_GAIN)
    assert limiter_word(r) == "no gain"
    assert limiter_word({**r, "why": "unchanged cycles and energy: ..."}) == "no gain"
    assert limiter_word({**r, "verdict": Verdict.COMPUTE_BOUND, "latency_limiter": "compute"}) == "compute"


def test_dram_the_largest_share_under_half_is_not_called_compute_bound():
    """A point whose largest share of cycles is DRAM stalls, but not over half of them (45 of 100; compute 40,
    metadata 15), was said to be 'compute-bound (45% of cycles computing)': the DRAM share quoted as compute's,
    beside a glance word 'DRAM'. Its line now names the DRAM stalls with their count."""
    from reports.answer import limiter_word
    from reports.why import Verdict

    df = _rows()
    df.loc[1, ["stall_cycles_dram", "stall_cycles_metadata", "speedup_vs_dense", "fits_in_sram"]] = [45.0, 15.0, 1.5, False]
    lim = limiters(df)
    assert lim.latency_limiter[1] == "DRAM bandwidth" and lim.latency_share[1] == pytest.approx(0.45)
    assert lim.verdict[1] == Verdict.DRAM_BOUND
    assert lim.why[1].startswith("DRAM-bound: 45 of 100 cycles are DRAM stalls")
    assert limiter_word({**df.iloc[1].to_dict(), **lim.iloc[1].to_dict()}) == "DRAM"
    df.loc[1, "stall_cycles_dram"] = 25.0  # now compute (60 of 100) is the largest share
    lim = limiters(df)
    assert lim.verdict[1] == Verdict.COMPUTE_BOUND and lim.why[1].startswith("compute-bound (60% of cycles computing)")


def test_no_gain_of_a_point_that_skips_macs_names_what_ate_the_time():
    """A 2:4 point that skips half of dense's MACs (energy well below dense's) but lands within NO_GAIN of dense's
    speed because its index metadata arrives too slowly (a 32x32 int4 array's 2:4 agent: 1.04x / 0.699). Its why
    line said 'the design runs this pattern on dense's schedule (it cannot exploit this sparsity), so cycles and
    energy stay as dense's': false on all three counts. It now says what it skips and what the cycles wait for;
    a point that issues every dense MAC keeps the old line."""
    from reports.answer import limiter_word

    base = dict(env="Hopper-v5", design="mine", scenario="inference", batch=1, bits=4, mask_source="trained",
                latency_s=1e-6, sram_bytes=131072.0, energy_dram_pj=0.0, fits_in_sram=True, model_bytes=30e3,
                macs_dense=100.0)
    df = pd.DataFrame([
        {**base, "pattern": "dense", "cycles": 4280.0, "stall_cycles_dram": 50.0, "stall_cycles_metadata": 0.0,
         "energy_pj": 1000.0, "energy_mac_pj": 1000.0, "macs_issued": 100.0, "speedup_vs_dense": 1.0},
        {**base, "pattern": "2:4", "cycles": 4110.0, "stall_cycles_dram": 50.0, "stall_cycles_metadata": 1640.0,
         "energy_pj": 699.0, "energy_mac_pj": 699.0, "macs_issued": 50.0, "speedup_vs_dense": 1.04},
        {**base, "pattern": "1:4", "cycles": 4200.0, "stall_cycles_dram": 50.0, "stall_cycles_metadata": 10.0,
         "energy_pj": 800.0, "energy_mac_pj": 800.0, "macs_issued": 50.0, "speedup_vs_dense": 1.02},
        {**base, "pattern": "1:8", "cycles": 4280.0, "stall_cycles_dram": 50.0, "stall_cycles_metadata": 0.0,
         "energy_pj": 1000.0, "energy_mac_pj": 1000.0, "macs_issued": 100.0, "speedup_vs_dense": 1.0},
    ])
    lim = limiters(df)
    assert lim.why[1] == ("no gain in speed: it skips 50% of dense's MACs, but 1,640 of 4,110 cycles wait for "
                          "N:M/index metadata, which dense never loads, so the time those MACs saved is spent waiting")
    assert lim.why[2] == "no gain in speed: it skips 50% of dense's MACs, but its cycles stay within 5% of dense's (4,200 vs dense's 4,280)"
    assert lim.why[3].startswith("runs dense: the design runs this pattern on dense's schedule, issuing every dense MAC")
    # A few MACs skipped (under FEW_SKIPPED) is still a design that cannot exploit the pattern: said so, with the share.
    df.loc[3, ["macs_issued", "cycles"]] = [99.97, 4279.0]
    assert limiters(df).why[3] == ("no gain: the design issues 99.97% of dense's MACs (it cannot exploit this sparsity), "
                                   "so its cycles stay within 5% of dense's (4,279 vs dense's 4,280)")
    for i in (1, 2, 3):
        assert limiter_word({**df.iloc[i].to_dict(), **lim.iloc[i].to_dict()}) == ("runs dense" if i == 3 else "no gain")


def test_a_pattern_run_as_another_nm_is_named_in_the_glance_word_and_its_hover():
    """A 1:4 agent on a 2:4-only design runs 2:4 and has exactly 2:4's figures; its glance cell said "DRAM" (or
    "compute") with no word why. The sweep's runs_as column (what nmlab check's note says) now gives the word
    "runs as 2:4" and the hover's first line; unstructured or per-layer mixed targets, 4:4 (a flexible design's
    full rows) and dense get no word, and a table without the column (an older sweep's) gets none at all."""
    from reports.answer import _tip, limiter_word
    from reports.why import Verdict

    df = _rows()
    df["runs_as"] = ["", "2:4 (every group of 4 of the mask holds <= 2)", "1:4"]
    df.loc[1, "pattern"], df.loc[2, "pattern"] = "1:4", "1:8"
    lim = limiters(df)
    assert list(lim.runs_as_pattern) == ["", "2:4", "1:4"]
    assert lim.runs_as_line[1] == "this design runs 1:4 as 2:4 (every group of 4 of the mask holds <= 2): the figures are 2:4's"
    assert lim.runs_as_line[2] == "this design runs 1:8 as 1:4: the figures are 1:4's"
    r = {**df.iloc[1].to_dict(), **limiters(df).iloc[1].to_dict(), "label": "1:4", "point_id": "p", "energy_ratio_vs_dense": 0.4}
    assert limiter_word(r) == "runs as 2:4"  # before its SRAM cliff: the cliff is 2:4's, on 2:4's own row
    # The verdict says so, and the why line first (then the cause of 2:4's figures), so the hover says it once.
    assert list(lim.verdict) == [Verdict.DRAM_BOUND, Verdict.RUNS_AS, Verdict.RUNS_AS]
    assert ("Why: runs as 2:4: this design runs 1:4 as 2:4 (every group of 4 of the mask holds <= 2): the "
            "figures are 2:4's; SRAM cliff: ") in _tip(r) and "Runs as another pattern" not in _tip(r)
    # What gets no word: unstructured, mixed, 4:4, dense (its why line says runs dense / no gain), no column.
    for text, line in [("unstructured (load imbalance 1.00x)", "this design runs 1:4 as unstructured (load imbalance 1.00x)"),
                       ("2:4 (x) on 2 of 3 forward GEMMs, dense (y) on 1 of 3 forward GEMMs",
                        "this design runs 1:4 as 2:4 (x) on 2 of 3 forward GEMMs, dense (y) on 1 of 3 forward GEMMs"),
                       ("4:4", "this design runs 1:4 as 4:4"), ("dense (zeros stored and multiplied)", "")]:
        df.loc[1, "runs_as"] = text
        got = limiters(df).iloc[1]
        assert (got.runs_as_pattern, got.runs_as_line) == ("", line), text
    df["runs_as"] = None  # a column of nulls (an older sweep's parts unified with a newer one's)
    assert list(limiters(df).runs_as_pattern) == ["", "", ""]
    lim = limiters(df.drop(columns="runs_as"))
    assert list(lim.runs_as_pattern) == ["", "", ""] and list(lim.runs_as_line) == ["", "", ""]


def test_no_gain_in_speed_with_dram_stalls_says_how_far_compute_fell_and_the_stalls():
    """A point that skips a quarter of dense's MACs, waits on no metadata, yet lands within NO_GAIN of dense (the
    default sweep's scalesim_default_ws train step of the RLx2 agent at 16 bits: compute cycles 6.9% fewer, 40% of
    the cycles DRAM stalls) said only 'but its cycles stay within 5% of dense's', naming no cause, where the glance
    help promised one. It now says how far the compute cycles fell and how many cycles the DRAM stalls take."""
    from reports.why import Verdict

    base = dict(env="HalfCheetah-v5", design="mine", scenario="train_step", batch=256, bits=16,
                mask_source="trained", latency_s=1e-3, sram_bytes=65536.0, energy_dram_pj=0.0, fits_in_sram=False,
                model_bytes=300e3, macs_dense=100.0, stall_cycles_metadata=0.0, energy_pj=1000.0,
                energy_mac_pj=1000.0)
    df = pd.DataFrame([
        {**base, "pattern": "dense", "cycles": 1_446_954.0, "stall_cycles_dram": 550_602.0, "macs_issued": 100.0,
         "speedup_vs_dense": 1.0},
        {**base, "pattern": "unstructured", "cycles": 1_385_914.0, "stall_cycles_dram": 551_162.0,
         "macs_issued": 75.0, "speedup_vs_dense": 1.044},
    ])
    lim = limiters(df)
    assert lim.verdict[1] == Verdict.NO_GAIN
    assert lim.why[1] == ("no gain in speed: it skips 25% of dense's MACs, but its compute cycles fall 7% (834,752 vs "
                          "dense's 896,352) and DRAM stalls, which skipping does not shorten, are 551,162 of its "
                          "cycles, so its cycles stay within 5% of dense's (1,385,914 vs dense's 1,446,954)")


def test_a_point_issuing_every_dense_mac_runs_dense_even_when_dram_bound():
    """stc_hbm's gmp, rlx2 and one-shot cells (1.00x, every dense MAC issued, over half the cycles DRAM stalls) said
    "DRAM-bound: ...; sparsity only shortens the rest" in their tooltip and under 2:4's numbers in the why table,
    beside a glance word "runs dense": sparsity shortens nothing there. They run dense in all three now."""
    from reports.answer import limiter_word
    from reports.why import Verdict

    df = _rows()
    df.loc[2, "stall_cycles_dram"] = 150.0  # 1:8 issues all 100 of dense's MACs; 150 of its 200 cycles stall on DRAM
    lim = limiters(df)
    assert lim.latency_limiter[2] == "DRAM bandwidth" and lim.latency_share[2] > 0.5
    assert lim.verdict[2] == Verdict.RUNS_DENSE and lim.why[2].startswith("runs dense: ")
    assert limiter_word({**df.iloc[2].to_dict(), **lim.iloc[2].to_dict()}) == "runs dense"
    assert lim.verdict[0] == Verdict.DRAM_BOUND  # dense itself stays DRAM-bound
    df.loc[2, "macs_issued"] = 60.0  # skipping MACs, the same stalls make it DRAM-bound again
    assert limiters(df).verdict[2] == Verdict.DRAM_BOUND


def test_runs_dense_does_not_claim_dense_energy_when_index_metadata_costs_more():
    """flex_nm runs the gmp and rlx2 agents of the default sweep at 16 and 8 bits with folds at 4:4 (each fold at its
    densest row's N): every dense MAC issued, cycles as dense's, yet each fold still reads its weights' indices and
    drives the selection muxes, so the energy is 1.02x dense's. The why line beside "1.00x / 1.02 [runs dense]" said
    "so cycles and energy stay as dense's"; a 4-bit 7:8 agent on a flexible design of 6 (0.979x / 1.04) read the
    same. It now says what the energy and cycles are and what the extra energy is."""
    base = dict(env="Hopper-v5", design="flex_nm", scenario="inference", batch=1, bits=8, mask_source="trained",
                latency_s=1e-6, sram_bytes=524288.0, energy_dram_pj=0.0, fits_in_sram=True, model_bytes=70e3,
                macs_dense=1000.0, stall_cycles_dram=0.0, stall_cycles_metadata=0.0, macs_issued=1000.0)
    df = pd.DataFrame([
        {**base, "pattern": "dense", "cycles": 6000.0, "energy_pj": 100000.0, "energy_mac_pj": 100000.0,
         "energy_metadata_pj": 0.0, "energy_mux_pj": 0.0, "speedup_vs_dense": 1.0},
        {**base, "pattern": "unstructured", "cycles": 6000.0, "energy_pj": 101600.0, "energy_mac_pj": 100000.0,
         "energy_metadata_pj": 1200.0, "energy_mux_pj": 400.0, "speedup_vs_dense": 1.0},
        {**base, "pattern": "7:8", "cycles": 6126.0, "stall_cycles_metadata": 126.0, "energy_pj": 104000.0,
         "energy_mac_pj": 102000.0, "energy_metadata_pj": 1500.0, "energy_mux_pj": 500.0, "speedup_vs_dense": 0.9794},
        {**base, "pattern": "1:8", "cycles": 6000.0, "energy_pj": 100000.0, "energy_mac_pj": 100000.0,
         "energy_metadata_pj": 0.0, "energy_mux_pj": 0.0, "speedup_vs_dense": 1.0},
    ])
    lim = limiters(df)
    assert list(lim.verdict[1:]) == ["runs dense"] * 3
    assert lim.why[1] == ("runs dense: the design runs this pattern on dense's schedule, issuing every dense MAC (it "
                          "cannot exploit this sparsity), so its cycles stay as dense's, but its energy is 1.02x "
                          "dense's: it still reads N:M/index metadata and drives the selection muxes (1.6 nJ, 1.6% of "
                          "its energy), which dense never does")
    assert lim.why[2] == ("runs dense: the design runs this pattern on dense's schedule, issuing every dense MAC (it "
                          "cannot exploit this sparsity), so its cycles stay within 5% of dense's (6,126 vs dense's "
                          "6,000), but its energy is 1.04x dense's: it still reads N:M/index metadata and drives the "
                          "selection muxes (2 nJ, 1.9% of its energy), which dense never does")
    # Figures equal to dense's keep the line that says so.
    assert lim.why[3] == ("runs dense: the design runs this pattern on dense's schedule, issuing every dense MAC (it "
                          "cannot exploit this sparsity), so cycles and energy stay as dense's")
