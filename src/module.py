"""ClassificationModule: one LightningModule that trains whatever network it is given."""

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class SampleMean(Metric):
    """The mean over samples of per-batch mean values (a batch of n counts n times), non-finite batches left out.

    torchmetrics' `MeanMetric(...).update(loss, weight=n)` computes the same mean, but its NaN check reads a value
    back to the host at every update (a GPU sync a step), and with `nan_strategy="disable"` (torchmetrics 1.9) it
    drops the weights; here every update stays on the device.
    """

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")  # sum of value * n over finite batches
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")  # sum of n over finite batches

    def update(self, value: torch.Tensor, n: int) -> None:
        finite = value.isfinite()  # () bool, on the device: no host read
        self.total += torch.where(finite, value, 0.0) * n
        self.count += finite * n

    def compute(self) -> torch.Tensor:
        return self.total / self.count


def takes_extras(net: nn.Module) -> bool:
    """Whether `net.forward` takes more positional arguments than the inputs (a sequence's lengths, a mask)."""
    kinds = [p.kind for p in inspect.signature(net.forward).parameters.values()]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Parameter.VAR_POSITIONAL in kinds or sum(kind in positional for kind in kinds) > 1


class ClassificationModule(pl.LightningModule):
    """Cross-entropy training, accuracy metrics and optimisation for any classifier network.

    Metrics: `make_metrics` returns the metrics of every split, each `update(logits, labels)`; a MetricCollection per
    split logs them as `train/<name>`, `val/<name>` and `test/<name>`. Adding one is one line there, e.g.
    `"f1": MulticlassF1Score(num_classes, validate_args=False),` logs train/f1, val/f1 and test/f1 (or override
    `make_metrics` in a subclass). Lightning computes them once an epoch, synchronises them across DDP ranks and
    resets them; nothing is read back to the host per step. The mean losses (`train/loss_epoch`, `val/loss`,
    `test/loss`), `val/acc_best` and the gap (`gap/acc`, `gap/loss`) are logged beside them; the last two need the
    `acc` metric.

    Args:
        net: a network mapping a batch's inputs (images (B, C, H, W), sequences (B, T, D), features (B, F), ...) to
            logits (B, num_classes); a batch `(x, y, *extras)` passes its extras on, `net(x, *extras)` (lengths), to
            a network whose forward takes more than x (a network of x alone gets x: an MLP on equal-length series).
        optimizer: `optimizer(params)` builds the optimizer (a Hydra `_partial_`).
        scheduler: `scheduler(optimizer, total_steps=N)` builds a per-step LR schedule, or None.
        num_classes: for the metrics.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        compile: compile the network in place with `torch.compile` (checkpoint keys are unchanged).
        channels_last: keep conv weights and inputs in NHWC memory format (faster convs on GPUs and recent CPUs).
        flip_tta: evaluate (val/test) on the mean of the logits of each image and its mirror image.
        freeze: name prefixes (`net.features`) of parameters that do not train, their layers kept in eval mode.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        num_classes: int,
        scheduler: SchedulerFactory | None = None,
        label_smoothing: float = 0.0,
        compile: bool = False,
        channels_last: bool = False,
        flip_tta: bool = False,
        freeze: Sequence[str] | str = (),
    ) -> None:
        super().__init__()
        # Only plain values go into hparams (freeze: strings, not a ListConfig) so checkpoints load weights_only.
        freeze = [str(prefix) for prefix in ([freeze] if isinstance(freeze, str) else freeze)]  # one prefix: a str
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self._net_takes_extras = takes_extras(net)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # One pattern for every split: the metrics and the mean loss accumulate on the device and are logged as
        # metric objects, which Lightning computes (synchronised across DDP ranks by torchmetrics) and resets once an
        # epoch. Their states are not in checkpoints (torchmetrics' default): a resumed epoch counts from the resume.
        metrics = MetricCollection(self.make_metrics(num_classes))
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.train_loss, self.val_loss, self.test_loss = SampleMean(), SampleMean(), SampleMean()
        self.val_acc_best = MaxMetric()
        self._validated_epoch = -1  # the last epoch validated (not the sanity check): the gap needs its val/acc
        self._frozen = [module for prefix in freeze for module in self._freeze(prefix)]
        self.train()  # frozen layers in eval mode: Lightning restores each layer's own mode after validating

    def make_metrics(self, num_classes: int) -> dict[str, Metric]:
        """The metrics of every split by name, each updated with (logits (B, num_classes), labels (B,)): add one here.

        average="micro": the share of images right (torchmetrics' default averages the classes' accuracies);
        validate_args=False: the checks cost more than the update (and read values back to the host). An update that
        reads the device costs a GPU sync every step: torchmetrics' per-class averages (macro F1, ...) count classes
        with torch.bincount, which on CUDA reads a maximum back to the host; micro averages do not.
        """
        return {
            "acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False),  # val/acc_best, gap/acc
        }

    def _freeze(self, prefix: str) -> list[nn.Module]:
        """Stop the gradients of the parameters under `prefix`; the modules under it, to keep in eval mode."""
        under = [name for name, _ in self.named_parameters() if f"{name}.".startswith(f"{prefix}.")]
        if not under:
            valid = sorted({".".join(name.split(".")[:2]) for name, _ in self.named_parameters()})
            raise ValueError(f"model.freeze: {prefix} names no parameters; valid top-level names: {valid}")
        for name in under:
            self.get_parameter(name).requires_grad_(False)
        return [m for name, m in self.named_modules() if f"{name}.".startswith(f"{prefix}.")]

    def train(self, mode: bool = True) -> "ClassificationModule":
        super().train(mode)
        for module in self._frozen:
            module.eval()  # a frozen batch norm keeps its running statistics
        return self

    def configure_model(self) -> None:
        # Lightning calls this hook before fit and again before test: prepare the network once.
        if getattr(self, "_net_prepared", False):
            return
        self._net_prepared = True
        if self.hparams.channels_last:
            self.net.to(memory_format=torch.channels_last)
        # nn.Module.compile() compiles in place: parameter names keep no `_orig_mod.` prefix.
        if self.hparams.compile:
            self.net.compile()

    def forward(self, x: torch.Tensor, *extras: Any) -> torch.Tensor:
        if self.hparams.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)  # same shape (B, C, H, W), NHWC strides
        return self.net(x, *extras) if self._net_takes_extras else self.net(x)

    def _logits(self, x: torch.Tensor, *extras: Any) -> torch.Tensor:
        """Inputs (B, ...) -> (B, num_classes); outside training, averaged with the mirror image's if flip_tta."""
        logits = self(x, *extras)
        if self.hparams.flip_tta and not self.training:
            if x.dim() != 4:
                raise ValueError(f"model.flip_tta mirrors images (B, C, H, W); these inputs are {tuple(x.shape)}")
            logits = (logits + self(x.flip(3), *extras)) / 2
        return logits

    def _step(
        self, batch: tuple[torch.Tensor, ...], metrics: MetricCollection, mean_loss: SampleMean
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and logits of a batch; the split's metrics and mean loss take it in."""
        x, y, *extras = batch  # inputs (B, ...), labels (B,), what else the network takes (lengths (B,), ...)
        logits = self._logits(x, *extras)  # (B, num_classes)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        metrics.update(logits.detach(), y)
        mean_loss.update(loss.detach(), y.numel())  # the epoch's loss: the mean over images, not over batches
        return loss, logits

    def _log_once_an_epoch(
        self, metrics: MetricCollection, loss_name: str, mean_loss: SampleMean, prog_bar: bool = False
    ) -> None:
        """Hands Lightning a split's metric objects at the first batch since their last reset (the epoch's first).

        Lightning keeps a reference to a logged metric object, computes it at the epoch's end (synchronised across
        DDP ranks) and resets it, so one `self.log` an epoch gives the same figures as one a batch; each call costs
        Lightning's bookkeeping, about a quarter of a millisecond on a CPU (scripts/benchmark.py --profile).
        """
        if mean_loss.update_count == 1:
            self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=prog_bar)
            self.log(loss_name, mean_loss, on_step=False, on_epoch=True)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch, self.train_metrics, self.train_loss)
        self._log_once_an_epoch(self.train_metrics, "train/loss_epoch", self.train_loss)
        # Logged only on the steps the loggers write, and not with prog_bar=True: Lightning reads every progress-bar
        # value back to the host (a GPU sync) at every step; the template's progress bars read it when it changes.
        if (self.global_step + 1) % (self.trainer.log_every_n_steps or 1) == 0:
            self.log("train/loss", loss)
        return loss

    def on_train_epoch_end(self) -> None:
        # Lightning computes the logged train/ metrics after this hook (and the callbacks' own on_train_epoch_end);
        # the gap computes two of them here. compute() keeps its value, so Lightning logs (and, under DDP,
        # synchronises) the same one without a second read.
        if not self.train_loss.update_called:
            return  # no training step this epoch
        val = self.trainer.callback_metrics
        if self.trainer.sanity_checking or self._validated_epoch != self.current_epoch or "val/acc" not in val:
            return  # no validation this epoch (check_val_every_n_epoch > 1)
        # The generalisation gap: both grow as the model overfits (training figures are the epoch's running ones).
        train_acc, train_loss = self.train_metrics.compute()["train/acc"], self.train_loss.compute()
        self.log_dict({"gap/acc": train_acc - val["val/acc"], "gap/loss": val["val/loss"] - train_loss})

    def on_train_start(self) -> None:
        # The sanity-check validation ran on an untrained net; its accuracy is not a best.
        self.val_acc_best.reset()

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._step(batch, self.val_metrics, self.val_loss)
        self._log_once_an_epoch(self.val_metrics, "val/loss", self.val_loss, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        # Lightning computes (and logs) the val/ metrics after this hook: val/acc is computed here for its best,
        # and kept for Lightning.
        if not self.trainer.sanity_checking:
            self._validated_epoch = self.current_epoch
        if not self.val_loss.update_called:
            return  # no validation batch
        self.val_acc_best(self.val_metrics.compute()["val/acc"])
        self.log("val/acc_best", self.val_acc_best.compute())  # a value: Lightning must not reset the best

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> dict[str, torch.Tensor]:
        _, logits = self._step(batch, self.test_metrics, self.test_loss)
        self._log_once_an_epoch(self.test_metrics, "test/loss", self.test_loss)
        return {"preds": logits.argmax(dim=1)}  # (B,): for callbacks (confusion matrix, misclassified images)

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """Predicted class, softmax confidence and every class's probability of each input (and its label when the
        batch has one: `(x, y, *extras)`; new inputs come as `(x, None, *extras)`)."""
        if isinstance(batch, (tuple, list)):
            x, y, extras = batch[0], batch[1] if len(batch) > 1 else None, batch[2:]
        else:
            x, y, extras = batch, None, ()
        probabilities = self._logits(x, *extras).softmax(dim=1)  # (B, num_classes)
        confidence, prediction = probabilities.max(dim=1)  # (B,), (B,)
        out = {"prediction": prediction, "confidence": confidence, "probabilities": probabilities}
        if y is not None:
            out["label"] = y
        return out

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
