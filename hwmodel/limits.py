"""Limits on what nmlab reads, and the checks every loader shares (docs/limits.md).

Every file and option is checked here before any work starts: sizes against stated limits
(each overridable by an environment variable, for users with bigger models), numbers for
being finite, versions for being a known integer, YAML for bounded alias expansion, output
locations for being writable. A failed check is one :class:`~hwmodel.errors.NmlabError`
line naming the file and field; the values it quotes are shortened by :func:`short`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import tempfile
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from hwmodel.errors import NmlabError


@dataclass(frozen=True)
class Limit:
    """One stated limit: ``env`` overrides ``default``; ``what`` says what it bounds (docs/limits.md)."""

    env: str
    default: int
    what: str


#: Every limit, by name. Defaults keep any input within them under ~1 GB of memory.
LIMITS: dict[str, Limit] = {
    "layer_weights": Limit("NMLAB_MAX_LAYER_WEIGHTS", 1 << 24,
                           "weights of one workload layer (in_features x out_features)"),
    "workload_weights": Limit("NMLAB_MAX_WORKLOAD_WEIGHTS", 1 << 26, "weights of all layers of one workload"),
    "layers": Limit("NMLAB_MAX_LAYERS", 10_000, "layers in one workload"),
    "manifest_bytes": Limit("NMLAB_MAX_MANIFEST_BYTES", 16 << 20, "bytes of a workload's manifest.json"),
    "json_bytes": Limit("NMLAB_MAX_JSON_BYTES", 16 << 20,
                        "bytes of a JSON file a command reads back (a sweep's sweep.json, a run's args.json and done.json)"),
    "yaml_bytes": Limit("NMLAB_MAX_YAML_BYTES", 1 << 20, "bytes of a YAML file (design, sweep, campaign config, GPU spec or check requirements)"),
    "yaml_expanded": Limit("NMLAB_MAX_YAML_EXPANDED", 1_000_000,
                           "nodes plus scalar characters of a YAML file with every alias expanded"),
    "csv_bytes": Limit("NMLAB_MAX_CSV_BYTES", 64 << 20, "bytes of a CSV table (quality, published returns, GPU timings)"),
    "csv_rows": Limit("NMLAB_MAX_CSV_ROWS", 1_000_000, "rows of a CSV table"),
    "checkpoint_bytes": Limit("NMLAB_MAX_CHECKPOINT_BYTES", 1 << 30,
                              "uncompressed bytes of a checkpoint (the sum its archive declares)"),
    "pes": Limit("NMLAB_MAX_PES", 1 << 24, "processing elements of a design (rows x cols)"),
    "sram_bytes": Limit("NMLAB_MAX_SRAM_BYTES", 1 << 34, "capacity_bytes of one storage level"),
    "batch": Limit("NMLAB_MAX_BATCH", 1 << 24, "batch rows of a GEMM (--batch, sweep batches)"),
    "replay_transitions": Limit("NMLAB_MAX_REPLAY_TRANSITIONS", 10_000_000,
                                "transitions of a replay buffer (nmlab train --buffer-size)"),
    "sweep_points": Limit("NMLAB_MAX_SWEEP_POINTS", 10_000_000, "points of one sweep grid"),
    "table_bytes": Limit("NMLAB_MAX_TABLE_BYTES", 1 << 30,
                         "bytes of a Parquet table, as its footer declares them and as decoded (points.parquet, a sweep's part files)"),
}

#: Fixed bounds no real file comes near (not overridable).
YAML_MAX_DEPTH = 64
NPY_MAX_HEADER_BYTES = 10_000  # numpy's own default cap on a .npy header
SHORT_CHARS = 60
#: Weight bitwidths every command and file accepts (simulate, check and export-timeloop --bits,
#: a sweep config's bits, a workload layer's weight_bits, a quality table's bits): 32 is the
#: widest MAC datatype a design can name (fp32, ``hwmodel.design.DATATYPE_BITS``), so a wider
#: request could never run.
MIN_BITS, MAX_BITS = 1, 32
#: Largest |return_mean| and return_std of a quality table row (``nmlab sweep``, ``nmlab report``,
#: ``nmlab evaluate --csv``): no episode return comes near it, and it is far below where the seeds'
#: mean and standard deviation overflow (two seeds at 1e200 and -1e200 squared their difference
#: past the float range, an OverflowError once the sweep had written its parts).
MAX_RETURN = 1e15


#: Keys only a YAML file of one kind has, and what that file is (with the command that reads it):
#: a file given where another kind is read is named for what it is, not only by its first
#: unknown key (a sweep config given as a design said "bits: unknown key (allowed: clock_mhz, ...)").
_YAML_KINDS = (
    (("compute", "storage"), "an accelerator design (for simulate, check or a sweep's designs)"),
    (("workloads", "scenarios", "chunk_size", "gpus"), "a sweep config (for nmlab sweep)"),
    (("envs", "agents", "seeds"), "a campaign config (for nmlab campaign)"),
    (("latency_budget", "energy_budget", "sram_budget"), "check requirements (for nmlab check --requirements)"),
    (("architecture",), "a Timeloop architecture (nmlab import-timeloop makes a design of it)"),
)


def other_kind(doc: Any, own: str) -> str:
    """``; the file looks like a sweep config (for nmlab sweep)`` for a mapping whose keys mark a YAML
    file of another kind than ``own`` (the start of its description, "a sweep config"), else ""."""
    if not isinstance(doc, dict):
        return ""
    fmt = doc.get("format")
    if fmt == "nmlab-gpu":
        kind: Optional[str] = "a GPU spec (for gpu --gpu, or as a design point)"
    elif fmt == "nmlab-gpu-params":
        kind = "a GPU parameter file (what nmlab gpu fit --out writes; a GPU spec names it)"
    else:
        keys = {k.replace("-", "_") for k in doc if isinstance(k, str)}
        kind = next((what for marks, what in _YAML_KINDS if keys.intersection(marks)), None)
    return "" if kind is None or kind.startswith(own) else f"; the file looks like {kind}"


def limit(name: str) -> int:
    """The value of limit ``name``: its environment variable when set, else its default."""
    lim = LIMITS[name]
    text = os.environ.get(lim.env)
    if text is None or not text.strip():
        return lim.default
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        raise NmlabError(f"environment: {lim.env}: must be a positive integer, got {short(text)}") from None
    if value < 1:
        raise NmlabError(f"environment: {lim.env}: must be a positive integer, got {value}")
    return value


def fmt_count(n: int) -> str:
    """An integer for a message: ``1,048,576``; a huge one as ``about 10^5000`` (Python refuses
    to print integers of more than 4,300 digits)."""
    if abs(n) < 10**21:
        return f"{n:,}"
    return f"about 10^{int((abs(n).bit_length() - 1) * 0.30103)}"


def over_limit(name: str, value: int, where: str) -> NmlabError:
    """The error for ``value`` exceeding limit ``name`` at ``where`` (says how to raise it)."""
    lim = LIMITS[name]
    return NmlabError(f"{where}: {fmt_count(value)} is over the limit of {limit(name):,} {lim.what} "
                      f"(set {lim.env} to raise it; docs/limits.md)")


def check_limit(name: str, value: int, where: str) -> int:
    """``value`` when within limit ``name``; else the one-line error."""
    if value > limit(name):
        raise over_limit(name, value, where)
    return value


def short(value: Any, chars: int = SHORT_CHARS) -> str:
    """``repr(value)`` cut to about ``chars`` characters: an error never quotes a whole huge value.

    Containers are summarised by type and length before anything is formatted, so a value
    with millions of (shared) elements costs nothing to describe.
    """
    if isinstance(value, (list, tuple, dict, set)) and len(value) > 8:
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, (list, tuple)):
        parts, used = [], 0
        for item in value:
            parts.append(short(item, chars))
            used += len(parts[-1])
            if used > chars:
                break
        text = ", ".join(parts)
        text = f"[{text}]" if isinstance(value, list) else f"({text})"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{short(k, chars)}: {short(v, chars)}" for k, v in list(value.items())[:8]) + "}"
    elif isinstance(value, (str, bytes)) and len(value) > chars:
        text = repr(value[:chars])
    elif is_int(value) and abs(value) >= 10**21:
        text = fmt_count(value)
    else:
        text = repr(value)
    return text if len(text) <= chars else text[: chars - 3] + "..."


def one_line(value: Any) -> str:
    """``value`` as text on one line: a control character (newline, tab, escape) written as Python writes
    it in a string, ``\\n``, ``\\x1b``. For free text of users' files printed in a line of its own."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(value))


# ----------------------------------------------------------------------------- numbers


def is_int(value: Any) -> bool:
    """A real integer: ``True`` and ``1.0`` are not."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_version(value: Any, supported: Sequence[int], where: str) -> int:
    """``value`` when it is an integer in ``supported`` (``true`` and ``1.0`` are refused)."""
    if not is_int(value) or int(value) not in supported:
        raise NmlabError(f"{where}: unknown version {short(value)} (this nmlab reads {list(supported)})")
    return int(value)


def finite(value: Any, where: str, *, low: Optional[float] = None, high: Optional[float] = None,
           low_open: bool = False) -> float:
    """``value`` as a float when it is a finite number (not a bool) within [low, high] (low excluded
    with ``low_open``); else NmlabError naming ``where``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise NmlabError(f"{where}: must be a number, got {short(value)}")
    try:
        x = float(value)
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise NmlabError(f"{where}: must be a finite number, got {short(value)}")
    if low is not None and (x <= low if low_open else x < low):
        raise NmlabError(f"{where}: must be {'>' if low_open else '>='} {low:g}, got {x:g}")
    if high is not None and x > high:
        raise NmlabError(f"{where}: must be <= {high:g}, got {x:g}")
    return x


def finite_or_none(x: Any) -> Any:
    """JSON-safe values: NaN and infinities become None (JSON has no NaN), numpy scalars
    become Python numbers; dicts, lists and tuples are converted throughout."""
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, dict):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_none(v) for v in x]
    return x


def parse_finite(text: str, where: str, **bounds: Any) -> float:
    """A finite float from text (a CSV cell, an option); "nan", "inf" and "1e999" are refused."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise NmlabError(f"{where}: not a number: {short(text)}") from None
    return finite(value, where, **bounds)


def parse_int(text: str, where: str, low: Optional[int] = None, high: Optional[int] = None) -> int:
    """An integer from text within [low, high]; "1.0", "nan" and 4,000-digit numbers are refused."""
    s = str(text).strip()
    if len(s) > 30:
        raise NmlabError(f"{where}: not an integer: {short(text)}")
    try:
        value = int(s)
    except ValueError:
        raise NmlabError(f"{where}: not an integer: {short(text)}") from None
    if low is not None and value < low:
        raise NmlabError(f"{where}: must be >= {low}, got {value}")
    if high is not None and value > high:
        raise NmlabError(f"{where}: must be <= {high:,}, got {value:,}")
    return value


def check_finite_array(arr: np.ndarray, where: str) -> np.ndarray:
    """``arr`` when every value is finite; else the error names the first bad index and value."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "fc":
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise NmlabError(f"{where}: non-finite value {arr[idx].item()!r} at index {list(idx)} "
                             f"({int(bad.sum())} of {arr.size} values)")
    return arr


# ----------------------------------------------------------------------------- CLI options


def cli_int(low: Optional[int] = None, high: Optional[int] = None, limit_name: Optional[str] = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in [low, high] (``limit_name``: high is that stated limit,
    read when the option is parsed)."""

    def convert(text: str) -> int:
        hi = limit(limit_name) if limit_name else high
        try:
            value = parse_int(text, "value", low, None)
        except NmlabError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value: ")) from None
        if hi is not None and value > hi:
            hint = f" (set {LIMITS[limit_name].env} to raise it; docs/limits.md)" if limit_name else ""
            raise argparse.ArgumentTypeError(f"must be <= {hi:,}, got {value:,}{hint}")
        return value

    convert.__name__ = "integer"  # argparse names the type in "invalid integer value"
    return convert


def cli_float(low: Optional[float] = None, high: Optional[float] = None, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite float in [low, high] ("nan", "inf" refused)."""

    def convert(text: str) -> float:
        try:
            return parse_finite(text, "value", low=low, high=high, low_open=low_open)
        except NmlabError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value: ")) from None

    convert.__name__ = "number"
    return convert


# ----------------------------------------------------------------------------- output locations


def _existing_ancestor(p: Path) -> Path:
    """The nearest ancestor of ``p`` that exists (``p`` itself excluded)."""
    q = p.parent
    while not os.path.lexists(q) and q != q.parent:
        q = q.parent
    return q


def _probe_dir(d: Path, option: str, target: Path) -> None:
    """Create and remove a file in directory ``d``: the only reliable writability test (root, /proc, read-only mounts)."""
    if not d.is_dir():
        raise NmlabError(f"{option}: {target}: {d} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".nmlab-write-test.", dir=d)
    except OSError as exc:
        raise NmlabError(f"{option}: {target}: cannot write in {d} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | os.PathLike, option: str,
                      inputs: Sequence[tuple[str, Optional[str | os.PathLike]]] = ()) -> Path:
    """``path`` when a file can be written there (atomically: a temporary file beside it, then a rename).

    Refuses an existing directory or special file (``/dev/null``: a rename would replace it),
    a parent that is a file (``/dev/null/x``), an unwritable folder (``/proc/x``) and any of the
    command's ``inputs`` ((option, path) pairs; None or a missing file skipped): the rename would
    replace the user's input with the output. Creates nothing: missing parent folders are made by
    the writer once the work is done.
    """
    p = Path(os.path.expanduser(str(path)))
    if p.is_dir():
        raise NmlabError(f"{option}: {p}: is a directory (give a file name)")
    if os.path.lexists(p) and not p.is_file():
        raise NmlabError(f"{option}: {p}: exists and is not a regular file")
    for name, given in inputs:
        if given is not None and same_file(p, os.path.expanduser(str(given))):
            raise NmlabError(f"{option}: {p}: is the {name} file; writing it would replace that input (give another "
                             "file name)")
    parent = p.parent if p.parent.is_dir() else _existing_ancestor(p)
    _probe_dir(parent, option, p)
    return p


def check_output_dir(path: str | os.PathLike, option: str) -> Path:
    """``path`` when it is a writable directory or one can be created there; creates nothing."""
    p = Path(os.path.expanduser(str(path)))
    if os.path.lexists(p):
        if not p.is_dir():
            raise NmlabError(f"{option}: {p}: exists and is not a directory")
        _probe_dir(p, option, p)
    else:
        _probe_dir(_existing_ancestor(p), option, p)
    return p


# ----------------------------------------------------------------------------- files


def is_file(path: str | os.PathLike) -> bool:
    """``Path(path).is_file()`` that is False, not an exception, for names the OS refuses
    (too long, a NUL byte inside)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` are one existing regular file (by device and inode: a link or another
    spelling of the path counts); False where either is missing or not a file."""
    return is_file(a) and is_file(b) and os.path.samefile(a, b)


def exists(path: str | os.PathLike) -> bool:
    """Whether anything (file, folder, device, FIFO, even a dangling link) has this name; False
    for names the OS refuses (as :func:`is_file`)."""
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


def is_dir(path: str | os.PathLike) -> bool:
    """``Path(path).is_dir()``, False for names the OS refuses (as :func:`is_file`)."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def config_relative(item: str, base: Path) -> Path:
    """The path a config file's ``item`` names: ``~`` expanded, a relative one taken from ``base``, its folder."""
    p = Path(os.path.expanduser(item))
    return p if p.is_absolute() else base / p


def config_path(item: Any, where: str, base: Path, must_exist: bool, what: str = "a file path or name") -> str:
    """A path a config file gives (``~`` expanded, relative to ``base``, its folder) as an absolute one when it
    names a file, else as given (a bundled name, resolved later) unless ``must_exist``. Errors are one line
    starting with ``where`` and say ``what`` the key takes."""
    if not isinstance(item, str) or not item.strip():
        raise NmlabError(f"{where}: must be {what}, got {short(item)}")
    p = config_relative(item, base)
    if is_file(p):
        return str(p.resolve())
    if must_exist:
        raise not_a_file(where, p, given=item)
    return item


def not_a_file(what: str, path: str | os.PathLike, given: Optional[str] = None) -> NmlabError:
    """The one-line error for a path that is not a file: a directory (or a device, FIFO or
    socket) says so, since "no such file" for a path that exists sends the user looking for a typo. ``given``: the path as
    the user wrote it, shown instead of ``path`` (a config's path, resolved against its folder)."""
    shown = str(path if given is None else given)[:300]
    if is_dir(path):
        return NmlabError(f"{what}: {shown}: is a directory")
    # A device, FIFO or socket exists: "no such file" would send the user after a typo too.
    return NmlabError(f"{what}: {shown}: not a regular file" if exists(path) else f"{what}: no such file: {shown}")


def read_bytes(path: str | os.PathLike, max_bytes: int, what: str, limit_name: Optional[str] = None) -> bytes:
    """The bytes of ``path``, refusing a file larger than ``max_bytes`` before reading it."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise over_limit(limit_name, size, f"{what}: {p}") if limit_name else \
                NmlabError(f"{what}: {p}: {size:,} bytes, more than {max_bytes:,}")
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)  # a file that grows meanwhile is still cut
    except (IsADirectoryError, FileNotFoundError):
        raise not_a_file(what, p) from None
    except OSError as exc:
        raise NmlabError(f"{what}: {p}: cannot read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise NmlabError(f"{what}: {p}: more than {max_bytes:,} bytes")
    return data


def read_text(path: str | os.PathLike, what: str, limit_name: str, data: Optional[bytes] = None) -> str:
    """UTF-8 text of ``path`` within limit ``limit_name`` (bytes); binary files are refused. ``data``: the
    file's bytes where the caller has read them already (and hashed them: the text is then theirs)."""
    if data is None:
        data = read_bytes(path, limit(limit_name), what, limit_name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NmlabError(f"{what}: {path}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})") from None
    if "\0" in text:
        raise NmlabError(f"{what}: {path}: not a text file (holds a NUL byte at offset {text.index(chr(0))})")
    return text


def read_csv(path: str | os.PathLike, what: str, required: Iterable[str] = (), comments: bool = False
             ) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line number, row)]) of a CSV file, bounded and checked.

    Size and row count within ``csv_bytes`` / ``csv_rows``; UTF-8 text; every column in
    ``required`` present; every row with as many cells as the header. ``comments``: lines
    starting with ``#`` and blank lines are skipped. The cells stay strings: parse numbers
    with :func:`parse_finite` / :func:`parse_int`, naming the line and column.
    """
    name = Path(path).name
    text = read_text(path, what, "csv_bytes")
    lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1)
             if not comments or (line.strip() and not line.lstrip().startswith("#"))]
    max_rows = limit("csv_rows")
    if len(lines) > max_rows + 1:
        raise over_limit("csv_rows", len(lines) - 1, f"{what} {name}")
    try:
        reader = csv.reader([line for _, line in lines], strict=True)
        records = list(reader)
    except csv.Error as exc:
        raise NmlabError(f"{what} {name}: line {lines[reader.line_num - 1][0] if lines else 1}: not CSV ({exc})") from None
    if not records:
        raise NmlabError(f"{what} {name}: empty (no header line)")
    header = [c.strip() for c in records[0]]
    for col in required:
        if col not in header:
            raise NmlabError(f"{what} {name}: column {col!r} missing (header: {short(','.join(header))})")
    rows = []
    # csv.reader saw one record per kept line only when no quoted field spans lines.
    numbers = [n for n, _ in lines] if len(records) == len(lines) else list(range(1, len(records) + 1))
    for lineno, rec in zip(numbers[1:], records[1:]):
        if not rec or all(not c.strip() for c in rec):
            continue
        if len(rec) != len(header):
            raise NmlabError(f"{what} {name}: line {lineno}: {len(rec)} cells, the header has {len(header)}")
        rows.append((lineno, dict(zip(header, rec))))
    return header, rows


def loads_json(data: bytes | str, where: str) -> Any:
    """JSON with NaN, Infinity and overflowing numbers (1e999) refused; deep nesting is one error too."""

    def constant(name: str) -> float:
        raise NmlabError(f"{where}: non-finite number {name} (not allowed)")

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise NmlabError(f"{where}: number {short(text)} does not fit a double")
        return value

    try:
        return json.loads(data, parse_constant=constant, parse_float=number)
    except RecursionError:
        raise NmlabError(f"{where}: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, NmlabError):
            raise
        raise NmlabError(f"{where}: not valid JSON ({short(str(exc), 120)})") from None


def load_json(path: str | os.PathLike, what: str) -> Any:
    """The JSON value in ``path``, bounded: file size (``json_bytes``) before reading, UTF-8 text,
    nesting, NaN / Infinity refused (:func:`loads_json`). Errors are one line: ``<what>: <path>: ...``."""
    return loads_json(read_text(path, what, "json_bytes"), f"{what}: {path}")


# ----------------------------------------------------------------------------- Parquet tables

#: Bounds on decoding a Parquet footer (Thrift): total string bytes and container items. A
#: sweep table's footer holds a few hundred strings; Arrow's own defaults are 100 MB and 10^6.
PARQUET_THRIFT_STRING_BYTES = 16 << 20
PARQUET_THRIFT_CONTAINER_ITEMS = 1_000_000


def _parquet_file(path: str | os.PathLike, what: str, **kw: Any) -> Any:
    """``pyarrow.parquet.ParquetFile(path, **kw)`` with the footer decoded within fixed Thrift
    bounds; a missing file, a folder or a damaged footer is one line."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path, thrift_string_size_limit=PARQUET_THRIFT_STRING_BYTES,
                              thrift_container_size_limit=PARQUET_THRIFT_CONTAINER_ITEMS, **kw)
    except (IsADirectoryError, FileNotFoundError):
        raise not_a_file(what, path) from None
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged footer
        raise NmlabError(f"{what}: {str(path)[:300]}: unreadable ({short(' '.join(str(exc).split()), 160)})") from None


def open_parquet(path: str | os.PathLike, what: str) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` whose footer was checked before any data is read: the
    footer decoded within fixed Thrift bounds, its row count within ``sweep_points`` (a sweep
    table holds at most one row per grid point) and the uncompressed bytes it declares (per row
    group and per column chunk, the larger) within ``table_bytes``. Errors are one line."""
    shown = str(path)[:300]
    pf = _parquet_file(path, what)
    md = pf.metadata
    if md.num_rows < 0:
        raise NmlabError(f"{what}: {shown}: declares {md.num_rows} rows")
    check_limit("sweep_points", md.num_rows, f"{what}: {shown}: rows")
    by_group = by_chunk = 0
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        by_group += max(rg.total_byte_size, 0)
        by_chunk += sum(max(rg.column(j).total_uncompressed_size, 0) for j in range(rg.num_columns))
        if rg.total_byte_size < 0 or rg.num_rows < 0:
            raise NmlabError(f"{what}: {shown}: row group {i} declares a negative size")
    check_limit("table_bytes", max(by_group, by_chunk), f"{what}: {shown}: uncompressed bytes")
    return pf


def read_parquet(path: str | os.PathLike, what: str, columns: Optional[list[str]] = None,
                 opened: Any = None) -> Any:
    """The table at ``path`` (a ``pyarrow.Table``; ``columns``: only those), its memory bounded
    before it is built.

    The footer is checked first (:func:`open_parquet`; ``opened``: its result for ``path``,
    when the caller already has it). Its sizes are of the encoded data, and a
    dictionary-encoded string column decodes to far more (one 64 MiB string repeated 40 times is
    31 MB on disk, 671 MB declared, 2.7 GB decoded): text columns are read as dictionaries, their
    decoded size counted from the dictionary's lengths and the indices, and decoded only when the
    table stays within ``table_bytes``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    shown = str(path)[:300]
    pf = opened if opened is not None else open_parquet(path, what)
    text = [f.name for f in pf.schema_arrow if (columns is None or f.name in columns) and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type))]
    if text:  # opened again to read those as dictionaries, on the footer already decoded and checked
        pf = _parquet_file(path, what, read_dictionary=text, metadata=pf.metadata)
    try:
        table = pf.read(columns=columns)
        total = 0
        for col in table.columns:
            for chunk in col.chunks:
                if pa.types.is_dictionary(chunk.type):
                    lengths = pc.binary_length(chunk.dictionary).cast(pa.int64())
                    used = pc.sum(pc.take(lengths, pc.drop_null(chunk.indices))).as_py() or 0
                    total += used + 8 * len(chunk)  # the decoded bytes and their offsets
                else:
                    total += chunk.nbytes
            if total > limit("table_bytes"):
                break
        check_limit("table_bytes", total, f"{what}: {shown}: decoded bytes")
        # Decoded, in the file's own schema (its metadata too: pandas reads its index and dtypes there).
        fields = [pa.field(f.name, f.type.value_type, f.nullable, f.metadata) if pa.types.is_dictionary(f.type) else f
                  for f in table.schema]
        cols = [pc.cast(c, f.type) if pa.types.is_dictionary(c.type) else c for c, f in zip(table.columns, fields)]
        return pa.Table.from_arrays(cols, schema=pa.schema(fields, metadata=table.schema.metadata))
    except NmlabError:
        raise
    except Exception as exc:  # pyarrow raises several types for damaged data pages
        raise NmlabError(f"{what}: {shown}: unreadable ({short(' '.join(str(exc).split()), 160)})") from None


# ----------------------------------------------------------------------------- zip archives

#: What a damaged or hostile zip member raises while being read.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
              NotImplementedError, RuntimeError)


def read_member(zf: zipfile.ZipFile, name: str, max_bytes: int, where: str,
                limit_name: Optional[str] = None) -> bytearray:
    """Inflate member ``name`` of ``zf``, never past ``max_bytes``.

    The size the archive declares is checked first, so a bomb is refused without inflating
    a byte of it; the stream is then read in 1 MiB pieces with the same cap, so a member that
    inflates past what it declared is refused too (zipfile also stops at the declared size).
    """
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise NmlabError(f"{where}: {short(name)} is missing from the archive") from None
    if info.file_size > max_bytes:
        if limit_name:
            raise over_limit(limit_name, info.file_size, f"{where}: {short(name)} declares")
        raise NmlabError(f"{where}: {short(name)} declares {info.file_size:,} bytes, more than the "
                         f"{max_bytes:,} it can need")
    buf = bytearray()
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > max_bytes:
                    raise NmlabError(f"{where}: {short(name)} inflates past {max_bytes:,} bytes")
    except NmlabError:
        raise
    except ZIP_ERRORS as exc:
        raise NmlabError(f"{where}: {short(name)} is unreadable ({short(str(exc), 120)})") from None
    return buf


def declared_zip_bytes(path: str | os.PathLike, what: str, limit_name: str) -> int:
    """Sum of the uncompressed sizes a zip archive declares, refused past limit ``limit_name``
    before anything is inflated; 0 when ``path`` is not a zip archive (the reader says why)."""
    try:
        with zipfile.ZipFile(path) as zf:
            total = sum(i.file_size for i in zf.infolist())
    except ZIP_ERRORS:
        return 0
    check_limit(limit_name, total, f"{what}: {path}: uncompressed size")
    return total


def parse_npy(data: bytearray, where: str, count: int, kinds: str) -> np.ndarray:
    """The array in ``.npy`` bytes, checked before any allocation: no objects (pickles), a dtype
    kind in ``kinds`` ("u", "f", ...), exactly ``count`` elements and exactly their bytes."""
    bio = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(bio)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(bio, max_header_size=NPY_MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(bio, max_header_size=NPY_MAX_HEADER_BYTES)
        else:
            raise ValueError(f"npy format version {version} is not supported")
    # tokenize.TokenError: numpy tokenizes the header before literal_eval, and an unclosed bracket
    # (a byte flipped to '(' or a cut header) raised it past this check, a traceback.
    except (ValueError, TypeError, SyntaxError, EOFError, OverflowError, tokenize.TokenError) as exc:
        raise NmlabError(f"{where}: not a .npy array ({short(str(exc), 120)})") from None
    if dtype.hasobject:
        raise NmlabError(f"{where}: holds Python objects (pickles are never loaded)")
    if dtype.kind not in kinds:
        raise NmlabError(f"{where}: dtype {dtype} is not allowed here")
    if any(d < 0 for d in shape):  # (-4, -8) multiplies to 32 but is no shape
        raise NmlabError(f"{where}: shape {short(tuple(shape))} has a negative dimension")
    n = math.prod(shape)
    if n != count:
        raise NmlabError(f"{where}: shape {short(tuple(shape))} has {fmt_count(n)} elements, expected {count:,}")
    offset = bio.tell()
    if len(data) - offset != n * dtype.itemsize:
        raise NmlabError(f"{where}: holds {len(data) - offset:,} data bytes, its header promises {fmt_count(n * dtype.itemsize)}")
    arr = np.frombuffer(data, dtype=dtype, count=n, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C")


# ----------------------------------------------------------------------------- YAML


def _line(node: Any) -> int | str:
    """The 1-based line a YAML node starts on, for error messages ("?" when unknown)."""
    return node.start_mark.line + 1 if node.start_mark else "?"


def _children(node: Any) -> list:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [x for pair in node.value for x in pair]
    return []


def _check_unique_keys(node: Any, where: str) -> None:
    """Refuse a mapping that gives one key twice: YAML loaders keep the last silently, so a
    design or config edited by appending would run with a value its author did not see."""
    import yaml

    seen: set[str] = set()
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        if key.value in seen:
            raise NmlabError(f"{where}: line {_line(key)}: key {short(key.value, 60)} is given twice "
                             "(YAML would keep only the last)")
        seen.add(key.value)


def _check_expansion(root: Any, where: str) -> None:
    """Refuse a YAML node graph that is recursive, deeper than YAML_MAX_DEPTH, larger than the
    ``yaml_expanded`` limit once every alias is expanded (billion laughs), or holds a mapping
    with a key given twice. Linear in the graph, without recursion: each node's expanded size
    is memoised."""
    import yaml

    cap = limit("yaml_expanded")
    memo: dict[int, tuple[int, int]] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            open_.discard(nid)
            if isinstance(node, yaml.MappingNode):
                _check_unique_keys(node, where)
            kids = _children(node)
            own = max(1, len(node.value)) if isinstance(node, yaml.ScalarNode) else 1
            size = own + sum(memo[id(k)][0] for k in kids)
            depth = 1 + max((memo[id(k)][1] for k in kids), default=0)
            if depth > YAML_MAX_DEPTH:
                raise NmlabError(f"{where}: nested deeper than {YAML_MAX_DEPTH} levels")
            if size > cap:
                raise NmlabError(
                    f"{where}: line {_line(node)}: with its aliases expanded this value exceeds the limit of {cap:,} "
                    f"nodes and characters (an alias bomb?; set {LIMITS['yaml_expanded'].env} to raise it)")
            memo[nid] = (size, depth)
            continue
        if nid in memo:
            continue
        open_.add(nid)
        stack.append((node, True))
        if len(open_) > YAML_MAX_DEPTH + 1:
            raise NmlabError(f"{where}: nested deeper than {YAML_MAX_DEPTH} levels")
        for kid in _children(node):
            if id(kid) in open_:
                raise NmlabError(f"{where}: line {_line(kid)}: an alias refers to a value that contains it (recursive)")
            if id(kid) not in memo:
                stack.append((kid, False))


def _tagged_constructor(name: str) -> Callable:
    import yaml

    def construct(loader: Any, node: Any) -> Any:
        if isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
            return {"!": name, **value}
        if isinstance(node, yaml.SequenceNode):
            return {"!": name, "nodes": loader.construct_sequence(node, deep=True)}
        return {"!": name, "value": loader.construct_scalar(node)}

    return construct


def load_yaml(path: str | os.PathLike, what: str, tags: Sequence[str] = (), data: Optional[bytes] = None) -> Any:
    """``yaml.safe_load`` of ``path``, bounded: file size (``yaml_bytes``), nesting depth, the
    size with aliases expanded (``yaml_expanded``) and duplicate keys are checked on the node
    graph before any Python value is built. Errors are one line: ``<what>: <path>: ...``.

    ``tags``: local tags (e.g. ``!Component``) read as plain data: a tagged mapping becomes a
    dict with the tag name under the key ``"!"``, a tagged list ``{"!": tag, "nodes": [...]}``.
    ``data``: the file's bytes, already read (:func:`read_text`)."""
    import yaml

    text = read_text(path, what, "yaml_bytes", data)
    where = f"{what}: {path}"
    loader = None
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    cls = base
    if tags:
        cls = type("TaggedSafeLoader", (base,), {})
        for tag in tags:
            cls.add_constructor(tag, _tagged_constructor(tag.lstrip("!")))
    try:
        # libyaml's parser when PyYAML has it (10x faster on big files), the same safe constructor.
        loader = cls(text)  # checks the characters: may already raise
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, where)
        return loader.construct_document(node)
    except NmlabError:
        raise
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())
        raise NmlabError(f"{where}: not valid YAML ({short(first, 200)})") from None
    except RecursionError:
        raise NmlabError(f"{where}: nested too deeply") from None
    except (ValueError, OverflowError) as exc:  # a value PyYAML cannot build, e.g. a 5,000-digit integer
        raise NmlabError(f"{where}: a value cannot be read ({short(str(exc), 120)})") from None
    finally:
        if loader is not None:
            loader.dispose()
