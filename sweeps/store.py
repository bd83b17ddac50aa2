"""Where sweep rows live on disk: append-only part files, then one consolidated table.

``DIR/parts/part-<hash>.parquet`` holds the rows of one finished chunk. Each is written to a
temporary file and renamed (atomic on POSIX), so after a kill at any moment a part is either
complete or absent. ``DIR/points.parquet`` is rebuilt from the parts (deduplicated by point
id, restricted to the current grid, in grid order) and also written atomically.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hwmodel.io import atomic_write

PARTS = "parts"
TABLE = "points.parquet"


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


def done_ids(out: Path) -> set[str]:
    """Point ids already stored in readable part files (unreadable ones are set aside)."""
    ids: set[str] = set()
    for part in list_parts(out):
        try:
            ids.update(pq.read_table(part, columns=["point_id"]).column("point_id").to_pylist())
        except (pa.ArrowInvalid, OSError, KeyError) as exc:
            # Cannot happen with atomic renames, but a damaged disk must not stop a resume.
            print(f"nmlab sweep: warning: setting aside unreadable {part.name} ({exc})", file=sys.stderr)
            part.rename(part.with_suffix(".bad"))
    return ids


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
    with atomic_write(path) as fh:
        pq.write_table(_normalize(rows), fh)
    return path


def _unified_schema(parts: list[Path]) -> Optional[pa.Schema]:
    schemas = [pq.read_schema(p) for p in parts]
    if not schemas:
        return None
    schema = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    # Columns appear in the order the first part has them, then any new ones.
    return schema


def consolidate(out: Path, order: dict[str, int], extra_columns: Optional[Any] = None) -> pa.Table:
    """Build the grid's table from the parts: rows whose id is in ``order``, each once, in grid order.

    ``extra_columns(table) -> table`` adds derived columns (return join, dense reference).
    Writes ``DIR/points.parquet`` atomically and returns the table.
    """
    parts = list_parts(out)
    schema = _unified_schema(parts)
    tables = []
    seen: set[str] = set()
    for part in parts:
        t = pq.read_table(part)
        t = t.select([n for n in schema.names if n in t.column_names])
        for name in schema.names:
            if name not in t.column_names:
                t = t.append_column(pa.field(name, schema.field(name).type), pa.nulls(len(t), schema.field(name).type))
        t = t.select(schema.names).cast(schema)
        ids = t.column("point_id").to_pylist()
        keep = []
        for i, pid in enumerate(ids):
            if pid in order and pid not in seen:
                seen.add(pid)
                keep.append(i)
        if keep:
            tables.append(t.take(pa.array(keep, type=pa.int64())))
    table = pa.concat_tables(tables) if tables else pa.table({"point_id": pa.array([], pa.string())})
    idx = pa.array([order[p] for p in table.column("point_id").to_pylist()], type=pa.int64())
    table = table.take(pc.sort_indices(idx))
    if extra_columns is not None:
        table = extra_columns(table)
    with atomic_write(out / TABLE) as fh:
        pq.write_table(table, fh)
    (out / TABLE).chmod(0o644)  # atomic_write's temporary file is private; the table is for sharing
    return table


def read_table(out: Path, columns: Optional[Iterable[str]] = None) -> pa.Table:
    return pq.read_table(out / TABLE, columns=list(columns) if columns else None)


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Row dicts (from a point -> row evaluator) as one Arrow table, schemas normalised like the parts."""
    return _normalize(rows)
