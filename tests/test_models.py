"""Every network in conf/model/ builds from its config and runs forward and backward on each bundled data set whose
inputs it takes (8x8x1, 28x28x1 and 32x32x3 images), with its knobs varied; the recurrent one on sequences too."""

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf.errors import InterpolationKeyError

from src.models.resnet import ResNet
from src.models.rnn import RNNClassifier
from tests.conftest import CONF, compose_config

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))  # a fork's own network included
DATA = ["digits", "mnist", "cifar10"]  # (1, 8, 8), (1, 28, 28), (3, 32, 32): sample batches read no file
# knobs worth varying, by conf/model/ name; every other network runs with its config's defaults
VARIANTS = {
    "cnn": [[], ["model.net.batch_norm=false", "model.net.dropout=0.5", "model.net.widths=[8,16]"]],
    "rnn": [
        ["model.net.cell=lstm"],
        [
            "model.net.cell=gru",
            "model.net.num_layers=2",
            "model.net.bidirectional=true",
            "model.net.dropout=0.2",
            "model.net.hidden_size=32",
        ],
    ],
    "resnet": [
        ["model.net.depth=18"],
        ["model.net.depth=34", "model.net.width=16"],
        ["model.net.depth=50", "model.net.width=16", "model.net.dropout=0.2"],
    ],
}
CASES = [(model, data, v) for model in MODELS for data in DATA for v in VARIANTS.get(model, [[]])]


@pytest.mark.parametrize("model,data,overrides", CASES, ids=[f"{m}-{d}-{' '.join(v)}" for m, d, v in CASES])
def test_forward_backward(model, data, overrides, tmp_path):
    torch.manual_seed(0)
    cfg = compose_config("train", [f"model={model}", f"data={data}", *overrides], tmp_path)
    datamodule = instantiate(cfg.data)
    try:
        net = instantiate(cfg.model.net)
    except InterpolationKeyError as error:
        pytest.skip(f"model={model} takes inputs data={data} does not give ({str(error).splitlines()[0]})")
    except InstantiationException as error:  # a network that refuses the data's inputs names data.input_shape
        if "data.input_shape" not in str(error):
            raise
        pytest.skip(f"model={model} does not take data={data}'s inputs ({str(error).splitlines()[-1]})")
    x, _, *extras = datamodule.sample_batch(4)
    logits = net(x, *extras)
    assert logits.shape == (4, cfg.data.num_classes)
    torch.nn.functional.cross_entropy(logits, torch.arange(4)).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None for g in grads)
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_resnet18_has_the_paper_size():
    # 11.2M parameters for ResNet-18 with a 10-class head and a 3x3 stem (torchvision's is 11.7M with 1000 classes).
    params = sum(p.numel() for p in ResNet(3, 10, depth=18).parameters())
    assert 11.1e6 < params < 11.3e6


def test_rnn_reads_image_rows_as_time_steps_and_sequence_steps_as_they_are():
    assert RNNClassifier((3, 32, 32), num_classes=10, hidden_size=16).rnn.input_size == 3 * 32  # a row of each channel
    assert RNNClassifier((None, 12), num_classes=10, hidden_size=16).rnn.input_size == 12  # any length, 12 features


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_with_lengths_never_reads_the_padding(cell, bidirectional):
    torch.manual_seed(0)
    net = RNNClassifier((None, 3), num_classes=4, cell=cell, hidden_size=8, bidirectional=bidirectional).eval()
    short, long = torch.randn(1, 5, 3), torch.randn(1, 9, 3)  # (B, T, D): two series of 5 and 9 steps
    padded = torch.cat([torch.cat([short, torch.full((1, 4, 3), 99.0)], dim=1), long])  # (2, 9, 3)
    together = net(padded, torch.tensor([5, 9]))
    assert torch.allclose(together[0], net(short)[0], atol=1e-6)  # as if the series were alone
    assert torch.allclose(together[1], net(long)[0], atol=1e-6)
    assert not torch.allclose(net(padded)[0], net(short)[0], atol=1e-3)  # without lengths the padding counts


def test_bad_choices_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"valid choices: \[18, 34, 50\]"):
        ResNet(3, 10, depth=101)
    with pytest.raises(ValueError, match=r"valid choices: \['gru', 'lstm'\]"):
        RNNClassifier((1, 8, 8), 10, cell="rnn")
    with pytest.raises(ValueError, match=r"reads \(T, D\) sequences or \(C, H, W\) images; data.input_shape is \[13\]"):
        RNNClassifier((13,), 3)
