"""Does the exported file compute what the checkpoint does? Both run over the whole test split: every prediction must
be equal and the largest probability difference at most TOLERANCE. Then their latency, side by side."""

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from src.data.tensor_data import TensorDataModule
from src.data.ts_format import read_series_file
from src.errors import DataError

try:  # the bundled time-series examples: a project started without them (docs/forking.md) has no src/data/ucr.py
    from src.data.ucr import UCRDataModule, fill_missing, find_file
except ImportError:
    UCRDataModule = None

TOLERANCE = 1e-4  # the largest probability difference allowed
Runner = Callable[..., np.ndarray]  # exported inputs (numpy) -> probabilities (B, K)


class TestSplit:
    """The test split twice: as the checkpoint's module takes it (`eager`: its batches, preprocessed by the data
    module) and as the exported file takes it (`raw`: pixels 0..255, or filled series and their lengths)."""

    def __init__(self, datamodule: pl.LightningDataModule) -> None:
        datamodule.setup("test")
        if isinstance(datamodule, TensorDataModule):
            if "test" in datamodule.splits:
                images, labels = datamodule.splits["test"]  # (N, C, H, W) on the stored scale
            else:  # decoded file by file
                images, labels = (torch.stack(items) for items in zip(*datamodule.datasets["test"], strict=True))
            self.eager = [(datamodule.transform((images.cpu(), labels.cpu()), train=False)[0],)]
            self.raw = [(images.float().cpu() * (255 / datamodule.max_value),)]  # as Pillow decodes: 0..255
        elif UCRDataModule is not None and isinstance(datamodule, UCRDataModule):
            test = datamodule.splits["test"]
            lengths = torch.tensor([len(s) for s in test.series])
            self.eager = [(pad_sequence(test.series, batch_first=True), lengths)]
            series = read_series_file(find_file(datamodule.data_dir, datamodule.name, "TEST")).series
            filled = [torch.from_numpy(np.ascontiguousarray(fill_missing(s), dtype=np.float32)) for s in series]
            self.raw = [(pad_sequence(filled, batch_first=True), lengths)]
        else:
            raise DataError(f"export.py cannot read the test split of {type(datamodule).__name__}")
        self.size = len(self.raw[0][0])

    def padded_to(self, steps: int) -> None:
        """Series padded to `steps` (a program exported with a fixed time dimension)."""
        x, lengths = self.raw[0]
        if x.shape[1] > steps:
            raise DataError(f"the test split has series of {x.shape[1]} steps, over the exported {steps}")
        self.raw = [(torch.nn.functional.pad(x, (0, 0, 0, steps - x.shape[1])), lengths)]

    def batches(self, which: str, size: int) -> list[tuple[torch.Tensor, ...]]:
        """The split (`eager` or `raw`) in batches of `size`."""
        whole = (self.eager if which == "eager" else self.raw)[0]
        return [tuple(t[i : i + size] for t in whole) for i in range(0, self.size, size)]

    def first(self, which: str, size: int) -> tuple[torch.Tensor, ...]:
        """A batch of `size` (the split repeated when it has fewer)."""
        whole = (self.eager if which == "eager" else self.raw)[0]
        index = torch.arange(size) % self.size
        return tuple(t[index] for t in whole)


def eager_probabilities(module: pl.LightningModule, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The checkpoint's module, as predict.py runs it: softmax of its (flip-averaged) logits."""
    with torch.no_grad():
        return module._logits(*batch).float().softmax(dim=1)


def onnx_runner(path: Path, threads: int) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda *inputs: session.run(None, dict(zip(names, [t.numpy() for t in inputs], strict=True)))[0]


def program_runner(module: torch.nn.Module) -> Runner:
    def run(*inputs: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return module(*inputs).numpy()

    return run


def compare(module: pl.LightningModule, run: Runner, split: TestSplit, batch_size: int = 256) -> dict[str, float]:
    """Agreement of predictions and the largest probability difference over the whole test split."""
    eager = torch.cat([eager_probabilities(module, b) for b in split.batches("eager", batch_size)]).numpy()
    exported = np.concatenate([run(*b) for b in split.batches("raw", batch_size)])
    agree = eager.argmax(1) == exported.argmax(1)
    return {
        "test_examples": len(agree),
        "agreement": float(agree.mean()),
        "disagreements": int((~agree).sum()),
        "max_probability_difference": float(np.abs(eager - exported).max()),
    }


def median_ms(call: Callable[[], object], seconds: float = 1.0, at_least: int = 5) -> float:
    """Median wall time of `call` in milliseconds: a few warm-up calls, then repeats for about `seconds`."""
    for _ in range(2):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < at_least or time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    return 1000 * statistics.median(times)


def latency(
    eager: torch.nn.Module, run: Runner, split: TestSplit, seconds: float = 1.0, batch_sizes: tuple[int, ...] = (1, 64)
) -> dict[str, dict[str, float]]:
    """Milliseconds per batch of eager PyTorch (preprocessing, network, softmax) and of the exported file, each batch
    size measured side by side on the same inputs."""
    result = {}
    for size in batch_sizes:
        batch = split.first("raw", size)

        def run_eager(batch: tuple[torch.Tensor, ...] = batch) -> torch.Tensor:
            with torch.no_grad():
                return eager(*batch)

        result[f"batch_{size}"] = {
            "eager_ms": median_ms(run_eager, seconds),
            "exported_ms": median_ms(lambda b=batch: run(*b), seconds),
        }
    return result
