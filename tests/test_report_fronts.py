"""Pareto fronts equal a brute-force O(n^2) recomputation (random tables with ties, and real sweeps)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.fronts import FRONT_SPECS, compute_fronts, group_rows, pareto_mask


def brute_force_front(rows: list[tuple[str, tuple[float, ...]]], senses: list[str]) -> set[str]:
    """Ids of rows no other row dominates, by checking every pair."""
    def better_eq(x, y, s):
        return x <= y if s == "min" else x >= y

    def better(x, y, s):
        return x < y if s == "min" else x > y

    front = set()
    for pid, v in rows:
        dominated = False
        for qid, w in rows:
            if qid == pid:
                continue
            if all(better_eq(w[k], v[k], s) for k, s in enumerate(senses)) and any(better(w[k], v[k], s) for k, s in enumerate(senses)):
                dominated = True
                break
        if not dominated:
            front.add(pid)
    return front


def _saved_figure(monkeypatch, draw, *args):
    """The figure that ``draw(*args)``, a reports.figures PNG writer, hands to its save (caught, not written)."""
    from reports import figures

    seen = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: seen.setdefault("fig", fig))
    draw(*args)
    return seen["fig"]


# Few distinct values so that ties (equal in one or both objectives) are common.
small_values = st.sampled_from([0.0, 1.0, 1.5, 2.0, 3.0, 1e-9, 7.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(small_values, small_values), min_size=0, max_size=40),
       st.sampled_from(["min", "max"]), st.sampled_from(["min", "max"]))
def test_pareto_mask_2d_equals_brute_force(values, s0, s1):
    rows = [(str(i), v) for i, v in enumerate(values)]
    mask = pareto_mask(np.array(values, dtype=float).reshape(-1, 2), [s0, s1])
    assert {str(i) for i in np.flatnonzero(mask)} == brute_force_front(rows, [s0, s1])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(small_values, small_values, small_values), min_size=1, max_size=30))
def test_pareto_mask_3d_equals_brute_force(values):
    senses = ["min", "max", "min"]
    rows = [(str(i), v) for i, v in enumerate(values)]
    mask = pareto_mask(np.array(values, dtype=float), senses)
    assert {str(i) for i in np.flatnonzero(mask)} == brute_force_front(rows, senses)


def test_identical_points_are_all_on_the_front():
    mask = pareto_mask(np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]]), ["min", "min"])
    assert mask.tolist() == [True, True, False]


def expected_front_keys(df: pd.DataFrame) -> set[tuple]:
    """(front name, env, scenario, batch, design or None) for every front the table must have:
    each spec whose columns exist, on every env/scenario/batch, across all designs and per design."""
    specs = [s.name for s in FRONT_SPECS if all(c in df.columns for c, _ in s.objectives)]
    keys = set()
    for env, scenario, batch, design in df[["env", "scenario", "batch", "design"]].itertuples(index=False):
        for name in specs:
            keys.add((name, env, scenario, int(batch), None))
            keys.add((name, env, scenario, int(batch), design))
    return keys


def check_fronts_against_table(df: pd.DataFrame, fronts: list[dict]) -> int:
    """Recompute every front of ``fronts`` by brute force from ``df``; returns how many were checked.

    Also: no front is missing (every group, across all designs and per design) and each front's
    point_ids are in the documented order (by the objectives, x first, then by id)."""
    got = [(f["name"], f["group"]["env"], f["group"]["scenario"], int(f["group"]["batch"]), f["group"]["design"])
           for f in fronts]
    assert len(got) == len(set(got)) and set(got) == expected_front_keys(df)
    for f in fronts:
        g = group_rows(df, f["group"])
        cols = [o["column"] for o in f["objectives"]]
        senses = [o["sense"] for o in f["objectives"]]
        ok = g[cols].notna().all(axis=1)
        rows = [(pid, tuple(float(x) for x in vals)) for pid, vals in zip(g.point_id[ok], g[cols][ok].to_numpy())]
        assert set(f["point_ids"]) == brute_force_front(rows, senses), (f["name"], f["group"])
        assert len(f["point_ids"]) == len(set(f["point_ids"]))
        value = dict(rows)
        assert f["point_ids"] == sorted(f["point_ids"], key=lambda pid: (*value[pid], pid)), (f["name"], f["group"])
        assert f["candidates"] == int(ok.sum()) and f["excluded_missing"] == int((~ok).sum())
    return len(fronts)


tables = st.integers(min_value=1, max_value=40).flatmap(
    lambda n: st.fixed_dictionaries({
        "energy_pj": st.lists(small_values, min_size=n, max_size=n),
        "latency_s": st.lists(small_values, min_size=n, max_size=n),
        "model_bytes": st.lists(small_values, min_size=n, max_size=n),
        "return_mean": st.lists(st.one_of(small_values, st.just(float("nan"))), min_size=n, max_size=n),
        "design": st.lists(st.sampled_from(["a", "b"]), min_size=n, max_size=n),
        "env": st.lists(st.sampled_from(["Hopper-v5", "Ant-v5"]), min_size=n, max_size=n),
        "scenario": st.lists(st.sampled_from(["inference", "train_step"]), min_size=n, max_size=n),
    })
)


@settings(max_examples=40, deadline=None)
@given(tables)
def test_compute_fronts_on_random_tables(data):
    df = pd.DataFrame(data)
    df["batch"] = np.where(df.scenario == "inference", 1, 256)
    df["point_id"] = [f"p{i:03d}" for i in range(len(df))]
    fronts = compute_fronts(df)
    assert check_fronts_against_table(df, fronts) == len(fronts) > 0
    # Rows with a missing return are excluded from return fronts but kept in energy vs latency.
    for f in fronts:
        g = group_rows(df, f["group"])
        if f["name"] == "energy_vs_latency":
            assert f["excluded_missing"] == 0 and f["candidates"] == len(g)
        else:
            assert f["excluded_missing"] == int(g.return_mean.isna().sum())


def test_front_specs_minimise_costs_and_maximise_return():
    """The brute-force checks above take each spec's senses from FRONT_SPECS, so the senses are
    pinned here: energy, latency and model size are costs (min), the return is a gain (max).
    Checking only that each sense is "min" or "max" passed with energy maximised."""
    assert {spec.name: spec.objectives for spec in FRONT_SPECS} == {
        "return_vs_energy": (("energy_pj", "min"), ("return_mean", "max")),
        "return_vs_latency": (("latency_s", "min"), ("return_mean", "max")),
        "energy_vs_latency": (("latency_s", "min"), ("energy_pj", "min")),
        "size_vs_return": (("model_bytes", "min"), ("return_mean", "max")),
    }


def test_figures_show_a_few_batches_but_fronts_cover_all():
    from reports.data import plotted_subset

    df = pd.DataFrame({"scenario": ["inference"] * 5 + ["train_step"] * 2, "batch": [1, 2, 4, 8, 16, 64, 256]})
    sub, note = plotted_subset(df)
    assert sorted(sub[sub.scenario == "inference"].batch) == [1, 4, 16]
    assert sorted(sub[sub.scenario == "train_step"].batch) == [64, 256]
    assert "inference: batches 1, 4, 16 of 5" in note and "fronts.json covers every batch size" in note
    assert plotted_subset(df[df.scenario == "train_step"])[1] is None


def test_front_labels_merge_one_spot_and_skip_overlaps():
    from reports.style import front_labels

    # Same spot: one label (two names written, more counted); a point within the label box of the last
    # label gets none (its hover names it); a point far enough gets its own.
    got = front_labels([1, 1, 1.01, 100], [5, 5, 5, 6], ["a @4", "b @4", "c @8", "d @8"], True, False)
    assert got == ["a @4, b @4", "", "", "d @8"]
    got = front_labels([1, 1, 1, 1], [5, 5, 5, 9], ["a", "b", "c", "d"], False, False)
    assert got == ["a +2 here", "", "", "d"]
    assert front_labels([1, 2, 3], [1, 2, 3], ["a", "b", "c"], False, False) == ["a", "b", "c"]


def _front_figures(page: str) -> list[dict]:
    """The page's Pareto figures: those with an overall front."""
    from tests.test_report_answer import _figures

    return [f for f in _figures(page) if any(t.get("name") == "front (all designs)" for t in f["data"])]


def test_page_front_labels_do_not_overlap_and_gpus_are_named_so(default_sweep):
    """On the page, no two labels of an overall front cross (on the plot's own scales), and the legend names a GPU design as the tables do: 'h100_sxm (GPU)'."""
    import math

    from reports.style import LABEL_HEIGHT

    page = (default_sweep / "report" / "index.html").read_text()
    fronts = _front_figures(page)
    assert fronts
    for fig in fronts:
        tr = next(t for t in fig["data"] if t.get("name") == "front (all designs)")
        tx = lambda v, axis: math.log10(v) if fig["layout"][axis]["type"] == "log" else v  # noqa: E731
        xs = [tx(v, "xaxis") for v in tr["x"]]
        ys = [tx(v, "yaxis") for v in tr["y"]]
        # measured on the plot's extent (every point drawn), each label on its side of its point
        pts = [t for t in fig["data"] if t.get("mode") == "markers"]
        all_x = [tx(v, "xaxis") for t in pts for v in t["x"] if v is not None]
        all_y = [tx(v, "yaxis") for t in pts for v in t["y"] if v is not None]
        span_x, span_y = (max(all_x) - min(all_x)) or 1.0, (max(all_y) - min(all_y)) or 1.0
        assert tr["text"][0]  # the first point of a front is always labelled
        sides = [p.split(" ", 1)[1] for p in tr["textposition"]]
        boxes = _label_boxes(tr["text"], sides, xs, ys, span_x, span_y)
        for i, (a0, a1, ay) in enumerate(boxes):
            for b0, b1, by in boxes[i + 1:]:
                assert not (a0 < b1 and b0 < a1 and abs(ay - by) < LABEL_HEIGHT), tr["text"]
        names = {t["name"] for t in fig["data"] if t.get("mode") == "markers"}
        assert {"h100_sxm (GPU)", "a100_sxm (GPU)", "edge_ws"} <= names, names


def test_png_front_legend_keeps_designs_patterns_and_bits_apart(default_sweep):
    """The PNG fronts had one 8-column legend filled column by column: 'h100_sxm (GPU)' sat over '1:4', a
    design over a pattern, and 'size = bits' had no key. Now one legend row per key."""
    import pandas as pd

    from reports.data import design_order
    from reports.figures import front_legend_groups

    df = pd.read_parquet(default_sweep / "points.parquet")
    designs = design_order(df.design.unique())
    (t1, des), (t2, pats), (t3, bits) = front_legend_groups(df, designs)
    assert t1 == "colour = design" and t2.startswith("shape = pattern") and t3 == "size = bits"
    assert [h.get_label() for h in des] == [f"{d} (GPU)" if d in ("a100_sxm", "h100_sxm") else d for d in designs]
    assert [h.get_label() for h in pats][:-1] == sorted(df.pattern.unique())
    assert pats[-1].get_label() == "front (all designs)"
    assert [h.get_label() for h in bits] == ["32 bits", "16 bits", "8 bits", "4 bits"]
    sizes = [h.get_markersize() for h in bits]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4  # bigger = more bits, as on the plots


def test_front_axes_say_log_scale_with_their_unit(default_sweep):
    """Front axes are log except return; the title said 'energy per pass (uJ)' on a log axis."""
    page = (default_sweep / "report" / "index.html").read_text()
    fronts = _front_figures(page)
    assert fronts
    for fig in fronts:
        for ax in ("xaxis", "yaxis"):
            a = fig["layout"][ax]
            assert ("log scale" in a["title"]["text"]) == (a["type"] == "log"), a
            if a["type"] == "log":
                assert re.search(r"\((uJ|us|ms|KB|B|pJ|s|J|mJ|nJ), log scale\)$", a["title"]["text"]), a


def test_page_fronts_key_the_dotted_per_design_fronts(default_sweep):
    """Each design's own front is a dotted line in its colour; nothing on the plot said so."""
    page = (default_sweep / "report" / "index.html").read_text()
    fronts = _front_figures(page)
    for fig in fronts:
        dotted = [t for t in fig["data"] if t.get("line", {}).get("dash") == "dot"]
        key = [t for t in dotted if t["name"] == "a design's own front"]
        assert len(key) == 1 and key[0]["y"] == [None] and key[0].get("showlegend", True)
        assert len(dotted) > 1  # and the design fronts it keys
    import html

    assert "a dotted line in a design's colour is that design's own front" in html.unescape(page)


def test_page_front_legend_symbols_are_one_size(default_sweep):
    """Marker size is bits, and plotly sized each design's legend symbol by its trace's first marker: the legend
    drew scalesim_default_ws (first point at 32 bits) as a big dot and edge_ws (8 bits) as a small one, as if
    the designs had bitwidths. Every design's marker trace varies in size; the legend draws them all alike."""
    page = (default_sweep / "report" / "index.html").read_text()
    fronts = _front_figures(page)
    assert fronts
    for fig in fronts:
        sizes = [t["marker"]["size"] for t in fig["data"] if t.get("mode") == "markers"]
        assert len({s[0] for s in sizes if isinstance(s, list) and s}) > 1  # the first markers differ in size
        assert fig["layout"]["legend"]["itemsizing"] == "constant"


def _one_text_one_value(rows: list[list[str]], ids: list[str], cols: dict[str, int], df: pd.DataFrame) -> None:
    for c, i in cols.items():
        shown: dict[str, float] = {}
        for pid, r in zip(ids, rows):
            v = df.loc[pid, c]
            assert shown.setdefault(r[i], v) == v, (c, r[i], shown[r[i]], v)  # a text stands for one value


def test_front_tables_tell_apart_points_that_differ(default_sweep):
    """HalfCheetah-v5's train-step return-vs-energy front holds stc_hbm's 1:8 @4 (return 3152) and 2:4 @4 (5649),
    both '157 uJ' at three digits: 1:8 is on the front because it takes 4 nJ less. Every front table (page and
    summary.md) writes latency, energy and size to the digits that tell its different rows apart."""
    from reports.data import fmt_energy

    df = pd.read_parquet(default_sweep / "points.parquet").set_index("point_id")
    page = (default_sweep / "report" / "index.html").read_text()
    md = (default_sweep / "report" / "summary.md").read_text()
    tables = re.findall(r"<table><caption>Front \(all designs\).*?</table>", page, re.S)
    assert len(tables) == 4  # one per env x scenario
    for table in tables:
        rows = [re.findall(r"<td>(.*?)</td>", tr) for tr in re.findall(r"<tr><td>.*?</tr>", table)]
        _one_text_one_value(rows, [r[0] for r in rows], {"latency_s": 6, "energy_pj": 7, "model_bytes": 8}, df)
    md_tables = [[ln.split(" | ") for ln in block.splitlines() if ln.endswith("` |")]
                 for block in md.split("| design | pattern | bits | method | mask |")[1:]]
    assert len(md_tables) == 4 * 4  # every front of every group
    for rows in md_tables:
        _one_text_one_value(rows, [r[-1].strip(" |`") for r in rows], {"latency_s": 5, "energy_pj": 6, "model_bytes": 7}, df)
    # the case that showed it: two points one text apart at three digits, both on one front
    g = df[(df.env == "HalfCheetah-v5") & (df.scenario == "train_step") & (df.design == "stc_hbm") & (df.bits == 4)
           & (df.method == "rnm-td3")]
    a, b = g[g.pattern == "1:8"].iloc[0], g[g.pattern == "2:4"].iloc[0]
    assert a.energy_pj < b.energy_pj and fmt_energy(a.energy_pj) == fmt_energy(b.energy_pj)
    assert all(pid in tables[0] + tables[1] + tables[2] + tables[3] for pid in (a.name, b.name))


def test_return_fronts_carry_each_points_seed_range(default_sweep):
    """A return front compares returns (HalfCheetah-v5 train step: 1:8 @4 at 3152 against 2:4 @4 at 5649), so each
    ring of the overall front has a bar from its agent's lowest to highest seed's return (at the bits its return
    was evaluated at: the agent as trained for a train step), and the front tables give the same range."""
    import json as json_lib

    from reports.returns import as_trained, return_table
    from tests.test_report_answer import _figures

    raw = pd.read_parquet(default_sweep / "points.parquet")
    ret = return_table(raw, json_lib.loads((default_sweep / "sweep.json").read_text())["quality_table"])
    rng = {(r.env, r.method, r.agent, r.bits): (r.return_min, r.return_max) for r in ret.itertuples()}
    df = as_trained(raw).set_index("point_id")
    page = (default_sweep / "report" / "index.html").read_text()
    checked = 0
    for fig in _figures(page):
        if fig["layout"]["yaxis"].get("title", {}).get("text") != "evaluation return":
            continue
        (front,) = [t for t in fig["data"] if t.get("name") == "front (all designs)"]
        err = front["error_y"]
        for pid, y, up, down in zip(front["customdata"], front["y"], err["array"], err["arrayminus"]):
            r = df.loc[pid]
            lo, hi = rng[(r.env, r.method, r.agent, int(r.return_eval_bits))]
            assert y == pytest.approx(r.return_mean) and y - down == pytest.approx(lo) and y + up == pytest.approx(hi)
            checked += 1
    assert checked >= 20
    tables = re.findall(r"<table><caption>Front \(all designs\).*?</table>", page, re.S)
    assert all("<th>return seed range</th>" in t for t in tables)
    cells = re.findall(r"<tr><td>([0-9a-f]{16})</td>.*?<td>([-0-9]+\u2013[-0-9]+|n/a)</td></tr>", "".join(tables))
    assert len(cells) >= 10
    for pid, cell in cells:
        r = df.loc[pid]
        lo, hi = rng[(r.env, r.method, r.agent, int(r.return_eval_bits))]
        assert cell == f"{lo:.0f}\u2013{hi:.0f}"
    md = (default_sweep / "report" / "summary.md").read_text()
    rows = re.findall(r"\| ([0-9]+ \[[-0-9]+-?[-0-9]+\]) \| `([0-9a-f]{16})` \|", md)
    assert len(rows) >= 20
    for ret_cell, pid in rows:
        r = df.loc[pid]
        lo, hi = rng[(r.env, r.method, r.agent, int(r.return_eval_bits))]
        assert ret_cell == f"{r.return_mean:.0f} [{lo:.0f}-{hi:.0f}]"


def test_png_return_fronts_draw_each_points_seed_range(default_sweep, monkeypatch):
    """front_return_vs_energy.png draws the same bars as the page: lowest to highest seed's return per ring."""
    import json as json_lib

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.container import ErrorbarContainer

    from reports import figures
    from reports.fronts import FRONT_SPECS as SPECS
    from reports.returns import as_trained, return_table, with_seed_range

    raw = pd.read_parquet(default_sweep / "points.parquet")
    ret = return_table(raw, json_lib.loads((default_sweep / "sweep.json").read_text())["quality_table"])
    df = with_seed_range(as_trained(raw), ret)
    fronts = json_lib.loads((default_sweep / "report" / "fronts.json").read_text())["fronts"]
    spec = next(s for s in SPECS if s.name == "return_vs_energy")
    by_key = {(f["group"]["env"], f["group"]["scenario"], f["group"]["batch"]): f["point_ids"]
              for f in fronts if f["name"] == spec.name and f["group"]["design"] is None}
    fig = _saved_figure(monkeypatch, figures.front_png, df, spec, by_key, default_sweep / "unused.png")
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert len(axes) == 4
    ix = df.set_index("point_id")
    for ax in axes:
        env, rest = ax.get_title().split(", ", 1)
        sc = "inference" if rest.startswith("inference") else "train_step"
        ids = next(v for k, v in by_key.items() if k[0] == env and k[1] == sc)
        (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        spans = sorted((round(float(seg[0][1]), 6), round(float(seg[1][1]), 6))
                       for seg in bars.lines[2][0].get_segments())
        want = sorted((round(float(ix.loc[p, "return_min"]), 6), round(float(ix.loc[p, "return_max"]), 6)) for p in ids)
        assert spans == want, (env, sc)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_page_front_labels_read_inwards_from_the_plot_edges(default_sweep):
    """A centred label of a front point at the plot's left edge ran off it ('unstructured:0.9 one-shot @4 +3 here'
    lost its first word behind the y axis): labels in the left third of the points' x range read rightwards,
    in the right third leftwards."""
    import math

    page = (default_sweep / "report" / "index.html").read_text()
    seen = set()
    for fig in _front_figures(page):
        log = fig["layout"]["xaxis"]["type"] == "log"
        tx = (lambda v: math.log10(v)) if log else (lambda v: v)  # noqa: E731
        xs = [tx(v) for t in fig["data"] if t.get("mode") == "markers" for v in t["x"] if v is not None]
        lo, hi = min(xs), max(xs)
        tr = next(t for t in fig["data"] if t.get("name") == "front (all designs)")
        for x, pos in zip(tr["x"], tr["textposition"]):
            rel = (tx(x) - lo) / (hi - lo)
            want = "top right" if rel < 1 / 3 else "top left" if rel > 2 / 3 else "top center"
            assert pos == want, (fig["layout"]["title"]["text"], x, pos)
            seen.add(pos)
    assert {"top right", "top left"} <= seen


def test_same_bits_heatmaps_say_what_a_white_cell_is(default_sweep, monkeypatch):
    """Most of a heatmap's blank cells are bitwidths a design does not run (edge_ws at 32 and 16 bits); the
    title says white is 'not swept', not a colour of the scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reports import figures

    df = pd.read_parquet(default_sweep / "points.parquet")
    fig = _saved_figure(monkeypatch, figures.same_bits_heatmap_png, df, "speedup_vs_dense", "Speedup (>1 is faster)",
                        default_sweep / "x.png", True)
    assert fig._suptitle.get_text().endswith("; white: not swept)")
    blank = sum(int(np.isnan(im.get_array().filled(np.nan)).sum()) for ax in fig.axes for im in ax.images)
    assert blank > 0  # the default sweep has such cells
    plt.close(fig)


def test_seed_range_text_keeps_negative_returns_readable():
    from reports.data import seed_range_text

    assert seed_range_text(5006.4, 6292.0) == "5006-6292"
    assert seed_range_text(-120.0, -5.0) == "-120 to -5" and seed_range_text(-3.0, 40.0) == "-3 to 40"  # not "-120--5"
    assert seed_range_text(-120.0, -5.0, "\u2013") == "-120\u2013-5"  # the page's en dash reads apart from a sign
    assert seed_range_text(float("nan"), 1.0) == "n/a" and seed_range_text(None, 1.0, unknown="") == ""


def test_png_front_log_axes_write_their_ticks_in_full_and_titles_name_the_batch(default_sweep, monkeypatch):
    """The page writes a log axis's ticks in full (0.1, 1, 10, 1,000; reports.html.log_tick_axis) but the front
    PNGs wrote matplotlib's 10^-1, 10^0, 10^1, and titled a panel 'inference b=1' where the page says 'batch 1'."""
    import json as json_lib

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reports import figures
    from reports.fronts import FRONT_SPECS as SPECS
    from reports.returns import as_trained, return_table, with_seed_range

    raw = pd.read_parquet(default_sweep / "points.parquet")
    df = with_seed_range(as_trained(raw), return_table(raw, json_lib.loads((default_sweep / "sweep.json").read_text())["quality_table"]))
    spec = next(s for s in SPECS if s.name == "energy_vs_latency")  # both axes log
    fig = _saved_figure(monkeypatch, figures.front_png, df, spec, {}, default_sweep / "unused.png")
    fig.canvas.draw()
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert len(axes) == 4
    for ax in axes:
        assert re.search(r", (inference|train step), batch \d+", ax.get_title()) and " b=" not in ax.get_title()
        for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            labels = [(t.get_loc(), t.label1.get_text()) for t in axis.get_major_ticks()
                      if lim[0] <= t.get_loc() <= lim[1] and t.label1.get_text()]
            assert len(labels) >= 2, ax.get_title()
            for loc, text in labels:
                assert "$" not in text and "^" not in text, text
                assert float(text.replace(",", "")) == pytest.approx(loc), (loc, text)
    plt.close(fig)


HEATMAPS = (("speedup_vs_dense", "Speedup (>1 is faster)", True),
            ("energy_ratio_vs_dense", "Energy ratio (<1 saves energy)", False))


def _heatmap_figures(sweep, monkeypatch, which=HEATMAPS):
    """(column, title, good_high, figure) of each same-bits heatmap PNG of ``sweep``, drawn but not
    saved; the caller closes each figure."""
    import matplotlib

    matplotlib.use("Agg")
    from reports import figures

    df = pd.read_parquet(sweep / "points.parquet")
    for col, title, good_high in which:
        yield col, title, good_high, _saved_figure(monkeypatch, figures.same_bits_heatmap_png, df, col, title,
                                                   sweep / "unused.png", good_high)


def test_same_bits_heatmap_title_reads_as_one_sentence(default_sweep, monkeypatch):
    """The heatmap PNGs were titled 'Speedup (>1 is faster) (vs dense at the same bits, ...; white: not swept)'."""
    import matplotlib.pyplot as plt

    for _col, title, _good_high, fig in _heatmap_figures(default_sweep, monkeypatch):
        text = fig._suptitle.get_text()
        plt.close(fig)
        assert text.count("(") == 1 and text.endswith("; white: not swept)"), text
        assert text.startswith(title.split(" (")[0] + " vs dense at the same bits"), text



def test_page_front_tables_and_log_axes_read_as_units(default_sweep):
    """The page's front tables were headed with the Parquet column names ('energy_pj' over '1.51 mJ',
    'latency_s' over '15 us', 'fits_in_sram' over 'True'); summary.md's name them 'energy', 'latency',
    'fits SRAM' (yes/no). A front's log axis where plotly picks its own ticks wrote '20k' beside 'uJ'."""
    from tests.test_report_answer import _figures

    page = (default_sweep / "report" / "index.html").read_text()
    tables = re.findall(r"<table><caption>Front \(all designs\).*?</table>", page, re.S)
    assert len(tables) == 4
    for t in tables:
        head = re.findall(r"<th>(.*?)</th>", t)
        assert head[:11] == ["id", "design", "pattern", "bits", "method", "mask", "latency", "energy", "model size",
                             "fits SRAM", "return"], head
        rows = [re.findall(r"<td>(.*?)</td>", tr) for tr in re.findall(r"<tr><td>.*?</tr>", t)]
        assert rows and all(r[9] in ("yes", "no") for r in rows)
    fronts = [fig for fig in _figures(page) if any(t.get("name") == "front (all designs)" for t in fig["data"])]
    assert fronts
    for fig in fronts:
        for k in ("xaxis", "yaxis"):
            ax = fig["layout"][k]
            if ax.get("type") == "log":
                assert ax.get("exponentformat") == "none" and ax.get("separatethousands") is True, ax


def test_same_bits_heatmap_columns_name_scenario_and_batch_in_words(default_sweep, monkeypatch):
    """The heatmap columns read 'edge_ws / inf b1' and 'train b256'; the page says 'inference, batch 1'."""
    import matplotlib.pyplot as plt

    df = pd.read_parquet(default_sweep / "points.parquet")
    (*_, fig), = _heatmap_figures(default_sweep, monkeypatch, HEATMAPS[:1])
    labels = [t.get_text() for ax in fig.axes if ax.images for t in ax.get_xticklabels()]
    plt.close(fig)
    want = {f"{sc.replace('_', ' ')}, batch {b}" for sc, b in zip(df.scenario, df.batch)}
    assert labels and {lab.split("\n")[1] for lab in labels} == want, labels
    assert not any(re.search(r"\b(inf|train) b\d", lab) for lab in labels), labels


def test_same_bits_heatmap_colour_bar_ticks_are_round_ratios(default_sweep, monkeypatch):
    """The colour bar's ticks were half decades, 0.316 and 3.16; each tick now sits where its round ratio's
    colour is (the colour is log10 of the ratio, negated where lower is better)."""
    import matplotlib.pyplot as plt

    for _col, _title, good_high, fig in _heatmap_figures(default_sweep, monkeypatch):
        cbar = next(ax for ax in fig.axes if not ax.images and ax.get_ylabel())
        ticks = [(float(t), lab.get_text()) for t, lab in zip(cbar.get_yticks(), cbar.get_yticklabels())]
        plt.close(fig)
        texts = [t for _, t in ticks]
        assert "3.16" not in texts and "0.316" not in texts, texts
        assert {"0.500", "2.00", "1.00"} <= set(texts), texts
        for loc, text in ticks:
            assert loc == pytest.approx(np.log10(float(text)) * (1 if good_high else -1)), (loc, text)


def _label_boxes(texts, sides, xs, ys, span_x, span_y):
    """Each non-empty label's box as (x0, x1, y) in shares of the plot's spans, as the placement measures it."""
    from reports.style import LABEL_CHAR_WIDTH

    out = []
    for t, side, x, y in zip(texts, sides, xs, ys):
        if t:
            w = LABEL_CHAR_WIDTH * len(t)
            left = {"right": 0.0, "center": -w / 2, "left": -w}[side]
            out.append((x / span_x + left, x / span_x + left + w, y / span_y))
    return out


def test_front_labels_do_not_collide_on_a_front_small_in_its_plot(monkeypatch, tmp_path):
    """Two front points a tenth of a decade apart in a plot spanning five decades: the overlap test measured
    label boxes on the front's own span (where they were far apart), so '1:8 @4' printed on top of '1:4 @4',
    on the page and in the PNG. Now both place their labels by one function on the plot's extent: no two
    label boxes cross, and the PNG writes the page's labels on the same sides."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reports import figures
    from reports.html import pareto_figure

    spec = next(s for s in FRONT_SPECS if s.name == "energy_vs_latency")
    # two front points close together, and background points (off the front) spreading the plot
    lat = [1.0e-6, 1.15e-6, 3e-6, 30e-6, 100e-6]
    en = [1.0e6, 0.9e6, 1e8, 1e9, 1e11]
    rows = pd.DataFrame({"env": "E", "scenario": "inference", "batch": 1, "design": "d", "point_id": list("abcde"),
                         "pattern": ["1:4", "1:8", "dense", "dense", "dense"], "bits": 4, "method": "rnm-td3",
                         "mask_source": "trained", "latency_s": lat, "energy_pj": en, "model_bytes": 1e4,
                         "return_mean": float("nan")})
    ids = ["a", "b"]
    fig = pareto_figure(rows, spec, {None: ids, "d": ids}, ["d"])
    tr = next(t for t in fig["data"] if t.get("name") == "front (all designs)")
    xs = [math.log10(v) for v in tr["x"]]
    ys = [math.log10(v) for v in tr["y"]]
    all_x = [math.log10(v) for t in fig["data"] if t.get("mode") == "markers" for v in t["x"]]
    all_y = [math.log10(v) for t in fig["data"] if t.get("mode") == "markers" for v in t["y"]]
    sides = [p.split(" ", 1)[1] for p in tr["textposition"]]
    boxes = _label_boxes(tr["text"], sides, xs, ys, max(all_x) - min(all_x), max(all_y) - min(all_y))
    assert tr["text"][0] and len(boxes) >= 1
    for i, (a0, a1, ay) in enumerate(boxes):
        for b0, b1, by in boxes[i + 1:]:
            assert not (a0 < b1 and b0 < a1 and abs(ay - by) < 0.05), tr["text"]

    png = _saved_figure(monkeypatch, figures.front_png, rows, spec, {("E", "inference", 1): ids}, tmp_path / "f.png")
    ann = [a for a in png.axes[0].texts if a.get_text()]
    assert [a.get_text() for a in ann] == [t for t in tr["text"] if t]
    ha = {"right": "left", "left": "right", "center": "center"}
    assert [a.get_ha() for a in ann] == [ha[s] for t, s in zip(tr["text"], sides) if t]
    plt.close(png)


@pytest.mark.parametrize("lo, hi", [(474.06, 585.3), (0.0535, 0.1685), (14.0, 20.97), (1.2, 1.8), (13.0, 262.0)])
def test_png_log_axis_under_a_decade_still_has_two_labels_in_full(lo, hi):
    """A one-design sweep's front PNG: train-step energies 474-585 uJ, inference 0.054-0.17 uJ. Fewer than two
    1-2-5 ticks fall there, so the page takes plotly's own ticks; the PNG kept matplotlib's decade ticks and
    showed one label (0.1) or none (`nmlab report --png` of `designs: [edge_ws]`, `bits: [8]`, `gpus: none`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reports import figures

    fig, ax = plt.subplots()
    ax.scatter([lo, hi], [1.0, 2.0])
    ax.set_xscale("log")
    figures._log_ticks_in_full(ax.xaxis, pd.Series([lo, hi]))
    fig.canvas.draw()
    xlim = ax.get_xlim()
    labels = [(t.get_loc(), t.label1.get_text()) for t in ax.xaxis.get_major_ticks()
              if xlim[0] <= t.get_loc() <= xlim[1] and t.label1.get_text()]
    assert len(labels) >= 2, (lo, hi, labels)
    for loc, text in labels:
        assert "$" not in text and "^" not in text and "e" not in text, text
        assert float(text.replace(",", "")) == pytest.approx(loc), (loc, text)
    plt.close(fig)


@pytest.mark.parametrize("scenarios", [("inference",), ("inference", "train_step")])
def test_png_front_legends_fit_the_figure_however_many_designs(default_sweep, monkeypatch, scenarios):
    """Each legend key was one row as wide as its entries: with one scenario (a 5.2 in figure) the default sweep's
    seven designs, and with both scenarios a sweep of 15 designs (8 of them GPUs), ran past both edges of the PNG,
    so the first and last designs (alldt, edge_ws, fix26 ... rtx4090, rtx5080) had no key at all. A key too wide
    for the figure now wraps onto more rows, each inside the figure, above the panels."""
    import matplotlib

    matplotlib.use("Agg")
    from reports import figures
    from reports.data import design_title
    from reports.fronts import FRONT_SPECS as SPECS

    df = pd.read_parquet(default_sweep / "points.parquet")
    df = df[df.scenario.isin(scenarios)]
    if len(scenarios) == 2:  # more designs: the default grid's points again under other names
        df = pd.concat([df] + [df.assign(design=df.design + f"_v{i}") for i in range(2)], ignore_index=True)
    spec = next(s for s in SPECS if s.name == "energy_vs_latency")
    fig = _saved_figure(monkeypatch, figures.front_png, df, spec, {}, default_sweep / "unused.png")
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    panels_top = max(max(ax.get_window_extent(renderer).y1, ax.title.get_window_extent(renderer).y1)
                     for ax in fig.axes if ax.get_title())
    labels = []
    for leg in fig.legends:
        ext = leg.get_window_extent(renderer)
        assert box.x0 - 0.5 <= ext.x0 and ext.x1 <= box.x1 + 0.5, (ext, box)
        assert ext.y0 >= panels_top and ext.y1 <= box.y1 + 0.5, (ext, panels_top, box)
        labels += [t.get_text() for t in leg.get_texts()]
    assert all(design_title(d) in labels for d in df.design.unique())


def test_png_front_y_axis_labels_stay_inside_a_one_scenario_figure(default_sweep, monkeypatch):
    """A sweep of one scenario draws a 5.2 in wide front PNG, whose left margin (8% of the width, 0.42 in) cut
    the y axis's title off the figure and its tick labels down to ",000" (a `gpus: bundled`, `designs: none`,
    inference-only sweep). The margin is now in inches, as wide as a two-scenario figure's."""
    import matplotlib

    matplotlib.use("Agg")
    from reports import figures
    from reports.fronts import FRONT_SPECS as SPECS

    df = pd.read_parquet(default_sweep / "points.parquet")
    df = df[df.scenario == "inference"]
    for spec in SPECS:
        fig = _saved_figure(monkeypatch, figures.front_png, df, spec, {}, default_sweep / "unused.png")
        fig.canvas.draw()  # lays out the tick labels and axis titles
        renderer = fig.canvas.get_renderer()
        for ax in (a for a in fig.axes if a.get_title()):
            texts = [ax.yaxis.label] + [t for t in ax.get_yticklabels() if t.get_text()]
            for t in texts:
                ext = t.get_window_extent(renderer)
                assert ext.x0 >= fig.bbox.x0 - 0.5, (spec.name, t.get_text(), ext)


def test_train_step_energy_reads_per_train_step(default_sweep, monkeypatch):
    """A train step's energy is one TD3 update's (six networks, forward and backward, batch 256), but its fronts
    said 'energy per pass', read as one forward pass: 585 uJ 'per pass' for edge_ws beside 169 nJ at inference.
    Train-step plots, front tables and PNG panels say 'per train step'; inference keeps 'per pass'."""
    import json as json_lib

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reports import figures
    from reports.fronts import FRONT_SPECS as SPECS
    from reports.returns import as_trained, return_table, with_seed_range

    page = (default_sweep / "report" / "index.html").read_text()
    seen = {"train": 0, "inference": 0}
    sections = re.split(r'<h3 id="s\d+">', page)[1:]
    assert len(sections) == 4
    figs = iter(_front_figures(page))
    for sec in sections:
        train = sec.startswith(tuple(f"{e} - train step" for e in ("HalfCheetah-v5", "Hopper-v5")))
        word, other = ("per train step", "per pass") if train else ("per pass", "per train step")
        caption = re.search(r"<caption>Front \(all designs\): ([^<]*)</caption>", sec).group(1)
        assert word in caption and other not in caption
        for _ in range(4):
            fig = next(figs)
            texts = [fig["layout"]["title"]["text"], fig["layout"]["xaxis"]["title"]["text"],
                     fig["layout"]["yaxis"]["title"]["text"]]
            energy = [t for t in texts if "energy per" in t.lower()]
            assert all(word in t and other not in t for t in energy), texts
            seen["train" if train else "inference"] += len(energy)
    assert seen["train"] and seen["inference"]
    md = (default_sweep / "report" / "summary.md").read_text()
    assert "**Return vs energy per train step**" in md and "**Return vs energy per pass**" in md

    raw = pd.read_parquet(default_sweep / "points.parquet")
    df = with_seed_range(as_trained(raw), return_table(raw, json_lib.loads((default_sweep / "sweep.json").read_text())["quality_table"]))
    spec = next(s for s in SPECS if s.name == "energy_vs_latency")
    fig = _saved_figure(monkeypatch, figures.front_png, df, spec, {}, default_sweep / "unused.png")
    for ax in (a for a in fig.axes if a.get_title()):
        want = "per train step" if "train step" in ax.get_title() else "per pass"
        assert want in ax.get_ylabel(), (ax.get_title(), ax.get_ylabel())
    plt.close(fig)
