"""predict.py: new image files of any size and mode get the training run's preprocessing, and class names."""

import csv
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from scripts.digits_to_png import write_digits
from src.errors import CheckpointError, ConfigValueError, DataError
from src.eval import evaluate
from src.predict import input_files, predict
from src.train import train
from tests.conftest import compose_config, run_script

TINY = ["trainer=cpu", "logger=none", "callbacks.test_figures=null", "callbacks.energy=null"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """A CNN trained on the digits for 2 epochs (34 steps, about 0.9 test accuracy): its best checkpoint."""
    folder = tmp_path_factory.mktemp("digits_run")
    train(compose_config("train", [*TINY, "trainer.max_epochs=2"], folder))
    return next((folder / "checkpoints").glob("epoch_*.ckpt"))


@pytest.fixture(scope="module")
def pets_run(tmp_path_factory) -> Path:
    """An RGB 16x16 CNN trained for 2 steps on an image folder of classes `cat` and `dog`: its last checkpoint."""
    folder = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (folder / "images" / "train" / name).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "images" / "train" / name / f"{i}.png")
    data = [f"data.data_dir={folder / 'images'}", "data.num_classes=2", "data.image_size=16", "data.num_workers=0"]
    overrides = [
        *TINY,
        "data=imagefolder",
        *data,
        "data.batch_size=4",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
    ]
    train(compose_config("train", overrides, folder / "run"))
    return folder / "run" / "checkpoints" / "last.ckpt"


def write_mixed_folder(folder: Path) -> dict[str, str]:
    """PNG and JPEG, grey, RGB, RGBA and palette, 8x8, 64x64 and 40x64, in a folder and a subfolder, and a corrupt
    file: each name and its PIL mode."""
    rng = np.random.default_rng(1)
    images = {
        "grey8.png": Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)),
        "grey64.jpg": Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)),
        "rgb8.jpg": Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)),
        "rgb64.png": Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)),
        "rgba.png": Image.fromarray(rng.integers(0, 256, (40, 64, 4), dtype=np.uint8)),
        "more/palette.png": Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).convert("P"),
    }
    for name, image in images.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        image.save(folder / name)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
    return {name: image.mode for name, image in images.items()}


def test_digits_written_as_png_decode_to_the_training_tensors_exactly(tmp_path):
    """The data module's `read_input` (decode, run's size and channels, data scale, normalisation), which predict.py
    calls, turns a lossless PNG of each test digit into exactly the tensor the model is tested on."""
    datamodule = instantiate(compose_config("train", [], tmp_path).data)
    datamodule.setup("test")
    images, labels = datamodule.splits["test"]  # (360, 1, 8, 8) uint8 in 0..16
    x = torch.stack([datamodule.read_input(path) for path in write_digits(tmp_path / "digits")])
    tested, _ = datamodule.transform((images, labels), train=False)
    assert x.shape == tested.shape == (360, 1, 8, 8) and x.dtype == tested.dtype == torch.float32
    assert torch.equal(x, tested)


def test_input_names_a_file_a_folder_or_a_glob(tmp_path):
    for name in ("b.png", "a.jpg", "sub/c.png", "sub/d.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert input_files(str(tmp_path / "a.jpg")) == [tmp_path / "a.jpg"]
    folder = [tmp_path / n for n in ("a.jpg", "b.png", "sub/c.png", "sub/d.txt")]
    assert input_files(str(tmp_path)) == folder  # every file under it: one that is no image is listed as unreadable
    assert input_files(str(tmp_path / "**" / "*.png")) == [tmp_path / "b.png", tmp_path / "sub/c.png"]
    with pytest.raises(DataError, match=r"input=.*nothing/\*.png matches no file: give a file, a folder"):
        input_files(str(tmp_path / "nothing" / "*.png"))


def test_class_names_come_from_the_data_module(tmp_path, pets_run):
    names = {
        data: instantiate(compose_config("train", [f"data={data}"], tmp_path).data).class_names
        for data in ("digits", "mnist", "cifar10")
    }
    assert names["digits"] == names["mnist"] == [str(d) for d in range(10)]
    assert names["cifar10"][:3] == ("airplane", "automobile", "bird") and len(names["cifar10"]) == 10
    checkpoint = torch.load(pets_run, map_location="cpu", weights_only=True)
    assert checkpoint["class_names"] == ["cat", "dog"]  # the image folder's class folders, as plain str


def test_predict_names_every_readable_image_of_a_mixed_folder_and_lists_the_corrupt_one(tmp_path, pets_run, caplog):
    modes = write_mixed_folder(tmp_path / "new")
    cfg = compose_config("predict", [f"ckpt_path={pets_run}", f"input={tmp_path / 'new'}", "trainer=cpu"], tmp_path)
    with caplog.at_level(logging.INFO):
        written = predict(cfg)
    rows = read_csv(written)
    print(f"{len(rows)} predictions of {len(modes) + 1} files: " + ", ".join(r["prediction"] for r in rows))
    assert written == tmp_path / "predictions.csv" and f"Wrote 6 predictions to {written}" in caplog.text
    assert sorted(Path(r["file"]).relative_to(tmp_path / "new").as_posix() for r in rows) == sorted(modes)
    assert set(modes.values()) == {"L", "RGB", "RGBA", "P"}
    assert list(rows[0]) == ["file", "prediction", "confidence", "top1", "top1_probability", "top2", "top2_probability"]
    for row in rows:  # top_k=3 (the default) lists the run's 2 classes
        assert row["prediction"] == row["top1"] and row["prediction"] in ("cat", "dog")
        assert {row["top1"], row["top2"]} == {"cat", "dog"}
        p1, p2 = float(row["top1_probability"]), float(row["top2_probability"])
        assert float(row["confidence"]) == p1 >= p2 and p1 + p2 == pytest.approx(1, abs=1e-6)
    assert [r["file"] for r in read_csv(tmp_path / "unreadable.csv")] == [str(tmp_path / "new" / "corrupt.png")]
    assert f"{tmp_path / 'new' / 'corrupt.png'} is not a readable image" in caplog.text


def test_predictions_on_the_digits_test_images_equal_evals(tmp_path, digits_run):
    """Each test digit written as a PNG file: predict.py names the class eval.py predicted for it, image by image."""
    ckpt = digits_run
    eval_cfg = compose_config("eval", [f"ckpt_path={ckpt}", "trainer=cpu", "logger=none", "predict=true"], tmp_path)
    test_acc = evaluate(eval_cfg)["test/acc"]
    evaluated = read_csv(tmp_path / "predictions.csv")  # eval's: index, prediction, confidence, label
    datamodule = instantiate(compose_config("train", [], tmp_path).data)
    datamodule.setup("test")
    _, labels = datamodule.splits["test"]
    assert [int(r["label"]) for r in evaluated] == labels.tolist()  # eval's rows are the test split, in order
    files = write_digits(tmp_path / "digits")  # as scripts/digits_to_png.py writes them
    overrides = [f"ckpt_path={ckpt}", f"input={tmp_path / 'digits'}", "trainer=cpu", "top_k=3", "batch_size=100"]
    predicted = read_csv(predict(compose_config("predict", overrides, tmp_path / "predict")))
    assert [r["file"] for r in predicted] == [str(path) for path in files]  # 000_label6.png, ...
    pairs = list(zip(predicted, evaluated, strict=True))
    same = sum(p["prediction"] == e["prediction"] for p, e in pairs)
    gap = max(abs(float(p["confidence"]) - float(e["confidence"])) for p, e in pairs)
    accuracy = sum(p["prediction"] == str(y) for p, y in zip(predicted, labels.tolist(), strict=True)) / 360
    print(f"{same}/360 equal eval's, confidence within {gap:.1e}; accuracy {accuracy:.4f} (eval: {test_acc:.4f})")
    assert same == 360 and gap < 1e-5
    assert test_acc == pytest.approx(accuracy, abs=1e-6)  # test/acc is the share of images right, not a class mean
    assert len({r["prediction"] for r in predicted}) == 10 and accuracy > 0.8  # a model whose predictions differ
    assert list(predicted[0])[3:] == [f"top{i}{part}" for i in (1, 2, 3) for part in ("", "_probability")]


def test_a_bad_top_k_or_class_list_is_one_line(tmp_path, digits_run):
    ckpt = digits_run
    write_mixed_folder(tmp_path / "new")
    cfg = compose_config("predict", [f"ckpt_path={ckpt}", f"input={tmp_path / 'new'}", "top_k=0"], tmp_path)
    with pytest.raises(ConfigValueError, match=r"^top_k=0 is not valid: use a whole number of at least 1$"):
        predict(cfg)
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    torch.save({**checkpoint, "class_names": ["only", "two"]}, tmp_path / "tampered.ckpt")
    cfg = compose_config("predict", [f"ckpt_path={tmp_path / 'tampered.ckpt'}", f"input={tmp_path / 'new'}"], tmp_path)
    with pytest.raises(CheckpointError, match="class_names is not a list of 10"):
        predict(cfg)


@pytest.mark.slow
def test_predict_py_as_a_user_runs_it(tmp_path, digits_run):
    """`python predict.py ckpt_path=... input=<glob>` writes predictions.csv and logs its path; no match: one line."""
    ckpt = digits_run
    write_mixed_folder(tmp_path / "new")
    shutil.copy(tmp_path / "new" / "rgb64.png", tmp_path / "new" / "more" / "copy.png")
    done = run_script(
        "predict.py", f"ckpt_path={ckpt}", f"input={tmp_path}/new/**/*.png", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Wrote 5 predictions to {tmp_path / 'run' / 'predictions.csv'}" in done.stdout + done.stderr
    assert len(read_csv(tmp_path / "run" / "predictions.csv")) == 5  # PNGs only: the glob leaves out the JPEGs
    done = run_script("predict.py", f"ckpt_path={ckpt}", "input=no/such/*.png", f"hydra.run.dir={tmp_path / 'bad'}")
    assert done.returncode == 1
    assert re.fullmatch(r"Error: input=no/such/\*\.png matches no file: give .*\n", done.stderr)
