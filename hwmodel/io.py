"""Small file helpers shared by every package: atomic writes, nothing half-written; folder locks.

A writer works in a temporary file beside its target, named ``.<target>.<pid>-<random>.tmp``,
and renames it over the target when done. A writer killed outright (SIGKILL, power loss)
cannot remove its temporary file; the next write to the same target does, once the process
that made it is gone (:func:`remove_stale_temps`).

A command that owns a folder while it runs (``nmlab sweep``, ``nmlab campaign``) holds an
exclusive ``flock`` on a lock file in it (:func:`exclusive_lock`); a second one is refused,
naming the holder (:class:`FolderLock`). The OS drops the lock when the holder ends, however
it ends (exit, Ctrl-C, a crash, SIGKILL): the lock file stays and is never a stale lock.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import stat
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


# ----------------------------------------------------------------------------- folder locks
#: At most this much of a lock file is read back for :func:`lock_holder`.
LOCK_RECORD_BYTES = 512

#: Descriptors of the locks this process holds (see :func:`_drop_locks_in_child`).
_held_locks: set[int] = set()


def _drop_locks_in_child() -> None:
    """In a process forked while locks are held (a sweep's pool workers): point the copied
    descriptors at /dev/null. A flock belongs to the open file, shared by every copy of its
    descriptor, so a worker left running after its parent was killed outright would otherwise
    keep the folder locked. The descriptor numbers stay taken (the parent's file objects, copied
    too, may still close them)."""
    if not _held_locks:
        return
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        for fd in _held_locks:
            os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)
    _held_locks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_locks_in_child)


def _open_lock(path: Path):
    """The lock file opened for reading and appending (made where missing); one NmlabError line
    where it cannot be: a folder, a FIFO, a device or a symbolic link by that name (a link would
    have the holder's record written over whatever file it points to), no permission."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise NmlabError(f"{path}: cannot use it as a lock file ({exc.strerror})") from None
    else:
        if not stat.S_ISREG(st.st_mode):
            # no lock file: open() fails on a folder; a FIFO or device holds no record
            why = ("is a directory" if stat.S_ISDIR(st.st_mode) else
                   "is a symbolic link" if stat.S_ISLNK(st.st_mode) else "exists and is not a regular file")
            raise NmlabError(f"{path}: {why}; the lock file of its folder must be a regular file")
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise NmlabError(f"{path}: cannot open the lock file ({exc.strerror})") from None
    return os.fdopen(fd, "a+", encoding="utf-8")


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, blocking: bool, record: Optional[str] = None) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (made, with its folder, where missing) for the
    ``with`` block; yields False, holding nothing, when ``blocking`` is off and another open of
    the file (another process, or another open here) holds it.

    The OS releases it when this process ends in any way; processes forked meanwhile do not hold
    it. ``record`` (e.g. ``"nmlab sweep"``): written to the file while held, with this process's
    pid, host and start time, for :func:`lock_holder`; emptied again on release. The file itself
    is never removed (removing it would let a second process lock a new file of the same name
    while a third still holds the old one).
    """
    import fcntl  # POSIX only: imported where a lock is taken, not with every file helper

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open_lock(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        owner = os.getpid()
        _held_locks.add(fh.fileno())
        try:
            if record is not None:
                since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                fh.truncate(0)
                fh.write(f"{record} (pid {owner} on {socket.gethostname()}, since {since})\n")
                fh.flush()
            yield True
        finally:
            _held_locks.discard(fh.fileno())
            if os.getpid() == owner:  # not in a forked child unwinding the parent's frames
                if record is not None:
                    with contextlib.suppress(OSError):
                        fh.truncate(0)
                fcntl.flock(fh, fcntl.LOCK_UN)


def is_locked(path: str | os.PathLike) -> bool:
    """True while another process (or another open of it here) holds the flock on ``path``;
    a missing ``path`` is not locked and is not made."""
    path = Path(path)
    if not path.exists():
        return False
    with exclusive_lock(path, blocking=False) as mine:
        return not mine


def lock_holder(path: str | os.PathLike) -> str:
    """What holds the lock on ``path`` as its holder recorded it (``nmlab sweep (pid 1234 on
    HOST, since 2026-01-01T00:00:00Z)``), or "" where nothing is recorded or readable."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(LOCK_RECORD_BYTES)
    except OSError:
        return ""
    line = (head.decode("utf-8", errors="replace").splitlines() or [""])[0]
    return "".join(c for c in line if c.isprintable()).strip()


class FolderLock:
    """The lock of a folder a command owns while it runs (``nmlab sweep --out DIR`` holds
    ``DIR/sweep.lock``, ``nmlab campaign --out DIR`` ``DIR/campaign.lock``), with the one refusal
    both give: ``--out: DIR is in use by another nmlab sweep (pid 1234 on HOST, since
    2026-01-01T00:00:00Z); wait for it to end, or use another --out`` (only the command, where
    the holder has not recorded itself yet).

    :meth:`refuse_if_held` looks without taking (before slow start-up work: planning, joining
    Ray); :meth:`hold` takes it for a ``with`` block, recording this process as its holder, and
    refuses where another process took it in between.
    """

    def __init__(self, folder: str | os.PathLike, name: str, command: str, option: str = "--out"):
        self.folder = Path(folder)
        self.path = self.folder / name
        self.command = command
        self.option = option

    def refusal(self) -> NmlabError:
        """The error naming the folder and its holder as the holder recorded itself."""
        holder = lock_holder(self.path)
        if not holder.startswith(f"{self.command} ("):
            holder = self.command
        return NmlabError(f"{self.option}: {self.folder} is in use by another {holder}; "
                          f"wait for it to end, or use another {self.option}")

    def refuse_if_held(self) -> None:
        """Raise :meth:`refusal` while another process holds the lock; makes nothing."""
        if is_locked(self.path):
            raise self.refusal()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock (the folder made where missing) for the ``with`` block, recorded as
        ``command (pid, host, since)``; raise :meth:`refusal` where another process holds it."""
        with exclusive_lock(self.path, blocking=False, record=self.command) as mine:
            if not mine:
                raise self.refusal()
            yield


# Resolved once: resolving walks every folder of the path (an lstat each), and simulate()
# looks bundled names up on every call.
_DATA = Path(__file__).resolve().parent / "data"


def data_path(*parts: str) -> Path:
    """Path of a file bundled under ``hwmodel/data``."""
    return _DATA.joinpath(*parts)


def yaml_safe_load(text: str):
    """``yaml.safe_load(text)`` with libyaml's parser when PyYAML has it: the same safe
    constructor and values, parsed about 10x faster for a GPU spec and 7-9x for the GPU model's
    parameters, which every sweep process reads (benchmarks/bench_model_ops.py, item 3)."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
