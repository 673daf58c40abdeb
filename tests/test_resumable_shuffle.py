"""The resumable_shuffle callback: a plain training DataLoader of any data module, rebuilt to resume where it stopped;
what it cannot rebuild is kept, with one log line. (End to end, killed and resumed: tests/test_fork_examples.py.)"""

import logging
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset

from src.machinery.serving.resumable import ResumableDataLoader
from src.machinery.serving.resumable_shuffle import ResumableShuffle, why_not_rebuildable

DATA = TensorDataset(torch.arange(20.0).view(20, 1), torch.arange(20))


def trainer() -> SimpleNamespace:
    """What the callback asks of a Trainer, on one process."""
    return SimpleNamespace(strategy=SimpleNamespace(broadcast=lambda x: x), global_rank=0, world_size=1,
                           num_training_batches=5, datamodule=None)  # fmt: skip


def order(loader) -> list[int]:
    return [int(i) for _, labels in loader for i in labels]


def test_a_plain_shuffling_loader_is_rebuilt_and_resumes_mid_epoch_on_the_same_batches():
    torch.manual_seed(0)
    callback = ResumableShuffle()
    loader = callback._rebuilt(DataLoader(DATA, batch_size=4, shuffle=True), trainer())
    assert isinstance(loader, ResumableDataLoader) and loader.batch_size == 4
    state = torch.get_rng_state()
    unbroken = order(loader)
    assert sorted(unbroken) == list(range(20)) and unbroken != list(range(20))  # every sample once, shuffled
    assert torch.equal(torch.get_rng_state(), state)  # iterating drew nothing from the global generator

    first = iter(loader)
    [next(first) for _ in range(2)]  # two batches trained, then the run is killed
    saved = callback.state_dict()
    resumed = ResumableShuffle()
    resumed.load_state_dict(saved)  # a new process: the checkpoint's seed and position
    again = resumed._rebuilt(DataLoader(DATA, batch_size=4, shuffle=True), trainer())
    assert order(again) == unbroken[8:]  # the epoch's remaining batches, in the unbroken run's order


def test_a_sequential_loader_keeps_its_order():
    loader = ResumableShuffle()._rebuilt(DataLoader(DATA, batch_size=8), trainer())
    assert order(loader) == list(range(20))


def test_what_it_cannot_rebuild_is_kept_with_one_log_line(caplog):
    sampler = RandomSampler(DATA, replacement=True)
    assert why_not_rebuildable(DataLoader(DATA, batch_size=4, sampler=sampler)) == (
        "a RandomSampler with replacement or num_samples"
    )
    assert why_not_rebuildable(DataLoader(DATA, batch_size=4, sampler=list(range(20)))) == "its own sampler, list"
    assert why_not_rebuildable(DataLoader(DATA, batch_size=None, sampler=SequentialSampler(DATA))) == (
        "its own batch sampler"
    )
    assert why_not_rebuildable(DataLoader(DATA, batch_size=4, shuffle=True)) == ""
    custom = DataLoader(DATA, batch_size=4, sampler=list(range(20)))
    with caplog.at_level(logging.INFO):
        assert ResumableShuffle()._rebuilt(custom, trainer()) is custom
    (line,) = [r.getMessage() for r in caplog.records if "Resume:" in r.getMessage()]
    assert "its own sampler" in line and "not on the same batches" in line
