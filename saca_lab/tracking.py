"""MLflow defaults and helpers: where runs go, and what every run logs besides metrics.

Runs go to ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts`` unless
``MLFLOW_TRACKING_URI`` points elsewhere (a team server works unchanged).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_ARTIFACT_ROOT = Path("mlruns") / "artifacts"


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def artifact_location() -> str | None:
    """Artifact root for new experiments in the default local store (None: server decides)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    DEFAULT_ARTIFACT_ROOT.mkdir(parents=True, exist_ok=True)
    return DEFAULT_ARTIFACT_ROOT.resolve().as_uri()


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores and in-memory SQLite)."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return Path(database) if database and database != ":memory:" else None


#: Tries to open a store that another process is creating right now.
OPEN_ATTEMPTS = 4
_opened: set[str] = set()


def open_store(uri: str | None = None) -> None:
    """Open the MLflow store once per process, creating its tables if it is new.

    MLflow's SQLite store creates and migrates a new database without any lock (unlike its
    job and workspace stores), so two processes opening one new ``mlflow.db`` at once can fail
    on "table already exists" or a half-written schema version. Here the first open runs under
    a file lock beside the database (``mlflow.db.init.lock``) and is retried; once the tables
    exist, MLflow opens the file without migrating. Each MLflow session then waits up to 20 s
    for another process's write (MLflow sets SQLite's ``busy_timeout``), and SQLite's own
    locking keeps the file consistent.
    """
    import mlflow

    uri = uri or tracking_uri()
    if uri in _opened:
        return
    from saca_lab.locking import file_lock

    db = sqlite_file(uri)
    lock = nullcontext()
    # a store in a folder we cannot write (a read-only copy of someone's mlruns/) is read
    # without the lock: no process can be migrating it from here
    if db and os.access(os.path.dirname(os.path.abspath(db)), os.W_OK):
        lock = file_lock(f"{db}.init.lock", waiting=f"another process is creating {db}")
    with lock:
        for attempt in range(OPEN_ATTEMPTS):
            try:
                mlflow.MlflowClient(uri).search_experiments(max_results=1)
                break
            except Exception:  # MLflow wraps the database's errors in its own types
                if attempt + 1 == OPEN_ATTEMPTS:
                    raise
                time.sleep(1.0 + attempt)
    _opened.add(uri)


def client():
    import mlflow

    uri = tracking_uri()
    open_store(uri)
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def experiment_id(name: str, mlflow_client=None) -> str:
    """Id of the MLflow experiment ``name``, created if missing; safe when two processes
    create it at once (the loser of the race reads the winner's)."""
    from mlflow.exceptions import MlflowException

    c = mlflow_client or client()
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return c.create_experiment(name, artifact_location=artifact_location())
    except MlflowException:
        exp = c.get_experiment_by_name(name)
        if exp is None:  # not the race: a real error
            raise
        return exp.experiment_id


#: Longest parameter value a run logs: MLflow refuses values over its own limit (6000
#: characters in MLflow 3), and a resolved config can hold long lists (line windows).
PARAM_MAX_CHARS = 500


def param_value(value) -> str:
    """``value`` as an MLflow parameter: its text, cut to :data:`PARAM_MAX_CHARS`."""
    return str(value)[:PARAM_MAX_CHARS]


def log_params(run_id: str, params: Mapping, mlflow_client=None) -> None:
    """Log ``params`` on a run, each value cut by :func:`param_value`."""
    from mlflow.entities import Param

    c = mlflow_client or client()
    items = [Param(str(key), param_value(value)) for key, value in params.items()]
    for start in range(0, len(items), 100):  # MLflow's most params per log_batch
        c.log_batch(run_id, params=items[start:start + 100])


def start_run(experiment: str, run_name: str, *, tags: Mapping | None = None,
              params: Mapping | None = None, parent_run_id: str | None = None,
              mlflow_client=None) -> str:
    """Create a run in ``experiment`` (created if missing) and return its id.

    Runs are made through the client, never ``mlflow.start_run``, so nothing depends on a
    global active run: Lightning's logger opens and closes training runs in between. The run
    stays RUNNING until the caller ends it (``client.set_terminated``).

    Parameters
    ----------
    experiment, run_name : MLflow experiment name and run name.
    tags : set on the run.
    params : logged on the run (values cut by :func:`param_value`).
    parent_run_id : nests the run under this one (MLflow's ``mlflow.parentRunId`` tag).
    mlflow_client : the client to use (a new one by default).
    """
    c = mlflow_client or client()
    tags = {**({"mlflow.parentRunId": parent_run_id} if parent_run_id else {}), **(tags or {})}
    run = c.create_run(experiment_id(experiment, c), run_name=run_name, tags=tags)
    log_params(run.info.run_id, params or {}, c)
    return run.info.run_id


def latest_run(experiment: str) -> str:
    """Id of the newest finished run of an MLflow experiment.

    Raises
    ------
    InputError
        If the experiment has no finished run.
    """
    from saca_lab.errors import InputError

    c = client()
    exp = c.get_experiment_by_name(experiment)
    runs = c.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'",
                         order_by=["attributes.start_time DESC"], max_results=1) if exp else []
    if not runs:
        raise InputError(f"no finished run in MLflow experiment {experiment!r} "
                         f"({tracking_uri()}); train it first")
    return runs[0].info.run_id


#: Where a training run logs its final checkpoint, relative to the run's artifact root.
CHECKPOINT_ARTIFACT = "checkpoints/model.ckpt"


def run_id_of(source: str | os.PathLike) -> str | None:
    """The MLflow run id a model source names: a run id as it is, ``runs:/RUN_ID[/...]``, or
    ``experiment:NAME`` (the newest finished run of that experiment); None for a file."""
    if Path(source).is_file():
        return None
    source = str(source)
    if source.startswith("experiment:"):
        return latest_run(source[len("experiment:"):])
    return source[len("runs:/"):].split("/")[0] if source.startswith("runs:/") else source


def resolve_checkpoint(source: str | os.PathLike) -> str:
    """A local checkpoint file from a path, an MLflow run id, ``runs:/RUN_ID`` or
    ``experiment:NAME`` (the newest finished run of that experiment); a run's checkpoint is
    downloaded.

    Raises
    ------
    InputError
        If ``source`` is neither a file nor a run of the tracking store.
    """
    if Path(source).is_file():
        return str(source)
    # after the file check: a checkpoint path needs no MLflow, whose import costs ~1-2 s
    import mlflow

    from saca_lab.errors import InputError

    source = str(source)
    run_id = run_id_of(source)
    try:
        client().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise InputError(f"{source!r} is neither a checkpoint file nor an MLflow run id "
                         f"in {tracking_uri()}") from None
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=CHECKPOINT_ARTIFACT,
                                               tracking_uri=tracking_uri())


def run_lock(key: str, waiting: str | None = None):
    """A file lock for "is there a finished run with this key? else run it", so that two
    processes needing the same run train it once: beside a SQLite store, else (a server) in
    the temporary folder, which serialises the processes of one machine only. ``waiting`` is
    printed when another process holds it."""
    from saca_lab.locking import file_lock

    uri = tracking_uri()
    db = sqlite_file(uri)
    folder = (db.parent / "locks" if db else
              Path(tempfile.gettempdir()) / "saca-lab-locks" / hashlib.sha256(uri.encode()).hexdigest()[:12])
    return file_lock(folder / f"run-{key}.lock", waiting=waiting or f"another process holds run {key}")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5,
                               cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
