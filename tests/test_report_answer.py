"""The report's answer: same-bits tables equal a recomputation from points.parquet, quantization's own
gain apart, returns with their seed spread and caveats, every agent separately (no figure averages two
agents), and the page's main tables fit 1400 px in a real headless Chromium."""

from __future__ import annotations

import csv
import html
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import answer, returns
from reports.build import build_report
from reports.data import fmt_bytes, one_row_per

KEY = ["env", "design", "scenario", "batch", "bits"]


@pytest.fixture(scope="module")
def sweep(default_sweep) -> Path:
    """The default grid on the bundled workloads and quality table, with the real model (about 2 s). (tests/conftest.py)"""
    return default_sweep


@pytest.fixture(scope="module")
def page(sweep) -> str:
    return (sweep / "report" / "index.html").read_text()


def _cells(page: str) -> list[tuple[str, str, float]]:
    return [(m[0], m[1], float(m[2])) for m in
            re.findall(r'data-point="([0-9a-f]+)" data-col="([a-z_]+)" data-value="([^"]+)"', page)]


def test_same_bits_cells_equal_a_recomputation_from_the_table(sweep, page):
    df = pd.read_parquet(sweep / "points.parquet")
    dense = df[(df.pattern == "dense") & (df.mask_source == "trained")].set_index(KEY)
    by_id = df.set_index("point_id")
    cells = [c for c in _cells(page) if c[1] in ("speedup_vs_dense", "energy_ratio_vs_dense")]
    shown = {pid for pid, _, _ in cells}
    # Every non-dense point of the sweep has its two cells (the default grid plots every batch).
    assert shown == set(df.point_id[df.pattern != "dense"])
    assert len(cells) == 2 * len(shown)
    for pid, col, value in cells:
        r = by_id.loc[pid]
        d = dense.loc[(r.env, r.design, r.scenario, r.batch, r.bits)]
        want = d.latency_s / r.latency_s if col == "speedup_vs_dense" else r.energy_pj / d.energy_pj
        assert value == pytest.approx(want, rel=1e-12), (pid, col)
    # Not the highest-bitwidth reference: on a design whose dense points span several bitwidths the two differ.
    sp = {(pid, col): v for pid, col, v in cells}
    differs = [pid for pid in shown if by_id.loc[pid].bits != by_id.loc[pid].dense_ref_bits]
    assert differs and all(sp[(p, "speedup_vs_dense")] != pytest.approx(by_id.loc[p].speedup_vs_dense_ref) for p in differs[:5])


def test_quantization_table_is_dense_against_dense_at_the_highest_bits(sweep, page):
    df = pd.read_parquet(sweep / "points.parquet")
    dense = df[(df.pattern == "dense") & (df.mask_source == "trained")]
    top = dense.loc[dense.groupby(["env", "design", "scenario", "batch"]).bits.idxmax()].set_index(
        ["env", "design", "scenario", "batch"])
    by_id = dense.set_index("point_id")
    cells = [c for c in _cells(page) if c[1].startswith("quantization_")]
    assert {pid for pid, _, _ in cells} == set(dense.point_id)
    for pid, col, value in cells:
        r = by_id.loc[pid]
        ref = top.loc[(r.env, r.design, r.scenario, r.batch)]
        want = ref.latency_s / r.latency_s if col == "quantization_speedup" else r.energy_pj / ref.energy_pj
        assert value == pytest.approx(want, rel=1e-12)
        assert value == pytest.approx(r.speedup_vs_dense_ref if col == "quantization_speedup" else r.energy_ratio_vs_dense_ref)


def test_a_design_swept_at_one_bitwidth_has_no_quantization_row(sweep):
    # A sweep at one bitwidth showed a 'Quantization alone' table of 1x / 1 in every cell.
    from reports.answer import quantization_gain

    df = pd.read_parquet(sweep / "points.parquet")
    q = quantization_gain(df)
    assert len(q) and (q.bits != q.ref_bits).any()
    only_8 = quantization_gain(df[df.bits == 8])
    assert only_8.empty
    mixed = df[(df.bits == 8) | (df.design != "edge_ws")]  # edge_ws at 8 bits only, the others as swept
    q_mixed = quantization_gain(mixed)
    assert "edge_ws" not in set(q_mixed.design) and set(q_mixed.design) == set(q.design) - {"edge_ws"}


def _figures(page: str) -> list[dict]:
    from reports.html import page_figures

    return page_figures(page)


def test_no_figure_averages_two_agents(sweep, page):
    """Every bar and marker carries the one point it shows: no trace shows a point twice, every point
    id is a row of the table, and each energy share equals that row's component over its total."""
    df = pd.read_parquet(sweep / "points.parquet").set_index("point_id")
    figs = _figures(page)
    checked = 0
    for fig in figs:
        for tr in fig["data"]:
            ids = tr.get("customdata")
            if ids is None:
                continue
            assert len(ids) == len(set(ids)) == len(tr["x"]), tr.get("name")
            assert set(ids) <= set(df.index)
            comp = f"energy_{tr['name']}_pj"
            if tr["type"] == "bar" and comp in df.columns:
                want = 100 * df.loc[ids, comp].to_numpy() / df.loc[ids, "energy_pj"].to_numpy()
                assert np.allclose(np.asarray(tr["y"], dtype=float), want, rtol=1e-9)
                checked += 1
    assert checked > 0
    # Two trained agents of one pattern (RLx2 and GMP, both "unstructured") are two bars, not one.
    why = next(f for f in figs if "What limits" in f["layout"]["title"]["text"])
    cats = why["layout"]["xaxis"]["categoryarray"]
    assert any(c.startswith("rlx2") for c in cats) and any(c.startswith("gmp") for c in cats)


def test_one_row_per_refuses_to_average():
    df = pd.DataFrame({"design": ["a", "a"], "agent": ["x", "x"], "v": [1.0, 3.0]})
    with pytest.raises(ValueError, match="refusing to average"):
        one_row_per(df, ["design", "agent"], "test")
    assert one_row_per(df.assign(agent=["x", "y"]), ["design", "agent"], "test").v.tolist() == [1.0, 3.0]


def test_returns_carry_the_seed_spread_of_the_quality_table(sweep):
    df = pd.read_parquet(sweep / "points.parquet")
    qpath = json.loads((sweep / "sweep.json").read_text())["quality_table"]
    table = returns.return_table(df, qpath)
    with open(qpath) as fh:
        q = [r for r in csv.DictReader(fh)]
    dense = [float(r["return_mean"]) for r in q if r["env"] == "Hopper-v5" and r["method"] == "td3" and r["bits"] == "32"]
    row = table[(table.env == "Hopper-v5") & (table.agent == "dense") & (table.bits == 32)].iloc[0]
    assert row.seeds == "0,1" and row.n_seeds == 2
    assert (row.return_min, row.return_max) == (min(dense), max(dense))
    assert row.fraction == 1.0 and row.fraction_min == pytest.approx(min(dense) / np.mean(dense))
    rl = [float(r["return_mean"]) for r in q if r["env"] == "Hopper-v5" and r["method"] == "rlx2" and r["bits"] == "8"]
    got = table[(table.env == "Hopper-v5") & (table.method == "rlx2") & (table.bits == 8)].iloc[0]
    assert (got.return_min, got.return_max) == (min(rl), max(rl))
    assert got.fraction_max == pytest.approx(max(rl) / np.mean(dense))


def test_caveats_state_the_threshold_and_fire_only_when_due():
    base = {"method": "td3", "agent": "dense", "label": "dense", "trained_bits": 32, "bits": 32, "n_seeds": 2,
            "seeds": "0,1", "spread_kind": "min-max", "return_std": math.nan}
    learned = pd.DataFrame([
        {**base, "env": "Hopper-v5", "return_mean": 3000.0, "return_min": 2950.0, "return_max": 3050.0, "dense_return": 3000.0},
        {**base, "env": "Hopper-v5", "method": "rnm-td3", "agent": "2:4", "label": "2:4", "return_mean": 2000.0,
         "return_min": 1990.0, "return_max": 2010.0, "dense_return": 3000.0}])
    assert returns.caveats(learned) == {}
    failed = learned.assign(return_mean=[300.0, 250.0], return_min=[290.0, 50.0], return_max=[310.0, 450.0],
                            dense_return=300.0)
    notes = returns.caveats(failed)["Hopper-v5"]
    limit = returns.LEARNED_FRACTION * returns.PUBLISHED_DENSE_RETURN["Hopper-v5"]
    assert any("has not learned" in n and f"{returns.LEARNED_FRACTION:.0%}" in n for n in notes) and 300 < limit
    assert any("seeds disagree more than methods" in n and "span 400" in n and "span 50" in n for n in notes)


def test_inverted_pendulums_have_the_td3_papers_dense_return():
    """Fujimoto et al. 2018, Table 1, gives InvertedPendulum 1000 and InvertedDoublePendulum 9337: a 400-step
    InvertedPendulum-v5 dense TD3 (return 28) was reported as 'no published dense TD3 return is known', so its 2:4
    agent's 0.07 of dense read as a cost of sparsity, not as a baseline that never learned."""
    base = {"method": "td3", "agent": "dense", "label": "dense", "trained_bits": 32, "bits": 32, "n_seeds": 1,
            "seeds": "0", "spread_kind": "", "return_std": math.nan, "return_min": math.nan, "return_max": math.nan}
    for env, ret, good in (("InvertedPendulum-v5", 28.0, 900.0), ("InvertedDoublePendulum-v5", 21.0, 9000.0)):
        notes = returns.caveats(pd.DataFrame([{**base, "env": env, "return_mean": ret, "dense_return": ret}]))[env]
        assert any(f"has not learned {env}" in n for n in notes), notes
        assert returns.caveats(pd.DataFrame([{**base, "env": env, "return_mean": good, "dense_return": good}])) == {}
    notes = returns.caveats(pd.DataFrame([{**base, "env": "Swimmer-v5", "return_mean": 31.0, "dense_return": 31.0}]))
    assert notes["Swimmer-v5"] == ["no published dense TD3 return is known for Swimmer-v5 (Fujimoto et al. 2018 (TD3) "
                                   "gives none): whether dense learned is not checked."]


def test_a_small_dense_return_is_not_printed_as_zero_in_the_caveats():
    """A short Walker2d-v5 run's dense TD3 returned 0.24 as trained: the caveats said 'dense TD3's return as
    trained (0), which every fraction of dense here divides by' and 'its return (0) is below 25%', a division by
    zero to the reader beside fractions of -75.30 and 434 in the table above them."""
    base = {"method": "td3", "agent": "dense", "label": "dense", "trained_bits": 32, "bits": 32, "n_seeds": 1,
            "seeds": "0", "spread_kind": "", "return_std": math.nan, "return_min": math.nan, "return_max": math.nan,
            "dense_source": "q.csv", "from_quality_table": True, "quality_table": "q.csv"}
    t = pd.DataFrame([{**base, "env": "Walker2d-v5", "return_mean": 0.2412, "dense_return": 0.2412}])
    notes = returns.caveats(t)["Walker2d-v5"]
    assert any("has not learned Walker2d-v5: its return (0.241) is below" in n for n in notes), notes
    assert not any("(0)" in n for n in notes), notes
    t = t.assign(fraction=1.0, fraction_min=math.nan, fraction_max=math.nan)
    points = pd.DataFrame({"env": ["Walker2d-v5"], "method": ["td3"], "agent": ["dense"], "pattern": ["dense"],
                           "mask_source": ["trained"], "bits": [32]})
    card = returns.html_cards(t, points)["Walker2d-v5"]
    assert "dense TD3 as trained (0.241 = 1.00" in card and "dense TD3 as trained 0.241" in card, card
    assert returns.return_text(0.2412) == "0.241" and returns.return_text(-3.04) == "-3.04"
    assert returns.return_text(443.4) == "443" and returns.return_text(-75.3) == "-75"


def test_a_one_seed_cells_hover_gives_no_nan_range():
    """With one seed there is no spread (spread_kind ''): each return cell's hover read 'return -18 (seeds 0;
    no spread nan to nan) / dense TD3 as trained ...'."""
    base = {"method": "rnm-td3", "agent": "3:8", "label": "3:8 (rnm-td3)", "trained_bits": 32, "bits": 32,
            "n_seeds": 1, "seeds": "0", "spread_kind": "", "return_std": math.nan, "return_min": math.nan,
            "return_max": math.nan, "fraction_min": math.nan, "fraction_max": math.nan, "dense_source": "",
            "from_quality_table": False, "quality_table": "", "env": "Walker2d-v5"}
    t = pd.DataFrame([{**base, "method": "td3", "agent": "dense", "label": "dense", "return_mean": 400.0,
                       "dense_return": 400.0, "fraction": 1.0},
                      {**base, "return_mean": -18.2, "dense_return": 400.0, "fraction": -18.2 / 400}])
    points = pd.DataFrame({"env": "Walker2d-v5", "method": ["td3", "rnm-td3"], "agent": ["dense", "3:8"],
                           "pattern": ["dense", "3:8"], "mask_source": "trained", "bits": 32})
    card = returns.html_cards(t, points)["Walker2d-v5"]
    assert "nan" not in card, card
    assert "return -18 (seed 0; no spread) / dense TD3 as trained 400" in card, card
    assert 'data-value="-0.0455">-0.05</td>' in card, card  # the cell itself: the fraction, no range
    two = t.assign(seeds="0,1", n_seeds=2, spread_kind="min-max", return_min=[380.0, -30.0],
                   return_max=[420.0, -6.4], fraction_min=[0.95, -0.075], fraction_max=[1.05, -0.016])
    card = returns.html_cards(two, points)["Walker2d-v5"]
    assert "return -18 (seeds 0,1; min-max -30 to -6) / dense TD3 as trained 400" in card, card
    assert '>-0.05<br><small>-0.07\u2013-0.02</small></td>' in card, card


def test_an_agent_of_another_size_than_dense_td3_is_named_in_a_caveat(sweep):
    """A Walker2d-v5 2:4 agent trained at --hidden 256 beside a dense TD3 at --hidden 100: its cells read
    1.99x / 0.610 under a 'dense, absolute' row of 6.78 us, while it ran 14.5 us, slower than that dense agent
    (the ratios are against its own layers run dense). Nothing said the agents differ in size."""
    rows = []
    for agent, method, macs, lat in (("dense", "td3", 12300.0, 6.78e-6), ("2:4", "rnm-td3", 71424.0, 14.5e-6),
                                     ("3:8", "rnm-td3", 12300.0, 6.78e-6), ("2:8 one-shot", "one-shot(td3)", 12300.0, 4e-6)):
        for design in ("edge_ws", "stc_hbm"):
            rows.append({"env": "Walker2d-v5", "agent": agent, "method": method, "design": design, "bits": 8,
                         "scenario": "inference", "batch": 1, "macs_dense": macs, "latency_s": lat,
                         "mask_source": "one-shot" if "one-shot" in agent else "trained",
                         "pattern": agent.split()[0]})
            rows.append({**rows[-1], "scenario": "train_step", "batch": 256, "macs_dense": macs * 2849})
    df = pd.DataFrame(rows)
    cav = answer.size_caveats(df)
    assert list(cav) == ["Walker2d-v5"] and len(cav["Walker2d-v5"]) == 1
    (text,) = cav["Walker2d-v5"]
    assert "2:4 (rnm-td3) (71,424 dense MACs per inference at batch 1, dense TD3 12,300)" in text, text
    assert "3:8" not in text and "one-shot" not in text
    assert "against its own layers run dense" in text
    assert answer.size_caveats(df[df.agent != "2:4"]) == {}
    assert answer.size_caveats(df[df.agent != "dense"]) == {}  # no dense TD3: nothing to differ from
    assert answer.size_caveats(pd.read_parquet(sweep / "points.parquet")) == {}  # the bundled agents: one size


def test_page_opens_with_the_answer_and_states_caveats(page):
    assert page.index('id="answer"') < page.index('id="why"') < page.index('id="quality"') < page.index('id="pareto"')
    assert "has not learned Hopper-v5" in page and f"below {returns.LEARNED_FRACTION:.0%}" in page
    assert "as trained" in page and "min\u2013max over seeds 0, 1" in page
    # The SRAM cliff behind the most extreme same-bits ratio is explained in words on the page.
    assert "SRAM cliff" in page and "DRAM-bound" in page


def test_quality_table_carries_its_envs_caveats(sweep, page):
    """The RL quality table gives fractions of dense too (Hopper-v5's 1:8 at '(2.17)' of a dense TD3 that
    has not learned): the env's caveats follow its table there as well, on the page and in summary.md."""
    cav = returns.caveats(returns.return_table(pd.read_parquet(sweep / "points.parquet"),
                                               json.loads((sweep / "sweep.json").read_text())["quality_table"]))
    assert set(cav) == {"Hopper-v5"} and any("has not learned Hopper-v5" in c for c in cav["Hopper-v5"])
    import html as html_lib
    section = page.split('<h2 id="quality">', 1)[1].split("<h2", 1)[0]
    tables = section.split('<div class="frame"><table class="quality">')[1:]
    assert [t.split("</caption>", 1)[0].rsplit(">", 1)[1] for t in tables] == ["HalfCheetah-v5", "Hopper-v5"]
    after = {env: t.split("</table></div>", 1)[1] for env, t in zip(("HalfCheetah-v5", "Hopper-v5"), tables)}
    assert "Caveat" not in after["HalfCheetah-v5"]
    assert [html_lib.unescape(c) for c in re.findall(r'<p class="note caveat">Caveat: (.*?)</p>', after["Hopper-v5"])] \
        == cav["Hopper-v5"]
    md = (sweep / "report" / "summary.md").read_text().split("## RL quality vs hardware", 1)[1]
    hc, hop = md.split("### HalfCheetah-v5", 1)[1].split("### Hopper-v5", 1)
    assert "Caveat" not in hc and re.findall(r"^> Caveat: (.*)$", hop, re.M) == cav["Hopper-v5"]


def test_summary_md_same_bits_tables_give_dense_absolute_figures(sweep):
    """The page's same-bits cards open with dense's own latency and energy (what every ratio divides);
    summary.md's tables gave the ratios alone. Each of them now has that row, equal to the dense rows."""
    from reports.data import fmt_energy, fmt_time

    df = pd.read_parquet(sweep / "points.parquet")
    dense = df[(df.method == "td3") & (df.pattern == "dense")]
    md = (sweep / "report" / "summary.md").read_text()
    checked = 0
    for sec in re.split(r"\n#### ", md)[1:]:
        env, rest = sec.split(": ", 1)
        sc, batch = ("inference", 1) if rest.startswith("inference, batch 1") else ("train_step", 256)
        for design, block in re.findall(r"\n\*\*([a-z0-9_]+)\*\*(?: \(GPU\))?\n\n(.*?)\n\n", sec, re.S):
            lines = block.splitlines()
            bits = [int(b.strip().split()[0]) for b in lines[0].strip("|").split("|")[1:]]
            assert lines[2].startswith("| dense, absolute | "), lines[:3]
            cells = [c.strip() for c in lines[2].strip("|").split("|")[1:]]
            for b, cell in zip(bits, cells):
                d = dense[(dense.env == env) & (dense.design == design) & (dense.scenario == sc)
                          & (dense.batch == batch) & (dense.bits == b)]
                assert cell == (f"{fmt_time(d.latency_s.iloc[0])} / {fmt_energy(d.energy_pj.iloc[0])}" if len(d) else "-")
            checked += 1
    assert checked == 2 * 2 * 7  # envs x scenarios x designs


def test_summary_md_answers_first(sweep):
    md = (sweep / "report" / "summary.md").read_text()
    assert md.index("## What each pattern buys at equal bits") < md.index("## RL quality vs hardware")
    assert "Quantization alone" in md and "[0.94-1.06]" in md  # HalfCheetah dense's own seed range
    # The glance tables come first, as on the page: 2:4 on edge_ws at 8 bits, its return and seed range.
    glance = md.index("**HalfCheetah-v5 at a glance: inference, batch 1, 8 bits**")
    assert glance < md.index("### HalfCheetah-v5")
    row = next(line for line in md[glance:].splitlines() if line.startswith("| 2:4 (rnm-td3) |"))
    assert re.match(r"\| 2:4 \(rnm-td3\) \| [0-9.]+ \[[0-9.]+-[0-9.]+\] \| [0-9.]+x / [0-9.]+ \[compute\] \|", row), row
    assert "Hover" not in md.split("### HalfCheetah-v5")[0]


def test_default_report_draws_no_png_and_png_flag_draws_them(sweep, tmp_path):
    assert not list((sweep / "report").glob("*.png"))
    import shutil

    out = tmp_path / "s"
    shutil.copytree(sweep, out, ignore=shutil.ignore_patterns("report"))
    info = build_report(out, pngs=True)
    names = {p.name for p in info["pngs"]}
    assert {"front_return_vs_energy.png", "speedup_same_bits.png", "energy_ratio_same_bits.png"} <= names
    for p in info["pngs"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- layout in a real browser
def test_accelerator_cards_say_which_agents_share_one_schedule(sweep, page):
    """Under each accelerator card: each agent's share of dense's MACs skipped, as the table's MAC counts
    say, and which agents issue the same MACs (edge_ws runs 2:4 and 1:4 only, so its 1:8 agent reads
    exactly as its 1:4 one: said, rather than left to look like a bug). Agents said to share a schedule
    have equal cells in the card."""
    import html as html_lib

    from reports.data import agent_label

    df = pd.read_parquet(sweep / "points.parquet")
    df = df.assign(label=[agent_label(m, a) for m, a in zip(df.method, df.agent)])
    cards = re.findall(r'<table class="ans" data-design="([^"]+)">((?:(?!</table>).)*)</table><p class="small mapnote">(.*?)</p>', page)
    accelerators = sorted(d for d in df.design.unique() if df[df.design == d].technology_nm.notna().all())
    assert sorted({d for d, _, _ in cards}) == accelerators  # every accelerator card has its note, no GPU has one
    same_seen, checked = set(), 0
    for design, table, note in cards:
        note = html_lib.unescape(note)
        shares = dict(re.findall(r"(?:: |, )(.+?) ([0-9.]+)%", note.split("%. ", 1)[0] + "%"))
        assert shares, note
        first = df[df.point_id == _cells(table)[0][0]].iloc[0]  # the card's env, scenario and batch
        rows = df[(df.design == design) & (df.pattern != "dense") & (df.env == first.env)
                  & (df.scenario == first.scenario) & (df.batch == first.batch)]
        for label, pct in shares.items():
            r = rows[rows.label == label]
            want = 100 * (1 - r.macs_issued.min() / r.macs_dense.max())
            assert float(pct) == pytest.approx(want, rel=0.05, abs=0.01), (design, label)
            checked += 1
        for m in re.finditer(r"([^.]+?) issue the same MACs", note):
            labels = re.split(r", | and ", m.group(1).strip())
            same_seen.add((design, tuple(labels)))
            ids = {lab: set(rows[rows.label == lab].point_id) for lab in labels}
            cells = [(pid, col, v) for pid, col, v in _cells(table)]
            by = [sorted((col, df.set_index("point_id").bits[pid], v) for pid, col, v in cells if pid in ids[lab])
                  for lab in labels]
            assert by[0] and all(b == by[0] for b in by), (design, labels)
    assert checked >= 4 * 5 * 3  # 2 envs x 2 scenarios x 5 accelerators, three N:M agents at least
    assert ("edge_ws", ("1:4 (rnm-td3)", "1:8 (rnm-td3)")) in same_seen
    assert not any(d == "unstructured_ws" for d, _ in same_seen)  # it runs 1:8 sparser than 1:4


def test_glance_table_answers_first_at_8_bits_batch_1(sweep, page):
    """The answer's first table per env: every sparse agent at inference, batch 1, 8 bits on every design,
    each cell the same-bits speedup of the table (energy ratio beside it) with its limiter in a word, and the
    agent's 8-bit return as a fraction of dense TD3 as trained; before the detail tables."""
    import html as html_lib

    df = pd.read_parquet(sweep / "points.parquet")
    by_id = df.set_index("point_id")
    assert page.index('id="answer"') < page.index("HalfCheetah-v5 at a glance") < page.index("Hopper-v5 at a glance") \
        < page.index("Return as a fraction of dense TD3")
    tables = re.findall(r'<table class="ans glance" data-env="([^"]+)">(.*?)</table>', page)
    assert [e for e, _ in tables] == ["HalfCheetah-v5", "Hopper-v5"]
    for env, t in tables:
        cells = [c for c in _cells(t) if c[1] == "glance_speedup"]
        want = df[(df.env == env) & (df.scenario == "inference") & (df.batch == 1) & (df.bits == 8) & (df.pattern != "dense")]
        assert {pid for pid, _, _ in cells} == set(want.point_id)
        for pid, _, v in cells:
            assert v == pytest.approx(by_id.loc[pid].speedup_vs_dense, rel=1e-12)
        # Returns: the 8-bit evaluation over dense TD3 as trained (32 bits), as the quality table joined them.
        dense32 = df[(df.env == env) & (df.method == "td3") & (df.pattern == "dense") & (df.bits == 32)].return_mean.iloc[0]
        fr = [float(v) for v in re.findall(r'data-col="glance_return_fraction" data-value="([^"]+)"', t)]
        rows = re.findall(r"<tr><td class=l>([^<]+)</td>", t)
        assert len(fr) == 5 and len(rows) == 6  # one-shot: no return, and the cell says why
        assert 'unstructured:0.9 one-shot</td><td class=na title="pruned one-shot: never trained, so never evaluated">' in t
        for label, v in zip(rows, fr):
            r8 = want[[agent_label_of(m, a) == html_lib.unescape(label) for m, a in zip(want.method, want.agent)]]
            assert v == pytest.approx(r8.return_mean.iloc[0] / dense32, rel=1e-12), label
        # Limiters in a word: an SRAM cliff is a point whose weights fit while dense's miss; N:M-only edge_ws runs
        # RLx2's unstructured mask dense.
        words = re.findall(r'data-point="([0-9a-f]+)" data-col="glance_speedup"[^>]*>.*?<span class=lim>([^<]*)</span>', t)
        assert len(words) == len(cells) and all(w for _, w in words)
        for pid, word in words:
            r = by_id.loc[pid]
            if word == "SRAM cliff":
                assert bool(r.fits_in_sram) and not bool(r.dense_fits_in_sram), pid
            if r.design == "edge_ws" and r.method == "rlx2":
                assert word == "runs dense"
            if r.design == "stc_hbm" and r.pattern == "2:4":
                assert word == "DRAM"
    assert "Caveat: dense TD3 has not learned Hopper-v5" in page.split("Hopper-v5 at a glance")[1].split("<h3")[0]


def test_glance_without_inference_or_8_bits_pairs_train_steps_with_the_agent_as_trained(sweep, tmp_path):
    """A sweep of train steps at 32 and 4 bits only: the glance takes the most common bitwidth and pairs each
    agent with its return as trained (32 bits), not with an evaluation at the points' bits."""
    import shutil

    df = pd.read_parquet(sweep / "points.parquet")
    sub = df[(df.scenario == "train_step") & df.bits.isin([32, 4])]
    out = tmp_path / "sub"
    out.mkdir()
    shutil.copy(sweep / "sweep.json", out / "sweep.json")
    sub.to_parquet(out / "points.parquet")
    build_report(out)
    page = (out / "report" / "index.html").read_text()
    bits = int(sub.bits.value_counts().idxmax())
    assert f"HalfCheetah-v5 at a glance: train step, batch 256, {bits} bits" in page
    t = re.search(r'<table class="ans glance" data-env="HalfCheetah-v5">(.*?)</table>', page).group(1)
    assert "<th>return as trained<br>" in t
    dense32 = sub[(sub.env == "HalfCheetah-v5") & (sub.method == "td3") & (sub.bits == 32)].return_mean.iloc[0]
    own = sub[(sub.env == "HalfCheetah-v5") & (sub.agent == "2:4") & (sub.bits == 32)].return_mean.iloc[0]
    fr = [float(v) for v in re.findall(r'data-col="glance_return_fraction" data-value="([^"]+)"', t)]
    assert fr and fr[0] == pytest.approx(own / dense32, rel=1e-12)  # first row: 2:4 as trained


def agent_label_of(method, agent):
    from reports.data import agent_label

    return agent_label(method, agent)


def test_why_legend_gives_one_colour_one_cause(page):
    """The why figures share one legend between the cycle and the energy panels: a colour there means one
    cause. A stall takes its energy component's colour (DRAM stall = dram, metadata stall = metadata,
    compute = mac) and no two other entries share a colour (it was red for both DRAM stall and metadata
    energy, while dram energy was brown). One entry per colour: 'compute' and 'mac (GPU: active power)' in one
    colour read as a duplicate entry, so a stall joins its component's entry, which names both."""
    why = next(f for f in _figures(page) if "What limits" in f["layout"]["title"]["text"])
    bars = [tr for tr in why["data"] if tr["type"] == "bar" and tr.get("name")]
    # keyed by legend group (the component): a name says what it is on a GPU row too, "mac (GPU: active power)"
    legend = {tr["legendgroup"]: tr for tr in bars if tr.get("showlegend")}
    same_cause = {"compute": "mac", "DRAM stall": "dram", "metadata stall": "metadata"}
    assert {"mac", "dram", "metadata", "mux"} <= set(legend) and not set(same_cause) & set(legend), list(legend)
    colours = [tr["marker"]["color"] for tr in legend.values()]
    assert len(colours) == len(set(colours)), {g: tr["marker"]["color"] for g, tr in legend.items()}
    for stall, comp in same_cause.items():
        drawn = [tr for tr in bars if tr["name"] == stall]
        assert drawn and all(tr["legendgroup"] == comp and tr["marker"]["color"] == legend[comp]["marker"]["color"]
                             for tr in drawn), stall
    assert legend["dram"]["name"] == "DRAM stall cycles / dram energy"
    assert legend["metadata"]["name"] == "metadata stall cycles / metadata energy"
    assert legend["mac"]["name"] == "compute cycles / mac energy (GPU: active power)"


from tests.test_report_html import load_page, needs_chromium, problems  # noqa: E402

LAYOUT_JS = """(function () {
  function box(el) { return {sw: el.scrollWidth, cw: el.clientWidth, ox: getComputedStyle(el).overflowX}; }
  return {
    view: window.innerWidth, page: document.documentElement.scrollWidth,
    cards: Array.from(document.querySelectorAll('table.ans')).map(function (t) {
      var c = t.closest('.card'); var b = box(c); b.name = t.dataset.design || t.className; return b; }),
    frames: Array.from(document.querySelectorAll('.frame')).map(box),
    quality: Array.from(document.querySelectorAll('table.quality')).map(function (t) { return box(t.closest('.frame')); }),
    plots: Array.from(document.querySelectorAll('div.plot')).map(function (d) {
      return d.getBoundingClientRect().right; })
  };
})()"""


@needs_chromium
def test_main_tables_fit_1400_px_without_horizontal_overflow(page, sweep):
    url = (sweep / "report" / "index.html").resolve().as_uri()
    b, session = load_page(url, width=1400)
    try:
        assert problems(b.events, url) == []
        got = b.send("Runtime.evaluate", {"expression": LAYOUT_JS, "returnByValue": True}, session=session)["result"]["value"]
        shot = b.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
    finally:
        b.close()
    import base64
    import struct

    png = base64.b64decode(shot)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">I", png[16:20])[0] == 1400  # a 1400 px wide screenshot
    assert got["view"] == 1400
    assert got["page"] <= got["view"], "the page scrolls sideways at 1400 px"
    # Every answer table (same-bits per design, quantization, returns) fits its card: nothing to scroll.
    assert len(got["cards"]) > 10
    for card in got["cards"]:
        assert card["sw"] <= card["cw"], card
    # Wider tables (front tables, RL quality) scroll inside their own frame, never the page.
    for frame in got["frames"]:
        assert frame["ox"] == "auto", frame
    # The RL quality tables fit too: their last columns (the GPUs, why '-') were hidden behind a scroll.
    assert len(got["quality"]) == 2
    for frame in got["quality"]:
        assert frame["sw"] <= frame["cw"], frame
    assert got["plots"] and max(got["plots"]) <= got["view"]


def test_train_step_points_carry_the_return_of_the_agent_as_trained(sweep):
    df = pd.read_parquet(sweep / "points.parquet")
    got = returns.as_trained(df)
    train = got[got.scenario == "train_step"]
    inf = df[(df.scenario == "inference") & df.return_mean.notna()]
    checked = 0
    for r in train.itertuples():
        own = inf[(inf.env == r.env) & (inf.method == r.method) & (inf.agent == r.agent) & (inf.bits == r.workload_bits)]
        if r.mask_source != "trained":
            assert math.isnan(r.return_mean)
            continue
        assert r.return_mean == own.return_mean.iloc[0] and r.return_eval_bits == r.return_trained_bits == r.workload_bits
        checked += 1
    assert checked and set(train[train.method == "gmp"].return_trained_bits) == {8}  # the QAT agent: 8 bits
    # Inference points keep the return evaluated at their own bits.
    i = got.scenario == "inference"
    assert got.return_mean[i].equals(df.return_mean[i]) and (got.return_eval_bits[i] == got.bits[i]).all()
    # And the fronts of the report are computed on exactly these returns.
    from tests.test_report_fronts import check_fronts_against_table

    doc = json.loads((sweep / "report" / "fronts.json").read_text())
    assert check_fronts_against_table(got, doc["fronts"]) == len(doc["fronts"])


def test_extreme_cells_are_a_table_cause_first_one_line_per_agent(sweep, page):
    """'Why the extreme cells are extreme' was a list of 2-4-line prose bullets (design, sentence, then a run-on
    list of every cell). Now one table row per (design, cause): the cause in a cell of its own, its numbers,
    and one line per agent with every cell it explains; designs in the tables' order (GPUs last)."""
    df = pd.read_parquet(sweep / "points.parquet")
    block = page.split("Why the extreme cells are extreme", 1)[1].split("</details>", 1)[0]
    assert "<table class=whyt>" in block and "<li>" not in block
    rows = re.findall(r'<tr data-design="([^"]+)"><td class=l>.*?</td><td class=l><b>([^<]+)</b></td>'
                      r'<td class=l>(.*?)</td><td class="l cells">(.*?)</td></tr>', block)
    assert rows
    designs = [d for d, *_ in rows]
    gpus = {"a100_sxm", "h100_sxm"}
    first_gpu = min(i for i, d in enumerate(designs) if d in gpus)
    assert all(d in gpus for d in designs[first_gpu:]), designs  # GPUs last, as in every table
    causes = {(d, c) for d, c, *_ in rows}
    assert ("scalesim_default_ws", "SRAM cliff") in causes and ("stc_hbm", "DRAM-bound") in causes
    for d, cause, numbers, cells in rows:
        assert not numbers.startswith(":") and cause not in ("", d)
        for line in cells.split("<br>"):  # one agent per line: "<b>agent</b> 16 b 1.05x/0.814, 8 b ..."
            assert re.fullmatch(r"<b>[^<]+</b> (\d+ b [0-9.]+x/[0-9.]+(, )?)+", line), line
    # Every fact kept: the cells listed are the page's same-bits figures (stc_hbm 2:4 at 16 b, first section).
    sc = df[(df.env == "HalfCheetah-v5") & (df.design == "stc_hbm") & (df.pattern == "2:4") & (df.bits == 16)
            & (df.scenario == "inference")].iloc[0]
    stc = next(cells for d, _, _, cells in rows if d == "stc_hbm")
    assert f"16 b {sc.speedup_vs_dense:.3g}x/{sc.energy_ratio_vs_dense:.3g}" in stc


def test_summary_md_extreme_cells_are_a_markdown_table(sweep):
    md = (sweep / "report" / "summary.md").read_text()
    block = md.split("Why the extreme cells are extreme:", 1)[1].split("\n\n", 2)[1]
    lines = block.splitlines()
    assert lines[0].startswith("| design | cause |") and lines[1] == "|---|---|---|---|"
    assert all(ln.startswith("| ") and ln.count(" | ") >= 3 for ln in lines[2:])
    assert any("| **SRAM cliff** |" in ln for ln in lines)


def test_why_figures_label_every_row_and_keep_the_sram_label_off_the_bars(page):
    """Only the last row of a why figure had its agent @bits tick labels, ~1000 px below the first row; and the
    'SRAM 65.5 KB' label sat inside the plot where scalesim_default_ws's bars reach the line. Every panel now
    names its bars, the rows are spaced by the labels' height, and the capacity label sits in the right margin."""
    whys = [f for f in _figures(page) if "What limits" in f["layout"]["title"]["text"]]
    assert len(whys) == 4
    for fig in whys:
        lay = fig["layout"]
        xs = {k: v for k, v in lay.items() if re.fullmatch(r"xaxis\d*", k)}
        assert len(xs) == 3 * 7 and all(v["showticklabels"] for v in xs.values())
        doms = sorted({tuple(v["domain"]) for k, v in lay.items() if re.fullmatch(r"yaxis\d*", k)}, reverse=True)
        gaps_px = [(a[0] - b[1]) * (lay["height"] - lay["margin"]["t"] - lay["margin"]["b"]) for a, b in zip(doms, doms[1:])]
        assert min(gaps_px) >= 100, gaps_px  # room for the -60 degree agent @bits labels between rows
        mem = [a for a in lay["annotations"] if a["text"].startswith(("SRAM", "L2 "))]
        assert len(mem) == 7
        for a in mem:  # right of the panel's right edge (x = 1 of its domain), not over the bars
            assert a["x"] == 1 and a["xanchor"] == "left" and a["xref"].endswith(" domain")
        assert lay["margin"]["r"] >= 80
        assert any("SRAM<br>65.5 KB" == a["text"] for a in mem)
        # each row's x axis names its own bars only: no labelled empty slot for a bitwidth the design does not run
        for k, v in xs.items():
            axis = "x" + k[len("xaxis"):]
            drawn = {c for tr in fig["data"] if tr.get("xaxis") == axis for c in tr.get("x") or [] if c is not None}
            assert drawn and set(v["categoryarray"]) == drawn, (k, set(v["categoryarray"]) - drawn)
        # the weights' log axis: ticks between decades (one "100" tick said little), each with its unit as the
        # memory line's label has it: "5,000" under "weights (KB)" beside "SRAM 4.19 MB" made the reader convert
        logs = [v for k, v in lay.items() if re.fullmatch(r"yaxis\d*", k) and v.get("type") == "log"]
        assert len(logs) == 7 and all(v["title"]["text"] == "weights (log scale)" and "dtick" not in v for v in logs)
        # ticks written out in full: plotly's own minor ticks read "2", "5" for 200 and 500
        for v in logs:
            assert len(v["tickvals"]) >= 2 and v["ticktext"] == [fmt_bytes(t * 1e3) for t in v["tickvals"]]
            assert all(re.fullmatch(r"\d+ (KB|MB)", t) for t in v["ticktext"]), v["ticktext"]
        assert any("MB" in t for v in logs for t in v["ticktext"])  # stc_hbm's 4.19 MB SRAM, the GPUs' L2
        # every bar's top and the memory line inside the axis, clear of its edge (a hollow bar's top edge was
        # cut where the range ended at the tallest bar); the bars of a row are on its third panel's axis
        for k, v in ((k, v) for k, v in lay.items() if re.fullmatch(r"yaxis\d*", k) and v.get("type") == "log"):
            axis = "y" + k[len("yaxis"):]
            tops = [y for tr in fig["data"] if tr.get("type") == "bar" and tr.get("yaxis") == axis
                    for y in tr["y"] if y]
            lines = [sh["y0"] for sh in lay.get("shapes", []) if sh.get("yref") == axis]
            assert tops and lines, k
            lo, hi = 10 ** v["range"][0], 10 ** v["range"][1]
            assert lo < min(tops) / 1.1 and hi > max(tops + lines) * 1.1, (k, lo, hi, min(tops), max(tops + lines))


def test_log_ticks_are_whole_numbers_1_2_5_per_decade():
    from reports.html import log_ticks

    vals, text = log_ticks(13.0, 262.0)
    assert vals == [10.0, 20.0, 50.0, 100.0, 200.0] and text == ["10", "20", "50", "100", "200"]
    vals, text = log_ticks(0.4, 4190.0)  # four decades and more: decades only
    assert vals == [1.0, 10.0, 100.0, 1000.0] and text == ["1", "10", "100", "1,000"]
    vals, text = log_ticks(0.15, 0.9)
    assert text == ["0.1", "0.2", "0.5", "1"]


def test_a_log_axis_under_a_decade_keeps_plotlys_ticks():
    """Our 1-2-5 ticks on points from 14 to 21 us were 10 and 20: one label in view. Where fewer than two of
    them fall among the points, plotly's own ticks (written in full under a decade) stay."""
    from reports.html import log_tick_axis

    assert log_tick_axis([14.0, 20.97]) == {} and log_tick_axis([168.4, 227.9]) == {}
    assert log_tick_axis([13.0, np.nan, None, 262.0])["tickvals"] == [10.0, 20.0, 50.0, 100.0, 200.0]
    assert log_tick_axis([9.0, 60.0])["tickvals"] == [10.0, 20.0, 50.0]  # under a decade, three ticks in view


def test_every_log_axis_on_the_page_writes_its_ticks_out(page):
    """The Pareto fronts and the GPU model's plots too, not only the why figures' weights: plotly's own
    labels between decades are bare digits, "10  2  5  100", so 20 and 50 read as 2 and 5."""
    counts = {"front": 0, "gpu": 0}
    for fig in _figures(page):
        lay = fig["layout"]
        title = str(lay.get("title", {}).get("text", ""))
        for k, ax in lay.items():
            if not re.fullmatch(r"[xy]axis\d*", k) or ax.get("type") != "log":
                continue
            assert len(ax.get("tickvals", [])) >= 2, (title, k)
            # the why figures' weights (in KB) carry their unit, as their SRAM line's label: "20 KB", "5 MB"
            want = ([fmt_bytes(t * 1e3) for t in ax["tickvals"]] if "What limits" in title
                    else [f"{t:,.0f}" if t >= 1 else f"{t:g}" for t in ax["tickvals"]])
            assert ax["ticktext"] == want, (title, k)
            data = [v for tr in fig["data"] for v in (tr.get("x" if k[0] == "x" else "y") or []) if v is not None]
            if data and not str(k).endswith(tuple("0123456789")):  # one-panel figures: the ticks span the points
                lo, hi = min(v for v in data if v > 0), max(data)
                assert ax["tickvals"][0] <= hi and ax["tickvals"][-1] >= lo, (title, k)
            if "NVIDIA" in title:
                counts["gpu"] += 1
            elif "What limits" not in title:
                counts["front"] += 1
    # 4 groups (env x scenario) x 5 log axes (energy, latency, both of energy vs latency, size); 4 GPUs x 3
    assert counts == {"front": 4 * 5, "gpu": 4 * 3}


def test_a_sweep_without_sparse_agents_has_no_glance_table(sweep, tmp_path):
    # summary.md printed the glance heading over an empty table where the page printed nothing.
    import shutil

    df = pd.read_parquet(sweep / "points.parquet")
    out = tmp_path / "dense_only"
    out.mkdir()
    shutil.copy(sweep / "sweep.json", out / "sweep.json")
    df[df.pattern == "dense"].to_parquet(out / "points.parquet")
    build_report(out)
    assert "at a glance" not in (out / "report" / "index.html").read_text()
    assert "at a glance" not in (out / "report" / "summary.md").read_text()


def test_cycle_counts_in_the_why_lines_have_thousands_separators(sweep, page):
    """'1128436 of 2164036 cycles are DRAM stalls' was read digit by digit; the counts carry separators and
    equal the row's figures."""
    from reports.why import limiters

    df = pd.read_parquet(sweep / "points.parquet")
    lim = limiters(df)
    seen = 0
    for (_, r), why in zip(df.iterrows(), lim.why):
        m = re.match(r"(?:DRAM-bound|slower than dense): ([0-9,]+) of ([0-9,]+) cycles", why)
        if not m:
            continue
        stall = r.stall_cycles_dram if why.startswith("DRAM") else r.stall_cycles_metadata
        assert m.group(1) == f"{stall:,.0f}" and m.group(2) == f"{r.cycles:,.0f}", why
        seen += r.cycles >= 1000
    # on the page too (scalesim_default_ws's train step at 32 bits runs some two million cycles)
    assert seen and re.search(r"[0-9]{1,3},[0-9]{3},[0-9]{3} of [0-9,]+ cycles are DRAM stalls", page)


def test_energy_png_lists_designs_in_table_order_with_its_title_and_no_overlap(sweep):
    """energy_<env>.png sorted designs by name (a100_sxm first, h100_sxm amid the accelerators), its title sat
    above the figure's top edge (the PNG did not say its env) and the right panel's labels ran over the left
    panel's totals."""
    import matplotlib

    matplotlib.use("Agg")
    from reports.data import design_order
    from reports.figures import energy_figure

    df = pd.read_parquet(sweep / "points.parquet")
    fig = energy_figure(df, "Hopper-v5")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    fig_box = fig.bbox
    title = fig._suptitle
    assert title.get_text() == "Hopper-v5: energy breakdown by component"
    tb = title.get_window_extent(r)
    assert tb.y1 <= fig_box.y1 and tb.y0 >= 0
    axes = fig.axes
    assert len(axes) == 2
    labels = [t.get_text() for t in axes[0].get_yticklabels()][::-1]  # top to bottom
    designs = list(dict.fromkeys(lab.split("  ")[0] for lab in labels))
    assert designs == design_order(df.design.unique()) and designs[-2:] == ["a100_sxm", "h100_sxm"]
    left_texts = [t.get_window_extent(r) for t in axes[0].texts]
    assert left_texts and max(b.x1 for b in left_texts) < axes[1].get_window_extent(r).x0
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_energy_png_legend_fits_a_one_scenario_figure(sweep):
    """energy_<env>.png put its component legend on one row as wide as its entries: in a one-scenario sweep's
    narrower figure (GPUs add "mac (GPU: active power)" and "leakage (GPU: idle/floor power)") it ran off both
    edges, "power)" and "leakag" left of it. It now wraps onto more rows inside the figure, above the panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reports.figures import energy_figure

    df = pd.read_parquet(sweep / "points.parquet")
    fig = energy_figure(df[df.scenario == "inference"], "Hopper-v5")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    (leg,) = fig.legends
    box, ext = fig.bbox, leg.get_window_extent(r)
    assert box.x0 - 0.5 <= ext.x0 and ext.x1 <= box.x1 + 0.5, (ext, box)
    tops = [max(ax.get_window_extent(r).y1, ax.title.get_window_extent(r).y1) for ax in fig.axes]
    assert ext.y0 >= max(tops) and ext.y1 <= fig._suptitle.get_window_extent(r).y0 + 0.5
    assert len(leg.get_texts()) == 7
    plt.close(fig)


def test_agent_labels_are_explained_once_under_the_glance_tables(sweep, page):
    """'rlx2 0.9/0.85', 'gmp 0.9 QAT8', 'unstructured:0.9 one-shot' and '(rnm-td3)' stood in every table with
    no word on what they mean; an 'Agents' key under the glance tables says it, from the labels themselves."""
    import html as html_lib

    key = answer.agent_key(pd.DataFrame({
        "env": "E", "pattern": ["dense", "2:4", "1:8", "unstructured", "unstructured", "2:4", "1:8", "unstructured"],
        "mask_source": ["trained"] * 6 + ["one-shot", "trained"],
        "method": ["td3", "rnm-td3", "rnm-td3", "rlx2", "gmp", "gmp", "one-shot(td3)", "foo"],
        "agent": ["dense", "2:4", "1:8", "rlx2 0.98/0.95", "gmp 0.9/0.8 QAT4", "gmp 2:4", "1:8 one-shot", "foo 1"]}))
    assert key == [
        "dense (td3): TD3 (Fujimoto et al. 2018), dense: the reference of every ratio and fraction",
        "gmp 2:4: gradual magnitude pruning during training to 2:4",  # agent order: by pattern, then method
        "2:4, 1:8 (rnm-td3): RNM-TD3, TD3 trained with N:M weights in every layer (of each M consecutive weights of "
        "a row, at most N kept)",
        "gmp 0.9/0.8 QAT4: gradual magnitude pruning during training to 90% / 80% of the actor's / critic's weights "
        "removed, then quantization-aware training at 4 bits",
        "rlx2 0.98/0.95: RLx2 (Tan et al. 2023): sparse from the start, 98% of the actor's and 95% of the critic's "
        "weights removed (unstructured)",
        "1:8 one-shot: the dense TD3 agent's weights pruned once by magnitude to 1:8, never trained after it, so "
        "never evaluated (hardware figures only)"]  # an unknown method ("foo") gets no sentence
    # An env without a dense TD3 agent runs another agent's weights dense: nothing is pruned "to dense".
    (alone,) = answer.agent_key(pd.DataFrame({"env": "E", "pattern": ["dense"], "mask_source": ["one-shot"],
                                              "method": ["one-shot(rlx2)"], "agent": ["dense one-shot"]}))
    assert alone == ("dense one-shot: the rlx2 agent's weights run dense as they are (its zeros stored and "
                     "multiplied), as the env has no dense TD3 agent; never evaluated at that (hardware figures only)")
    df = pd.read_parquet(sweep / "points.parquet")
    want = answer.agent_key(df)
    heads = [k.split(": ", 1)[0] for k in want]  # every agent of the sweep named once: alone, or in its method's group
    for m, a in set(zip(df.method, df.agent)):
        named = [h for h in heads if h == answer.agent_label(m, a)
                 or (h.endswith(f" ({m})") and a in h[:-len(m) - 3].split(", "))]
        assert len(named) == 1, (m, a, heads)
    section = page.split('id="answer"', 1)[1].split("<p class=lead>", 1)[0]
    (found,) = re.findall(r"<p class=small><b>Agents</b>: (.*?)</p>", section)
    assert html_lib.unescape(found) == "; ".join(want) + "."
    md = (sweep / "report" / "summary.md").read_text()
    assert "**Agents**: " + "; ".join(want) + "." in md.split("\n### ", 1)[0]


def test_a_one_shot_label_with_a_donor_per_env_names_the_envs_in_the_agents_key():
    """Envs without a dense TD3 agent prune (or run dense) whichever agent they have, so one label,
    'dense one-shot' or '1:2 one-shot', stood for a different agent in each env; the key gave one sentence
    per donor with nothing to tell which env it was (an Ant-v5 gmp agent, a Hopper-v5 dense one)."""
    key = answer.agent_key(pd.DataFrame({
        "env": ["Ant-v5", "Swimmer-v5", "Hopper-v5", "Ant-v5", "Hopper-v5", "Walker2d-v5", "Hopper-v5"],
        "pattern": ["dense", "dense", "dense", "1:2", "1:2", "1:2", "2:4"],
        "mask_source": ["one-shot", "one-shot", "trained", "one-shot", "one-shot", "one-shot", "one-shot"],
        "method": ["one-shot(gmp)", "one-shot(rnm-td3)", "td3", "one-shot(gmp)", "one-shot(td3)", "one-shot(td3)",
                   "one-shot(td3)"],
        "agent": ["dense one-shot", "dense one-shot", "dense", "1:2 one-shot", "1:2 one-shot", "1:2 one-shot",
                  "2:4 one-shot"]}))
    heads = [k.split(": ", 1)[0] for k in key]
    assert heads == ["dense (td3)", "dense one-shot (Ant-v5)", "dense one-shot (Swimmer-v5)",
                     "1:2 one-shot (Ant-v5)", "1:2 one-shot (Hopper-v5, Walker2d-v5)",
                     "2:4 one-shot"]  # one donor for the label: no envs needed
    assert key[1].endswith("the gmp agent's weights run dense as they are (its zeros stored and multiplied), as the "
                           "env has no dense TD3 agent; never evaluated at that (hardware figures only)")
    assert "the dense TD3 agent's weights pruned once by magnitude to 1:2" in key[4]


def test_a_gpus_leakage_is_named_its_idle_floor_power_on_the_page_and_in_the_png(sweep, page):
    """On a GPU row the energy component called "leakage" is the board's idle/floor power over the call's
    time (hwmodel/gpu/design_point.py), not transistor leakage: the why figures' legend and a GPU row's hover,
    and the energy PNG's legend, say so in the same words; an accelerator row's hover keeps "leakage"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reports.data import is_gpu
    from reports.figures import energy_figure

    label = "leakage (GPU: idle/floor power)"
    why = [f for f in _figures(page) if "What limits" in f["layout"]["title"]["text"]]
    leak = [tr for f in why for tr in f["data"] if tr.get("legendgroup") == "leakage"]
    assert leak and {tr["name"] for tr in leak} == {label}
    gpu_hover = [tr["hovertemplate"] for tr in leak if is_gpu(tr["hovertemplate"].split(" ", 1)[0])]
    acc_hover = [tr["hovertemplate"] for tr in leak if not is_gpu(tr["hovertemplate"].split(" ", 1)[0])]
    assert gpu_hover and all("<br>idle/floor power (leakage):" in h for h in gpu_hover), gpu_hover[:2]
    assert acc_hover and all("<br>leakage:" in h for h in acc_hover), acc_hover[:2]
    # the compute cycle bars share mac's legend entry, which names both
    mac = {tr["name"] for f in why for tr in f["data"] if tr.get("legendgroup") == "mac" and tr.get("showlegend")}
    assert mac == {"compute cycles / mac energy (GPU: active power)"}

    df = pd.read_parquet(sweep / "points.parquet")
    fig = energy_figure(df, "Hopper-v5")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert label in labels and "mac (GPU: active power)" in labels and "leakage" not in labels, labels
    plt.close(fig)
    acc = energy_figure(df[~df.design.map(is_gpu)], "Hopper-v5")  # no GPU row: the accelerator words alone
    labels = [t.get_text() for t in acc.legends[0].get_texts()]
    assert "leakage" in labels and "mac" in labels and not any("GPU" in t for t in labels), labels
    plt.close(acc)


def test_an_agent_of_one_seed_has_no_seed_range(tmp_path):
    # One seed's "range" is its return twice ("313-313"): beside a range of several seeds it would read as an
    # agent whose seeds agree, so none is given, in the return table and in what reads it (fronts, quality).
    q = tmp_path / "quality.csv"
    q.write_text("env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std\n"
                 "Hopper-v5,td3,dense,32,0,1000,10,3000.0,5.0\n"
                 "Hopper-v5,rnm-td3,2:4,32,0,1000,10,2800.0,5.0\n"
                 "Hopper-v5,rnm-td3,2:4,32,1,1000,10,2600.0,5.0\n")
    df = pd.DataFrame({"env": ["Hopper-v5"] * 2, "method": ["td3", "rnm-td3"], "agent": ["dense", "2:4"],
                       "pattern": ["dense", "2:4"], "mask_source": ["trained"] * 2, "bits": [32, 32],
                       "workload_bits": [32, 32], "return_mean": [3000.0, 2700.0],
                       "return_std_seeds": [math.nan, 141.4], "return_seeds": [1, 2]})
    t = returns.return_table(df, q).set_index("agent")
    assert t.loc["dense", "spread_kind"] == "" and math.isnan(t.loc["dense", "return_min"])
    assert t.loc["2:4", "spread_kind"] == "min-max" and (t.loc["2:4", "return_min"], t.loc["2:4", "return_max"]) == (2600, 2800)
    assert t.loc["2:4", "seeds"] == "0,1"


def test_without_dense_td3_returns_keep_their_seed_range(sweep, tmp_path):
    """An env with no dense TD3 agent shows returns, not fractions of dense: each with its seed range, in the
    glance and the return table, on the page as in summary.md (the page and the glance dropped it)."""
    import shutil

    df = pd.read_parquet(sweep / "points.parquet")
    sub = df[(df.env == "Hopper-v5") & (df.method != "td3") & (df.scenario == "inference") & (df.bits == 8)
             & df.design.isin(["edge_ws", "flex_nm"])]
    out = tmp_path / "nodense"
    out.mkdir()
    shutil.copy(sweep / "sweep.json", out / "sweep.json")
    sub.to_parquet(out / "points.parquet")
    build_report(out)
    ret = returns.return_table(sub, json.loads((sweep / "sweep.json").read_text())["quality_table"])
    r = ret[(ret.agent == "2:4") & (ret.bits == 8)].iloc[0]
    assert r.spread_kind == "min-max" and r.fraction != r.fraction and r.return_min < r.return_max
    rng, en = f"{r.return_min:.0f}-{r.return_max:.0f}", f"{r.return_min:.0f}\u2013{r.return_max:.0f}"
    md = (out / "report" / "summary.md").read_text()
    glance_md = md.split("at a glance", 1)[1].split("\n\n", 2)[1]
    assert f"| 2:4 (rnm-td3) | {r.return_mean:.0f} [{rng}] |" in glance_md
    assert "return at 8 b (no dense TD3 reference: the return itself) [min-max over seeds]" in md  # not "of dense"
    page = (out / "report" / "index.html").read_text()
    glance = re.search(r'<table class="ans glance" data-env="Hopper-v5">(.*?)</table>', page).group(1)
    want = f"{r.return_mean:.0f}<br><span class=spread>{en}</span></td>"
    assert "<span class=unit>no dense reference: the return, seed range</span>" in glance
    assert want in glance
    # No return at all (no quality table): the header stays as it was, not "no dense reference"
    rows = [("td3", "dense", None, []), ("rnm-td3", "2:4", None, [])]
    assert not answer._returns_only(rows)
    assert answer._returns_only(rows + [("rlx2", "rlx2 0.98/0.95", r, [])])
    table = re.search(r'<table class="ans ret">(.*?)</table>', page).group(1)
    assert f"{r.return_mean:.0f}<br><small>{en}</small></td>" in table
    assert "; below each: min\u2013max over seeds" in table


def test_a_gpu_only_sweep_gives_fractions_of_dense_as_trained(tmp_path):
    """A GPU-only sweep runs 16 and 8 bits only, so it has no point of dense TD3 at its own 32 bits: the
    fractions of dense divide by the bundled quality table's 32-bit dense rows (seeds averaged, as the sweep
    joins them), in the glance as in the return table; it gave the returns alone."""
    import yaml

    from sweeps import api

    cfg = tmp_path / "gpu.yaml"
    cfg.write_text(yaml.safe_dump({"designs": "none", "gpus": ["h100_sxm"], "bits": [16, 8], "patterns": ["dense", "2:4"],
                                   "scenarios": [{"scenario": "inference", "batch": 1}]}))
    out = tmp_path / "out"
    api.run(str(cfg), out, workers=1, progress=False)
    build_report(out)
    qpath = json.loads((out / "sweep.json").read_text())["quality_table"]
    with open(qpath) as fh:
        dense = [float(r["return_mean"]) for r in csv.DictReader(fh)
                 if (r["env"], r["method"], r["sparsity"], r["bits"]) == ("Hopper-v5", "td3", "dense", "32")]
    df = pd.read_parquet(out / "points.parquet")
    assert sorted(df.bits.unique()) == [8, 16] and len(dense) > 1
    r = df[(df.env == "Hopper-v5") & (df.agent == "2:4") & (df.bits == 8)].iloc[0]
    md = (out / "report" / "summary.md").read_text()
    glance = md.split("**Hopper-v5 at a glance", 1)[1].split("\n\n", 2)[1]
    assert f"| 2:4 (rnm-td3) | {r.return_mean / np.mean(dense):.2f} [" in glance
    assert f"Return as a fraction of dense TD3 as trained ({np.mean(dense):.0f}, taken from the quality table" in md


def _sig_digits(text: str) -> int:
    """Significant digits a ratio is written with ("0.610" 3, "0.61" 2, "1x" 1, "0.00460" 3)."""
    return len(text.replace(",", "").replace(".", "").lstrip("0"))


def test_ratios_are_written_at_one_precision_on_the_page_and_in_the_summary(sweep, page):
    from reports.data import fmt_ratio

    # The page printed '0.61' beside '0.566' and '1x / 1' beside '1.99x / 0.61': every ratio now has three
    # significant digits, trailing zeros kept, from one helper.
    assert [fmt_ratio(v) for v in (0.61, 1, 18.1, 0.0046, 1234.5, math.nan)] == [
        "0.610", "1.00", "18.1", "0.00460", "1,234", "\u2013"]
    shown = re.findall(r'data-col="(?:speedup_vs_dense|energy_ratio_vs_dense|quantization_[a-z_]+)" '
                       r'data-value="([^"]+)">([^<]+)', page)
    assert shown
    for value, text in shown:
        assert text == fmt_ratio(float(value)) and _sig_digits(text) == 3, (value, text)
    md = (sweep / "report" / "summary.md").read_text()
    pairs = re.findall(r"\| ([0-9.,]+)x / ([0-9.,]+)", md)
    assert len(pairs) > 100
    for sp, en in pairs:
        assert _sig_digits(sp) == 3 and _sig_digits(en) == 3, (sp, en)
    glance = re.findall(r"<b>([0-9.,]+)x</b> / ([0-9.,]+)<br>", page)
    assert glance and all(_sig_digits(a) == 3 and _sig_digits(b) == 3 for a, b in glance), glance


def test_a_gpu_only_sweep_gives_train_steps_the_return_as_trained_from_the_quality_table(tmp_path):
    """A GPU-only sweep has no 32-bit point, so its train-step points (which carry the agent as trained) had no
    return at all: left out of every return front, and the return table's 'as trained' column empty, where the
    accelerator report has them. The agent as trained is the quality table's 32-bit rows, seeds averaged as the
    sweep joins them: the same returns and seed range as a sweep with 32 bits."""
    import yaml

    from reports.data import seed_range_text
    from sweeps import api

    outs = {}
    for name, designs, gpus, bits in (("gpu", "none", ["h100_sxm"], [16, 8]), ("acc", ["scalesim_default_ws"], "none", [32, 8])):
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump({"designs": designs, "gpus": gpus, "bits": bits, "patterns": ["dense", "2:4"],
                                       "scenarios": [{"scenario": "train_step", "batch": 256}]}))
        outs[name] = tmp_path / name
        api.run(str(cfg), outs[name], workers=1, progress=False)
        build_report(outs[name])
    fronts = {k: json.loads((o / "report" / "fronts.json").read_text()) for k, o in outs.items()}
    assert not any("have no return of their agent as trained" in n for n in fronts["gpu"]["notes"])
    rv = [f for f in fronts["gpu"]["fronts"] if f["name"] == "return_vs_energy"]
    assert rv and all(f["excluded_missing"] == 0 for f in rv)
    gpu = pd.read_parquet(outs["gpu"] / "points.parquet")
    acc = pd.read_parquet(outs["acc"] / "points.parquet")
    assert sorted(gpu.bits.unique()) == [8, 16]
    want = returns.return_table(acc, json.loads((outs["acc"] / "sweep.json").read_text())["quality_table"])
    got = returns.return_table(gpu, json.loads((outs["gpu"] / "sweep.json").read_text())["quality_table"])
    key = ["env", "agent", "bits"]
    w32, g32 = (t[t.bits == 32].set_index(key).sort_index() for t in (want, got))
    assert len(w32) == 4 and list(g32.index) == list(w32.index)  # dense and 2:4, both envs
    for col in ("return_mean", "return_min", "return_max", "fraction", "n_seeds"):
        assert np.allclose(g32[col].to_numpy(float), w32[col].to_numpy(float)), col
    assert g32.from_quality_table.all() and not w32.from_quality_table.any()
    # The train-step rows of the fronts carry them, with their seed range; the page's 'as trained' column too.
    md = (outs["gpu"] / "report" / "summary.md").read_text()
    r = g32.loc[("Hopper-v5", "2:4", 32)]
    assert f"{r.return_mean:.0f} [{seed_range_text(r.return_min, r.return_max)}]" in md
    assert "eval 32 b: taken from the quality table" in md
    page = (outs["gpu"] / "report" / "index.html").read_text()
    card = page.split("Return as a fraction of dense TD3 as trained", 2)[2].split("</table>", 1)[0]
    assert f'class="own" title="2:4 (rnm-td3), trained at 32 bits' in card and f'data-value="{float(r.fraction)!r}">' in card


def test_return_help_says_what_each_return_cell_divides_by(page):
    """The help under the return table said the cells divide by dense's return as trained 'where the sweep has
    one (the caption says which)': since a sweep without that point takes it from the quality table, and
    without either a cell is the return itself, the help names each case the table can show, and the spread's
    fallbacks (std where the seeds are unknown, none for one seed), as returns.html_cards writes them."""
    help_text = re.search(r"<p>How to read the return table: (.*?)</p>", page).group(1)
    assert "where the sweep has one" not in help_text
    for case in ("the sweep's own point of dense", "the quality table the sweep joined", "the return itself",
                 "mean \u00b1 one standard deviation", "none for an agent of one seed"):
        assert case in help_text, case


def test_glance_and_same_bits_tables_say_what_their_numbers_are(page):
    """The glance's design cells ('1.99x / 0.610') were explained only in the help paragraph under both envs'
    tables, and the same-bits tables headed the energy ratio 'energy / dense' where the glance, help and
    summary.md say 'energy ratio'."""
    captions = re.findall(r'<table class="ans glance"[^>]*><caption>(.*?)</caption>', page)
    assert len(captions) == 2 and all(answer.GLANCE_KEY in c for c in captions)
    assert "speedup x / energy ratio" in answer.GLANCE_KEY
    assert "energy / dense (lower saves)" not in page and "energy ratio vs dense (lower saves)</th>" in page


def test_quantization_rows_name_their_baseline_in_words(sweep, page):
    """'Quantization alone' rows read 'a100_sxm (16 b)', as if 16 b were a variant of the design; the baseline
    (dense at the design's highest bits) has its own column, on the page and in summary.md."""
    df = pd.read_parquet(sweep / "points.parquet")
    dense = df[(df.pattern == "dense") & (df.mask_source == "trained")]
    top = dense.groupby("design").bits.max()
    tables = re.findall(r'<table class="ans quant">.*?</table>', page, flags=re.S)
    assert tables
    md = (sweep / "report" / "summary.md").read_text()
    for design, ref in top.items():
        if dense[dense.design == design].bits.nunique() < 2:
            continue
        row = f'{design}</td><td class=l>dense at {int(ref)} bits</td>'
        assert all(row in t for t in tables), design
        assert f"| {design} | dense at {int(ref)} bits |" in md, design
    assert not re.search(r"[a-z0-9_]+ \(\d+ b\)</td>", "".join(tables))
    assert not re.search(r"^\| [a-z0-9_]+ \(\d+ b\) \|", md, flags=re.M)


def test_glance_limiter_agrees_with_the_why_table_on_no_gain(sweep, page):
    """flex_nm's one-shot unstructured:0.9 at 8 bits (HalfCheetah 0.7%, Hopper 1.6% of dense's MACs skipped, 1.00x)
    read 'compute' in the glance while the why table explained the same cell as 'no gain'; a sparse accelerator
    cell within NO_GAIN of dense that is not DRAM-bound and does run its pattern now says 'no gain'."""
    from reports.why import NO_GAIN

    df = pd.read_parquet(sweep / "points.parquet").set_index("point_id")
    seen = 0
    for _, t in re.findall(r'<table class="ans glance" data-env="([^"]+)">(.*?)</table>', page):
        words = re.findall(r'data-point="([0-9a-f]+)" data-col="glance_speedup"[^>]*>.*?<span class=lim>([^<]*)</span>', t)
        for pid, word in words:
            r = df.loc[pid]
            if r.design == "flex_nm" and r.method == "one-shot(td3)" and r.pattern == "unstructured:0.9":
                assert word == "no gain", (pid, word)
                seen += 1
            if word == "no gain":
                assert abs(r.speedup_vs_dense - 1) < NO_GAIN and r.macs_issued < r.macs_dense, pid
    assert seen == 2
    md = (sweep / "report" / "summary.md").read_text()
    assert "1.00x / 1.02 [no gain]" in md or "1.00x / 1.01 [no gain]" in md


def test_flex_nm_4_bit_unstructured_slowdown_is_explained_on_the_page(sweep, page):
    """flex_nm at 4 bits runs the unstructured agents at about 0.81x dense's speed and 1.24x its energy: the
    why line (tooltip and summary.md's table) says what waits, that no MAC is skipped to pay for it, and that the
    energy follows the longer run (leakage), with the row's own numbers."""
    from reports.why import limiters

    df = pd.read_parquet(sweep / "points.parquet")
    lim = limiters(df)
    pick = ((df.design == "flex_nm") & (df.bits == 4) & (df.scenario == "inference") & (df.pattern == "unstructured")
            & (df.speedup_vs_dense < 0.95) & (df.macs_issued == df.macs_dense)).to_numpy()
    assert pick.any()
    summary = (sweep / "report" / "summary.md").read_text()
    for (_, r), why, leak in zip(df[pick].iterrows(), lim.why[pick], lim.leakage_share[pick]):
        want = (f"slower than dense: {r.stall_cycles_metadata:,.0f} of {r.cycles:,.0f} cycles wait for N:M/index "
                f"metadata, which dense never loads, while the design issues every dense MAC (it cannot exploit this "
                f"sparsity), so nothing pays for that wait; leakage is {100 * leak:.0f}% of the energy, so energy "
                f"follows latency")
        assert why == want
        assert html.escape(want) in page
        assert want.split(": ", 1)[1] in summary


def test_glance_names_a_pattern_the_design_runs_as_another(sweep, page):
    """stc_hbm runs 2:4 only, so a 1:4 or 1:8 agent runs 2:4 and its glance cell holds exactly 2:4's figures; the
    cell said "DRAM" beside them, with no word why (likewise 1:8 on edge_ws and flex_nm, which run it as 1:4, and
    1:4 or 1:8 on a GPU). It now says "runs as 2:4" and its hover says what ran and why. Exactly those cells: the
    word comes from the sweep's runs_as column, which is what nmlab check's note says for the same point."""
    from hwmodel.gpu.design_point import load_design_point
    from hwmodel.simulate import simulate
    from hwmodel.workload import load_workload
    from reports.check import _runs_as as check_runs_as

    df = pd.read_parquet(sweep / "points.parquet")
    by_id = df.set_index("point_id")
    words = {}
    for t in re.findall(r'<table class="ans glance" data-env="[^"]+">(.*?)</table>', page):
        words.update(re.findall(r'data-point="([0-9a-f]+)" data-col="glance_speedup"[^>]*>.*?<span class=lim>([^<]*)</span>', t))
    tips = dict(re.findall(r'<td style="[^"]*" title="([^"]*)" data-point="([0-9a-f]+)" data-col="glance_speedup"', page))
    tips = {pid: html.unescape(tip) for tip, pid in tips.items()}
    runs = {pid: w for pid, w in words.items() if w.startswith("runs as")}
    want = {(d, p): f"runs as {ran}" for d, p, ran in [
        ("stc_hbm", "1:4", "2:4"), ("stc_hbm", "1:8", "2:4"), ("edge_ws", "1:8", "1:4"), ("flex_nm", "1:8", "1:4"),
        ("a100_sxm", "1:4", "2:4"), ("a100_sxm", "1:8", "2:4"), ("h100_sxm", "1:4", "2:4"), ("h100_sxm", "1:8", "2:4")]}
    assert sorted((by_id.loc[p].design, by_id.loc[p].pattern, w) for p, w in runs.items()) \
        == sorted([(d, p, w) for (d, p), w in want.items()] * 2)  # both envs
    stc = next(p for p in runs if by_id.loc[p].design == "stc_hbm" and by_id.loc[p].pattern == "1:4")
    assert ("Why: runs as 2:4: this design runs 1:4 as 2:4 (every group of 4 of the mask holds <= 2): the "
            "figures are 2:4's; DRAM-bound: ") in tips[stc]
    two = df[(df.env == by_id.loc[stc].env) & (df.design == "stc_hbm") & (df.pattern == "2:4") & (df.bits == 8)
             & (df.scenario == "inference") & (df.batch == 1)].iloc[0]
    assert (two.latency_s, two.energy_pj) == (by_id.loc[stc].latency_s, by_id.loc[stc].energy_pj)  # 2:4's figures
    assert words[two.point_id] == "DRAM"
    # One definition: the sweep's column is nmlab check's runs_as for the same workload, design and setting.
    bundled = REPO_DATA / "workloads"
    for design, name in [("stc_hbm", "hopper_1of4_s0"), ("edge_ws", "hopper_1of8_s0"), ("h100_sxm", "hopper_1of8_s0"),
                         ("scalesim_default_ws", "hopper_rlx2_s0"), ("unstructured_ws", "hopper_2of4_s0"),
                         ("edge_ws", "hopper_2of4_s0")]:
        row = df[(df.workload == name) & (df.design == design) & (df.bits == 8) & (df.scenario == "inference")
                 & (df.batch == 1)].iloc[0]
        wl = load_workload(bundled / f"{name}.nmw")
        res = simulate(wl, load_design_point(design), batch=1, bits=8, scenario="inference")
        assert row.runs_as == check_runs_as(res), (design, name)  # what evaluate_combinations gives nmlab check
        assert bool(row.runs_as) == (design != "edge_ws" or name != "hopper_2of4_s0")


REPO_DATA = Path(__file__).resolve().parents[1] / "hwmodel" / "data"


def test_an_envs_caveats_are_said_once_in_the_answer(sweep, page):
    """Hopper-v5's caveats (dense has not learned, seeds disagree) stood under its glance table and again, word for
    word, beside its return table further down. They are said once, where a reader meets them first; the env's
    section links up to them on the page and leaves them out of summary.md. (The RL quality table keeps its own.)"""
    cav = returns.caveats(returns.return_table(pd.read_parquet(sweep / "points.parquet"),
                                               json.loads((sweep / "sweep.json").read_text())["quality_table"]))["Hopper-v5"]
    answer_html = page.split('<h2 id="answer">', 1)[1].split("<h2", 1)[0]
    for c in cav:
        assert answer_html.count(html.escape(c)) == 1, c
    glance, section = answer_html.split('<h3 id="answer-Hopper-v5">', 1)
    assert all(html.escape(c) in glance.split("Hopper-v5 at a glance", 1)[1] for c in cav)
    assert (f'<p class=small>{len(cav)} caveats on these returns: under the <a href="#glance-Hopper-v5">Hopper-v5 '
            'glance table</a> above.</p>') in section and 'id="glance-Hopper-v5"' in glance
    md = (sweep / "report" / "summary.md").read_text()
    answer_md = md.split("## What each pattern buys", 1)[1].split("\n## ", 1)[0]
    for c in cav:
        assert answer_md.count(f"> Caveat: {c}") == 1, c
    assert "Caveat" not in answer_md.split("\n### Hopper-v5\n", 1)[1]


def test_glance_cells_read_speedup_then_energy_and_a_seed_range_around_the_return(sweep, page):
    """Each glance design cell reads "<speedup>x / <energy ratio>" of its own point, and each return
    cell's seed range is "lowest-highest" around the mean: min <= mean <= max survives rounding to
    two places, so lo <= fraction <= hi holds on the page and in summary.md, with some lo < hi."""
    from reports.data import fmt_ratio

    by_id = pd.read_parquet(sweep / "points.parquet").set_index("point_id")
    cells = re.findall(r'data-point="([0-9a-f]+)" data-col="glance_speedup" data-value="[^"]+"><b>([^<]+)</b> / ([^<]+)<br>',
                       page)
    assert cells
    for pid, sp, en in cells:
        r = by_id.loc[pid]
        assert (sp, en) == (f"{fmt_ratio(r.speedup_vs_dense)}x", fmt_ratio(r.energy_ratio_vs_dense)), pid
    num = r"(-?[0-9]+\.[0-9]{2})"
    spreads = re.findall(r'data-col="glance_return_fraction" data-value="[^"]+">' + num
                         + r'<br><span class=spread>' + num + "\u2013" + num + "</span>", page)
    md = (sweep / "report" / "summary.md").read_text()
    md_spreads = re.findall(r"^\| [^|]+ \| " + num + r" \[" + num + "-" + num + r"\] \|", md, flags=re.M)
    for found in (spreads, md_spreads):
        assert found
        for f, lo, hi in found:
            assert float(lo) <= float(f) <= float(hi), (f, lo, hi)
        assert any(float(lo) < float(hi) for _, lo, hi in found)


def test_summary_md_headlines_name_the_largest_speedup_and_the_lowest_energy_ratio(sweep):
    """Per section, summary.md's first line: the largest speedup and the lowest energy ratio of the
    section's sparse points, recomputed here from points.parquet."""
    from reports.data import fmt_ratio, section_key

    df = pd.read_parquet(sweep / "points.parquet")
    md = (sweep / "report" / "summary.md").read_text()
    checked = 0
    for (env, sc, batch), rows in df.groupby(["env", "scenario", "batch"], sort=True):
        sparse = rows[(rows.pattern != "dense") & rows.speedup_vs_dense.notna()]
        if not len(sparse):
            continue
        head = md.split(f"\n## {section_key(env, sc, int(batch))}\n", 1)[1].strip().splitlines()[0]
        sp = re.search(r"(?:same bits: |at best )([0-9.,]+)x", head).group(1)
        en = re.search(r"(?:lowest energy ratio: |at best )([0-9.,]+)(?: \(|\))", head.split(";", 1)[1]).group(1)
        assert sp == fmt_ratio(sparse.speedup_vs_dense.max()), head
        assert en == fmt_ratio(sparse.energy_ratio_vs_dense.min()), head
        checked += 1
    assert checked >= 2


def test_a_ratio_that_rounds_to_1000_is_written_as_a_whole_number_with_a_separator():
    # 999.7 at 3 significant digits is 1.00e+03: written out as every ratio of 1,000 and over is.
    from reports.data import fmt_ratio

    assert fmt_ratio(999.7) == fmt_ratio(1000.0) == "1,000"
    assert fmt_ratio(999.4) == "999"


def test_glance_first_row_is_dense_at_the_glance_bits(sweep, page):
    """The glance compared each sparse agent's 8-bit return with nothing at 8 bits: its fractions divide dense
    TD3 as trained (32 b), and dense's own 8-bit return (HalfCheetah 1.01, not 1.00) was only in the return table
    further down. Its first row is dense itself: its return at 8 bits with the seed range, and per design the
    latency / energy its ratios divide, each equal to a recomputation from points.parquet; in summary.md too."""
    from reports.data import fmt_energy, fmt_time

    df = pd.read_parquet(sweep / "points.parquet")
    md = (sweep / "report" / "summary.md").read_text()
    for env, t in re.findall(r'<table class="ans glance" data-env="([^"]+)">(.*?)</table>', page):
        first = re.search(r"<tbody>(<tr[^>]*>.*?</tr>)", t).group(1)
        assert first.startswith("<tr class=abs><td class=l>dense (td3): reference</td>"), first
        dense = df[(df.env == env) & (df.method == "td3") & (df.pattern == "dense")]
        d8 = dense[(dense.scenario == "inference") & (dense.batch == 1) & (dense.bits == 8)]
        dense32 = dense[dense.bits == 32].return_mean.iloc[0]
        v = float(re.search(r'data-col="glance_reference_return_fraction" data-value="([^"]+)"', first).group(1))
        assert v == pytest.approx(d8.return_mean.iloc[0] / dense32, rel=1e-12)
        cells = re.findall(r'data-point="([0-9a-f]+)" data-col="glance_reference">([^<]+)<', first)
        assert {pid for pid, _ in cells} == set(d8.point_id)
        by_id = d8.set_index("point_id")
        for pid, text in cells:
            assert text == f"{fmt_time(by_id.latency_s[pid])} / {fmt_energy(by_id.energy_pj[pid])}", pid
        glance_md = md.split(f"**{env} at a glance", 1)[1].split("\n\n", 2)[1]
        row = next(line for line in glance_md.splitlines() if line.startswith("| dense (td3): reference |"))
        assert row.startswith(f"| dense (td3): reference | {d8.return_mean.iloc[0] / dense32:.2f} [")
    assert "<span class=unit>of dense as trained, seed range</span>" in page


PLOT_TITLES_JS = """Array.from(document.querySelectorAll('div.plot')).map(function (d) {
  var m = d.querySelector('.modebar'), b = m.getBoundingClientRect();
  return {id: d.id, modebar: [b.left, b.top, b.right, b.bottom],
          titles: Array.from(d.querySelectorAll('.gtitle, .gtitle-subtitle')).map(function (t) {
            var r = t.getBoundingClientRect(); return [t.textContent, r.left, r.top, r.right, r.bottom]; })};
})"""


@needs_chromium
def test_plot_titles_clear_the_toolbar_at_1400_px(page, sweep):
    """'Return vs energy per pass  (18 points without return left out)' ran 7 px under plotly's toolbar (its
    camera and zoom icons) at 1400 px. No plot's title or subtitle overlaps its toolbar; a front's count of
    points left out is its subtitle."""
    url = (sweep / "report" / "index.html").resolve().as_uri()
    b, session = load_page(url, width=1400)
    try:
        plots = b.send("Runtime.evaluate", {"expression": PLOT_TITLES_JS, "returnByValue": True},
                       session=session)["result"]["value"]
    finally:
        b.close()
    assert len(plots) == page.count('class="plot"') > 0
    subtitles = 0
    for p in plots:
        ml, mt, mr, mb = p["modebar"]
        assert p["titles"], p["id"]
        for text, left, top, right, bottom in p["titles"]:
            assert not (left < mr and ml < right and top < mb and mt < bottom), (p["id"], text, p["modebar"])
            subtitles += "points without return left out" in text
    assert subtitles >= 12  # the return fronts of every section say what they leave out


def test_extreme_cells_group_leakage_and_compute_bound_under_their_cause_word():
    """A why line whose first words carry its own figures ('leakage is 69% of the energy: ...') or that has no ': '
    ('compute-bound (63% of cycles computing); energy mostly dram (93%)') went whole into the cause column (one row
    per percentage, an empty numbers column, and a cause column so wide that the numbers wrapped to one word a line:
    13,000 px per scenario of a 15-design sweep). The cause is the verdict's name, the line its numbers."""
    from reports.answer import extreme_html, extreme_notes

    def rec(label, sp, er, verdict, why):
        return {"design": "scalesim_default_ws", "pattern": "unstructured:0.5", "label": label, "bits": 8,
                "speedup_vs_dense": sp, "energy_ratio_vs_dense": er, "verdict": verdict, "why": why}

    leak = [rec("a one-shot", 0.5, 1.5, "leakage", "leakage is 69% of the energy: energy follows latency, not the MAC count"),
            rec("b one-shot", 0.6, 1.4, "leakage", "leakage is 61% of the energy: energy follows latency, not the MAC count")]
    comp = [rec("c one-shot", 0.78, 1.35, "compute-bound", "compute-bound (63% of cycles computing); energy mostly dram (93%)")]
    cliff = [rec("d", 5.0, 0.01, "SRAM cliff", "SRAM cliff: these weights (21 KB) fit the 65 KB SRAM, dense (286 KB) does not")]
    runs = [rec("e", 5.0, 0.01, "runs as", "runs as 2:4: this design runs 1:4 as 2:4: the figures are 2:4's")]
    notes = extreme_notes(leak + comp + cliff + runs)
    got = {n["cause"]: n["numbers"] for n in notes}
    assert got == {"leakage": "leakage is 69% of the energy: energy follows latency, not the MAC count",
                   "compute-bound": "compute-bound (63% of cycles computing); energy mostly dram (93%)",
                   "SRAM cliff": "these weights (21 KB) fit the 65 KB SRAM, dense (286 KB) does not",
                   "runs as 2:4": "this design runs 1:4 as 2:4: the figures are 2:4's"}, got
    assert [c for c in notes if c["cause"] == "leakage"][0]["cells"] == [("a one-shot", "8 b 0.500x/1.50"),
                                                                         ("b one-shot", "8 b 0.600x/1.40")]
    assert "<td class=l><b>leakage</b></td>" in extreme_html(notes, {})


def test_summary_md_opens_with_a_contents_list_whose_links_reach_their_headings(sweep):
    """summary.md of a 15-design sweep is 5,000 lines under 32 headings with no way to them but scrolling. It
    has a contents list after its notes: every heading ## to ####, each a link to the anchor GitHub gives it
    (the second 'Hopper-v5' heading: #hopper-v5-1)."""
    from reports.summary import heading_anchor

    md = (sweep / "report" / "summary.md").read_text()
    head, toc = md.split("\n## Contents\n", 1)
    toc, body = toc.split("\n\n\n", 1) if "\n\n\n" in toc else toc.split("\n\n## ", 1)
    links = re.findall(r"^( *)- \[(.+)\]\(#([^)]+)\)$", toc, re.M)
    headings = re.findall(r"^(#{2,4}) (.+?)\s*$", md.split("\n## Contents\n", 1)[1], re.M)[0:]
    anchors, seen = [], {}
    for _, text in headings:
        base = heading_anchor(text)
        anchors.append(base + (f"-{seen[base]}" if seen.get(base) else ""))
        seen[base] = seen.get(base, 0) + 1
    assert [(len(h) - 2, t, a) for (h, t), a in zip(headings, anchors)] == [(len(i) // 2, t, a) for i, t, a in links]
    assert len(links) == len(set(a for *_, a in links)) >= 10
    assert ("", "What each pattern buys at equal bits, and what it costs",
            "what-each-pattern-buys-at-equal-bits-and-what-it-costs") in links
    assert "hopper-v5-1" in {a for *_, a in links} and ("", "Figures", "figures") in links
    assert heading_anchor(r"a\_b: c, batch 1 (x)") == "a_b-c-batch-1-x"


@needs_chromium
def test_each_same_bits_tooltip_is_sent_once_and_shown_on_both_cells_of_its_point(page, sweep):
    """A same-bits row gave each point's tooltip (~550 characters) on its speedup cell and again on its energy ratio
    cell: 0.25 MB of the default page, 3 MB of a 15-design sweep's. The page carries it once, on the speedup cell,
    and in the browser the energy ratio cell of the same point shows the same tooltip."""
    cells = re.findall(r'<td style="[^"]*"( title="[^"]*")? data-point="([0-9a-f]+)" data-col="(speedup_vs_dense|'
                       r'energy_ratio_vs_dense)"', page)
    assert cells and all(bool(t) == (c == "speedup_vs_dense") for t, _, c in cells)
    url = (sweep / "report" / "index.html").resolve().as_uri()
    b, session = load_page(url)
    try:
        assert problems(b.events, url) == []
        got = b.send("Runtime.evaluate", {"returnByValue": True, "expression": """
            Array.from(document.querySelectorAll('table.ans td[data-col="energy_ratio_vs_dense"]')).map(function (td) {
              var s = td.parentNode.querySelector('td[data-col="speedup_vs_dense"][data-point="' + td.dataset.point + '"]');
              return [td.dataset.point, td.title, s ? s.title : null]; })"""}, session=session)["result"]["value"]
    finally:
        b.close()
    assert len(got) == sum(c == "energy_ratio_vs_dense" for *_, c in cells) > 100
    for pid, tip, speedup_tip in got:
        assert tip and tip == speedup_tip and tip.endswith(f"Point {pid}."), (pid, tip, speedup_tip)


@needs_chromium
def test_wide_glance_and_quality_tables_keep_their_agent_column_in_view_when_scrolled(sweep):
    """With 15 designs the glance table (1,870 px) and the RL quality table (1,787 px) scroll sideways inside their
    frame at 1400 px, and their agent column scrolled away with the rest: a reader looking at rtx5080's column no
    longer saw which agent a row was. The first column stays at the frame's left edge (here at a 700 px window,
    where the default report's tables are as much wider than the window)."""
    url = (sweep / "report" / "index.html").resolve().as_uri()
    b, session = load_page(url, width=700, height=900)
    try:
        got = b.send("Runtime.evaluate", {"returnByValue": True, "expression": """
            Array.from(document.querySelectorAll('div.glance, div.frame')).filter(function (f) {
              return f.querySelector('table.glance, table.quality'); }).map(function (f) {
              var before = f.scrollWidth - f.clientWidth;
              f.scrollLeft = 100000;
              var fl = f.getBoundingClientRect().left;
              return [f.querySelector('table').className, before,
                      Array.from(f.querySelectorAll('tr')).map(function (tr) {
                        return Math.round(tr.firstElementChild.getBoundingClientRect().left - fl); })]; })"""},
            session=session)["result"]["value"]
    finally:
        b.close()
    kinds = {k for k, *_ in got}
    assert {"ans glance", "quality"} <= kinds, kinds
    for kind, overflow, lefts in got:
        assert overflow > 100, (kind, overflow)  # the table is wider than its frame: scrolled
        assert lefts and all(0 <= x <= 2 for x in lefts), (kind, lefts)


def test_energy_png_names_its_rows_once_and_each_total_is_its_points_energy(sweep):
    """energy_<env>.png wrote every row's 'design  agent @ bits b' left of each scenario's panel: with every bundled
    design and GPU, 440 rows x 6 panels, a 4,354 px wide PNG two thirds labels, 5,354 texts and 21 s to draw. The
    rows are one list for every panel (the same row is the same point's agent and bits), named once, left of the
    first panel; each total at a row's right is that scenario's point's energy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reports.data import agent_label, fmt_energy, with_agent
    from reports.figures import energy_figure

    df = with_agent(pd.read_parquet(sweep / "points.parquet"))
    env = "Hopper-v5"
    fig = energy_figure(df, env)
    first, *rest = fig.axes
    labels = [t.get_text() for t in first.get_yticklabels()]
    fig.canvas.draw()
    assert rest and all(not [t for t in ax.get_yticklabels(which="both") if t.get_visible() and t.get_text()]
                        for ax in rest)
    assert len(labels) == len(set(labels)) == df[df.env == env].groupby(["design", "method", "agent", "bits"]).ngroups
    e = df[df.env == env]
    secs = sorted({(sc, int(b)) for sc, b in zip(e.scenario, e.batch)})
    checked = 0
    for ax, (sc, batch) in zip(fig.axes, secs):
        want = {}
        for r in e[(e.scenario == sc) & (e.batch == batch)].itertuples():
            want[labels.index(f"{r.design}  {agent_label(r.method, r.agent)} @ {r.bits} b")] = fmt_energy(r.energy_pj)
        got = {round(t.get_position()[1]): t.get_text() for t in ax.texts}
        assert got == want, (sc, batch)
        checked += len(got)
    assert checked == len(e)
    plt.close(fig)


@needs_chromium
def test_navigation_links_each_scenario_of_the_answer_and_never_breaks_a_link(sweep, page):
    """The navigation linked each env's answer only: with 15 designs each scenario's same-bits tables run to 10,000 px,
    and reaching 'Hopper-v5: train step, batch 1024' meant scrolling past the others. It links each env's scenarios
    and batches ('inference, batch 1 · 32 · 128'), each to its heading; and its links never break over two lines
    ('HalfCheetah-v5 - train step (batch' / '64)' did), at 1400 px or on a narrow window."""
    nav = page.split("<nav>", 1)[1].split("</nav>", 1)[0]
    answer = nav.split("<b>Answer:</b>", 1)[1].split("<br>", 1)[0]
    targets = re.findall(r'href="#([^"]+)"', answer)
    df = pd.read_parquet(sweep / "points.parquet")
    want = {f"answer-{e}-{sc}-{int(b)}" for e, sc, b in zip(df.env, df.scenario, df.batch)} | {f"answer-{e}" for e in df.env}
    assert set(targets) == want, (sorted(targets), sorted(want))
    for t in targets:
        assert page.count(f' id="{t}"') == 1, t
    h4 = re.findall(r'<h4 id="(answer-[^"]+)">([^<]+)</h4>', page)
    assert ("answer-Hopper-v5-train_step-256", "Hopper-v5: train step, batch 256") in h4
    assert "(inference, batch <a" in answer
    url = (sweep / "report" / "index.html").resolve().as_uri()
    for width in (1400, 600):
        b, session = load_page(url, width=width, height=900)
        try:
            got = b.send("Runtime.evaluate", {"returnByValue": True, "expression": """
                [Array.from(document.querySelectorAll('nav a')).filter(function (a) {
                   return a.getClientRects().length !== 1; }).map(function (a) { return a.textContent; }),
                 document.querySelector('nav').scrollWidth, document.querySelector('nav').clientWidth]"""},
                session=session)["result"]["value"]
        finally:
            b.close()
        broken, sw, cw = got
        assert broken == [] and sw <= cw, (width, got)


def test_a_long_extreme_cells_table_starts_closed_and_says_how_long_it_is(page):
    """With 15 designs each scenario's 'why the extreme cells are extreme' table ran to 40-44 rows (about 4,000 px)
    between one scenario's same-bits tables and the next's. One of over EXTREME_OPEN_MAX rows starts closed, its
    summary giving its row count; a shorter one (the default report's) starts open, as before."""
    from reports.answer import EXTREME_OPEN_MAX, extreme_html

    def notes(n):
        return [{"design": f"d{i}", "cause": "no gain", "numbers": "x", "example": "", "cells": [("a", "8 b 1.00x/1.00")]}
                for i in range(n)]

    short, long_ = extreme_html(notes(EXTREME_OPEN_MAX), {}), extreme_html(notes(EXTREME_OPEN_MAX + 1), {})
    assert short.startswith("<details open class=why><summary>Why the extreme cells are extreme</summary>")
    assert long_.startswith(f"<details class=why><summary>Why the extreme cells are extreme ({EXTREME_OPEN_MAX + 1} "
                            "rows, one per design and cause: click to open)</summary>")
    assert long_.count("<tr data-design=") == EXTREME_OPEN_MAX + 1
    assert page.count("<details open class=why>") == len(re.findall(r"<details[^>]*class=why", page)) > 0  # default: open


def test_summary_md_says_what_a_design_table_holds_once_per_scenario(sweep):
    """summary.md wrote '(speedup x | energy ratio, vs dense at the same bits; first row: dense's latency / energy)'
    after every design's name: 180 times with 15 designs and 12 scenarios. It says it once under each scenario's
    heading; each design's table is headed by its name alone."""
    from reports.answer import DESIGN_TABLE_KEY_MD, DESIGN_TABLE_REF_MD

    md = (sweep / "report" / "summary.md").read_text()
    answer = md.split("\n## What each pattern buys", 1)[1].split("\n## RL quality", 1)[0]
    sections = re.findall(r"^#### .+$", answer, re.M)
    assert sections and answer.count(DESIGN_TABLE_KEY_MD) == len(sections)
    for part in answer.split("\n#### ")[1:]:
        assert part.split("\n\n", 2)[1] == DESIGN_TABLE_KEY_MD + DESIGN_TABLE_REF_MD + "."
    heads = re.findall(r"^\*\*([a-z0-9_]+)\*\*( \(GPU\))?$", answer, re.M)
    assert len(heads) >= 2 * len(sections) and "speedup x | energy ratio, vs dense at the same bits" not in answer


def test_a_glance_without_dense_does_not_announce_a_dense_first_row(sweep, tmp_path):
    """A sweep without a dense agent has no dense row in its glance; the page's caption still said 'First row:
    dense itself' over a first row that was a sparse agent's (summary.md said it only with the row)."""
    import shutil

    from reports import answer

    df = pd.read_parquet(sweep / "points.parquet")
    out = tmp_path / "no_dense"
    out.mkdir()
    shutil.copy(sweep / "sweep.json", out / "sweep.json")
    df[df.pattern != "dense"].to_parquet(out / "points.parquet")
    build_report(out)
    page = (out / "report" / "index.html").read_text()
    captions = re.findall(r'<table class="ans glance"[^>]*><caption>(.*?)</caption>', page)
    assert captions and all(answer.GLANCE_KEY in c and "First row" not in c for c in captions), captions
    md = (out / "report" / "summary.md").read_text()
    assert "reference</td>" not in page and "first row: dense itself" not in md
    # Nor do the design tables: no "dense, absolute" row of dashes, no key announcing it.
    assert "dense, absolute" not in page and "dense, absolute" not in md
    assert answer.DESIGN_TABLE_KEY_MD + "." in md and answer.DESIGN_TABLE_REF_MD not in md
    assert all(answer.GLANCE_KEY + answer.GLANCE_REF_KEY in c
               for c in re.findall(r'<table class="ans glance"[^>]*><caption>(.*?)</caption>',
                                   (sweep / "report" / "index.html").read_text()))
