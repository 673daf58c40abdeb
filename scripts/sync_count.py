"""Host syncs per training step, by where each comes from: the template's own and Lightning's.

    python scripts/sync_count.py                                # the default configuration, 50 steps
    python scripts/sync_count.py --steps 50 --out syncs/ data.batch_size=8   # train.py overrides at the end

What is counted depends on the device the run trains on:
- on a CUDA GPU, every operation that waits for the GPU, as `torch.cuda.set_sync_debug_mode("warn")` reports them
  (what a GPU profiler shows as a stall; the CUDA-only count);
- on a CPU, where nothing waits, every Tensor method that copies a value to the host (`item`, `__bool__`, `tolist`,
  ...: each a sync on a GPU); tests/test_host_syncs.py counts these;
- on both, the collectives: the strategy's (`reduce`, `broadcast`, `barrier`, ...) and torch.distributed's. DDP's own
  gradient all-reduce and buffer broadcast, made in C++, are not counted.

Each call is attributed by walking the call stack outward from it: the first frame in the template's files (src/,
train.py) makes it the template's and names it (a read inside torchmetrics, torch, or Lightning's `self.log`, called
by the template, is the template's: the library frame that made it is named beside it); reaching Lightning's loop
first (lightning/pytorch/loops or trainer: its logging, progress bar, own callbacks, optimizer step) makes it
Lightning's. The window of a training step runs from its `on_train_batch_start` to the next one's, and closes for
validation and epoch ends (once an epoch, not once a step). Prints a table; `--out DIR` writes syncs_rank<N>.json.
"""

import argparse
import inspect
import json
import os
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402

# Tensor methods that copy a value to the host (a sync on a GPU); collectives of the strategy and of torch.distributed
HOST_READS = ("item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__float__", "__int__", "__index__")
HOST_READS += ("__format__",)
STRATEGY_COLLECTIVES = ("reduce", "reduce_boolean_decision", "broadcast", "barrier", "all_gather")
DIST_COLLECTIVES = ("all_reduce", "all_gather", "all_gather_object", "broadcast", "broadcast_object_list", "barrier")
OWN = (str(ROOT / "src") + os.sep, str(ROOT / "train.py"))
LIGHTNING_LOOP = tuple(str(Path(pl.__file__).parent / part) + os.sep for part in ("loops", "trainer"))
SKIPPED = (__file__, warnings.__file__)  # this counter's wrappers and the warnings machinery: never the caller
# Reads of tensors that stay on the CPU when training on a GPU (no sync there): the optimizers' step counts, which
# torch keeps on the CPU unless the optimizer is capturable or fused, read by `_get_value` at every step
HOST_RESIDENT = {("torch/optim/optimizer.py", "_get_value")}
CUDA_SYNC = "called a synchronizing CUDA operation"  # torch's warning in sync debug mode "warn"


def short(filename: str) -> str:
    """A file's path relative to the repository, or from its package (torchmetrics/aggregation.py)."""
    path = Path(filename)
    if path.is_relative_to(ROOT) and ".venv" not in path.parts:
        return str(path.relative_to(ROOT))
    parts = path.parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[parts.index(marker) + 1 :])
    return "/".join(parts[-3:])


def attribute(frame: FrameType | None) -> tuple[str, str]:
    """(whose, where) for a call made at `frame`: ("template", "src/module.py:116 (in torchmetrics/...:75)"),
    ("lightning", "lightning/pytorch/...:12"), ("host", ...) for a read of a tensor kept on the CPU on a GPU too,
    or ("other", ...) when neither is on the stack."""
    while frame is not None and frame.f_code.co_filename in SKIPPED:
        frame = frame.f_back
    innermost = frame
    at = lambda f: f"{short(f.f_code.co_filename)}:{f.f_lineno}"  # noqa: E731
    if innermost is not None and (short(innermost.f_code.co_filename), innermost.f_code.co_name) in HOST_RESIDENT:
        return "host", at(innermost)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(OWN):
            where = at(frame)
            return "template", where if frame is innermost else f"{where} (in {at(innermost)})"
        if filename.startswith(LIGHTNING_LOOP):
            return "lightning", at(innermost)
        frame = frame.f_back
    return "other", at(innermost) if innermost is not None else "?"


class SyncCounter(Callback):
    """Counts host syncs and collectives during training steps 0..steps-1, by whose they are and where they come from.

    Installs its counting at `setup` and removes it at `teardown`, in each process (a DDP rank counts its own):
    CUDA's sync debug warnings when training on a GPU (`cuda=None`: decided by the device), else the Tensor methods
    that read a value to the host; the collectives in both. With `out_dir`, writes syncs_rank<N>.json at teardown.
    """

    def __init__(self, steps: int = 50, out_dir: str | None = None, cuda: bool | None = None) -> None:
        self.steps = steps
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.cuda = cuda
        self.counting = False
        self.step = 0
        self.seen: set[int] = set()  # the steps whose window was open
        self.calls: dict[str, Counter[str]] = {whose: Counter() for whose in ("template", "lightning", "host", "other")}
        self.steps_with: dict[str, set[int]] = {whose: set() for whose in self.calls}  # steps that stalled
        self._inside = False  # within a counted call: what it calls in turn is not counted again
        self._undo: list[Callable[[], None]] = []
        self.rank, self.world_size = 0, 1  # this process's, known at setup

    # --- what is counted ---
    def note(self, kind: str, frame: FrameType | None) -> None:
        if not self.counting:
            return
        whose, where = attribute(frame)
        self.calls[whose][f"{kind} at {where}"] += 1
        self.steps_with[whose].add(self.step)

    def per_step(self, whose: str = "template") -> float:
        return sum(self.calls[whose].values()) / max(len(self.seen), 1)

    # --- the window of each training step ---
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        self.step = trainer.global_step
        self.counting = self.step < self.steps
        if self.counting:
            self.seen.add(self.step)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.counting = False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.counting = False

    # --- installing and removing the counting ---
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.rank, self.world_size = trainer.global_rank, trainer.world_size
        if self.cuda is None:
            self.cuda = trainer.strategy.root_device.type == "cuda"
        if self.cuda:
            self._count_cuda_syncs()
        else:
            self._patch(torch.Tensor, HOST_READS)
        self._patch(type(trainer.strategy), STRATEGY_COLLECTIVES)
        self._patch(dist, DIST_COLLECTIVES)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.remove()
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / f"syncs_rank{self.rank}.json").write_text(json.dumps(self.record(), indent=1))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.remove()

    def remove(self) -> None:
        self.counting = False
        while self._undo:
            self._undo.pop()()

    def _patch(self, owner: object, names: tuple[str, ...]) -> None:
        for name in names:
            if not hasattr(owner, name):
                continue
            original = getattr(owner, name)
            own = name in vars(owner)  # else inherited: removing the wrapper restores it

            def counted(*args, _name=name, _original=original, **kwargs):
                if self._inside:
                    return _original(*args, **kwargs)
                self._inside = True
                try:
                    self.note(_name, inspect.currentframe().f_back)
                    return _original(*args, **kwargs)
                finally:
                    self._inside = False

            setattr(owner, name, counted)
            restore = (lambda o=owner, n=name, v=original: setattr(o, n, v)) if own else (
                lambda o=owner, n=name: delattr(o, n)
            )  # fmt: skip
            self._undo.append(restore)

    def _count_cuda_syncs(self) -> None:
        """Every synchronising CUDA call warns (torch's sync debug mode); each warning is counted where it was made,
        and shown no further. Other warnings go on as before."""
        show = warnings.showwarning
        filters = list(warnings.filters)

        def counted(message, category, filename, lineno, file=None, line=None):
            if CUDA_SYNC in str(message):
                self.note("sync", inspect.currentframe().f_back)
            else:
                show(message, category, filename, lineno, file, line)

        warnings.filterwarnings("always", message=CUDA_SYNC)  # every one, not once per place
        warnings.showwarning = counted
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("warn")

        def restore() -> None:
            if torch.cuda.is_available():
                torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = show
            warnings.filters[:] = filters

        self._undo.append(restore)

    # --- the figures ---
    def record(self) -> dict:
        return {
            "rank": self.rank,
            "world_size": self.world_size,
            "counts": "CUDA syncs (sync debug mode) and collectives" if self.cuda else "host reads and collectives",
            "steps": len(self.seen),
            "per_step": {whose: self.per_step(whose) for whose in self.calls},
            "steps_with": {whose: sorted(steps) for whose, steps in self.steps_with.items()},
            "calls": {whose: dict(calls.most_common()) for whose, calls in self.calls.items()},
        }

    def table(self) -> str:
        record = self.record()
        lines = [f"{record['counts']} in {record['steps']} training steps (rank {self.rank} of {self.world_size}):"]
        for whose in self.calls:
            total = sum(self.calls[whose].values())
            lines.append(
                f"  {whose:9} {total:5d} ({record['per_step'][whose]:.2f} a step; "
                f"{len(self.steps_with[whose])} steps with any)"
            )
            lines += [f"      {n:5d}  {where}" for where, n in self.calls[whose].most_common()]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from src.machinery.config.schemas import compose_config
    from src.train import build

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50, help="training steps counted (the run trains one more)")
    p.add_argument("--out", type=Path, default=None, help="write syncs_rank<N>.json here")
    p.add_argument("overrides", nargs="*", help="train.py overrides (the default configuration without any)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose_config("train", [f"trainer.max_steps={args.steps + 1}", *args.overrides], run_dir)
        counter = SyncCounter(args.steps, out_dir=str(args.out) if args.out else None)
        run = build(cfg, callbacks=[counter])
        run.trainer.fit(run.module, datamodule=run.datamodule)
    if not counter.cuda:
        print("CUDA syncs: not measured (CUDA-only: torch.cuda.set_sync_debug_mode needs a GPU); counted on this CPU:")
    print(counter.table())
    return 0 if len(counter.seen) == args.steps else 1


if __name__ == "__main__":
    sys.exit(main())
