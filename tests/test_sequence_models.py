"""The sequence networks (FCN1D, ResNet1D, the LSTM/GRU classifier) never read the padding: a series' logits are the
same alone or in a padded batch, gradients never reach the padded steps, batch statistics ignore them; each learns a
trivially separable task, and refuses inputs it cannot read naming data.input_shape."""

import copy
import re

import pytest
import torch
from hydra.utils import instantiate
from torch.nn.utils.rnn import pad_sequence

from src.models.fcn import FCN1D
from src.models.masking import mask_padding, masked_mean
from src.models.resnet1d import ResNet1D
from src.models.rnn import RNNClassifier
from tests.conftest import compose_config

D, CLASSES = 3, 4  # features per step, classes
SHAPE = (None, D)  # any length
# Small networks, one of each kind the padding could leak through; FCN1D's default kernels 8, 5, 3 pad 'same'
# asymmetrically (3 steps before, 4 after), the even-kernel ones at every layer; ResNet1D(8, 16, 16) has 1x1-conv
# shortcuts, then an identity one.
NETS = {
    "fcn": lambda classes: FCN1D(SHAPE, classes, channels=(8, 16, 8)),
    "fcn-even-kernels": lambda classes: FCN1D(SHAPE, classes, channels=(8, 8), kernel_sizes=(2, 6)),
    "resnet1d": lambda classes: ResNet1D(SHAPE, classes, channels=(8, 16, 16)),
    "resnet1d-even-kernels": lambda classes: ResNet1D(SHAPE, classes, channels=(8,), kernel_sizes=(4, 2)),
    "lstm": lambda classes: RNNClassifier(SHAPE, classes, cell="lstm", hidden_size=16),
    "gru": lambda classes: RNNClassifier(SHAPE, classes, cell="gru", hidden_size=16),
    "lstm-bi": lambda classes: RNNClassifier(SHAPE, classes, cell="lstm", hidden_size=16, bidirectional=True),
    "gru-bi": lambda classes: RNNClassifier(SHAPE, classes, cell="gru", hidden_size=16, bidirectional=True),
    "lstm-bi-mean": lambda classes: RNNClassifier(SHAPE, classes, hidden_size=16, bidirectional=True, pool="mean"),
    "lstm-chunk3": lambda classes: RNNClassifier((12, SHAPE[1]), classes, hidden_size=16, max_steps=4),  # 3 a step
}
CONV_NETS = [name for name in NETS if name.startswith(("fcn", "resnet1d"))]
LENGTHS = [5, 9, 1, 12, 2]


def build(name: str, classes: int = CLASSES) -> torch.nn.Module:
    torch.manual_seed(0)
    return NETS[name](classes)


def padded(series: list[torch.Tensor], extra: int = 0) -> torch.Tensor:
    """Series (T_i, D) as one batch (B, max T_i + extra, D), padded with 99, which networks must not read."""
    batch = pad_sequence(series, batch_first=True, padding_value=99.0)  # (B, max T_i, D)
    return torch.nn.functional.pad(batch, (0, 0, 0, extra), value=99.0)


@pytest.mark.parametrize("name", NETS)
def test_a_series_in_a_padded_batch_gives_what_it_gives_alone(name):
    net = build(name).double().eval()  # float64: only the padding could make them differ, not rounding
    with torch.no_grad():  # batch norm's running statistics: away from 0 and 1, so the padding would show
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-1, 1), module.running_var.uniform_(0.5, 2)
    series = [torch.randn(n, D, dtype=torch.float64) for n in LENGTHS]
    together = net(padded(series), torch.tensor(LENGTHS))  # (B, CLASSES)
    alone = torch.cat([net(s[None]) for s in series])  # each (1, T_i, D) with no lengths: every step valid
    torch.testing.assert_close(together, alone, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(net(padded(series))[0], alone[0])  # without lengths the padding counts


@pytest.mark.parametrize("name", CONV_NETS)
def test_in_training_the_padding_never_moves_the_batch_statistics(name):
    """Batch norm's statistics come from the valid steps: more padding changes neither the logits nor the running
    statistics."""
    net = build(name).double().train()
    twin = copy.deepcopy(net)
    series = [torch.randn(n, D, dtype=torch.float64) for n in LENGTHS]
    lengths = torch.tensor(LENGTHS)
    torch.testing.assert_close(net(padded(series), lengths), twin(padded(series, extra=7), lengths), rtol=0, atol=1e-12)
    torch.testing.assert_close(net.state_dict(), twin.state_dict(), rtol=0, atol=1e-12)  # running statistics too
    full = torch.randn(len(LENGTHS), 6, D, dtype=torch.float64)  # lengths all T: as if no lengths were given
    torch.testing.assert_close(net(full, torch.full((len(LENGTHS),), 6)), twin(full), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NETS)
def test_gradients_are_finite_and_never_reach_the_padding(name):
    net = build(name).train()
    series = [torch.randn(n, D) for n in LENGTHS]
    x = padded(series).requires_grad_()
    logits = net(x, torch.tensor(LENGTHS))
    torch.nn.functional.cross_entropy(logits, torch.arange(len(LENGTHS)) % CLASSES).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    valid = torch.arange(x.shape[1]) < torch.tensor(LENGTHS)[:, None]  # (B, T_max)
    assert torch.isfinite(x.grad).all() and (x.grad[~valid] == 0).all() and (x.grad[valid] != 0).any()


def test_masked_mean_averages_the_valid_steps_only():
    h = torch.randn(3, 4, 7)  # (B, C, T)
    lengths = torch.tensor([7, 3, 1])
    expected = torch.stack([h[i, :, :n].mean(-1) for i, n in enumerate(lengths)])  # (B, C)
    torch.testing.assert_close(masked_mean(h, lengths), expected)
    torch.testing.assert_close(masked_mean(h, None), h.mean(-1))  # no lengths: every step
    zeroed = mask_padding(h, lengths)
    assert (zeroed[1, :, 3:] == 0).all() and (zeroed[2, :, 1:] == 0).all()
    torch.testing.assert_close(zeroed[1, :, :3], h[1, :, :3])
    assert mask_padding(h, None) is h


def separable_batch(size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Series of 4 to 16 steps, zero-padded, whose class is the sign of the shift of their first dimension."""
    lengths = torch.randint(4, 17, (size,), generator=generator)
    y = torch.randint(0, 2, (size,), generator=generator)
    series = [torch.randn(int(n), D, generator=generator) for n in lengths]
    for s, label in zip(series, y, strict=True):
        s[:, 0] += 2.0 * label - 1.0  # +1 or -1
    return pad_sequence(series, batch_first=True), y, lengths


@pytest.mark.parametrize("name", ["fcn", "resnet1d", "lstm", "gru", "gru-bi", "lstm-bi-mean", "lstm-chunk3"])
def test_each_network_learns_a_separable_task(name):
    net = build(name, classes=2)
    generator = torch.Generator().manual_seed(0)
    x_test, y_test, lengths_test = separable_batch(256, generator)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(40):
        x, y, lengths = separable_batch(32, generator)
        loss = torch.nn.functional.cross_entropy(net.train()(x, lengths), y)
        optimizer.zero_grad(), loss.backward(), optimizer.step()
    with torch.no_grad():
        accuracy = (net.eval()(x_test, lengths_test).argmax(1) == y_test).float().mean()
    assert accuracy > 0.9  # chance: 0.5


@pytest.mark.parametrize("network", [FCN1D, ResNet1D])
@pytest.mark.parametrize("shape", [[1, 8, 8], [13], [None, None]])
def test_inputs_it_cannot_read_are_refused_naming_data_input_shape(network, shape):
    # the cross-product tests skip a (model, data) pair whose network refuses naming data.input_shape
    with pytest.raises(
        ValueError, match=re.escape(f"{network.__name__} reads (T, D) sequences; data.input_shape is {shape}")
    ):
        network(shape, 3)


@pytest.mark.parametrize("model", ["fcn", "resnet1d", "rnn"])
def test_the_configs_build_for_sequences_and_the_module_passes_the_lengths(model, tmp_path):
    cfg = compose_config("train", [f"model={model}", "data=synthetic", "data.input_shape=[null,5]"], tmp_path)
    module = instantiate(cfg.model, optimizer=cfg.optimizer, scheduler=cfg.get("scheduler"))
    series = [torch.randn(n, 5) for n in (3, 11)]
    logits = module(pad_sequence(series, batch_first=True), torch.tensor([3, 11]))
    assert logits.shape == (2, cfg.data.num_classes)
