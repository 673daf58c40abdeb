"""The GPU paths on a real GPU: mixed precision, compile, channels_last and data kept on the device.

Marked `gpu`: they skip where torch sees no CUDA device (the CPU versions of these paths run everywhere).
"""

import pytest
import torch

from src.eval import evaluate
from src.train import build, train
from tests.conftest import compose_config

pytestmark = pytest.mark.gpu
GPU = ["trainer=gpu", "logger=csv", "trainer.max_epochs=4"]


def test_trainer_gpu_picks_the_best_mixed_precision_and_tf32(tmp_path):
    trainer = build(compose_config("train", GPU, tmp_path)).trainer
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "16-mixed"
    assert trainer.precision == expected
    assert torch.get_float32_matmul_precision() == "high"  # TF32 matmuls on CUDA


def test_data_on_the_gpu_learns(tmp_path):
    assert train(compose_config("train", [*GPU, "data.on_device=true"], tmp_path))["test/acc"] > 0.93


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_each_mixed_precision_trains_the_resnet(tmp_path, precision):
    overrides = [*GPU, f"trainer.precision={precision}", "model=resnet", "model.net.width=16"]
    assert train(compose_config("train", overrides, tmp_path))["test/acc"] > 0.8


def test_compiled_channels_last_run_evaluates_uncompiled_with_the_same_accuracy(tmp_path):
    overrides = [*GPU, "model=resnet", "model.net.width=16", "model.compile=true", "model.channels_last=true"]
    metrics = train(compose_config("train", overrides, tmp_path))
    best = next((tmp_path / "checkpoints").glob("epoch_*.ckpt"))
    cfg = compose_config("eval", [f"ckpt_path={best}", "trainer=gpu", "logger=none"], tmp_path / "eval")
    assert evaluate(cfg)["test/acc"] == pytest.approx(metrics["test/acc"], abs=2e-3)
