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
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from saca_lab.datasets.features import FeatureSpec, transform_spectra
from saca_lab.errors import InputError


class Predictor:
    """A trained model with its preprocessing, ready for raw spectra.

    Parameters
    ----------
    checkpoint_path : path
        A checkpoint written by :class:`~saca_lab.training.module.SpectraRegressor`.
    precision : {"auto", "32-true", "bf16-mixed"}, default="auto"
        Precision of the forward pass on the CPU. ``auto`` (as ``train.precision``, see
        :func:`saca_lab.runtime.resolve_precision`) is bf16 autocast where the CPU computes
        bf16 natively (AVX512-BF16/AMX), with ``channels_last`` for 2D models where
        :func:`saca_lab.runtime.resolve_channels_last` says so, and fp32 elsewhere; bf16
        predictions differ from fp32 ones by bf16 rounding (~0.1-1 % of a value).
    """

    def __init__(self, checkpoint_path: str | os.PathLike, precision: str = "auto") -> None:
        from saca_lab.runtime import AUTO, BF16, FP32, resolve_channels_last, resolve_precision
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
        #: The precision the forward pass runs in (``32-true`` or ``bf16-mixed``).
        self.precision: str = resolve_precision(precision, "cpu")
        if self.precision not in (FP32, BF16):
            raise InputError(f"precision must be 'auto', {FP32!r} or {BF16!r}, got {precision!r}")
        if (resolve_channels_last(AUTO, self.precision, self.spec.input_kind, "cpu")
                and not self.module.hparams.channels_last):
            # the module's own switch, so that its input preparation follows the weights
            self.module.model.to(memory_format=torch.channels_last)
            self.module.hparams.channels_last = True
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
        from joblib import parallel_config

        spectra = np.asarray(spectra)
        if spectra.ndim == 1:
            spectra = spectra[None]
        # airPLS shares the batch over as many threads as the model uses
        with parallel_config(n_jobs=torch.get_num_threads()):
            return transform_spectra(self.on_training_grid(wavelengths, spectra), self.wavelengths,
                                     self.spec)

    def _in_batches(self, fn, x: np.ndarray, batch_size: int) -> list:
        """``fn`` on consecutive batches of the features ``x``, in :attr:`precision`."""
        from saca_lab.runtime import BF16

        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == BF16
                    else nullcontext())
        with torch.inference_mode(), autocast:
            return [fn(torch.from_numpy(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]

    def predict(self, wavelengths: np.ndarray, spectra: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Mass % of every target for raw spectra (n, points) on ``wavelengths``."""
        x = self._features(wavelengths, spectra)
        return np.concatenate([out.float().numpy() for out in self._in_batches(self.module, x, batch_size)])

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
        parts = self._in_batches(self.module.predict_with_std, x, batch_size)
        return (np.concatenate([m.float().numpy() for m, _ in parts]),
                np.concatenate([s.float().numpy() for _, s in parts]))

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
            import json

            scores = context.artifacts.get("calibration_scores")  # JSON: numbers only
            self.calibration = json.loads(Path(scores).read_text()) if scores else None
            # intervals widen fp32 predictions: the scores come from the fp32 test pass
            self.predictor = Predictor(context.artifacts["checkpoint"],
                                       precision="32-true" if scores else "auto")

        def predict(self, context, model_input, params=None):
            """``params={"interval": 0.9}`` adds ``<target>_lo`` / ``<target>_hi`` (the run's
            split-conformal intervals; InputError for a run without calibration scores)."""
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
            table, columns = self.predictor.predict_table(wl, x), list(self.predictor.columns)
            level = (params or {}).get("interval")
            if level is not None:
                from saca_lab.training.conformal import HOW_TO_GET_SCORES, with_bounds

                if self.calibration is None:
                    raise InputError("interval: this model was logged without calibration "
                                     f"scores; {HOW_TO_GET_SCORES}")
                table, columns = with_bounds(table, columns, self.predictor.target_names,
                                             self.calibration, float(level))
            return pd.DataFrame(table, columns=columns)

    return SacaPyfuncModel


def _signature():
    """Inputs free (any wavelength grid); the ``interval`` parameter declared, or MLflow drops it."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    return ModelSignature(inputs=None, outputs=None,
                          params=ParamSchema([ParamSpec("interval", "double", None)]))


def log_pyfunc(checkpoint_path: str | os.PathLike, name: str = "model",
               calibration: dict | None = None) -> None:
    """Log a pyfunc model that predicts from raw spectra into the active MLflow run.

    ``calibration`` (:func:`saca_lab.training.conformal.calibration_record`) travels with it
    as JSON, so ``predict(df, params={"interval": 0.9})`` adds the run's intervals. The model
    is stored with cloudpickle: loading it runs code, so it is meant for trusted MLflow stores
    only (see the module docstring).
    """
    import json
    import tempfile

    import mlflow.pyfunc

    with tempfile.TemporaryDirectory() as tmp:
        artifacts = {"checkpoint": str(checkpoint_path)}
        if calibration is not None:
            artifacts["calibration_scores"] = str(Path(tmp) / "calibration_scores.json")
            Path(artifacts["calibration_scores"]).write_text(json.dumps(calibration))
        mlflow.pyfunc.log_model(name=name, python_model=_pyfunc_class()(), artifacts=artifacts,
                                pip_requirements=["saca-lab", "torch", "numpy", "pandas"], signature=_signature())
