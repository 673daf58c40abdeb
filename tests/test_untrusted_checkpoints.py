"""A checkpoint is data: the config stored in it never chooses which code runs (eval.py, prediction)."""

import copy
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from src.errors import CheckpointError
from src.eval import evaluate
from src.machinery.resume.stored_config import literal, rebuild_run_config
from src.train import train
from tests.conftest import FAST, compose_config, run_script

TINY = [*FAST, "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    run_dir = tmp_path_factory.mktemp("trained")
    metrics = train(compose_config("train", TINY, run_dir))
    return run_dir / "checkpoints" / "last.ckpt", metrics


def crafted(good: Path, folder: Path, change) -> Path:
    """A copy of `good` whose stored run_config `change` edited (no checksum file: it passes every load check)."""
    checkpoint = torch.load(good, map_location="cpu", weights_only=True)
    config = copy.deepcopy(checkpoint["run_config"])
    change(config)
    checkpoint["run_config"] = config
    path = folder / "crafted.ckpt"
    torch.save(checkpoint, path)
    return path


def opens(marker: Path) -> dict:
    """A node that, if instantiated, creates `marker` (an allowed, harmless-looking target)."""
    return {"_target_": "builtins.open", "_args_": [str(marker), "w"]}


ATTACKS = {
    # the top node's target swapped for one Hydra blocks, and one it allows
    "blocked_target": lambda c, m: c["model"].update(_target_="os.system", _args_=[f"touch {m}"]),
    "allowed_target": lambda c, m: c["model"].update(opens(m)),
    # an allowed target nested in an ordinary-looking node
    "nested_in_plain_node": lambda c, m: c["model"]["net"].update(widths=opens(m)),
    "new_nested_key": lambda c, m: c["model"]["net"].update(extra={"inner": opens(m)}),
    "list_item": lambda c, m: c["model"]["net"].update(widths=[32, opens(m), 128]),
    # _partial_ / _args_ / _recursive_ tricks on nodes whose target is the repository's own
    "args_added": lambda c, m: c["model"].update(_args_=[opens(m)]),
    "partial_flipped": lambda c, m: c["optimizer"].update(_partial_=False, params=opens(m)),
    "recursive_flag": lambda c, m: c["model"].update(_recursive_=False),
    "optimizer_target": lambda c, m: c["optimizer"].update(_target_="builtins.open", file=str(m), mode="w"),
    # a target in the data node
    "data_target": lambda c, m: c["data"].update(opens(m)),
    # a group choice that is no file of conf/ (a path, an override list, an interpolation)
    "choice_path": lambda c, m: c["choices"].update(model="../../../tmp/evil"),
    "choice_sweep": lambda c, m: c["choices"].update(model="cnn,rnn"),
    "choice_interpolation": lambda c, m: c["choices"].update(data="${oc.env:HOME}"),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_stored_config_that_names_code_is_refused_and_runs_nothing(trained, tmp_path, attack):
    marker = tmp_path / "marker"
    path = crafted(trained[0], tmp_path, lambda c: ATTACKS[attack](c, marker))
    cfg = compose_config("eval", [f"ckpt_path={path}", "trainer=cpu", "logger=none", "predict=true"], tmp_path / "e")
    with pytest.raises(CheckpointError) as error:
        evaluate(cfg)
    message = str(error.value)
    assert str(path) in message and "refused" in message and "\n" not in message
    assert "if you trust this file" in message or "conf/" in message  # says how to proceed
    assert not marker.exists()


@pytest.mark.slow
def test_cli_refusal_is_one_line_and_exit_1(trained, tmp_path):
    marker = tmp_path / "marker"
    path = crafted(trained[0], tmp_path, lambda c: c["model"]["net"].update(widths=opens(marker)))
    done = run_script("eval.py", f"ckpt_path={path}", "trainer=cpu", "logger=none", f"hydra.run.dir={tmp_path / 'e'}")
    assert done.returncode == 1, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: checkpoint ") and "model.net.widths._target_" in errors[0]
    assert "Traceback" not in done.stderr and not marker.exists()


def test_stored_interpolations_are_never_resolved(trained, tmp_path, monkeypatch):
    """`${oc.env:...}` and any resolver in a stored string stay that literal text; nothing is looked up."""
    marker = tmp_path / "marker"
    calls = []
    OmegaConf.register_new_resolver("touch_marker", lambda: calls.append(marker.touch()) or "x", replace=True)
    monkeypatch.setenv("SECRET_FOR_TEST", "hunter2-very-secret")
    stored = torch.load(trained[0], map_location="cpu", weights_only=True)["run_config"]
    stored["data"]["note"] = "${oc.env:SECRET_FOR_TEST}"
    stored["model"]["net"]["cell"] = "${touch_marker:}"
    stored["model"]["odd"] = ["\\${touch_marker:}", "\\\\${touch_marker:}", "a$b{c}\\"]
    cfg = rebuild_run_config(stored, "crafted.ckpt")
    resolved = OmegaConf.to_container(cfg.model, resolve=True)
    assert OmegaConf.to_container(cfg.data, resolve=True)["note"] == "${oc.env:SECRET_FOR_TEST}"
    assert resolved["net"]["cell"] == "${touch_marker:}"
    assert resolved["odd"] == stored["model"]["odd"]  # backslashes survive, read back unchanged
    assert not calls and not marker.exists()


@pytest.mark.parametrize("text", ["plain", "${x}", "\\${x}", "\\\\${x}", "a\\b${y}c${z}", "\\", "$", "${", "}${a.b}"])
def test_literal_reads_back_unchanged(text):
    assert OmegaConf.create({"v": literal(text)}).v == text


def test_a_legitimate_checkpoint_rebuilds_from_conf_and_reproduces_test_acc(trained, tmp_path):
    path, metrics = trained
    cfg = compose_config("eval", [f"ckpt_path={path}", "trainer=cpu", "logger=none"], tmp_path)
    evaluated = evaluate(cfg)
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-3)


def test_a_stored_value_still_applies(trained, tmp_path):
    """Plain values come from the checkpoint, not from conf/'s defaults: a stored dropout or width is used."""
    stored = torch.load(trained[0], map_location="cpu", weights_only=True)["run_config"]
    stored["model"]["net"]["dropout"] = 0.25
    stored["data"]["batch_size"] = 7
    cfg = rebuild_run_config(stored, "x.ckpt")
    assert cfg.model.net.dropout == 0.25 and cfg.data.batch_size == 7
    assert cfg.model._target_ == "src.module.ClassificationModule"


@pytest.mark.slow
def test_a_model_added_by_the_readme_recipe_evaluates_and_reproduces(repo_copy, tmp_path):
    """The README's "Add a model" files, a short run of the new model, then eval.py on its best checkpoint."""
    from tests.test_readme import ALL_STEPS

    for step in (s for s in ALL_STEPS if s.section == "Add a model" and s.path):
        (repo_copy / step.path).parent.mkdir(parents=True, exist_ok=True)
        (repo_copy / step.path).write_text(step.text)
    run_dir = tmp_path / "run"
    limits = ["trainer=cpu", "logger=csv", "trainer.max_epochs=2"]
    done = run_script("train.py", "model=mlp", *limits, f"hydra.run.dir={run_dir}", cwd=repo_copy, repo=repo_copy)
    assert done.returncode == 0, done.stderr[-3000:]
    trained_acc = float(re.search(r"Final metrics: .*test/acc=([0-9.]+)", done.stdout + done.stderr).group(1))
    best = next((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    done = run_script(
        "eval.py", f"ckpt_path={best}", "trainer=cpu", f"hydra.run.dir={tmp_path / 'e'}", cwd=repo_copy, repo=repo_copy
    )
    assert done.returncode == 0, done.stderr[-3000:]
    evaluated = float(re.search(r"test/acc=([0-9.]+)", done.stdout + done.stderr).group(1))
    assert evaluated == pytest.approx(trained_acc, abs=1e-3)


@pytest.mark.slow
def test_a_ddp_run_evaluates_and_reproduces(tmp_path):
    """Two CPU ranks (each re-runs train.py in the same run folder: the folder check lets W&B's links be)."""
    run_dir = tmp_path / "run"
    quick = ["trainer=cpu", "trainer.max_epochs=2", "trainer.devices=2", "trainer.strategy=ddp", "logger=default"]
    done = run_script("train.py", *quick, f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    trained_acc = float(re.search(r"Final metrics: .*test/acc=([0-9.]+)", done.stdout + done.stderr).group(1))
    best = next((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    done = run_script("eval.py", f"ckpt_path={best}", "trainer=cpu", f"hydra.run.dir={tmp_path / 'e'}")
    assert done.returncode == 0, done.stderr[-3000:]
    evaluated = float(re.search(r"test/acc=([0-9.]+)", done.stdout + done.stderr).group(1))
    assert evaluated == pytest.approx(trained_acc, abs=1e-3)


def test_an_imagefolder_run_evaluates_and_reproduces(tmp_path):
    from tests.test_data import write_image_tree

    images = tmp_path / "images"
    write_image_tree(images / "train", ["cat", "dog"], per_class=20, size=8)
    write_image_tree(images / "test", ["cat", "dog"], per_class=6, size=8)
    data = ["data=imagefolder", f"data.data_dir={images}", "data.num_classes=2", "data.image_size=8",
            "data.num_workers=0", "data.batch_size=8"]  # fmt: skip
    run_dir = tmp_path / "run"
    metrics = train(compose_config("train", [*FAST, *data, "logger=none", "trainer.max_epochs=2"], run_dir))
    best = next((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    # where the images are on this machine is the caller's to say (data_dir=), never the checkpoint's
    overrides = [f"ckpt_path={best}", "trainer=cpu", "logger=none", f"data_dir={images}"]
    evaluated = evaluate(compose_config("eval", overrides, tmp_path / "e"))
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-3)
