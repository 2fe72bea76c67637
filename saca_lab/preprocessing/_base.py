"""What the stateless spectrum transformers share: validation in ``fit``, and their tags."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin

from saca_lab.preprocessing._validation import validate_spectra


class StatelessSpectraTransformer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Base of transformers that learn nothing: ``fit`` only checks parameters and the input.

    Subclasses implement ``_check_params`` and ``transform``; 2D (spectra x points) and 3D
    (samples x shots x points) input is accepted.
    """

    # dtypes kept by ``transform`` (scikit-learn's ``preserves_dtype`` tag)
    _preserves_dtype: tuple[str, ...] = ("float64", "float32")

    def _check_params(self) -> None:
        """Raise ValueError on invalid parameters (called by ``fit`` and ``transform``)."""

    def fit(self, X: Any, y: Any = None):
        """Validate the parameters and record the number of points.

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_points) or (n_samples, n_shots, n_points)
            Spectra.
        y : None
            Ignored.

        Returns
        -------
        self
        """
        self._check_params()
        validate_spectra(self, X, reset=True, allow_3d=True)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = list(self._preserves_dtype)
        return tags
