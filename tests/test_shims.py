"""The template's uses of private names of Lightning, torch and Hydra, all in `src/machinery/shims/`: each still does
what the shim relies on (a failure names the version), and no other module touches a private name."""

import ast
import csv
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from src.machinery.config.schemas import ROOT
from src.machinery.shims import hydra as hydra_shims
from src.machinery.shims.lightning import (
    LIGHTNING_VERSION,
    ContinuingCSVLogger,
    experiment_started,
    kill_launched_ranks,
    raised_restoring_datamodule,
    starts_ranks_by_fork,
    stop_per_step_sigterm_broadcast,
)

MOVED = f"Lightning {LIGHTNING_VERSION} changed a private name that src/machinery/shims/lightning.py relies on"


def cpu_trainer(strategy: str, devices: int) -> Trainer:
    return Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False, enable_progress_bar=False)


def test_the_ranks_rank_0_launches_can_be_signalled():
    assert kill_launched_ranks(cpu_trainer("ddp", 2)), f"{MOVED}: ddp's launcher is no _SubprocessScriptLauncher"
    assert not kill_launched_ranks(cpu_trainer("auto", 1))  # one process: no ranks to signal


def test_fork_based_strategies_are_told_apart():
    assert starts_ranks_by_fork(cpu_trainer("ddp_fork", 2)), f"{MOVED}: the strategy's _start_method"
    assert not starts_ranks_by_fork(cpu_trainer("ddp", 2))


def test_the_per_step_sigterm_broadcast_is_stopped_on_one_trainer_only():
    trainer, other = cpu_trainer("ddp", 2), cpu_trainer("ddp", 2)
    before = other.fit_loop.epoch_loop._broadcast_sigterm_tensor
    assert stop_per_step_sigterm_broadcast(trainer), f"{MOVED}: the training loop's _broadcast_sigterm_tensor"
    assert trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor() is None  # a no-op: no collective, no read
    assert other.fit_loop.epoch_loop._broadcast_sigterm_tensor == before


class TinyData(LightningDataModule):
    """Eight samples of one feature; a stored state it cannot take raises a KeyError, as a fork's might."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(8, 1), torch.randn(8, 1)), batch_size=4)

    def state_dict(self) -> dict:
        return {"vocab": ["a"]}

    def load_state_dict(self, state: dict) -> None:
        self.vocab = state["vocab"]


class TinyModel(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_an_error_of_the_data_modules_restore_is_told_from_one_of_training(tmp_path):
    def fit(ckpt_path: Path | None = None, fail_in_step: bool = False) -> Exception | None:
        model = TinyModel()
        if fail_in_step:
            model.training_step = lambda batch, batch_idx: batch["no such key"]  # a TypeError of training itself
        trainer = Trainer(
            accelerator="cpu", max_epochs=2 if ckpt_path else 1, logger=False, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
        )  # fmt: skip
        try:
            trainer.fit(model, datamodule=TinyData(), ckpt_path=ckpt_path, weights_only=True)
        except Exception as error:
            return error
        trainer.save_checkpoint(tmp_path / "one.ckpt")
        return None

    assert fit() is None
    checkpoint = torch.load(tmp_path / "one.ckpt", weights_only=True)
    checkpoint["TinyData"] = {"words": []}  # a stored state without "vocab"
    torch.save(checkpoint, tmp_path / "crafted.ckpt")
    error = fit(tmp_path / "crafted.ckpt")
    assert isinstance(error, KeyError) and raised_restoring_datamodule(error), f"{MOVED}: restore_datamodule"
    error = fit(fail_in_step=True)
    assert isinstance(error, TypeError) and not raised_restoring_datamodule(error)


def test_a_loggers_experiment_is_seen_without_creating_it(tmp_path):
    logger = CSVLogger(tmp_path)
    assert not experiment_started(logger)
    assert not experiment_started(logger)  # asking does not create it
    logger.experiment  # noqa: B018 (creates it)
    assert experiment_started(logger), f"{MOVED}: a logger's _experiment"


def test_the_csv_logger_appends_to_the_metrics_a_run_already_wrote(tmp_path):
    for step, value in enumerate([0.5, 0.25]):
        logger = ContinuingCSVLogger(tmp_path, name="csv", version="")  # a new logger, as after resume=true
        logger.log_metrics({"train/loss": value}, step=step)
        logger.save()
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["train/loss"]) for r in rows] == [0.5, 0.25], f"{MOVED}: the CSV writer's _check_log_dir_exists"


CODE = [*ROOT.glob("*.py"), *(ROOT / "src").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]
CODE += [*(ROOT / "hydra_plugins").rglob("*.py")]
SHIMS = ROOT / "src" / "machinery" / "shims"
FRAMEWORKS = ("lightning", "torch", "hydra", "omegaconf")


def own_names(files: list[Path]) -> set[str]:
    """The attribute and method names the template's own code assigns or defines (`self._first_bad = ...`)."""
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.add(node.name)
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            names |= {t.attr for t in targets if isinstance(t, ast.Attribute)}
    return names


def private_names(path: Path, own: set[str] = frozenset()) -> list[str]:
    """`module: line: name` for each private name of Lightning, torch or Hydra the file imports or reads: `from
    lightning... import _X`, `import hydra._internal...`, and any `x._name` (`torch._dynamo`, `trainer._results`,
    `self._fs`) that the template's own code (`own`, and this file) never assigns or defines."""
    tree = ast.parse(path.read_text())
    own = set(own) | own_names([path])
    found = []
    for node in ast.walk(tree):
        private = None
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FRAMEWORKS:
            names = [alias.name for alias in node.names] + node.module.split(".")
            private = next((n for n in names if n.startswith("_") and not n.startswith("__")), None)
        elif isinstance(node, ast.Import):
            names = [
                part for alias in node.names if alias.name.split(".")[0] in FRAMEWORKS for part in alias.name.split(".")
            ]
            private = next((n for n in names if n.startswith("_") and not n.startswith("__")), None)
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            private = node.attr if node.attr not in own else None
        if private:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {private}")
    return found


def test_hydras_local_launcher_is_still_where_the_gpu_queue_launcher_takes_it():
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    assert issubclass(hydra_shims.BasicLauncher, Launcher), "Hydra moved its BasicLauncher"
    assert "BasicLauncher" in {p.__name__ for p in Plugins.instance().discover(Launcher)}


def test_only_the_shim_room_touches_private_lightning_torch_or_hydra_names():
    shims = sorted(SHIMS.glob("*.py"))
    others = [path for path in CODE if path.parent.resolve() != SHIMS.resolve()]
    own = own_names(others)
    assert all(private_names(shim, own) for shim in shims if shim.name != "__init__.py"), "the grep cannot fail"
    offenders = [hit for path in others for hit in private_names(path, own)]
    assert not offenders, offenders


@pytest.mark.parametrize(
    "code,expected",
    [
        ("from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher", "_SubprocessScriptLauncher"),
        ("import torch\ntorch._dynamo.reset()", "_dynamo"),
        ("def f(trainer):\n    return trainer._results", "_results"),
        ("class L:\n    def f(self):\n        return self._experiment", "_experiment"),
        ("from hydra._internal.core_plugins.basic_launcher import BasicLauncher", "_internal"),
        ("import hydra._internal.utils", "_internal"),
    ],
)
def test_the_grep_finds_each_kind_of_private_use(tmp_path, code, expected, monkeypatch):
    path = ROOT / "src" / "_probe_for_the_grep.py"
    monkeypatch.setattr(Path, "read_text", lambda self: code if self == path else Path.read_bytes(self).decode())
    assert [hit.rsplit(": ", 1)[1] for hit in private_names(path)] == [expected]
