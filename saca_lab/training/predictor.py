"""Inference from raw spectra: checkpoint -> preprocessing -> model -> mass %.

:class:`Predictor` is what ``saca-lab predict`` and the MLflow pyfunc model use. Spectra on
another grid are resampled onto the training grid by interpolation; a grid that does not cover
the training range is refused rather than extrapolated. For a model that predicts a standard
deviation (GLL), :meth:`Predictor.predict_table` puts a ``<target>_std`` column next to each mean.

Security: :class:`Predictor` reads a checkpoint through
:func:`~saca_lab.training.checkpoint.load_checkpoint`, which refuses any file that would run code
when read, so a shared ``.ckpt`` is safe to use with ``saca-lab predict``. The MLflow pyfunc model
(:func:`log_pyfunc`) is not: MLflow stores its Python class with cloudpickle, and
``mlflow.pyfunc.load_model`` runs whatever that pickle says. Load pyfunc models only from MLflow
stores you trust (your own runs); for a model from elsewhere use its ``checkpoints/model.ckpt``
with ``saca-lab predict``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from saca_lab.data.features import FeatureSpec, transform_spectra
from saca_lab.errors import InputError


class Predictor:
    """A trained model with its preprocessing, ready for raw spectra."""

    def __init__(self, checkpoint_path: str | os.PathLike) -> None:
        from saca_lab.training.module import SpectraRegressor

        path = Path(checkpoint_path)
        if not path.is_file():
            raise InputError(f"checkpoint {path} not found")
        try:
            self.module = SpectraRegressor.from_checkpoint(path)
        except InputError:  # the loader's own message names the file and the reason
            raise
        except (KeyError, RuntimeError, TypeError, ValueError, EOFError, OSError,
                pickle.UnpicklingError) as e:
            raise InputError(f"{path} is not a saca-lab checkpoint ({type(e).__name__}: {e})") from None
        self.module.eval()
        self.target_names: list[str] = list(self.module.target_names)
        self.wavelengths = self.module.wavelengths.numpy()
        self.spec = FeatureSpec.from_dict(self.module.hparams.feature_spec)
        self.predicts_std: bool = self.module.predicts_std
        #: Columns of :meth:`predict_table`: each target, followed by ``<target>_std`` when the
        #: model predicts one.
        self.columns: list[str] = [c for t in self.target_names
                                   for c in ((t, f"{t}_std") if self.predicts_std else (t,))]

    def on_training_grid(self, wavelengths: np.ndarray, spectra: np.ndarray) -> np.ndarray:
        """Resample ``spectra`` onto the training grid (refuses to extrapolate)."""
        wavelengths = np.asarray(wavelengths, dtype=np.float64)
        if wavelengths.shape == self.wavelengths.shape and np.allclose(wavelengths, self.wavelengths):
            return np.asarray(spectra, dtype=np.float64)
        from saca_lab.data.readers import resample

        return resample((wavelengths, np.asarray(spectra, dtype=np.float64)), self.wavelengths,
                        source="input spectra")

    def _features(self, wavelengths: np.ndarray, spectra: np.ndarray) -> np.ndarray:
        spectra = np.asarray(spectra)
        if spectra.ndim == 1:
            spectra = spectra[None]
        return transform_spectra(self.on_training_grid(wavelengths, spectra), self.wavelengths, self.spec)

    @torch.no_grad()
    def predict(self, wavelengths: np.ndarray, spectra: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Mass % of every target for raw spectra (n, points) on ``wavelengths``."""
        x = self._features(wavelengths, spectra)
        out = [self.module(torch.from_numpy(x[i:i + batch_size])).numpy()
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out)

    @torch.no_grad()
    def predict_with_std(self, wavelengths: np.ndarray, spectra: np.ndarray,
                         batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Mass % and its predicted standard deviation, each (n, targets).

        Raises
        ------
        InputError
            If the model does not predict a standard deviation.
        """
        if not self.predicts_std:
            raise InputError(f"model {self.module.hparams.model_name!r} does not predict a "
                             "standard deviation")
        x = self._features(wavelengths, spectra)
        parts = [self.module.predict_with_std(torch.from_numpy(x[i:i + batch_size]))
                 for i in range(0, len(x), batch_size)]
        return (np.concatenate([m.numpy() for m, _ in parts]),
                np.concatenate([s.numpy() for _, s in parts]))

    def predict_table(self, wavelengths: np.ndarray, spectra: np.ndarray) -> np.ndarray:
        """Predictions as (n, len(:attr:`columns`)): the means, interleaved with their std."""
        if not self.predicts_std:
            return self.predict(wavelengths, spectra)
        mean, std = self.predict_with_std(wavelengths, spectra)
        return np.stack([mean, std], axis=2).reshape(len(mean), -1)


def _pyfunc_class():
    import mlflow.pyfunc

    class SacaPyfuncModel(mlflow.pyfunc.PythonModel):
        """MLflow pyfunc: a DataFrame whose columns are wavelengths (nm) -> predictions per target
        (and ``<target>_std`` columns for a model that predicts a standard deviation)."""

        def load_context(self, context) -> None:
            self.predictor = Predictor(context.artifacts["checkpoint"])

        def predict(self, context, model_input, params=None):
            import pandas as pd

            if isinstance(model_input, pd.DataFrame):
                try:
                    wl = np.array([float(c) for c in model_input.columns])
                except ValueError:
                    raise InputError("pyfunc input columns must be wavelengths in nm") from None
                x = model_input.to_numpy(dtype=np.float64)
            else:
                x = np.asarray(model_input, dtype=np.float64)
                wl = self.predictor.wavelengths
            return pd.DataFrame(self.predictor.predict_table(wl, x), columns=self.predictor.columns)

    return SacaPyfuncModel


def log_pyfunc(checkpoint_path: str | os.PathLike, name: str = "model") -> None:
    """Log a pyfunc model that predicts from raw spectra into the active MLflow run.

    The model is stored with cloudpickle: loading it runs code, so it is meant for trusted
    MLflow stores only (see the module docstring).
    """
    import mlflow.pyfunc

    mlflow.pyfunc.log_model(name=name, python_model=_pyfunc_class()(),
                            artifacts={"checkpoint": str(checkpoint_path)},
                            pip_requirements=["saca-lab", "torch", "numpy", "pandas"])
