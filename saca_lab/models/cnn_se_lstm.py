"""TrCSL's CNN-SE-LSTM regressor for LIBS spectra, in 1D (line windows) and 2D (125 x 131).

Reproduces Ma et al., "TrCSL: a transferred CNN-SE-LSTM model for high-accuracy quantitative
analysis of laser-induced breakdown spectroscopy with small samples", J. Anal. At. Spectrom.,
2025, 40, 1810: Sec. 2.3 (architecture, Fig. 2 and 4), Sec. 2.4 (transfer: the feature
extractor and dropout are frozen, the fully connected layers fine-tuned), Table 1 (final
hyperparameters) and Sec. 3.2 (sweeps and ablations TrCNN, TrCNN-SE, TrCNN-LSTM).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from saca_lab.errors import InputError
from saca_lab.models.registry import ChannelInput, preset, register_model
from saca_lab.models.se_lstm_blocks import LSTM_OUTPUTS, SEBlock, SequenceLSTM  # noqa: F401  (public here too)

#: Elements TrCSL quantifies in carbon steel (Fig. 12), in output order.
TRCSL_ELEMENTS: tuple[str, ...] = ("C", "Cu", "Mn", "Cr")

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}
POOLINGS = ("avg", "max")
#: Where the dropout layer sits: first layer of the head (active while the head is fine-tuned)
#: or last layer of the frozen feature extractor (TrCSL Sec. 2.4, literally).
DROPOUT_POSITIONS = ("head", "features")

#: TrCSL's 2D input: the 16,375 points folded into 125 x 131 (Sec. 2.3.1, Fig. 3).
TRCSL_SHAPE: tuple[int, int] = (125, 131)
#: 1D input: 13 characteristic lines x (5 + 1 + 5) points (Sec. 2.3.1).
TRCSL_LINES_LENGTH = 143


def _conv_unit(
    dim: int, c_in: int, c_out: int, kernel: int, act: str, pooling: str, se_hidden: int | None
) -> nn.Sequential:
    conv = (nn.Conv1d if dim == 1 else nn.Conv2d)(c_in, c_out, kernel, padding="same")
    if pooling == "avg":
        pool = nn.AvgPool1d(2) if dim == 1 else nn.AvgPool2d(2)
    else:
        pool = nn.MaxPool1d(2) if dim == 1 else nn.MaxPool2d(2)
    layers = [conv, ACTIVATIONS[act](), pool]
    if se_hidden is not None:
        layers.append(SEBlock(c_out, se_hidden))
    return nn.Sequential(*layers)


def _positive(**values: Any) -> None:
    for key, value in values.items():
        if int(value) != value or value < 1:
            raise InputError(f"{key} must be a positive integer, got {value!r}")


class CNNSELSTM(nn.Module):
    """TrCSL's CNN-SE-LSTM (Sec. 2.3, Fig. 2 and 4), 1D or 2D, with its ablations.

    ``n_units`` conv units, each convolution (``kernels`` filters of ``kernel_size``, padding
    "same") + activation + pooling of 2 + SE block (Sec. 3.2 defines this as one "conv"
    unit); then an LSTM over the serialised feature map or, without LSTM, the feature map
    flattened (Sec. 2.3.3); then dropout, FC(``fc_units``), activation, FC(``n_outputs``)
    (Sec. 2.3.3: "a dropout layer and two fully connected layers").

    Head width (the input of the first FC layer), Table 1 sizes: TrCNN / TrCNN-SE flatten the
    last map, ``kernels x 17 = 544`` in 1D (143 points, 3 units) and ``kernels x 7 x 8 = 1792``
    in 2D (125 x 131, 4 units). With ``lstm_output="sequence"`` the LSTM's output at every step
    is flattened: ``17 x lstm_hidden = 544`` in 1D, the same width as TrCNN's, and
    ``7 x lstm_hidden = 224`` in 2D, one eighth of TrCNN's, because the 2D LSTM runs over the 7
    rows (wavelength bands), each step reading a whole row (8 columns x 32 channels) and
    summarising it in 32 numbers. The 2D sequence is kept over rows so the recurrence follows the
    spectrum, which is what the LSTM is there for; ``lstm_output="last"`` (the previous design)
    gives ``lstm_hidden = 32`` in both.

    Parameters
    ----------
    dim : {1, 2}, default=2
        1: characteristic-line windows ``(B, L)``; 2: folded spectrum ``(B, H, W)``. A
        channel dimension of 1 is optional.
    n_units : int, default=4
        Conv units, 1-5 (Fig. 9(a): 3 is best in 1D, 4 in 2D).
    kernel_size : int, default=3
        Convolution kernel (3 x 3 in 2D; Fig. 9(b)).
    kernels : int, default=32
        Filters of every convolution (Fig. 9(c)).
    pooling : {"avg", "max"}, default="avg"
        Table 1 lists average pooling; the sweeps of Sec. 3.2 use max pooling.
    use_se : bool, default=True
        SE block after each unit (False: the TrCNN / TrCNN-LSTM ablations).
    se_hidden : int, default=16
        First FC of the SE block (Table 1, Fig. S3).
    use_lstm : bool, default=True
        LSTM after the conv units (False: TrCNN / TrCNN-SE).
    lstm_hidden : int, default=32
        LSTM hidden units (Table 1, Fig. S4).
    lstm_layers : int, default=2
        Stacked LSTM layers. Table 1 does not list it; Sec. 3.2 sets up a two-layer LSTM and
        its later sweep (Fig. S4) changes only the hidden units, so two are kept.
    lstm_output : {"sequence", "last"}, default="sequence"
        What the LSTM hands to the head: its output at every step, flattened (the same
        information TrCNN's flattened map carries, see above), or its last hidden state only.
        With the features frozen for transfer only the head re-fits, so a 32-number summary
        tuned to the source limits what fine-tuning can do.
    dropout : float, default=0.2
        Dropout rate between the feature extractor and the first FC layer (Table 1, Fig. S5).
    dropout_position : {"head", "features"}, default="head"
        Which part holds the dropout layer. The forward pass is the same either way; what
        differs is transfer: ``features`` is frozen and kept in eval mode while the head is
        fine-tuned, so ``"features"`` (TrCSL Sec. 2.4 literally: dropout frozen with the
        features) turns dropout off for fine-tuning, ``"head"`` keeps it regularising the head
        fitted on a handful of target samples. The layer has no weights, so a checkpoint
        loads into either.
    fc_units : int, default=128
        Units of the first FC layer of the head (Table 1).
    activation : {"relu", "gelu", "tanh", "elu", "leaky_relu", "sigmoid"}, default="relu"
        Activation after every convolution and in the head (Table 1, Fig. S6). The SE block
        keeps its ReLU and sigmoid (Sec. 2.3.2.2.2).
    n_outputs : int, default=4
        Regressed concentrations; 4 is :data:`TRCSL_ELEMENTS` (C, Cu, Mn, Cr).
    in_length : int, optional
        1D only: expected input length, default 143 (the paper's 13 lines x 11 points). Runs
        pass the length of their windows (``data.lines: nist``, the default, gives e.g. ~10
        windows, 110 points, on slag). Any length ``>= 2 ** n_units`` works.
    in_shape : tuple (H, W), optional
        2D only: expected input shape, default (125, 131). Any shape with both sides
        ``>= 2 ** n_units`` works; it fixes the width the LSTM's rows are pooled to (see
        :class:`SequenceLSTM`).

    Attributes
    ----------
    features : nn.Sequential
        Input adapter, conv units, LSTM or flattened map (and dropout when
        ``dropout_position="features"``): everything TrCSL freezes when transferring (Sec. 2.4).
        Output ``(B, n_head_inputs)``.
    head : nn.Sequential
        Dropout (when ``dropout_position="head"``) and the two fully connected layers
        fine-tuned on the target samples.
    n_head_inputs : int
        Input width of the first FC layer (see above).
    n_outputs, input_kind, config
        See :mod:`saca_lab.models.registry`; ``input_kind`` is ``"lines_1d"`` for ``dim=1``,
        ``"image_2d"`` for ``dim=2``.

    Notes
    -----
    For speed on a CPU the 2D model can be moved to ``channels_last`` and run under
    ``torch.autocast("cpu", dtype=torch.bfloat16)``; the LSTM then runs in float32 (see
    :class:`SequenceLSTM`). No step loops over the batch.

    References
    ----------
    .. [1] S. Ma, S. Xu, C. Pan et al., "TrCSL: a transferred CNN-SE-LSTM model for
       high-accuracy quantitative analysis of laser-induced breakdown spectroscopy with small
       samples", J. Anal. At. Spectrom., 2025, 40, 1810.
    .. [2] J. Hu, L. Shen and G. Sun, "Squeeze-and-excitation networks", CVPR 2018.

    Examples
    --------
    >>> import torch
    >>> model = CNNSELSTM(dim=2).eval()
    >>> model(torch.rand(3, 125, 131)).shape
    torch.Size([3, 4])
    >>> CNNSELSTM(dim=1, n_units=3)(torch.rand(3, 1, 143)).shape
    torch.Size([3, 4])
    """

    def __init__(
        self,
        dim: int = 2,
        n_units: int = 4,
        kernel_size: int = 3,
        kernels: int = 32,
        pooling: str = "avg",
        use_se: bool = True,
        se_hidden: int = 16,
        use_lstm: bool = True,
        lstm_hidden: int = 32,
        lstm_layers: int = 2,
        lstm_output: str = "sequence",
        dropout: float = 0.2,
        dropout_position: str = "head",
        fc_units: int = 128,
        activation: str = "relu",
        n_outputs: int = 4,
        in_length: int | None = None,
        in_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if dim not in (1, 2):
            raise InputError(f"dim must be 1 or 2, got {dim!r}")
        _positive(n_units=n_units)
        if not 1 <= n_units <= 5:
            raise InputError(f"n_units must be 1-5 (TrCSL Fig. 9(a)), got {n_units!r}")
        _positive(kernel_size=kernel_size, kernels=kernels, se_hidden=se_hidden,
                  lstm_hidden=lstm_hidden, lstm_layers=lstm_layers, fc_units=fc_units,
                  n_outputs=n_outputs)
        if pooling not in POOLINGS:
            raise InputError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        if activation not in ACTIVATIONS:
            raise InputError(
                f"activation {activation!r} is not one of {', '.join(ACTIVATIONS)}"
            )
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {dropout!r}")
        if lstm_output not in LSTM_OUTPUTS:
            raise InputError(f"lstm_output {lstm_output!r} is not one of {', '.join(LSTM_OUTPUTS)}")
        if dropout_position not in DROPOUT_POSITIONS:
            raise InputError(f"dropout_position {dropout_position!r} is not one of "
                             f"{', '.join(DROPOUT_POSITIONS)}")

        min_size = 2**n_units
        if dim == 1:
            if in_shape is not None:
                raise InputError("in_shape is for dim=2; give in_length for a 1D model")
            in_length = TRCSL_LINES_LENGTH if in_length is None else int(in_length)
            if in_length < min_size:
                raise InputError(f"in_length {in_length} < 2**n_units = {min_size}")
        else:
            if in_length is not None:
                raise InputError("in_length is for dim=1; give in_shape for a 2D model")
            in_shape = tuple(TRCSL_SHAPE if in_shape is None else (int(s) for s in in_shape))
            if len(in_shape) != 2 or min(in_shape) < min_size:
                raise InputError(f"in_shape must be (H, W) >= 2**n_units = {min_size}, "
                                 f"got {in_shape!r}")

        self.input_kind = "lines_1d" if dim == 1 else "image_2d"
        self.n_outputs = int(n_outputs)
        self.config: dict[str, Any] = {
            "dim": dim, "n_units": int(n_units), "kernel_size": int(kernel_size),
            "kernels": int(kernels), "pooling": pooling, "use_se": bool(use_se),
            "se_hidden": int(se_hidden), "use_lstm": bool(use_lstm),
            "lstm_hidden": int(lstm_hidden), "lstm_layers": int(lstm_layers),
            "lstm_output": lstm_output, "dropout": float(dropout),
            "dropout_position": dropout_position, "fc_units": int(fc_units), "activation": activation,
            "n_outputs": self.n_outputs, "in_length": in_length,
            # a list, not a tuple, so the config survives a JSON round trip unchanged
            "in_shape": None if dim == 1 else list(in_shape),
        }

        layers: list[nn.Module] = [ChannelInput(self.input_kind, min_size)]
        c_in = 1
        for _ in range(n_units):
            layers.append(_conv_unit(dim, c_in, kernels, kernel_size, activation, pooling,
                                     se_hidden if use_se else None))
            c_in = kernels
        if use_lstm:
            seq_width = in_shape[1] // min_size if dim == 2 else 1
            steps = max(1, (in_length if dim == 1 else in_shape[0]) // min_size)
            lstm = SequenceLSTM(dim, kernels, lstm_hidden, lstm_layers, seq_width,
                                output=lstm_output, steps=steps)
            layers.append(lstm)
            n_features = lstm.n_out
        else:
            # TrCSL flattens the feature maps into the FC layer: where on the wavelength axis a
            # feature sits is the information. A global average would throw it away. The map is
            # pooled to the design input's final size first, so any input size gives one FC shape.
            if dim == 1:
                out_size: tuple[int, ...] = (max(1, in_length // min_size),)
                pool: nn.Module = nn.AdaptiveAvgPool1d(out_size)
            else:
                out_size = (max(1, in_shape[0] // min_size), max(1, in_shape[1] // min_size))
                pool = nn.AdaptiveAvgPool2d(out_size)
            layers += [pool, nn.Flatten(1)]
            n_features = kernels * int(np.prod(out_size))
        head: list[tuple[str, nn.Module]] = []
        if dropout_position == "features":
            layers.append(nn.Dropout(dropout))
        else:
            head.append(("dropout", nn.Dropout(dropout)))
        self.features = nn.Sequential(*layers)
        self.n_head_inputs = int(n_features)
        # The FC layers keep the names "0" and "2" wherever the dropout sits, so one state dict
        # loads into either position. A checkpoint from before lstm_output / dropout_position
        # lacks them in its config; load_checkpoint fills their old behaviour ("last",
        # "features"), as today's defaults would build another head (544 inputs, not 32).
        self.head = nn.Sequential(OrderedDict([
            *head,
            ("0", nn.Linear(n_features, fc_units)),
            ("1", ACTIVATIONS[activation]()),
            ("2", nn.Linear(fc_units, self.n_outputs)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concentrations of a batch of spectra.

        Parameters
        ----------
        x : Tensor of shape (B, L), (B, 1, L), (B, H, W) or (B, 1, H, W)
            Input of this model's ``input_kind``: airPLS-corrected, min-max normalised spectra
            (``saca_lab.datasets.features``), by default then standardised per feature by
            :class:`~saca_lab.training.module.SpectraRegressor`.

        Returns
        -------
        Tensor of shape (B, n_outputs)
        """
        return self.head(self.features(x))


# Table 1 of TrCSL, plus the two-layer LSTM of Sec. 3.2 (see CNNSELSTM's lstm_layers)
TABLE1: dict[str, Any] = {
    "n_units": 4, "kernel_size": 3, "kernels": 32, "pooling": "avg", "dropout": 0.2,
    "activation": "relu", "se_hidden": 16, "lstm_hidden": 32, "lstm_layers": 2,
    "fc_units": 128, "n_outputs": 4,
}
# Fig. 9(a): three conv units are best in 1D; the rest of Table 1 carries over
TABLE1_1D: dict[str, Any] = {**TABLE1, "n_units": 3}

_ABLATIONS: dict[str, tuple[bool, bool, str]] = {
    "trcsl": (True, True, "CNN-SE-LSTM (TrCSL)"),
    "trcnn": (False, False, "CNN without SE and LSTM (TrCNN ablation)"),
    "trcnn_se": (True, False, "CNN-SE without LSTM (TrCNN-SE ablation)"),
    "trcnn_lstm": (False, True, "CNN-LSTM without SE (TrCNN-LSTM ablation)"),
}

for _name, (_se, _lstm, _what) in _ABLATIONS.items():
    register_model(
        _name,
        input_kind="image_2d",
        default_input=TRCSL_SHAPE,
        description=f"TrCSL 2D {_what}, Table 1: 125x131 input, 4 units of 32 3x3 kernels",
    )(
        preset(CNNSELSTM, _name, f"2D {_what} with TrCSL Table 1 hyperparameters.",
               dim=2, use_se=_se, use_lstm=_lstm, in_shape=TRCSL_SHAPE, **TABLE1)
    )
    register_model(
        f"{_name}_1d",
        input_kind="lines_1d",
        default_input=(TRCSL_LINES_LENGTH,),
        description=f"TrCSL 1D {_what} on line windows of 11 points (input length set by "
                    f"data.lines; 143 = the paper's 13 windows), 3 units (Fig. 9)",
    )(
        preset(CNNSELSTM, f"{_name}_1d", f"1D {_what} on characteristic-line windows.",
               dim=1, use_se=_se, use_lstm=_lstm, in_length=TRCSL_LINES_LENGTH, **TABLE1_1D)
    )

del _name, _se, _lstm, _what
