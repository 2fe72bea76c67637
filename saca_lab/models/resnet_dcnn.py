"""SACA: the 1D residual deep CNN that maps an OES spectrum to an alloy composition.

Reproduces the architecture of "Spectral Feature Extraction and Classification for Alloy
Composition Analysis using Deep Convolutional Neural Networks" (SACA), Sec. 3: five
convolutional blocks of 64-1024 filters (kernel 3, stride 1, padding 1, batch norm, ReLU)
with residual connections, three max-pools of 2, global average pooling, one fully connected
layer and a softmax output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from saca_lab.errors import InputError
from saca_lab.models.registry import ChannelInput, preset, register_model

#: Elements SACA quantifies (Sec. 4 "Dataset", Table 1), in output order.
SACA_ELEMENTS: tuple[str, ...] = ("Fe", "Cr", "Ni", "Mo", "La", "Ce", "Nd", "Pr", "Sm", "Eu")

#: Filters of the five stages at ``width=1`` (Sec. 3 "Convolutional Blocks").
SACA_FILTERS: tuple[int, ...] = (64, 128, 256, 512, 1024)

# Sec. 3 names three pools of 2 but not where they sit; after the first three stages keeps
# the wide stages 4-5 at 1/8 of the input length, where they are cheapest.
_POOL_AFTER = frozenset({0, 1, 2})

#: Spectrum length of SACA's input: 300-700 nm at 0.1 nm (Sec. 3 "Input Layer").
SACA_LENGTH = 4001

HEAD_TYPES = ("composition", "regression")


def _conv_bn(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    # bias is redundant before batch norm, which re-centres every channel
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, stride=1, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(c_out),
    )


class BasicBlock1d(nn.Module):
    """Residual block of two 3-point convolutions (He et al. 2016, "basic block"), in 1D.

    ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``; the shortcut is a 1x1 convolution
    with batch norm when the channel count changes, else the identity.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(c_in, c_out, 3)
        self.conv2 = _conv_bn(c_out, c_out, 3)
        self.shortcut = _conv_bn(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.conv1(x))
        return self.relu(self.conv2(out) + self.shortcut(x))


class Percent(nn.Module):
    """Softmax over the last dimension, times 100: mass fractions summing to 100 %.

    SACA's output layer is a softmax (Sec. 3 "Output Layer", eqn ``y = softmax(W f(W x))``);
    read as a composition, its probabilities are mass fractions.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # softmax in float32 under autocast: bf16 rounding would make the fractions miss 100
        # by up to ~0.5 %
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return torch.softmax(x, dim=-1) * 100.0


class ResNetDCNN(nn.Module):
    """SACA's 1D residual deep CNN (the "modified ResNet backbone" of Sec. 3).

    Five stages, each one :class:`BasicBlock1d` (kernel 3, stride 1, padding 1, batch norm,
    ReLU) with 64, 128, 256, 512, 1024 filters times ``width``; max-pools of 2 after stages
    1, 2 and 3; global average pooling; one fully connected layer to ``n_outputs``.

    Parameters
    ----------
    n_outputs : int, default=10
        Number of quantified elements; 10 is :data:`SACA_ELEMENTS` (Fe, Cr, Ni, Mo, La, Ce,
        Nd, Pr, Sm, Eu).
    head_type : {"composition", "regression"}, default="composition"
        ``"composition"``: softmax x 100, mass fractions in % summing to 100, as SACA's
        softmax output implies. ``"regression"``: independent linear outputs (for targets
        that need not sum to 100, or a loss on unconstrained values).
    width : float, default=1.0
        Multiplier of every filter count, rounded to an integer of at least 4; 0.125 gives a
        CPU-sized network.
    in_length : int, default=4001
        Expected spectrum length (300-700 nm at 0.1 nm). Only checked against the minimum
        (8 points: three pools of 2) and reported; any length of at least 8 works, because
        global average pooling removes the length before the fully connected layer.

    Attributes
    ----------
    features : nn.Sequential
        Input adapter, the five residual stages with their pools, global average pooling and
        flatten: ``(B, L)`` or ``(B, 1, L)`` to ``(B, channels[-1])``.
    head : nn.Sequential
        The fully connected layer, then :class:`Percent` for a composition head.
    channels : tuple of int
        Filters of the five stages after ``width``.
    n_outputs, input_kind, config
        See :mod:`saca_lab.models.registry`.

    References
    ----------
    .. [1] "Spectral Feature Extraction and Classification for Alloy Composition Analysis
       using Deep Convolutional Neural Networks" (SACA), Freederia Research Archive, Sec. 3.
    .. [2] K. He, X. Zhang, S. Ren and J. Sun, "Deep residual learning for image
       recognition", CVPR 2016.

    Examples
    --------
    >>> import torch
    >>> model = ResNetDCNN(width=0.0625).eval()
    >>> out = model(torch.rand(2, 256))
    >>> out.shape, bool(torch.allclose(out.sum(1), torch.tensor(100.0)))
    (torch.Size([2, 10]), True)
    """

    input_kind = "spectrum_1d"

    def __init__(
        self,
        n_outputs: int = 10,
        head_type: str = "composition",
        width: float = 1.0,
        in_length: int = SACA_LENGTH,
    ) -> None:
        super().__init__()
        if head_type not in HEAD_TYPES:
            raise InputError(f"head_type {head_type!r} is not one of {', '.join(HEAD_TYPES)}")
        if int(n_outputs) < 1:
            raise InputError(f"n_outputs must be at least 1, got {n_outputs}")
        if not float(width) > 0:
            raise InputError(f"width must be positive, got {width}")
        min_length = 2 ** len(_POOL_AFTER)
        if int(in_length) < min_length:
            raise InputError(f"in_length must be at least {min_length}, got {in_length}")
        if int(n_outputs) == 1 and head_type == "composition":
            raise InputError("a composition head needs at least 2 outputs (one is always 100 %)")

        self.n_outputs = int(n_outputs)
        self.head_type = head_type
        self.channels = tuple(max(4, round(c * float(width))) for c in SACA_FILTERS)
        self.config: dict[str, Any] = {
            "n_outputs": self.n_outputs,
            "head_type": head_type,
            "width": float(width),
            "in_length": int(in_length),
        }

        layers: list[nn.Module] = [ChannelInput(self.input_kind, min_length)]
        c_in = 1
        for i, c_out in enumerate(self.channels):
            layers.append(BasicBlock1d(c_in, c_out))
            if i in _POOL_AFTER:
                layers.append(nn.MaxPool1d(2))
            c_in = c_out
        layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten(1)]
        self.features = nn.Sequential(*layers)

        head: list[nn.Module] = [nn.Linear(c_in, self.n_outputs)]
        if head_type == "composition":
            head.append(Percent())
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Composition (or regression outputs) of a batch of spectra.

        Parameters
        ----------
        x : Tensor of shape (B, L) or (B, 1, L)
            Min-max scaled spectra, ``L >= 8``.

        Returns
        -------
        Tensor of shape (B, n_outputs)
        """
        return self.head(self.features(x))


_DESCRIPTION = (
    "SACA 1D residual DCNN (5 stages 64-1024 filters{}, 3 max-pools, GAP, FC, softmax x 100) "
    "for OES spectra of stainless steel with REEs"
)

register_model(
    "resnet_dcnn",
    input_kind="spectrum_1d",
    default_input=(SACA_LENGTH,),
    description=_DESCRIPTION.format(""),
)(preset(ResNetDCNN, "resnet_dcnn", "SACA's residual DCNN at full width (Sec. 3).", width=1.0))

register_model(
    "resnet_dcnn_small",
    input_kind="spectrum_1d",
    default_input=(SACA_LENGTH,),
    description=_DESCRIPTION.format(" x 0.125: 8-128, CPU-sized"),
)(
    preset(
        ResNetDCNN,
        "resnet_dcnn_small",
        "SACA's residual DCNN at 1/8 width (8-128 filters): trainable on a CPU.",
        width=0.125,
    )
)
