"""Tests of saca_lab.preprocessing: sklearn conformance, pybaselines equivalence, behaviour."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from saca_lab.preprocessing import (
    TRCSL_LINES,
    AirPLS,
    AirPLSWarning,
    LineWindows,
    MinMaxPerSpectrum,
    ShotAverager,
    To2D,
    airpls_batch,
    average_shots,
    minmax_per_spectrum,
    strongest_lines,
)
from saca_lab.preprocessing._airpls_kernel import (
    airpls_spectra,
    airpls_spectra_order2,
    difference_penalty_bands,
)

TRCSL_GRID = np.linspace(216.589, 942.568, 16375)


def synthetic_spectra(
    n_spectra: int, wavelengths: np.ndarray, seed: int = 0, noise: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """LIBS-like spectra: Gaussian lines on an arched continuum, plus noise.

    Returns the spectra and their true (noise-free) backgrounds.
    """
    rng = np.random.default_rng(seed)
    lo, hi = wavelengths[0], wavelengths[-1]
    span = hi - lo
    centres = rng.uniform(lo + 0.01 * span, hi - 0.01 * span, 150)
    step = np.median(np.diff(wavelengths))
    spectra, backgrounds = [], []
    for _ in range(n_spectra):
        amps = rng.lognormal(0.0, 1.2, centres.size)
        widths = rng.uniform(1.0, 3.0, centres.size) * step
        peaks = np.zeros_like(wavelengths)
        for c, a, w in zip(centres, amps, widths, strict=True):
            near = np.abs(wavelengths - c) < 6 * w
            peaks[near] += a * np.exp(-0.5 * ((wavelengths[near] - c) / w) ** 2)
        # the "arch" TrCSL sees in slag near 600-650 nm, on a broad continuum
        arch = 3.0 * np.exp(-0.5 * ((wavelengths - (lo + 0.56 * span)) / (0.08 * span)) ** 2)
        continuum = 1.0 + np.exp(-0.5 * ((wavelengths - (lo + 0.25 * span)) / (0.2 * span)) ** 2)
        background = 100 * (arch + continuum)
        spectra.append(background + 100 * (peaks + noise * rng.standard_normal(wavelengths.size)))
        backgrounds.append(background)
    return np.array(spectra), np.array(backgrounds)


# --- scikit-learn conformance -------------------------------------------------------------


def _expected_failures(estimator) -> dict[str, str]:
    if isinstance(estimator, AirPLS):
        # sklearn expects n_iter_ after fit from any estimator with a max_iter parameter;
        # AirPLS is stateless and iterates per spectrum inside transform, not in fit
        return {"check_transformer_n_iter": "stateless: iterations happen in transform"}
    return {}


@parametrize_with_checks(
    [
        MinMaxPerSpectrum(),
        AirPLS(),
        LineWindows(wavelengths=(400.0, 500.0), lines=[450.0], half_width=0),
        To2D(),
        ShotAverager(),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        # the checks feed airPLS spectra of one to five points, where it stops at once
        warnings.simplefilter("ignore", AirPLSWarning)
        check(estimator)


# --- airPLS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_points", "lam", "order"),
    [(16375, 1e4, 2), (700, 1e3, 2), (700, 1e2, 1), (333, 1e5, 3)],
)
def test_airpls_matches_pybaselines(n_points, lam, order):
    from pybaselines import Baseline

    grid = np.linspace(216.589, 942.568, n_points)
    spectra, _ = synthetic_spectra(3, grid, seed=n_points)
    default, other = Baseline(grid), Baseline(grid)
    other.banded_solver = 4  # pybaselines' alternative LAPACK path, to gauge round-off
    expected, alternative, expected_iter = [], [], []
    for y in spectra:
        base, params = default.airpls(y, lam=lam, diff_order=order, max_iter=50, tol=1e-3)
        expected.append(base)
        expected_iter.append(len(params["tol_history"]))
        alternative.append(other.airpls(y, lam=lam, diff_order=order)[0])
    expected, alternative = np.array(expected), np.array(alternative)
    got, n_iter = airpls_batch(spectra, lam, 50, 1e-3, order, return_n_iter=True)
    np.testing.assert_array_equal(n_iter, expected_iter)
    # as close to pybaselines as pybaselines' two solvers are to each other, or within 1e-7 of
    # the baseline scale: order 3 with lam 1e5 is ill-conditioned, and its round-off depends on
    # the CPU's BLAS kernels (measured 4e-8 on AVX2, 5.5e-8 on AVX-512/AMX, relative)
    scale = np.abs(expected).max()
    spread = np.abs(expected - alternative).max()
    assert np.abs(got - expected).max() <= max(10 * spread, 1e-7 * scale)


def test_airpls_3d_equals_2d_and_transformer():
    spectra, _ = synthetic_spectra(6, np.linspace(300, 700, 900), seed=1)
    flat = airpls_batch(spectra)
    stacked = airpls_batch(spectra.reshape(2, 3, -1))
    np.testing.assert_array_equal(stacked.reshape(6, -1), flat)
    corrected = AirPLS().fit_transform(spectra.reshape(2, 3, -1))
    np.testing.assert_allclose(corrected.reshape(6, -1), spectra - flat)
    baseline = AirPLS(return_baseline=True).fit_transform(spectra)
    np.testing.assert_array_equal(baseline, flat)


def test_airpls_threads_give_the_same_result():
    spectra, _ = synthetic_spectra(9, np.linspace(300, 700, 400), seed=4)  # 4+ per thread
    np.testing.assert_array_equal(airpls_batch(spectra, n_jobs=2), airpls_batch(spectra))


def test_airpls_flattens_arched_background():
    spectra, background = synthetic_spectra(2, TRCSL_GRID, seed=5, noise=0.0)
    corrected = AirPLS(lam=1e4, max_iter=50).fit_transform(spectra)
    peaks = spectra - background
    flat = peaks < 1e-3 * peaks.max()  # points away from every line
    residual = np.abs(corrected[flat]) / np.ptp(background)
    # what is left of the ~330-count background between the lines: measured 0.6% at the
    # 99th percentile and 3.5% at worst (in the wings of close strong lines)
    assert np.percentile(residual, 99) < 0.01
    assert residual.max() < 0.05
    # and the lines survive: their heights hardly change
    np.testing.assert_allclose(corrected.max(axis=1), peaks.max(axis=1), rtol=0.02)


def test_airpls_early_stop_warns():
    # two points and a second-order penalty: nothing to smooth, the fit equals the data and
    # no point lies below it, which is where pybaselines warns too
    with pytest.warns(AirPLSWarning):
        base = airpls_batch(np.array([[1.0, 3.0], [2.0, 2.0]]))
    np.testing.assert_array_equal(base, [[1.0, 3.0], [2.0, 2.0]])


@pytest.mark.parametrize("bad", [{"lam": 0}, {"max_iter": -1}, {"tol": -1.0}, {"order": 0}])
def test_airpls_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        AirPLS(**bad).fit(np.ones((2, 10)))
    with pytest.raises(ValueError, match="NaN"):
        airpls_batch(np.array([[1.0, np.nan, 2.0]]))


@pytest.mark.parametrize(("n_points", "order"), [(1000, 2), (61, 1), (500, 3), (3, 2)])
@pytest.mark.filterwarnings("ignore::saca_lab.preprocessing.AirPLSWarning")  # 3 points: none below
def test_airpls_first_solve_is_the_banded_solution(n_points, order):
    from scipy.linalg import solveh_banded

    # max_iter=0: one solve with all weights 1, i.e. (I + lam D'D) z = y
    y = np.random.default_rng(order).random((3, n_points))
    got = airpls_batch(y, lam=1e3, max_iter=0, order=order)
    lower = np.zeros((order + 1, n_points))
    bands = 1e3 * difference_penalty_bands(n_points, order)
    for t in range(order + 1):
        lower[t, : n_points - t] = bands[t, t:]
    lower[0] += 1.0
    for b in range(3):
        expected = solveh_banded(lower, y[b], lower=True)
        # round-off of two factorisations; order 3 is the worst conditioned (measured 2e-12)
        np.testing.assert_allclose(got[b], expected, rtol=0, atol=1e-10 * np.abs(expected).max())


@pytest.mark.parametrize("order", [1, 2, 3])
def test_airpls_batch_equals_one_spectrum_at_a_time(order):
    spectra, _ = synthetic_spectra(6, np.linspace(300, 700, 700), seed=3)
    # a flat and a steep one, so that the spectra stop after different numbers of solves
    spectra[1] = 50.0 + spectra[1] * 0.01
    spectra[4] *= 1 + np.linspace(0, 3, 700)
    batch, n_iter = airpls_batch(spectra, 1e3, 50, 1e-3, order, return_n_iter=True)
    assert len(set(n_iter.tolist())) > 1
    for y, base, it in zip(spectra, batch, n_iter, strict=True):
        one, one_iter = airpls_batch(y[None], 1e3, 50, 1e-3, order, return_n_iter=True)
        # the same arithmetic whatever the batch: bit-identical, same number of solves
        np.testing.assert_array_equal(one[0], base)
        assert one_iter[0] == it


def test_airpls_order2_kernel_equals_general_kernel():
    spectra, _ = synthetic_spectra(4, np.linspace(300, 700, 900), seed=6)
    bands = 1e4 * difference_penalty_bands(900, 2)
    y_l1 = np.abs(spectra).sum(axis=1)
    results = []
    for kernel in (airpls_spectra, airpls_spectra_order2):
        out, n_iter, early = np.empty_like(spectra), np.zeros(4, np.int64), np.zeros(4, bool)
        kernel(spectra, y_l1, bands, 50, 1e-3, out, n_iter, early)
        results.append((out, n_iter))
    np.testing.assert_array_equal(results[0][1], results[1][1])
    # they round differently (measured 5e-11 of the scale; pybaselines' two LAPACK paths
    # differ by as much), while a wrong recursion is off by far more
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=0,
                               atol=1e-9 * np.abs(results[0][0]).max())


# --- min-max -----------------------------------------------------------------------------


def test_minmax_rows_span_exactly_zero_to_one():
    spectra, _ = synthetic_spectra(4, np.linspace(300, 700, 500), seed=2)
    out = MinMaxPerSpectrum().fit_transform(spectra)
    assert np.all(out.min(axis=1) == 0.0)
    assert np.all(out.max(axis=1) == 1.0)
    assert np.all((out >= 0) & (out <= 1))
    np.testing.assert_array_equal(np.argmax(out, axis=1), np.argmax(spectra, axis=1))


def test_minmax_range_dtype_constant_rows_and_3d():
    X = np.array([[3.0, 3.0, 3.0], [1.0, 2.0, 5.0]], dtype=np.float32)
    out = MinMaxPerSpectrum(feature_range=(-1.0, 0.3)).fit_transform(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0], [-1.0, -1.0, -1.0])
    assert out[1].min() == np.float32(-1.0) and out[1].max() == np.float32(0.3)
    stack = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(
        MinMaxPerSpectrum().fit_transform(stack), np.tile([0, 1 / 3, 2 / 3, 1], (2, 3, 1))
    )
    with pytest.raises(ValueError, match="feature_range"):
        MinMaxPerSpectrum(feature_range=(1, 0)).fit(X)


@settings(max_examples=60, deadline=None, database=None)
@given(
    row=arrays(np.float64, st.integers(2, 40), elements=st.floats(-1e3, 1e3)),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-10, 10),
)
def test_minmax_invariant_to_positive_affine_maps(row, scale, shift):
    magnitude = np.abs(row).max()
    # rows flat to round-off have no well-defined scaling
    if np.ptp(row) <= 1e-6 * max(magnitude, 1.0):
        return
    moved = scale * row + shift * scale * max(magnitude, 1.0)
    np.testing.assert_allclose(
        minmax_per_spectrum(moved[None]), minmax_per_spectrum(row[None]), rtol=0, atol=1e-8
    )


# --- line windows ------------------------------------------------------------------------


def test_line_windows_pick_nearest_points():
    grid = np.linspace(400.0, 500.0, 1001)  # 0.1 nm steps
    X = np.tile(np.arange(1001.0), (2, 1))
    lw = LineWindows(wavelengths=grid, lines=[450.04, 401.0], half_width=5).fit(X)
    np.testing.assert_array_equal(lw.indices_, [np.arange(495, 506), np.arange(5, 16)])
    out = lw.transform(X)
    assert out.shape == (2, 22)
    np.testing.assert_array_equal(out[0], np.r_[495:506, 5:16])
    names = lw.get_feature_names_out()
    assert names[0] == "450.040nm_-5" and names[5] == "450.040nm_+0"
    # (start, stop) gives the same evenly spaced grid
    lw2 = LineWindows(wavelengths=(400.0, 500.0), lines=[450.04, 401.0], half_width=5).fit(X)
    np.testing.assert_array_equal(lw2.indices_, lw.indices_)


def test_line_windows_refuse_lines_off_the_grid():
    X = np.zeros((1, 101))
    with pytest.raises(ValueError, match="outside the wavelength grid"):
        LineWindows(wavelengths=(400.0, 410.0), lines=[399.0]).fit(X)
    with pytest.raises(ValueError, match="run past the ends"):
        LineWindows(wavelengths=(400.0, 410.0), lines=[400.2], half_width=5).fit(X)
    with pytest.raises(ValueError, match="needs the wavelength grid"):
        LineWindows(lines=[405.0]).fit(X)
    with pytest.raises(ValueError, match="either lines or elements"):
        LineWindows(wavelengths=(400.0, 410.0), lines=[405.0], elements=["Fe"]).fit(X)
    with pytest.raises(ValueError, match="strictly increasing"):
        LineWindows(wavelengths=np.r_[np.arange(100.0), 5.0], lines=[50.0]).fit(X)


def test_line_windows_default_trcsl_lines_and_dataframe_grid():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.zeros((2, TRCSL_GRID.size)), columns=[f"{w:.4f}" for w in TRCSL_GRID])
    lw = LineWindows().fit(X)
    assert lw.indices_.shape == (len(TRCSL_LINES), 11)
    np.testing.assert_allclose(lw.window_lines_, [line.wavelength_nm for line in TRCSL_LINES])
    assert lw.window_elements_[0] == "Mn"
    # every window is centred on the grid point nearest its line
    centres = lw.indices_[:, 5]
    assert np.all(np.abs(TRCSL_GRID[centres] - lw.window_lines_) <= 0.5 * np.diff(TRCSL_GRID)[0])
    lw.set_output(transform="pandas")
    out = lw.transform(X)
    assert list(out.columns[:2]) == ["Mn_441.488nm_-5", "Mn_441.488nm_-4"]


def test_line_windows_from_nist_elements():
    lines = strongest_lines("Mn", TRCSL_GRID, n_lines=4, half_width=5)
    assert lines.size == 4
    assert np.all((lines > TRCSL_GRID[0]) & (lines < TRCSL_GRID[-1]))
    lw = LineWindows(wavelengths=TRCSL_GRID, elements=["Mn", "Cr"], lines_per_element=3)
    lw.fit(np.zeros((1, TRCSL_GRID.size)))
    assert list(lw.window_elements_) == ["Mn"] * 3 + ["Cr"] * 3
    for element in ("Mn", "Cr"):
        centres = np.sort(lw.indices_[lw.window_elements_ == element, 5])
        assert np.all(np.diff(centres) > 10)  # windows of one element do not overlap
    with pytest.raises(ValueError, match="no NIST lines"):
        strongest_lines("Xx", TRCSL_GRID)


# --- 2D folding, shots, pipelines --------------------------------------------------------


def test_to2d_round_trip_and_padding():
    X = np.random.default_rng(0).random((3, 16375))
    to2d = To2D().fit(X)
    images = to2d.transform(X)
    assert images.shape == (3, 125, 131)
    np.testing.assert_array_equal(images[:, 1, 0], X[:, 131])
    np.testing.assert_array_equal(to2d.inverse_transform(images), X)

    short = np.arange(10.0)[None]
    padded = To2D(shape=(3, 4), pad_value=-1.0).fit_transform(short)
    np.testing.assert_array_equal(padded[0, 2], [8.0, 9.0, -1.0, -1.0])
    np.testing.assert_array_equal(To2D(shape=(3, 4)).fit(short).inverse_transform(padded), short)
    with pytest.raises(ValueError, match="do not fit"):
        To2D(shape=(3, 3)).fit(short)


def test_shot_averaging():
    shots = np.arange(2 * 5 * 3, dtype=float).reshape(2, 5, 3)
    np.testing.assert_array_equal(ShotAverager().fit_transform(shots), shots.mean(axis=1))
    grouped = ShotAverager(n_average=2).fit_transform(shots)
    assert grouped.shape == (2, 2, 3)  # the fifth shot fills no group
    np.testing.assert_array_equal(grouped[1, 1], shots[1, 2:4].mean(axis=0))
    np.testing.assert_array_equal(average_shots(shots[:, 0]), shots[:, 0])  # one shot each
    assert average_shots(shots.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="cannot average"):
        average_shots(shots, n_average=6)
    with pytest.raises(ValueError, match="n_average"):
        ShotAverager(n_average=0).fit(shots)


def test_pipelines_trcsl_1d_and_2d_inputs():
    spectra, _ = synthetic_spectra(4, TRCSL_GRID, seed=3)
    one_d = make_pipeline(
        MinMaxPerSpectrum(), AirPLS(lam=1e4, max_iter=50), LineWindows(wavelengths=TRCSL_GRID)
    )
    features = one_d.fit_transform(spectra)
    assert features.shape == (4, len(TRCSL_LINES) * 11)
    assert list(one_d.get_feature_names_out()[:1]) == ["Mn_441.488nm_-5"]
    two_d = make_pipeline(MinMaxPerSpectrum(), AirPLS(), To2D())
    images = two_d.fit_transform(spectra)
    assert images.shape == (4, 125, 131)
    stack = make_pipeline(ShotAverager(), MinMaxPerSpectrum())
    averaged = stack.fit_transform(spectra.reshape(2, 2, -1))
    assert averaged.shape == (2, TRCSL_GRID.size) and averaged.max() == 1.0


def test_airpls_runs_where_no_numba_cache_folder_is_writable(tmp_path):
    """A read-only install run with a read-only HOME: numba finds no cache locator; the kernel
    is then compiled in the process instead of failing at import."""
    import subprocess
    import sys

    code = (
        "import numba.core.caching as c\n"
        "def refuse(self): raise OSError('read-only')\n"
        "c._CacheLocator.ensure_cache_path = refuse\n"
        "import numpy as np\n"
        "from saca_lab.preprocessing import AirPLS\n"
        "x = np.linspace(0, 1, 300)\n"
        "y = np.vstack([np.exp(-((x - 0.5) / 0.01) ** 2) + 0.3 * x + 0.1] * 2)\n"
        "out = AirPLS().fit_transform(y)\n"
        "assert out.shape == y.shape and np.isfinite(out).all()\n"
        "print('ok')\n"
    )
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "NUMBA_CACHE_DIR": ""}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
