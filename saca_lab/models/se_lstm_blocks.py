"""The two blocks TrCSL adds to a plain CNN: squeeze-excitation channel attention and the LSTM
over the feature map (Ma et al., J. Anal. At. Spectrom., 2025, 40, 1810, Sec. 2.3.2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from saca_lab.errors import InputError

#: What the LSTM hands to the head (see :class:`SequenceLSTM`).
LSTM_OUTPUTS = ("sequence", "last")


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel attention (TrCSL Sec. 2.3.2.2, Fig. 6; Hu et al. 2018).

    Squeeze: global average over the spatial dimensions. Excitation: FC to ``hidden`` units,
    ReLU, FC back to ``channels``, sigmoid. The input is re-weighted channel by channel.

    Parameters
    ----------
    channels : int
        Feature-map channels.
    hidden : int
        Units of the first FC layer (16 in TrCSL Table 1, from the Fig. S3 sweep).
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = tuple(range(2, x.dim()))
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=spatial)))))
        # a broadcast multiply keeps x's memory format (channels_last stays channels_last)
        return x * w.view(*w.shape, *(1,) * len(spatial))


class SequenceLSTM(nn.Module):
    """Serialise a feature map and run a stacked LSTM over it (Sec. 2.3.2.3).

    1D: the sequence runs over length, one step per position, features = channels.
    2D: the sequence runs over rows (H), features = the row's ``seq_width x channels``
    values. A row of the 125 x 131 image is 131 consecutive spectral points, so rows are
    successive wavelength bands and the sequence follows the spectrum. The width is first
    adaptive-average-pooled to ``seq_width`` (the width the design input size reaches after
    the pools, 8 for 131 columns and 4 units), so the LSTM's input size, and hence the
    weights, do not depend on the input size; at the design size the pool is skipped.

    ``output="sequence"`` returns the top layer's output at every step, flattened step after
    step, so where on the wavelength axis a feature sits reaches the head, as in the flattened
    maps of TrCNN / TrCNN-SE. The sequence is first pooled to ``steps`` (its length at the
    design input size), so the head's width does not depend on the input size either.
    ``output="last"`` returns the last hidden state only (``hidden`` numbers).

    The LSTM always runs in the dtype of its weights, with autocast disabled. torch 2.13
    would run it in bf16 under CPU autocast (oneDNN), but bf16 has an 8-bit mantissa that the
    recurrence compounds step after step, older builds and other backends lack bf16 LSTM
    kernels, and the LSTM is a small share of the compute, so float32 costs little.

    Parameters
    ----------
    dim : {1, 2}
        Spatial dimensions of the feature map.
    channels : int
        Channels of the feature map.
    hidden : int
        LSTM hidden units (32 in Table 1, from the Fig. S4 sweep).
    layers : int
        Stacked LSTM layers.
    seq_width : int, default=1
        2D only: width the rows are pooled to.
    output : {"sequence", "last"}, default="sequence"
        What goes to the head: every step's output, flattened, or the last hidden state.
    steps : int, default=1
        Sequence length the map is pooled to when ``output="sequence"``.

    Attributes
    ----------
    n_out : int
        Width of the output: ``steps * hidden`` or ``hidden``.
    """

    def __init__(self, dim: int, channels: int, hidden: int, layers: int, seq_width: int = 1,
                 output: str = "sequence", steps: int = 1):
        super().__init__()
        if output not in LSTM_OUTPUTS:
            raise InputError(f"lstm_output {output!r} is not one of {', '.join(LSTM_OUTPUTS)}")
        self.dim = dim
        self.seq_width = seq_width
        self.output = output
        self.steps = int(steps)
        self.n_out = hidden * (self.steps if output == "sequence" else 1)
        n_in = channels * (seq_width if dim == 2 else 1)
        self.lstm = nn.LSTM(n_in, hidden, num_layers=layers, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool_steps = self.output == "sequence" and x.shape[2] != self.steps
        if self.dim == 1:
            if pool_steps:
                x = F.adaptive_avg_pool1d(x, self.steps)
            seq = x.transpose(1, 2)
        else:
            if x.shape[-1] != self.seq_width or pool_steps:
                rows = self.steps if self.output == "sequence" else x.shape[-2]
                x = F.adaptive_avg_pool2d(x, (rows, self.seq_width))
            # (B, H, W, C) order is a free view of a channels_last map
            seq = x.permute(0, 2, 3, 1).flatten(2)
        seq = seq.to(self.lstm.weight_ih_l0.dtype).contiguous()
        with torch.autocast(device_type=seq.device.type, enabled=False):
            out, (h_n, _) = self.lstm(seq)
        return out.flatten(1) if self.output == "sequence" else h_n[-1]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, seq_width={self.seq_width}, output={self.output}, steps={self.steps}"
