"""Split-conformal prediction intervals for deep models, and the model's own Gaussian ones.

A network is too expensive to refit K times per interval (CV+ multiplies training by K), so a
deep run keeps calibration samples aside instead (``data.split.calibration``: a share of the
*training* samples, carved by sample so no shot of a calibration sample is fitted; see
:func:`saca_lab.datasets.splits.carve_calibration`). After training, the run predicts them and
stores one score per calibration sample and target, the absolute residual
``|y - y_hat|`` of the sample's prediction (its items' predictions averaged, as the run's
per-sample test metrics), in the MLflow artifact :data:`SCORES_ARTIFACT` (JSON). An interval at
level ``1 - a`` is then ``y_hat +- q``, ``q`` the ``ceil((n + 1)(1 - a))``-th smallest of the
``n`` scores (Vovk et al. 2005; Lei et al. 2018): for a new sample exchangeable with the
calibration samples it covers the truth with probability at least ``1 - a`` (and below
``1 - a + 1/(n + 1)``). With ``ceil((n + 1)(1 - a)) > n`` no finite interval has that
guarantee and the interval is infinite (at 90 %: fewer than 9 calibration samples).

``saca-lab predict --interval`` reads these numbers only; nothing is refitted or unpickled.

Where split conformal has too few samples (20 carbon steels: 14 training samples per 7:3 draw,
while 90 % needs 9 calibration samples), ``saca-lab compare --conformal cv+`` pays the K extra
runs: fold ``k`` of a K-fold over the training samples (``data.split.calibration: {folds: K,
fold: k}``) calibrates the run fitted on the other folds, and :func:`cv_plus_bounds` combines the
K runs' out-of-fold residuals and test predictions (Barber et al. 2021); every training sample
calibrates once, so n is the number of training samples.

A model that predicts a standard deviation (GLL) also gets its own Gaussian interval
``mean +- z_{1 - a/2} sigma``, reported beside the conformal one so the user sees whether the
model's own uncertainty is calibrated; it has no coverage guarantee.

References
----------
.. [1] J. Lei, M. G'Sell, A. Rinaldo, R. J. Tibshirani, L. Wasserman, "Distribution-free
   predictive inference for regression", J. Am. Stat. Assoc., 2018, 113, 1094-1111.
.. [2] R. F. Barber, E. J. Candès, A. Ramdas, R. J. Tibshirani, "Predictive inference with the
   jackknife+", Ann. Statist., 2021, 49(1), 486-507.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np

from saca_lab.errors import InputError

#: Where a run stores its calibration scores (MLflow artifact path).
SCORES_ARTIFACT = "intervals/calibration_scores.json"
#: Share of the training samples ``saca-lab compare --interval`` keeps for the deep models'
#: calibration when the study's ``--set data.split.calibration`` does not say.
COMPARE_CALIBRATION = 0.3
#: How ``compare --interval`` calibrates deep models (``--conformal``): split conformal on the
#: calibration share (the first, the default) or CV+ with K extra runs per draw.
DEEP_METHODS = ("split", "cv+")
#: How to get scores, for error messages.
HOW_TO_GET_SCORES = ("train it with calibration samples, e.g. saca-lab train EXPERIMENT.yaml "
                     "--set data.split.calibration=0.2")


def conformal_quantile(scores, level: float) -> float:
    """The split-conformal half-width: the ``ceil((n + 1) * level)``-th smallest score.

    Returns ``inf`` when that rank exceeds ``n`` (too few scores for ``level``).
    """
    if not 0.0 < float(level) < 1.0:
        raise InputError(f"--interval must be a level between 0 and 1 (e.g. 0.9), got {level!r}")
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    # the rank is computed with a tolerance: (n + 1) * 0.9 is 9.000000000000002 for n = 9
    rank = math.ceil((s.size + 1) * float(level) - 1e-9)
    return float(s[rank - 1]) if rank <= s.size else math.inf


def cv_plus_bounds(fold_pred, residuals, fold_of, level: float) -> tuple[np.ndarray, np.ndarray]:
    """CV+ prediction intervals from K fold models' test predictions and out-of-fold residuals.

    Training sample ``i`` lies in fold ``k(i)``; ``mu_{-k}`` is the model fitted without fold
    ``k``, ``R_i = |y_i - mu_{-k(i)}(x_i)|`` its out-of-fold residual (per sample and target,
    as the split-conformal scores). For a test item ``x`` and ``a = 1 - level``:

    - lower bound: the ``floor(a (n + 1))``-th smallest of ``mu_{-k(i)}(x) - R_i``,
    - upper bound: the ``ceil((1 - a)(n + 1))``-th smallest of ``mu_{-k(i)}(x) + R_i``,

    over the ``n`` training samples. When ``ceil((1 - a)(n + 1)) > n`` both bounds are infinite
    (no finite interval has the guarantee; scored as a miss). For exchangeable samples the
    interval covers with probability at least ``1 - 2a - min(2(1 - 1/K)/(n/K + 1),
    (1 - K/n)/(K + 1))`` (Theorem 4 of [1]_); in practice coverage is close to ``1 - a``.

    Parameters
    ----------
    fold_pred : array-like of shape (K, m)
        Prediction of each of the ``m`` test items by each fold model ``mu_{-k}``.
    residuals : array-like of shape (n,)
        Out-of-fold residual ``R_i`` of each training sample.
    fold_of : array-like of int, shape (n,)
        The fold ``k(i)`` of each training sample (its residual comes from ``mu_{-k(i)}``).
    level : float
        Nominal coverage ``1 - a``, in (0, 1).

    Returns
    -------
    lo, hi : ndarray of shape (m,)
        The bounds; ``-inf`` / ``inf`` when ``n`` is too small for ``level``.

    Raises
    ------
    InputError
        ``level`` is not in (0, 1).
    ValueError
        The shapes disagree or a fold index has no model.

    References
    ----------
    .. [1] R. F. Barber, E. J. Candès, A. Ramdas, R. J. Tibshirani, "Predictive inference with
       the jackknife+", Ann. Statist., 2021, 49(1), 486-507.
    """
    if not 0.0 < float(level) < 1.0:
        raise InputError(f"--interval must be a level between 0 and 1 (e.g. 0.9), got {level!r}")
    fold_pred = np.atleast_2d(np.asarray(fold_pred, dtype=np.float64))
    residuals = np.asarray(residuals, dtype=np.float64).ravel()
    fold_of = np.asarray(fold_of).ravel()
    n, m = residuals.size, fold_pred.shape[1]
    if fold_of.size != n or n == 0:
        raise ValueError(f"{n} residuals but {fold_of.size} fold indices")
    if fold_of.min() < 0 or fold_of.max() >= fold_pred.shape[0]:
        raise ValueError(f"fold indices {np.unique(fold_of).tolist()} but {fold_pred.shape[0]} "
                         "fold models")
    # the same tolerance as conformal_quantile: (n + 1) * 0.9 is 9.000000000000002 for n = 9;
    # the lower rank n + 1 - hi_rank is floor(a (n + 1)) in exact arithmetic
    hi_rank = math.ceil((n + 1) * float(level) - 1e-9)
    if hi_rank > n:
        return np.full(m, -math.inf), np.full(m, math.inf)
    lo_rank = n + 1 - hi_rank
    mu = fold_pred[fold_of.astype(int)]              # (n, m): mu_{-k(i)}(x) per test item
    lower = np.partition(mu - residuals[:, None], lo_rank - 1, axis=0)[lo_rank - 1]
    upper = np.partition(mu + residuals[:, None], hi_rank - 1, axis=0)[hi_rank - 1]
    return lower, upper


def split_conformal_interval(pred, scores, level: float) -> tuple[np.ndarray, np.ndarray]:
    """``pred -+ q`` with ``q`` = :func:`conformal_quantile` of ``scores``."""
    pred = np.asarray(pred, dtype=np.float64)
    q = conformal_quantile(scores, level)
    return pred - q, pred + q


def gaussian_interval(mean, sigma, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level`` interval of N(mean, sigma^2): what the model's own sigma claims."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + float(level) / 2.0))
    mean, sigma = np.asarray(mean, np.float64), np.asarray(sigma, np.float64)
    return mean - z * sigma, mean + z * sigma


def calibration_record(items, dm) -> dict:
    """The scores of a run's calibration samples from their items' predictions ``items``
    (:class:`~saca_lab.training.result.TestPredictions` of the calibration pass,
    saca_lab/training/evaluate.py).

    Items of a sample are averaged as the run's per-sample test metrics do; a predicted
    standard deviation is combined by :func:`saca_lab.training.reporting.sample_sigma`.
    """
    ids, y_true, y_pred = items.sample_means()
    sigma = items.sample_sigma()
    targets = list(dm.target_names)
    record = {"method": "split-conformal, absolute residual per sample",
              "targets": targets,
              "sample_ids": [dm.ds.sample_ids[int(i)] for i in ids],
              "y_true": {t: y_true[:, j].tolist() for j, t in enumerate(targets)},
              "y_pred": {t: y_pred[:, j].tolist() for j, t in enumerate(targets)},
              "scores": {t: np.abs(y_true[:, j] - y_pred[:, j]).tolist()
                         for j, t in enumerate(targets)}}
    if sigma is not None:
        record["sigma"] = {t: sigma[:, j].tolist() for j, t in enumerate(targets)}
    return record


def finite_levels(n_scores: int) -> float:
    """The highest level whose split-conformal interval is finite with ``n_scores`` scores."""
    return n_scores / (n_scores + 1)


def is_unbounded(n_scores: int, level: float) -> bool:
    """True when ``n_scores`` scores give an infinite interval at ``level``: the rank
    ``ceil((n + 1) level)`` exceeds ``n`` (split conformal and CV+ alike)."""
    return math.isinf(conformal_quantile(np.zeros(n_scores), level))


def unbounded_note(n_scores: int, level: float) -> str | None:
    """A warning when ``n_scores`` give an infinite interval at ``level``, else None."""
    if not is_unbounded(n_scores, level):
        return None
    return (f"{n_scores} calibration scores give infinite bounds at level {level:g} (finite up to "
            f"{finite_levels(n_scores):.3g}; at 0.9 it takes 9): keep more calibration samples "
            "(data.split.calibration) or ask a lower --interval")


def warn_if_unbounded(record: dict, level: float) -> None:
    """Print :func:`unbounded_note` to stderr for a stored calibration record."""
    import sys

    note = unbounded_note(min(len(v) for v in record["scores"].values()), level)
    if note:
        print(f"warning: {note}", file=sys.stderr)


def log_calibration(client, run_id: str, record: dict) -> None:
    """Store ``record`` as the run's :data:`SCORES_ARTIFACT` (plain JSON)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(SCORES_ARTIFACT).name
        path.write_text(json.dumps(record, indent=1))
        client.log_artifact(run_id, str(path), artifact_path=str(Path(SCORES_ARTIFACT).parent))


def load_calibration(model: str) -> dict:
    """The calibration scores stored with the run ``model`` names.

    Raises
    ------
    InputError
        If ``model`` is a checkpoint file, or the run has no scores; the message names the
        run and how to get them.
    """
    import mlflow

    from saca_lab import tracking

    run_id = tracking.run_id_of(model)
    if run_id is None:
        raise InputError(f"--interval: {model} is a checkpoint file; the calibration scores are "
                         "stored with its MLflow run: give --model RUN_ID")
    try:
        tracking.client().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise InputError(f"--model {model!r} is neither a checkpoint file nor an MLflow run id "
                         f"in {tracking.tracking_uri()}") from None
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=SCORES_ARTIFACT,
                                                   tracking_uri=tracking.tracking_uri())
    except (mlflow.exceptions.MlflowException, OSError):
        raise InputError(f"--interval: run {run_id} has no calibration scores ({SCORES_ARTIFACT}); "
                         f"it kept no calibration samples aside. To get them, "
                         f"{HOW_TO_GET_SCORES}") from None
    record = json.loads(Path(path).read_text())
    if not isinstance(record.get("scores"), dict):
        raise InputError(f"--interval: run {run_id}: {SCORES_ARTIFACT} holds no scores")
    return record


def study_calibration(overrides) -> float:
    """The calibration share of a study's deep fits: the last ``data.split.calibration=X`` of
    its ``--set`` items, else :data:`COMPARE_CALIBRATION` (a study's split replaces the
    config's, so the item is read here)."""
    from saca_lab.config import parse_override

    value = COMPARE_CALIBRATION
    for item in overrides:
        key, raw = parse_override(item) if isinstance(item, str) else item
        if key == "data.split.calibration":
            value = raw
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"--set data.split.calibration must be a number in (0, 0.9], "
                         f"got {value!r}")
    if not 0.0 < value <= 0.9:
        raise InputError(f"--set data.split.calibration must be in (0, 0.9] with --interval "
                         f"(deep models need calibration samples), got {value!r}")
    return value


def attach_bounds(rows: list[dict], y_pred, scores, level: float, sigma=None) -> None:
    """Add a deep fit's split-conformal bounds (and, with ``sigma``, its Gaussian ones) to its
    prediction rows, in the same order as ``y_pred``. The scores come from the run's
    calibration samples; the test rows are only scored afterwards."""
    if scores is None:  # the fit's config kept no calibration samples: a caller's bug
        raise RuntimeError("a deep fit of an --interval study stored no calibration scores")
    lo, hi = split_conformal_interval(y_pred, scores, level)
    for row, a, b in zip(rows, lo, hi, strict=True):
        row.update(y_lo=float(a), y_hi=float(b), interval_method="split",
                   n_calibration=int(np.size(scores)))
    _attach_gaussian(rows, y_pred, sigma, level)


def attach_cv_plus(rows: list[dict], lo, hi, n_residuals: int, level: float, y_pred,
                   sigma=None) -> None:
    """Add a deep fit's CV+ bounds (:func:`cv_plus_bounds`, from ``n_residuals`` out-of-fold
    residuals) and, with ``sigma``, its Gaussian ones to its prediction rows (``y_pred``: the
    fit on all training samples, in the rows' order)."""
    for row, a, b in zip(rows, lo, hi, strict=True):
        row.update(y_lo=float(a), y_hi=float(b), interval_method="cv+",
                   n_calibration=int(n_residuals))
    _attach_gaussian(rows, y_pred, sigma, level)


def _attach_gaussian(rows: list[dict], y_pred, sigma, level: float) -> None:
    if sigma is None:
        return
    lo, hi = gaussian_interval(y_pred, sigma, level)
    for row, s, a, b in zip(rows, sigma, lo, hi, strict=True):
        row.update(y_sigma=float(s), y_lo_sigma=float(a), y_hi_sigma=float(b))


def with_bounds(pred: np.ndarray, columns: list[str], targets: list[str], record: dict,
                level: float) -> tuple[np.ndarray, list[str]]:
    """Insert ``<t>_lo`` / ``<t>_hi`` after each target's columns (its mean and, for GLL, std):
    the split-conformal interval at ``level`` from ``record`` (:func:`calibration_record`)."""
    missing = [t for t in targets if t not in record["scores"]]
    if missing:
        raise InputError(f"--interval: the run's calibration scores lack target(s) {missing}")
    out_cols, parts = [], []
    for t in targets:
        own = [i for i, c in enumerate(columns) if c in (t, f"{t}_std")]
        lo, hi = split_conformal_interval(pred[:, columns.index(t)], record["scores"][t], level)
        parts += [pred[:, own], lo[:, None], hi[:, None]]
        out_cols += [columns[i] for i in own] + [f"{t}_lo", f"{t}_hi"]
    return np.hstack(parts), out_cols
