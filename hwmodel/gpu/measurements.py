"""Measured dense vs 2:4 GEMM times: the published format and our bench CSV, read into arrays.

Two formats are read (the header tells which):

* **published** (``hwmodel/data/gpu_measurements/*.csv``, provenance in the README there):
  ``source, gpu, dtype, m, k, n, dense_us, sparse_us, speedup, notes``; library kernel times
  (cuBLASLt, cuSPARSELt) in a loop of back-to-back calls on the same operands, so operands
  that fit the L2 stay there (``l2="warm"``); int8 GEMMs write int8. The source's dense fp4
  call ran a GEMM of half the row's k (:data:`PACKED_K_SOURCES`): ``dense_k`` says so.
* **bench** (``nmlab gpu bench``, schema ``nmlab-gpu-bench``, docs/gpu.md): the ``ok`` GEMM
  and layer rows whose numerical check passed; dense (``impl=dense``) and 2:4
  (``impl=sparse_cslt``) of one case (kind, name, env, width and GEMM) are paired; their
  CUDA-graph medians are kernel times; the bench cycles through enough input sets to miss in
  L2 (``l2="cold"``); int8 GEMMs write int32.

The whole file is checked before anything is returned: a binary, empty or oversized file
(``csv_bytes``, ``csv_rows``), a missing column, a size or time that is not a finite positive
number, a GEMM (published) or case (bench) given twice raises one
:class:`~hwmodel.errors.NmlabError` naming the file, line and column.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from hwmodel.errors import NmlabError
from hwmodel.gpu.kernels import OPERAND_BYTES, OUTPUT_BYTES

if TYPE_CHECKING:
    from hwmodel.gpu.spec import GpuSpec

PUBLISHED_COLUMNS = ("gpu", "dtype", "m", "k", "n", "dense_us", "sparse_us")
#: Short dtype names users type, and the names the files use.
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp8": "float8_e4m3fn",
                 "e4m3": "float8_e4m3fn", "fp4": "float4_e2m1", "tf32": "tfloat32"}
BENCH_LOOP_CALLS = 50
#: Published sources whose dense (cuBLASLt) call of a packed dtype ran k / values-per-byte, not k.
#: SlideSparse's cuBLASLt/alg_search.py (bcacdwk/vllmbench, run_search) passes
#: ``K_effective = K // 2 if is_fp4 else K`` (the packed bytes of a torch fp4 tensor) to
#: cublaslt_gemm.cu, which makes CUDA_R_4F_E2M1 layouts of K rows (elements, not bytes), and
#: reports the logical K; its cuSPARSELt 2:4 call passes the logical K. Hence B200 dense fp4 at
#: 16384^3 (683 us) is 12.9 PFLOP/s over 2mnk, above the B200's dense fp4 peak even at boost (9.0
#: PFLOP/s x 1980 / 1856 MHz = 9.6, hwmodel/data/gpus/b200.yaml; docs/gpu_record.md, "What the
#: data showed").
PACKED_K_SOURCES = ("bcacdwk/vllmbench@",)


def canonical_dtype(name: str) -> str:
    """Full dtype name for ``name`` (an alias such as "bf16" or a full name, any case)."""
    name = str(name).strip()
    # Case-blind, as the aliases are ("BF16", "INT8", "BFloat16"); str() of a torch dtype, "torch.bfloat16",
    # names the dtype as plainly (a timing file of one's own may hold it).
    low = name.lower()
    low = low[len("torch."):] if low.startswith("torch.") else low
    full = DTYPE_ALIASES.get(low, low)
    if full not in OPERAND_BYTES:
        raise NmlabError(f"dtype {name!r}: not one of {', '.join(sorted(set(OPERAND_BYTES) | set(DTYPE_ALIASES)))}")
    return full


@dataclass
class Measurements:
    """Per-GEMM measured times of one or more GPUs (numpy arrays of equal length).

    Attributes:
        path: the file read.
        fmt: "published" or "bench".
        gpu: device name per row, as the file gives it.
        dtype: operand dtype name per row.
        m, k, n: GEMM sizes (Y[m,n] = X[m,k] W[n,k]^T).
        dense_k: the k the dense call ran (k, but k/2 for a published dense fp4 row of
            :data:`PACKED_K_SOURCES`); the 2:4 call ran ``k``.
        dense_us, sparse_us: measured microseconds per call, dense and 2:4.
        out_bytes: output bytes per element per row.
        l2: "warm" (operands reused from L2 between calls) or "cold" (read from DRAM).
        loop_calls: back-to-back calls per timing (heats the card).
        device: bench files only: device name -> the figures the bench recorded of the card it ran on
            (``compute_capability``, ``sm_count``, where given) and ``line``, the first row giving them;
            :func:`check_device` holds them against the GPU spec the rows are scored with.
    """

    path: str
    fmt: str
    gpu: np.ndarray
    dtype: np.ndarray
    m: np.ndarray
    k: np.ndarray
    n: np.ndarray
    dense_us: np.ndarray
    sparse_us: np.ndarray
    out_bytes: np.ndarray
    l2: str
    loop_calls: int
    dense_k: Optional[np.ndarray] = None
    device: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dense_k is None:
            self.dense_k = self.k.copy()

    def __len__(self) -> int:
        return int(self.m.size)

    def subset(self, idx: np.ndarray) -> "Measurements":
        """The rows ``idx`` (indices or a boolean mask)."""
        pick = lambda a: a[idx]  # noqa: E731
        return Measurements(self.path, self.fmt, pick(self.gpu), pick(self.dtype), pick(self.m), pick(self.k),
                            pick(self.n), pick(self.dense_us), pick(self.sparse_us), pick(self.out_bytes),
                            self.l2, self.loop_calls, pick(self.dense_k), self.device)

    @property
    def speedup(self) -> np.ndarray:
        """Measured dense time / 2:4 time per row."""
        return self.dense_us / self.sparse_us

    def shape_keys(self) -> list[tuple[int, int, int]]:
        """(m, k, n) per row: the identity of a shape across dtypes."""
        return list(zip(self.m.tolist(), self.k.tolist(), self.n.tolist()))


def _read_text(path: Path) -> str:
    from hwmodel.limits import is_file, limit, not_a_file, read_bytes

    if not is_file(path):
        raise not_a_file("gpu timings csv", path)
    # Bounded like every CSV input (docs/limits.md): a huge file is refused before it is read.
    raw = read_bytes(path, limit("csv_bytes"), "gpu timings csv", "csv_bytes")
    if b"\x00" in raw:
        raise NmlabError(f"{path}: not a text CSV (binary data)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NmlabError(f"{path}: not a text CSV (not UTF-8)") from None
    if not text.strip():
        raise NmlabError(f"{path}: empty file")
    return text


#: Largest GEMM dimension a timing row may name (fixed, docs/limits.md): the published squares
#: stop at 65,536, and a dimension past this is a broken file, not a GEMM anyone timed.
MAX_GEMM_DIM = 2**24
#: Longest GEMM time a timing row may give, in microseconds (fixed, docs/limits.md): 10^12 us is
#: 11.6 days for one call, past any timing loop; a dense_us of 1e308 was read and overflowed the
#: log axes of `gpu validate --plots` (a RuntimeWarning on stderr).
MAX_TIME_US = 1e12


def _positive(value: Any, where: str, column: str, integer: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise NmlabError(f"{where}: column {column}: {value!r} is not a number") from None
    if not math.isfinite(x) or x <= 0:
        raise NmlabError(f"{where}: column {column}: {value!r} must be a finite number > 0")
    if integer and x != int(x):
        raise NmlabError(f"{where}: column {column}: {value!r} is not a whole number")
    if integer and x > MAX_GEMM_DIM:
        raise NmlabError(f"{where}: column {column}: {value!r} is over the largest GEMM dimension {MAX_GEMM_DIM:,}")
    if not integer and x > MAX_TIME_US:
        raise NmlabError(f"{where}: column {column}: {value!r} is over the longest GEMM time, 10^12 us")
    return x


def _check_rows(path: Path, count: int) -> None:
    from hwmodel.limits import limit, over_limit

    if count > limit("csv_rows"):
        raise over_limit("csv_rows", count, f"gpu timings csv {path}")


def _published(path: Path, reader: csv.DictReader) -> Measurements:
    from hwmodel.gpu import schema

    header = reader.fieldnames or []
    schema.repeated_column(path, header)
    missing = [c for c in PUBLISHED_COLUMNS if c not in header]
    if missing:
        raise NmlabError(f"{path}: missing column(s) {', '.join(missing)} "
                         f"(a published-format file needs {', '.join(PUBLISHED_COLUMNS)})")
    cols: dict[str, list] = {c: [] for c in PUBLISHED_COLUMNS}
    dense_k: list[float] = []
    seen: dict[tuple, int] = {}
    for line, row in enumerate(reader, start=2):
        where = f"{path}: line {line}"
        _check_rows(path, line - 1)
        if None in row or any(row.get(c) is None for c in PUBLISHED_COLUMNS):
            raise NmlabError(f"{where}: expected {len(header)} fields")
        gpu = (row["gpu"] or "").strip()
        if not gpu:
            raise NmlabError(f"{where}: column gpu: empty")
        try:
            dtype = canonical_dtype(row["dtype"])
        except NmlabError as exc:
            raise NmlabError(f"{where}: column {exc}") from None
        cols["gpu"].append(gpu)
        cols["dtype"].append(dtype)
        for c in ("m", "k", "n"):
            cols[c].append(_positive(row[c], where, c, integer=True))
        # A GEMM timed twice would weigh twice in the fit and the scores; which time is right is the file's call.
        key = (gpu, dtype, cols["m"][-1], cols["k"][-1], cols["n"][-1])
        if key in seen:
            raise NmlabError(f"{where}: {gpu} {dtype} {key[2]:.0f}x{key[3]:.0f}x{key[4]:.0f} (m x k x n) is "
                             f"already on line {seen[key]}; keep one row per GEMM")
        seen[key] = line
        for c in ("dense_us", "sparse_us"):
            cols[c].append(_positive(row[c], where, c))
        # Such a source's dense call ran the packed bytes of k (K // 2 for fp4, two values a byte).
        packed = (row.get("source") or "").strip().startswith(PACKED_K_SOURCES)
        per_byte = max(1, round(1 / OPERAND_BYTES[dtype])) if packed else 1
        if cols["k"][-1] % per_byte:
            raise NmlabError(f"{where}: {dtype} k = {cols['k'][-1]:.0f} is not a multiple of {per_byte}: this "
                             f"source's dense call ran the packed k (k // {per_byte}), which would be a partial byte")
        dense_k.append(cols["k"][-1] // per_byte)
    if not cols["gpu"]:
        raise NmlabError(f"{path}: no data rows")
    dtype = np.array(cols["dtype"])
    return Measurements(str(path), "published", np.array(cols["gpu"]), dtype,
                        *(np.array(cols[c], dtype=float) for c in ("m", "k", "n", "dense_us", "sparse_us")),
                        out_bytes=np.array([OUTPUT_BYTES[d] for d in dtype], dtype=float), l2="warm",
                        loop_calls=125, dense_k=np.array(dense_k, dtype=float))


def _case_order(item: tuple) -> tuple:
    # Cells may be empty (None): sort them last instead of comparing None with a number.
    return tuple((True, 0) if x is None else (False, x) for x in item[0])


def _bench(path: Path) -> Measurements:
    from hwmodel.gpu import schema

    rows = schema.read_rows(path)
    _check_rows(path, len(rows))
    # A case is its kind, name, env and width with the GEMM: a square GEMM and a TD3 layer of the
    # same shape are two cases, each pairs its own dense and sparse_cslt rows (keyed by shape
    # alone, the later silently replaced the earlier).
    cases: dict[tuple, dict[str, dict]] = {}
    device: dict[str, dict] = {}
    for line, row in enumerate(rows, start=2):
        if row.get("status") != "ok" or row.get("kind") not in ("gemm", "layer"):
            continue
        if row.get("impl") not in ("dense", "sparse_cslt") or row.get("check_ok") is False:
            continue  # a row whose result failed the numerical check timed a wrong kernel
        # Keyed by the dtype it names, not its spelling: a dense 'bfloat16' row and a sparse_cslt 'bf16' row of
        # one case pair up, and one case under both spellings is one case.
        try:
            row["dtype"] = canonical_dtype(row["dtype"] or "")
        except NmlabError as exc:
            raise NmlabError(f"{path}: line {line}: column {exc}") from None
        key = (row["device_name"], row["dtype"], row["m"], row["k"], row["n"], row["kind"], row["name"],
               row["env"], row["width"])
        case = cases.setdefault(key, {})
        if row["impl"] in case:
            raise NmlabError(f"{path}: line {line}: {row['device_name']} {row['kind']} {row['name']} {row['dtype']} "
                             f"{row['m']}x{row['k']}x{row['n']} {row['impl']} is already on line "
                             f"{case[row['impl']]['_line']}; keep one ok row per case")
        case[row["impl"]] = {**row, "_line": line}
        if row["device_name"] not in device and (row.get("compute_capability") or row.get("sm_count")):
            device[row["device_name"]] = {"compute_capability": row.get("compute_capability"),
                                          "sm_count": row.get("sm_count"), "line": line}
    cols: dict[str, list] = {c: [] for c in ("gpu", "dtype", "m", "k", "n", "dense_us", "sparse_us", "out")}
    for (gpu, dtype, m, k, n, *_case), impls in sorted(cases.items(), key=_case_order):
        if "dense" not in impls or "sparse_cslt" not in impls:
            continue
        # An ok row must carry a usable time: zero, negative or NaN is a broken file, not a skip.
        times = [impls[i].get(schema.TIME_COLUMNS["graph"]) for i in ("dense", "sparse_cslt")]
        if any(t is None for t in times):
            continue
        where = f"{path}: {gpu} {dtype} {m}x{k}x{n}"
        m, k, n = (_positive(v, where, c, integer=True) for v, c in ((m, "m"), (k, "k"), (n, "n")))
        times = [_positive(t, where, c) for t, c in zip(times, ("dense time", "sparse_cslt time"))]
        full = dtype
        out = {"int32": 4.0, "bfloat16": 2.0, "float16": 2.0}.get(impls["dense"].get("out_dtype") or "", OUTPUT_BYTES[full])
        for c, v in (("gpu", gpu), ("dtype", full), ("m", m), ("k", k), ("n", n), ("dense_us", times[0]),
                     ("sparse_us", times[1]), ("out", out)):
            cols[c].append(v)
    if not cols["gpu"]:
        raise NmlabError(f"{path}: no ok GEMM or layer case with both a dense and a sparse_cslt graph time")
    return Measurements(str(path), "bench", np.array(cols["gpu"]), np.array(cols["dtype"]),
                        *(np.array(cols[c], dtype=float) for c in ("m", "k", "n", "dense_us", "sparse_us")),
                        out_bytes=np.array(cols["out"], dtype=float), l2="cold", loop_calls=BENCH_LOOP_CALLS,
                        device=device)


def read_measurements(path: str | os.PathLike) -> Measurements:
    """Read a published-format or bench CSV (the header decides); see the module docstring."""
    path = Path(path)
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if "schema" in header:
        return _bench(path)
    # A file of one's own may space its header ("gpu, dtype, m, ..."): every cell is read without the spaces
    # around it, so the names are too.
    reader.fieldnames = [name.strip() for name in header]
    return _published(path, reader)


def bundled_files() -> list[Path]:
    """The published measurement files bundled under hwmodel/data/gpu_measurements."""
    from hwmodel.io import data_path

    return sorted(data_path("gpu_measurements").glob("*.csv"))


def specs_for(meas: Measurements, gpu: Optional[str] = None,
              own_params: bool = True) -> list[tuple["GpuSpec", np.ndarray]]:
    """(GPU spec, row mask), one per GPU in the file; ``gpu`` (a bundled name, a spec file or a
    device name) forces one spec for all rows (read without its own parameter file where
    ``own_params`` is False: :func:`hwmodel.gpu.spec.gpu_for`)."""
    from hwmodel.gpu.spec import bundled_gpus, gpu_for

    if gpu:
        # The spec itself, not its name: a spec file of one's own has no bundled name to look up again.
        return [(gpu_for(gpu, own_params=own_params), np.ones(len(meas), dtype=bool))]
    specs = bundled_gpus()
    out: dict[str, np.ndarray] = {}
    # The bench CSV names the GPU in device_name, the published format in gpu.
    column = "device_name" if meas.fmt == "bench" else "gpu"
    for device in sorted(set(meas.gpu.tolist())):
        hits = [s.name for s in specs.values() if s.matches(device)]
        if len(hits) != 1:
            why = "no bundled GPU spec matches it" if not hits else f"it matches {', '.join(hits)}"
            raise NmlabError(f"{meas.path}: column {column}: unknown GPU {device!r} ({why}); pass --gpu NAME "
                             f"(one of {', '.join(specs)}) or --gpu FILE, a spec file of your own (docs/gpu.md)")
        out[hits[0]] = out.get(hits[0], np.zeros(len(meas), dtype=bool)) | (meas.gpu == device)
    return [(specs[name], mask) for name, mask in out.items()]


def check_device(meas: Measurements, spec: "GpuSpec", mask: np.ndarray) -> None:
    """Refuse bench rows scored with a spec of another card: the compute capability or SM count the bench
    recorded differs from the spec's (an RTX 3090's timings under --gpu rtx4090 were scored, and fitted into a
    set 'for rtx4090', silently; a MIG slice's under its whole GPU's SMs)."""
    for name in sorted(set(meas.gpu[mask].tolist())):
        recorded = meas.device.get(name)
        if not recorded:
            continue
        for column, theirs, ours in (("compute_capability", recorded["compute_capability"], spec.compute_capability),
                                     ("sm_count", recorded["sm_count"], spec.sm_count)):
            if theirs not in (None, "", -1) and str(theirs) != str(ours):
                raise NmlabError(f"{meas.path}: line {recorded['line']}: column {column}: the bench ran on {name!r} "
                                 f"with {column} {theirs}, the GPU spec {spec.name} has {ours}: give the spec of the "
                                 f"card the file timed (--gpu FILE: a spec file of your own, docs/gpu.md)")


def check_dtypes(meas: Measurements, spec_name: str, mask: np.ndarray, dtypes: Sequence[str]) -> None:
    """Refuse rows whose dtype the GPU spec has no tensor rate for (names the dtype)."""
    missing = sorted(set(meas.dtype[mask].tolist()) - set(dtypes))
    if missing:
        raise NmlabError(f"{meas.path}: column dtype: GPU {spec_name} has no tensor rate for {', '.join(missing)}")
