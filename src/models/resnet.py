"""ResNet-18/34/50 from torchvision's blocks, with a stem for small images or torchvision's own (and its weights)."""

from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model_weights
from torchvision.models.resnet import BasicBlock, Bottleneck

# depth -> (block, blocks per stage), as in He et al. 2016 and torchvision.
DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
}
STEMS = {"small": (3, 1), "imagenet": (7, 2)}  # stem -> (kernel, stride) of its first conv


def torchvision_name(key: str) -> str:
    """This network's name for a key of torchvision's ResNet (`layer1.0.conv1.weight` -> `stages.0.0.conv1.weight`)."""
    head, _, rest = key.partition(".")
    head = {"conv1": "stem.0", "bn1": "stem.1", "fc": "classifier"}.get(head, head)
    return f"stages.{int(head[5:]) - 1}.{rest}" if head.startswith("layer") else f"{head}.{rest}"


class ResNet(nn.Module):
    """A ResNet whose stem is one stride-1 3x3 conv (no max-pool), so 8x8 to 32x32 inputs keep detail; with
    `stem="imagenet"` it is torchvision's ResNet layer for layer, and takes its pretrained `weights`.

    `width` is the first stage's channel count (64 in the paper); stages double it.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        depth: int = 18,
        width: int = 64,
        dropout: float = 0.0,
        stem: str = "small",
        weights: str | None = None,
    ) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"Unknown ResNet depth {depth!r}; valid choices: {sorted(DEPTHS)}")
        if stem not in STEMS:
            raise ValueError(f"Unknown ResNet stem {stem!r}; valid choices: {sorted(STEMS)}")
        block, blocks_per_stage = DEPTHS[depth]
        kernel, stride = STEMS[stem]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            *([nn.MaxPool2d(3, stride=2, padding=1)] if stem == "imagenet" else []),  # torchvision's: /4 in all
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
        if weights:
            self.load_torchvision(weights, depth)

    def load_torchvision(self, weights: str, depth: int) -> None:
        """torchvision's ImageNet weights (an enum name, downloaded once, or a file) in all but a new-sized head."""
        names = get_model_weights(f"resnet{depth}").__members__  # DEFAULT, IMAGENET1K_V1, ...
        if not (weights in names or Path(weights).is_file()):
            raise ValueError(f"model.net.weights={weights} is neither a file nor one of {list(names)}")
        state = names[weights].get_state_dict() if weights in names else torch.load(weights, weights_only=True)
        own, state = self.state_dict(), {torchvision_name(k): v for k, v in state.items()}
        fits = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
        if wrong := [k for k in own if k not in fits and not k.startswith("classifier.")]:
            raise ValueError(f"model.net.weights does not fit {wrong[:2]}...: use stem=imagenet, width=64, 3 channels")
        self.load_state_dict(fits, strict=False)

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
