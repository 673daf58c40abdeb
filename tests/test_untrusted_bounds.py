"""A small checkpoint never causes unbounded work: crafted files (memo-shared and self-referencing structures, deep
nesting, a zip bomb, stored sizes, a stored data_dir, wrong types) are refused in one line, in bounded time and
memory, before anything is built or written; legitimate checkpoints of every model family still evaluate."""

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.errors import CheckpointError, DataError
from src.eval import evaluate
from src.machinery.checkpoints import bounds
from src.machinery.checkpoints.files import read_checkpoint
from src.machinery.resume.stored_config import rebuild_run_config
from src.train import train
from tests.conftest import FAST, ROOT, SHARED_DATA, compose_config

TINY = [*FAST, "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1"]
# Wall time over what the scripts' start-up alone takes here (importing torch and Lightning took 4 to 14 s on this
# kind of machine, by the day, and 8 to 12 s with CI beside it): issue 24's 30 s is for the work, not the imports
MAX_SECONDS_OVER_IMPORTS = 30
# Peak memory over what the scripts' imports alone take here (a CUDA build of torch and Lightning: about 930 MB on this
# machine, so issue 24's "under 1 GB" would measure the imports); the crafted files took 2.3 to 5 GB before their bounds
MAX_MB_OVER_IMPORTS = 512


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A CNN's run folder after one short epoch on the digits (its checkpoints/last.ckpt)."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    train(compose_config("train", TINY, run_dir))
    return run_dir


def edited(good: Path, path: Path, change) -> Path:
    """A copy of checkpoint `good` that `change` edited in place (no checksum file: it passes every load check)."""
    checkpoint = torch.load(good, map_location="cpu", weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, path)
    return path


def rezipped(path: Path, entries: dict[str, bytes], deflated: str | None = None, inflated_size: int = 0) -> Path:
    """`path`'s zip entries with `entries` replaced; `deflated`: an entry replaced by `inflated_size` zero bytes,
    stored deflate-compressed (a zip bomb: about 1000 bytes inflate per byte of the file)."""
    with zipfile.ZipFile(path) as source:
        originals = {info.filename: source.read(info) for info in source.infolist()}
    path.unlink()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for name, data in originals.items():
            if name != deflated:
                target.writestr(name, entries.get(name, data))
                continue
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with target.open(info, "w", force_zip64=True) as out:
                zeros = bytes(1 << 24)
                for _ in range(inflated_size >> 24):
                    out.write(zeros)
    return path


def bomb(good: Path, path: Path, inflated_size: int) -> Path:
    """A copy of checkpoint `good` whose largest storage entry is `inflated_size` zero bytes, deflate-compressed."""
    shutil.copy(good, path)
    with zipfile.ZipFile(path) as source:
        largest = max((i for i in source.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    return rezipped(path, {}, deflated=largest.filename, inflated_size=inflated_size)


def nested_pickle(good: Path, path: Path, depth: int) -> Path:
    """A copy of `good` whose stored config holds lists nested `depth` deep, written as pickle opcodes (the pickler
    itself stops at about 1000 levels; the unpickler has no such limit)."""
    marker = "NESTED_MARKER_" + "x" * 20
    edited(good, path, lambda c: c["run_config"]["model"]["net"].update(extra=marker))
    name = next(n for n in zipfile.ZipFile(path).namelist() if n.endswith("/data.pkl"))
    pickled = zipfile.ZipFile(path).read(name)
    text = marker.encode()
    string_op = b"X" + len(text).to_bytes(4, "little") + text  # BINUNICODE (protocol 2, torch.save's)
    assert string_op in pickled
    lists = b"]" * depth + b"a" * (depth - 1)  # EMPTY_LIST x depth, then APPEND each into the one below it
    return rezipped(path, {name: pickled.replace(string_op, lists)})


def run_bounded(script: str, *overrides: str, env: dict[str, str] | None = None) -> tuple[int, str, str, float, float]:
    """`python <script> <overrides>` as a user would run it: exit code, stdout, stderr, seconds and its peak resident
    memory in MB (os.wait4's, of that process alone); killed after 120 s."""
    return run_measured([str(ROOT / script), *overrides], env)


@functools.cache
def imports_cost() -> tuple[float, float]:
    """The scripts' imports' own wall time (s) and peak memory (MB) on this machine, what every run pays first."""
    code, _, stderr, seconds, imports_mb = run_measured(["-c", "import src.train, src.eval, src.predict"])
    assert code == 0, stderr[-3000:]
    return seconds, imports_mb


def max_seconds() -> float:
    """The time bound of a refusal: the imports' own time on this machine, plus MAX_SECONDS_OVER_IMPORTS."""
    return imports_cost()[0] + MAX_SECONDS_OVER_IMPORTS


def max_mb() -> float:
    """The peak-memory bound of a refusal: the imports' own peak on this machine, plus MAX_MB_OVER_IMPORTS."""
    return imports_cost()[1] + MAX_MB_OVER_IMPORTS


def run_measured(arguments: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str, float, float]:
    """`python <arguments>`: exit code, stdout, stderr, seconds and peak resident memory in MB (see run_bounded)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", **(env or {})}
    env.pop("WANDB_SERVICE", None)
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        command = [sys.executable, *arguments]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timer = threading.Timer(120, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)  # the usage of this process (and what it waited for) alone
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return process.returncode, stdout, stderr, time.monotonic() - start, usage.ru_maxrss / 1024


def assert_refused_in_one_line(done: tuple, pattern: str) -> str:
    """Exit 1, one `Error:` line matching `pattern`, the last on stderr, no traceback, within max_seconds() and
    max_mb() (before it, stderr holds at most Lightning's own warning on resuming into a folder with checkpoints)."""
    code, stdout, stderr, seconds, peak_mb = done
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1, stderr[-3000:]
    assert lines and lines[-1].startswith("Error: ") and re.search(pattern, lines[-1]), stderr[-3000:]
    assert all("Checkpoint directory" in line and "exists and is not empty" in line for line in lines[:-1]), stderr
    assert "Traceback" not in stdout + stderr and "Error" not in stdout
    lines = lines[-1:]
    assert seconds < max_seconds() and peak_mb < max_mb(), (seconds, peak_mb, max_seconds(), max_mb())
    bounds = f"bounds {max_seconds():.1f} s, {max_mb():.0f} MB"
    print(f"{lines[0][:160]}... | {seconds:.1f} s, peak {peak_mb:.0f} MB ({bounds})")
    return lines[0]


@pytest.fixture
def lifted():
    """trust_checkpoint=true for one test."""
    bounds.lift_bounds(True)
    yield
    bounds.lift_bounds(False)


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def self_loop() -> list:
    loop: list = []
    loop.append(loop)
    return loop


row = list(range(1000))
STRUCTURES = {  # what a small pickle can hold, and the bound it meets
    "memo_shared": ([[row] * 1000] * 1000, r"reach over 2000000 values \(a shared one counted each time\)"),
    "self_reference": (self_loop(), r"nest over 100 levels deep"),  # a loop is infinitely deep
    "deep": (nested(500), r"nest over 100 levels deep"),
    "shared_text": (["x" * (1 << 20)] * 100, r"reach over 16777216 characters of text"),
    "expanded_tensor": (torch.zeros(1).expand(1 << 40), r"tensors reach over \d+ elements"),
}


@pytest.mark.parametrize("kind", STRUCTURES)
def test_a_structure_over_a_bound_is_refused_in_bounded_time(kind):
    value, message = STRUCTURES[kind]
    start = time.monotonic()
    with pytest.raises(CheckpointError) as error:
        bounds.check_structure({"state_dict": {}, "run_config": {"model": value}}, "crafted.ckpt", file_size=10_000)
    assert time.monotonic() - start < 5
    assert re.search(message, str(error.value)) and "crafted.ckpt" in str(error.value)
    assert "trust_checkpoint=true" in str(error.value) and "\n" not in str(error.value)


def test_trust_checkpoint_lifts_the_bounds(trained, tmp_path, lifted):
    bounds.check_structure(STRUCTURES["deep"][0], "crafted.ckpt", file_size=10)  # no error
    path = edited(trained / "checkpoints" / "last.ckpt", tmp_path / "c.ckpt", lambda c: c.update(big=nested(300)))
    assert read_checkpoint(path)["big"] == nested(300)


def test_a_legitimate_checkpoint_is_far_inside_the_bounds(trained):
    """A run's checkpoint, walked: its counts are a small share of each bound (the bounds cost no real file)."""
    path = trained / "checkpoints" / "last.ckpt"
    checkpoint = read_checkpoint(path)  # passes every check
    assert set(checkpoint) >= {"state_dict", "run_config", "callbacks", "optimizer_states"}
    with zipfile.ZipFile(path) as archive:
        assert sum(i.file_size for i in archive.infolist()) <= path.stat().st_size  # stored, not compressed


def test_a_zip_bomb_is_refused_before_torch_inflates_it(trained, tmp_path):
    good = trained / "checkpoints" / "last.ckpt"
    path = bomb(good, tmp_path / "bomb.ckpt", 256 << 20)
    assert path.stat().st_size < good.stat().st_size + (1 << 20)  # 256 MB more in under 1 MB more
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"would inflate to 2684\d+ bytes, over the bound of \d+ bytes"):
        read_checkpoint(path)
    assert time.monotonic() - start < 2


def stored_config(trained: Path) -> dict:
    return torch.load(trained / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["run_config"]


@pytest.mark.parametrize(
    "key, value",
    [("image_size", 100_000), ("input_shape", [1, 8, 1 << 21]), ("batch_size", 10**9), ("num_classes", 10**7),
     ("crop_padding", 50_000), ("input_shape", [4096, 4096, 4096])],
)  # fmt: skip
def test_a_stored_size_out_of_range_is_refused_before_anything_is_built(trained, tmp_path, key, value):
    compose_config("eval", ["ckpt_path=x"], tmp_path)  # a Hydra app's state, as eval.py has
    stored = stored_config(trained)
    stored["data"][key] = value
    with pytest.raises(CheckpointError) as error:
        rebuild_run_config(stored, "crafted.ckpt")
    message = str(error.value)
    assert f"data.{key}=" in message and ("out of range: it must be" in message or "elements" in message)
    assert "trust_checkpoint=true" in message


def test_data_locations_and_workers_are_this_machines(trained, tmp_path, monkeypatch):
    """A stored data_dir (where eval.py would create folders and download), a stored path and worker count are
    replaced by this machine's: conf/'s (DATA_DIR in .env) or eval.py's data_dir=."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "mine"))
    compose_config("eval", ["ckpt_path=x"], tmp_path)
    stored = stored_config(trained)
    stored["choices"]["data"] = "mnist"  # a data set that downloads into data_dir
    del stored["data"]["_target_"]
    victim = tmp_path / "victim" / "new"
    stored["data"].update(data_dir=str(victim), num_workers=24, pin_memory=True, path=str(victim / "x.npz"))
    cfg = rebuild_run_config(stored, "crafted.ckpt")
    assert cfg.data.data_dir == str(tmp_path / "mine") and cfg.data.num_workers == 0 and cfg.data.pin_memory is False
    assert "path" not in cfg.data
    assert rebuild_run_config(stored, "crafted.ckpt", data_dir="/here").data.data_dir == "/here"
    assert not victim.parent.exists()


def test_a_network_larger_than_its_weights_is_refused_before_it_is_allocated(trained, tmp_path):
    """A stored width of 100,000 (a 360 GB network) is built on the meta device and refused against the weights."""
    path = edited(
        trained / "checkpoints" / "last.ckpt",
        tmp_path / "wide.ckpt",
        lambda c: c["run_config"]["model"]["net"].update(widths=[32, 100_000, 128]),
    )
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"is for a different model: net\.\S+ has shape"):
        evaluate(compose_config("eval", [f"ckpt_path={path}", "trainer=cpu", "logger=none"], tmp_path / "e"))
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("state", [["not", "a", "mapping"], {"net.classifier.weight": "text"}, {1: torch.zeros(1)}])
def test_an_init_from_that_is_not_names_to_tensors_is_one_line(tmp_path, state):
    torch.save(state, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match=r"weights\.pt(: its state dict maps| holds a list, not a state dict)"):
        train(compose_config("train", [*TINY, f"init_from={tmp_path / 'weights.pt'}"], tmp_path / "run"))


def test_wrong_random_states_and_data_positions_are_one_line():
    from src.machinery.resume.random_state import check_rng_states, rng_states
    from src.machinery.serving.resumable import checked_position

    check_rng_states(rng_states())  # what a run saves passes
    for change in ({"numpy": "abc"}, {"torch": [1, 2]}, {"python": (3, "x" * 700, None)}, {"cuda": "x"}):
        with pytest.raises(CheckpointError, match=r"its random-generator state is not what this template saves"):
            check_rng_states({**rng_states(), **change})
    assert checked_position({"seed": 1, "epoch": 2, "batches_served": 3}) == {
        "seed": 1,
        "epoch": 2,
        "batches_served": 3,
    }
    for position in (
        "x",
        {"seed": "1", "epoch": 0, "batches_served": 0},
        {"seed": 1, "epoch": -1, "batches_served": 0},
    ):
        with pytest.raises(CheckpointError, match=r"its data position .* is not \{seed, epoch, batches_served\}"):
            checked_position(position)


def test_a_file_name_that_is_not_utf8_is_one_line_and_no_csv_is_half_written(tmp_path):
    from src.machinery.runs.folder import write_csv
    from src.predict import input_files

    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "good.png").write_bytes(b"")
    bad = os.fsencode(folder) + b"/caf\xe9.png"
    open(bad, "wb").close()
    with pytest.raises(DataError, match=r"the file name \S*/caf\\xe9\.png is not UTF-8: rename it"):
        input_files(str(folder))
    target = tmp_path / "predictions.csv"
    with pytest.raises(UnicodeEncodeError):
        write_csv(target, ["file"], [["ok"], [os.fsdecode(bad)]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]  # nothing written, no temporary file left


def png(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(folder / "digit.png")
    return folder


def resumable_copy(trained: Path, tmp_path: Path, change) -> Path:
    """A copy of the run folder whose last.ckpt `change` edited (its checksum file gone: the edit is not a fault)."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    last = copy / "checkpoints" / "last.ckpt"
    edited(last, last, change)
    (copy / "checkpoints" / "last.ckpt.sha256").unlink()
    return copy


def class_names(names: list[str]):
    return lambda c: c.update(class_names=names)


def net(**values):
    return lambda c: c["run_config"]["model"]["net"].update(values)


def stored_data(**values):
    return lambda c: c["run_config"]["data"].update(values)


LONG = "x" * (4 << 20)
TRAIN_MORE = ["trainer=cpu", "logger=none", "trainer.max_epochs=2", "trainer.limit_train_batches=3"]
CASES = {  # name: (script, how the input is crafted, what the one line says)
    "memo_shared_config": ("eval.py", net(extra=[[list(range(1000))] * 1000] * 1000), r"reach over 2000000 values"),
    "deep_config": ("eval.py", "deep", r"nest over 100 levels deep"),
    "zip_bomb": ("eval.py", "bomb", r"entry '\S+' would inflate to 1610612736 bytes, over the bound of"),
    "wide_network": ("eval.py", net(widths=[32, 100_000, 128]), r"is for a different model: net\.\S+ has shape"),
    "shared_class_names": ("predict.py", class_names([LONG] * 10), r"reach over 16777216 characters of text"),
    "long_class_name": ("predict.py", class_names(["x" * 5000] * 10), r"a class name of 5000 characters, over the"),
    "image_size": ("predict.py", stored_data(image_size=100_000), r"data\.image_size=100000 is out of range"),
    "num_workers": ("predict.py", stored_data(num_workers=24), None),  # not refused: this machine's 0 workers
    "init_from_list": ("train.py", "init_from", r"weights\.pt holds a list, not a state dict"),
    "resume_rng_state": ("train.py", "rng", r"random-generator state is not what this template saves"),
    "resume_data_position": ("train.py", "position", r"data position .* is not \{seed, epoch, batches_served\}"),
    "non_utf8_input": ("predict.py", "non_utf8", r"the file name \S*/\\xff\.png is not UTF-8"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_each_crafted_input_is_refused_in_one_line_in_bounded_time_and_memory(trained, tmp_path, case):
    script, craft, pattern = CASES[case]
    good, crafted = trained / "checkpoints" / "last.ckpt", tmp_path / "crafted.ckpt"
    out, inputs = tmp_path / "out", png(tmp_path / "inputs")
    overrides = [f"ckpt_path={crafted}", "trainer=cpu"]
    if callable(craft):
        edited(good, crafted, craft)
    elif craft == "deep":
        nested_pickle(good, crafted, 100_000)
    elif craft == "bomb":
        bomb(good, crafted, 1536 << 20)  # torch alone: 2.3 GB peak before it refuses the size
    elif craft == "init_from":
        torch.save([torch.zeros(3)], tmp_path / "weights.pt")
        overrides = [*TRAIN_MORE, f"init_from={tmp_path / 'weights.pt'}"]
    elif craft in ("rng", "position"):
        change = {
            "rng": lambda c: c["callbacks"]["RandomStateInCheckpoint"].update(numpy="abc"),
            "position": lambda c: c["DigitsDataModule"].update(train_position={"seed": "x", "epoch": [], "x": 1}),
        }[craft]
        out = resumable_copy(trained, tmp_path, change)
        overrides = [*TRAIN_MORE, "resume=true"]
    elif craft == "non_utf8":
        crafted = good
        overrides = [f"ckpt_path={good}", "trainer=cpu"]
        open(os.fsencode(inputs) + b"/\xff.png", "wb").close()
    if script == "eval.py":
        overrides.append("logger=none")
    if script == "predict.py":
        overrides.append(f"input={inputs}")
    before = {p: p.read_bytes() for p in out.rglob("*.ckpt")} if out.exists() else {}
    done = run_bounded(script, *overrides, f"hydra.run.dir={out}")
    if pattern is None:  # run as usual, with this machine's workers
        code, _, stderr, seconds, peak_mb = done
        assert code == 0 and seconds < max_seconds() and peak_mb < max_mb(), (stderr[-3000:], seconds, peak_mb)
        assert "DataLoader worker" not in stderr and (out / "predictions.csv").is_file()
        print(f"num_workers=24 stored: ran with 0 workers | {seconds:.1f} s, peak {peak_mb:.0f} MB")
        return
    assert_refused_in_one_line(done, pattern)
    assert not (out / "predictions.csv").exists()  # nothing half written
    assert all(p.read_bytes() == data for p, data in before.items())  # a resumed folder's checkpoints untouched


UCR = (SHARED_DATA / "ucr").resolve()
FAMILIES = {  # model family: train.py overrides (small and quick), where its data is on this machine
    "cnn": ([], None),
    "resnet": (["model=resnet", "model.net.width=8"], None),
    "rnn": (["model=rnn", "model.net.hidden_size=32"], None),
    "fcn": (["data=gunpoint", "model=fcn", "model.net.channels=[16,32,16]"], UCR),
    "resnet1d": (["data=gunpoint", "model=resnet1d", "model.net.channels=[16,32,32]"], UCR),
    "fine_tuned": (["init_from=TRAINED"], None),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_a_legitimate_checkpoint_of_each_family_evaluates_and_reproduces(trained, tmp_path, family):
    overrides, data_dir = FAMILIES[family]
    if data_dir is not None and not data_dir.is_dir():
        pytest.skip(f"{data_dir} is not here (../shared/data)")
    overrides = [o.replace("TRAINED", str(trained / "checkpoints" / "last.ckpt")) for o in overrides]
    where = [f"data.data_dir={data_dir}"] if data_dir else []
    quick = [*FAST, "logger=none", "trainer.max_epochs=2", "callbacks.test_figures=null"]
    metrics = train(compose_config("train", [*quick, *overrides, *where], tmp_path / "run"))
    best = next((tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt"))
    here = [f"data_dir={data_dir}"] if data_dir else []
    cfg = compose_config("eval", [f"ckpt_path={best}", "trainer=cpu", "logger=none", *here], tmp_path / "e")
    evaluated = evaluate(cfg)
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-3)
    print(f"{family}: test/acc {metrics['test/acc']:.4f}, eval.py {evaluated['test/acc']:.4f}")


class ForkData:
    """A fork's data module whose `load_state_dict` trusts what it is given (a KeyError on a state without "vocab")."""

    def load_state_dict(self, state: dict) -> None:
        self.vocabulary = list(state["vocab"])


def test_whatever_a_forks_data_module_raises_on_a_stored_state_is_one_line():
    from src.machinery.checkpoints.files import restore_data_state

    restore_data_state(ForkData(), {}, "run.ckpt")  # nothing stored: nothing to restore
    fork = ForkData()
    restore_data_state(fork, {"ForkData": {"vocab": "ab"}}, "run.ckpt")
    assert fork.vocabulary == ["a", "b"]
    for state, error in (({"words": 1}, "KeyError: 'vocab'"), ({"vocab": 3}, "TypeError: 'int' object is not")):
        with pytest.raises(CheckpointError) as refused:
            restore_data_state(ForkData(), {"ForkData": state}, "run.ckpt")
        message = str(refused.value)
        assert message.startswith("checkpoint run.ckpt: its state of ForkData is not one that data module takes (")
        assert error in message and "\n" not in message


def test_a_resumed_run_whose_data_module_raises_on_its_stored_state_is_one_line(trained, tmp_path, monkeypatch):
    """train.py resume=true with a data module that trusts its stored state (as a fork's may): Lightning restores it
    inside fit, and whatever it raises is one line naming the checkpoint, not a traceback."""
    from src.data.digits import DigitsDataModule

    copy = resumable_copy(trained, tmp_path, lambda c: c["DigitsDataModule"].update(vocab=None))
    monkeypatch.setattr(DigitsDataModule, "load_state_dict", lambda self, state: len(state["vocab"]))
    with pytest.raises(CheckpointError) as refused:
        train(compose_config("train", [*TINY, "resume=true", "trainer.max_epochs=2"], copy))
    last = copy / "checkpoints" / "last.ckpt"
    expected = f"checkpoint {last}: its state of DigitsDataModule is not one that data module takes (TypeError: "
    assert str(refused.value).startswith(expected) and "\n" not in str(refused.value)
