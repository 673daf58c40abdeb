"""The UCR/UEA `.ts`/`.tsv` reader on hand-made files (every kind the archive holds, and each malformed input as a
one-line DataError naming file and line), the UCR data module on small files (splits, normalisation, padding, state
for reading new series), and the four shared archive sets against the README's table and their configs."""

import logging
import math
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from src.data.ts_format import read_series_file, read_ts, read_tsv
from src.data.ucr import UCRDataModule, fill_missing
from src.errors import CheckpointError, ConfigValueError, DataError
from src.train import train
from tests.conftest import ROOT, compose_config, run_script
from tests.test_untrusted_bounds import TINY, resumable_copy

matplotlib.use("Agg")
UCR = ROOT.parent / "shared" / "data" / "ucr"

HEADER = """# a comment
@problemName Toy
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true 1 2
@data
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


# The reader: every kind of file
def test_univariate_equal_length(tmp_path):
    path = write(tmp_path, "a.ts", HEADER + "1,2,3,4:1\n5,6,7,8:2\n\n0.5,1e1,-3,4.25:1\n")
    series, labels, declared = read_ts(path)
    assert [s.shape for s in series] == [(4, 1)] * 3 and all(s.dtype == np.float32 for s in series)
    assert series[1][:, 0].tolist() == [5, 6, 7, 8] and series[2][1, 0] == 10
    assert labels == ["1", "2", "1"] and declared == ["1", "2"]


def test_multivariate_string_labels_any_case_tags_and_comments(tmp_path):
    text = "#c\n@PROBLEMNAME m\n@Univariate False\n@dimensions 2\n@EqualLength true\n@classlabel TRUE walk run\n"
    text += "# between\n@DATA\n1,2,3:4,5,6:run\n# a comment among series\n7,8,9:10,11,12:walk\n"
    series, labels, declared = read_ts(write(tmp_path, "m.ts", text))
    assert [s.shape for s in series] == [(3, 2), (3, 2)]
    assert series[0][:, 1].tolist() == [4, 5, 6]  # (T, D): the second dimension
    assert labels == ["run", "walk"] and declared == ["walk", "run"]


def test_unequal_lengths(tmp_path):
    text = "@problemName u\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b\n@data\n"
    text += "1,2:3,4:a\n1,2,3,4,5:6,7,8,9,10:b\n"
    series, labels, _ = read_ts(write(tmp_path, "u.ts", text))
    assert [s.shape for s in series] == [(2, 2), (5, 2)] and labels == ["a", "b"]


def test_missing_values_stay_nan(tmp_path):
    text = HEADER.replace("@missing false", "@missing true") + "1,?,3,NaN:1\n?,nan,2,4:2\n"
    series, _, _ = read_ts(write(tmp_path, "n.ts", text))
    assert np.isnan(series[0][:, 0]).tolist() == [False, True, False, True]
    assert np.isnan(series[1][:, 0]).tolist() == [True, True, False, False]


def test_a_file_without_labels(tmp_path):
    text = "@problemName x\n@univariate true\n@equalLength false\n@classLabel false\n@data\n1,2,3\n4,5\n"
    series, labels, declared = read_ts(write(tmp_path, "x.ts", text))
    assert [len(s) for s in series] == [3, 2] and labels == ["", ""] and declared is None


def test_target_label_files_keep_the_value_as_label(tmp_path):
    text = "@problemName r\n@univariate true\n@targetLabel true\n@classLabel false\n@data\n1,2,3:0.5\n"
    series, labels, declared = read_ts(write(tmp_path, "r.ts", text))
    assert series[0].shape == (3, 1) and labels == ["0.5"] and declared is None


def test_tsv_label_first_and_nan_padding_cut(tmp_path):
    path = write(tmp_path, "t.tsv", "1\t0.5\t1.5\t2.5\tNaN\n2\t1\tNaN\t3\t4\n-1\t7\tNaN\tNaN\tNaN\n")
    series, labels, declared = read_series_file(path)
    assert [s.shape for s in series] == [(3, 1), (4, 1), (1, 1)]
    assert np.isnan(series[1][1, 0])  # missing inside a series: kept, filled later
    assert labels == ["1", "2", "-1"] and declared is None


BAD = [  # (file name, text, the line the error names, words in the message)
    ("h.ts", "@problemName x\n@colour blue\n@classLabel false\n@data\n1\n", 2, "unknown tag @colour"),
    ("h.ts", "@problemName x\n@classLabel true\n@data\n1:1\n", 2, "lists no labels"),
    ("h.ts", "@problemName x\n@seriesLength ten\n@classLabel false\n@data\n1\n", 2, "@serieslength takes one whole"),
    ("h.ts", "@univariate maybe\n@classLabel false\n@data\n1\n", 1, "true or false, not 'maybe'"),
    ("h.ts", "@timeStamps true\n@classLabel false\n@data\n1\n", 1, "@timeStamps true"),
    ("h.ts", "@problemName x\n@classLabel false\n\n", 3, "no @data line"),
    ("h.ts", "@problemName x\n@data\n1:1\n", 2, "no @classLabel"),
    ("h.ts", "@classLabel false\n1,2\n@data\n", 2, "before the @data line"),
    ("d.ts", "@dimensions 2\n@classLabel true a\n@data\n1,2:3,4:a\n1,2:a\n", 5, "1 dimension(s), but"),
    ("d.ts", "@classLabel true a\n@data\n1,2:3,4:a\n1,2:3,4:5,6:a\n", 4, "3 dimension(s), but"),
    ("d.ts", "@dimensions 2\n@classLabel true a\n@data\n1,2,3:3,4:a\n", 4, "differ in length: [3, 2]"),
    ("d.ts", "@classLabel true a\n@data\n1,2:a\n1,x,3:a\n", 4, "'x' is not a number"),
    ("d.ts", "@classLabel true a\n@data\n1,,3:a\n", 3, "'' is not a number"),
    ("d.ts", "@classLabel true a b\n@data\n1,2:a\n1,2:c\n", 4, "label 'c' is not among"),
    ("d.ts", "@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2,3:a\n1,2:a\n", 6, "2 steps"),
    ("d.ts", "@equalLength true\n@classLabel true a\n@data\n1,2,3:a\n1,2:a\n", 5, "2 steps"),
    ("d.tsv", "1\t2\t3\n2\t4\tfive\n", 2, "'five' is not a number"),
    ("d.tsv", "1\t2\t3\n2\tNaN\tNaN\n", 2, "no values"),
]


@pytest.mark.parametrize("name,text,line,words", BAD, ids=[b[3] for b in BAD])
def test_bad_input_is_one_line_naming_file_and_line(tmp_path, name, text, line, words):
    path = write(tmp_path, name, text)
    with pytest.raises(DataError) as caught:
        read_series_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: ") and "\n" not in message
    assert words in message


def test_other_suffixes_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"valid suffixes: \['.ts', '.tsv'\]"):
        read_series_file(write(tmp_path, "a.csv", "1,2\n"))
    with pytest.raises(DataError, match="cannot be read"):
        read_tsv(tmp_path / "absent.tsv")


def test_fill_missing_interpolates_and_takes_the_nearest_at_the_edges():
    nan = np.nan
    series = np.array([[nan, 1, nan], [2, nan, nan], [nan, 3, nan], [4, nan, nan], [nan, nan, nan]], np.float32)
    filled = fill_missing(series)  # (5, 3): edges, interior gaps, and a dimension with no value
    assert filled[:, 0].tolist() == [2, 2, 3, 4, 4]
    assert filled[:, 1].tolist() == [1, 2, 3, 3, 3]
    assert filled[:, 2].tolist() == [0, 0, 0, 0, 0]
    assert np.isnan(series).sum() == 11  # the input is left as it was


# The data module on small files
def toy_set(folder: Path, name: str = "Toy", per_class: int = 10, equal: bool = False, declared: str = "c b a") -> Path:
    """Three classes of 2-dimensional series (4 to 9 steps unless `equal`), a missing value in the first; each
    training series' first value is its number (1000 + i) so the splits can be told apart with normalise=none."""
    rng = np.random.default_rng(0)
    length = "@equalLength true\n@seriesLength 6\n" if equal else "@equalLength false\n"
    header = f"@problemName {name}\n@univariate false\n@dimensions 2\n{length}@classLabel true {declared}\n@data\n"
    (data := folder / name).mkdir(parents=True, exist_ok=True)
    for split, offset, count in (("TRAIN", 1000, per_class), ("TEST", -500, 3)):
        lines = []
        for i in range(3 * count):
            steps = 6 if equal else int(rng.integers(4, 10))
            values = rng.normal(3.0, 2.0, (2, steps))
            values[0, 0] = offset + i
            tokens = [[f"{v:.6f}" for v in dim] for dim in values]
            tokens[0][1] = "?" if i == 0 else tokens[0][1]  # a missing value
            lines.append(":".join(",".join(dim) for dim in tokens) + f":{'abc'[i % 3]}")
        (data / f"{name}_{split}.ts").write_text(header + "\n".join(lines) + "\n")
    return data


def module(folder: Path, **kwargs) -> UCRDataModule:
    dm = UCRDataModule(data_dir=str(folder), name="Toy", **kwargs)
    dm.setup()
    return dm


def all_series(dataset) -> list[torch.Tensor]:
    return [dataset[i][0] for i in range(len(dataset))]


def test_shape_and_classes_known_on_construction(tmp_path):
    toy_set(tmp_path)
    dm = UCRDataModule(data_dir=str(tmp_path), name="Toy")
    assert dm.class_names == ["c", "b", "a"] and dm.num_classes == 3  # the header's order
    assert dm.input_shape == (None, 2) and not dm.splits
    equal = UCRDataModule(data_dir=str(toy_set(tmp_path / "eq", equal=True)), name="Toy")  # the set's own folder
    assert equal.input_shape == (6, 2)


def test_undeclared_class_names_are_sorted_by_value(tmp_path):
    text = "@problemName Num\n@univariate true\n@classLabel false\n@targetLabel true\n@data\n"
    folder = tmp_path / "Num"
    folder.mkdir()
    for split in ("TRAIN", "TEST"):
        write(
            folder,
            f"Num_{split}.ts",
            text + "".join(f"1,2,{i}:{label}\n" for i, label in enumerate(["10", "2", "2", "10", "1"])),
        )
    assert UCRDataModule(str(tmp_path), "Num").class_names == ["1", "2", "10"]


def test_splits_are_stratified_disjoint_and_the_test_split_is_the_archives(tmp_path):
    toy_set(tmp_path)
    dm = module(tmp_path, normalise="none", val_fraction=0.3)
    ids = {split: [round(float(s[0, 0])) for s in all_series(d)] for split, d in dm.splits.items()}
    assert not set(ids["train"]) & set(ids["val"])
    assert sorted(ids["train"] + ids["val"]) == list(range(1000, 1030))
    assert sorted(ids["test"]) == list(range(-500, -491))
    val_labels = [dm.splits["val"][i][1] for i in range(len(dm.splits["val"]))]
    assert sorted(np.bincount(val_labels).tolist()) == [3, 3, 3]  # 30% of each class's 10
    again = module(tmp_path, normalise="none", val_fraction=0.3)
    assert [float(s[0, 0]) for s in all_series(again.splits["val"])] == [
        float(s[0, 0]) for s in all_series(dm.splits["val"])
    ]


def test_a_class_too_small_to_stratify_gives_a_plain_split_and_a_log_line(tmp_path, caplog):
    folder = toy_set(tmp_path)
    lines = (folder / "Toy_TRAIN.ts").read_text().splitlines()
    kept = [line for line in lines if not line.endswith(":a")] + [next(line for line in lines if line.endswith(":a"))]
    (folder / "Toy_TRAIN.ts").write_text("\n".join(kept) + "\n")  # class a: one series
    with caplog.at_level(logging.INFO):
        dm = module(tmp_path)
    assert "not stratified" in caplog.text
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == 21


def test_series_normalisation_each_training_series_mean_0_std_1(tmp_path):
    toy_set(tmp_path)
    dm = module(tmp_path)
    for series in all_series(dm.splits["train"]) + all_series(dm.splits["test"]):
        assert not torch.isnan(series).any()  # the missing value was filled first
        assert torch.allclose(series.mean(0), torch.zeros(2), atol=1e-5)
        assert torch.allclose(series.std(0, unbiased=False), torch.ones(2), atol=1e-4)


def test_dataset_normalisation_uses_the_training_split_alone(tmp_path):
    toy_set(tmp_path)
    dm = module(tmp_path, normalise="dataset")
    steps = torch.cat(all_series(dm.splits["train"]))  # (all training steps, 2)
    assert torch.allclose(steps.mean(0), torch.zeros(2), atol=1e-4)
    assert torch.allclose(steps.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    assert dm.mean[0] > 100  # the training series' ids (1000 + i) are in the mean; the test's (-500 + i) are not
    test_first = torch.stack([s[0, 0] for s in all_series(dm.splits["test"])])
    assert (test_first < -1).all()


def test_no_normalisation_keeps_the_values(tmp_path):
    toy_set(tmp_path)
    first = {float(s[0, 0]) for s in all_series(module(tmp_path, normalise="none").splits["test"])}
    assert first == {float(v) for v in range(-500, -491)}


def test_batches_are_padded_with_lengths(tmp_path):
    toy_set(tmp_path)
    dm = module(tmp_path, eval_batch_size=7)
    x, y, lengths = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.float32 and y.dtype == torch.long and lengths.dtype == torch.long
    assert x.shape == (6, int(lengths.max()), 2) and y.shape == lengths.shape == (6,)
    originals = all_series(dm.splits["val"])
    for i, n in enumerate(lengths.tolist()):
        assert n == len(originals[i]) and torch.equal(x[i, :n], originals[i])
        assert (x[i, n:] == 0).all()
    x, y, lengths = next(iter(module(toy_set(tmp_path / "eq", equal=True)).train_dataloader()))
    assert x.shape == (16, 6, 2) and lengths.tolist() == [6] * 16  # equal lengths: three elements too


@pytest.mark.parametrize(
    "kwargs,error,words",
    [
        ({"normalise": "minmax"}, ValueError, "data.normalise='minmax' is not valid; valid choices: ['series',"),
        ({"val_fraction": 0.0}, ValueError, "data.val_fraction=0.0 is not valid"),
        ({"val_fraction": 1.0}, ValueError, "data.val_fraction=1.0 is not valid"),
        ({"num_classes": 4}, ConfigValueError, "data.num_classes=4 does not match"),
        ({"input_shape": [None, 3]}, ConfigValueError, "set data.input_shape=[null,2]"),
        ({"input_shape": [9, 2]}, ConfigValueError, "data.input_shape=[9, 2] does not match"),
    ],
)
def test_config_values_are_checked_naming_the_key(tmp_path, kwargs, error, words):
    toy_set(tmp_path)
    with pytest.raises(error) as caught:
        UCRDataModule(data_dir=str(tmp_path), name="Toy", **kwargs)
    assert words in str(caught.value)


def test_without_files_the_config_must_give_the_shapes(tmp_path):
    with pytest.raises(ConfigValueError, match=r"data\.num_classes=None and data\.input_shape=None: give both"):
        UCRDataModule(data_dir=str(tmp_path), name="Toy")
    dm = UCRDataModule(data_dir=str(tmp_path), name="Toy", num_classes=3, input_shape=[None, 2])
    x, y, lengths = dm.sample_batch(3)  # reads no file
    assert x.shape == (3, int(lengths.max()), 2) and y.shape == (3,)
    with pytest.raises(DataError, match="no Toy_TRAIN file"):
        dm.setup()


def test_config_null_length_takes_series_of_one_length(tmp_path):
    toy_set(tmp_path, equal=True)
    dm = UCRDataModule(data_dir=str(tmp_path), name="Toy", num_classes=3, input_shape=[None, 2])
    assert dm.input_shape == (None, 2)


def test_state_dict_lets_a_module_without_files_read_new_series(tmp_path):
    toy_set(tmp_path / "archive")
    trained = module(tmp_path / "archive", normalise="dataset")
    new = write(tmp_path, "new.ts", "@problemName Toy\n@dimensions 2\n@classLabel false\n@data\n1,2,?:4,5,6\n7,8:9,1\n")
    expected = trained.read_inputs(new)
    torch.save(trained.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)  # plain data, as a checkpoint stores it
    fresh = UCRDataModule(
        data_dir=str(tmp_path / "nothing"), name="Toy", num_classes=3, input_shape=[None, 2], normalise="dataset"
    )
    assert fresh.class_names == ["0", "1", "2"]  # placeholders until the state names them
    fresh.load_state_dict(state)
    assert fresh.class_names == ["c", "b", "a"]
    got = fresh.read_inputs(new)
    assert [g.shape for g in got] == [(3, 2), (2, 2)]
    assert all(torch.allclose(g, e) for g, e in zip(got, expected, strict=True))
    untrained = UCRDataModule(str(tmp_path / "nothing"), "Toy", 3, [None, 2], normalise="dataset")
    with pytest.raises(DataError, match="needs the training split's mean and std"):
        untrained.read_inputs(new)


def test_read_input_takes_one_series_and_collate_inputs_pads(tmp_path):
    toy_set(tmp_path)
    dm = UCRDataModule(data_dir=str(tmp_path), name="Toy")
    one = write(tmp_path, "one.ts", "@classLabel true c b a\n@dimensions 2\n@data\n1,2,3,4:5,6,7,9:a\n")
    two = write(tmp_path, "two.ts", "@classLabel false\n@data\n1,2,3:5,6,7\n1,2:5,6\n")
    assert dm.read_input(one).shape == (4, 2)
    with pytest.raises(DataError, match="holds 2 series"):
        dm.read_input(two)
    with pytest.raises(DataError, match=r"series 1 is 3 steps of 1 dimension\(s\)"):
        dm.read_inputs(write(tmp_path, "uni.ts", "@classLabel false\n@data\n1,2,3\n"))
    x, y, lengths = dm.collate_inputs(dm.read_inputs(two))
    assert x.shape == (2, 3, 2) and y is None and lengths.tolist() == [3, 2]


def test_draw_input_cuts_the_padding_only(tmp_path):
    import matplotlib.pyplot as plt

    toy_set(tmp_path)
    toy_set(tmp_path / "eq", equal=True)
    varying, equal = UCRDataModule(str(tmp_path), "Toy"), UCRDataModule(str(tmp_path / "eq"), "Toy")
    padded = np.zeros((6, 2), np.float32)
    padded[:4] = 1.0
    fig, axes = plt.subplots(1, 3)
    varying.draw_input(axes[0], padded)  # any length, no length given: trailing zero steps are padding
    varying.draw_input(axes[1], padded, length=5)  # a length given: a genuine zero step kept
    equal.draw_input(axes[2], padded)  # one length for all: nothing is padding
    assert [len(ax.lines[0].get_xdata()) for ax in axes] == [4, 5, 6] and len(axes[0].lines) == 2
    plt.close(fig)


# The shared archive sets
README = {  # config: (name, train, test, classes, shortest, longest, dimensions)
    "gunpoint": ("GunPoint", 50, 150, 2, 150, 150, 1),
    "italypower": ("ItalyPowerDemand", 67, 1029, 2, 24, 24, 1),
    "basicmotions": ("BasicMotions", 40, 40, 4, 100, 100, 6),
    "japanesevowels": ("JapaneseVowels", 270, 370, 9, 7, 29, 12),
}


@pytest.mark.skipif(not UCR.is_dir(), reason=f"the shared UCR files are not in {UCR}")
@pytest.mark.parametrize("config", sorted(README))
def test_shared_sets_match_the_readme_and_their_configs(tmp_path, config):
    name, train, test, classes, shortest, longest, dims = README[config]
    files = [read_series_file(UCR / name / f"{name}_{split}.ts") for split in ("TRAIN", "TEST")]
    assert [len(f.series) for f in files] == [train, test]
    steps = [len(s) for f in files for s in f.series]
    assert (min(steps), max(steps)) == (shortest, longest)
    assert {s.shape[1] for f in files for s in f.series} == {dims}
    expected_shape = [shortest if shortest == longest else None, dims]
    cfg = compose_config("train", [f"data={config}", f"data.data_dir={UCR}"], tmp_path)
    assert cfg.data.name == name and cfg.data.num_classes == classes and list(cfg.data.input_shape) == expected_shape
    dm = instantiate(cfg.data)  # checks the config's against the files
    dm.setup()
    assert dm.num_classes == classes == len(set(files[0].labels))
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == train and len(dm.splits["test"]) == test
    assert len(dm.splits["val"]) == math.ceil(0.2 * train)
    x, y, lengths = next(iter(dm.test_dataloader()))
    assert x.shape[2] == dims and int(y.max()) < classes and int(lengths.max()) <= longest


@pytest.mark.slow
@pytest.mark.parametrize(
    "line,message",
    [
        ("1,x,3:b", r":8: dimension 1: 'x' is not a number"),
        ("1,2,3:c", r":8: label 'c' is not among the declared @classLabel \['a', 'b'\]"),
        ("1,2,3:4,5,6:a", r":8: .*dimension"),
    ],
)
def test_a_broken_file_stops_train_py_with_one_line_naming_file_and_line(tmp_path, line, message):
    header = "@problemName Bad\n@univariate true\n@equalLength true\n@seriesLength 3\n@classLabel true a b\n@data\n"
    (tmp_path / "Bad").mkdir()
    for split in ("TRAIN", "TEST"):
        (tmp_path / "Bad" / f"Bad_{split}.ts").write_text(f"{header}1,2,3:a\n{line}\n")
    data = ["data=ucr", "data.name=Bad", "data.num_classes=2", "data.input_shape=[3,1]", f"data.data_dir={tmp_path}"]
    done = run_script("train.py", *data, "model=fcn", "logger=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: {tmp_path / 'Bad' / 'Bad_TRAIN.ts'}:8: ") and re.search(message, last), last


@pytest.fixture(scope="module")
def series_run(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """An FCN's run folder after one short epoch on a toy set of series (data=ucr, normalise=dataset: its data module
    stores class names, mean and std), that set's folder and the run's overrides."""
    root = tmp_path_factory.mktemp("series")
    toy_set(root / "archive")
    overrides = ["data=ucr", "data.name=Toy", f"data.data_dir={root / 'archive'}", "data.num_classes=3"]
    overrides += ["data.input_shape=[null,2]", "data.normalise=dataset", "data.batch_size=8", "model=fcn"]
    overrides += ["model.net.channels=[8,8,8]", "callbacks.test_figures=null", *TINY]
    train(compose_config("train", overrides, root / "run"))
    return root / "run", root / "archive", overrides


SERIES_STATES = {  # name: (a change to the data module's stored state, what the one line says)
    "class_names_text": (lambda s: s.update(class_names="abc"), r"stored class names abc are not a list of names"),
    "class_names_missing": (lambda s: s.pop("class_names"), r"stored class names None are not a list of names"),
    "normalise": (lambda s: s.update(normalise=["x"]), r"stored data\.normalise=\['x'\] is not one of \['series'"),
    "mean_length": (lambda s: s.update(mean=[0.0] * 5), r"stored mean \[0\.0, .*\] is not 2 finite numbers"),
    "std_text": (lambda s: s.update(std=["a", "b"]), r"stored std \['a', 'b'\] is not 2 finite numbers"),
    "std_nan": (lambda s: s.update(std=[float("nan"), 1.0]), r"stored std \[nan, 1\.0\] is not 2 finite numbers"),
    "not_a_mapping": (lambda s: (s.clear(), s.update(x=1)), r"stored class names None are not a list of names"),
}


@pytest.mark.parametrize("case", SERIES_STATES)
def test_a_crafted_data_module_state_is_one_line_naming_the_file(series_run, tmp_path, case):
    """predict.py and a resumed train.py refuse a series data module's stored state of the wrong types or sizes in one
    line naming the checkpoint, before any series is normalised with it."""
    from src.predict import predict

    run, archive, overrides = series_run
    change, message = SERIES_STATES[case]
    copy = resumable_copy(run, tmp_path, lambda c: change(c["UCRDataModule"]))
    last = copy / "checkpoints" / "last.ckpt"
    cfg = compose_config("predict", [f"ckpt_path={last}", f"input={archive / 'Toy' / 'Toy_TEST.ts'}"], tmp_path / "p")
    with pytest.raises(CheckpointError, match=message) as refused:
        predict(cfg)
    assert str(refused.value).startswith(f"checkpoint {last}: ") and "\n" not in str(refused.value)
    resumed = compose_config("train", [*overrides, "resume=true", "trainer.max_epochs=2"], copy)
    with pytest.raises(CheckpointError, match=message) as refused:
        train(resumed)
    assert str(refused.value).startswith(f"checkpoint {last}: ") and "\n" not in str(refused.value)
