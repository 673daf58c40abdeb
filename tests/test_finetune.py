"""Starting from weights, not from a run: `init_from`, `init_strict`, `model.freeze`, `data.classes`, and the
ResNet's torchvision weights (from a file this test writes; never a download)."""

import logging
import re

import pytest
import torch
import torchvision
from hydra.utils import instantiate

from src.data.splits import keep_classes
from src.errors import CheckpointError, ConfigValueError, DataError
from src.machinery.checkpoints.files import init_weights
from src.machinery.config.instantiate import instantiate_node
from src.machinery.config.schemas import check_value_ranges
from src.models.resnet import ResNet
from src.models.rnn import RNNClassifier
from tests.conftest import run_script

SMALL_CNN = ["model.net.widths=[8,16]"]


def module(make_cfg, *overrides):
    cfg = make_cfg(*SMALL_CNN, *overrides)
    return instantiate_node(cfg.model, optimizer=cfg.optimizer)


def test_a_networks_own_state_dict_loads_under_net(make_cfg, tmp_path):
    torch.manual_seed(0)
    source, target = module(make_cfg), module(make_cfg)
    torch.save(source.net.state_dict(), tmp_path / "net.pt")  # keys without the `net.` prefix
    init_weights(target, str(tmp_path / "net.pt"))
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_a_new_head_is_an_error_unless_init_strict_is_false(make_cfg, tmp_path, caplog):
    torch.manual_seed(0)
    ten = module(make_cfg)
    torch.save({"state_dict": ten.state_dict(), "epoch": 3}, tmp_path / "ten.ckpt")  # as Lightning writes one
    five = module(make_cfg, "data.classes=[0,1,2,3,4]")
    with pytest.raises(CheckpointError, match=r"2 of another shape: net.classifier.bias, net.classifier.weight"):
        init_weights(five, str(tmp_path / "ten.ckpt"))
    head = five.net.classifier.weight.clone()
    with caplog.at_level(logging.WARNING):
        init_weights(five, str(tmp_path / "ten.ckpt"), strict=False)
    assert "init_from skipped 2 of another shape: net.classifier.bias, net.classifier.weight" in caplog.text
    assert torch.equal(five.net.classifier.weight, head)  # the new head stays as initialised
    for key, value in ten.state_dict().items():
        if not key.startswith("net.classifier"):
            assert torch.equal(five.state_dict()[key], value), key


def test_another_model_familys_weights_are_refused_even_when_not_strict(make_cfg, tmp_path):
    rnn = RNNClassifier((1, 8, 8), 10, hidden_size=16)
    torch.save({f"net.{k}": v for k, v in rnn.state_dict().items()}, tmp_path / "rnn.pt")
    with pytest.raises(CheckpointError, match=r"fits 2 of this model's 26 weights: .* not in this model: net.rnn"):
        init_weights(module(make_cfg), str(tmp_path / "rnn.pt"), strict=False)


def test_freeze_stops_gradients_and_batch_norm_statistics(make_cfg):
    frozen = module(make_cfg, "model.freeze=[net.features]")
    trainable = {name for name, p in frozen.named_parameters() if p.requires_grad}
    assert trainable == {"net.classifier.weight", "net.classifier.bias"}
    for _ in range(2):  # as built (Lightning restores each layer's own mode after validating), and after train()
        assert not any(m.training for m in frozen.net.features.modules()) and frozen.net.classifier.training
        frozen.train()
    assert frozen.hparams.freeze == ["net.features"] and type(frozen.hparams.freeze) is list  # weights_only loads


def test_an_unknown_freeze_prefix_lists_the_valid_names(make_cfg):
    with pytest.raises(ConfigValueError, match=r"net.backbone names no parameters; .*\['net.classifier', 'net.feat"):
        module(make_cfg, "model.freeze=[net.backbone]")


def test_one_freeze_prefix_may_be_given_without_a_list(make_cfg):
    frozen = module(make_cfg, "model.freeze=net.features")  # one prefix, not its letters
    assert frozen.hparams.freeze == ["net.features"]
    assert {name.split(".")[1] for name, p in frozen.named_parameters() if not p.requires_grad} == {"features"}


def test_classes_keeps_those_labels_renumbered_and_num_classes_follows(make_cfg):
    images, labels = torch.arange(6).view(6, 1, 1, 1), torch.tensor([0, 7, 3, 7, 1, 3])
    kept_images, kept_labels = keep_classes(images, labels, [3, 7])
    assert kept_images.flatten().tolist() == [1, 2, 3, 5] and kept_labels.tolist() == [1, 0, 1, 0]
    with pytest.raises(DataError, match=r"data.classes=\[3, 9\]: no images of \[9\]"):
        keep_classes(images, labels, [3, 9])
    cfg = make_cfg("data.classes=[0,1,2,3,4]")
    assert cfg.data.num_classes == cfg.model.num_classes == cfg.model.net.num_classes == 5
    data = instantiate(cfg.data)
    data.setup()
    for images, labels in data.splits.values():
        assert sorted(set(labels.tolist())) == [0, 1, 2, 3, 4] and len(images) == len(labels)
    assert make_cfg().data.num_classes == 10


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.classes=[0,0,1]", r"^data.classes=\[0, 0, 1\] names \[0\] more than once: list each class once$"),
        ("data.classes=3", r"^data.classes=3 is not valid: use null \(every class\) or a list of class labels, e"),
        ("data.classes=[a,b]", r"^data.classes=\['a', 'b'\] is not valid: use null \(every class\) or a list of"),
    ],
)
def test_classes_that_are_not_a_list_of_distinct_labels_are_one_line(make_cfg, override, message):
    with pytest.raises(ConfigValueError, match=message):
        check_value_ranges(make_cfg(override))


def test_resnet_with_the_imagenet_stem_is_torchvisions_and_takes_its_weights(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")  # as torchvision's download cache holds it
    ours = ResNet(3, 1000, stem="imagenet", weights=str(tmp_path / "resnet18.pth")).eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(ours(x), reference(x), atol=1e-5)  # the same network, layer for layer
    five = ResNet(3, 5, stem="imagenet", weights=str(tmp_path / "resnet18.pth"))  # a new head
    assert torch.equal(five.stages[3][1].conv2.weight, reference.layer4[1].conv2.weight)
    with pytest.raises(ValueError, match=r"does not fit \['stem.0.weight'\].*stem=imagenet"):
        ResNet(3, 10, weights=str(tmp_path / "resnet18.pth"))  # the small stem: a 3x3 conv
    with pytest.raises(ValueError, match=r"weights=IMAGENET is neither a file nor one of \['IMAGENET1K_V1', 'DEF"):
        ResNet(3, 10, stem="imagenet", weights="IMAGENET")


def one_error_line(done) -> str:
    """The run failed with one `Error: ...` line on stderr and no traceback; that line."""
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, done.stderr[-3000:]
    return errors[0]


def test_a_missing_init_from_is_one_line_before_torch_loads(tmp_path):
    done = run_script("train.py", f"init_from={tmp_path}/nope.ckpt", f"hydra.run.dir={tmp_path / 'run'}")
    assert one_error_line(done) == f"Error: checkpoint {tmp_path}/nope.ckpt does not exist"


def test_an_rnn_checkpoint_into_a_cnn_is_one_line(tmp_path):
    rnn = RNNClassifier((1, 8, 8), 10)
    torch.save({"state_dict": {f"net.{k}": v for k, v in rnn.state_dict().items()}}, tmp_path / "rnn.ckpt")
    done = run_script("train.py", "trainer=cpu", "logger=none", f"init_from={tmp_path}/rnn.ckpt", "init_strict=false")
    line = one_error_line(done)
    assert re.fullmatch(rf"Error: init_from={tmp_path}/rnn.ckpt fits 2 of this model's 38 weights: .*net\.rnn.*", line)


def final(done, metric: str) -> float:
    assert done.returncode == 0, done.stderr[-3000:]
    return float(re.search(rf"Final metrics: .*{metric}=([0-9.]+)", done.stdout + done.stderr).group(1))


@pytest.mark.slow
def test_fine_tuning_a_new_head_on_five_classes_beats_training_from_scratch(tmp_path):
    """A CNN trained on the 10 digits, then only a new 5-class head trained on digits 0-4: it beats the same
    network trained from scratch for the same steps, and its backbone is the pretrained one, tensor for tensor."""
    quick = ["trainer=cpu", "logger=csv", "callbacks.test_figures=null", *SMALL_CNN]
    done = run_script("train.py", *quick, "trainer.max_epochs=5", f"hydra.run.dir={tmp_path / 'ten'}")
    pretrained = next((tmp_path / "ten" / "checkpoints").glob("epoch_*.ckpt"))
    print(f"10 classes, 5 epochs: test/acc {final(done, 'test/acc'):.4f}")

    five = [*quick, "data.classes=[0,1,2,3,4]", "trainer.max_epochs=1"]  # 9 steps of 64 images
    tune = [f"init_from={pretrained}", "init_strict=false", "model.freeze=[net.features]"]
    done = run_script("train.py", *five, *tune, f"hydra.run.dir={tmp_path / 'tuned'}")
    tuned = final(done, "test/acc")
    log = (tmp_path / "tuned" / "train.log").read_text()
    assert "init_from skipped 2 of another shape: net.classifier.bias, net.classifier.weight" in log
    assert "Training 85 of 4285 parameters" in log  # the head: 16 * 5 + 5
    done = run_script("train.py", *five, f"hydra.run.dir={tmp_path / 'scratch'}")
    scratch = final(done, "test/acc")
    print(f"5 classes, 9 steps: fine-tuned test/acc {tuned:.4f}, from scratch {scratch:.4f}")
    assert tuned > scratch + 0.1

    before = torch.load(pretrained, weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "tuned" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    changed = {key for key in after if key not in before or not torch.equal(after[key], before[key])}
    assert changed == {"net.classifier.weight", "net.classifier.bias"}  # the backbone, buffers too, as loaded
