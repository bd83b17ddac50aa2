"""CSV schema of ``nmlab gpu bench`` results, version 2 (standard library only).

One row per (case, implementation). Times are microseconds per call. Documented column by
column in docs/gpu.md (a test checks the two agree). A reader refuses other versions.
Version 2 (before any GPU run was committed) added ``split_k`` and ``api_path``: which
torch entry points and cuSPARSELt configuration a row really used, since those differ
between torch versions.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

try:
    from hwmodel.errors import NmlabError
except ImportError:  # loaded by file path on a bare GPU machine where hwmodel/__init__ lacks numpy
    class NmlabError(ValueError):  # type: ignore[no-redef]
        """Stand-in with the same meaning: a one-line user error."""

SCHEMA_NAME = "nmlab-gpu-bench"
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Column:
    """One CSV column: ``name``, python ``type`` (str, int, float, bool) and what it means."""

    name: str
    type: type
    doc: str


COLUMNS: tuple[Column, ...] = (
    Column("schema", str, f"always '{SCHEMA_NAME}'"),
    Column("schema_version", int, f"always {SCHEMA_VERSION}"),
    Column("run_id", str, "UTC start time of the bench run; the same for every row of a run"),
    Column("status", str, "ok | error (see `error`) | skipped (time budget ran out)"),
    Column("error", str, "one-line exception text when something failed, else empty"),
    Column("kind", str, "gemm | layer | actor_fwd | td3_step"),
    Column("name", str, "square | rect | the TD3 layers sharing the shape | env of a composite"),
    Column("env", str, "Gymnasium env of a TD3 shape (empty for plain GEMMs)"),
    Column("width", int, "hidden width of the TD3 networks (0 for plain GEMMs)"),
    Column("dtype", str, "operand dtype: bfloat16 | float16 | int8 | float8_e4m3fn"),
    Column("out_dtype", str, "output dtype of the kernel"),
    Column("impl", str, "dense | sparse_cslt | sparse_api (docs/gpu.md)"),
    Column("backend", str, "cublas | cusparselt | cutlass: the library that ran the GEMM"),
    Column("m", int, "rows of X = batch (composites: batch)"),
    Column("n", int, "output features = rows of W (composites: hidden width)"),
    Column("k", int, "input features = reduction size (composites: hidden width)"),
    Column("m_pad", int, "m the kernel ran with after padding to the library minimum"),
    Column("n_pad", int, "n after padding"),
    Column("k_pad", int, "k after padding"),
    Column("alg_id", int, "cuSPARSELt algorithm timed (-1 when not cuSPARSELt)"),
    Column("algs_tried", int, "cuSPARSELt alg_ids that ran in the search"),
    Column("algs_wrong", int, "of those, alg_ids whose result failed the numerical check"),
    Column("lib_alg_id", int, "alg_id cuSPARSELt's own search picked (-1 if unavailable)"),
    Column("split_k", int, "cuSPARSELt split-K of the timed configuration (1 = none; -1 when not cuSPARSELt)"),
    Column("api_path", str, "torch entry points and options the row really used (docs/gpu.md)"),
    Column("eager_median_us", float, "median per-call time, eager, CUDA events around each call"),
    Column("eager_p10_us", float, "10th percentile, eager"),
    Column("eager_p90_us", float, "90th percentile, eager"),
    Column("eager_reps", int, "calls timed, eager"),
    Column("graph_median_us", float, "median per-call time inside a CUDA graph (replay time / calls)"),
    Column("graph_p10_us", float, "10th percentile, graph"),
    Column("graph_p90_us", float, "90th percentile, graph"),
    Column("graph_reps", int, "graph replays timed"),
    Column("graph_error", str, "why there is no graph timing (capture failed), else empty"),
    Column("rotate_sets", int, "distinct input sets cycled through (data exceed L2 unless capped)"),
    Column("set_bytes", int, "bytes of one input set (X, W or its compressed form, Y)"),
    Column("max_rel_err", float, "max |Y - Y_ref| / max |Y_ref| against an fp32/int32 reference"),
    Column("check_ok", bool, "max_rel_err within the dtype's tolerance"),
    Column("kernels_per_call", int, "CUDA kernels one call launched (torch profiler; -1 if unknown)"),
    Column("flops", int, "2*m*n*k of the logical (unpadded) problem; composites: sum over GEMMs"),
    Column("device_name", str, "torch.cuda.get_device_name()"),
    Column("compute_capability", str, "major.minor"),
    Column("sm_count", int, "streaming multiprocessors"),
    Column("l2_bytes", int, "L2 cache size"),
    Column("mem_bytes", int, "device memory"),
    Column("driver", str, "NVIDIA driver version (nvidia-smi)"),
    Column("torch", str, "torch.__version__"),
    Column("cuda", str, "torch.version.cuda"),
    Column("cusparselt", str, "torch.backends.cusparselt.version() (empty if absent)"),
    Column("sm_clock_mhz", float, "SM clock read right after the case (nvidia-smi; -1 unknown)"),
    Column("mem_clock_mhz", float, "memory clock read right after the case"),
    Column("max_sm_clock_mhz", float, "maximum SM clock"),
    Column("power_limit_w", float, "enforced power limit"),
    Column("temperature_c", float, "GPU temperature after the case"),
)
FIELDNAMES = tuple(c.name for c in COLUMNS)
_TYPES = {c.name: c.type for c in COLUMNS}
TIME_COLUMNS = {"eager": "eager_median_us", "graph": "graph_median_us"}


def empty_row() -> dict[str, Any]:
    """A row with every column present and unset (None)."""
    row: dict[str, Any] = dict.fromkeys(FIELDNAMES)
    row["schema"] = SCHEMA_NAME
    row["schema_version"] = SCHEMA_VERSION
    return row


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return " ".join(str(value).split())  # one line, whatever an exception said


def _parse(name: str, text: str, where: str) -> Any:
    if text == "":
        return None
    kind = _TYPES[name]
    try:
        if kind is bool:
            if text not in ("true", "false"):
                raise ValueError(text)
            return text == "true"
        if kind is int:  # "1e3" is fine; "1024.5" was cut to 1024 and "inf" was an OverflowError traceback
            x = float(text)
            if not x.is_integer():
                raise ValueError(text)
            return int(x)
        return kind(text)
    except ValueError:
        raise NmlabError(f"{where}: column {name}: {text!r} is not a {'whole number' if kind is int else kind.__name__}"
                         ) from None


class RowWriter:
    """Writes rows to ``path`` + ".partial" as they come (a killed run still leaves data),
    then renames the file to ``path`` on :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike, append: bool = False):
        """``append``: carry on writing an existing partial file (a bench run that restarted
        in a fresh process); its header is kept."""
        self.path = Path(path)
        # close() renames the partial file over the path: refused before the first row.
        from hwmodel.io import replace_refusal

        why = replace_refusal(self.path)
        if why:
            raise NmlabError(f"gpu bench csv: {self.path}: {why}")
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keep = append and self.partial.is_file() and self.partial.stat().st_size > 0
        self._fh = open(self.partial, "a" if keep else "w", newline="")
        self._csv = csv.DictWriter(self._fh, fieldnames=FIELDNAMES, lineterminator="\n")
        if not keep:
            self._csv.writeheader()
        self.count = 0
        self.detached = False

    def write(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(FIELDNAMES)
        if unknown:
            raise KeyError(f"not in the schema: {sorted(unknown)}")
        self._csv.writerow({k: _format(row.get(k)) for k in FIELDNAMES})
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        self._fh.close()
        os.replace(self.partial, self.path)

    def detach(self) -> None:
        """Close the partial file without renaming it: another process carries on writing it."""
        self._fh.close()
        self.detached = True


def count_status(path: str | os.PathLike, status: str) -> int:
    """Rows of the bench CSV at ``path`` with ``status`` (0 if the file is missing)."""
    path = Path(path)
    if not path.is_file():
        return 0
    return sum(1 for raw in _dict_reader(path) if raw.get("status") == status)


def _dict_reader(path: Path) -> csv.DictReader:
    """A ``csv.DictReader`` over the bench CSV at ``path``, read bounded (``csv_bytes``) and checked
    as UTF-8 text like every CSV input (a binary file was a UnicodeDecodeError traceback)."""
    import io

    from hwmodel.limits import read_text

    return csv.DictReader(io.StringIO(read_text(path, "gpu bench csv", "csv_bytes"), newline=""))


def write_rows(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write all ``rows`` to ``path`` (via a partial file renamed at the end); returns the count."""
    writer = RowWriter(path)
    try:
        for row in rows:
            writer.write(row)
    except BaseException:
        writer._fh.close()
        os.unlink(writer.partial)
        raise
    writer.close()
    return writer.count


def repeated_column(path: Path, header: Iterable[str]) -> None:
    """Refuse a CSV header that names a column twice (a bench CSV or a published-format timing file):
    csv.DictReader keeps the last cell of a name, so ``...,dense_us,sparse_us,dense_us`` scored the extra
    column's times as the dense ones, silently."""
    seen = set()
    for name in header:
        if name in seen:
            raise NmlabError(f"{path}: line 1: column {name}: given twice in the header (keep one)")
        seen.add(name)


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a bench CSV with typed values (None for empty cells).

    Raises NmlabError (one line) for a missing file, a foreign header, another schema
    version or a value that does not parse.
    """
    from hwmodel.limits import is_file, not_a_file

    path = Path(path)
    if not is_file(path):
        raise not_a_file("gpu bench csv", path)  # a folder says so, not "no such file"
    reader = _dict_reader(path)
    header = reader.fieldnames or []
    repeated_column(path, header)
    missing = [f for f in FIELDNAMES if f not in header]
    if missing:
        raise NmlabError(f"{path}: not a {SCHEMA_NAME} csv: missing columns {', '.join(missing[:5])}")
    rows = []
    for i, raw in enumerate(reader, start=2):
        where = f"{path}:{i}"
        if raw.get("schema") != SCHEMA_NAME:
            raise NmlabError(f"{where}: column schema: {raw.get('schema')!r} is not {SCHEMA_NAME!r}")
        row = {name: _parse(name, raw.get(name) or "", where) for name in FIELDNAMES}
        if row["schema_version"] != SCHEMA_VERSION:
            raise NmlabError(f"{where}: column schema_version: {row['schema_version']} is not supported "
                             f"(this nmlab reads version {SCHEMA_VERSION})")
        rows.append(row)
    return rows


def schema_markdown() -> str:
    """The column table for docs/gpu.md."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    # A bare "|" in a meaning ("ok | error | skipped") split the row into extra cells and cut it.
    lines += [f"| `{c.name}` | {c.type.__name__} | {c.doc.replace('|', chr(92) + '|')} |" for c in COLUMNS]
    return "\n".join(lines)


def measured_time_us(row: dict[str, Any], mode: str) -> Optional[float]:
    """The row's median time for ``mode`` ("eager" or "graph"), None when absent or not ok."""
    if row.get("status") != "ok":
        return None
    value = row.get(TIME_COLUMNS[mode])
    return value if value is not None and value > 0 else None
