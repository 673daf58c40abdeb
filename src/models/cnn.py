"""A small VGG-style ConvNet whose widths, batch norm and dropout are config knobs."""

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    """Two 3x3 convolutions, then a 2x2 max-pool that halves the image (rounding up)."""
    layers: list[nn.Module] = []
    for c_in in (in_channels, out_channels):
        # A conv followed by batch norm needs no bias: the norm's shift replaces it.
        layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """Stages of conv blocks, global average pooling, dropout and a linear classifier.

    Works for any image size: each stage halves it and the pooling removes what is left.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int] = (32, 64, 128),
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not widths:
            raise ValueError("ConvNet needs at least one stage width, got widths=[]")
        channels = [in_channels, *widths]
        self.features = nn.Sequential(*(conv_block(c_in, c_out, batch_norm) for c_in, c_out in pairwise(channels)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, widths[-1], H / 2^stages, W / 2^stages)
        x = self.pool(x).flatten(1)  # (B, widths[-1])
        return self.classifier(self.dropout(x))  # (B, num_classes)
