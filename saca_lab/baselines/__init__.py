"""Chemometric baselines as scikit-learn estimators, and a registry of them by name.

* ``plsr``: :class:`PLSRCV`, PLS regression with components chosen by grouped CV;
* ``pso_svr``: :class:`PSOSVR`, RBF SVR tuned by a particle swarm (:class:`ParticleSwarm`);
* ``pca_pls``: :class:`PCAPLS`, PCA then PLS;
* calibration transfer (:mod:`saca_lab.baselines.calibration_transfer`), which also read a
  source dataset: ``plsr_pds`` / ``plsr_ds`` (a PLS model of the source instrument, target
  spectra standardised onto it), ``plsr_slope_bias`` (its predictions corrected by a line) and
  ``plsr_source_target`` (one PLS on source and target samples).

The first three are TrCSL's comparison models (Ma et al., JAAS 2025, 40, 1810, Figs. 14 and
15). Each of them accepts ``fit(X, y, groups=None)``; with ``groups`` (the sample of each spectrum) the
internal cross-validation never splits a sample, also inside a :class:`~sklearn.pipeline.Pipeline`
(``pipe.fit(X, y, model__groups=g)``).

Examples
--------
>>> from saca_lab.baselines import list_baselines, list_transfer_baselines, make_baseline
>>> list_baselines()
('plsr', 'pso_svr', 'pca_pls')
>>> list_transfer_baselines()
('plsr_pds', 'plsr_ds', 'plsr_slope_bias', 'plsr_source_target')
>>> make_baseline("plsr", max_components=5)
PLSRCV(max_components=5)
"""

from __future__ import annotations

from sklearn.base import BaseEstimator

from saca_lab import typecheck
from saca_lab.baselines.calibration_transfer import DSPLS, PDSPLS, SlopeBiasPLS, SourceTargetPLS
from saca_lab.baselines.pca_pls import PCAPLS
from saca_lab.baselines.pls import PLSRCV, cv_folds
from saca_lab.baselines.pso import ParticleSwarm, SwarmResult
from saca_lab.baselines.pso_svr import PSOSVR
from saca_lab.errors import InputError

_BASELINES: dict[str, type[BaseEstimator]] = {"plsr": PLSRCV, "pso_svr": PSOSVR, "pca_pls": PCAPLS}
#: Calibration-transfer baselines: ``fit(X, y, X_source=..., y_source=..., ...)``.
_TRANSFER_BASELINES: dict[str, type[BaseEstimator]] = {
    "plsr_pds": PDSPLS, "plsr_ds": DSPLS, "plsr_slope_bias": SlopeBiasPLS,
    "plsr_source_target": SourceTargetPLS}
#: What each transfer baseline needs of its source dataset: ``paired``, the study's samples
#: measured on the source instrument too (the transfer standards), or ``any`` source samples.
SOURCE_BASELINES: dict[str, str] = {"plsr_pds": "paired", "plsr_ds": "paired",
                                    "plsr_slope_bias": "any", "plsr_source_target": "any"}


def list_baselines() -> tuple[str, ...]:
    """Names of the registered baselines that fit on one dataset (``fit(X, y)``)."""
    return tuple(_BASELINES)


def list_transfer_baselines() -> tuple[str, ...]:
    """Names of the calibration-transfer baselines, which also read a source dataset
    (:data:`SOURCE_BASELINES`)."""
    return tuple(_TRANSFER_BASELINES)


def make_baseline(name: str, **params) -> BaseEstimator:
    """A new, unfitted baseline estimator by name, with keyword parameters.

    Raises
    ------
    InputError
        Unknown name (the message lists the valid ones) or unknown parameter.
    """
    known = {**_BASELINES, **_TRANSFER_BASELINES}
    if name not in known:
        raise InputError(f"unknown baseline {name!r}; expected one of {', '.join(known)}")
    cls = known[name]
    valid = cls().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise InputError(f"baseline {name!r}: unknown parameter(s) {unknown}; "
                         f"expected some of {sorted(valid)}")
    types = typecheck.hints(cls.__init__)
    for key, value in params.items():  # the constructor's annotations: --set pso_svr.n_iter=abc
        if key in types:
            typecheck.check_value(value, types[key], None, f"{name}.{key}")
    return cls(**params)


__all__ = ["DSPLS", "PCAPLS", "PDSPLS", "PLSRCV", "PSOSVR", "SOURCE_BASELINES", "ParticleSwarm",
           "SlopeBiasPLS", "SourceTargetPLS", "SwarmResult", "cv_folds", "list_baselines",
           "list_transfer_baselines", "make_baseline"]
