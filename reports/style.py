"""Colours, marker shapes and labels shared by the HTML page and the PNG figures.

One colour per design everywhere: a design's colour depends only on its position in the
sorted list of the sweep's designs, so the page and the PNGs of one report agree. GPU design
points take their own palette (colours far from every accelerator's), in sorted order among the
GPUs: adding or removing a GPU never changes an accelerator's colour, nor the reverse.
"""

from __future__ import annotations

import numpy as np

from reports.data import ENERGY_COMPONENTS, is_gpu

def plotly_text(text) -> str:
    """``text`` as plotly draws it literally in a label, legend, tick, title or hover: plotly reads its
    text as its own HTML subset (``<b>x</b>`` drew a bold x, ``<a href=...>`` a link, ``<br>`` a line
    break) and decodes only ``&lt; &gt; &amp;`` and numeric entities (``html.escape``'s ``&quot;`` was
    drawn as those six characters). For names and free text from users' files."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plotly_template_text(text) -> str:
    """``text`` placed in a plotly ``hovertemplate`` (drawn literally): :func:`plotly_text` with ``%`` as
    ``&#37;``, so a ``%{y}`` in a name is not filled in."""
    return plotly_text(text).replace("%", "&#37;")


#: Designs in sorted order take these colours in turn (colour-blind-safe "tab10" order, grey last).
DESIGN_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                  "#bcbd22", "#7f7f7f")
#: GPU design points in sorted order take these: picked far in CIELAB (CIE76; the first four 45 or more, the
#: rest 31 or more) from every colour above and from black (the overall front), so a GPU never looks like an
#: accelerator, and 37 or more from each other (the sixth, maroon, replaced a magenta 14 from the second).
GPU_PALETTE = ("#0000e0", "#e000e0", "#204000", "#000080", "#b8860b", "#700000", "#f00070", "#700050", "#0060f0",
               "#60a070")
COMPONENT_COLORS = dict(zip(ENERGY_COMPONENTS, ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860",
                                                "#8c8c8c"]))
#: Cycle breakdown: compute vs the two kinds of stall the model reports. Each takes the colour of the energy
#: component of the same cause (compute = mac, DRAM stall = dram, metadata stall = metadata): the why figures
#: share one legend, so one colour must mean one thing in both panels.
CYCLE_COLORS = {"compute": COMPONENT_COLORS["mac"], "DRAM stall": COMPONENT_COLORS["dram"],
                "metadata stall": COMPONENT_COLORS["metadata"]}
#: Plotly marker symbol per pattern (the agent's sparsity); matplotlib's equivalent below.
PATTERN_SYMBOLS = {"dense": "circle", "2:4": "square", "1:4": "diamond", "1:8": "triangle-up",
                   "unstructured": "star", "unstructured:0.9": "x"}
MPL_MARKERS = {"circle": "o", "square": "s", "diamond": "D", "triangle-up": "^", "star": "*", "x": "X",
               "cross": "P", "hexagon": "h", "pentagon": "p", "triangle-down": "v", "triangle-left": "<",
               "triangle-right": ">", "diamond-tall": "d", "octagon": "8"}
_SPARE_SYMBOLS = ("cross", "hexagon", "pentagon", "triangle-down", "triangle-left", "triangle-right",
                  "diamond-tall", "octagon")
#: Marker size by weight bits: wider numbers, bigger markers.
BIT_SIZES = {32: 11, 16: 9, 8: 7, 4: 5}


def design_colors(designs) -> dict[str, str]:
    """Design -> colour, by sorted position among the accelerators or among the GPUs
    (``reports.data.is_gpu``): stable within a report, identical in PNG and HTML."""
    names = sorted(set(designs))
    acc = [d for d in names if not is_gpu(d)]
    gpus = [d for d in names if is_gpu(d)]
    out = {d: _nth_colour(DESIGN_PALETTE, i) for i, d in enumerate(acc)}
    out.update({d: _nth_colour(GPU_PALETTE, i) for i, d in enumerate(gpus)})
    return out


def _nth_colour(palette: tuple[str, ...], i: int) -> str:
    """The ``i``-th colour of ``palette``; past its end, its colours again, each round mixed with black or white
    (darker, then lighter, then darker still, ...), so more designs than colours still get one colour each."""
    n = len(palette)
    if i < n:
        return palette[i]
    rnd = i // n  # 1, 2, ...
    target = 0 if rnd % 2 else 255
    share = 1 - 0.6 ** ((rnd + 1) // 2)  # 0.4 for rounds 1 and 2, 0.64 for 3 and 4, ...
    rgb = (int(palette[i % n][k:k + 2], 16) for k in (1, 3, 5))
    return "#" + "".join(f"{round(c + (target - c) * share):02x}" for c in rgb)


#: Other N:M patterns a researcher reaches for first, one spare shape each (in _SPARE_SYMBOLS' order).
_SPARE_PATTERNS = ("1:2", "3:4", "2:8", "3:8", "4:8", "1:16", "2:16", "4:16")


def pattern_symbol(pattern: str) -> str:
    """Plotly symbol of a pattern; other patterns take a spare shape, stable by name: the common N:M
    patterns of _SPARE_PATTERNS one each (by the sum of the name's character codes 1:2 and 3:8 shared
    one), any other by that sum, so shapes repeat among rarer patterns."""
    if pattern in PATTERN_SYMBOLS:
        return PATTERN_SYMBOLS[pattern]
    if pattern in _SPARE_PATTERNS:
        return _SPARE_SYMBOLS[_SPARE_PATTERNS.index(pattern)]
    return _SPARE_SYMBOLS[sum(map(ord, str(pattern))) % len(_SPARE_SYMBOLS)]


def bit_size(bits: int) -> int:
    return BIT_SIZES.get(int(bits), 7)


#: Front labels: the share of a plot's x span one character takes (about 6 px of a 420 px plot) and the
#: share of its y span one line takes.
LABEL_CHAR_WIDTH = 0.015
LABEL_HEIGHT = 0.05


def _to_axis(v, log: bool) -> np.ndarray:
    v = np.asarray(v, float)
    return np.log10(v) if log else v


def _span(v: np.ndarray) -> tuple[float, float]:
    """(low end, width) of the finite values on an axis; width 1 where they do not spread."""
    v = v[np.isfinite(v)]
    if v.size < 2 or not np.ptp(v) > 0:
        return (float(v.min()) if v.size else 0.0), 1.0
    return float(v.min()), float(np.ptp(v))


def place_front_labels(x, y, names, xlog: bool, ylog: bool, all_x=None, all_y=None) -> list[tuple[str, str]]:
    """The overall front's point labels as (text, side), in the points' order; the page and the PNG both draw
    these. ``names``: "agent @bits"; ``all_x``/``all_y``: every point drawn (the plot's extent; the front's
    own when None). ``side``: where the label reads from its point, "right" in the left third of the plot's
    x range, "left" in the right third, "center" between (a label at the plot's edge ran off it).

    Points at the same spot share one label ("1:4 @4, 1:8 @4"); a point whose label box (its characters on
    its side of the point, one line above it, as shares of the plot's spans) would cross any label already
    written gets none: its hover and the front's table still name it. The boxes are measured on the plot's
    spans, not the front's: a front spanning a tenth of its plot printed "1:8 @4" on top of "1:4 @4"."""
    x, y = _to_axis(x, xlog), _to_axis(y, ylog)
    x0, span_x = _span(_to_axis(all_x, xlog) if all_x is not None else x)
    _, span_y = _span(_to_axis(all_y, ylog) if all_y is not None else y)
    # Without the plot's extent, a front at one x has no thirds: its labels are centred.
    rel = (x - x0) / span_x if all_x is not None or (x.size and np.ptp(x) > 0) else np.full(len(x), 0.5)
    sides = np.where(rel < 1 / 3, "right", np.where(rel > 2 / 3, "left", "center")).tolist()
    groups: list[list[str]] = []  # names of the points at each labelled spot
    at = [-1] * len(x)
    written: list[int] = []  # points carrying a label

    def label_of(i: int) -> str:
        g = groups[at[i]]
        return ", ".join(g) if len(g) <= 2 else f"{g[0]} +{len(g) - 1} here"

    def extent(i: int, n_chars: int) -> tuple[float, float]:
        w = LABEL_CHAR_WIDTH * n_chars
        left = {"right": 0.0, "center": -w / 2, "left": -w}[sides[i]]
        return x[i] / span_x + left, x[i] / span_x + left + w

    def crosses(i: int, j: int) -> bool:
        (a0, a1), (b0, b1) = extent(i, len(str(names[i]))), extent(j, len(label_of(j)))
        return a0 < b1 and b0 < a1 and abs(y[i] - y[j]) / span_y < LABEL_HEIGHT

    for i in range(len(x)):
        same = next((j for j in written if x[i] == x[j] and y[i] == y[j]), None)
        if same is not None:
            if str(names[i]) not in groups[at[same]]:
                groups[at[same]].append(str(names[i]))
        elif not any(crosses(i, j) for j in written):
            groups.append([str(names[i])])
            at[i] = len(groups) - 1
            written.append(i)
    # Two names at one spot are both written; more would run off the plot: the first and a count.
    return [("" if at[i] < 0 else label_of(i), sides[i]) for i in range(len(x))]


def front_labels(x, y, names, xlog: bool, ylog: bool, all_x=None, all_y=None) -> list[str]:
    """The texts of :func:`place_front_labels`."""
    return [t for t, _ in place_front_labels(x, y, names, xlog, ylog, all_x, all_y)]
