"""From raw spectra to model inputs: shot reduction, then airPLS, min-max and the input layout
as one scikit-learn :class:`~sklearn.pipeline.Pipeline` of the package's transformers
(:func:`feature_pipeline`).

The same :class:`FeatureSpec` turns a stored dataset into training arrays and a raw measured
spectrum into a prediction input, so training and inference cannot drift apart. Features of a
whole dataset are cached next to it (keyed by the dataset checksum and the spec), so sweeps and
repeated runs preprocess once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from saca_lab.config import DEFAULTS
from saca_lab.data.store import Dataset
from saca_lab.errors import InputError
from saca_lab.io import atomic_path
from saca_lab.models.registry import INPUT_KINDS
from saca_lab.preprocessing import (
    AirPLS,
    LineWindows,
    MinMaxPerSpectrum,
    To2D,
    average_shots,
)

CHUNK_SPECTRA = 2048


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that turns raw spectra into a model input."""

    input_kind: str
    airpls: dict | None = field(
        default_factory=lambda: dict(DEFAULTS["data"]["preprocessing"]["airpls"]))
    minmax: bool = DEFAULTS["data"]["preprocessing"]["minmax"]
    lines: tuple[float, ...] | None = None
    half_width: int = DEFAULTS["data"]["half_width"]
    image_shape: tuple[int, int] = (125, 131)

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise InputError(f"unknown input kind {self.input_kind!r}; expected one of {list(INPUT_KINDS)}")

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
    return feature_pipeline(spec, wavelengths).fit_transform(x).astype(np.float32)


def feature_pipeline(spec: FeatureSpec, wavelengths: np.ndarray) -> Pipeline:
    """The scikit-learn pipeline of ``spec``: airPLS, per-spectrum min-max, then the layout.

    Its steps are the transformers of :mod:`saca_lab.preprocessing` (``airpls``:
    :class:`~saca_lab.preprocessing.AirPLS`, ``minmax``:
    :class:`~saca_lab.preprocessing.MinMaxPerSpectrum`, then ``windows``:
    :class:`~saca_lab.preprocessing.LineWindows` for ``lines_1d`` or ``image``:
    :class:`~saca_lab.preprocessing.To2D` for ``image_2d``), each present only when the spec
    asks for it. Every step treats each spectrum on its own and learns from the data at most
    its number of points, so ``fit_transform`` on any batch gives the same rows.

    Parameters
    ----------
    spec : FeatureSpec
        What to apply.
    wavelengths : ndarray of shape (n_points,)
        The spectra's grid (nm); ``lines_1d`` windows are placed on it.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; a single ``passthrough`` step when the spec asks for nothing.
    """
    steps: list[tuple[str, object]] = []
    if spec.airpls:
        steps.append(("airpls", AirPLS(**spec.airpls)))
    if spec.minmax:
        steps.append(("minmax", MinMaxPerSpectrum()))
    if spec.input_kind == "lines_1d":
        steps.append(("windows", LineWindows(wavelengths=wavelengths, lines=spec.lines,
                                             half_width=spec.half_width)))
    elif spec.input_kind == "image_2d":
        steps.append(("image", To2D(shape=spec.image_shape)))
    return Pipeline(steps or [("identity", "passthrough")])


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
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    except OSError:
        pass  # a read-only dataset is still usable; it just is not cached
