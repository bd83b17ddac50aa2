"""Colours, marker shapes and labels shared by the HTML page and the PNG figures.

One colour per design everywhere: a design's colour depends only on its position in the
sorted list of the sweep's designs, so the page and the PNGs of one report agree. GPU design
points take their own palette (colours far from every accelerator's), in sorted order among the
GPUs: adding or removing a GPU never changes an accelerator's colour, nor the reverse.
"""

from __future__ import annotations

import numpy as np

from reports.data import ENERGY_COMPONENTS, is_gpu

#: Designs in sorted order take these colours in turn (colour-blind-safe "tab10" order, grey last).
DESIGN_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                  "#bcbd22", "#7f7f7f")
#: GPU design points in sorted order take these: picked far in CIELAB (the first four 45 or more) from every
#: colour above and from black (the overall front), so a GPU never looks like an accelerator.
GPU_PALETTE = ("#0000e0", "#e000e0", "#204000", "#000080", "#b8860b", "#c000c0")
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
               "cross": "P", "hexagon": "h", "pentagon": "p", "triangle-down": "v"}
_SPARE_SYMBOLS = ("cross", "hexagon", "pentagon", "triangle-down")
#: Marker size by weight bits: wider numbers, bigger markers.
BIT_SIZES = {32: 11, 16: 9, 8: 7, 4: 5}


def design_colors(designs) -> dict[str, str]:
    """Design -> colour, by sorted position among the accelerators or among the GPUs
    (``reports.data.is_gpu``): stable within a report, identical in PNG and HTML."""
    names = sorted(set(designs))
    acc = [d for d in names if not is_gpu(d)]
    gpus = [d for d in names if is_gpu(d)]
    out = {d: DESIGN_PALETTE[i % len(DESIGN_PALETTE)] for i, d in enumerate(acc)}
    out.update({d: GPU_PALETTE[i % len(GPU_PALETTE)] for i, d in enumerate(gpus)})
    return out


def pattern_symbol(pattern: str) -> str:
    """Plotly symbol of a pattern; unknown patterns share a few spare shapes (stable by name)."""
    if pattern in PATTERN_SYMBOLS:
        return PATTERN_SYMBOLS[pattern]
    return _SPARE_SYMBOLS[sum(map(ord, pattern)) % len(_SPARE_SYMBOLS)]


def bit_size(bits: int) -> int:
    return BIT_SIZES.get(int(bits), 7)


#: Front labels: the share of a plot's x span one character takes (about 6 px of a 420 px plot) and the
#: share of its y span one line takes.
LABEL_CHAR_WIDTH = 0.015
LABEL_HEIGHT = 0.05


def labels_overlap(dx: float, dy: float, len_a: int, len_b: int) -> bool:
    """Whether two centred labels of ``len_a`` and ``len_b`` characters, their points ``dx`` and ``dy``
    apart as shares of the x and y spans, would overlap."""
    return abs(dx) < LABEL_CHAR_WIDTH * (len_a + len_b) / 2 and abs(dy) < LABEL_HEIGHT


def front_labels(x, y, names, xlog: bool, ylog: bool) -> list[str]:
    """Text of the overall front's point labels (``names``: "agent @bits"), in the points' order. Points at
    the same spot share one label ("1:4 @4, 1:8 @4"); a point whose label would overlap the last label
    written (``labels_overlap``, on the axes' scales) gets none: its hover and the front's table still name
    it. Without this the labels of a dense front corner print on top of each other."""
    x = np.log10(np.asarray(x, float)) if xlog else np.asarray(x, float)
    y = np.log10(np.asarray(y, float)) if ylog else np.asarray(y, float)
    span_x = float(np.ptp(x)) if len(x) > 1 and np.ptp(x) > 0 else 1.0
    span_y = float(np.ptp(y)) if len(y) > 1 and np.ptp(y) > 0 else 1.0
    groups: list[list[str]] = []  # names of the points at each labelled spot
    at = [-1] * len(x)
    last = None  # index of the last label written

    def label_of(i: int) -> str:
        g = groups[at[i]]
        return ", ".join(g) if len(g) <= 2 else f"{g[0]} +{len(g) - 1} here"

    for i in range(len(x)):
        if last is not None and x[i] == x[last] and y[i] == y[last]:
            if str(names[i]) not in groups[at[last]]:
                groups[at[last]].append(str(names[i]))
        elif last is None or not labels_overlap((x[i] - x[last]) / span_x, (y[i] - y[last]) / span_y,
                                                len(str(names[i])), len(label_of(last))):
            groups.append([str(names[i])])
            at[i], last = len(groups) - 1, i
    # Two names at one spot are both written; more would run off the plot: the first and a count.
    return ["" if at[i] < 0 else label_of(i) for i in range(len(x))]
