"""GPUs in the report: their own colours beside the accelerators, GPU terms in the limiter text and the
2:4-only mapping note, and the "GPU model vs measurements" section, whose MAPEs equal hwmodel.gpu's own
scoring of the same held-out rows, drawn without errors or sideways overflow in headless Chromium."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import gpu_model
from reports.data import agent_label, design_order, fmt_ratio, gpu_rows, is_gpu
from reports.style import DESIGN_PALETTE, GPU_PALETTE, design_colors
from reports.why import limiters
from tests.test_report_answer import _figures


@pytest.fixture(scope="module")
def sweep(default_sweep) -> Path:
    """The default grid (accelerators and the default GPUs h100_sxm, a100_sxm) with the real model. (tests/conftest.py)"""
    return default_sweep


@pytest.fixture(scope="module")
def page(sweep) -> str:
    return (sweep / "report" / "index.html").read_text()


@pytest.fixture(scope="module")
def table(sweep) -> pd.DataFrame:
    return pd.read_parquet(sweep / "points.parquet")


# ----------------------------------------------------------------------------- the section's figures
def _page_scores(page: str) -> dict[tuple[str, str, str], float]:
    cells = re.findall(r'data-gpu="([^"]+)" data-dtype="([^"]+)" data-col="([a-z_]+)" data-value="([^"]+)"', page)
    return {(g, d, c): float(v) for g, d, c, v in cells}


def _recomputed() -> dict[str, dict]:
    """hwmodel.gpu's own path: validate_block with the bundled parameters (its GpuData predictions), scored
    by validate.scores on the held-out shapes of validate.split_shapes."""
    from hwmodel.gpu.measurements import bundled_files
    from hwmodel.gpu.validate import load_blocks, scores, split_shapes, validate_block

    out = {}
    for block in load_blocks(bundled_files()):
        rep = validate_block(block, do_fit=False)
        dense, sparse = rep["_pred"]
        meas = block.meas
        held = ~split_shapes(meas)
        per = {d: scores(meas, dense, sparse, held & (meas.dtype == d)) for d in sorted(set(meas.dtype.tolist()))}
        per["all"] = scores(meas, dense, sparse, held)
        out[block.spec.name] = per
    return out


def test_section_mapes_equal_hwmodel_gpu_scoring_of_the_held_out_rows(page):
    assert f'<h2 id="{gpu_model.ANCHOR}">GPU model vs measurements</h2>' in page
    assert f'href="#{gpu_model.ANCHOR}"' in page  # listed in the navigation
    got = _page_scores(page)
    want = _recomputed()
    assert set(want) == {"a100_pcie", "b200", "h100_pcie", "rtx4090"}
    assert {g for g, _, _ in got} == set(want)
    checked = 0
    for gpu, per in want.items():
        for dtype, s in per.items():
            assert s["rows"] > 0
            for col in ("mape_dense", "mape_sparse", "speedup_mape"):
                assert got[(gpu, dtype, col)] == pytest.approx(s[col], rel=1e-9), (gpu, dtype, col)
                checked += 1
    assert checked == len(got)
    # Held-out rows only: fewer than the file's rows, and the count is what the table says.
    assert f"<td>{want['h100_pcie']['all']['rows']}</td>" in page


def test_scatter_carries_the_held_out_rows_y_equals_x_and_its_mape(page):
    want = _recomputed()
    figs = {f["layout"]["title"]["text"]: f for f in _figures(page)}
    from hwmodel.gpu.spec import bundled_gpus

    specs = bundled_gpus()
    for gpu, per in want.items():
        device = next(c.device for c in gpu_model.check_bundled() if c.name == gpu)
        fig = figs[f"{html_lib.escape(device)}: predicted vs measured"]
        assert fig["layout"]["xaxis"]["type"] == fig["layout"]["yaxis"]["type"] == "log"
        line = next(t for t in fig["data"] if t["name"] == "y = x")
        assert line["x"] == line["y"]
        n = {t["name"]: len(t["x"]) for t in fig["data"]}
        assert n["dense"] == n["2:4"] == per["all"]["rows"]
        note = fig["layout"]["annotations"][0]["text"]
        s = per["all"]
        assert (f"MAPE dense {100 * s['mape_dense']:.1f}%, 2:4 {100 * s['mape_sparse']:.1f}%" in note
                and f"speedup error {100 * s['speedup_mape']:.1f}%" in note), note
        # Speedup vs size: per dtype with squares, the model's curve and the measured squares.
        sp = figs[f"{html_lib.escape(device)}: 2:4 speedup vs square size"]
        names = {t["name"] for t in sp["data"]}
        assert specs[gpu].name == gpu and len(names) >= 4
        for t in sp["data"]:
            assert t["y"] == [None] or all(v > 0 for v in t["y"])  # [None]: a legend key, no data
        # What the lines and dots are, and each dtype's held-out speedup error, are in the plot's legend.
        lines = {t["legendgroup"]: t["name"] for t in sp["data"] if t["mode"] == "lines"}
        for dtype, name in lines.items():
            short = gpu_model.DTYPE_SHORT.get(dtype, dtype)
            assert name == f"{short} ({100 * per[dtype]['speedup_mape']:.1f}%)", (gpu, name)
        legend = sp["layout"]["legend"]["title"]["text"]
        assert "colour = dtype" in legend and "line = model" in legend and "held-out" in legend
        keys = [t for t in sp["data"] if t["y"] == [None]]
        assert [k["marker"]["color"] == "white" for k in keys] == [False, True]
        assert "held-out" in keys[0]["name"] and "calibration" in keys[1]["name"]
        # 'speedup dense / 2:4' read as a ratio of two speedups: the title says which times it divides
        assert "above 1: 2:4 wins" in sp["layout"]["yaxis"]["title"]["text"]
        assert sp["layout"]["yaxis"]["title"]["text"].startswith("2:4 speedup (dense time / 2:4 time")
        assert fig["layout"]["yaxis"]["title"]["text"] == "predicted time per call (us, log scale)"
        for f in (fig, sp):
            assert "log scale" in f["layout"]["xaxis"]["title"]["text"]


def test_speedup_curve_runs_each_call_as_the_rows_did():
    """The model's curve passes through the model's own prediction of the smallest and largest measured
    squares of every dtype, B200 fp4 included, whose published dense call ran k/2 (Measurements.dense_k):
    a curve of the full-k dense GEMM would sit far from the points it is drawn with."""
    seen_packed = False
    for c in gpu_model.check_bundled():
        m = c.meas
        for dtype, (sizes, curve) in c.curves.items():
            for size, value in ((sizes[0], curve[0]), (sizes[-1], curve[-1])):
                row = np.flatnonzero((m.dtype == dtype) & (m.m == size) & (m.k == size) & (m.n == size))[0]
                assert value == pytest.approx(c.dense_us[row] / c.sparse_us[row], rel=1e-9), (c.name, dtype, size)
                seen_packed |= bool(m.dense_k[row] != m.k[row])
    assert seen_packed


def test_section_states_its_source_and_what_the_bundled_parameters_saw(page):
    i = page.index(f'id="{gpu_model.ANCHOR}"')
    text = page[i:i + 8000]
    assert "arXiv 2603.05232" in text and "github.com/bcacdwk/vllmbench" in text  # from the data's README
    assert "held-out" in text and "h100_sxm uses the hopper set (checked here on h100_pcie)" in text


def test_no_section_without_gpu_design_points(table):
    acc = table[~gpu_rows(table)]
    assert len(acc) and gpu_model.section(acc, acc, {}, Path(".")) is None
    assert gpu_model.section(table, table, {}, Path(".")) is not None


# ----------------------------------------------------------------------------- GPUs beside the accelerators
def test_gpu_designs_have_their_own_distinct_colours_everywhere(table, page):
    designs = sorted(table.design.unique())
    gpus = [d for d in designs if is_gpu(d)]
    assert gpus == ["a100_sxm", "h100_sxm"]
    colors = design_colors(designs)
    assert len(set(colors.values())) == len(designs)
    assert all(colors[g] in GPU_PALETTE and colors[g] not in DESIGN_PALETTE for g in gpus)
    # Adding the GPUs changes no accelerator's colour.
    acc = [d for d in designs if d not in gpus]
    assert {d: colors[d] for d in acc} == design_colors(acc)
    # GPUs come after the accelerators, and the page uses the same colour for a design everywhere.
    assert design_order(designs)[-2:] == gpus
    for d in designs:
        swatches = set(re.findall(r'data-design="%s"><caption><span class="sw" style="background:(#[0-9a-f]+)"' % d, page))
        assert swatches == {colors[d]}, d
    for fig in _figures(page):
        for tr in fig["data"]:
            if tr.get("name") in colors and tr.get("mode") == "markers":
                assert tr["marker"]["color"] == colors[tr["name"]]


def test_every_bundled_gpu_and_many_designs_get_distinct_colours():
    """A sweep with `gpus: bundled` (all ten specs) gave rtx4090 a100_pcie's blue and rtx5080 b200's magenta: the
    GPU palette had six colours and wrapped, so two GPUs read as one in every legend, table swatch and bar. The same
    for an eleventh accelerator design (ten colours). One colour per design, however many."""
    from hwmodel.gpu.design_point import bundled_gpu_names

    gpus = sorted(bundled_gpu_names())
    assert len(gpus) == 10
    acc = [f"design{i:02d}" for i in range(23)]
    colors = design_colors(acc + gpus)
    assert len(set(colors.values())) == len(acc) + len(gpus)
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colors.values())
    # Every bundled GPU has a colour of the GPU palette, none an accelerator's; the first designs keep theirs.
    assert all(colors[g] in GPU_PALETTE for g in gpus) and not set(GPU_PALETTE) & set(DESIGN_PALETTE)
    assert [colors[d] for d in acc[:len(DESIGN_PALETTE)]] == list(DESIGN_PALETTE)
    assert {g: colors[g] for g in gpus[:2]} == design_colors(gpus[:2])


def test_gpu_limiter_text_speaks_of_fixed_cost_and_the_2_4_only_mapping(table, page):
    lim = limiters(table)
    g = lim[lim.gpu]
    assert len(g) == gpu_rows(table).sum() > 0 and not lim.gpu[~gpu_rows(table)].any()
    rows = table.loc[g.index]
    for r, why in zip(rows.itertuples(), g.why):
        assert "SRAM" not in why and "leakage is" not in why and "dense's schedule" not in why, why
        ran_dense = r.pattern != "dense" and r.macs_issued >= r.macs_dense
        if ran_dense:
            assert why.startswith("runs dense: a GPU's sparse tensor cores run 2:4 only"), why
        elif r.utilization < 0.1:  # a point run as 2:4 says so first, then the cause of 2:4's figures
            assert why.startswith("fixed-cost bound") or (why.startswith("runs as 2:4: ") and "; fixed-cost bound: "
                                                         in why), why
    assert (g.sram == "").all() and set(g.latency_limiter) <= {"fixed per-call cost", "throughput"}
    # The 2:4 points the GPU runs slower than dense are explained on the page in these terms.
    slow = rows[(rows.pattern == "2:4") & (rows.speedup_vs_dense < 0.9)]
    assert len(slow) and re.search(r'<tr data-design="h100_sxm">.*?</td><td class=l><b>fixed-cost bound</b></td>', page)
    # Under each GPU card: which agents ran dense and what share of the MACs the others skipped, as the
    # table's MAC counts say (one note per env, scenario, batch and GPU).
    notes = [html_lib.unescape(n) for n in re.findall(r'<p class="small gpunote">(.*?)</p>', page)]
    want = []
    for _, grp in rows[rows.pattern != "dense"].groupby(["env", "scenario", "batch", "design"], sort=True):
        grp = grp.assign(label=[agent_label(m, a) for m, a in zip(grp.method, grp.agent)])
        skipped = 1 - grp.groupby("label").macs_issued.min() / grp.groupby("label").macs_dense.max()
        want.append((sorted(skipped.index[skipped <= 0]), {a: 100 * v for a, v in skipped[skipped > 0].items()}))
    got = []
    for note in notes:
        dense_part = re.search(r"Ran dense \(no layer's mask fits 2:4\): (.*)\.$", note)
        ran_dense = sorted(dense_part.group(1).split(", ")) if dense_part else []
        some = re.search(r"Share of dense's MACs skipped: (.*?)\.(?: Ran dense|$)", note).group(1)
        got.append((ran_dense, {m[0]: float(m[1]) for m in re.findall(r"(.+?) ([0-9.]+)%(?:, |$)", some)}))
    assert len(got) == len(want) == 8  # 2 envs x 2 scenarios x 2 GPUs
    unmatched = list(want)
    for g_dense, g_share in got:  # each note is one group's: same agents ran dense, same shares (2 digits)
        hit = next(w for w in unmatched if w[0] == g_dense and set(w[1]) == set(g_share)
                   and all(g_share[a] == pytest.approx(w[1][a], rel=0.05) for a in g_share))
        unmatched.remove(hit)
    assert any("gmp 0.9 QAT8" in d for d, _ in got) and all("2:4 (rnm-td3)" not in d for d, _ in got)
    assert all(n.startswith("GPU (16 b run bfloat16, 8 b run int8): its sparse tensor cores run 2:4 only.") for n in notes)


# ----------------------------------------------------------------------------- in a real browser
from tests.test_report_html import load_page, needs_chromium, problems  # noqa: E402

SECTION_JS = """(function () {
  var h = document.getElementById('%s'); var plots = [], el = h.nextElementSibling;
  while (el) { el.querySelectorAll('div.plot').forEach(function (d) {
      plots.push({right: d.getBoundingClientRect().right, svg: d.querySelectorAll('svg.main-svg').length,
                  points: d.querySelectorAll('.scatterlayer .point').length}); });
    el = el.nextElementSibling; }
  var t = document.querySelector('table.gpumodel'); var f = t.closest('.frame');
  return {view: window.innerWidth, page: document.documentElement.scrollWidth, plots: plots,
          table: {sw: f.scrollWidth, cw: f.clientWidth, right: t.getBoundingClientRect().right}};
})()""" % gpu_model.ANCHOR


@needs_chromium
def test_section_draws_in_chromium_without_errors_or_overflow_at_1400_px(sweep):
    url = (sweep / "report" / "index.html").resolve().as_uri()
    b, session = load_page(url, width=1400)
    try:
        assert problems(b.events, url) == []
        got = b.send("Runtime.evaluate", {"expression": SECTION_JS, "returnByValue": True}, session=session)["result"]["value"]
    finally:
        b.close()
    assert got["view"] == 1400 and got["page"] <= got["view"], got
    assert len(got["plots"]) == 2 * 4  # two per bundled measured GPU
    for p in got["plots"]:
        assert p["svg"] >= 1 and p["points"] > 0 and p["right"] <= got["view"], p
    assert got["table"]["sw"] <= got["table"]["cw"] and got["table"]["right"] <= got["view"], got["table"]


def test_section_costs_little(table):
    """The section is in every default report: it must stay a small part of the report's 3 s budget."""
    import time

    gpu_model.check_bundled()  # warm the one-time loads (specs, parameters) as a report does once
    t0 = time.process_time()
    sec = gpu_model.build_section(table)
    cpu = time.process_time() - t0
    assert len(sec.figures) == 8
    assert cpu < 1.0, f"GPU model section took {cpu:.2f} s CPU"


def test_gpu_2_4_slower_than_dense_says_why_with_the_models_fixed_kernel_times(sweep, table, page):
    """A 2:4 point a GPU runs slower than dense is not only 'not faster' (fixed cost): the line says a
    cuSPARSELt kernel's fixed time exceeds cuBLASLt's, with the two times of the parameters the GPU
    model used (hwmodel.gpu.design_point.model_params, as sweep.json records them), and the page's
    extreme-cell table says it."""
    import json

    from hwmodel.gpu.design_point import gpu_design, model_params
    from reports.why import gpu_fixed_times

    lim = limiters(table, gpu_fixed_times(json.loads((sweep / "sweep.json").read_text())))
    assert not any("cuSPARSELt," in w for w in limiters(table).why)  # no manifest: no figure quoted
    slow = table[lim.gpu & (table.pattern == "2:4") & (table.speedup_vs_dense < 0.95)]
    assert len(slow) >= 8  # both GPUs, both envs, both scenarios
    for (r, why) in zip(slow.itertuples(), lim.why[slow.index]):
        p = model_params(gpu_design(r.design).spec)
        assert p.kernel_sparse_us > p.kernel_dense_us
        want = (f"a 2:4 kernel's fixed time (cuSPARSELt, {p.kernel_sparse_us:.3g} us) is longer than a dense one's "
                f"(cuBLASLt, {p.kernel_dense_us:.3g} us;")
        assert want in why and f"so 2:4 runs at {fmt_ratio(r.speedup_vs_dense)}x dense's speed" in why, why
        assert html_lib.escape(want, quote=False) in page or want.replace("'", "&#x27;") in page
    # Points that are not slower keep the plain 'not that fixed time' wording.
    fast = table[lim.gpu & (table.pattern != "dense") & (table.speedup_vs_dense >= 0.95)]
    assert not any("cuSPARSELt," in w for w in lim.why[fast.index])


# ----------------------------------------------------------------------------- fixed times as the sweep ran
def _slow_why(rdir: Path) -> list[str]:
    """The why lines of the page's fixed-cost-bound 2:4 points that run slower than dense."""
    text = html_lib.unescape((rdir / "index.html").read_text())
    return sorted(set(re.findall(r"fixed-cost bound: [^<]*?2:4 runs at [^<]*|fixed-cost bound: [^<]*?not that "
                                 r"fixed time \([^<]*?not quoted\)", text)))


def _copy_sweep(sweep: Path, to: Path, edit) -> Path:
    import json
    import shutil

    to.mkdir()
    shutil.copy(sweep / "points.parquet", to / "points.parquet")
    manifest = json.loads((sweep / "sweep.json").read_text())
    edit(manifest)
    (to / "sweep.json").write_text(json.dumps(manifest))
    return to


def test_sweep_json_records_the_fixed_times_each_gpu_ran_with(sweep):
    """The why line of a 2:4 point slower than dense quotes the GPU's fixed kernel times; points.parquet did not
    say which parameter set the sweep used, so the report read whatever file was bundled when it was built."""
    import json

    from hwmodel.gpu.design_point import fitted_on, gpu_design, model_params
    from hwmodel.gpu.params import default_path, set_name_for
    from sweeps.grid import file_sha

    designs = json.loads((sweep / "sweep.json").read_text())["designs"]
    gpus = {d["name"]: d["gpu_model"] for d in designs if "gpu_model" in d}
    assert sorted(gpus) == ["a100_sxm", "h100_sxm"] and all(is_gpu(n) for n in gpus)
    assert not any("gpu_model" in d for d in designs if not is_gpu(d["name"]))
    for name, rec in gpus.items():
        spec = gpu_design(name).spec
        p = model_params(spec)
        assert rec == {"params_file": "gpu_params.yaml", "params_sha": file_sha(default_path()),
                       "params_set": set_name_for(spec), "params_fitted_on": fitted_on(set_name_for(spec)),
                       "kernel_dense_us": p.kernel_dense_us, "kernel_sparse_us": p.kernel_sparse_us}
    # Neither GPU has timings of its own: each runs on its architecture's set, fitted on a PCIe card.
    assert gpus["a100_sxm"]["params_fitted_on"] == ["a100_pcie"] and gpus["h100_sxm"]["params_fitted_on"] == ["h100_pcie"]


def test_the_why_line_quotes_the_fixed_times_the_sweep_used(sweep, tmp_path):
    """Fixed times edited in sweep.json (as a parameter file changed since the sweep would leave them) are
    the ones quoted, with the change named; an older sweep.json without them quotes nmlab's figures only
    where its model_sha is today's, and otherwise says they are not quoted."""
    from reports.build import build_report

    def recorded(m):
        for d in m["designs"]:
            if "gpu_model" in d:
                d["gpu_model"].update(kernel_dense_us=3.21, kernel_sparse_us=9.87, params_sha="0" * 16)

    build_report(_copy_sweep(sweep, tmp_path / "recorded", recorded))
    lines = _slow_why(tmp_path / "recorded" / "report")
    assert lines and all("(cuSPARSELt, 9.87 us) is longer than a dense one's (cuBLASLt, 3.21 us; the sweep's "
                         in ln and "nmlab's gpu_params.yaml has changed since)" in ln for ln in lines), lines
    # Both GPUs run on a set fitted on another card's timings, and the line says so.
    assert all(", fitted on a100_pcie, not on this GPU;" in ln or ", fitted on h100_pcie, not on this GPU;" in ln
               for ln in lines), lines

    def older(m):
        for d in m["designs"]:
            d.pop("gpu_model", None)
        m["model_sha"] = "0" * 16

    build_report(_copy_sweep(sweep, tmp_path / "older", older))
    lines = _slow_why(tmp_path / "older" / "report")
    assert lines and all("cuSPARSELt" not in ln and "does not record the GPU model's fixed times" in ln
                         for ln in lines), lines
    assert _slow_why(tmp_path / "older" / "report") == lines  # the same inputs, the same page

    def older_same_model(m):
        for d in m["designs"]:
            d.pop("gpu_model", None)

    build_report(_copy_sweep(sweep, tmp_path / "same", older_same_model))
    same = _slow_why(tmp_path / "same" / "report")
    assert same and all("cuSPARSELt, " in ln and "us; the model's " in ln and "changed since" not in ln
                        for ln in same), same


@pytest.mark.parametrize("field, value, message", [
    ("kernel_sparse_us", "fast", "expected a positive number"),
    ("params_fitted_on", "h100_pcie", "expected a list of GPU names"),
])
def test_a_damaged_gpu_model_record_is_one_line(sweep, tmp_path, field, value, message):
    from hwmodel.errors import NmlabError
    from reports.build import build_report

    def damage(m):
        next(d for d in m["designs"] if "gpu_model" in d)["gpu_model"][field] = value

    out = _copy_sweep(sweep, tmp_path / "bad", damage)
    with pytest.raises(NmlabError, match=rf"designs\[\d+\]\.gpu_model\.{field}: {message}"):
        build_report(out)
    assert not (out / "report").exists()


def test_summary_names_no_winner_where_no_sparse_point_beats_dense(tmp_path):
    """On a GPU at batch 1 every 2:4 point is slower than dense and the agents that run dense tie at 1.00x:
    summary.md said 'Largest speedup vs dense at the same bits: 1x (gmp 0.9 QAT8 at 8 bits on h100_sxm)', as if
    that agent gained; it now says no sparse point is faster (or saves energy), with the best figure."""
    import yaml

    from reports.build import build_report
    from sweeps import api

    cfg = tmp_path / "gpu.yaml"
    cfg.write_text(yaml.safe_dump({"designs": "none", "gpus": ["h100_sxm"], "bits": [8],
                                   "patterns": ["dense", "2:4", "unstructured"],
                                   "scenarios": [{"scenario": "inference", "batch": 1}]}))
    out = tmp_path / "out"
    api.run(str(cfg), out, workers=1, progress=False)
    build_report(out)
    df = pd.read_parquet(out / "points.parquet")
    sparse = df[df.pattern != "dense"]
    assert sparse.speedup_vs_dense.max() <= 1 + 1e-12 and (sparse.speedup_vs_dense < 0.95).any()
    md = (out / "report" / "summary.md").read_text()
    assert "Largest speedup" not in md
    assert md.count("No sparse point is faster than dense at the same bits (at best 1.00x); none uses less energy "
                    "than dense (at best 1.00).") == df.env.nunique()


def test_speedup_size_axis_is_ticked_at_the_measured_squares(page):
    """The speedup plot's size axis had ticks 100, 1,000, 10,000, between the measured squares (64 ... 16,384),
    so neither a point nor the table's crossover size (1024 / 2048) could be read off it."""
    figs = {f["layout"]["title"]["text"]: f for f in _figures(page)}
    checked = 0
    for c in gpu_model.check_bundled():
        m = c.meas
        sizes = sorted({int(v) for v in m.m[(m.m == m.k) & (m.k == m.n)]})
        ax = figs[f"{html_lib.escape(c.device)}: 2:4 speedup vs square size"]["layout"]["xaxis"]
        ticks = ax["tickvals"]
        assert set(ticks) <= set(sizes) and len(ticks) >= min(len(sizes), 5), (c.name, ticks, sizes)
        assert ax["ticktext"] == [f"{v:,}" for v in ticks]
        assert not {100, 1000, 10000} & set(ticks)
        checked += 1
    assert checked == 4


def _cielab(hex_colour):
    """CIE L*a*b* (D65) of an sRGB ``#rrggbb`` colour."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                    [0.0193339, 0.1191920, 0.9503041]]) @ lin / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_gpu_colours_are_far_from_each_other_and_from_the_accelerators():
    """Two GPU magentas (#e000e0, #c000c0: CIELAB distance 13.7) read as one GPU in a legend. Every
    GPU colour is 30 or more (CIE76) from every other, from every accelerator colour and from black."""
    import itertools

    far = [(a, b, float(np.linalg.norm(_cielab(a) - _cielab(b))))
           for a, b in [*itertools.combinations(GPU_PALETTE, 2),
                        *itertools.product(GPU_PALETTE, [*DESIGN_PALETTE, "#000000"])]]
    assert min(far, key=lambda x: x[2])[2] >= 30, sorted(far, key=lambda x: x[2])[:3]
