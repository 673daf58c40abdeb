"""Real time series end to end (the UCR/UEA data sets in ../shared/data/ucr): each sequence recipe learns one, and on
series of different lengths (JapaneseVowels) eval.py reproduces test/acc, predict.py names every series of a .ts file
(with the normalisation its checkpoint stored, the training files gone), the test pictures draw series, a killed run
resumes to the same weights, DDP runs on two CPU processes, and a seed sweep compares as mean ± std."""

import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, run_script

UCR = (ROOT.parent / "shared" / "data" / "ucr").resolve()
pytestmark = [
    pytest.mark.slow,  # training runs: `make test-all` (CI)
    pytest.mark.skipif(not UCR.is_dir(), reason=f"{UCR} is not here (../shared/data)"),
]
CPU = ["trainer=cpu", "logger=csv"]
# the vowels: 270 training utterances of 7 to 29 steps, 12 coefficients, 9 speakers; the FCN with masked pooling
VOWELS = ["data=japanesevowels", "model=fcn", "model.net.channels=[32,64,32]", f"data.data_dir={UCR}"]
KILL = "+callbacks.kill._target_=tests.probes.KillAt"


def run(script: str, *overrides: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = run_script(script, *overrides, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def final(done: subprocess.CompletedProcess, metric: str = "test/acc") -> float:
    return float(re.search(rf"Final metrics: .*{metric}=([0-9.]+)", done.stdout + done.stderr).group(1))


@pytest.mark.parametrize("experiment", ["ucr_fcn", "ucr_resnet", "ucr_lstm"])
def test_each_sequence_recipe_learns_a_real_data_set(tmp_path, experiment):
    """ItalyPowerDemand (67 training days of 24 hourly values, 1,029 test days; chance 0.5, 1-NN 0.955), 40 epochs."""
    done = run("train.py", f"experiment={experiment}", "data=italypower", f"data.data_dir={UCR}", *CPU,
               "trainer.max_epochs=40", f"hydra.run.dir={tmp_path}")  # fmt: skip
    print(f"{experiment} on ItalyPowerDemand, 40 epochs: test/acc {final(done):.4f}")
    assert final(done) > 0.85
    assert (tmp_path / "misclassified.png").is_file() and (tmp_path / "confusion_matrix.png").is_file()


def ts_file(path: Path, rows: list[str], labelled: bool = True) -> None:
    """A .ts file of some of JapaneseVowels' test series (labelled as in the archive, or with the labels cut)."""
    lines = (UCR / "JapaneseVowels" / "JapaneseVowels_TEST.ts").read_text().splitlines()
    header = [line for line in lines if line.startswith("@")]
    if not labelled:
        header = ["@classLabel false" if h.lower().startswith("@classlabel") else h for h in header]
        rows = [row.rsplit(":", 1)[0] for row in rows]
    path.write_text("\n".join([*header, *rows]) + "\n")


def test_variable_length_series_train_eval_predict_and_draw(tmp_path):
    data = tmp_path / "ucr"  # a copy of the training files, deleted before predict.py runs
    shutil.copytree(UCR / "JapaneseVowels", data / "JapaneseVowels")
    overrides = [*VOWELS[:-1], f"data.data_dir={data}", *CPU, "trainer.max_epochs=40", "data.normalise=dataset"]
    trained = run("train.py", *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    test_acc = final(trained)
    assert test_acc > 0.9  # 1-NN: 0.9595
    assert (tmp_path / "run" / "misclassified.png").is_file()  # drawn as lines by the data module

    best = next((tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt"))
    evaluate = ["eval.py", f"ckpt_path={best}", "trainer=cpu", "predict=true", f"data_dir={data}"]  # where it is here
    evaluated = run(*evaluate, f"hydra.run.dir={tmp_path / 'e'}")
    eval_acc = float(re.search(r"test/acc=([0-9.]+)", evaluated.stdout + evaluated.stderr).group(1))
    assert eval_acc == pytest.approx(test_acc, abs=1e-4)
    with open(tmp_path / "e" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 370 and {r["label"] for r in rows} == {str(i) for i in range(1, 10)}  # the class names
    assert sum(r["prediction"] == r["label"] for r in rows) / len(rows) == pytest.approx(eval_acc, abs=1e-4)

    # new series: one .ts file of three, one with its labels cut, one that is not a .ts file; no training files
    series = [line for line in (data / "JapaneseVowels" / "JapaneseVowels_TEST.ts").read_text().splitlines()
              if line and not line.startswith(("#", "@"))]  # fmt: skip
    picked = [series[i] for i in (0, 150, 300)]
    (new := tmp_path / "new").mkdir()
    ts_file(new / "three.ts", picked)
    ts_file(new / "unlabelled.ts", picked[:2], labelled=False)
    (new / "notes.ts").write_text("@problemName x\n@data\n1,2:oops\n")
    shutil.rmtree(data)
    run("predict.py", f"ckpt_path={best}", f"input={new}", "trainer=cpu", f"hydra.run.dir={tmp_path / 'p'}")
    with open(tmp_path / "p" / "predictions.csv") as f:
        predicted = [(Path(r["file"]).name, int(r["index"]), r["prediction"]) for r in csv.DictReader(f)]
    assert [(name, index) for name, index, _ in predicted] == [("three.ts", 0), ("three.ts", 1), ("three.ts", 2),
                                                               ("unlabelled.ts", 0), ("unlabelled.ts", 1)]  # fmt: skip
    truth = [row.rsplit(":", 1)[1] for row in picked]
    assert sum(p == t for (_, _, p), t in zip(predicted[:3], truth, strict=True)) >= 2
    assert [p for _, _, p in predicted[3:]] == [p for _, _, p in predicted[:2]]  # the same series, labels or not
    assert "notes.ts" in (tmp_path / "p" / "unreadable.csv").read_text()
    print(f"JapaneseVowels, FCN: test/acc {test_acc:.4f}, eval.py {eval_acc:.4f}; predict.py: {predicted}")


def last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize("kill", [["+callbacks.kill.epoch_start=3"], ["+callbacks.kill.step=40"]],
                         ids=["epoch_boundary", "mid_epoch"])  # fmt: skip
def test_a_killed_sequence_run_resumes_to_the_same_weights(tmp_path, kill):
    # 14 steps an epoch (216 series, batches of 16); dropout on; last.ckpt every 5 steps
    exact = [*VOWELS, "logger=none", "trainer=cpu", "trainer.deterministic=true", "trainer.max_epochs=5"]
    exact += ["model.net.dropout=0.2", "callbacks.model_summary=null"]
    exact += ["callbacks.last_checkpoint.every_n_train_steps=5"]
    run("train.py", *exact, f"hydra.run.dir={tmp_path / 'reference'}")
    killed = run_script("train.py", *exact, KILL, *kill, f"hydra.run.dir={tmp_path / 'run'}")
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL: no clean-up ran
    run("train.py", *exact, "resume=true", f"hydra.run.dir={tmp_path / 'run'}")
    reference, resumed = last_weights(tmp_path / "reference"), last_weights(tmp_path / "run")
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_sequences_train_with_ddp_on_two_cpu_processes(tmp_path):
    ddp = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_epochs=20"]
    done = run("train.py", *VOWELS, "logger=csv", *ddp, f"hydra.run.dir={tmp_path}")
    assert final(done) > 0.8
    assert len(list(tmp_path.glob("checkpoints/epoch_*.ckpt"))) == 1  # one run folder, one best checkpoint


def test_a_sequence_seed_sweep_compares_as_mean_and_spread(tmp_path):
    run("train.py", "-m", *VOWELS, *CPU, "trainer.max_epochs=20", "seed=0,1,2", f"hydra.sweep.dir={tmp_path}",
        timeout=900)  # fmt: skip
    done = run("scripts/compare_runs.py", str(tmp_path), "--group-by", "choices.model", timeout=120)
    print(done.stdout)
    assert "3 runs in 1 groups" in done.stdout and re.search(r"fcn .*0\.\d+ ± 0\.\d+", done.stdout)
