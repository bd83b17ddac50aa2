"""Where sweep rows live on disk: append-only part files, then one consolidated table.

``DIR/parts/part-<hash>.parquet`` holds the rows of one finished chunk. Each is written to a
temporary file and renamed (atomic on POSIX), so after a kill at any moment a part is either
complete or absent. ``DIR/points.parquet`` is rebuilt from the parts (deduplicated by point
id, restricted to the current grid, in grid order) and also written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hwmodel.errors import NmlabError
from hwmodel.io import atomic_write
from hwmodel.limits import open_parquet, read_parquet

PARTS = "parts"
TABLE = "points.parquet"


def skip_pyarrow_pandas_import() -> None:
    """Keep pyarrow from importing pandas (0.3-0.4 s of CPU per process) on its first ``pa.array()``.

    pyarrow imports pandas then only to recognise pandas inputs, which a sweep never passes.
    With pandas hidden for that one call, pyarrow records "no pandas" for such checks; its
    pandas conversions (``to_pandas``, ``from_pandas``) still import it when called. For
    processes that only sweep (workers, the ``nmlab sweep`` command): nothing if pandas is
    already imported.
    """
    if "pandas" in sys.modules:
        return
    sys.meta_path.insert(0, _NoPandas)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(_NoPandas)


class _NoPandas:
    """An import finder that refuses pandas (see :func:`skip_pyarrow_pandas_import`)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "pandas":
            raise ModuleNotFoundError("pandas hidden from pyarrow's first array()", name=name)
        return None


def parts_dir(out: Path) -> Path:
    return out / PARTS


def clean_temporaries(out: Path) -> None:
    """Remove temporary files a killed run left behind (never complete parts)."""
    for tmp in parts_dir(out).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    for tmp in out.glob(f".{TABLE}.*.tmp"):
        tmp.unlink(missing_ok=True)


def list_parts(out: Path) -> list[Path]:
    return sorted(parts_dir(out).glob("part-*.parquet"))


def _part_ids(part: Path) -> np.ndarray:
    """A part's point ids as a fixed-width bytes array (16 bytes each, no Python strings)."""
    return _ids_of(read_parquet(part, "sweep part", columns=["point_id"]).column("point_id"))


def _ids_of(col: pa.ChunkedArray) -> np.ndarray:
    """A point_id column as a fixed-width bytes array (S16)."""
    out = []
    for chunk in col.chunks:
        # Only a string column without nulls has int32 offsets to read (a null or dictionary
        # column, from a foreign part, has not: it takes the general conversion).
        if chunk.null_count == 0 and pa.types.is_string(chunk.type):
            offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32, count=len(chunk) + 1, offset=chunk.offset * 4)
            if np.all(np.diff(offsets) == 16):
                # Ids are 16 characters: the string data is already the S16 array.
                out.append(np.frombuffer(chunk.buffers()[2], dtype="S16", count=len(chunk), offset=int(offsets[0])))
                continue
        out.append(np.asarray(chunk.to_numpy(zero_copy_only=False), dtype="S16"))
    return np.concatenate(out) if out else np.zeros(0, dtype="S16")


def _is_hex(x: bytes) -> bool:
    try:
        return len(x) == 16 and len(bytes.fromhex(x.decode("ascii"))) == 8
    except (ValueError, UnicodeDecodeError):
        return False


def id_keys(ids: np.ndarray) -> Optional[np.ndarray]:
    """Point ids (an S16 array of 16 hex digits each) as uint64 keys that sort and compare like
    the ids (fast to sort and search); None when some id is not 16 hex digits."""
    try:
        raw = bytes.fromhex(ids.tobytes().decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    if len(raw) != 8 * len(ids):
        return None  # fromhex skips whitespace: an id with spaces would shift every key after it
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64)


def done_ids(out: Path) -> np.ndarray:
    """Point ids already stored in readable part files (unreadable ones are set aside), as an S16 array."""
    ids = []
    for part in list_parts(out):
        try:
            ids.append(_part_ids(part))
        except (NmlabError, pa.ArrowInvalid, OSError, KeyError) as exc:
            # Cannot happen with atomic renames, but a damaged disk (or a part whose footer declares
            # more than the limits) must not stop a resume: its points are evaluated again.
            print(f"nmlab sweep: warning: setting aside unreadable {part.name} ({exc})", file=sys.stderr)
            part.rename(part.with_suffix(".bad"))
    return np.concatenate(ids) if ids else np.zeros(0, dtype="S16")


def _normalize(rows: list[dict[str, Any]] | pa.Table) -> pa.Table:
    """Rows (or a table) -> Arrow table; all-null columns become float64 and integer columns
    with nulls float64 (NaN) so schemas agree across parts."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
    cols = []
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_null(col.type):
            col = col.cast(pa.float64())
        elif pa.types.is_integer(col.type) and col.null_count:
            col = col.cast(pa.float64())
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def write_part(out: Path, rows: list[dict[str, Any]] | pa.Table) -> Path:
    """Write one chunk's rows (dicts or a table) atomically; the name hashes its point ids (same chunk, same name)."""
    point_ids = rows.column("point_id").to_pylist() if isinstance(rows, pa.Table) else [r["point_id"] for r in rows]
    ids = "\n".join(point_ids)
    path = parts_dir(out) / f"part-{hashlib.sha256(ids.encode()).hexdigest()[:20]}.parquet"
    # Not fsynced: the rename alone keeps a killed run's parts complete or absent, and a part an
    # OS crash left unreadable is set aside and its points evaluated again (done_ids).
    with atomic_write(path, durable=False) as fh:
        # Parts are read once more and deleted never: speed over size (no compression).
        # Dictionaries stay: without them the default sweep's largest part is 2.1x the size for
        # 0.4-0.8 ms less of writing (benchmarks/bench_model_ops.py, item 1, five runs).
        pq.write_table(_normalize(rows), fh, compression="none")
    return path


def _unify(schemas: list[pa.Schema]) -> Optional[pa.Schema]:
    """The parts' schemas as one (None for no parts): columns in the order the first part has
    them, then any new ones; types promoted where parts differ."""
    if not schemas:
        return None
    return pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")


#: How points.parquet is written: LZ4 without dictionary encoding writes a 25,200-point sweep's
#: table in 0.6x the time of the default (Snappy, dictionaries) and reads it in 0.7-1.0x, at
#: 0.9x the size (benchmarks/bench_model_ops.py, item 2, five runs).
TABLE_OPTIONS = {"compression": "lz4", "use_dictionary": False}

#: Rows per row group of points.parquet: the most rows consolidation holds at once.
ROW_GROUP = 65_536


class _Parts:
    """Part tables read on demand, the last few kept (consecutive output rows come from few parts)."""

    def __init__(self, parts: list[Path], schema: pa.Schema, keep: int = 4):
        self.parts, self.schema, self.keep = parts, schema, keep
        self.cache: dict[int, pa.Table] = {}

    def get(self, i: int) -> pa.Table:
        t = self.cache.pop(i, None)
        if t is None:
            t = read_parquet(self.parts[i], "sweep part")  # not read_table: it imports pyarrow.dataset and pandas (0.3 s)
            if not t.schema.equals(self.schema):  # usually equal (every part of one run): nothing to convert
                t = self._conform(t)
        self.cache[i] = t
        while len(self.cache) > self.keep:
            self.cache.pop(next(iter(self.cache)))
        return t

    def _conform(self, t: pa.Table) -> pa.Table:
        """``t`` in the unified schema: its columns in that order, missing ones all null, types cast."""
        have = set(t.column_names)
        t = t.select([n for n in self.schema.names if n in have])
        for name in self.schema.names:
            if name not in t.column_names:
                typ = self.schema.field(name).type
                t = t.append_column(pa.field(name, typ), pa.nulls(len(t), typ))
        return t.select(self.schema.names).cast(self.schema)


def consolidate(out: Path, grid_ids: np.ndarray, derive: Optional[Any] = None) -> int:
    """Write ``DIR/points.parquet`` from the parts: rows whose id is in ``grid_ids``, each once, in grid order.

    ``grid_ids``: the grid's distinct point ids in grid order (S16 array). Only ids and
    positions are held for every row; the rows themselves move ``ROW_GROUP`` at a time from the
    parts to the output's row groups. ``derive`` adds derived columns: a
    :class:`sweeps.derived.Derivation` (``prepare(table)`` given the dense rows, in grid order,
    then ``apply(table)`` on each row group), or None. Written atomically; returns the number
    of rows.
    """
    parts = list_parts(out)
    schemas = []
    n = len(grid_ids)
    # Hex ids compare as uint64 keys (sorting 16-byte strings is several times slower).
    keys = id_keys(grid_ids)
    if keys is not None:
        grid_ids = keys
    by_id = np.argsort(grid_ids, kind="stable")
    sorted_ids = grid_ids[by_id]
    seen = np.zeros(n, dtype=bool)
    pos_l, part_l, row_l = [], [], []
    dense_l, dense_pos_l = [], []
    for pi, part in enumerate(parts):
        # One read per part gives its ids and, for a derivation, the columns of its dense rows.
        pf = open_parquet(part, "sweep part")
        schemas.append(pf.schema_arrow)
        names = pf.schema_arrow.names
        want = [c for c in DENSE_COLUMNS if c in names] if derive is not None and "pattern" in names else []
        t = read_parquet(part, "sweep part", columns=["point_id", *want], opened=pf)
        pid = _ids_of(t.column("point_id"))
        if keys is not None:
            pkeys = id_keys(pid)
            # A part id that is not hex cannot be in a grid of hex ids.
            pid = pkeys if pkeys is not None else np.asarray([int(x, 16) if _is_hex(x) else 2**64 - 1 for x in pid],
                                                             dtype=np.uint64)
        at = np.minimum(np.searchsorted(sorted_ids, pid), max(n - 1, 0))
        ok = (sorted_ids[at] == pid) if n else np.zeros(len(pid), dtype=bool)
        rows = np.flatnonzero(ok)
        pos = by_id[at[rows]]
        # First occurrence only: earlier parts win, then earlier rows of this part.
        _, first = np.unique(pos, return_index=True)
        first = np.sort(first)
        rows, pos = rows[first], pos[first]
        fresh = ~seen[pos]
        rows, pos = rows[fresh], pos[fresh]
        seen[pos] = True
        if want:
            dense = _dense_mask(t)[rows]
            dense_l.append(_dense_take(t, rows[dense]))
            dense_pos_l.append(pos[dense])
        pos_l.append(pos)
        part_l.append(np.full(len(pos), pi))
        row_l.append(rows)
    schema = _unify(schemas)
    cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64))
    pos, part_of, row_of = cat(pos_l), cat(part_l), cat(row_l)
    order = np.argsort(pos, kind="stable")
    part_of, row_of = part_of[order], row_of[order]
    with atomic_write(out / TABLE) as fh:
        if schema is None or not len(pos):
            table = pa.table({"point_id": pa.array([], pa.string())})
            pq.write_table(derive.apply(table) if derive is not None else table, fh, **TABLE_OPTIONS)
        else:
            reader = _Parts(parts, schema)
            if derive is not None:
                derive.prepare(_dense_rows(dense_l, dense_pos_l))
            writer = None
            for i in range(0, len(pos), ROW_GROUP):
                batch = _gather(reader, part_of[i:i + ROW_GROUP], row_of[i:i + ROW_GROUP])
                if derive is not None:
                    batch = derive.apply(batch)
                if writer is None:
                    writer = pq.ParquetWriter(fh, batch.schema, **TABLE_OPTIONS)
                writer.write_table(batch.cast(writer.schema), row_group_size=ROW_GROUP)
            writer.close()
    (out / TABLE).chmod(0o644)  # atomic_write's temporary file is private; the table is for sharing
    return len(pos)


def _gather(reader: _Parts, part_of: np.ndarray, row_of: np.ndarray) -> pa.Table:
    """Rows (part, row) in the given order, as one table."""
    cuts = np.flatnonzero(np.diff(part_of)) + 1
    tables = []
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(part_of)]):
        t, rows = reader.get(int(part_of[a])), row_of[a:b]
        if rows[-1] - rows[0] == b - a - 1 and (b - a < 2 or np.all(np.diff(rows) == 1)):
            tables.append(t.slice(int(rows[0]), b - a))  # consecutive rows (the usual case): no copy
        else:
            tables.append(t.take(pa.array(rows, type=pa.int64())))
    return pa.concat_tables(tables)


#: The columns a derivation reads from the dense rows.
DENSE_COLUMNS = ("env", "design", "scenario", "batch", "pattern", "bits", "latency_s", "energy_pj")


def _dense_mask(t: pa.Table) -> np.ndarray:
    """Which rows of ``t`` have pattern "dense" (a null pattern is not dense)."""
    return pc.fill_null(pc.equal(t.column("pattern"), "dense"), False).to_numpy(zero_copy_only=False)


def _dense_take(t: pa.Table, rows: np.ndarray) -> pa.Table:
    """Rows ``rows`` of ``t``, with only the columns a derivation reads (those ``t`` has)."""
    return t.select([c for c in DENSE_COLUMNS if c in t.column_names]).take(pa.array(rows, type=pa.int64()))


def _dense_rows(tables: list[pa.Table], positions: list[np.ndarray]) -> pa.Table:
    """The kept rows of pattern "dense" (what a dense reference is chosen from), in grid order,
    with only the columns a derivation reads: each part's dense rows and their grid positions."""
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in DENSE_COLUMNS[:5]})
    table = pa.concat_tables(tables, promote_options="permissive")
    return table.take(pa.array(np.argsort(np.concatenate(positions), kind="stable"), type=pa.int64()))


def read_table(out: Path, columns: Optional[Iterable[str]] = None) -> pa.Table:
    return read_parquet(out / TABLE, "sweep table", columns=list(columns) if columns else None)


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Row dicts (from a point -> row evaluator) as one Arrow table, schemas normalised like the parts."""
    return _normalize(rows)


class _Diverged(Exception):
    """A fresh sweep's parts are not what :class:`TableStream` can write as they come."""


class TableStream:
    """``DIR/points.parquet`` written while a fresh sweep runs, so little is left to do at its end.

    For a sweep that starts with no parts: chunk ``k`` holds output rows ``spans[k]`` (grid
    order, each point once), in order. Once the chunks holding every dense row are written
    (``dense_upto``: output rows before it include them all; dense points come first in a
    grid whose patterns start with "dense"), the derivation is prepared from those rows, and
    from then on each ``row_group`` rows whose chunks are all written are read back, derived
    and appended. Anything unexpected (a part whose ids, schema or dense rows are not as
    planned) abandons the stream: :meth:`finish` then returns None and the caller
    consolidates as usual. The table appears atomically, only when complete.
    """

    def __init__(self, out: Path, spans: list[tuple[int, int]], ids: np.ndarray, dense_upto: int, derive: Any,
                 row_group: int = 16_384):
        self.out, self.spans, self.ids, self.derive, self.row_group = out, spans, ids, derive, row_group
        self.paths: list[Optional[Path]] = [None] * len(spans)
        self.done = 0       # chunks 0 .. done-1 are written
        self.written = 0    # output rows appended so far
        self.dense_chunks = next((k + 1 for k, (_a, b) in enumerate(spans) if b >= dense_upto), 0) if dense_upto else 0
        self.prepared = False
        self.schema: Optional[pa.Schema] = None
        self.tables: dict[int, pa.Table] = {}
        self.writer: Optional[pq.ParquetWriter] = None
        self._cm = atomic_write(out / TABLE)  # None once finished or abandoned
        self._fh = self._cm.__enter__()

    def add(self, k: int, path: Path) -> None:
        """Chunk ``k`` is written to ``path``: append what can be appended now."""
        if self._cm is None:
            return
        self.paths[k] = Path(path)
        while self.done < len(self.spans) and self.paths[self.done] is not None:
            self.done += 1
        try:
            self._advance()
        except _Diverged:
            self.abort()

    def _table(self, k: int) -> pa.Table:
        t = self.tables.get(k)
        if t is None:
            t = read_parquet(self.paths[k], "sweep part")
            a, b = self.spans[k]
            if len(t) != b - a or not np.array_equal(_ids_of(t.column("point_id")), self.ids[a:b]):
                raise _Diverged(f"chunk {k}: rows are not the planned points")
            if self.schema is None:
                self.schema = t.schema
            elif not t.schema.equals(self.schema):
                raise _Diverged(f"chunk {k}: schema differs")  # consolidation unifies schemas
            if k >= self.dense_chunks and "pattern" in t.column_names and _dense_mask(t).any():
                raise _Diverged(f"chunk {k}: a dense row after the planned ones")
            self.tables[k] = t
        return t

    def _prepare(self) -> None:
        """The derivation's dense reference, from the dense rows of the first chunks (as consolidate does)."""
        dense_l, pos_l = [], []
        for k in range(self.dense_chunks):
            t = self._table(k)
            if "pattern" not in t.column_names:
                continue
            rows = np.flatnonzero(_dense_mask(t))
            dense_l.append(_dense_take(t, rows))
            pos_l.append(self.spans[k][0] + rows)
        self.derive.prepare(_dense_rows(dense_l, pos_l))
        self.prepared = True

    def _advance(self) -> None:
        if not self.prepared:
            if self.done < self.dense_chunks:
                return
            self._prepare()
        covered = self.spans[self.done - 1][1] if self.done else 0
        final = self.done == len(self.spans)
        while self.written < covered and (final or covered - self.written >= self.row_group):
            stop = min(self.written + self.row_group, covered)
            self._append(self.written, stop)
            self.written = stop

    def _append(self, a: int, b: int) -> None:
        parts = []
        for k, (s, e) in enumerate(self.spans):
            if e > a and s < b:
                lo, hi = max(a, s), min(b, e)
                parts.append(self._table(k).slice(lo - s, hi - lo))
        batch = self.derive.apply(pa.concat_tables(parts))
        if self.writer is None:
            self.writer = pq.ParquetWriter(self._fh, batch.schema, **TABLE_OPTIONS)
        self.writer.write_table(batch.cast(self.writer.schema), row_group_size=self.row_group)
        for k in [k for k in self.tables if self.spans[k][1] <= b]:
            del self.tables[k]  # fully appended: memory stays a few chunks

    def finish(self) -> Optional[int]:
        """Close the table (renamed into place); its row count, or None if the stream was abandoned."""
        if self._cm is not None and self.done == len(self.spans) and self.writer is not None:
            try:
                self.writer.close()
            except BaseException:
                self.abort()  # the temporary file goes now, not at the next run's clean-up
                raise
            cm, self._cm = self._cm, None
            cm.__exit__(None, None, None)
            (self.out / TABLE).chmod(0o644)
            return self.written
        self.abort()
        return None

    def abort(self) -> None:
        """Abandon the stream: the temporary file goes, ``points.parquet`` is left as it was."""
        if self._cm is None:
            return
        cm, self._cm = self._cm, None
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        with contextlib.suppress(BaseException):
            cm.__exit__(_Diverged, _Diverged("abandoned"), None)
