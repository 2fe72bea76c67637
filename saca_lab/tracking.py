"""MLflow defaults and helpers: where runs go, and what every run logs besides metrics.

Runs go to ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts`` unless
``MLFLOW_TRACKING_URI`` points elsewhere (a team server works unchanged).
"""

from __future__ import annotations

import os
import subprocess
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


def client():
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow.MlflowClient(tracking_uri())


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
