"""ClassificationModule's metrics: one MetricCollection per split, logged by Lightning under fixed names."""

import csv

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassF1Score

from src.module import ClassificationModule, SampleMean
from src.train import build, train
from tests.conftest import FAST

# What every run logs; a metric added in `make_metrics` adds its train/, val/ and test/ names.
NAMES = {"train/acc", "val/acc", "test/acc", "train/loss", "train/loss_epoch", "val/loss", "test/loss"}
NAMES |= {"val/acc_best", "gap/acc", "gap/loss"}


class WithF1(ClassificationModule):
    """The module with one more metric: the one line a project adds to `make_metrics`."""

    def make_metrics(self, num_classes: int) -> dict[str, Metric]:
        return {**super().make_metrics(num_classes), "f1": MulticlassF1Score(num_classes, validate_args=False)}


def logged(run_dir) -> tuple[list[dict[str, float]], set[str]]:
    """metrics.csv's rows (the values each holds) and every name logged."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]
    return rows, {k for row in rows for k in row}


def test_a_metric_added_in_one_line_is_logged_for_every_split(make_cfg, tmp_path):
    metrics = train(make_cfg(*FAST, "trainer.max_epochs=2", f"model._target_={__name__}.WithF1"))
    rows, names = logged(tmp_path)
    assert NAMES | {"train/f1", "val/f1", "test/f1"} <= names
    for name in ("train/f1", "val/f1"):  # once an epoch, beside the split's accuracy
        assert [row["epoch"] for row in rows if name in row] == [0, 1]
        assert [row["epoch"] for row in rows if name.replace("f1", "acc") in row] == [0, 1]
    assert 0.5 < metrics["test/f1"] <= 1 and 0.5 < metrics["val/f1"] <= 1  # chance: 0.1
    assert [row["epoch"] for row in rows if "test/f1" in row] == [2]


def test_the_default_module_logs_the_same_names_as_before(make_cfg, tmp_path):
    train(make_cfg(*FAST, "trainer.max_epochs=2"))
    _, names = logged(tmp_path)
    assert {n for n in names if n.startswith(("train/", "val/", "test/", "gap/"))} == NAMES


def test_sample_mean_is_meanmetrics_weighted_mean_without_its_nonfinite_batches():
    ours, theirs = SampleMean(), MeanMetric(nan_strategy="ignore")
    for loss, n in [(0.5, 32), (2.0, 7), (float("nan"), 32), (1.25, 1), (float("inf"), 5)]:
        ours.update(torch.tensor(loss), n)
        if loss == loss and loss != float("inf"):  # MeanMetric's NaN check ignores NaN, not infinity
            theirs.update(torch.tensor(loss), weight=n)
    assert ours.compute() == pytest.approx(float(theirs.compute()), rel=1e-6)
    assert ours.compute() == pytest.approx((0.5 * 32 + 2.0 * 7 + 1.25) / 40, rel=1e-6)


def test_metric_states_stay_out_of_the_checkpoint():
    """As before the MetricCollections: the state_dict holds the network only, so old checkpoints load."""
    module = WithF1(net=torch.nn.Linear(4, 3), optimizer=torch.optim.SGD, num_classes=3)
    assert set(module.state_dict()) == {"net.weight", "net.bias"}


class NetOutputs(Callback):
    """Every batch's logits, as the network gave them, and labels, per split (the sanity check left out)."""

    def __init__(self) -> None:
        self.split: str | None = None
        self.logits: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
        self.labels: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}

    def setup(self, trainer, pl_module, stage: str) -> None:
        if not hasattr(self, "_hook"):
            self._hook = pl_module.net.register_forward_hook(self._keep)

    def _keep(self, net, inputs, logits: torch.Tensor) -> None:
        if self.split is not None:
            self.logits[self.split].append(logits.detach().double())  # (B, num_classes)

    def _start(self, split: str, trainer, batch) -> None:
        self.split = None if trainer.sanity_checking else split
        if self.split is not None:
            self.labels[split].append(batch[1])  # (B,)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._start("train", trainer, batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._start("val", trainer, batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._start("test", trainer, batch)


def test_epoch_losses_are_the_mean_over_samples_with_a_partial_last_batch(make_cfg):
    """train/loss_epoch, val/loss and test/loss equal the mean of every sample's cross-entropy, computed here from
    the network's own logits in float64; the last batch of each split is partial (drop_last=false), so a mean of
    batch means differs (the check below shows by how much)."""
    # 1,077 training digits in batches of 67: 16 full and one of 5; 360 val and 360 test in batches of 119: 3 + 3
    cfg = make_cfg(*FAST, "trainer.max_epochs=1", "data.batch_size=67", "data.eval_batch_size=119")
    outputs = NetOutputs()
    run = build(cfg, callbacks=[outputs])
    run.trainer.fit(run.module, datamodule=run.datamodule)
    logged = dict(run.trainer.callback_metrics)
    run.trainer.test(run.module, datamodule=run.datamodule)
    logged["test/loss"] = run.trainer.callback_metrics["test/loss"]
    sizes = {"train": ([67] * 16 + [5]), "val": [119] * 3 + [3], "test": [119] * 3 + [3]}
    for split, name in (("train", "train/loss_epoch"), ("val", "val/loss"), ("test", "test/loss")):
        labels = outputs.labels[split]
        assert [len(y) for y in labels] == sizes[split]  # every sample once, the partial batch included
        losses = [F.cross_entropy(x, y, reduction="none") for x, y in zip(outputs.logits[split], labels, strict=True)]
        per_sample = torch.cat(losses).mean().item()
        mean_of_batch_means = torch.stack([batch.mean() for batch in losses]).mean().item()
        print(f"\n{name}: logged {float(logged[name]):.8f}, per-sample mean {per_sample:.8f}, "
              f"mean of batch means {mean_of_batch_means:.8f}")  # fmt: skip
        assert float(logged[name]) == pytest.approx(per_sample, rel=1e-6)
        assert abs(mean_of_batch_means - per_sample) > 1e-3 * per_sample  # the test tells the two apart


class InputsOnly(torch.nn.Module):
    """A network of its inputs alone, as a fork's MLP is: forward(x)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class WithLengths(InputsOnly):
    """A network that reads the lengths the batch carries: it zeroes each series' padding."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        steps = torch.arange(x.shape[1])[None, :, None] < lengths[:, None, None]  # (B, T, 1)
        return super().forward(x * steps)


@pytest.mark.parametrize("net", [InputsOnly, WithLengths])
def test_a_batchs_extras_reach_a_network_that_takes_them_and_only_such_a_network(net):
    torch.manual_seed(0)
    module = ClassificationModule(net=net(), optimizer=torch.optim.SGD, num_classes=3)
    x, lengths = torch.randn(4, 3, 2), torch.tensor([3, 1, 2, 3])  # 4 series of 3 steps of 2, some padded
    logits = module(x, lengths)
    if net is WithLengths:  # the padding never reaches the linear layer
        masked = x * (torch.arange(3)[None, :, None] < lengths[:, None, None])
        torch.testing.assert_close(logits, module.net.linear(masked.flatten(1)))
    else:  # forward(x) alone: the lengths are not passed (and would raise a TypeError if they were)
        torch.testing.assert_close(logits, module.net.linear(x.flatten(1)))
