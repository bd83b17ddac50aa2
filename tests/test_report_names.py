"""Names and free text from users' files (a design's ``name:``, a workload's ``meta.env`` and
``meta.method``, quality table rows) drawn faithfully and safely in every report output: the PNGs,
the page's plots, summary.md, and the file names derived from them."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hwmodel.io import data_path
from hwmodel.workload import load_workload, save_workload
from reports.build import build_report
from sweeps import api


def odd_sweep(root: Path, envs: list[str], designs: list[str], method: str | None = None) -> Path:
    """A real sweep (one 8-bit inference point per env x pattern x design, dense and 2:4, no GPU)
    whose envs and design names are the given strings; quality rows copied from the bundled Hopper
    rows, so the return fronts have points. Returns the sweep folder."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [r for r in csv.DictReader(open(data_path("workloads", "quality.csv"))) if r["env"].startswith("Hopper")]
    wls, qrows = [], []
    for i, env in enumerate(envs):
        for pat in ("dense", "2of4"):
            wl = load_workload(data_path("workloads", f"hopper_{pat}_s0.nmw"))
            wl.meta["env"] = env
            if method is not None:
                wl.meta["method"] = method
            save_workload(wl, root / f"w{i}_{pat}_s0.nmw")
            wls.append(f"w{i}_{pat}_s0.nmw")
        qrows += [{**r, "env": env, **({"method": method} if method is not None else {})} for r in rows
                  if method is None or r["method"] in ("td3", "rnm-td3")]
    for i, name in enumerate(designs):
        d = yaml.safe_load(data_path("designs", "edge_ws.yaml").read_text())
        d["name"] = name
        (root / f"d{i}.yaml").write_text(yaml.safe_dump(d, allow_unicode=True))
    with open(root / "q.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(qrows)
    cfg = {"version": 1, "workloads": wls, "patterns": ["dense", "2:4"], "bits": [8],
           "designs": [f"d{i}.yaml" for i in range(len(designs))], "gpus": "none",
           "scenarios": [{"scenario": "inference", "batch": 1}], "quality": "q.csv"}
    (root / "sweep.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    out = root / "out"
    api.run(root / "sweep.yaml", out, workers=1, progress=False)
    return out


def test_dollar_signs_in_names_are_text_in_the_pngs(tmp_path, monkeypatch):
    """A ``$`` in a design or env name was read as matplotlib mathtext: ``a$b$c`` drew an italic b
    without its dollars, and an env ``Hopper $\\frac{$`` failed the report with a parse traceback."""
    from matplotlib.text import Text

    from reports import figures
    from reports.fronts import compute_fronts

    out = odd_sweep(tmp_path, ["Hopper $\\frac{$"], ["a$b$c", "$\\alpha$"])
    build_report(out, pngs=True)  # raised ValueError (ParseSyntaxException) before
    df = pd.read_parquet(out / "points.parquet")
    seen: list[tuple[str, bool]] = []

    def keep(fig, path):
        fig.canvas.draw()
        seen.extend((t.get_text(), t.get_parse_math()) for t in fig.findobj(Text) if "$" in t.get_text())
        return path

    monkeypatch.setattr(figures, "_save", keep)
    for job in figures.png_jobs(df, compute_fronts(df), tmp_path / "png"):
        figures._run_job(job)
    texts = {t for t, _ in seen}
    assert any("a$b$c" in t for t in texts) and any("$\\alpha$" in t for t in texts), texts
    assert all(not parse for _, parse in seen), [t for t, p in seen if p]


def test_each_env_gets_its_own_energy_png(tmp_path):
    """``energy_<slug>.png`` of ``Hopper-v5`` and ``hopper_v5`` was one file (the second replaced the
    first, and summary.md linked it twice); an env with no letter or digit a-z, 0-9 wrote ``energy_.png``;
    a long env name would pass the file system's limit. Every env's PNG is its own file, in the report
    folder (a ``../`` in a name is no path)."""
    from reports.figures import env_png_names

    long = "E" * 300
    envs = ["Hopper-v5", "hopper_v5", "日本", "🚀", "../../x", "a/b", long, "Ratio same bits"]
    names = env_png_names(envs)
    assert len(set(names.values())) == len(envs), names
    assert all(n.startswith("energy_") and n.endswith(".png") and "/" not in n and ".." not in n for n in names.values())
    assert "energy_.png" not in names.values() and "energy_ratio_same_bits.png" not in names.values()
    assert max(len(n.encode()) for n in names.values()) < 100
    assert env_png_names(["Hopper-v5", "HalfCheetah-v5"]) == {"Hopper-v5": "energy_hopper_v5.png",
                                                           "HalfCheetah-v5": "energy_halfcheetah_v5.png"}
    out = odd_sweep(tmp_path, ["Hopper-v5", "hopper_v5", "../../x"], ["edge_ws"])
    build_report(out, pngs=True)
    pngs = sorted(p.name for p in (out / "report").glob("energy_*.png") if p.name != "energy_ratio_same_bits.png")
    assert len(pngs) == 3 and "energy_x.png" in pngs, pngs
    assert not list(tmp_path.glob("*.png")) and not list(out.glob("*.png"))
    md = (out / "report" / "summary.md").read_text()
    assert all(f"({p})" in md for p in pngs)


#: A design name plotly would read as its HTML subset, an html.escape entity it does not decode, and a
#: hovertemplate field; an env with a tag and a template field.
ODD_DESIGN = "<b>x</b>|\"q\"&'s %{y}"
ODD_ENV = "<i>Hop</i> %{x} & co"
#: A design name of Markdown markup: code, emphasis, a link, math.
MD_DESIGN = "`t` *s* _u_ [l](x) $m$"


@pytest.fixture(scope="module")
def odd_report(tmp_path_factory) -> Path:
    out = odd_sweep(tmp_path_factory.mktemp("odd"), [ODD_ENV], [ODD_DESIGN, MD_DESIGN, "edge_ws"], method="<s>td3</s>")
    build_report(out)
    return out


def _strings(obj):
    """Every string plotly draws in a figure (a legendgroup is an id, never drawn)."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k != "legendgroup":
                yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


def test_plotly_text_of_names_is_escaped_for_plotly(odd_report):
    """The page's plots drew a design named ``<b>x</b>`` as a bold x (plotly reads its text as HTML) and
    its ``"`` as ``&quot;`` (html.escape's entity, which plotly does not decode); a ``%{y}`` in a name
    was filled in by the hover template. Every label, legend entry, tick and hover built from a name
    now carries it escaped for plotly."""
    from reports.fronts import FRONT_SPECS, compute_fronts
    from reports.html import pareto_figure, why_figure

    df = pd.read_parquet(odd_report / "points.parquet")
    designs = sorted(df.design.unique())
    fronts = compute_fronts(df)
    spec = FRONT_SPECS[0]
    by = {f["group"]["design"]: f["point_ids"] for f in fronts if f["name"] == spec.name}
    figs = [pareto_figure(df, spec, by, designs), why_figure(df, designs)]
    texts = [t for fig in figs for t in _strings(fig)]
    for raw in ("<b>x</b>", "<i>Hop</i>", "<s>td3</s>", "&quot;"):
        assert not [t for t in texts if raw in t], raw
    templates = [t["hovertemplate"] for fig in figs for t in fig["data"] if "hovertemplate" in t]
    assert templates and not [t for t in templates if "'s %{y}" in t]
    assert any(t == "&lt;b&gt;x&lt;/b&gt;|\"q\"&amp;'s %{y}" for t in texts)  # the legend entry
    assert any("<b>&lt;b&gt;x&lt;/b&gt;|\"q\"&amp;'s %{y}</b>" in t for t in texts)  # a why row's title
    assert any(t.startswith("&lt;b&gt;x&lt;/b&gt;|\"q\"&amp;'s &#37;{y} %{x}") for t in texts)  # a hover template
    assert any("&lt;s&gt;td3&lt;/s&gt;" in t for t in texts)  # the method, in hovers and ticks


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed: browser test skipped")
def test_page_draws_odd_names_as_written(odd_report):
    """In the browser: the legend and the why row title read the design's name as written, and
    none of the names' tags became an element."""
    page = odd_report / "report" / "index.html"
    dom = subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=60000",
                          "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    legend = re.findall(r'<text class="legendtext"[^>]*>(.*?)</text>', dom)
    assert "&lt;b&gt;x&lt;/b&gt;|\"q\"&amp;'s %{y}" in legend, sorted(set(legend))[:20]
    assert '<tspan style="font-weight:bold">&lt;b&gt;x&lt;/b&gt;|"q"&amp;\'s %{y}</tspan>' in dom
    drawn = "".join(re.findall(r"<text[^>]*>.*?</text>", dom))  # the plots' text (plotly.js names its styles too)
    assert drawn.count("&lt;b&gt;x&lt;/b&gt;") >= 2
    for style in ("font-weight:bold\">x<", "font-style:italic", "line-through"):  # <b>x</b>, <i>Hop</i>, <s>td3</s>
        assert style not in drawn, style


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line.replace("\\\\", "")))


def test_summary_md_tables_keep_their_columns_and_names_are_text(odd_report):
    """A ``|`` in a design name split the summary's table rows into one column too many, and a name's
    ``<b>``, backticks, ``*`` and ``$`` were Markdown (raw HTML, code, emphasis, math). Every table row
    now has its header's columns, and the names are escaped."""
    md = (odd_report / "report" / "summary.md").read_text()
    tables, cur = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            tables.append(cur)
            cur = []
    assert len(tables) >= 5
    for t in tables:
        cols = [_unescaped_pipes(line) for line in t]
        assert len(set(cols)) == 1, "\n".join(t)
    for raw in ("<b>x</b>", "<i>Hop</i>", "<s>td3</s>", "`t`", "*s*", "$m$", "[l](x)"):
        assert raw not in md, raw
    assert "\\<b>x\\</b>\\|\"q\"&'s %{y}" in md  # the design, each table and heading alike ("<" only before a tag)
    assert "\\`t\\` \\*s\\* \\_u\\_ \\[l\\](x) \\$m\\$" in md
    assert "### \\<i>Hop\\</i> %{x} & co" in md


@pytest.mark.parametrize("key, value", [("env", "Hop\nper"), ("env", "Hopper\x1b[31m"), ("method", "td3\tx")])
def test_sweep_refuses_a_workload_env_or_method_with_a_control_character(tmp_path, capsys, key, value):
    """A newline in ``meta.env`` split summary.md's table rows and headings, and an escape sequence in it
    reached the terminal in the sweep's and the report's notes; refused in one line naming the field."""
    from hwmodel.cli import main

    wl = load_workload(data_path("workloads", "hopper_dense_s0.nmw"))
    wl.meta[key] = value
    save_workload(wl, tmp_path / "w_dense_s0.nmw")
    (tmp_path / "sweep.yaml").write_text("version: 1\nworkloads: [w_dense_s0.nmw]\npatterns: [dense]\nbits: [8]\n"
                                         "designs: [edge_ws]\ngpus: none\nquality: none\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["sweep", str(tmp_path / "sweep.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"meta.{key}: must be printable" in err[0] and "w_dense_s0.nmw" in err[0], err
    assert "\x1b" not in err[0] and "\t" not in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_accelerator_named_as_a_bundled_gpu_is_no_gpu_in_the_report(tmp_path):
    """An accelerator design named ``h100_sxm`` (legal: a sweep without GPUs has no other point of
    that name) was reported as a GPU: "h100_sxm (GPU)" in the tables, the GPU's notes and panels. Its
    rows carry a technology node, as every accelerator's do: they decide. The next report's GPUs are
    its own."""
    from reports.data import is_gpu

    out = odd_sweep(tmp_path, ["Hopper-v5"], ["h100_sxm", "edge_ws"])
    build_report(out)
    md = (out / "report" / "summary.md").read_text()
    page = (out / "report" / "index.html").read_text()
    assert "h100_sxm" in md and "(GPU)" not in md and "GPU (8 b run int8)" not in md
    assert "h100_sxm (GPU)" not in page
    assert is_gpu("h100_sxm")  # outside that report, the bundled spec's name is a GPU again


def test_a_name_opening_an_html_comment_leaves_every_plot_drawn(tmp_path):
    """A design named ``<!--<script>`` (its legendgroup is the name as it is) put the page's plot script in
    the HTML parser's escaped state: the closing ``</script>`` no longer ended it and not one plot was
    drawn. The plots' JSON now holds no ``<`` at all."""
    from reports.html import _plots_script

    script = _plots_script([("p0", {"data": [{"name": "a", "legendgroup": "<!--<script>"}], "layout": {}})])
    body = script[len("<script>"):-len("</script>")]
    assert "<" not in body and ">" not in body.replace("=>", "")
    out = odd_sweep(tmp_path, ["Hopper-v5"], ["<!--<script>", "edge_ws"])
    build_report(out)
    if shutil.which("chromium"):
        page = out / "report" / "index.html"
        dom = subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=60000",
                          "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        plots = len(re.findall(r'<div id="plot\d+"', page.read_text()))
        assert plots and dom.count('class="main-svg"') >= plots, (plots, dom.count('class="main-svg"'))


def test_quality_table_written_with_spaces_after_commas_joins_the_same_returns(tmp_path):
    """The quality table's header was read without the spaces around its names, its cells with them: a
    table written ``Hopper-v5, td3, dense, 8, ...`` had the method `` td3``, joined no workload, and
    every return of the sweep was missing (an rlx2 row was refused: `` 0.98/0.95`` is no pattern)."""
    from sweeps.derived import load_quality

    src = data_path("workloads", "quality.csv").read_text()
    spaced = tmp_path / "spaced.csv"
    spaced.write_text(src.replace(",", ", "))
    plain = load_quality(data_path("workloads", "quality.csv"))
    assert load_quality(spaced) == plain and len(plain) > 10


def test_published_returns_written_with_spaces_after_commas_name_the_same_envs(tmp_path):
    """The published returns' env was read with the space after its comma (`` Hopper-v5``) and matched
    no env of the sweep; a label of spaces alone passed as a label."""
    from hwmodel.agents import load_published
    from hwmodel.errors import NmlabError

    rows = [("method", "env", "label", "fraction_of_dense", "source"), ("rnm-td3", "Hopper-v5", "2:4", "0.9", "paper A"),
            ("rlx2", "HalfCheetah-v5", "rlx2 0.9/0.9", "0.8", "paper B")]
    plain, spaced = tmp_path / "plain.csv", tmp_path / "spaced.csv"
    plain.write_text("".join(",".join(r) + "\n" for r in rows))
    spaced.write_text("".join(", ".join(r) + "\n" for r in rows))
    assert load_published(spaced) == load_published(plain) == {("Hopper-v5", "2:4"): (0.9, "paper A"),
                                                                ("HalfCheetah-v5", "rlx2 0.9/0.9"): (0.8, "paper B")}
    blank = tmp_path / "blank.csv"
    blank.write_text("method,env,label,fraction_of_dense,source\nrnm-td3,Hopper-v5,  ,0.9,x\n")
    with pytest.raises(NmlabError, match="line 2: env and label must not be empty"):
        load_published(blank)


def test_nmlab_workload_prints_meta_text_on_one_line_each(tmp_path, capsys):
    """``nmlab workload`` printed a meta value as it is: a newline split its line in two and an escape
    sequence (``\\x1b[31m``) reached the terminal. Each is written as Python writes it in a string."""
    from hwmodel.cli import main

    wl = load_workload(data_path("workloads", "hopper_dense_s0.nmw"))
    wl.meta.update(source="x\x1b[31mRED", note="a\nb")
    save_workload(wl, tmp_path / "w.nmw")
    assert main(["workload", str(tmp_path / "w.nmw")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "  source: x\\x1b[31mRED\n" in out and "  note: a\\nb\n" in out
    assert sum(line.startswith("  ") for line in out.splitlines()) == len(wl.meta)


def test_each_env_gets_its_own_page_anchor():
    """``Hopper-v5`` and ``hopper_v5`` (or ``hopper-v5``) had one answer and glance anchor, so the page's
    link to the second env's answer jumped to the first's. Each env's anchor is its own, a valid id (no
    space), and a plain name reads as written."""
    from reports.answer import env_anchor, glance_anchor

    envs = ["Hopper-v5", "hopper_v5", "hopper-v5", "HOPPER-V5", "a b", "a-b", "日本", "🚀", "", "-", "<x>"]
    anchors = [env_anchor(e) for e in envs]
    assert len(set(anchors)) == len(envs), anchors
    assert len({glance_anchor(e) for e in envs}) == len(envs)
    assert all(re.fullmatch(r"answer-[A-Za-z0-9-]+", a) for a in anchors), anchors
    assert (env_anchor("Hopper-v5"), glance_anchor("HalfCheetah-v5")) == ("answer-Hopper-v5", "glance-HalfCheetah-v5")


@pytest.mark.parametrize("drop, file, meta, named", [
    ("env", "Hop\nper_dense_s0.nmw", {}, "env (the file name's start; no meta.env)"),
    ("method", "w_dense_s0.nmw", {"source": "td3\tx"}, "meta.source"),
])
def test_a_control_character_refusal_names_where_the_env_or_method_came_from(tmp_path, capsys, drop, file, meta,
                                                                             named):
    """A workload without ``meta.env`` takes its env from its file name, one without ``meta.method`` its
    method from ``meta.source``: a control character there was refused as ``meta.env`` / ``meta.method``,
    keys the file does not have, and a newline in the file name split the one-line error in two."""
    from hwmodel.cli import main

    wl = load_workload(data_path("workloads", "hopper_dense_s0.nmw"))
    wl.meta.pop(drop)
    wl.meta.update(meta)
    save_workload(wl, tmp_path / file)
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({
        "version": 1, "workloads": [file], "patterns": ["dense"], "bits": [8], "designs": ["edge_ws"],
        "gpus": "none", "quality": "none"}))
    assert main(["sweep", str(tmp_path / "sweep.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{named}: must be printable" in err[0], err
    assert "\t" not in err[0] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["__init__", "__x__ y", "a __b__ c", "edge_ws", "x__y", "_u_", "dense_td3__v2"])
def test_summary_md_leaves_no_underscore_that_markdown_reads_as_emphasis(name):
    """Markdown takes ``_`` for punctuation, so in ``__init__`` the inner ``_init_`` is emphasis even with
    the outer two escaped (``\\__init_\\_`` rendered as _*init*_). An underscore left as it is must sit
    between two letters or digits (``edge_ws``): there it never opens or closes emphasis."""
    from reports.data import md_text

    out = md_text(name)
    assert re.sub(r"\\(.)", r"\1", out) == name, out  # the name, as written, once the escapes are read
    raw = [i for i, ch in enumerate(out) if ch == "_" and (i == 0 or out[i - 1] != "\\")]
    assert all(0 < i < len(out) - 1 and out[i - 1].isalnum() and out[i + 1].isalnum() for i in raw), out
    assert md_text("edge_ws") == "edge_ws"


@pytest.mark.parametrize("text, expected", [
    ("runs 1:4 as 2:4 (every group of 4 holds <= 2)", "runs 1:4 as 2:4 (every group of 4 holds <= 2)"),
    ("A & B, a > b, a#b", "A & B, a > b, a#b"),
    ("<b>x</b>", "\\<b>x\\</b>"), ("<!--", "\\<!--"), ("&amp; &#60;", "\\&amp; \\&#60;"),
    ("# h", "\\# h"), ("> q", "\\> q"),
])
def test_summary_md_escapes_only_what_markdown_would_read(text, expected):
    """Every ``<``, ``>``, ``&`` and ``#`` was escaped, so the program's own notes read ``\\<= 2`` in the raw
    summary.md; only a ``<`` that could open a tag, an ``&`` that could open an entity, and a ``#`` or ``>``
    opening the text are Markdown."""
    from reports.data import md_text

    assert md_text(text) == expected
