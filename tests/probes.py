"""A callback the DDP tests add from the command line, to see what every rank ran with."""

import json
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class RankProbe(Callback):
    """Writes `rank<N>.json`: the rank's learning rate, world size and first-epoch training samples.

    Samples are fingerprinted by their first pixel (distinct for synthetic data), to compare shards.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.fingerprints: list[float] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.current_epoch == 0:
            self.fingerprints += batch[0].flatten(1)[:, 0].tolist()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch != 0:
            return
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "lr": trainer.optimizers[0].defaults["lr"],
            "device": str(batch_device(pl_module)),
            "fingerprints": self.fingerprints,
        }
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def batch_device(pl_module: pl.LightningModule):
    return pl_module.device


def read_ranks(folder: Path) -> dict[int, dict]:
    return {int(p.stem[4:]): json.loads(p.read_text()) for p in folder.glob("rank*.json")}
