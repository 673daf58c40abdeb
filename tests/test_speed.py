"""Speed paths on the CPU: precision choice, compile, channels_last, data kept on the device."""

import pytest
import torch

from src.eval import evaluate
from src.machinery.launching import hardware
from src.machinery.serving.device_batches import DeviceBatches
from src.train import train
from tests.conftest import FAST, compose_config


def test_gpu_mixed_precision_prefers_bf16_and_explicit_values_win(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert hardware.resolve_precision("mixed") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert hardware.resolve_precision("mixed") == "16-mixed"  # e.g. a V100 or T4
    for explicit in (32, "32-true", "16-mixed", "bf16-mixed"):
        assert hardware.resolve_precision(explicit) == explicit


def test_device_batches_cover_the_data_once_per_epoch_and_reshuffle():
    images, labels = torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10)
    batches = DeviceBatches(images, labels, batch_size=4, shuffle=True, seed=3)
    assert len(batches) == 3
    first = torch.cat([y for _, y in batches])
    second = torch.cat([y for _, y in batches])
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(10))
    assert first.tolist() != second.tolist()  # a new permutation each epoch
    again = DeviceBatches(images, labels, batch_size=4, shuffle=True, seed=3)
    assert torch.cat([y for _, y in again]).tolist() == first.tolist()  # seeded


def test_device_batches_shard_disjointly_and_evenly_across_ranks():
    images, labels = torch.zeros(11, 1, 1, 1), torch.arange(11)
    shards = [DeviceBatches(images, labels, 2, shuffle=True, seed=0, rank=r, world_size=3).shard() for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # 11 padded to 12 by wrapping, as DistributedSampler does
    assert set(torch.cat(shards).tolist()) == set(range(11))
    with pytest.raises(ValueError, match="rank 3 is outside world_size 3"):
        DeviceBatches(images, labels, 2, shuffle=False, rank=3, world_size=3)


@pytest.mark.slow
def test_on_device_data_trains_like_the_dataloader_path(tmp_path):
    accuracy = {}
    for on_device in (False, True):
        overrides = [*FAST, f"data.on_device={on_device}", "trainer.max_epochs=4"]
        metrics = train(compose_config("train", overrides, tmp_path / f"on_device_{on_device}"))
        accuracy[on_device] = metrics["test/acc"]
    assert min(accuracy.values()) > 0.93
    assert abs(accuracy[True] - accuracy[False]) < 0.03  # same recipe; only the batch order differs


@pytest.mark.slow
def test_channels_last_trains_and_keeps_checkpoint_keys(make_cfg, tmp_path):
    metrics = train(make_cfg(*FAST, "model=resnet", "model.net.width=8", "model.channels_last=true"))
    assert metrics["val/acc"] > 0.5
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["state_dict"]["net.stem.0.weight"].shape == (8, 1, 3, 3)


@pytest.mark.slow
def test_compiled_run_checkpoint_evaluates_uncompiled(make_cfg, tmp_path):
    metrics = train(make_cfg(*FAST, "model.compile=true", "trainer.max_epochs=2"))
    best = next((tmp_path / "checkpoints").glob("epoch_*.ckpt"))
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    assert not [k for k in ckpt["state_dict"] if "_orig_mod" in k]  # compiled in place: keys unchanged
    evaluated = evaluate(make_cfg(f"ckpt_path={best}", "trainer=cpu", "logger=none", config_name="eval"))
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-3)


def test_flip_tta_averages_each_image_with_its_mirror(make_cfg):
    from hydra.utils import instantiate

    cfg = make_cfg("model.flip_tta=true")
    module = instantiate(cfg.model, optimizer=cfg.optimizer).eval()
    x = torch.randn(4, 1, 8, 8)
    logits = module._logits(x)
    expected = (module.net(x) + module.net(x.flip(3))) / 2
    assert torch.allclose(logits, expected, atol=1e-6)
    module.train()
    torch.manual_seed(0)
    logits = module._logits(x)
    torch.manual_seed(0)  # the same dropout mask for the plain forward pass
    assert torch.allclose(logits, module.net(x), atol=1e-6)  # training steps see the images as they are


@pytest.mark.slow
def test_eval_accepts_the_gpu_configs_mixed_precision(make_cfg, tmp_path):
    """`precision: mixed` (trainer=gpu) is resolved for eval.py as for train.py; on a CPU it runs bf16."""
    train(make_cfg(*FAST, "trainer.max_epochs=1"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    overrides = [f"ckpt_path={ckpt}", "trainer=cpu", "trainer.precision=mixed", "logger=none"]
    evaluated = evaluate(compose_config("eval", overrides, tmp_path / "eval"))
    assert evaluated["test/acc"] > 0.5
