"""Where a study lives: an embedded SQLite file by default, PostgreSQL to share it across machines.

Both are Optuna ``RDBStorage``\\s, so both have heartbeats: a worker that dies mid-trial stops
beating, and after the grace period the next worker to start a trial fails the stale one and
queues it again (``RetryHeartbeatStaleTrialCallback``). Optuna's journal file has no
heartbeats, so it is not offered. optuna-dashboard opens the same URL.

SQLite gets WAL journaling and a long lock timeout so that several worker processes on one
machine can share the file. The budget lock (:class:`BudgetLock`) makes "is there a trial left
to start? then start it" atomic across workers, so a study never runs more trials than its
budget and a grid point never runs twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import os
import sqlite3
import time
from pathlib import Path

from saca_lab.errors import InputError

DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
#: Seconds a SQLite connection waits for a lock held by another worker before failing.
SQLITE_TIMEOUT = 600
#: Tries to open a storage (or the MLflow store) that another worker is creating right now.
ATTEMPTS = 4
_DRIVERS = {"postgresql": "psycopg", "postgresql+psycopg2": "psycopg2", "postgresql+psycopg": "psycopg",
            "sqlite": "sqlite3"}


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def check_url(url: str, where: str = "--storage") -> str:
    """Validate a storage URL: ``sqlite:///PATH`` or ``postgresql://USER@HOST:PORT/DB``.

    A bare ``postgresql://`` gets the installed driver spelled out (psycopg 3, else psycopg2):
    SQLAlchemy's default for it changed from psycopg2 to psycopg in 2.1. Returns the URL to use.

    Raises
    ------
    InputError
        Naming ``where`` and the URL (password hidden) when it cannot be parsed, names another
        database, has no file or database, or its driver is not installed.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not isinstance(url, str):
        raise InputError(f"{where}: expected a URL string, got {url!r}")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(f"{where} {url!r}: not a database URL; expected sqlite:///PATH or "
                         f"postgresql://USER:PASSWORD@HOST:PORT/DATABASE") from None
    shown = redact(url)
    if parsed.drivername not in _DRIVERS:
        raise InputError(f"{where} {shown!r}: unsupported database {parsed.drivername!r}; expected "
                         f"{', '.join(sorted(_DRIVERS))}")
    if not parsed.database or parsed.database == ":memory:":
        raise InputError(f"{where} {shown!r}: names no "
                         f"{'file' if parsed.drivername == 'sqlite' else 'database'}")
    if parsed.drivername.startswith("postgresql") and not parsed.host:
        raise InputError(f"{where} {shown!r}: names no host")
    if parsed.drivername == "postgresql":
        driver = next((m for m in ("psycopg", "psycopg2") if _importable(m)), "psycopg")
        parsed = parsed.set(drivername=f"postgresql+{driver}")
        url = parsed.render_as_string(hide_password=False)
    module = _DRIVERS[parsed.drivername]
    if not _importable(module):
        raise InputError(f"{where} {shown!r}: the {module} driver is not installed "
                         f"(pip install '{'psycopg[binary]' if module == 'psycopg' else module + '-binary'}')")
    return url


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs, MLflow tags and reports)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could find
        return url


def _sqlite_file(url: str) -> Path:
    from sqlalchemy.engine import make_url

    return Path(make_url(url).database)


def retry_callback(max_retry: int):
    import optuna

    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) \
        or optuna.storages.RetryFailedTrialCallback  # Optuna < 4.9
    return cls(max_retry=max_retry)


def open_storage(url: str, heartbeat: dict[str, int]):
    """An ``optuna.storages.RDBStorage`` with heartbeats and retry of dead workers' trials.

    Parameters
    ----------
    url : str
        Checked with :func:`check_url`.
    heartbeat : dict
        ``interval`` and ``grace`` (seconds), ``max_retry`` (times one trial is requeued).
    """
    import optuna

    url = check_url(url)
    kwargs = {"heartbeat_interval": int(heartbeat["interval"]), "grace_period": int(heartbeat["grace"])}
    callback = retry_callback(int(heartbeat["max_retry"]))
    names = inspect.signature(optuna.storages.RDBStorage).parameters
    kwargs["heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in names
           else "failed_trial_callback"] = callback
    if not url.startswith("sqlite"):
        return _rdb(url, {"pool_pre_ping": True}, kwargs)
    path = _sqlite_file(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Workers started together on a new file would race to switch it to WAL and create tables.
    with open(f"{path}.init.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_TIMEOUT)) as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")  # persistent: readers stop blocking the writer
        return _rdb(url, {"connect_args": {"timeout": SQLITE_TIMEOUT}}, kwargs)


def _rdb(url: str, engine_kwargs: dict, kwargs: dict):
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except SQLAlchemyError as e:
            # Workers started together on a new database race to create its tables; the loser
            # fails on the schema version row and finds the tables complete on the next try.
            if attempt + 1 == ATTEMPTS:
                raise InputError(f"--storage {redact(url)!r}: cannot open: "
                                 f"{getattr(e, 'orig', None) or e}".splitlines()[0]) from None
            time.sleep(1.0 + attempt)


class BudgetLock:
    """A lock shared by every worker of one study, held from "is a trial left?" until the
    trial has been claimed (``study.ask``): a file lock beside a SQLite database, a
    PostgreSQL advisory lock otherwise. ``release`` is idempotent.
    """

    def __init__(self, storage, url: str, study_name: str) -> None:
        self._storage, self._url = storage, url
        self._key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big",
                                   signed=True)
        self._handle = None

    def acquire(self) -> None:
        if self._handle is not None:
            return
        if self._url.startswith("sqlite"):
            path = _sqlite_file(self._url)
            handle = open(f"{path}.{self._key & 0xFFFFFFFF:08x}.lock", "a")
            fcntl.flock(handle, fcntl.LOCK_EX)
        else:
            from sqlalchemy import text

            handle = self._storage.engine.connect()
            handle.detach()  # closed, not pooled, on release: a lost unlock cannot leak the lock
            handle.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        self._handle = handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        if self._url.startswith("sqlite"):
            fcntl.flock(handle, fcntl.LOCK_UN)
        else:
            from sqlalchemy import text

            with contextlib.suppress(Exception):  # a dropped connection frees the lock anyway
                handle.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        handle.close()

    def __enter__(self) -> BudgetLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def worker_id() -> str:
    """``host:pid`` of this process, recorded on every trial it runs."""
    return f"{os.uname().nodename}:{os.getpid()}"


def init_tracking() -> None:
    """Open the MLflow store once, before any trial: with a SQLite store under a file lock,
    and retried, as workers started together on a new store race to create its tables."""
    from saca_lab import tracking

    tracking.open_store()
