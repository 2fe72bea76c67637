"""What a training run's result depends on besides its config: the code and the data.

A run is reused (``saca-lab reproduce``) or resumed (``saca-lab train --resume``) only when
these match (see :mod:`saca_lab.training.resume` and :mod:`saca_lab.reproduce.context`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

#: The package whose sources are part of a run's key.
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def source_hash(root: str | Path | None = None) -> str:
    """SHA-256 of every ``.py`` file under the ``saca_lab`` package (paths and contents).

    The package version never changes between fixes, and the git commit misses uncommitted
    edits, so the key hashes the files themselves.
    """
    root = Path(root) if root is not None else PACKAGE_DIR
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def dataset_checksum(spec) -> str:
    """Checksum of the manifest's file checksums of the dataset a config names (simulated first
    if it is a preset that is not there yet, as training would)."""
    from saca_lab.datasets.datamodules import resolve_dataset

    ds = resolve_dataset(spec)  # the data root run_experiment resolves it under
    return hashlib.sha256(json.dumps(ds.manifest["sha256"], sort_keys=True).encode()).hexdigest()
