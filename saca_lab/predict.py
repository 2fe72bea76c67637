"""``saca-lab predict``: raw spectra in any readable format -> a CSV of predicted mass %.

A model that predicts a standard deviation (GLL) adds a ``<target>_std`` column after each
target's column.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from saca_lab.io import atomic_path


def _load_input(path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(wavelengths, spectra (n, points), ids): shots are averaged per sample."""
    from saca_lab.data.store import is_dataset, open_dataset

    if is_dataset(path):
        ds = open_dataset(path)
        return ds.wavelengths, np.asarray(ds.spectra, dtype=np.float64).mean(axis=1), ds.sample_ids
    from saca_lab.data.readers import read_any

    table = read_any([path])
    return table.wavelengths, table.spectra.astype(np.float64).mean(axis=1), table.sample_ids


def predict_to_csv(model: str, input_path: str, out: str | os.PathLike) -> Path:
    from saca_lab.training.predictor import Predictor
    from saca_lab.training.run import resolve_checkpoint

    predictor = Predictor(resolve_checkpoint(model))
    wl, x, ids = _load_input(input_path)
    pred = predictor.predict_table(wl, x)
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sample_id", *predictor.columns])
        for sid, row in zip(ids, pred, strict=True):
            w.writerow([sid, *(f"{v:.6g}" for v in row)])
    return Path(out)
