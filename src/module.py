"""ClassificationModule: one LightningModule that trains whatever network it is given."""

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from src.checkpointing import check_state_dict_fits

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class ClassificationModule(pl.LightningModule):
    """Cross-entropy training, accuracy metrics and optimisation for any classifier network.

    Args:
        net: a network mapping images (B, C, H, W) to logits (B, num_classes).
        optimizer: `optimizer(params)` builds the optimizer (a Hydra `_partial_`).
        scheduler: `scheduler(optimizer, total_steps=N)` builds a per-step LR schedule, or None.
        num_classes: for the accuracy metrics.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        compile: compile the network in place with `torch.compile` (checkpoint keys are unchanged).
        channels_last: keep conv weights and inputs in NHWC memory format (faster convs on GPUs and recent CPUs).
        flip_tta: evaluate (val/test) on the mean of the logits of each image and its mirror image.
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
    ) -> None:
        super().__init__()
        # Only plain values go into hparams so checkpoints load with weights_only=True.
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # Training accuracy is two running counts (a metric object's update costs ~40 us a step on a CPU,
        # a tenth of a small model's step); validation and test use torchmetrics, synchronised across ranks.
        self.register_buffer("train_correct", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer("train_loss_sum", torch.zeros(()), persistent=False)  # for the epoch's mean loss
        self.train_seen = 0
        self.val_epoch = -1  # the last epoch validated (not the sanity check): the gap needs this epoch's val
        # validate_args=False: the input checks cost more than the update itself on small batches.
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc_best = MaxMetric()

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets `_current_fx_name` around every hook call, about 44 times per training step.
        # It is a plain string, so nn.Module's parameter/buffer/submodule bookkeeping can be skipped:
        # that bookkeeping cost ~0.1 ms a step on a CPU, a measurable share of a small model's step.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # same shape (B, C, H, W), NHWC strides
        return self.net(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, num_classes); outside training, averaged with the mirror image's if flip_tta."""
        logits = self(x)
        if self.hparams.flip_tta and not self.training:
            logits = (logits + self(x.flip(3))) / 2
        return logits

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        x, y = batch  # (B, C, H, W), (B,)
        logits = self._logits(x)  # (B, num_classes)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        return loss, logits, y

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logits, y = self._shared_step(batch)
        self.train_correct += (logits.detach().argmax(dim=1) == y).sum()
        self.train_loss_sum += loss.detach() * y.numel()
        self.train_seen += y.numel()
        # Loggers only write every `trainer.log_every_n_steps`: logging on the other steps is pure overhead.
        every = self.trainer.log_every_n_steps
        if every and (self.global_step + 1) % every == 0:
            self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        if self.train_seen:
            # every rank sees as many samples, so the mean over ranks is the overall accuracy (and loss)
            reduce = self.trainer.strategy.reduce
            train_acc = reduce(self.train_correct / self.train_seen, reduce_op="mean")
            train_loss = reduce(self.train_loss_sum / self.train_seen, reduce_op="mean")
            self.log("train/acc", train_acc)
            self.log("train/loss_epoch", train_loss)
            self._log_generalisation_gap(train_acc, train_loss)
        self.train_correct.zero_()
        self.train_loss_sum.zero_()
        self.train_seen = 0

    def _log_generalisation_gap(self, train_acc: torch.Tensor, train_loss: torch.Tensor) -> None:
        """`gap/acc` = train/acc - val/acc and `gap/loss` = val/loss - train loss: both grow as the model overfits.

        The training figures are the epoch's running ones (dropout on, weights moving), as usual.
        """
        val = self.trainer.callback_metrics
        if self.val_epoch != self.current_epoch or "val/acc" not in val:
            return  # no validation this epoch (check_val_every_n_epoch > 1)
        self.log("gap/acc", float(train_acc) - float(val["val/acc"]))  # once an epoch: the sync is cheap
        self.log("gap/loss", float(val["val/loss"]) - float(train_loss))

    def on_train_start(self) -> None:
        # The sanity-check validation ran on an untrained net; its accuracy is not a best.
        self.val_acc_best.reset()

    def on_validation_epoch_start(self) -> None:
        self.val_acc.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, logits, y = self._shared_step(batch)
        self.val_acc.update(logits, y)
        self.log("val/loss", loss, on_epoch=True, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        acc = self.val_acc.compute()  # synchronised across ranks by torchmetrics
        if not self.trainer.sanity_checking:
            self.val_epoch = self.current_epoch
        self.val_acc_best(acc)
        self.log("val/acc", acc, prog_bar=True)
        self.log("val/acc_best", self.val_acc_best.compute())

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        loss, logits, y = self._shared_step(batch)
        self.test_acc(logits, y)
        self.log("test/loss", loss, on_epoch=True, sync_dist=True)
        self.log("test/acc", self.test_acc, on_epoch=True)
        return {"preds": logits.argmax(dim=1)}  # (B,): for callbacks (confusion matrix, misclassified images)

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """Predicted class and softmax confidence of each image (and its label when the batch has one)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        confidence, prediction = self._logits(x).softmax(dim=1).max(dim=1)  # (B,), (B,)
        out = {"prediction": prediction, "confidence": confidence}
        if isinstance(batch, (tuple, list)) and len(batch) > 1:
            out["label"] = batch[1]
        return out

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Another model's checkpoint fails here in one line, not with torch's list of every mismatched tensor.
        check_state_dict_fits(self.state_dict(), checkpoint["state_dict"], source=self.trainer.ckpt_path)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
