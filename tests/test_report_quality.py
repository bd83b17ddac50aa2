"""The "RL quality vs hardware" table of nmlab report: returns from the sweep's join, fractions of
dense by hand, published figures on the right agent only, missing returns explained, hardware
figures equal to the sweep rows, and the agent labels the sweep writes (hwmodel/agents.py)."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hwmodel.errors import NmlabError
from hwmodel.workload import save_workload, synthetic_td3_workload, synthetic_unstructured_td3_workload
from reports import quality
from reports.data import fmt_ratio
from reports.build import build_report
from hwmodel.agents import agent_label, label_fractions, load_published, normalize_label
from sweeps.api import run

ENV = "Synth-v0"
HIDDEN = (32, 32)

# Hand-made quality table. Dense TD3 as trained (32 bits): 200, every fraction's reference; at 8
# bits two seeds, 190 and 210 -> 200; at 4 bits it collapses to a negative return.
QUALITY = """env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std
Synth-v0,td3,dense,32,0,2000,5,200,1
Synth-v0,td3,dense,8,0,2000,5,190,1
Synth-v0,td3,dense,8,1,2000,5,210,1
Synth-v0,td3,dense,4,0,2000,5,-5,1
Synth-v0,rnm-td3,2:4,32,0,2000,5,150,1
Synth-v0,rnm-td3,2:4,8,0,2000,5,140,1
Synth-v0,rnm-td3,2:4,8,1,1000,5,160,1
Synth-v0,rnm-td3,2:4,4,0,2000,5,100,1
Synth-v0,gmp,2:4,8,0,2000,5,50,1
Synth-v0,rlx2,0.98/0.95,32,0,2000,5,180,1
Synth-v0,rlx2,0.98/0.95,8,0,2000,5,170,1
Synth-v0,rlx2,0.9,8,0,2000,5,999,1
Synth-v0,gmp,unstructured,8,0,2000,5,120,1
Synth-v0,gmp,unstructured,4,0,2000,5,60,1
"""

# Published fractions: the (env, label) pairs decide. "0.980/0.950" must match the rlx2 agent
# "rlx2 0.98/0.95"; "1:8" must not match the one-shot 1:8 point; Other-v0 matches nothing here.
PUBLISHED = """# comment line, as in the bundled file
method,env,label,fraction_of_dense,source
rnm-td3,Synth-v0,2:4,1.01,"Paper A, abstract"
rnm-td3,Synth-v0,1:8,0.5,"Paper B"
rlx2,Synth-v0,rlx2 0.980/0.950,0.97,"Paper C, TD3 table"
rlx2,Synth-v0,rlx2 0.9/0.85,0.99,"Paper C, other sparsity"
rnm-td3,Other-v0,2:4,1.14,"Paper A"
"""


def _save(wl, meta: dict, path: Path) -> str:
    wl.meta.update({"env": ENV, "seed": 0, **meta})
    save_workload(wl, path)
    return str(path)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("quality")
    files = [
        _save(synthetic_td3_workload(11, 3, "dense", hidden=HIDDEN, seed=0, with_weights=True),
              {"method": "td3", "sparsity": "dense"}, tmp / "synth_dense_s0.nmw"),
        _save(synthetic_td3_workload(11, 3, "2:4", hidden=HIDDEN, seed=1, with_weights=True),
              {"method": "rnm-td3", "sparsity": "2:4"}, tmp / "synth_2of4_s0.nmw"),
        # Gradual N:M by GMP: same pattern, another agent (its quality row must not feed rnm-td3's).
        _save(synthetic_td3_workload(11, 3, "2:4", hidden=HIDDEN, seed=2, with_weights=True),
              {"method": "gmp", "sparsity": "2:4", "actor_sparsity": "2:4", "critic_sparsity": "2:4"},
              tmp / "synth_gmp24_s0.nmw"),
        # RLx2 exports record "A/C" in meta.sparsity and no per-network keys (rl/export.py).
        _save(synthetic_unstructured_td3_workload(11, 3, 0.95, hidden=HIDDEN, seed=3),
              {"method": "rlx2", "sparsity": "0.98/0.95"}, tmp / "synth_rlx2_s0.nmw"),
        # GMP + QAT8: unstructured, 8-bit weights, per-network targets and qat_bits in meta.
        _save(synthetic_unstructured_td3_workload(11, 3, 0.9, hidden=HIDDEN, seed=4, weight_bits=8),
              {"method": "gmp", "sparsity": "unstructured", "actor_sparsity": "0.9", "critic_sparsity": "0.9",
               "qat_bits": 8, "qat_fraction": 0.2}, tmp / "synth_gmp_s0.nmw"),
    ]
    (tmp / "quality.csv").write_text(QUALITY)
    cfg = {"workloads": files, "patterns": ["dense", "2:4", "1:8", "unstructured"], "bits": [32, 8, 4],
           # scalesim_default_ws has no 4-bit datatype, edge_ws no 32-bit one: both have 8 bits.
           "designs": ["edge_ws", "scalesim_default_ws", "unstructured_ws"],
           "scenarios": [{"scenario": "inference", "batch": [1, 4]}, {"scenario": "train_step", "batch": 16}],
           "quality": str(tmp / "quality.csv")}
    (tmp / "sweep.yaml").write_text(yaml.safe_dump(cfg))
    (tmp / "published.csv").write_text(PUBLISHED)
    run(tmp / "sweep.yaml", tmp / "out", workers=1, progress=False)
    build_report(tmp / "out", pngs=False, published=tmp / "published.csv")
    return tmp / "out"


@pytest.fixture(scope="module")
def doc(sweep_dir) -> dict:
    return json.loads((sweep_dir / "report" / quality.FILENAME).read_text())


def _row(doc: dict, method: str, agent: str) -> dict:
    (row,) = [r for r in doc["rows"] if r["method"] == method and r["agent"] == agent]
    return row


def _ret(row: dict, which: str) -> dict:
    (e,) = [e for e in row["returns"] if e["which"] == which]
    return e


def test_every_agent_has_one_row_with_its_label(doc):
    got = [(r["method"], r["agent"], r["mask_source"], r["own_bits"]) for r in doc["rows"]]
    assert got[0] == ("td3", "dense", "trained", 32)  # the reference comes first
    assert sorted(got) == sorted([
        ("td3", "dense", "trained", 32), ("rnm-td3", "2:4", "trained", 32), ("gmp", "gmp 2:4", "trained", 32),
        ("one-shot(td3)", "1:8 one-shot", "one-shot", 32), ("rlx2", "rlx2 0.98/0.95", "trained", 32),
        ("gmp", "gmp 0.9 QAT8", "trained", 8)])
    assert doc["hardware_scenario"] == {"scenario": "inference", "batch": 1, "bits": 8}


def test_returns_and_fractions_of_dense_by_hand(doc):
    dense = _row(doc, "td3", "dense")
    assert _ret(dense, "own")["return_mean"] == 200 and _ret(dense, "own")["fraction_of_dense"] == 1.0
    assert _ret(dense, "8")["return_mean"] == pytest.approx(200) and _ret(dense, "8")["seeds"] == 2
    rnm = _row(doc, "rnm-td3", "2:4")
    assert _ret(rnm, "own")["fraction_of_dense"] == pytest.approx(150 / 200)
    assert _ret(rnm, "8")["return_mean"] == pytest.approx(150)            # (140 + 160) / 2
    assert _ret(rnm, "8")["fraction_of_dense"] == pytest.approx(150 / 200)
    assert _ret(rnm, "8")["steps"] == 1000 and _ret(rnm, "8")["seeds"] == 2  # the shorter seed's steps
    # Every fraction is against dense as trained (200), not dense at the same bits (-5 at 4 bits).
    e4 = _ret(rnm, "4")
    assert e4["return_mean"] == 100 and e4["fraction_of_dense"] == pytest.approx(100 / 200)
    assert e4["dense_return_mean"] == 200 and e4["fraction_missing"] is None
    assert _ret(dense, "4")["fraction_of_dense"] == pytest.approx(-5 / 200)
    # RLx2's rows name its fractions; the 0.9 RLx2 agent's row (999) is another agent's.
    rlx2 = _row(doc, "rlx2", "rlx2 0.98/0.95")
    assert _ret(rlx2, "own")["fraction_of_dense"] == pytest.approx(180 / 200)
    assert _ret(rlx2, "8")["return_mean"] == 170 and _ret(rlx2, "8")["fraction_of_dense"] == pytest.approx(170 / 200)
    # The QAT agent's own precision is 8 bits: its own column is its 8-bit return.
    gmp = _row(doc, "gmp", "gmp 0.9 QAT8")
    assert _ret(gmp, "own")["bits"] == 8 and _ret(gmp, "own")["return_mean"] == 120
    assert _ret(gmp, "own")["fraction_of_dense"] == pytest.approx(120 / 200)
    # GMP 2:4 gets its own row only (50), not RNM-TD3's.
    g24 = _row(doc, "gmp", "gmp 2:4")
    assert _ret(g24, "8")["return_mean"] == 50 and _ret(g24, "8")["fraction_of_dense"] == pytest.approx(0.25)


def test_no_fraction_against_a_missing_or_non_positive_dense_return():
    ref = pd.Series({"return_mean": 200.0, "bits": 32})
    assert quality.fraction_of_dense(50.0, ref) == {"fraction_of_dense": 0.25, "dense_return_mean": 200.0,
                                                   "fraction_missing": None}
    bad = quality.fraction_of_dense(50.0, pd.Series({"return_mean": -3.0, "bits": 32}))
    assert bad["fraction_of_dense"] is None and bad["fraction_missing"] == "dense TD3's return at 32 bits is not positive"
    assert quality.fraction_of_dense(50.0, None)["fraction_missing"] == "no dense TD3 return"


def _without_32_bits(sweep_dir: Path, out: Path, quality_csv: str = QUALITY) -> Path:
    """The sweep's rows at 8 and 4 bits only (a sweep of bits [8, 4]), beside its sweep.json pointing at a
    quality table holding ``quality_csv``; its report built."""
    import shutil

    out.mkdir()
    df = pd.read_parquet(sweep_dir / "points.parquet")
    df[df.bits != 32].to_parquet(out / "points.parquet")
    (out / "quality.csv").write_text(quality_csv)
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    (out / "sweep.json").write_text(json.dumps({**manifest, "quality_table": str(out / "quality.csv")}))
    shutil.copy(sweep_dir.parent / "published.csv", out / "published.csv")
    build_report(out, published=out / "published.csv")
    return out


def test_a_sweep_without_dense_own_precision_takes_dense_from_its_quality_table(sweep_dir, tmp_path):
    """No 32-bit point (bits [8, 4], or a GPU-only sweep's [16, 8]): dense TD3's return as trained (200, the
    quality table's 32-bit row) is still the reference of every fraction of dense, in the return table, the
    glance and the quality table, and the captions say where it came from; it used to give no fraction at all.
    A quality table changed since the sweep (dense's 8-bit rows no longer the sweep's 200) gives none."""
    from reports import returns

    out = _without_32_bits(sweep_dir, tmp_path / "no32")
    doc = json.loads((out / "report" / quality.FILENAME).read_text())
    rnm = _row(doc, "rnm-td3", "2:4")
    # Not swept at its own 32 bits: its return as trained is the quality table's 32-bit row, as dense's is.
    assert _ret(rnm, "own")["return_mean"] == 150 and _ret(rnm, "own")["fraction_of_dense"] == pytest.approx(150 / 200)
    assert _ret(rnm, "8")["fraction_of_dense"] == pytest.approx(150 / 200) and _ret(rnm, "8")["dense_return_mean"] == 200
    assert _ret(rnm, "4")["fraction_of_dense"] == pytest.approx(100 / 200)
    ret = returns.return_table(pd.read_parquet(out / "points.parquet"), str(out / "quality.csv"))
    assert set(ret.dense_return) == {200.0} and set(ret.dense_missing) == {""}
    r8 = ret[(ret.method == "rnm-td3") & (ret.bits == 8)].iloc[0]
    assert r8.fraction == pytest.approx(150 / 200) and (r8.fraction_min, r8.fraction_max) == (140 / 200, 160 / 200)
    src = "taken from the quality table quality.csv, which the sweep joined: the sweep has no 32-bit point of dense TD3"
    md, page = (out / "report" / "summary.md").read_text(), (out / "report" / "index.html").read_text()
    assert f"Return as a fraction of dense TD3 as trained (200, {src}" in md
    assert ("<caption>Return as a fraction of dense TD3 as trained (200 = 1.00); 'as trained' (32 bits, dense TD3 "
            "included) taken from the quality table quality.csv, which the sweep joined; the sweep has no 32-bit point") in page
    assert f"Caveat: dense TD3's return as trained (200), which every fraction of dense here divides by, is {src}" in md
    assert "| 2:4 (rnm-td3) | 0.75 [0.70-0.80] |" in md  # the glance: a fraction, not the return 150
    assert "no fraction of dense" not in md + page and "no dense TD3 return" not in md + page

    changed = _without_32_bits(sweep_dir, tmp_path / "changed", QUALITY.replace("dense,8,1,2000,5,210", "dense,8,1,2000,5,230"))
    ret = returns.return_table(pd.read_parquet(changed / "points.parquet"), str(changed / "quality.csv"))
    assert ret.dense_return.isna().all()
    why = "the sweep has no return of dense TD3 at its own precision (32 bits)"
    assert set(ret.dense_missing) == {why}
    assert f"Caveat: {why}: no fraction of dense can be given" in (changed / "report" / "summary.md").read_text()


def test_returns_equal_the_sweep_rows(doc, sweep_dir):
    df = pd.read_parquet(sweep_dir / "points.parquet")
    for r in doc["rows"]:
        g = df[(df.method == r["method"]) & (df.agent == r["agent"])]
        for e in r["returns"]:
            at = g[g.bits == e["bits"]].return_mean
            if e["return_mean"] is None:
                assert at.isna().all()
            else:
                assert set(at) == {e["return_mean"]}


def test_rows_without_a_return_say_why(doc):
    one_shot = _row(doc, "one-shot(td3)", "1:8 one-shot")
    assert all(e["return_mean"] is None and e["missing"] == quality.ONE_SHOT_REASON for e in one_shot["returns"])
    g24 = _row(doc, "gmp", "gmp 2:4")
    assert _ret(g24, "own")["missing"] == "no quality row for (Synth-v0, gmp, 2:4, 32 bits)"
    rlx2 = _row(doc, "rlx2", "rlx2 0.98/0.95")
    assert _ret(rlx2, "4")["missing"] == "no quality row for (Synth-v0, rlx2, 0.98/0.95, 4 bits)"


def test_published_fraction_only_on_the_matching_agent(doc):
    pub = {(r["method"], r["agent"]): (r["published_fraction_of_dense"], r["published_source"]) for r in doc["rows"]}
    assert pub[("rnm-td3", "2:4")] == (1.01, "Paper A, abstract")
    assert pub[("rlx2", "rlx2 0.98/0.95")] == (0.97, "Paper C, TD3 table")
    # Same pattern, other method / pruned one-shot / other env's label: nothing.
    for key in (("gmp", "gmp 2:4"), ("one-shot(td3)", "1:8 one-shot"), ("td3", "dense"), ("gmp", "gmp 0.9 QAT8")):
        assert pub[key] == (None, None)


def test_hardware_columns_equal_the_sweep_rows(doc, sweep_dir):
    df = pd.read_parquet(sweep_dir / "points.parquet")
    hw = df[(df.bits == 8) & (df.scenario == "inference") & (df.batch == 1)]
    assert doc["designs"] == ["edge_ws", "scalesim_default_ws", "unstructured_ws"]
    for r in doc["rows"]:
        assert [h["design"] for h in r["hardware"]] == doc["designs"]
        for h in r["hardware"]:
            (row,) = hw[(hw.method == r["method"]) & (hw.agent == r["agent"]) & (hw.design == h["design"])].itertuples()
            assert h["point_ids"] == [row.point_id]
            assert h["speedup_vs_dense"] == row.speedup_vs_dense
            assert h["energy_ratio_vs_dense"] == row.energy_ratio_vs_dense
    # Against dense at the same bits: the dense agent is 1 on every design, even where 8 bits is not
    # the design's highest bitwidth (quantization's own gain is not mixed in).
    dense = {h["design"]: h for h in _row(doc, "td3", "dense")["hardware"]}
    assert all(h["speedup_vs_dense"] == 1.0 and h["energy_ratio_vs_dense"] == 1.0 for h in dense.values())
    d32 = hw[(hw.agent == "dense") & (hw.design == "scalesim_default_ws")].iloc[0]
    assert d32.speedup_vs_dense_ref > 1  # the old reference would have mixed quantization in


def test_table_in_summary_md(sweep_dir, doc):
    md = (sweep_dir / "report" / "summary.md").read_text()
    section = md.split("## RL quality vs hardware", 1)[1].split("\n## ", 1)[0]
    lines = {ln.split(" | ")[0].lstrip("| "): ln for ln in section.splitlines() if ln.startswith("| ")}
    assert " 150 (0.75) | 150 (0.75) [140-160] | 100 (0.50) | 1.01 [1] |" in lines["2:4"]
    assert " 180 (0.90) | 170 (0.85) | - | 0.97 [2] |" in lines["rlx2 0.98/0.95"]
    assert "| 8 (QAT) | 120 (0.60) | 120 (0.60) | 60 (0.30) | - |" in lines["gmp 0.9 QAT8"]
    assert quality.ONE_SHOT_REASON in lines["1:8 one-shot"]
    assert "[1] Paper A, abstract" in section and "[2] Paper C, TD3 table" in section
    hw = _row(doc, "rlx2", "rlx2 0.98/0.95")["hardware"]
    assert " | ".join(f"{fmt_ratio(h['speedup_vs_dense'])}x / {fmt_ratio(h['energy_ratio_vs_dense'])}" for h in hw) in lines["rlx2 0.98/0.95"]
    # The section comes before the per-env/scenario sections.
    assert md.index("## RL quality vs hardware") < md.index(f"## {ENV} - inference")


def test_table_in_index_html(sweep_dir):
    page = (sweep_dir / "report" / "index.html").read_text()
    assert '<a href="#quality">RL quality vs hardware' in page and '<h2 id="quality">' in page
    table = page.split('<h2 id="quality">', 1)[1].split("</table>", 1)[0]
    assert f"<caption>{ENV}</caption>" in table
    assert '<td title="Paper A, abstract: 1.01 of dense"><u>1.01</u></td>' in table     # source as a tooltip
    assert "<td>150 (0.75)" not in table and "150 (0.75)<br><small>140\u2013160</small></td>" in table
    assert quality.ONE_SHOT_REASON in table
    # The intro says what each column is, one short line each: one paragraph of it was a wall of text.
    intro = table.split("<table", 1)[0]
    items = re.findall(r"<li><b>([^<]+)</b>: ([^<]+)</li>", intro.split("<ul class=cols>", 1)[1].split("</ul>", 1)[0]) \
        if "<ul class=cols>" in intro else []
    named = " ".join(html.unescape(k) for k, _ in items)
    for col in ("seeds", "steps", "trained at (bits)", "return at own bits", "at 8 bits", "at 4 bits",
                "published (of dense)", "design", "why '-'"):
        assert col in named, (col, named)
    assert all(len(html.unescape(v)) < 300 for _, v in items), [v for _, v in items]
    assert all(len(html.unescape(p)) < 200 for p in re.findall(r"<p>(.*?)</p>", intro, re.S)), intro


def test_each_return_carries_its_seed_range(doc, sweep_dir):
    """A return compared across agents shows its seed spread: the lowest and highest seed's return of the
    quality rows the sweep averaged (QUALITY above), in the JSON, in summary.md and on the page."""
    rnm, dense = _row(doc, "rnm-td3", "2:4"), _row(doc, "td3", "dense")
    assert (_ret(rnm, "8")["return_min"], _ret(rnm, "8")["return_max"]) == (140, 160)
    assert (_ret(dense, "8")["return_min"], _ret(dense, "8")["return_max"]) == (190, 210)
    # One seed has no range: "-5--5" would read as seeds that agree
    assert _ret(dense, "4")["return_min"] is None and _ret(dense, "4")["spread"] is None
    assert _ret(rnm, "8")["spread"] == "min-max over seeds"
    assert {_ret(rnm, w)["spread"] for w in ("own", "4")} == {None}  # one seed each
    one_shot = _row(doc, "one-shot(td3)", "1:8 one-shot")  # never evaluated: no return, no range
    assert all(e["return_min"] is None and e["spread"] is None for e in one_shot["returns"])
    md = (sweep_dir / "report" / "summary.md").read_text().split("## RL quality vs hardware", 1)[1]
    assert "| 200 (1.00) | 200 (1.00) [190-210] | -5 (-0.03) |" in md
    assert "lowest to the highest seed's return" in md.split("\n### ", 1)[0]
    page = (sweep_dir / "report" / "index.html").read_text().split('<h2 id="quality">', 1)[1].split("</table>", 1)[0]
    assert "200 (1.00)<br><small>190\u2013210</small></td>" in page
    assert "min-max over seeds: 190\u2013210" in page  # the tooltip names the kind of spread


def test_no_quality_table_is_said(sweep_dir):
    df = pd.read_parquet(sweep_dir / "points.parquet").assign(return_mean=math.nan)
    d = quality.quality_document(df, {}, quality_table=None)
    rnm = _row(d, "rnm-td3", "2:4")
    assert {e["missing"] for e in rnm["returns"]} == {"the sweep joined no quality table"}


def test_a_table_without_agent_column_still_reports(sweep_dir):
    df = pd.read_parquet(sweep_dir / "points.parquet").drop(columns=["agent"])
    d = quality.quality_document(df, load_published(sweep_dir.parent / "published.csv"))
    assert {r["agent"] for r in d["rows"]} >= {"dense", "2:4", "1:8 one-shot", "unstructured"}
    assert "## RL quality vs hardware" in quality.markdown(d)


# ----------------------------------------------------------------------------- labels
def test_labels_of_exported_meta_match_run_labels():
    """agent_label on the meta nmlab export writes equals rl.publish.run_label of the run's args."""
    from rl.publish import run_label

    cases = [
        ({"method": "rlx2", "sparsity": "0.98/0.95"}, "unstructured",
         {"method": "rlx2", "sparsity": "0.9", "actor_sparsity": "0.98", "critic_sparsity": "0.95"}),
        ({"method": "rlx2", "sparsity": "0.9"}, "unstructured", {"method": "rlx2", "sparsity": "0.90", "actor_sparsity": ""}),
        ({"method": "gmp", "sparsity": "unstructured", "actor_sparsity": "0.9", "critic_sparsity": "0.9", "qat_bits": 8},
         "unstructured", {"method": "gmp", "sparsity": "0.9", "qat_bits": 8}),
        ({"method": "gmp", "sparsity": "2:4", "actor_sparsity": "2:4", "critic_sparsity": "2:4"}, "2:4",
         {"method": "gmp", "sparsity": "2:4", "qat_bits": 0}),
        ({"method": "rnm-td3", "sparsity": "2:4"}, "2:4", {"method": "rnm", "sparsity": "2:4"}),
        ({"method": "td3", "sparsity": "dense"}, "dense", {"method": "", "sparsity": "dense"}),
    ]
    for meta, pattern, args in cases:
        assert agent_label(meta, meta["method"], pattern) == normalize_label(run_label(args))
    # The sweep's test meta may hold a float (synthetic workloads).
    assert agent_label({"sparsity": 0.9}, "rlx2", "unstructured") == "rlx2 0.9/0.9"
    assert agent_label({"actor_sparsity": "0.95", "critic_sparsity": "0.9"}, "gmp", "unstructured") == "gmp 0.95/0.9"


def test_agent_label_takes_any_free_form_qat_bits():
    """meta is free-form provenance (docs/workload.md): a workload whose meta.qat_bits is not a
    number ended `nmlab sweep` in int()'s ValueError traceback; the label now quotes it."""
    from hwmodel.agents import agent_label

    assert agent_label({"sparsity": "2:4", "qat_bits": 8}, "gmp", "2:4") == "gmp 2:4 QAT8"
    assert agent_label({"sparsity": "2:4", "qat_bits": 8.0}, "gmp", "2:4") == "gmp 2:4 QAT8"
    assert agent_label({"sparsity": "2:4", "qat_bits": "eight"}, "gmp", "2:4") == "gmp 2:4 QATeight"
    assert agent_label({"sparsity": "2:4", "qat_bits": [8]}, "gmp", "2:4") == "gmp 2:4 QAT[8]"
    assert agent_label({"sparsity": "2:4", "qat_bits": "8 bits"}, "gmp", "2:4") == "gmp 2:4 QAT8 bits"


def test_label_helpers():
    assert normalize_label("rlx2  0.90/0.850") == "rlx2 0.9/0.85"
    assert normalize_label("2:4") == "2:4" and normalize_label("gmp 0.9 QAT8") == "gmp 0.9 QAT8"
    assert label_fractions("rlx2 0.98/0.95") == (0.98, 0.95) and label_fractions("gmp 0.9 QAT8") == (0.9, 0.9)
    assert label_fractions("gmp 2:4") is None and label_fractions("2:4") is None and label_fractions(None) is None


def test_bundled_published_file_loads_and_a_bad_one_names_the_line(tmp_path):
    from hwmodel.agents import bundled_published

    pub = load_published(bundled_published())
    assert pub[("HalfCheetah-v5", "2:4")][0] == pytest.approx(1.01)
    assert pub[("Hopper-v5", "rlx2 0.98/0.95")][0] == pytest.approx(0.970)
    bad = tmp_path / "p.csv"
    bad.write_text("# c\nmethod,env,label,fraction_of_dense,source\n\nrlx2,Hopper-v5,rlx2 0.9/0.9,lots,x\n")
    with pytest.raises(NmlabError, match=r"p.csv: line 4: fraction_of_dense: not a number: 'lots'"):
        load_published(bad)
    bad.write_text("method,env,fraction_of_dense\n")
    with pytest.raises(NmlabError, match="column 'label' missing"):
        load_published(bad)


@pytest.mark.mujoco
@pytest.mark.slow
def test_a_real_rlx2_export_gets_its_run_label(tmp_path):
    """A short real RLx2 run: the sweep's agent label of its export equals the run's publish label,
    and its nmlab-evaluate quality row ("0.98/0.95") joins that agent."""
    from rl import td3
    from rl.evaluate import append_quality_row, evaluate_run
    from rl.export import export_run
    from rl.publish import run_label
    from sweeps.derived import join_quality, load_quality
    from sweeps.grid import _workload_info
    import pyarrow as pa

    args = td3.Args(env="Hopper-v5", method="rlx2", sparsity="0.9", actor_sparsity="0.98", critic_sparsity="0.95",
                    steps=300, learning_starts=150, batch_size=16, hidden=32, eval_every=10_000, eval_episodes=1,
                    checkpoint_every=300, log_every=50, tensorboard=False, progress=False, rlx2_delta=20,
                    out=str(tmp_path / "run"))
    td3.train(args)
    export_run(tmp_path / "run", tmp_path / "rlx2.nmw")
    info = _workload_info(str(tmp_path / "rlx2.nmw"))
    assert info.agent == normalize_label(run_label(json.loads((tmp_path / "run" / "args.json").read_text())))
    assert info.agent == "rlx2 0.98/0.95" and info.pattern == "unstructured"
    row = evaluate_run(tmp_path / "run", 8, episodes=1)
    append_quality_row(tmp_path / "q.csv", row)
    table = pa.table({"env": ["Hopper-v5"] * 2, "pattern": ["unstructured"] * 2, "bits": [8, 8],
                      "mask_source": ["trained"] * 2, "method": ["rlx2"] * 2, "agent": [info.agent, "rlx2 0.9/0.9"]})
    joined = join_quality(table, load_quality(tmp_path / "q.csv")).column("return_mean").to_pylist()
    assert joined[0] == pytest.approx(row["return_mean"]) and math.isnan(joined[1])


def test_published_fractions_at_two_decimals_as_every_fraction_of_dense(default_sweep):
    """The published column printed the CSV's figure as it came ('1.01' beside '0.998') next to cells whose
    fractions of dense have two decimals ('(0.94)'); now two decimals too, the paper's own figure in the
    tooltip and in quality_vs_hardware.json."""
    import re

    doc = json.loads((default_sweep / "report" / quality.FILENAME).read_text())
    pubs = [r["published_fraction_of_dense"] for r in doc["rows"] if r["published_fraction_of_dense"] is not None]
    assert any(round(p, 2) != p for p in pubs)  # a figure with three decimals in the bundled file (0.998)
    md = (default_sweep / "report" / "summary.md").read_text()
    section = md.split("## RL quality vs hardware", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"\| ([0-9.]+) \[\d+\] \|", section)
    assert sorted(float(c) for c in cells) == sorted(round(p, 2) for p in pubs)
    assert all(re.fullmatch(r"\d+\.\d\d", c) for c in cells), cells
    page = (default_sweep / "report" / "index.html").read_text()
    shown = re.findall(r'<td title="[^"]*: ([0-9.]+) of dense"><u>([0-9.]+)</u></td>', page)
    assert sorted(float(a) for a, _ in shown) == sorted(pubs)
    assert all(f"{float(a):.2f}" == b for a, b in shown)


def test_hardware_scenario_is_inference_at_its_own_smallest_batch():
    # Inference batches 4 and 16, a train step at batch 1: the control loop is inference at 4, not batch 1.
    import pandas as pd

    from reports.quality import hardware_scenario

    df = pd.DataFrame({"scenario": ["inference", "inference", "train_step"], "batch": [16, 4, 1]})
    assert hardware_scenario(df) == ("inference", 4)
    assert hardware_scenario(df[df.scenario == "train_step"]) == ("train_step", 1)


def test_a_run_with_per_layer_patterns_is_its_own_agent_from_quality_table_to_report(tmp_path):
    """A run trained with --layer-sparsity was labelled by its --sparsity alone: the sweep took it for
    the plain 2:4 agent (one of the two not swept), its quality rows fed that agent's return and the
    report called it "N:M in every layer". Now it is the mixed agent "2:4 fc1=dense", swept beside
    the plain one (patterns: mixed), joined to its own rows only, and the Agents key says which layers."""
    import pyarrow.parquet as pq

    from reports.answer import agent_key

    def mixed(wl):
        for layer in wl.layers:
            if layer.name.endswith(".fc1"):
                layer.pattern, layer.mask, layer.weight = "dense", None, layer.weight
        return wl

    files = [
        _save(synthetic_td3_workload(11, 3, "dense", hidden=HIDDEN, seed=0, with_weights=True),
              {"method": "td3", "sparsity": "dense", "layer_sparsity": ""}, tmp_path / "synth_dense_s0.nmw"),
        _save(synthetic_td3_workload(11, 3, "2:4", hidden=HIDDEN, seed=1, with_weights=True),
              {"method": "rnm-td3", "sparsity": "2:4", "layer_sparsity": ""}, tmp_path / "synth_2of4_s0.nmw"),
        # As rl/export.py writes a run of `nmlab train --sparsity 2:4 --layer-sparsity fc1=dense`.
        _save(mixed(synthetic_td3_workload(11, 3, "2:4", hidden=HIDDEN, seed=2, with_weights=True)),
              {"method": "rnm-td3", "sparsity": "2:4", "layer_sparsity": "actor.fc1=dense, critic.fc1=dense"},
              tmp_path / "synth_2of4_fc1dense_s0.nmw"),
    ]
    (tmp_path / "quality.csv").write_text(
        "env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std\n"
        "Synth-v0,td3,dense,8,0,2000,5,200,1\n"
        "Synth-v0,rnm-td3,2:4,8,0,2000,5,150,1\n"
        "Synth-v0,rnm-td3,2:4 fc1=dense,8,0,2000,5,175,1\n")
    cfg = {"workloads": files, "patterns": ["dense", "2:4", "mixed"], "bits": [8], "designs": ["edge_ws"],
           "scenarios": [{"scenario": "inference", "batch": 1}], "quality": str(tmp_path / "quality.csv")}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(cfg))
    run(tmp_path / "sweep.yaml", tmp_path / "out", workers=1, progress=False)
    df = pq.read_table(tmp_path / "out" / "points.parquet").to_pandas()
    got = {(r.method, r.agent, r.pattern, r.return_mean) for r in df.itertuples()}
    assert got == {("td3", "dense", "dense", 200.0), ("rnm-td3", "2:4", "2:4", 150.0),
                   ("rnm-td3", "2:4 fc1=dense", "mixed", 175.0)}, got
    key = agent_key(df)
    assert "2:4 (rnm-td3): RNM-TD3, TD3 trained with N:M weights in every layer" in " ".join(key), key
    (line,) = [k for k in key if k.startswith("2:4 fc1=dense")]
    assert line.startswith("2:4 fc1=dense (rnm-td3): RNM-TD3 with per-layer patterns (nmlab train --layer-sparsity): "
                           "2:4 in every layer but fc1=dense"), line
    build_report(tmp_path / "out", pngs=False)  # the whole report builds with a mixed agent in it
    # Without "mixed" in patterns the run is not swept, and the plan says so (not the plain agent in its stead).
    cfg["patterns"] = ["dense", "2:4"]
    (tmp_path / "sweep2.yaml").write_text(yaml.safe_dump(cfg))
    from sweeps.config import load_config
    from sweeps.grid import plan

    p = plan(load_config(tmp_path / "sweep2.yaml"))
    assert {(pt["agent"], pt["workload"]) for pt in p.points()} == {("dense", "synth_dense_s0"), ("2:4", "synth_2of4_s0")}
    assert any("synth_2of4_fc1dense_s0: per-layer patterns (mixed: trained with --layer-sparsity" in s for s in p.skipped), p.skipped
