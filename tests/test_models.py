"""Every network builds and runs forward and backward on 8x8x1, 28x28x1 and 32x32x3 images."""

import pytest
import torch

from src.models.cnn import ConvNet
from src.models.resnet import ResNet
from src.models.rnn import RowRNN

SHAPES = [(1, 8), (1, 28), (3, 32)]  # (channels, image size)
NUM_CLASSES = 10


def build(family: str, channels: int, size: int, **kwargs) -> torch.nn.Module:
    if family == "cnn":
        return ConvNet(channels, NUM_CLASSES, **kwargs)
    if family == "rnn":
        return RowRNN(channels, NUM_CLASSES, image_size=size, **kwargs)
    return ResNet(channels, NUM_CLASSES, **kwargs)


VARIANTS = [
    ("cnn", {}),
    ("cnn", {"batch_norm": False, "dropout": 0.5, "widths": [8, 16]}),
    ("rnn", {"cell": "lstm"}),
    ("rnn", {"cell": "gru", "num_layers": 2, "bidirectional": True, "dropout": 0.2, "hidden_size": 32}),
    ("resnet", {"depth": 18}),
    ("resnet", {"depth": 34, "width": 16}),
    ("resnet", {"depth": 50, "width": 16, "dropout": 0.2}),
]


@pytest.mark.parametrize("channels,size", SHAPES)
@pytest.mark.parametrize("family,kwargs", VARIANTS)
def test_forward_backward(family, kwargs, channels, size):
    torch.manual_seed(0)
    net = build(family, channels, size, **kwargs)
    x = torch.randn(4, channels, size, size)
    logits = net(x)
    assert logits.shape == (4, NUM_CLASSES)
    torch.nn.functional.cross_entropy(logits, torch.arange(4)).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None for g in grads)
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_resnet18_has_the_paper_size():
    # 11.2M parameters for ResNet-18 with a 10-class head and a 3x3 stem (torchvision's is 11.7M with 1000 classes).
    params = sum(p.numel() for p in ResNet(3, 10, depth=18).parameters())
    assert 11.1e6 < params < 11.3e6


def test_rnn_reads_rows_as_time_steps():
    net = RowRNN(in_channels=3, num_classes=10, image_size=32, hidden_size=16)
    assert net.rnn.input_size == 3 * 32  # one row of every channel per step


def test_bad_choices_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"valid choices: \[18, 34, 50\]"):
        ResNet(3, 10, depth=101)
    with pytest.raises(ValueError, match=r"valid choices: \['gru', 'lstm'\]"):
        RowRNN(1, 10, image_size=8, cell="rnn")
