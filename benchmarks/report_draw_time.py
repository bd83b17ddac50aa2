"""How long a report page takes to show its tables and to draw all its plots, in headless Chromium.

    .venv/bin/python benchmarks/report_draw_time.py              # the default report
    .venv/bin/python benchmarks/report_draw_time.py --big -n 3   # every bundled design and GPU, 6 scenarios

Sweeps the grid and writes its report in a temporary folder (removed at the end), opens the page at
1400 px and times, from navigation: the load event (the tables are readable) and the moment the root
element's ``data-plots`` reads ``drawn`` (every plot drawn; ``Browser.wait_plots``, the browser
tests' client). Prints each run, the medians, the page's size and the machine. Needs chromium.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from machine import describe  # noqa: E402  (benchmarks/machine.py)
from tests.test_report_html import Browser  # noqa: E402  (the browser tests' DevTools client)

#: The sweep docs/reports.md times beside the default one: every bundled design and GPU.
BIG = """version: 1
designs: bundled
gpus: bundled
scenarios:
  - {scenario: inference, batch: [1, 32, 128]}
  - {scenario: train_step, batch: [64, 256, 1024]}
"""


def draw_times(page: Path) -> tuple[float, float]:
    """(seconds to the load event, seconds until every plot is drawn) of one opening of ``page``."""
    b = Browser()
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        b.send("Page.enable", session=session)
        b.send("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 1000, "deviceScaleFactor": 1,
                                                      "mobile": False}, session=session)
        start = time.monotonic()
        b.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        b.wait_event("Page.loadEventFired", timeout=120)
        loaded = time.monotonic() - start
        b.wait_plots(session, timeout=300)
        return loaded, time.monotonic() - start
    finally:
        b.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", action="store_true", help="every bundled design and GPU (docs/reports.md's big sweep)")
    ap.add_argument("-n", type=int, default=3, help="openings of the page (default 3)")
    args = ap.parse_args()
    nmlab = [sys.executable, "-m", "hwmodel"]
    with tempfile.TemporaryDirectory(prefix="nmlab-draw-") as tmp:
        out = Path(tmp) / "sweep"
        cmd = [*nmlab, "sweep", "--out", str(out), "--quiet"]
        if args.big:
            (Path(tmp) / "big.yaml").write_text(BIG)
            cmd.insert(len(nmlab) + 1, str(Path(tmp) / "big.yaml"))
        subprocess.run(cmd, check=True, cwd=REPO)
        subprocess.run([*nmlab, "report", str(out)], check=True, cwd=REPO, capture_output=True)
        page = out / "report" / "index.html"
        runs = [draw_times(page) for _ in range(args.n)]
        n_plots = page.read_text().count('class="plot"')
        print(f"{'big' if args.big else 'default'} report: {page.stat().st_size:,} bytes, {n_plots} plots; {describe()}")
        for i, (load_s, drawn_s) in enumerate(runs):
            print(f"  run {i + 1}: load event {load_s:.1f} s, all plots drawn {drawn_s:.1f} s")
        print(f"median: load event {statistics.median(r[0] for r in runs):.1f} s, "
              f"all plots drawn {statistics.median(r[1] for r in runs):.1f} s")


if __name__ == "__main__":
    main()
