"""From raw spectra to model inputs: shot reduction, airPLS, min-max, and the input layout.

The same :class:`FeatureSpec` turns a stored dataset into training arrays and a raw measured
spectrum into a prediction input, so training and inference cannot drift apart. Features of a
whole dataset are cached next to it (keyed by the dataset checksum and the spec), so sweeps and
repeated runs preprocess once.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from saca_lab.data.store import Dataset
from saca_lab.errors import InputError
from saca_lab.preprocessing import (
    LineWindows,
    To2D,
    airpls_batch,
    average_shots,
    minmax_per_spectrum,
)

INPUT_KINDS = ("spectrum_1d", "lines_1d", "image_2d")
CHUNK_SPECTRA = 2048


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that turns raw spectra into a model input."""

    input_kind: str
    airpls: dict | None = field(default_factory=lambda: {"lam": 1e4, "max_iter": 50})
    minmax: bool = True
    lines: tuple[float, ...] | None = None
    half_width: int = 5
    image_shape: tuple[int, int] = (125, 131)

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise InputError(f"unknown input kind {self.input_kind!r}; expected {INPUT_KINDS}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        d = dict(d)
        if d.get("lines") is not None:
            d["lines"] = tuple(d["lines"])
        d["image_shape"] = tuple(d.get("image_shape", (125, 131)))
        return cls(**d)


def transform_spectra(raw: np.ndarray, wavelengths: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Raw spectra (n, points) on ``wavelengths`` -> float32 model inputs."""
    x = np.asarray(raw, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != wavelengths.size:
        raise InputError(f"spectra of shape {x.shape} do not match a grid of {wavelengths.size} points")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise InputError(f"spectrum {bad} contains NaN or inf")
    if spec.airpls:
        x = x - airpls_batch(x, **spec.airpls)
    if spec.minmax:
        x = minmax_per_spectrum(x)
    if spec.input_kind == "lines_1d":
        windows = LineWindows(wavelengths=wavelengths, lines=spec.lines, half_width=spec.half_width)
        x = windows.fit_transform(x)
    elif spec.input_kind == "image_2d":
        x = To2D(shape=spec.image_shape).fit_transform(x)
    return x.astype(np.float32)


def reduce_shots(spectra: np.ndarray, shots: str | int) -> np.ndarray:
    """(samples, shots, points) -> (samples, items, points) per the ``data.shots`` setting."""
    if shots == "average":
        return average_shots(spectra)[:, None, :]
    if shots == "each":
        return np.asarray(spectra)
    if int(shots) > spectra.shape[1]:
        raise InputError(f"data.shots={shots} but the dataset has {spectra.shape[1]} shots per sample")
    return average_shots(spectra, n_average=int(shots))


def _cache_path(ds: Dataset, spec: FeatureSpec, shots) -> Path:
    key = json.dumps({"data": ds.manifest["sha256"]["spectra.npy"], "spec": spec.to_dict(),
                      "shots": shots}, sort_keys=True)
    return ds.path / "features" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"


def dataset_features(ds: Dataset, spec: FeatureSpec, shots: str | int = "average",
                     cache: bool = True) -> np.ndarray:
    """Features of every sample: (samples, items per sample, *input shape), float32."""
    path = _cache_path(ds, spec, shots)
    if cache and path.is_file():
        return np.load(path, mmap_mode="r")
    n = ds.shape[0]
    per_chunk = max(1, CHUNK_SPECTRA // max(1, ds.shape[1]))
    parts = []
    for start in range(0, n, per_chunk):
        block = reduce_shots(np.asarray(ds.spectra[start:start + per_chunk], dtype=np.float64), shots)
        k, m, p = block.shape
        feats = transform_spectra(block.reshape(k * m, p), ds.wavelengths, spec)
        parts.append(feats.reshape(k, m, *feats.shape[1:]))
    out = np.concatenate(parts)
    if cache:
        _save_atomic(path, out)
    return out


def _save_atomic(path: Path, array: np.ndarray) -> None:
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only dataset is still usable; it just is not cached
