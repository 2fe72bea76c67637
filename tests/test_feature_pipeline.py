"""Training inputs are built by a scikit-learn Pipeline of the package's own transformers, and
that pipeline gives the features the hand-written chain gave, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from saca_lab.data.store import Dataset, open_dataset
from saca_lab.datasets.features import FeatureSpec, dataset_features, feature_pipeline, reduce_shots
from saca_lab.preprocessing import AirPLS, LineWindows, MinMaxPerSpectrum, To2D, airpls_batch
from saca_lab.preprocessing.scaling import minmax_per_spectrum


def _reference(ds: Dataset, spec: FeatureSpec, shots) -> np.ndarray:
    """The chain ``transform_spectra`` ran before it was a Pipeline, written out."""
    block = reduce_shots(np.asarray(ds.spectra, dtype=np.float64), shots)
    k, m, p = block.shape
    x = block.reshape(k * m, p)
    if spec.airpls:
        x = x - airpls_batch(x, **spec.airpls)
    if spec.minmax:
        x = minmax_per_spectrum(x)
    if spec.input_kind == "lines_1d":
        x = LineWindows(wavelengths=ds.wavelengths, lines=spec.lines, half_width=spec.half_width).fit_transform(x)
    elif spec.input_kind == "image_2d":
        x = To2D(shape=spec.image_shape).fit_transform(x)
    x = x.astype(np.float32)
    return x.reshape(k, m, *x.shape[1:])


def _lines(ds: Dataset) -> tuple[float, ...]:
    wl = ds.wavelengths
    return tuple(float(v) for v in wl[[100, wl.size // 2, wl.size - 100]])


@pytest.fixture(scope="module", params=["slag", "stainless"])
def preset_data(request, tiny_slag, stainless_data):
    return tiny_slag if request.param == "slag" else open_dataset(stainless_data)


@pytest.mark.parametrize("kind", ["spectrum_1d", "lines_1d", "image_2d"])
@pytest.mark.parametrize(("airpls", "minmax"), [("default", True), ("default", False),
                                                (None, True), ({"lam": 1e3, "max_iter": 20}, True)])
@pytest.mark.parametrize("shots", ["average", "each"])
def test_pipeline_features_equal_the_hand_written_chain(preset_data, kind, airpls, minmax, shots):
    kw = {} if airpls == "default" else {"airpls": airpls}
    spec = FeatureSpec(input_kind=kind, minmax=minmax, lines=_lines(preset_data) if kind == "lines_1d" else None,
                       **kw)
    got = dataset_features(preset_data, spec, shots, cache=False)
    want = _reference(preset_data, spec, shots)
    assert got.dtype == want.dtype == np.float32
    assert got.shape == want.shape
    assert np.array_equal(got, want)


def test_the_pipeline_is_made_of_the_package_transformers():
    grid = np.linspace(200.0, 300.0, 500)
    spec = FeatureSpec(input_kind="lines_1d", lines=(250.0,), airpls={"lam": 1e3, "max_iter": 7})
    pipe = feature_pipeline(spec, grid)
    assert isinstance(pipe, Pipeline)
    assert [name for name, _ in pipe.steps] == ["airpls", "minmax", "windows"]
    airpls, minmax, windows = (step for _, step in pipe.steps)
    assert isinstance(airpls, AirPLS) and (airpls.lam, airpls.max_iter) == (1e3, 7)
    assert isinstance(minmax, MinMaxPerSpectrum) and isinstance(windows, LineWindows)
    assert windows.half_width == spec.half_width and windows.lines == (250.0,)
    image = feature_pipeline(FeatureSpec(input_kind="image_2d", airpls=None, minmax=False), grid)
    assert [type(s) for _, s in image.steps] == [To2D]
    bare = feature_pipeline(FeatureSpec(input_kind="spectrum_1d", airpls=None, minmax=False), grid)
    x = np.arange(10.0).reshape(2, 5)
    assert np.array_equal(bare.fit_transform(x), x)
