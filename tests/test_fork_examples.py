"""Forks for tasks that are not images, followed as docs/extending.md writes them (a table: scikit-learn's wine and an
MLP; sequences of different lengths: the UCR/UEA archive's Japanese vowels and the bundled RNN), in a copy of the
repository: training, eval.py reproducing test/acc, predict.py on new inputs of that kind, kill and resume to the same
weights, a seed sweep compared with compare_runs.py --group-by, DDP on two CPU processes, the test pictures (or their
one-line skip), and `make test` passing with the examples added. The files and lines each took are printed."""

import csv
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, copy_repository, run_script
from tests.test_housekeeping import environment_for_make
from tests.test_readme import doc_steps

pytestmark = pytest.mark.slow  # end-to-end runs in a copy: `make test-all` (CI)

VOWELS = (ROOT.parent / "shared" / "data" / "ucr" / "JapaneseVowels").resolve()
TRAIN = ["trainer=cpu", "logger=csv", "trainer.max_epochs=30"]
# deterministic, dropout on, last.ckpt every 3 steps (wine: 4 steps an epoch; vowels: 7)
EXACT = ["trainer=cpu", "logger=none", "trainer.deterministic=true", "trainer.max_epochs=6"]
EXACT += ["callbacks.model_summary=null", "callbacks.last_checkpoint.every_n_train_steps=3"]
KILL = "+callbacks.kill._target_=tests.probes.KillAt"


@dataclass
class Example:
    sections: list[str]  # of docs/extending.md
    files: list[str]  # what the recipe adds
    overrides: list[str]  # train.py's
    test_size: int
    class_names: set[str]
    needs: Path | None = None  # data that must be at hand
    pictures: list[str] = field(default_factory=list)  # test pictures drawn besides the confusion matrix


EXAMPLES = {
    "table": Example(
        ["Add a model", "A task that is not images: a table"],
        ["conf/data/wine.yaml", "conf/model/mlp.yaml", "src/data/wine.py", "src/models/mlp.py"],
        ["data=wine", "model=mlp"], 36, {"class_0", "class_1", "class_2"},
    ),
    "sequence": Example(
        ["A sequence data set with lengths"], ["conf/data/vowels.yaml", "src/data/vowels.py"],
        ["data=vowels", "model=rnn", f"data.data_dir={VOWELS}"], 370, {str(i) for i in range(1, 10)}, VOWELS,
        ["misclassified.png"],
    ),
}  # fmt: skip


@pytest.fixture(params=list(EXAMPLES))
def example(request) -> Example:
    found = EXAMPLES[request.param]
    if found.needs is not None and not found.needs.is_dir():
        pytest.skip(f"{found.needs} is not here (../shared/data)")
    return found


def write_recipes(copy: Path, sections: list[str]) -> dict[str, int]:
    """Write the files of these sections of docs/extending.md into `copy`, as shown; the lines of each."""
    lines = {}
    for step in doc_steps((ROOT / "docs" / "extending.md").read_text()):
        if step.path and step.section in sections:
            (copy / step.path).parent.mkdir(parents=True, exist_ok=True)
            (copy / step.path).write_text(step.text)
            lines[step.path] = len(step.text.splitlines())
    return lines


@pytest.fixture(scope="module")
def fork(tmp_path_factory) -> Path:
    """A copy of the repository with the recipes' files written into it, as a fork adds them."""
    copy = tmp_path_factory.mktemp("fork") / "repo"
    copy_repository(copy)
    for name, example in EXAMPLES.items():
        lines = write_recipes(copy, example.sections)
        assert sorted(lines) == example.files
        print(f"the {name} example: {len(lines)} new files, {sum(lines.values())} lines ({lines}); no file edited")
    # a fork is a git repository that commits its new files (the run record and make test read git)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the examples added"]):
        subprocess.run([*git, *command], cwd=copy, check=True, capture_output=True)
    return copy


def run(fork: Path, script: str, *overrides: str, **kwargs) -> subprocess.CompletedProcess:
    done = run_script(script, *overrides, cwd=fork, repo=fork, **kwargs)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def final(output: str, metric: str) -> float:
    return float(re.search(rf"Final metrics: .*{metric}=([0-9.]+)", output).group(1))


def new_inputs(example: Example, folder: Path) -> dict[str, str]:
    """Files of new inputs of the example's kind, with their true class, and one file that is not one."""
    folder.mkdir()
    if example is EXAMPLES["table"]:
        from sklearn.datasets import load_wine

        wine = load_wine()
        for i in (0, 70, 150):  # one wine of each cultivar, as CSV rows
            (folder / f"wine_{i}.csv").write_text(",".join(map(str, wine.data[i])) + "\n")
        (folder / "short.csv").write_text("1,2,3\n")
        return {"wine_0.csv": "class_0", "wine_70.csv": "class_1", "wine_150.csv": "class_2"}
    lines = (VOWELS / "JapaneseVowels_TEST.ts").read_text().splitlines()
    header = [line for line in lines if line.startswith("@")]
    series = [line for line in lines if line and not line.startswith(("#", "@"))]
    truth = {}
    for i in (0, 150, 300):  # an utterance of three speakers, a .ts file each
        (folder / f"utterance_{i}.ts").write_text("\n".join([*header, series[i]]) + "\n")
        truth[f"utterance_{i}.ts"] = series[i].rsplit(":", 1)[1]
    (folder / "short.ts").write_text("\n".join([*header, "1,2:3,4:5"]) + "\n")  # 2 dimensions, not 12
    return truth


def test_train_eval_and_predict(fork, tmp_path, example):
    trained = run(fork, "train.py", *example.overrides, *TRAIN, f"hydra.run.dir={tmp_path / 'run'}")
    out = trained.stdout + trained.stderr
    test_acc = final(out, "test/acc")
    assert test_acc > 0.9  # wine: 36 test rows; vowels: 370 test utterances, where 1-NN reaches 0.9595
    assert (tmp_path / "run" / "confusion_matrix.png").is_file()
    if example.pictures:
        assert all((tmp_path / "run" / name).is_file() for name in example.pictures)
    else:
        assert "has no draw_input(ax, x), so misclassified examples are not drawn" in out
        assert not (tmp_path / "run" / "misclassified.png").exists()

    best = next((tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt"))
    evaluate = ["eval.py", f"ckpt_path={best}", "trainer=cpu", "predict=true", f"hydra.run.dir={tmp_path / 'e'}"]
    here = [f"data_dir={example.needs}"] if example.needs else []  # the data's folder here, never the checkpoint's
    evaluate += here
    evaluated = run(fork, *evaluate)
    eval_acc = float(re.search(r"test/acc=([0-9.]+)", evaluated.stdout + evaluated.stderr).group(1))
    assert eval_acc == pytest.approx(test_acc, abs=1e-4)
    with open(tmp_path / "e" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == example.test_size and {r["label"] for r in rows} == example.class_names  # names
    assert sum(r["prediction"] == r["label"] for r in rows) / len(rows) == pytest.approx(eval_acc, abs=1e-4)

    truth = new_inputs(example, tmp_path / "new")
    predict = ["predict.py", f"ckpt_path={best}", f"input={tmp_path / 'new'}", "trainer=cpu", *here]
    run(fork, *predict, f"hydra.run.dir={tmp_path / 'p'}")
    with open(tmp_path / "p" / "predictions.csv") as f:
        predicted = {Path(r["file"]).name: r["prediction"] for r in csv.DictReader(f)}
    right = sum(predicted[name] == label for name, label in truth.items())
    assert predicted.keys() == truth.keys() and right >= 2
    assert "short" in (tmp_path / "p" / "unreadable.csv").read_text()  # named, skipped; the others predicted
    print(f"{' '.join(example.overrides[:2])}: test/acc {test_acc:.4f}, eval.py {eval_acc:.4f}; predict.py named "
          f"{right} of {len(truth)} new inputs right")  # fmt: skip


def last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize("kill", [["+callbacks.kill.epoch_start=4"], ["+callbacks.kill.step=17"]],
                         ids=["epoch_boundary", "mid_epoch"])  # fmt: skip
def test_killed_and_resumed_ends_with_the_same_weights(fork, tmp_path, example, kill):
    exact = [*example.overrides, *EXACT]
    run(fork, "train.py", *exact, f"hydra.run.dir={tmp_path / 'reference'}")
    killed = run_script("train.py", *exact, KILL, *kill, f"hydra.run.dir={tmp_path / 'run'}", cwd=fork, repo=fork)
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL: no clean-up ran
    run(fork, "train.py", *exact, "resume=true", f"hydra.run.dir={tmp_path / 'run'}")
    reference, resumed = last_weights(tmp_path / "reference"), last_weights(tmp_path / "run")
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_a_seed_sweep_compares_as_mean_and_spread(fork, tmp_path, example):
    run(fork, "train.py", "-m", *example.overrides, *TRAIN, "seed=0,1,2", f"hydra.sweep.dir={tmp_path}", timeout=900)
    done = run(fork, "scripts/compare_runs.py", str(tmp_path), "--group-by", "choices.model", timeout=120)
    print(done.stdout)
    model = example.overrides[1].split("=")[1]
    assert "3 runs in 1 groups" in done.stdout and re.search(rf"{model} .*0\.\d+ ± 0\.\d+", done.stdout)


def test_ddp_on_two_cpu_processes(fork, tmp_path, example):
    ddp = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_epochs=10"]
    done = run(fork, "train.py", *example.overrides, *TRAIN[:2], *ddp, f"hydra.run.dir={tmp_path}", timeout=600)
    assert final(done.stdout + done.stderr, "test/acc") > 0.8
    assert len(list(tmp_path.glob("checkpoints/epoch_*.ckpt"))) == 1  # one run folder, one best checkpoint


def test_make_test_passes_with_the_examples_added(fork, tmp_path):
    env = environment_for_make(tmp_path / "venv")
    # the examples are in what make test runs: the MLP on every data set whose inputs it takes, and the wine table
    # with every network that reads what it gives (the image networks skip, naming data.in_channels)
    chosen = ["tests/test_models.py", "tests/test_configs.py", "-rA", "-k", "mlp or wine or vowels"]
    picked = subprocess.run(
        [sys.executable, "-m", "pytest", *chosen], cwd=fork, env=env, capture_output=True, text=True, timeout=600
    )
    assert picked.returncode == 0, picked.stdout[-4000:]
    assert re.search(r"PASSED tests/test_models.py::test_forward_backward\[mlp-digits", picked.stdout)
    assert re.search(
        r"PASSED tests/test_configs.py::test_model_and_data_compose_and_instantiate\[wine-mlp\]", picked.stdout
    )
    assert re.search(r"SKIPPED .*model=cnn takes inputs data=wine does not give .*in_channels", picked.stdout)
    assert re.search(
        r"PASSED tests/test_configs.py::test_model_and_data_compose_and_instantiate\[vowels-rnn\]", picked.stdout
    )
    done = subprocess.run(["make", "test"], cwd=fork, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:]
    summary = done.stdout.strip().splitlines()[-1]
    print(f"make test in the fork: {summary}")
    assert "passed" in summary and "failed" not in summary
