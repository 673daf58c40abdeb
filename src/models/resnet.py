"""ResNet-18/34/50 from torchvision's blocks, with a stem for small images."""

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

# depth -> (block, blocks per stage), as in He et al. 2016 and torchvision.
DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
}


class ResNet(nn.Module):
    """A ResNet whose stem is one stride-1 3x3 conv (no max-pool), so 8x8 to 32x32 inputs keep detail.

    `width` is the first stage's channel count (64 in the paper); stages double it.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        depth: int = 18,
        width: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"Unknown ResNet depth {depth!r}; valid choices: {sorted(DEPTHS)}")
        block, blocks_per_stage = DEPTHS[depth]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages, channels = [], width
        for i, num_blocks in enumerate(blocks_per_stage):
            planes = width * 2**i
            stride = 1 if i == 0 else 2
            stages.append(self._stage(block, channels, planes, num_blocks, stride))
            channels = planes * block.expansion
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    @staticmethod
    def _stage(block, in_channels: int, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        """`num_blocks` residual blocks; the first changes stride/width through a 1x1 shortcut."""
        out_channels = planes * block.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        layers = [block(in_channels, planes, stride, downsample)]
        layers += [block(out_channels, planes) for _ in range(num_blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, width, H, W)
        x = self.stages(x)  # (B, 8 * width * expansion, H / 8, W / 8)
        x = self.pool(x).flatten(1)  # (B, 8 * width * expansion)
        return self.classifier(self.dropout(x))  # (B, num_classes)
