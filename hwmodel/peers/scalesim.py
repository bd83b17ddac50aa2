"""Run SCALE-Sim v3 on GEMM layers from Python and return typed results.

SCALE-Sim (``scalesim`` on PyPI, 3.0.0) is the cycle-level systolic-array simulator we check
our compute cycles against. It is a *test* dependency: it is imported lazily and a missing
install is a one-line :class:`~hwmodel.errors.NmlabError`.

How it is driven (docs/crosscheck.md):

* everything lives in a private temporary folder: the ``.cfg``, a GEMM topology CSV (one row
  per layer: ``name, M, N, K, n:m,`` with the trailing comma the parser needs) and a layout
  CSV (required by the loader, ignored while custom layouts are off);
* ``InterfaceBandwidth: CALC`` (the trustworthy bandwidth mode), ``save_disk_space=True``
  (no per-cycle traces) and its prints silenced;
* layer-wise N:M uses ``SparsitySupport: true, OptimizedMapping: false`` with the ratio in the
  topology's fifth column; SCALE-Sim then keeps the first n of every m reduction rows (a
  fixed synthetic mask) and condenses the reduction to ``n*(K//m) + min(n, K%m)`` rows.
  Dense layers and N:M layers go to separate runs, because sparsity support is a per-run
  switch that changes the ifmap read counts.

Counts come from its reports: COMPUTE_REPORT (cycles, stalls, utilization),
DETAILED_ACCESS_REPORT (SRAM/DRAM accesses in words) and SPARSE_REPORT (filter and metadata
storage, in 32-bit words).
"""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from hwmodel.errors import NmlabError
from hwmodel.limits import check_limit
from hwmodel.sparsity import DENSE, Pattern, parse_pattern

# SCALE-Sim v3's own default configuration (configs/scale.cfg in scalesim-project/scale-sim-v3):
# 32x32 array, 64 kB ifmap/filter/ofmap SRAM, 512-entry request buffers. Its default dataflow
# there is "os"; the crosscheck uses "ws".
DEFAULT_SRAM_KB = (64, 64, 64)
DEFAULT_REQUEST_BUFFER = 512
_FILTER_OFFSET = 10_000_000   # nonzero: SCALE-Sim treats address 0 in the filter as "no weight"
_OFMAP_OFFSET = 20_000_000


@dataclass(frozen=True)
class Gemm:
    """One GEMM layer: ``m`` rows streamed (batch), ``k`` reduction, ``n`` outputs; N:M on K."""

    m: int
    k: int
    n: int
    pattern: Pattern = DENSE

    @property
    def kept_k(self) -> int:
        """Reduction rows left after layer-wise N:M compression (padding never kept)."""
        if not self.pattern.is_nm:
            return self.k
        n, m = self.pattern.n, self.pattern.m
        return n * (self.k // m) + min(n, self.k % m)

    def label(self) -> str:
        base = f"{self.m},{self.k},{self.n}"
        return base if not self.pattern.is_nm else f"{base},{self.pattern}"


@dataclass(frozen=True)
class ScaleSimLayer:
    """SCALE-Sim's figures for one layer. Access counts are in words (1 byte each in SCALE-Sim)."""

    gemm: Gemm
    total_cycles: int               # COMPUTE_REPORT "Total Cycles": compute + stalls
    stall_cycles: int
    total_cycles_with_prefetch: int  # "Total Cycles (incl. prefetch)": from the first DRAM read
    overall_util_pct: float
    mapping_efficiency_pct: float
    compute_util_pct: float
    sram_ifmap_reads: float
    sram_filter_reads: float
    sram_ofmap_writes: float
    dram_ifmap_reads: float
    dram_filter_reads: float
    dram_ofmap_writes: float
    filter_words_dense: Optional[float] = None      # SPARSE_REPORT, sparse runs only
    filter_words_compressed: Optional[float] = None  # values + metadata
    metadata_bits: Optional[float] = None

    @property
    def compute_cycles(self) -> int:
        """Stall-free cycles as SCALE-Sim reports them (one less than the fold schedule's count)."""
        return self.total_cycles - self.stall_cycles

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gemm"] = {"m": self.gemm.m, "k": self.gemm.k, "n": self.gemm.n, "pattern": str(self.gemm.pattern)}
        d["compute_cycles"] = self.compute_cycles
        return d


def parse_gemm(text: str, *, field: str = "--gemm") -> Gemm:
    """Parse ``M,K,N`` or ``M,K,N,n:m`` (``dense`` also accepted as the 4th item)."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (3, 4):
        raise NmlabError(f"{field} {text!r}: expected M,K,N or M,K,N,n:m (e.g. 256,256,256,2:4)")
    dims = _positive_ints(parts[:3], "MKN", field, text)
    # The limits a workload layer and --batch have: 10^11 rows ran SCALE-Sim into a 1.46 TiB
    # MemoryError after the "will simulate" warning.
    check_limit("batch", dims[0], f"{field} {text!r}: M")
    check_limit("layer_weights", dims[1] * dims[2], f"{field} {text!r}: K x N")
    pattern = DENSE
    if len(parts) == 4:
        pattern = parse_pattern(parts[3], field=f"{field} {text!r}: pattern", allow_unstructured=False)
        if pattern.is_nm and pattern.n == pattern.m:
            pattern = DENSE
    return Gemm(dims[0], dims[1], dims[2], pattern)


def parse_array(text: str, *, field: str = "--array") -> tuple[int, int]:
    """Parse ``R,C`` (systolic array rows, columns)."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 2:
        raise NmlabError(f"{field} {text!r}: expected R,C (rows,columns), e.g. 32,32")
    rows, cols = _positive_ints(parts, ("rows", "columns"), field, text)
    # The array becomes a design's (crosscheck.equivalent_design): the same PE limit as a design file.
    check_limit("pes", rows * cols, f"{field} {text!r}: rows x columns")
    return rows, cols


def _positive_ints(values, names, field: str, text: str) -> list[int]:
    """Each of ``values`` as an int >= 1; a one-line error naming ``field`` and the part otherwise."""
    out = []
    for name, value in zip(names, values):
        try:
            v = int(value)
        except ValueError:
            raise NmlabError(f"{field} {text!r}: {name} must be a positive integer, got {value!r}") from None
        if v < 1:
            raise NmlabError(f"{field} {text!r}: {name} must be >= 1, got {v}")
        out.append(v)
    return out


def _import_scalesim():
    try:
        from scalesim.scale_sim import scalesim  # noqa: PLC0415 - optional, heavy
    except ImportError:
        raise NmlabError(
            "scalesim is not installed: pip install 'scalesim==3.0.0' (or pip install -e '.[test]')"
        ) from None
    return scalesim


def _config_text(rows: int, cols: int, dataflow: str, sram_kb: Sequence[int], sparse: bool,
                 request_buffer: int) -> str:
    ifmap_kb, filter_kb, ofmap_kb = (int(x) for x in sram_kb)
    return f"""[general]
run_name = nmlab

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: {ifmap_kb}
FilterSramSzkB: {filter_kb}
OfmapSramSzkB: {ofmap_kb}
IfmapOffset: 0
FilterOffset: {_FILTER_OFFSET}
OfmapOffset: {_OFMAP_OFFSET}
Bandwidth: 10
Dataflow: {dataflow}
ReadRequestBuffer: {request_buffer}
WriteRequestBuffer: {request_buffer}

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False

[sparsity]
SparsitySupport: {"true" if sparse else "false"}
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 4
RandomNumberGeneratorSeed: 40
"""


def _read_report(path: Path) -> list[list[str]]:
    """Rows of a SCALE-Sim report CSV without its header, trailing empty fields dropped."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    out = []
    for row in rows[1:]:
        cells = [c.strip() for c in row]
        while cells and cells[-1] == "":
            cells.pop()
        if cells:
            out.append(cells)
    return out


def _run_group(gemms: Sequence[Gemm], rows: int, cols: int, dataflow: str, sram_kb: Sequence[int],
               sparse: bool, request_buffer: int) -> list[ScaleSimLayer]:
    scalesim = _import_scalesim()
    with tempfile.TemporaryDirectory(prefix="nmlab-scalesim-") as tmp:
        tmp_path = Path(tmp)
        cfg = tmp_path / "nmlab.cfg"
        topo = tmp_path / "layers.csv"
        layout = tmp_path / "layout.csv"
        cfg.write_text(_config_text(rows, cols, dataflow, sram_kb, sparse, request_buffer))
        lines = ["Layer, M, N, K, Sparsity,"]
        for i, g in enumerate(gemms):
            ratio = f"{g.pattern.n}:{g.pattern.m}" if g.pattern.is_nm else "1:1"
            lines.append(f"layer{i}, {g.m}, {g.n}, {g.k}, {ratio},")
        topo.write_text("\n".join(lines) + "\n")
        layout.write_text("Layer name, unused,\n")
        sink = io.StringIO()
        try:
            # SCALE-Sim prints banners and warnings even with verbose=False.
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # its numpy deprecation warnings are not ours to fix
                sim = scalesim(save_disk_space=True, verbose=False, config=str(cfg), topology=str(topo),
                               layout=str(layout), input_type_gemm=True)
                sim.run_scale(top_path=str(tmp_path / "out"))
        except (Exception, SystemExit) as exc:  # SCALE-Sim calls exit() on some input errors
            detail = " ".join(sink.getvalue().split())[-200:]
            raise NmlabError(f"scalesim failed: {type(exc).__name__}: {exc} {detail}".strip()) from None
        report_dir = tmp_path / "out" / "nmlab"
        compute = _read_report(report_dir / "COMPUTE_REPORT.csv")
        access = _read_report(report_dir / "DETAILED_ACCESS_REPORT.csv")
        sparse_rows = _read_report(report_dir / "SPARSE_REPORT.csv") if sparse else [None] * len(gemms)
    if not (len(compute) == len(access) == len(sparse_rows) == len(gemms)):
        raise NmlabError(f"scalesim: reports have {len(compute)} rows for {len(gemms)} layers")
    layers = []
    for g, c, a, s in zip(gemms, compute, access, sparse_rows):
        # COMPUTE_REPORT: id, total incl. prefetch, total, stalls, overall util, mapping eff, compute util
        # DETAILED_ACCESS_REPORT: id, then (start, stop, count) for 6 streams
        layers.append(ScaleSimLayer(
            gemm=g,
            total_cycles=int(float(c[2])),
            stall_cycles=int(float(c[3])),
            total_cycles_with_prefetch=int(float(c[1])),
            overall_util_pct=float(c[4]),
            mapping_efficiency_pct=float(c[5]),
            compute_util_pct=float(c[6]),
            sram_ifmap_reads=float(a[3]),
            sram_filter_reads=float(a[6]),
            sram_ofmap_writes=float(a[9]),
            dram_ifmap_reads=float(a[12]),
            dram_filter_reads=float(a[15]),
            dram_ofmap_writes=float(a[18]),
            # SPARSE_REPORT: id, representation, original, new (values+metadata), metadata (32-bit words)
            filter_words_dense=float(s[2]) if s else None,
            filter_words_compressed=float(s[3]) if s else None,
            metadata_bits=float(s[4]) * 32 if s else None,
        ))
    return layers


def run_scalesim(gemms: Iterable[Gemm | str], rows: int, cols: int, *, dataflow: str = "ws",
                 sram_kb: Sequence[int] = DEFAULT_SRAM_KB,
                 request_buffer: int = DEFAULT_REQUEST_BUFFER) -> list[ScaleSimLayer]:
    """Simulate GEMM layers on an ``rows`` x ``cols`` systolic array with SCALE-Sim v3.

    Parameters:
        gemms: layers as :class:`Gemm` or ``"M,K,N[,n:m]"`` strings; all dense ones share one
            SCALE-Sim run and all N:M ones another (several layers per run is much cheaper).
        rows, cols: systolic array height (reduction side in WS) and width (outputs side).
        dataflow: "ws", "os" or "is"; N:M layers need "ws" (SCALE-Sim's layer-wise sparsity).
        sram_kb: ifmap, filter and ofmap SRAM sizes in kB.
        request_buffer: SCALE-Sim read/write request buffer entries.

    Returns one :class:`ScaleSimLayer` per input layer, in input order.
    """
    items = [parse_gemm(g) if isinstance(g, str) else g for g in gemms]
    if not items:
        raise NmlabError("scalesim: no layers given")
    if rows < 1 or cols < 1:
        raise NmlabError(f"scalesim: array {rows}x{cols}: rows and columns must be >= 1")
    if dataflow not in ("ws", "os", "is"):
        raise NmlabError(f"scalesim: dataflow {dataflow!r}: expected ws, os or is")
    if len(sram_kb) != 3 or any(int(x) < 1 for x in sram_kb):
        raise NmlabError(f"scalesim: sram_kb {tuple(sram_kb)}: expected three sizes >= 1 kB")
    sparse_idx = [i for i, g in enumerate(items) if g.pattern.is_nm]
    dense_idx = [i for i, g in enumerate(items) if not g.pattern.is_nm]
    if sparse_idx and dataflow != "ws":
        raise NmlabError(f"scalesim: N:M layers need dataflow 'ws' (SCALE-Sim's layer-wise sparsity), got {dataflow!r}")
    out: list[Optional[ScaleSimLayer]] = [None] * len(items)
    for idx, sparse in ((dense_idx, False), (sparse_idx, True)):
        if idx:
            results = _run_group([items[i] for i in idx], rows, cols, dataflow, sram_kb, sparse, request_buffer)
            for i, r in zip(idx, results):
                out[i] = r
    return out  # type: ignore[return-value]


def ws_compute_cycles_reference(gemm: Gemm, rows: int, cols: int) -> int:
    """SCALE-Sim's stall-free WS fold schedule, as the count the schedule implies.

    ``ceil(K'/R) * ceil(N/C) * (2R + C + M - 2)``: per fold R cycles to load weights, then M
    rows streamed with R + C - 2 cycles of skew fill and drain. SCALE-Sim reports one less.
    Only used to describe SCALE-Sim in tests and docs; nmlab's own number comes from hwmodel.
    """
    folds = -(-gemm.kept_k // rows) * -(-gemm.n // cols)
    return folds * (2 * rows + cols + gemm.m - 2)
