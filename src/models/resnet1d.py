"""The residual network for time series classification (Wang, Yan and Oates, 2017; Fawaz et al., 2019): three
residual blocks of three convolutions each, global average pooling over time, a linear classifier."""

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from src.models.fcn import ConvNorm, PooledConvNet, sequence_features


class ResidualBlock(nn.Module):
    """conv-BN-ReLU, conv-BN-ReLU, conv-BN, plus the shortcut, then ReLU; the shortcut is a 1x1 conv + BN when the
    channels change, the input itself otherwise. Padded steps stay zero."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        pairs = pairwise([in_channels] + [out_channels] * len(kernel_sizes))  # (in, out) of each convolution
        last = len(kernel_sizes) - 1  # the last one has no ReLU of its own: it comes after the sum
        self.convs = nn.ModuleList(
            ConvNorm(c_in, c_out, k, relu=i < last)
            for i, ((c_in, c_out), k) in enumerate(zip(pairs, kernel_sizes, strict=True))
        )
        self.shortcut = ConvNorm(in_channels, out_channels, 1, relu=False) if in_channels != out_channels else None

    def forward(self, h: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        residual = h if self.shortcut is None else self.shortcut(h, lengths)  # (B, C_out, T)
        for conv in self.convs:
            h = conv(h, lengths)  # (B, C_out, T)
        return F.relu(h + residual)  # (B, C_out, T): both terms zero at the padding


class ResNet1D(PooledConvNet):
    """Residual blocks (64, 128, 128 channels; kernels 8, 5, 3 in each), masked average pooling, dropout, linear."""

    def __init__(
        self,
        input_shape: Sequence[int | None],
        num_classes: int,
        channels: Sequence[int] = (64, 128, 128),
        kernel_sizes: Sequence[int] = (8, 5, 3),
        dropout: float = 0.0,
    ) -> None:
        features = sequence_features("ResNet1D", input_shape)
        if not channels or not kernel_sizes:
            raise ValueError(
                f"ResNet1D needs at least one block and one convolution: channels={list(channels)}, "
                f"kernel_sizes={list(kernel_sizes)}"
            )
        blocks = [ResidualBlock(c_in, c_out, kernel_sizes) for c_in, c_out in pairwise([features, *channels])]
        super().__init__(blocks, channels[-1], num_classes, dropout)
