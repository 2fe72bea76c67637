"""``saca-lab predict``: raw spectra in any readable format -> a CSV of predicted mass %.

A model that predicts a standard deviation (GLL) adds a ``<target>_std`` column after each
target's column. With ``interval`` (``--interval 0.9``), ``<target>_lo`` / ``<target>_hi``
follow: the split-conformal interval from the calibration scores stored with the run
(:mod:`saca_lab.training.conformal`); only those numbers are read.
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


def predict_to_csv(model: str, input_path: str, out: str | os.PathLike,
                   interval: float | None = None) -> Path:
    """Predict every sample of ``input_path`` into the CSV ``out``; ``interval`` (a level in
    (0, 1)) adds ``<target>_lo`` / ``<target>_hi`` (InputError if the run stored no scores)."""
    from saca_lab.tracking import resolve_checkpoint, run_id_of
    from saca_lab.training.predictor import Predictor

    record, precision = None, "auto"
    if interval is not None:
        from saca_lab.training.conformal import (
            conformal_quantile,
            load_calibration,
            warn_if_unbounded,
            with_bounds,
        )

        conformal_quantile([], interval)  # the level is checked before anything is read
        # one run for the scores and the weights, even if experiment:NAME gains a newer run
        model = run_id_of(model) or model
        record = load_calibration(model)
        warn_if_unbounded(record, interval)
        # the scores were computed in fp32 (the test pass); the predictions they widen are too
        precision = "32-true"
    predictor = Predictor(resolve_checkpoint(model), precision=precision)
    wl, x, ids = _load_input(input_path)
    pred = predictor.predict_table(wl, x)
    columns = list(predictor.columns)
    if record is not None:
        pred, columns = with_bounds(pred, columns, predictor.target_names, record, interval)
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sample_id", *columns])
        for sid, row in zip(ids, pred, strict=True):
            w.writerow([sid, *(f"{v:.6g}" for v in row)])
    return Path(out)

