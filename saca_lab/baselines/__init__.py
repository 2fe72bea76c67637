"""Chemometric baselines as scikit-learn estimators, and a registry of them by name.

* ``plsr``: :class:`PLSRCV`, PLS regression with components chosen by grouped CV;
* ``pso_svr``: :class:`PSOSVR`, RBF SVR tuned by a particle swarm (:class:`ParticleSwarm`);
* ``pca_pls``: :class:`PCAPLS`, PCA then PLS.

These are TrCSL's comparison models (Ma et al., JAAS 2025, 40, 1810, Figs. 14 and 15). Every
one accepts ``fit(X, y, groups=None)``; with ``groups`` (the sample of each spectrum) the
internal cross-validation never splits a sample, also inside a :class:`~sklearn.pipeline.Pipeline`
(``pipe.fit(X, y, model__groups=g)``).

Examples
--------
>>> from saca_lab.baselines import list_baselines, make_baseline
>>> list_baselines()
('plsr', 'pso_svr', 'pca_pls')
>>> make_baseline("plsr", max_components=5)
PLSRCV(max_components=5)
"""

from __future__ import annotations

from sklearn.base import BaseEstimator

from saca_lab.baselines.pca_pls import PCAPLS
from saca_lab.baselines.pls import PLSRCV, cv_folds
from saca_lab.baselines.pso import ParticleSwarm, SwarmResult
from saca_lab.baselines.pso_svr import PSOSVR
from saca_lab.errors import InputError

_BASELINES: dict[str, type[BaseEstimator]] = {"plsr": PLSRCV, "pso_svr": PSOSVR, "pca_pls": PCAPLS}


def list_baselines() -> tuple[str, ...]:
    """Names of the registered baselines."""
    return tuple(_BASELINES)


def make_baseline(name: str, **params) -> BaseEstimator:
    """A new, unfitted baseline estimator by name, with keyword parameters.

    Raises
    ------
    InputError
        Unknown name (the message lists the valid ones) or unknown parameter.
    """
    if name not in _BASELINES:
        raise InputError(f"unknown baseline {name!r}; expected one of {', '.join(_BASELINES)}")
    cls = _BASELINES[name]
    valid = cls().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise InputError(f"baseline {name!r}: unknown parameter(s) {unknown}; "
                         f"expected some of {sorted(valid)}")
    return cls(**params)


__all__ = ["PCAPLS", "PLSRCV", "PSOSVR", "ParticleSwarm", "SwarmResult", "cv_folds",
           "list_baselines", "make_baseline"]
