"""Baselines: scikit-learn contracts, the particle swarm, grouped CV, pipelines."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from saca_lab.baselines import (
    PCAPLS,
    PLSRCV,
    PSOSVR,
    ParticleSwarm,
    cv_folds,
    list_baselines,
    make_baseline,
)
from saca_lab.baselines.pls import _truncated_predictions
from saca_lab.errors import InputError
from saca_lab.preprocessing import AirPLS, MinMaxPerSpectrum

# --- scikit-learn contract -----------------------------------------------------------------


@parametrize_with_checks(
    [PLSRCV(), PSOSVR(n_particles=4, n_iter=2), PCAPLS()],
)
def test_sklearn_compatible(estimator, check):
    # no check is skipped or expected to fail
    check(estimator)


def test_registry():
    assert list_baselines() == ("plsr", "pso_svr", "pca_pls")
    assert isinstance(make_baseline("pso_svr", n_particles=3), PSOSVR)
    assert make_baseline("pca_pls", n_pca=4).n_pca == 4
    with pytest.raises(InputError, match="plsr, pso_svr, pca_pls"):
        make_baseline("svr")
    with pytest.raises(InputError, match="unknown parameter"):
        make_baseline("plsr", n_pca=3)


# --- particle swarm ------------------------------------------------------------------------


def sphere(p):
    return float(((p - 0.7) ** 2).sum())


def rosenbrock(p):
    return float(100 * (p[1] - p[0] ** 2) ** 2 + (1 - p[0]) ** 2)


def rastrigin(p):
    return float(10 * p.size + (p ** 2 - 10 * np.cos(2 * np.pi * p)).sum())


@pytest.mark.parametrize(("f", "bounds", "minimum", "atol", "n_iter"), [
    (sphere, [(-5, 5)] * 3, [0.7, 0.7, 0.7], 1e-3, 100),
    (rosenbrock, [(-2, 2), (-1, 3)], [1.0, 1.0], 0.05, 300),
    (rastrigin, [(-5.12, 5.12)] * 2, [0.0, 0.0], 1e-3, 150),
])
def test_swarm_finds_known_minimum(f, bounds, minimum, atol, n_iter):
    res = ParticleSwarm(n_particles=30, n_iter=n_iter, random_state=3).minimize(f, bounds)
    np.testing.assert_allclose(res.position, minimum, atol=atol)
    assert res.value == pytest.approx(f(np.asarray(minimum, float)), abs=1e-3)
    assert res.history.shape == (n_iter + 1,)
    assert np.all(np.diff(res.history) <= 0)  # the best value never gets worse
    assert res.value == res.history[-1]


def test_swarm_is_reproducible_and_stays_in_the_box():
    seen = []

    def f(p):
        seen.append(p.copy())
        return rastrigin(p)

    a = ParticleSwarm(n_particles=8, n_iter=10, random_state=5).minimize(f, [(1, 4), (-2, -1)])
    b = ParticleSwarm(n_particles=8, n_iter=10, random_state=5).minimize(rastrigin, [(1, 4), (-2, -1)])
    c = ParticleSwarm(n_particles=8, n_iter=10, random_state=6).minimize(rastrigin, [(1, 4), (-2, -1)])
    np.testing.assert_array_equal(a.position, b.position)
    np.testing.assert_array_equal(a.history, b.history)
    assert not np.array_equal(a.history, c.history)
    seen = np.array(seen)
    assert len(seen) == 8 * 11
    assert seen[:, 0].min() >= 1 and seen[:, 0].max() <= 4
    assert seen[:, 1].min() >= -2 and seen[:, 1].max() <= -1


def test_swarm_ignores_non_finite_values_and_checks_bounds():
    res = ParticleSwarm(n_particles=6, n_iter=5).minimize(
        lambda p: float("nan") if p[0] < 0 else float(p[0]), [(-1, 1)])
    assert np.isfinite(res.value) and res.position[0] >= 0
    with pytest.raises(ValueError, match="low < high"):
        ParticleSwarm().minimize(sphere, [(1, 0)])


# --- grouped cross-validation --------------------------------------------------------------


def test_cv_folds_never_split_a_group():
    groups = np.repeat(np.arange(7), 4)
    folds = cv_folds(groups.size, groups, cv=5)
    assert len(folds) == 5
    seen = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(seen), np.arange(groups.size))
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    assert len(cv_folds(12, np.repeat([0, 1, 2], 4), cv=5)) == 3  # clipped to the groups
    assert cv_folds(8, np.zeros(8), cv=5) == []


def spectra_dataset(n_samples=24, n_shots=3, n_points=120, seed=0):
    """Gaussian lines on a sloping baseline; the target scales the first line."""
    rng = np.random.default_rng(seed)
    grid = np.arange(n_points)
    y = rng.uniform(0.5, 3.0, n_samples)
    other = rng.uniform(0.5, 3.0, n_samples)
    lines = (y[:, None] * np.exp(-0.5 * ((grid - 30) / 2.0) ** 2)
             + other[:, None] * np.exp(-0.5 * ((grid - 80) / 2.0) ** 2))
    base = 2 + 0.01 * grid
    X = np.repeat(lines + base, n_shots, axis=0)
    X = X * rng.normal(1, 0.02, (len(X), 1)) + rng.normal(0, 0.01, X.shape)
    return X, np.repeat(y, n_shots), np.repeat(np.arange(n_samples), n_shots)


def test_truncated_pls_predictions_equal_separate_fits():
    X, y, _ = spectra_dataset()
    for scale in (False, True):
        pred = _truncated_predictions(X[:50], y[:50, None], X[50:], 6, scale)
        for k in (1, 3, 6):
            direct = PLSRegression(n_components=k, scale=scale).fit(X[:50], y[:50]).predict(X[50:])
            np.testing.assert_allclose(pred[k - 1, :, 0], direct, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("est", [PLSRCV(max_components=8), PSOSVR(n_particles=5, n_iter=4),
                                 PCAPLS(n_pca=8)], ids=["plsr", "pso_svr", "pca_pls"])
def test_pipeline_with_preprocessing_and_groups(est, monkeypatch):
    X, y, g = spectra_dataset()
    folds_seen = []
    real = cv_folds

    def spy(n, groups=None, cv=5, random_state=0):
        folds = real(n, groups, cv, random_state)
        folds_seen.append((groups, folds))
        return folds

    monkeypatch.setattr(f"{type(est).__module__}.cv_folds", spy, raising=False)
    monkeypatch.setattr("saca_lab.baselines.pls.cv_folds", spy)
    pipe = Pipeline([("airpls", AirPLS(lam=1e3)), ("minmax", MinMaxPerSpectrum()), ("model", est)])
    pipe.fit(X[:54], y[:54], model__groups=g[:54])
    assert folds_seen and folds_seen[-1][0] is not None
    for train, test in folds_seen[-1][1]:
        assert not set(g[train]) & set(g[test])
    pred = pipe.predict(X[54:])
    assert pred.shape == (18,) and np.isfinite(pred).all()
    assert np.corrcoef(pred, y[54:])[0, 1] > 0.9


def test_plsr_chooses_components_and_caps_them():
    X, y, g = spectra_dataset()
    m = PLSRCV(max_components=10).fit(X, y, groups=g)
    assert m.cv_rmse_.shape == (10,)
    assert m.n_components_ == int(np.argmin(m.cv_rmse_)) + 1
    assert m.pls_.n_components == m.n_components_
    # 5 rows, 5 folds of 4 training rows: at most 3 components
    small = PLSRCV(max_components=15).fit(X[::3][:5], y[::3][:5])
    assert small.cv_rmse_.shape == (3,) and small.n_components_ <= 3
    # with shots as rows the cap counts rows: 12 training rows per fold -> 11 components
    assert PLSRCV(max_components=15).fit(X[:15], y[:15], groups=g[:15]).cv_rmse_.shape == (11,)
    with pytest.warns(UserWarning, match="constant"):  # one sample: nothing to CV over
        one_group = PLSRCV().fit(X[:3], y[:3], groups=g[:3])
    assert one_group.n_components_ == 1 and np.isnan(one_group.cv_rmse_).all()


def test_pso_svr_fitted_attributes():
    X, y, g = spectra_dataset()
    m = PSOSVR(n_particles=6, n_iter=5, random_state=2).fit(X, y, groups=g)
    assert m.fitness_history_.shape == (6,)
    assert np.all(np.diff(m.fitness_history_) <= 0)
    assert m.cv_rmse_ == pytest.approx(m.fitness_history_[-1])
    lo = np.array([m.log_C_bounds[0], m.log_gamma_bounds[0], m.log_epsilon_bounds[0]])
    hi = np.array([m.log_C_bounds[1], m.log_gamma_bounds[1], m.log_epsilon_bounds[1]])
    assert np.all((m.best_position_ >= lo) & (m.best_position_ <= hi))
    assert m.best_params_["C"] == pytest.approx(10 ** m.best_position_[0])
    assert m.svr_.C == pytest.approx(m.best_params_["C"])
    again = PSOSVR(n_particles=6, n_iter=5, random_state=2).fit(X, y, groups=g)
    np.testing.assert_array_equal(again.best_position_, m.best_position_)
    with pytest.raises(ValueError, match="log_C_bounds"):
        PSOSVR(log_C_bounds=(2, 1)).fit(X, y)


def test_pca_pls_caps_and_fractions():
    X, y, g = spectra_dataset()
    m = PCAPLS(n_pca=500, max_components=20).fit(X[:12], y[:12], groups=g[:12])
    assert m.n_pca_ == 12 and m.n_components_ <= 12
    frac = PCAPLS(n_pca=0.99).fit(X, y)
    assert 1 <= frac.n_pca_ < X.shape[1]
    with pytest.raises(ValueError, match="n_pca"):
        PCAPLS(n_pca=0).fit(X, y)
