"""Deep-learning models for LIBS/OES quantitative analysis, behind a timm-style registry.

Importing this package registers every model:

* ``resnet_dcnn``, ``resnet_dcnn_small``: SACA's 1D residual DCNN (full spectrum,
  ``"spectrum_1d"``), full width and 1/8 width;
* ``trcsl``, ``trcnn``, ``trcnn_se``, ``trcnn_lstm``: TrCSL's 2D CNN-SE-LSTM on the 125 x 131
  folded spectrum (``"image_2d"``) and its ablations (Ma et al., JAAS 2025, 40, 1810, Table 1
  and Fig. 12);
* ``trcsl_1d``, ``trcnn_1d``, ``trcnn_se_1d``, ``trcnn_lstm_1d``: the same on characteristic
  line windows (``"lines_1d"``);
* ``gll``, ``gll_spectrum``: the Gaussian-NLL network of TrCSL ref. 35 (Fig. 15) on line windows
  and on the binned full spectrum; it predicts a mean and a standard deviation per element
  (``predicts_std = True``, see :mod:`saca_lab.models.gll`).

Examples
--------
>>> from saca_lab.models import create_model, list_models, model_info
>>> "trcsl" in list_models()
True
>>> model_info("trcsl").default_input
(125, 131)
>>> model = create_model("trcsl", n_outputs=2)
>>> model.n_outputs, model.input_kind
(2, 'image_2d')
"""

from saca_lab.models import cnn_se_lstm, gll, resnet_dcnn  # noqa: F401  (registers the models)
from saca_lab.models.registry import (
    INPUT_KINDS,
    ModelInfo,
    create_model,
    list_models,
    model_info,
    register_model,
)

__all__ = [
    "INPUT_KINDS",
    "ModelInfo",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]
