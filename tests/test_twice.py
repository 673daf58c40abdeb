"""What a user does twice works twice, or the second time is refused in one line that says how to proceed: eval.py on
one checkpoint, predict.py and eval.py into one named folder, compare_runs.py --csv into an existing file. (The GPU
check twice: test_gpu_check.py; make train twice, make test after it and an editable install: test_housekeeping.py;
a sweep again into its folder: test_launch_folders.py.)"""

import hashlib
import os
import re
import sys
from pathlib import Path

import pytest

from scripts.digits_to_png import write_digits
from src.train import train
from tests.conftest import ROOT, compose_config, run_script

TINY = ["trainer=cpu", "logger=csv", "callbacks.test_figures=null", "callbacks.energy=null", "trainer.max_epochs=1"]
TINY += ["trainer.limit_train_batches=3", "trainer.limit_val_batches=2"]
sys.path.insert(0, str(ROOT / "scripts"))
import compare_runs  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny CNN run on the digits: its folder, with checkpoints/last.ckpt."""
    folder = tmp_path_factory.mktemp("trained")
    train(compose_config("train", TINY, folder))
    return folder


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def test_eval_twice_on_one_checkpoint_gives_the_same_figures_in_two_folders(run_dir, tmp_path):
    before = digests(run_dir)
    outputs = []
    for _ in range(2):  # no hydra.run.dir: each run takes a new dated folder under outputs/eval/
        done = run_script("eval.py", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "trainer=cpu",
                          "logger=none", "predict=true", cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout + done.stderr)
    figures = [re.search(r"Test metrics of .*: (test/acc=\S+, test/loss=\S+)", out).group(1) for out in outputs]
    assert figures[0] == figures[1]
    folders = sorted((tmp_path / "outputs" / "eval").iterdir())
    assert len(folders) == 2 and all((f / "predictions.csv").is_file() for f in folders)
    assert digests(run_dir) == before  # the checkpoint's folder is read, never written


def test_predict_twice_into_one_named_folder_refuses_the_second_and_keeps_the_first(run_dir, tmp_path):
    write_digits(tmp_path / "new")  # the 360 test digits as PNGs
    out = tmp_path / "predictions"
    command = ["predict.py", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"input={tmp_path / 'new'}",
               "trainer=cpu", f"hydra.run.dir={out}"]  # fmt: skip
    first = run_script(*command)
    assert first.returncode == 0, first.stderr[-3000:]
    kept = digests(out)
    second = run_script(*command)
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"Error: {out} already holds a run's outputs (predictions.csv): name a new folder "
        "(hydra.run.dir=...), or leave hydra.run.dir out for a new dated one"
    ]
    assert digests(out) == kept  # not even Hydra's records of the first run were rewritten
    failed = run_script(*command[:2], f"input={tmp_path / 'nothing'}", f"hydra.run.dir={tmp_path / 'failed'}")
    assert failed.returncode == 1 and (tmp_path / "failed" / ".hydra").is_dir()  # a failed run: Hydra's records only
    again = run_script(*command[:-1], f"hydra.run.dir={tmp_path / 'failed'}")
    assert again.returncode == 0, again.stderr[-2000:]  # a folder of a failed run can be used again
    third = run_script(*command[:-1], f"hydra.run.dir={tmp_path / 'again'}")  # how to proceed, as the line says
    assert third.returncode == 0
    assert (tmp_path / "again" / "predictions.csv").read_bytes() == (out / "predictions.csv").read_bytes()


def test_eval_into_a_named_folder_that_holds_a_run_refuses_in_one_line(run_dir, tmp_path):
    before = digests(run_dir)
    done = run_script("eval.py", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={run_dir}")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {run_dir} already holds a run's outputs (")
    assert "name a new folder (hydra.run.dir=...)" in lines[0]
    assert digests(run_dir) == before


def test_compare_runs_csv_into_an_existing_file_replaces_it_and_never_a_runs_file(run_dir, tmp_path, capsys):
    table = tmp_path / "table.csv"
    table.write_text("an earlier table\n")
    rows = compare_runs.main([str(run_dir), "--csv", str(table)])
    written = table.read_text()
    assert written.splitlines()[0].split(",")[0] == rows[0][0] and "an earlier table" not in written
    assert compare_runs.main([str(run_dir), "--csv", str(table)]) == rows and table.read_text() == written
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left behind

    before = digests(run_dir)
    with pytest.raises(SystemExit, match=r"^Error: --csv .*metrics.csv is inside the run folder .*: write it outside"):
        compare_runs.main([str(run_dir), "--csv", str(run_dir / "csv" / "metrics.csv")])
    with pytest.raises(SystemExit, match=r"^Error: --csv .* is a folder: name a new file"):
        compare_runs.main([str(run_dir), "--csv", str(tmp_path)])
    os.mkfifo(tmp_path / "pipe.csv")  # opening it for writing would wait for a reader forever
    with pytest.raises(SystemExit, match=r"^Error: --csv .*pipe.csv is not a regular file"):
        compare_runs.main([str(run_dir), "--csv", str(tmp_path / "pipe.csv")])
    assert digests(run_dir) == before
