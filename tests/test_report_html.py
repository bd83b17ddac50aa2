"""nmlab report: the page loads offline in a real headless Chromium without console errors and draws its plots.

The browser is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
NUL-separated JSON on fds 3 and 4), so no websocket library is needed. Every network
request the page makes is recorded: a self-contained page makes none besides itself.
Skipped with a message when Chromium is not installed (``make system-deps`` installs it).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from reports.build import build_report
from sweeps import api
from tests.test_sweep_engine import fake_evaluate, write_config

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe"]


class Browser:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="nmlab-chromium-")
        r_in, self._w = os.pipe()    # we write commands -> chromium reads fd 3
        self._r, w_out = os.pipe()   # chromium writes fd 4 -> we read
        def to_fds_3_and_4():
            # Copy above 10 first so neither dup2 can clobber the other's source.
            a, b = fcntl.fcntl(r_in, fcntl.F_DUPFD, 10), fcntl.fcntl(w_out, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(3, 4), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=to_fds_3_and_4,
        )
        os.close(r_in)
        os.close(w_out)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _read_message(self, timeout: float) -> dict:
        import select

        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("no message from chromium")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read_message(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while True:
            ev = self._read_message(max(0.01, deadline - time.monotonic()))
            self.events.append(ev)
            if ev.get("method") == method:
                return ev

    def wait_plots(self, session: str, timeout: float = 120) -> None:
        """Wait until the page has drawn every plot: its script draws them one per task after the load event
        (nearest the window first) and sets the root element's data-plots to "drawn" when all are."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.send("Runtime.evaluate", {"returnByValue": True, "expression":
                            "document.documentElement.getAttribute('data-plots')"}, session=session)["result"]
            if got.get("value") in ("drawn", None):  # None: a page without plots
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the page did not draw its plots")
            time.sleep(0.1)

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.events.append(self._read_message(end - time.monotonic()))
            except TimeoutError:
                return

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self.profile, ignore_errors=True)


def load_page(url: str, width: int | None = None, height: int = 1000) -> tuple[Browser, str]:
    """A Browser that has loaded ``url`` and drawn its plots, and its page's session; the caller closes it.
    ``width``, ``height``: the viewport in CSS px, else (no ``width``) Chromium's default window."""
    b = Browser()
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            b.send(f"{domain}.enable", session=session)
        if width is not None:
            b.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                          "mobile": False}, session=session)
        b.send("Page.navigate", {"url": url}, session=session)
        b.wait_event("Page.loadEventFired", timeout=90)
        b.wait_plots(session)
        b.drain(1.0)  # let late console messages and requests arrive
    except BaseException:
        b.close()
        raise
    return b, session


def problems(events: list[dict], page_url: str) -> list[str]:
    """Console errors/warnings, uncaught exceptions, log errors and any request other than the page."""
    out = []
    for ev in events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            out.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p.get('args', [])]}")
        elif m == "Runtime.exceptionThrown":
            out.append(f"exception: {p['exceptionDetails'].get('exception', {}).get('description') or p['exceptionDetails'].get('text')}")
        elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            out.append(f"log {p['entry']['level']}: {p['entry']['text']} {p['entry'].get('url', '')}")
        elif m == "Network.requestWillBeSent":
            url = p["request"]["url"]
            if url != page_url and not url.startswith("data:"):
                out.append(f"network request: {url}")
    return out


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (run `make system-deps`): browser test skipped")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    out = tmp / "sweep"
    api.run(write_config(tmp, chunk_size=50), out, workers=1, evaluate=fake_evaluate, progress=False)
    # Give the trained points a return so the return fronts have something to show.
    df = pd.read_parquet(out / "points.parquet")
    trained = df.mask_source == "trained"
    df.loc[trained, "return_mean"] = 3000.0 - 200.0 * (df.loc[trained, "bits"] < 8) - 100.0 * (df.loc[trained, "pattern"] != "dense")
    df.loc[trained, "return_missing"] = False
    df.to_parquet(out / "points.parquet")
    build_report(out, pngs=True)
    return out


@needs_chromium
def test_page_loads_offline_without_errors_and_draws_every_plot(report_dir):
    page = report_dir / "report" / "index.html"
    url = page.resolve().as_uri()
    b, session = load_page(url)
    try:
        found = problems(b.events, url)
        assert found == [], found
        result = b.send("Runtime.evaluate", {"returnByValue": True, "expression": """
            Array.from(document.querySelectorAll('div.plot')).map(function (d) {
              return {id: d.id, svg: d.querySelectorAll('svg.main-svg').length,
                      traces: d.querySelectorAll('.scatterlayer .trace, .barlayer .trace').length,
                      points: d.querySelectorAll('.scatterlayer .point, .barlayer .point').length};
            })"""}, session=session)["result"]["value"]
        drawn = b.send("Runtime.evaluate", {"returnByValue": True, "expression": """
            (function () { var out = {}; document.querySelectorAll('div.plot').forEach(function (d) {
              out[d.id] = d.data.map(function (t) { return %s.map(function (k) {
                return t[k] === undefined ? null : t[k]; }); }); }); return out; })()""" % json.dumps(list(DRAWN_KEYS))},
            session=session)["result"]["value"]
    finally:
        b.close()
    html = page.read_text()
    n_plots = html.count('class="plot"')
    assert n_plots == len(result) > 0
    for plot in result:
        assert plot["svg"] >= 1 and plot["traces"] >= 1 and plot["points"] >= 1, plot
    # Each plot drew the figure the report built, every list sent once put back in each place.
    from reports.html import page_figures

    want = {f["id"]: [[t.get(k) for k in DRAWN_KEYS] for t in f["data"]] for f in page_figures(html)}
    assert drawn == want


#: The trace arrays the browser test compares with the figures the report built.
DRAWN_KEYS = ("x", "y", "text", "customdata", "hovertext")


@needs_chromium
def test_problem_detection_works(tmp_path):
    """The checks above can fail: a page with a console error and a network fetch is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("boom")</script><img src="http://127.0.0.1:9/x.png"></body></html>')
    url = bad.resolve().as_uri()
    b, _ = load_page(url)
    try:
        found = problems(b.events, url)
    finally:
        b.close()
    assert any("boom" in f for f in found) and any("127.0.0.1:9" in f for f in found), found


def test_page_is_self_contained(report_dir):
    html = (report_dir / "report" / "index.html").read_text()
    assert "<script src=" not in html and "<link " not in html  # nothing loaded from elsewhere
    assert "Plotly.newPlot" in html and len(html) > 3_000_000  # plotly.js (~3.5 MB) is inlined


def test_page_sends_each_repeated_list_once(report_dir):
    """The plot data repeated itself: a why figure gave each design's categories and point ids in all ten of its
    traces, the four fronts of a section their points' hover texts each (the default report: 1.41 MB of plot
    data, 0.43 MB of it repeats). Each such list is sent once; the figures read back are the ones built."""
    from reports.html import SHARED_MIN_CHARS, expand_shared, share_repeats

    html = (report_dir / "report" / "index.html").read_text()
    payload = json.loads(html.split("<script>(function(){var P=", 1)[1].split(";var C=", 1)[0])
    assert payload["S"]
    seen: dict[str, int] = {}

    def lists(o):
        if isinstance(o, dict):
            for v in o.values():
                lists(v)
        elif isinstance(o, list):
            if all(not isinstance(v, (list, dict)) for v in o):
                k = json.dumps(o, separators=(",", ":"))
                if len(k) >= SHARED_MIN_CHARS:
                    seen[k] = seen.get(k, 0) + 1
            else:
                for v in o:
                    lists(v)

    lists(payload["figures"])
    lists(payload["S"])
    assert seen and max(seen.values()) == 1
    figs = [{"id": "a", "data": [{"x": ["dense @8", "2:4 @8", "1:4 @8", "1:8 @8", "gmp @8"] * 3, "y": [1.5, None]},
                                 {"x": ["dense @8", "2:4 @8", "1:4 @8", "1:8 @8", "gmp @8"] * 3, "y": [1.5, None]}],
             "layout": {"xaxis": {"categoryarray": ["dense @8", "2:4 @8", "1:4 @8", "1:8 @8", "gmp @8"] * 3}}}]
    shared_figs, shared = share_repeats(figs)
    assert len(shared) == 1 and expand_shared(shared_figs, shared) == figs


def test_fronts_json_equals_brute_force_from_parquet(report_dir):
    from tests.test_report_fronts import check_fronts_against_table

    doc = json.loads((report_dir / "report" / "fronts.json").read_text())
    assert doc["format"] == "nmlab-fronts" and doc["version"] == 1
    from reports.returns import as_trained

    # The fronts are computed on the table with train-step returns as trained (reports.returns.as_trained).
    df = as_trained(pd.read_parquet(report_dir / doc["table"].replace("../", "")))
    names = {f["name"] for f in doc["fronts"]}
    assert names == {"return_vs_energy", "return_vs_latency", "energy_vs_latency", "size_vs_return"}
    assert check_fronts_against_table(df, doc["fronts"]) == len(doc["fronts"])
    # Energy vs latency keeps points without return; the return fronts leave them out.
    for f in doc["fronts"]:
        if f["name"] == "energy_vs_latency":
            assert f["excluded_missing"] == 0
        elif f["group"]["design"] is None:
            assert f["excluded_missing"] > 0


def test_report_files_and_missing_returns_are_said(report_dir):
    r = report_dir / "report"
    for name in ("index.html", "summary.md", "fronts.json", "front_return_vs_energy.png", "front_energy_vs_latency.png",
                 "speedup_same_bits.png", "energy_ratio_same_bits.png"):
        assert (r / name).is_file() and (r / name).stat().st_size > 0, name
    md = (r / "summary.md").read_text()
    df = pd.read_parquet(report_dir / "points.parquet")
    n_missing = int(df.return_mean.isna().sum())
    assert n_missing > 0 and f"{n_missing} of {len(df)} points have no evaluation return" in md
    # The breakdown adds up: one-shot points, then trained ones the quality table lacks.
    one_shot = int((df.return_mean.isna() & (df.mask_source == "one-shot")).sum())
    assert (f"({one_shot} pruned one-shot, never evaluated" in md) == (one_shot > 0)
    assert (f"{n_missing - one_shot} with no entry in the quality table" in md) == (n_missing > one_shot)
    assert "left out of the return fronts" in (r / "index.html").read_text()
    for png in r.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_return_note_counts_one_shot_and_unevaluated_points_apart(report_dir, tmp_path):
    import shutil

    out = tmp_path / "sweep"
    out.mkdir()
    for name in ("points.parquet", "sweep.json"):
        shutil.copy(report_dir / name, out / name)
    # The fixture's sweep joined no quality table (its returns are set by hand): say it joined one.
    manifest = json.loads((out / "sweep.json").read_text())
    (out / "sweep.json").write_text(json.dumps({**manifest, "quality_table": str(out / "quality.csv")}))
    df = pd.read_parquet(out / "points.parquet")
    trained = df.index[df.mask_source == "trained"][:3]
    df.loc[trained, "return_mean"] = float("nan")  # trained, but the quality table has no row
    df.to_parquet(out / "points.parquet")
    build_report(out, pngs=False)
    one_shot = int((df.mask_source == "one-shot").sum())
    md = (out / "report" / "summary.md").read_text()
    assert one_shot > 0
    # It names what the quality table lacks (it said only "3 with no entry"), as the answer tables name agents.
    keys = df.loc[trained, ["env", "agent", "method", "bits"]].drop_duplicates().sort_values(["env", "agent", "method", "bits"])
    named = ", ".join(f"{e} {a} ({m}) at {b} b" for e, a, m, b in keys.itertuples(index=False))
    assert len(keys) <= 3 and named
    assert (f"{one_shot + 3} of {len(df)} points have no evaluation return "
            f"({one_shot} pruned one-shot, never evaluated; 3 with no entry in the quality table: {named})") in md


def test_report_of_a_directory_without_a_sweep_is_one_line_exit_2(tmp_path):
    import sys

    out = subprocess.run([sys.executable, "-m", "hwmodel", "report", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"nmlab report: error: report: {tmp_path / 'points.parquet'} not found; "
                                  f"run nmlab sweep --out {tmp_path} first")


def test_the_fronts_legend_names_the_shape_of_every_pattern_of_the_sweep():
    """The legend under 'Pareto fronts' was a fixed sentence (circle dense, square 2:4, diamond 1:4, triangle
    1:8, ...): a sweep of 3:8, 2:8, 1:2 and 4:8 agents drew them in spare shapes it never named (the plotly
    legend keys designs only), and 1:2 and 3:8 shared one (sum of character codes mod 4)."""
    from reports import html as report_html
    from reports.style import pattern_symbol

    pats = ["dense", "1:2", "2:4", "4:8", "3:8", "2:8", "unstructured", "unstructured:0.9"]
    shapes = [pattern_symbol(p) for p in pats]
    assert len(set(shapes)) == len(shapes), dict(zip(pats, shapes))
    legend = report_html.marker_legend(pats)
    for p, s in zip(pats, shapes):
        assert f"{report_html.SYMBOL_WORDS[s]} {p}" in legend, (p, legend)
    assert "1:4" not in legend and "1:8" not in legend  # not in this sweep
    from reports.style import MPL_MARKERS
    assert all(s in MPL_MARKERS for s in shapes)  # the PNGs draw the same shapes


@needs_chromium
def test_plots_are_drawn_after_the_load_event_those_in_the_window_first(report_dir):
    """The page drew all its plots in one script before its load event: a 15-design sweep's 68 plots (12 why figures
    of 45 panels each) kept it blank to links and hover for 20-25 s. Its script now draws one plot per task, the ones
    near the window first: a reader who opens a link to the last section of fronts gets its plots before those at the
    top of the page, and the root element's data-plots says "drawn" once every plot is."""
    page = report_dir / "report" / "index.html"
    html = page.read_text()
    last = max(int(m) for m in re.findall(r'<h3 id="s(\d+)">', html))
    url = page.resolve().as_uri() + f"#s{last}"
    b = Browser()
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            b.send(f"{domain}.enable", session=session)
        b.send("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 900, "deviceScaleFactor": 1,
                                                      "mobile": False}, session=session)
        # The order the plots are drawn in: the first node plotly adds into each div.plot.
        b.send("Page.addScriptToEvaluateOnNewDocument", {"source": """
            window.ORDER = [];
            new MutationObserver(function (ms) { ms.forEach(function (m) { m.addedNodes.forEach(function (n) {
              var d = n.closest ? n.closest('div.plot') : null;
              if (d && d !== n && window.ORDER.indexOf(d.id) === -1) window.ORDER.push(d.id); }); }); })
              .observe(document, {childList: true, subtree: true});"""}, session=session)
        b.send("Page.navigate", {"url": url}, session=session)
        b.wait_event("Page.loadEventFired", timeout=90)
        b.wait_plots(session)
        got = b.send("Runtime.evaluate", {"returnByValue": True, "expression": """
            [window.ORDER, Array.from(document.getElementById('s%d').nextElementSibling.querySelectorAll('div.plot'))
               .map(function (d) { return d.id; }), document.documentElement.getAttribute('data-plots'),
             document.querySelectorAll('div.plot').length]""" % last}, session=session)["result"]["value"]
        assert problems(b.events, url) == []
    finally:
        b.close()
    order, wanted, state, n_plots = got
    assert state == "drawn" and sorted(order) == sorted(f"plot{i}" for i in range(n_plots)), (order, n_plots)
    assert wanted and wanted[0] != "plot0"
    # Drawn among the first, not in page order (last): the observer reports the window's plots a few frames after the
    # script starts, so the few plots drawn by then come first.
    assert n_plots >= len(wanted) + 10 and wanted[-1] == f"plot{n_plots - 1}"  # in page order: drawn last
    assert max(order.index(w) for w in wanted) < len(wanted) + 5, (order, wanted)


@needs_chromium
def test_a_front_plot_of_15_designs_shows_every_legend_entry(tmp_path):
    """With every bundled design and GPU (15 designs, 17 legend entries with the two front keys) a front plot's legend
    scrolled inside its 440 px plot: the last five designs and the key to the black front line were below its fold
    (plotly also put a 10 px gap after each design's group). The plot is as tall as its legend needs, and no entry is
    hidden."""
    from reports.fronts import FRONT_SPECS
    from reports.html import _plotly_js, _plots_script, pareto_figure

    designs = [f"design_{i:02d}" for i in range(15)]
    rows = pd.DataFrame([{"design": d, "pattern": p, "bits": 8, "mask_source": "trained", "method": "rnm-td3",
                          "agent": p, "point_id": f"{i:02d}{j}", "scenario": "inference", "latency_s": 1e-6 * (i + j + 1),
                          "energy_pj": 1e3 * (15 - i + j), "model_bytes": 1e4, "return_mean": 1000.0 + 100 * j}
                         for i, d in enumerate(designs) for j, p in enumerate(["dense", "2:4"])])
    spec = next(s for s in FRONT_SPECS if s.name == "energy_vs_latency")
    fronts = {None: ["000", "140"], **{d: [f"{i:02d}0"] for i, d in enumerate(designs)}}
    fig = pareto_figure(rows, spec, fronts, designs)
    page = tmp_path / "legend.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><script>{_plotly_js()}</script></head><body>"
                    f"<div id='p0' class='plot'></div>{_plots_script([('p0', fig)])}</body></html>")
    url = page.resolve().as_uri()
    b, session = load_page(url)
    try:
        got = b.send("Runtime.evaluate", {"returnByValue": True, "expression": """
            (function () { var lg = document.querySelector('#p0 g.legend'), bg = lg.querySelector('rect.bg')
                .getBoundingClientRect(), items = Array.from(lg.querySelectorAll('g.traces'));
              return [items.length, items.filter(function (it) { var r = it.getBoundingClientRect();
                return r.height === 0 || r.bottom > bg.bottom + 1; }).map(function (it) { return it.textContent; })]; })()"""},
            session=session)["result"]["value"]
    finally:
        b.close()
    n, hidden = got
    assert n == 17 and hidden == [], got


def test_figure_content_is_never_taken_for_a_shared_list():
    """The page's script draws a shared list wherever an object's one key is the placeholder's: a figure
    holding such an object is refused when the page is built rather than drawn with another list in its
    place, and page_figures reads a page whose names hold the script's own text ("var C=")."""
    from reports.html import SHARED_KEY, _plots_script, page_figures, share_repeats

    with pytest.raises(ValueError, match="shared-list placeholder"):
        share_repeats([{"id": "a", "data": [{"x": [1], "meta": {SHARED_KEY: 0}}], "layout": {}}])
    names = ["a;var C={};" * 8] * 2
    figs = [("p", {"data": [{"x": names, "name": "x;var C=1"}, {"x": names}], "layout": {}})]
    assert page_figures(_plots_script(figs)) == [{"id": "p", **figs[0][1]}]
