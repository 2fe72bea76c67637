"""GLL: a small fully connected network trained with the Gaussian negative log-likelihood.

TrCSL (Ma et al., JAAS 2025, 40, 1810, Fig. 15) compares itself with "GLL", the artificial
neural network of its ref. 35 (Z. Liu, Q. Ma, T. Zhang et al., Opt. Laser Technol., 2025,
181, 111720) that is trained with the Gaussian negative log-likelihood and reached R2 of
0.988-0.994 for Mn, Mo, Cr and Cu on six stainless steels. The network predicts, for every
element, a mean and a variance (Nix and Weigend, 1994; Lakshminarayanan et al., 2017), so each
prediction carries its own uncertainty.

Output layout
-------------
The raw output is ``(B, 2 * n_outputs)``: the means, then the log-variances, both in
standardised target units (``SpectraRegressor`` standardises targets on the training split).
:func:`split_mean_logvar` separates them. Models with this layout set the class attribute
``predicts_std = True``; the training module then trains them with
:class:`torch.nn.GaussianNLLLoss` and reports a standard deviation next to every mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from saca_lab.errors import InputError
from saca_lab.models.cnn_se_lstm import ACTIVATIONS, TRCSL_LINES_LENGTH
from saca_lab.models.registry import ChannelInput, preset, register_model

#: Length of the TrCSL instrument's spectrum (the 125 x 131 image unfolded, Sec. 2.3.1).
TRCSL_SPECTRUM_LENGTH = 16375
GLL_INPUT_KINDS = ("lines_1d", "spectrum_1d")


def split_mean_logvar(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means and log-variances of a ``predicts_std`` model's raw output.

    Parameters
    ----------
    raw : Tensor of shape (B, 2 * n)

    Returns
    -------
    mean, logvar : Tensor of shape (B, n) each
    """
    return raw.chunk(2, dim=1)


class FixedLength(nn.Module):
    """Check that a ``(B, 1, L)`` input has the length the first dense layer was built for.

    A dense layer ties each weight to one input position (one point of one line window), so a
    different length is refused instead of being resampled to fit.
    """

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = int(length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.length:
            raise InputError(f"this GLL model was built for inputs of {self.length} points, "
                             f"got {x.shape[-1]} (set in_length to the feature length)")
        return x

    def extra_repr(self) -> str:
        return f"length={self.length}"


class MeanLogVar(nn.Module):
    """Keep the log-variance half of ``(B, 2n)`` within ``[lo, hi]``, smoothly.

    A hard clamp has zero gradient outside the range, so a log-variance pushed past a bound
    could never come back; two softplus steps bound it while the gradient stays positive, and
    leave values well inside the range unchanged. Means pass unchanged.
    """

    def __init__(self, lo: float, hi: float) -> None:
        super().__init__()
        self.lo, self.hi = float(lo), float(hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, logvar = split_mean_logvar(x)
        logvar = self.hi - F.softplus(self.hi - logvar)
        logvar = self.lo + F.softplus(logvar - self.lo)
        return torch.cat([mean, logvar], dim=1)

    def extra_repr(self) -> str:
        return f"lo={self.lo}, hi={self.hi}"


class GLLRegressor(nn.Module):
    """Fully connected network with a mean and a log-variance per element (TrCSL ref. 35).

    Input adapter, then ``len(hidden)`` dense layers, each followed by the activation and
    dropout (the feature extractor), then one dense layer to ``2 * n_outputs`` values (the
    head): means and log-variances in standardised target units, see :mod:`saca_lab.models.gll`.

    Parameters
    ----------
    input_kind : {"lines_1d", "spectrum_1d"}, default="lines_1d"
        ``"lines_1d"``: the TrCSL characteristic-line windows, taken point by point.
        ``"spectrum_1d"``: a full spectrum of any length, first averaged into ``n_bins``
        equal bins so the dense layers do not depend on the instrument's grid.
    in_length : int, optional
        ``"lines_1d"`` only: input length (default 143, 13 lines x 11 points).
    n_bins : int, optional
        ``"spectrum_1d"`` only: bins of the averaged spectrum (default 1024).
    hidden : sequence of int, default=(64, 32)
        Units of the hidden layers. Two small layers: with 10-20 samples a wider network only
        memorises the training samples.
    dropout : float, default=0.1
        Dropout after each hidden layer.
    activation : {"relu", "gelu", "tanh", "elu", "leaky_relu", "sigmoid"}, default="relu"
    n_outputs : int, default=4
        Elements; the raw output has twice as many columns.
    logvar_min, logvar_max : float, default=-10.0, 5.0
        Bounds of the log-variance (standardised units: a standard deviation between 0.7 %
        and 12 times the training targets' spread), applied smoothly by :class:`MeanLogVar`.

    Attributes
    ----------
    predicts_std : bool
        True: the raw output holds means and log-variances (class attribute).
    features : nn.Sequential
        Input adapter and hidden layers (frozen when transferred).
    head : nn.Sequential
        The output layer and the log-variance bound.
    n_outputs, input_kind, config
        See :mod:`saca_lab.models.registry`.

    Notes
    -----
    The log-variance rows of the output layer start at zero, so training starts from the
    variance of the standardised targets (1) rather than from a random one; a random start
    can put large weights on the first NLL steps of a few-sample problem.

    References
    ----------
    .. [1] Z. Liu, Q. Ma, T. Zhang et al., Opt. Laser Technol., 2025, 181, 111720 (TrCSL
       ref. 35).
    .. [2] S. Ma, S. Xu, C. Pan et al., "TrCSL: a transferred CNN-SE-LSTM model for
       high-accuracy quantitative analysis of laser-induced breakdown spectroscopy with small
       samples", J. Anal. At. Spectrom., 2025, 40, 1810, Fig. 15.
    .. [3] D. A. Nix and A. S. Weigend, "Estimating the mean and variance of the target
       probability distribution", ICNN 1994.

    Examples
    --------
    >>> import torch
    >>> model = GLLRegressor(n_outputs=2).eval()
    >>> model(torch.rand(5, 143)).shape
    torch.Size([5, 4])
    >>> mean, logvar = split_mean_logvar(model(torch.rand(5, 1, 143)))
    >>> mean.shape, bool((logvar > -10).all())
    (torch.Size([5, 2]), True)
    """

    predicts_std = True

    def __init__(
        self,
        input_kind: str = "lines_1d",
        in_length: int | None = None,
        n_bins: int | None = None,
        hidden: int | Sequence[int] = (64, 32),
        dropout: float = 0.1,
        activation: str = "relu",
        n_outputs: int = 4,
        logvar_min: float = -10.0,
        logvar_max: float = 5.0,
    ) -> None:
        super().__init__()
        if input_kind not in GLL_INPUT_KINDS:
            raise InputError(f"input_kind {input_kind!r} is not one of {', '.join(GLL_INPUT_KINDS)}")
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        sizes = {"n_outputs": n_outputs, **{f"hidden[{i}]": h for i, h in enumerate(hidden)}}
        if input_kind == "lines_1d":
            if n_bins is not None:
                raise InputError("n_bins is for input_kind 'spectrum_1d'; give in_length for lines")
            in_length = TRCSL_LINES_LENGTH if in_length is None else in_length
            sizes["in_length"] = in_length
        else:
            if in_length is not None:
                raise InputError("in_length is for input_kind 'lines_1d'; give n_bins for spectra")
            n_bins = 1024 if n_bins is None else n_bins
            sizes["n_bins"] = n_bins
        if not hidden:
            raise InputError("hidden must list at least one layer size")
        for key, value in sizes.items():
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise InputError(f"{key} must be a positive integer, got {value!r}")
        if activation not in ACTIVATIONS:
            raise InputError(f"activation {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {dropout!r}")
        if not logvar_min < logvar_max:
            raise InputError(f"logvar_min ({logvar_min}) must be below logvar_max ({logvar_max})")

        self.input_kind = input_kind
        self.n_outputs = int(n_outputs)
        hidden = [int(h) for h in hidden]
        self.config: dict[str, Any] = {
            "input_kind": input_kind,
            "in_length": None if in_length is None else int(in_length),
            "n_bins": None if n_bins is None else int(n_bins),
            "hidden": hidden,  # a list, so the config survives a JSON round trip unchanged
            "dropout": float(dropout), "activation": activation, "n_outputs": self.n_outputs,
            "logvar_min": float(logvar_min), "logvar_max": float(logvar_max),
        }
        if input_kind == "lines_1d":
            adapter: nn.Module = FixedLength(in_length)
            n_in = int(in_length)
        else:
            adapter = nn.AdaptiveAvgPool1d(int(n_bins))
            n_in = int(n_bins)
        layers: list[nn.Module] = [ChannelInput(input_kind), adapter, nn.Flatten(1)]
        for units in hidden:
            layers += [nn.Linear(n_in, units), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            n_in = units
        self.features = nn.Sequential(*layers)
        out = nn.Linear(n_in, 2 * self.n_outputs)
        with torch.no_grad():
            out.weight[self.n_outputs:].zero_()
            out.bias[self.n_outputs:].zero_()
        self.head = nn.Sequential(out, MeanLogVar(logvar_min, logvar_max))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Means and log-variances of a batch.

        Parameters
        ----------
        x : Tensor of shape (B, L) or (B, 1, L)
            Input of this model's ``input_kind``.

        Returns
        -------
        Tensor of shape (B, 2 * n_outputs)
            Means, then log-variances (standardised target units).
        """
        return self.head(self.features(x))


register_model(
    "gll",
    input_kind="lines_1d",
    default_input=(TRCSL_LINES_LENGTH,),
    description="GLL (TrCSL ref. 35): 2-layer MLP on line windows, mean + std per element "
                "trained with the Gaussian NLL",
)(preset(GLLRegressor, "gll", "GLL on characteristic-line windows (TrCSL ref. 35, Fig. 15).",
         input_kind="lines_1d"))

register_model(
    "gll_spectrum",
    input_kind="spectrum_1d",
    default_input=(TRCSL_SPECTRUM_LENGTH,),
    description="GLL (TrCSL ref. 35) on the full spectrum averaged into 1024 bins, mean + std "
                "per element trained with the Gaussian NLL",
)(preset(GLLRegressor, "gll_spectrum", "GLL on the full spectrum in 1024 bins (TrCSL ref. 35).",
         input_kind="spectrum_1d"))
