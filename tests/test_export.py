"""export.py: every model family exports with its preprocessing, agrees with its checkpoint on the whole test split,
and predict.py runs the ONNX file with torch, Lightning and Hydra unimportable."""

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scripts.digits_to_png import write_digits
from src.errors import CheckpointError
from src.export.formats import ExportError, export_onnx
from src.export.graph import ExportedModel, ImageInputs, PaddedRNN, SeriesInputs
from src.export.run import export
from src.machinery.checkpoints.precheck import file_digest
from src.machinery.config.schemas import ROOT
from src.models.rnn import RNNClassifier
from src.predict import predict
from src.train import train
from tests.conftest import SHARED_DATA, compose_config, run_script

TINY = ["trainer=cpu", "logger=none", "callbacks.test_figures=null", "callbacks.energy=null"]
UCR = SHARED_DATA / "ucr"
BLOCKED = ("torch", "lightning", "pytorch_lightning", "hydra", "omegaconf")
# Imported at start-up from PYTHONPATH: any import of a blocked package fails, as where it is not installed.
BLOCKER = f"""import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is blocked in this test")
        return None

sys.meta_path.insert(0, Blocked())
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def export_run(ckpt: Path, fmt: str, tmp_path: Path, *more: str) -> dict:
    overrides = [f"ckpt_path={ckpt}", f"format={fmt}", "latency_seconds=0.1", *more]
    return export(compose_config("export", overrides, tmp_path / "export"))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """A CNN trained on the bundled digits for one epoch: its last checkpoint."""
    folder = tmp_path_factory.mktemp("digits_cnn")
    train(compose_config("train", [*TINY, "trainer.max_epochs=1"], folder))
    return folder / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def digits_onnx(digits_run, tmp_path_factory) -> tuple[Path, dict]:
    report = export_run(digits_run, "onnx", tmp_path_factory.mktemp("export"))
    return Path(report["file"]), report


# predict.py's exported-file path on a .pt2, then whether it imported Lightning or Hydra
PROGRAM_PREDICT = """
import sys
from src.predict_exported import predict_exported
program, images, out = sys.argv[1:]
predict_exported([f"ckpt_path={program}", f"input={images}", f"hydra.run.dir={out}"])
print("lightning:", "lightning" in sys.modules, "hydra:", "hydra" in sys.modules)
"""


def predict_both(ckpt: Path, exported: Path, inputs: Path, tmp_path: Path, *more: str) -> tuple[Path, Path]:
    """predictions.csv folders of the checkpoint (in-process, with `more` overrides: data_dir=) and of the exported
    file (predict.py, with torch, Lightning and Hydra blocked)."""
    overrides = [f"ckpt_path={ckpt}", f"input={inputs}", "trainer=cpu", *more]
    predict(compose_config("predict", overrides, tmp_path / "ckpt"))
    result = predict_blocked(f"ckpt_path={exported}", f"input={inputs}", f"hydra.run.dir={tmp_path / 'onnx'}")
    assert result.returncode == 0, result.stderr
    return tmp_path / "ckpt", tmp_path / "onnx"


def predict_blocked(*arguments: str) -> subprocess.CompletedProcess:
    """predict.py in a process where importing torch, Lightning, Hydra or OmegaConf raises ImportError."""
    blocker = Path(os.environ.get("PYTEST_BLOCKER_DIR", "/nonexistent"))
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    return subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), *arguments], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.fixture(autouse=True, scope="module")
def blocker_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blocker")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    os.environ["PYTEST_BLOCKER_DIR"] = str(folder)
    yield folder
    os.environ.pop("PYTEST_BLOCKER_DIR", None)


def assert_same_predictions(ckpt_folder: Path, onnx_folder: Path) -> int:
    ours, theirs = read_csv(ckpt_folder / "predictions.csv"), read_csv(onnx_folder / "predictions.csv")
    assert [r["file"] for r in ours] == [r["file"] for r in theirs]
    assert [r.get("index") for r in ours] == [r.get("index") for r in theirs]
    assert [r["prediction"] for r in ours] == [r["prediction"] for r in theirs]
    confidence = [(float(a["confidence"]), float(b["confidence"])) for a, b in zip(ours, theirs, strict=True)]
    assert max(abs(a - b) for a, b in confidence) <= 1e-4
    return len(ours)


# Fast: the bundled digits, and networks built here


def test_onnx_export_agrees_with_the_checkpoint_on_the_whole_test_split(digits_run, digits_onnx):
    path, report = digits_onnx
    assert path == digits_run.with_suffix(".onnx") and path.is_file()
    assert report["test_examples"] == 360 and report["agreement"] == 1.0 and report["disagreements"] == 0
    assert report["max_probability_difference"] <= 1e-4
    assert report["size_bytes"] == path.stat().st_size
    for times in report["latency_ms"].values():
        assert times["eager_ms"] > 0 and times["exported_ms"] > 0
    saved = json.loads((path.parent / "export.json").read_text())[path.name]
    assert saved["agreement"] == 1.0 and saved["size_bytes"] == report["size_bytes"]
    meta = saved["metadata"]
    assert meta["class_names"] == [str(d) for d in range(10)]
    assert meta["source_sha256"] == file_digest(digits_run)
    assert meta["inputs"][0]["shape"] == ["batch", 1, 8, 8]
    assert meta["preprocessing"]["max_value"] == 16.0 and meta["preprocessing"]["mean"] == pytest.approx([0.3053])
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name]


def test_onnx_predictor_runs_without_torch_lightning_or_hydra_and_agrees_with_the_checkpoint(
    digits_run, digits_onnx, tmp_path
):
    check = subprocess.run(
        [sys.executable, "-c", "import torch"],
        env={**os.environ, "PYTHONPATH": os.environ["PYTEST_BLOCKER_DIR"]},
        capture_output=True,
        text=True,
    )
    assert check.returncode != 0 and "torch is blocked" in check.stderr  # the blocker works
    images = tmp_path / "images"
    write_digits(images)
    Image.fromarray(np.arange(64 * 48 * 3, dtype=np.uint8).reshape(48, 64, 3) % 251).save(images / "rgb.jpg")
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
    ckpt, onnx = predict_both(digits_run, digits_onnx[0], images, tmp_path)
    assert assert_same_predictions(ckpt, onnx) == 361  # 360 digits and the RGB photo
    assert read_csv(ckpt / "unreadable.csv") == read_csv(onnx / "unreadable.csv")
    assert [r["file"] for r in read_csv(onnx / "unreadable.csv")] == [str(images / "corrupt.png")]


def test_torch_export_program_agrees_with_the_checkpoint(digits_run, tmp_path):
    report = export_run(digits_run, "torch_export", tmp_path)
    assert Path(report["file"]) == digits_run.with_suffix(".pt2") and Path(report["file"]).is_file()
    assert report["agreement"] == 1.0 and report["max_probability_difference"] <= 1e-4
    program = torch.export.load(report["file"]).module()
    pixels = torch.rand(3, 1, 8, 8) * 255
    assert program(pixels).shape == (3, 10)  # a batch size it was not traced with
    # predict.py takes the program as it takes an ONNX file (torch needed; Lightning and Hydra not imported)
    images = tmp_path / "images"
    write_digits(images)
    predict(compose_config("predict", [f"ckpt_path={digits_run}", f"input={images}", "trainer=cpu"], tmp_path / "ckpt"))
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM_PREDICT, report["file"], str(images), str(tmp_path / "pt2")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout.split() == ["lightning:", "False", "hydra:", "False"], done.stderr
    assert assert_same_predictions(tmp_path / "ckpt", tmp_path / "pt2") == 360


def test_a_compiled_runs_checkpoint_exports(digits_run, tmp_path):
    """A run that assigned torch.compile's wrapper saved `net._orig_mod.` keys: the same weights export."""
    checkpoint = torch.load(digits_run, map_location="cpu", weights_only=True)
    checkpoint["state_dict"] = {k.replace("net.", "net._orig_mod.", 1): v for k, v in checkpoint["state_dict"].items()}
    compiled = tmp_path / "run" / "compiled.ckpt"
    compiled.parent.mkdir()
    torch.save(checkpoint, compiled)
    report = export_run(compiled, "onnx", tmp_path)
    assert report["agreement"] == 1.0 and report["max_probability_difference"] <= 1e-4


def test_bad_format_and_foreign_checkpoint_are_one_error_line(digits_run, tmp_path):
    result = run_script("export.py", f"ckpt_path={digits_run}", "format=tflite", f"hydra.run.dir={tmp_path / 'a'}")
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: format=tflite does not exist; valid formats: ['onnx', 'torch_export']"
    foreign = tmp_path / "foreign" / "weights.ckpt"
    foreign.parent.mkdir()
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="is not a Lightning checkpoint"):
        export_run(foreign, "onnx", tmp_path)
    result = run_script("export.py", f"ckpt_path={foreign}", f"hydra.run.dir={tmp_path / 'b'}")
    assert result.returncode == 1 and result.stderr.startswith("Error: checkpoint") and "Traceback" not in result.stderr
    assert sorted(p.name for p in foreign.parent.iterdir()) == ["weights.ckpt"]


class Eigen(torch.nn.Module):
    """A network using an operator that has no ONNX translation (an eigendecomposition)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)  # (B, 64)
        return self.linear(flat) + torch.linalg.eigvalsh(x[:, 0] @ x[:, 0].transpose(1, 2)).sum(1, keepdim=True)


def test_an_unexportable_network_is_named_by_its_operator_and_leaves_no_file(digits_run, tmp_path, monkeypatch):
    import src.export.run as run

    original = run.build_exported

    def with_eigen(module, datamodule, padded_rnn=True):
        model, preprocessing = original(module, datamodule, padded_rnn)
        model.net = Eigen()
        return model, preprocessing

    monkeypatch.setattr(run, "build_exported", with_eigen)
    with pytest.raises(ExportError, match=r"cannot be exported to ONNX: operator aten\.\w*eig\w*"):
        export_run(digits_run, "onnx", tmp_path, f"output={tmp_path / 'out' / 'model.onnx'}")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_file_that_fails_verification_is_not_written(digits_run, tmp_path, monkeypatch):
    import src.export.run as run

    original = run.build_exported

    def perturbed(module, datamodule, padded_rnn=True):
        model, preprocessing = original(module, datamodule, padded_rnn)
        if padded_rnn:  # the exported copy only: the checkpoint's module stays as trained
            model.net = copy.deepcopy(model.net)
            with torch.no_grad():
                model.net.classifier.bias[0] += 5.0
        return model, preprocessing

    monkeypatch.setattr(run, "build_exported", perturbed)
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    with pytest.raises(ExportError, match=r"model.onnx fails verification on the test split: \d+ of 360 predictions"):
        export_run(digits_run, "onnx", tmp_path, f"output={out}")
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize(
    "settings",
    [
        {"cell": "lstm"},
        {"cell": "gru", "pool": "mean"},
        {"cell": "lstm", "bidirectional": True, "num_layers": 2},
        {"cell": "gru", "bidirectional": True, "pool": "mean", "max_steps": 4},
        {"cell": "lstm", "max_steps": 5, "num_layers": 2},
    ],
)
def test_the_padded_rnn_computes_what_the_packed_one_does(settings):
    torch.manual_seed(0)
    net = RNNClassifier([19, 3], 4, hidden_size=8, **settings).eval()
    lengths = torch.tensor([19, 7, 1, 12, 19])
    x = torch.randn(5, 19, 3) * (torch.arange(19)[None, :, None] < lengths[:, None, None])  # zero-padded
    with torch.no_grad():
        assert torch.allclose(PaddedRNN(net)(x, lengths), net(x, lengths), atol=1e-6)


@pytest.mark.parametrize("normalise", ["series", "dataset", "none"])
def test_series_normalisation_in_the_graph_is_the_data_modules(normalise, tmp_path):
    ucr = pytest.importorskip("src.data.ucr", reason="a project started without the time-series examples")
    data = ucr.UCRDataModule(str(tmp_path), "Made", num_classes=2, input_shape=[None, 2], normalise=normalise)
    rng = np.random.default_rng(0)
    series = [rng.normal(3, 2, (n, 2)).astype(np.float32) for n in (9, 4, 9)]
    series[1][:, 1] = 7.0  # a constant dimension: centred, not divided by 0
    data.mean, data.std = np.array([1.0, -2.0], np.float32), np.array([2.0, 0.5], np.float32)
    expected = torch.nn.utils.rnn.pad_sequence([data._normalised(s) for s in series], batch_first=True)
    x = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s) for s in series], batch_first=True)
    got = SeriesInputs(normalise, data.mean, data.std)(x, torch.tensor([9, 4, 9]))
    assert torch.allclose(got, expected, atol=1e-5)


def test_exporter_errors_name_the_operator_for_a_plain_network(tmp_path):
    model = ExportedModel(ImageInputs(1.0, torch.zeros(1), torch.ones(1)), Eigen(), False).eval()
    with pytest.raises(ExportError, match=r"operator aten\.\w*eig"):
        export_onnx(model, (torch.rand(2, 1, 8, 8),), tmp_path / "m.onnx", {})


def test_predict_with_an_onnx_file_reports_bad_input_in_one_line(digits_onnx, tmp_path):
    result = predict_blocked(f"ckpt_path={digits_onnx[0]}", f"input={tmp_path / 'none' / '*.png'}", "top_k=0")
    assert (
        result.returncode == 1
        and result.stderr.strip() == "Error: top_k=0 is not valid: use a whole number of at least 1"
    )
    result = predict_blocked(f"ckpt_path={tmp_path / 'missing.onnx'}", f"input={tmp_path}")
    assert result.returncode == 1 and "Error: exported file" in result.stderr and "does not exist" in result.stderr
    damaged = tmp_path / "damaged.pt2"
    damaged.write_bytes(b"PK\x03\x04 not a torch.export archive")
    result = subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), f"ckpt_path={damaged}", f"input={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: exported file {damaged} is not a readable torch.export program")


# Slow: every family on real data (../shared/data), a few epochs

FAMILIES = {
    "resnet_channels_last": ["model=resnet", "model.net.depth=18", "model.net.width=8", "model.channels_last=true"],
    "rnn_rows": ["model=rnn", "model.net.hidden_size=32"],
    "gru_chunks_gunpoint": [
        "data=gunpoint",
        "model=rnn",
        "model.net.cell=gru",
        "model.net.hidden_size=32",
        "model.net.max_steps=30",
    ],
    "bilstm_vowels": [
        "data=japanesevowels",
        "model=rnn",
        "model.net.bidirectional=true",
        "model.net.num_layers=2",
        "model.net.pool=mean",
        "model.net.hidden_size=16",
    ],
    "fcn_gunpoint": ["data=gunpoint", "model=fcn", "model.net.channels=[16,32,16]"],
    "resnet1d_vowels": ["data=japanesevowels", "model=resnet1d", "model.net.channels=[8,16,16]"],
}


@pytest.mark.slow
@pytest.mark.skipif(not UCR.is_dir(), reason="../shared/data/ucr is absent")
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_exports_agrees_on_the_test_split_and_predicts_alike(family, tmp_path):
    overrides = [*TINY, *FAMILIES[family], "trainer.max_epochs=2"]
    here = []  # where this machine keeps the run's data: eval, export and predict never take it from the checkpoint
    if "data=" in " ".join(overrides):
        overrides.append(f"data.data_dir={UCR}")
        here.append(f"data_dir={UCR}")
    train(compose_config("train", overrides, tmp_path / "run"))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    for fmt in ("onnx", "torch_export"):
        report = export_run(ckpt, fmt, tmp_path, *here)
        assert report["agreement"] == 1.0 and report["max_probability_difference"] <= 1e-4, report
    if "data=" in " ".join(overrides):
        name = "GunPoint" if "gunpoint" in family else "JapaneseVowels"
        inputs = tmp_path / "series"
        inputs.mkdir()
        (inputs / "test.ts").write_bytes((UCR / name / f"{name}_TEST.ts").read_bytes())
        (inputs / "broken.ts").write_text("@problemName x\n@data\n1,2,:what\n")
    else:
        inputs = tmp_path / "images"
        write_digits(inputs)
        (inputs / "corrupt.png").write_bytes(b"not an image")
    ckpt_out, onnx_out = predict_both(ckpt, ckpt.with_suffix(".onnx"), inputs, tmp_path, *here)
    assert assert_same_predictions(ckpt_out, onnx_out) > 0
    assert read_csv(ckpt_out / "unreadable.csv") == read_csv(onnx_out / "unreadable.csv")
