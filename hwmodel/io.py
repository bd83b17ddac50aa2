"""Small file helpers shared by every package: atomic writes, nothing half-written.

A writer works in a temporary file beside its target, named ``.<target>.<pid>-<random>.tmp``,
and renames it over the target when done. A writer killed outright (SIGKILL, power loss)
cannot remove its temporary file; the next write to the same target does, once the process
that made it is gone (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator, Optional

from hwmodel.errors import NmlabError

#: A temporary file without a pid in its name (written before pids were recorded) is stale
#: once it is this old (seconds).
STALE_UNNAMED_S = 600.0


def _umask() -> int:
    """The process umask (reading it means setting it: restored at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def temp_prefix(name: str) -> str:
    """Prefix of this process's temporary files for target ``name``: ``.<name>.<pid>-``."""
    return f".{name}.{os.getpid()}-"


def remove_stale_temps(folder: str | os.PathLike, name: str, suffixes: tuple[str, ...] = (".tmp",)) -> list[Path]:
    """Remove temporary files (or folders) of target ``name`` in ``folder`` left by dead writers.

    A temporary whose pid is still running is another writer at work and is kept; one
    without a pid in its name is removed once older than :data:`STALE_UNNAMED_S`.
    Returns what was removed.
    """
    folder = Path(folder)
    removed = []
    head = f".{name}."
    for suffix in suffixes:
        for p in folder.glob(glob.escape(head) + "*" + glob.escape(suffix)):
            middle = p.name[len(head):-len(suffix)]
            m = re.fullmatch(r"(\d+)-.+", middle)
            try:
                if m:
                    pid = int(m.group(1))
                    if pid == os.getpid() or _alive(pid):
                        continue  # a writer at work (this process's own included)
                elif time.time() - p.lstat().st_mtime < STALE_UNNAMED_S:
                    continue
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass  # another run cleaned it meanwhile
            except OSError:
                pass  # not ours to remove (permissions): leave it
    return removed


def replace_refusal(path: Path) -> Optional[str]:
    """Why a new file must not be renamed over ``path`` (the rename would replace a folder's name or
    a device such as /dev/null with a regular file), or None where it may."""
    if os.path.lexists(path) and not (path.is_file() or path.is_symlink()):
        return "is a directory" if path.is_dir() else "exists and is not a regular file"
    return None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", durable: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched, so a
    reader never sees a half-written file (the rename is atomic on POSIX). Temporary files
    a killed writer left for ``path`` are removed first. ``durable``: flush the data to disk
    before the rename (survives an OS crash, not only a killed process); False for files
    that are rebuilt when found unreadable.
    """
    path = Path(path)
    # Refused here too, for writers whose caller did not run limits.check_output_file first.
    why = replace_refusal(path)
    if why:
        raise NmlabError(f"{path}: {why}")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600; give it what open() would
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def data_path(*parts: str) -> Path:
    """Path of a file bundled under ``hwmodel/data``."""
    return Path(__file__).resolve().parent.joinpath("data", *parts)


def yaml_safe_load(text: str):
    """``yaml.safe_load(text)`` with libyaml's parser when PyYAML has it: the same safe
    constructor and values, parsed about 10x faster (GPU specs and the GPU model's parameters
    are read by every sweep process)."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
