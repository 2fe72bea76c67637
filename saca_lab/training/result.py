"""What one training run returns: :class:`RunResult`, and its test-set predictions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TestPredictions:
    """The test items (spectra) of a run, as the trained model saw them.

    Attributes
    ----------
    groups : sample index (in the dataset) of each item, shape ``(n_items,)``.
    y_true, y_pred : true and predicted values in target units, ``(n_items, n_targets)``.
    sigma : predicted standard deviations in target units, ``(n_items, n_targets)``, for a
        model that predicts them (GLL); None otherwise.
    """

    __test__ = False  # a data class, not a pytest test class

    groups: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    sigma: np.ndarray | None = None

    def sample_means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample indices and the sample-averaged truth and prediction (the papers' unit)."""
        from saca_lab.training.reporting import sample_means

        ids, yt = sample_means(self.y_true, self.groups)
        _, yp = sample_means(self.y_pred, self.groups)
        return ids, yt, yp

    def sample_sigma(self) -> np.ndarray | None:
        """Per-sample sigma (:func:`saca_lab.training.reporting.sample_sigma`), rows in the
        order of :meth:`sample_means`; None for a model without one."""
        from saca_lab.training.reporting import sample_sigma

        return None if self.sigma is None else sample_sigma(self.sigma, self.groups)[1]


@dataclass(frozen=True)
class RunResult:
    """The outcome of :func:`saca_lab.training.run.run_experiment`, or of a finished run read
    back from MLflow (``reused``).

    Attributes
    ----------
    run_id : the MLflow run; None in a ``ddp`` process of a rank > 0, which neither tests nor logs.
    targets : the model's outputs, in order.
    test : per-item (spectrum) test metrics, as logged (``test_loss``, ``test_r2_Mn``, ...).
    test_sample : per-sample test metrics, as logged (``test_sample_r2_Mn``, ...).
    checkpoint : the final checkpoint on this machine (None for a reused run: see
        :func:`saca_lab.tracking.resolve_checkpoint`).
    predictions : the test predictions the metrics came from (None for a reused run).
    feature_spec : what the model reads (:class:`~saca_lab.datasets.features.FeatureSpec` as a dict).
    calibration : the scores of the run's calibration samples (``data.split.calibration``; see
        :func:`saca_lab.training.conformal.calibration_record`), None when it kept none aside.
    reused : read back from MLflow instead of trained.
    rank : the process's rank under ``ddp`` (0 elsewhere).
    """

    run_id: str | None
    targets: list[str] = field(default_factory=list)
    test: dict[str, float] = field(default_factory=dict)
    test_sample: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    predictions: TestPredictions | None = None
    feature_spec: dict | None = None
    calibration: dict | None = None
    reused: bool = False
    rank: int = 0
