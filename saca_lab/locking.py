"""Inter-process file locks: two ``saca-lab`` processes on one data root or one MLflow store.

:func:`file_lock` holds an exclusive lock on a small lock file for the duration of a ``with``
block. A second process asking for the same lock waits (and says so once on stderr), then finds
whatever the first one made, e.g. a finished dataset, and reuses it.

Guarantees and limits
---------------------
- POSIX: ``fcntl.flock`` on the lock file. The kernel drops the lock when its holder exits,
  killed or not, so a crash never leaves a stale lock behind (the lock file itself stays: it
  is empty and harmless).
- Windows: ``msvcrt.locking`` on the lock file's first byte, with the same release on exit.
- ``flock`` works between processes on one machine. On NFS it depends on the client (Linux
  maps it to NFS byte-range locks since 2.6.12; older clients and some servers lock only
  locally), so two machines sharing a data folder over NFS are not guaranteed to exclude each
  other; use one machine per data root, or a server-backed MLflow store.
- The lock is not re-entrant: a process that takes the same lock twice (two open file
  descriptions) waits for itself. Callers take each lock in one place only.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


def _try_lock(f) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt

    try:
        msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _lock(f) -> None:
    if fcntl is not None:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        return
    while not _try_lock(f):  # msvcrt's blocking mode gives up after 10 s; this never does
        time.sleep(0.5)


def _unlock(f) -> None:
    if fcntl is not None:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return
    import msvcrt

    f.seek(0)
    msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)


@contextmanager
def file_lock(path: str | os.PathLike, waiting: str | None = None) -> Iterator[Path]:
    """Hold an exclusive inter-process lock on ``path`` (created if missing) inside the block.

    Parameters
    ----------
    path : path
        The lock file; its folder is created.
    waiting : str, optional
        Printed to stderr (once) when another process holds the lock, so a user sees why
        nothing moves, e.g. ``"another process is generating data/slag"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        if not _try_lock(f):
            if waiting:
                print(f"waiting: {waiting} (lock {path})", file=sys.stderr, flush=True)
            _lock(f)
        try:
            yield path
        finally:
            _unlock(f)
