"""SACA: the 1D residual deep CNN that maps an OES spectrum to an alloy composition.

"Spectral Feature Extraction and Classification for Alloy Composition Analysis using Deep
Convolutional Neural Networks" (SACA), Sec. 3, describes a *modified ResNet-50*: five blocks of
"multiple convolutional layers" with 64-1024 filters (kernel 3, stride 1, padding 1, batch
norm, ReLU), residual connections, three max-pools of 2, global average pooling, a fully
connected layer and a softmax output. Read as ResNet-50 in 1D, that is a stem convolution of 64
filters and four stages of 3, 4, 6 and 3 bottleneck blocks ending in 128, 256, 512 and 1024
filters, with SACA's three max-pools between the four stages (ResNet-50 downsamples with strided
convolutions there instead; ``downsample="stride"``).

Where the paper is vague the choices are options, so that they can be measured
(``benchmarks/bench_saca.py``, BENCHMARKS.md "SACA"): ``blocks`` (depth), ``block`` (bottleneck
or basic), ``downsample`` (max-pool or strided), ``pooling`` (global average, or ``"bins"``:
average over ``head_bins`` equal segments of the wavelength axis, flattened, so the head knows
where a feature sits) and ``rest`` (a composition head with an extra, unreported "rest" output).
Two defaults depart from the paper because the paper's choice was measured not to work here:
the head is flattened (``pooling="bins"``; with GAP the network did not learn, test R2 < 0 for
every element) and the stem convolution has stride 4 (ResNet-50's stem reduces by 4 too, with a
strided convolution and a max-pool; at stride 1 the 16 blocks cost four times as much on
4,001 points).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from saca_lab.errors import InputError
from saca_lab.models.registry import ChannelInput, preset, register_model

#: Elements SACA quantifies (Sec. 4 "Dataset", Table 1), in output order.
SACA_ELEMENTS: tuple[str, ...] = ("Fe", "Cr", "Ni", "Mo", "La", "Ce", "Nd", "Pr", "Sm", "Eu")

#: Filters of the stem and the four stages at ``width=1`` (Sec. 3 "Convolutional Blocks").
SACA_FILTERS: tuple[int, ...] = (64, 128, 256, 512, 1024)

#: Residual blocks per stage of ResNet-50 (He et al. 2016, Table 1).
RESNET50_BLOCKS: tuple[int, ...] = (3, 4, 6, 3)

#: Spectrum length of SACA's input: 300-700 nm at 0.1 nm (Sec. 3 "Input Layer").
SACA_LENGTH = 4001

HEAD_TYPES = ("composition", "regression")
BLOCKS = ("bottleneck", "basic")
DOWNSAMPLE = ("pool", "stride")
POOLING = ("gap", "bins")

# ResNet-50's bottleneck narrows to a quarter of the stage's output filters.
_BOTTLENECK_RATIO = 4


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    # bias is redundant before batch norm, which re-centres every channel
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(c_out),
    )


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    return _conv_bn(c_in, c_out, 1, stride) if (c_in != c_out or stride != 1) else nn.Identity()


class BasicBlock1d(nn.Module):
    """Residual block of two 3-point convolutions (He et al. 2016, "basic block"), in 1D.

    ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``; the shortcut is a 1x1 convolution
    with batch norm when the channel count changes, else the identity.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    stride : int, default=1
        Stride of the first convolution and the shortcut (2 halves the length).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv_bn(c_in, c_out, 3, stride)
        self.conv2 = _conv_bn(c_out, c_out, 3)
        # the residual branch starts at zero, so a deep stack starts as (nearly) the identity
        nn.init.zeros_(self.conv2[1].weight)
        self.shortcut = _shortcut(c_in, c_out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.conv1(x))
        return self.relu(self.conv2(out) + self.shortcut(x))


class Bottleneck1d(nn.Module):
    """ResNet-50's bottleneck block in 1D: 1x1 narrow, 3-point convolution, 1x1 widen.

    ``relu(bn(conv1x1(relu(bn(conv3(relu(bn(conv1x1(x)))))))) + shortcut(x))``; the middle
    convolution carries the stride (as in torchvision's ResNet v1.5), the shortcut is a 1x1
    convolution with batch norm when channels or length change. The last batch norm starts at
    zero (Goyal et al. 2017), so every block starts as the identity and 16 of them train from
    the first step.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    stride : int, default=1
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        mid = max(2, c_out // _BOTTLENECK_RATIO)
        self.conv1 = _conv_bn(c_in, mid, 1)
        self.conv2 = _conv_bn(mid, mid, 3, stride)
        self.conv3 = _conv_bn(mid, c_out, 1)
        nn.init.zeros_(self.conv3[1].weight)
        self.shortcut = _shortcut(c_in, c_out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.conv1(x))
        out = self.relu(self.conv2(out))
        return self.relu(self.conv3(out) + self.shortcut(x))


class BinFeatures(nn.Module):
    """Averages over ``bins`` equal segments of the length axis, flattened and divided by ``bins``.

    The division keeps the fully connected head trainable with Adam: Adam moves every weight by
    about the learning rate per step, so a logit moves by about ``lr * sum(|features|)``, which
    would be ``bins`` times a global-average head's (125 x 128 inputs at 1/8 width: the validation
    loss of the quick mode rose from 0.9 to 1.6 in its first five epochs without it). With it, the
    sum of the features is that of global average pooling, and ``bins = 1`` is exactly GAP.

    Parameters
    ----------
    bins : int
    """

    def __init__(self, bins: int) -> None:
        super().__init__()
        self.bins = int(bins)
        self.pool = nn.AdaptiveAvgPool1d(self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x).flatten(1) / self.bins


class Percent(nn.Module):
    """Softmax over the last dimension, times 100: mass fractions summing to 100 %.

    SACA's output layer is a softmax (Sec. 3 "Output Layer", eqn ``y = softmax(W f(W x))``);
    read as a composition, its probabilities are mass fractions.

    Parameters
    ----------
    rest : bool, default=False
        The last input is a "rest" logit: what the reported elements leave to 100 % (Mn, Si, C
        and the other unreported elements of a stainless steel). It takes part in the softmax
        and is dropped from the output, so the outputs sum to ``100 - rest``: the composition
        closes to 100 % over what the network predicts, while the ten reported targets sum to
        96.9-99.3 %. It is trained through the softmax (every reported element's error moves
        it); it needs no target of its own.
    """

    def __init__(self, rest: bool = False) -> None:
        super().__init__()
        self.rest = bool(rest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # softmax in float32 under autocast: bf16 rounding would make the fractions miss 100
        # by up to ~0.5 %
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        out = torch.softmax(x, dim=-1) * 100.0
        return out[..., :-1] if self.rest else out


class ResNetDCNN(nn.Module):
    """SACA's 1D residual deep CNN (the "modified ResNet-50 backbone" of Sec. 3).

    A stem convolution (kernel ``stem_kernel``, ``channels[0]`` filters), then four stages of
    ``blocks`` residual blocks with ``channels[1:]`` output filters; the length halves before
    stages 2, 3 and 4 (SACA's three max-pools, or strided convolutions); then averages over
    ``head_bins`` segments of the wavelength axis, flattened (or SACA's global average pooling),
    and one fully connected layer.

    Parameters
    ----------
    n_outputs : int, default=10
        Number of quantified elements; 10 is :data:`SACA_ELEMENTS` (Fe, Cr, Ni, Mo, La, Ce,
        Nd, Pr, Sm, Eu).
    head_type : {"composition", "regression"}, default="composition"
        ``"composition"``: softmax x 100, mass fractions in % (see ``rest``).
        ``"regression"``: independent linear outputs (standardised targets).
    width : float, default=1.0
        Multiplier of every filter count (:data:`SACA_FILTERS`), rounded, at least 4; 0.125
        gives a CPU-sized network.
    in_length : int, default=4001
        Expected spectrum length (300-700 nm at 0.1 nm). Only checked against the minimum
        (``2 ** 3 * stem_stride`` points) and recorded; any longer length works.
    blocks : sequence of 4 int, default=(3, 4, 6, 3)
        Residual blocks per stage (ResNet-50's 3-4-6-3; ``(1, 1, 1, 1)`` is a shallow variant).
    block : {"bottleneck", "basic"}, default="bottleneck"
        ResNet-50's 1x1-3-1x1 bottleneck (:class:`Bottleneck1d`) or two 3-point convolutions
        (:class:`BasicBlock1d`).
    downsample : {"pool", "stride"}, default="pool"
        Max-pool of 2 before stages 2-4 (SACA's three max-pools) or a stride of 2 in their first
        block (ResNet-50).
    pooling : {"gap", "bins"}, default="bins"
        The average over ``head_bins`` equal segments of the wavelength axis, flattened (the
        head sees where on the axis a feature sits), or global average pooling (SACA's "GAP").
        ``"bins"`` is the default because GAP did not learn: convolutions are blind to
        position, so after GAP a line of Cr and one of Ni differ only by their neighbourhood,
        and the per-pixel standardisation gives the ~4,000 quiet pixels as much weight as the
        lines (measured in BENCHMARKS.md "SACA": test R2 < 0 for every element with GAP).
    head_bins : int, default=125
        Segments of ``pooling="bins"``; 125 is the whole feature map of a 4,001-point spectrum
        after the stem's stride 4 and three halvings (3.2 nm per segment), i.e. SACA's
        flattened feature map, as TrCSL's models use.
    stem_kernel : int, default=7
        Kernel of the stem convolution (odd).
    stem_stride : int, default=4
        Stride of the stem convolution (ResNet-50's is 2). A line's FWHM is ~2 pixels on the
        0.1 nm grid, but the stem's filters see every pixel and keep sub-pixel detail in their
        channels; stride 2 halves the cost of every later layer, which on a CPU decides
        whether the 16-block network trains at all.
    rest : bool, default=True
        Composition head only: an extra "rest" output closes the composition to 100 % (see
        :class:`Percent`); ``False`` makes the reported outputs themselves sum to 100 %.

    Attributes
    ----------
    features : nn.Sequential
        Input adapter, stem, stages with their pools, pooling and flatten:
        ``(B, L)`` or ``(B, 1, L)`` to ``(B, channels[-1] * bins)``.
    head : nn.Sequential
        The fully connected layer, then :class:`Percent` for a composition head.
    channels : tuple of int
        Filters of the stem and the four stages after ``width``.
    n_outputs, input_kind, config
        See :mod:`saca_lab.models.registry`.

    References
    ----------
    .. [1] "Spectral Feature Extraction and Classification for Alloy Composition Analysis
       using Deep Convolutional Neural Networks" (SACA), Freederia Research Archive, Sec. 3.
    .. [2] K. He, X. Zhang, S. Ren and J. Sun, "Deep residual learning for image
       recognition", CVPR 2016.
    .. [3] P. Goyal et al., "Accurate, large minibatch SGD: training ImageNet in 1 hour",
       arXiv:1706.02677, 2017 (zero-initialised last batch norm of each residual block).

    Examples
    --------
    >>> import torch
    >>> model = ResNetDCNN(width=0.0625).eval()
    >>> out = model(torch.rand(2, 256))
    >>> out.shape, bool((out.sum(1) < 100).all())
    (torch.Size([2, 10]), True)
    """

    input_kind = "spectrum_1d"

    def __init__(
        self,
        n_outputs: int = 10,
        head_type: str = "composition",
        width: float = 1.0,
        in_length: int = SACA_LENGTH,
        blocks: tuple[int, ...] | list[int] = RESNET50_BLOCKS,
        block: str = "bottleneck",
        downsample: str = "pool",
        pooling: str = "bins",
        head_bins: int = 125,
        stem_kernel: int = 7,
        stem_stride: int = 4,
        rest: bool = True,
    ) -> None:
        super().__init__()
        for name, value, allowed in (("head_type", head_type, HEAD_TYPES), ("block", block, BLOCKS),
                                     ("downsample", downsample, DOWNSAMPLE), ("pooling", pooling, POOLING)):
            if value not in allowed:
                raise InputError(f"{name} {value!r} is not one of {', '.join(allowed)}")
        if int(n_outputs) < 1:
            raise InputError(f"n_outputs must be at least 1, got {n_outputs}")
        if not float(width) > 0:
            raise InputError(f"width must be positive, got {width}")
        blocks = tuple(blocks)
        if len(blocks) != 4 or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in blocks):
            raise InputError(f"blocks must be 4 integers >= 1 (blocks per stage), got {list(blocks)}")
        if int(head_bins) < 1:
            raise InputError(f"head_bins must be at least 1, got {head_bins}")
        if int(stem_kernel) < 1 or int(stem_kernel) % 2 == 0:
            raise InputError(f"stem_kernel must be odd and positive, got {stem_kernel}")
        if int(stem_stride) < 1 or int(stem_stride) > int(stem_kernel):
            raise InputError(f"stem_stride must be between 1 and stem_kernel, got {stem_stride}")
        min_length = 2 ** (len(blocks) - 1) * int(stem_stride)
        if int(in_length) < min_length:
            raise InputError(f"in_length must be at least {min_length}, got {in_length}")
        if int(n_outputs) == 1 and head_type == "composition" and not rest:
            raise InputError("a composition head without rest needs at least 2 outputs (one is always 100 %)")

        self.n_outputs = int(n_outputs)
        self.head_type = head_type
        self.channels = tuple(max(4, round(c * float(width))) for c in SACA_FILTERS)
        self.config: dict[str, Any] = {
            "n_outputs": self.n_outputs,
            "head_type": head_type,
            "width": float(width),
            "in_length": int(in_length),
            "blocks": list(blocks),
            "block": block,
            "downsample": downsample,
            "pooling": pooling,
            "head_bins": int(head_bins),
            "stem_kernel": int(stem_kernel),
            "stem_stride": int(stem_stride),
            "rest": bool(rest),
        }

        unit = Bottleneck1d if block == "bottleneck" else BasicBlock1d
        layers: list[nn.Module] = [ChannelInput(self.input_kind, min_length),
                                   _conv_bn(1, self.channels[0], int(stem_kernel), int(stem_stride)), nn.ReLU(inplace=True)]
        c_in = self.channels[0]
        for stage, (n_blocks, c_out) in enumerate(zip(blocks, self.channels[1:], strict=True)):
            stride = 1
            if stage > 0 and downsample == "pool":
                layers.append(nn.MaxPool1d(2))
            elif stage > 0:
                stride = 2
            for i in range(n_blocks):
                layers.append(unit(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        bins = 1 if pooling == "gap" else int(head_bins)
        layers.append(BinFeatures(bins))
        self.features = nn.Sequential(*layers)

        with_rest = head_type == "composition" and bool(rest)
        head: list[nn.Module] = [nn.Linear(c_in * bins, self.n_outputs + int(with_rest))]
        if head_type == "composition":
            head.append(Percent(rest=with_rest))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Composition (or regression outputs) of a batch of spectra.

        Parameters
        ----------
        x : Tensor of shape (B, L) or (B, 1, L)
            Spectra (standardised per pixel by the training module), ``L >= 8``.

        Returns
        -------
        Tensor of shape (B, n_outputs)
        """
        return self.head(self.features(x))


_DESCRIPTION = (
    "SACA 1D ResNet-50-style DCNN (stem + 3-4-6-3 bottleneck stages, {}, 3 max-pools, "
    "flattened head, FC, softmax x 100 with a rest output) for OES spectra of stainless steel with REEs"
)

register_model(
    "resnet_dcnn",
    input_kind="spectrum_1d",
    default_input=(SACA_LENGTH,),
    description=_DESCRIPTION.format("64-1024 filters"),
)(preset(ResNetDCNN, "resnet_dcnn", "SACA's ResNet-50-style DCNN at full width (Sec. 3).", width=1.0))

register_model(
    "resnet_dcnn_small",
    input_kind="spectrum_1d",
    default_input=(SACA_LENGTH,),
    description=_DESCRIPTION.format("8-128 filters, CPU-sized"),
)(
    preset(
        ResNetDCNN,
        "resnet_dcnn_small",
        "SACA's DCNN at 1/8 width (8-128 filters), same design: trainable on a CPU.",
        width=0.125,
    )
)
