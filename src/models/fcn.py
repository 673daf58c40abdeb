"""The fully convolutional network for time series classification (Wang, Yan and Oates, 2017): three
convolution-batch norm-ReLU blocks, global average pooling over time, a linear classifier."""

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from src.models.masking import mask_padding, masked_batch_norm, masked_mean


def sequence_features(name: str, input_shape: Sequence[int | None]) -> int:
    """D, the features per step of a (T, D) input_shape (T may be None: any length); refuses any other shape."""
    shape = list(input_shape)
    if len(shape) != 2 or not isinstance(shape[1], int) or shape[1] < 1:
        raise ValueError(f"{name} reads (T, D) sequences; data.input_shape is {shape}")
    return shape[1]


class ConvNorm(nn.Module):
    """A 'same' convolution over time, then batch norm (and ReLU); padded steps stay zero in its output.

    The 'same' padding is explicit, (k - 1) // 2 steps before and k // 2 after (asymmetric for an even k, as Keras
    and torch's padding='same' place it): a series' last steps read zeros past its end whether those are this
    padding or the batch's zeroed padding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, relu: bool = True) -> None:
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)  # (before, after) the series
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, bias=False)  # the norm's shift is the bias
        self.norm = nn.BatchNorm1d(out_channels)
        self.relu = relu

    def forward(self, h: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(F.pad(h, self.pad))  # (B, C_in, T) -> (B, C_out, T)
        h = masked_batch_norm(self.norm, h, lengths)  # (B, C_out, T), padding zero
        return F.relu(h) if self.relu else h  # ReLU keeps the padding's zeros


class PooledConvNet(nn.Module):
    """Blocks over (B, C, T) that keep padded steps zero, then average pooling over each series' valid steps, dropout
    and a linear classifier: the shape FCN1D and ResNet1D share.

    Takes (B, T, D) series, zero-padded to the batch's longest, with their lengths (B,) or none (every step valid);
    a series' logits are the same alone or in a padded batch (in eval mode).
    """

    def __init__(self, blocks: list[nn.Module], width: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = mask_padding(x.transpose(1, 2), lengths)  # (B, T, D) -> (B, D, T), padding zero whatever it held
        for block in self.blocks:
            h = block(h, lengths)  # (B, C, T)
        pooled = masked_mean(h, lengths)  # (B, width)
        return self.classifier(self.dropout(pooled))  # (B, num_classes)


class FCN1D(PooledConvNet):
    """Conv blocks (128, 256, 128 channels; kernels 8, 5, 3 by default), masked average pooling, dropout, linear."""

    def __init__(
        self,
        input_shape: Sequence[int | None],
        num_classes: int,
        channels: Sequence[int] = (128, 256, 128),
        kernel_sizes: Sequence[int] = (8, 5, 3),
        dropout: float = 0.0,
    ) -> None:
        features = sequence_features("FCN1D", input_shape)
        if not channels or len(channels) != len(kernel_sizes):
            raise ValueError(
                f"FCN1D needs one kernel size per block: channels={list(channels)}, kernel_sizes={list(kernel_sizes)}"
            )
        pairs = pairwise([features, *channels])  # (in, out) channels of each block
        blocks = [ConvNorm(c_in, c_out, k) for (c_in, c_out), k in zip(pairs, kernel_sizes, strict=True)]
        super().__init__(blocks, channels[-1], num_classes, dropout)
