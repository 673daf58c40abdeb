"""A data set of the UCR/UEA time-series classification archive (`.ts` or `.tsv` files) as a plain Lightning data
module: the archive's train/test split, a stratified validation share of train, missing values filled, series
normalised. Batches are (series (B, T_max, D) zero-padded, labels (B,), lengths (B,)), for any lengths."""

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from src.data.ts_format import SUFFIXES, SeriesFile, read_series_file
from src.errors import CheckpointError, ConfigValueError, DataError

log = logging.getLogger(__name__)

NORMALISE = ("series", "dataset", "none")  # per series and dimension (the UCR convention), per dimension, not at all
Example = tuple[torch.Tensor, int]  # one series (T, D), its class index
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (B, T_max, D), (B,), (B,)


def fill_missing(series: np.ndarray) -> np.ndarray:
    """NaNs filled in each dimension by linear interpolation along time, the edges by the nearest value; a dimension
    with no value at all becomes 0. (T, D) -> (T, D)."""
    if not np.isnan(series).any():
        return series
    filled, steps = series.copy(), np.arange(len(series))
    for column in filled.T:  # (T,) views of each dimension
        known = ~np.isnan(column)
        column[~known] = np.interp(steps[~known], steps[known], column[known]) if known.any() else 0.0
    return filled


def pad_batch(batch: list[Example]) -> Batch:
    """Series of any lengths as one batch: (B, T_max, D) zero-padded, labels (B,), lengths (B,)."""
    series, labels = zip(*batch, strict=True)
    lengths = torch.tensor([len(s) for s in series], dtype=torch.long)
    return pad_sequence(list(series), batch_first=True), torch.tensor(labels, dtype=torch.long), lengths


def find_file(data_dir: Path, name: str, split: str) -> Path | None:
    """`<name>_<split>.ts` (or `.tsv`) in `data_dir/<name>/` (data_dir the archive's root) or in data_dir itself."""
    for folder in (data_dir / name, data_dir):
        for suffix in SUFFIXES:
            if (path := folder / f"{name}_{split}{suffix}").is_file():
                return path
    return None


def sorted_labels(labels: list[str]) -> list[str]:
    """Distinct labels in order: by value when every one is a number ("2" before "10"), else as text."""
    distinct = sorted(set(labels))
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return distinct


class SeriesDataset(Dataset):
    """Series (T_i, D) and their class indices, item by item."""

    def __init__(self, series: list[torch.Tensor], labels: list[int]) -> None:
        self.series, self.labels = series, labels

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, index: int) -> Example:
        return self.series[index], self.labels[index]


class UCRDataModule(pl.LightningDataModule):
    """`<name>_TRAIN` and `<name>_TEST` from `data_dir`: the archive's split, `val_fraction` of train held out for
    validation (stratified by `split_seed`; a plain random share when a class is too small for that).

    `class_names`, `num_classes` and `input_shape` ((T, D), or (None, D) for series of different lengths) are known
    on construction, read from the training file when it is there and checked against the config's, which networks
    are built from. Missing values are filled before `normalise`: "series" (each series and dimension to mean 0,
    std 1), "dataset" (each dimension with the training split's mean and std) or "none".
    """

    def __init__(
        self,
        data_dir: str,
        name: str,
        num_classes: int | None = None,
        input_shape: list | None = None,
        batch_size: int = 16,
        eval_batch_size: int = 256,
        val_fraction: float = 0.2,
        normalise: str = "series",
        split_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if normalise not in NORMALISE:
            raise ValueError(f"data.normalise={normalise!r} is not valid; valid choices: {list(NORMALISE)}")
        if not 0 < val_fraction < 1:
            raise ValueError(
                f"data.val_fraction={val_fraction} is not valid: use a number in (0, 1), e.g. 0.2 (the share of the "
                "training split held out for validation; the test split is never validated on)"
            )
        self.data_dir, self.name, self.normalise = Path(data_dir), name, normalise
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.mean: np.ndarray | None = None  # (D,) "dataset" normalisation's, from the training split
        self.std: np.ndarray | None = None
        self.splits: dict[str, SeriesDataset] = {}
        self.lengths = (8, 32)  # shortest and longest training series (sample_batch), once the file is read
        self.train_file: SeriesFile | None = None
        if (path := find_file(self.data_dir, name, "TRAIN")) is not None:
            self.train_file = read_series_file(path)
            self._from_training_file(path, num_classes, input_shape)
        elif num_classes is None or input_shape is None:
            raise ConfigValueError(
                f"data.num_classes={num_classes} and data.input_shape={input_shape}: give both (conf/data/ucr.yaml "
                f"lists the archive's), or put {name}_TRAIN.ts in {self.data_dir} (or {self.data_dir / name}) to "
                "read them from"
            )
        else:  # no files here (a config test, predict.py): the config's, class names from a checkpoint's state
            self.num_classes, self.input_shape = int(num_classes), tuple(input_shape)
            self.class_names = [str(i) for i in range(self.num_classes)]  # placeholders until load_state_dict

    def _from_training_file(self, path: Path, num_classes: int | None, input_shape: list | None) -> None:
        """Class names and input shape as the training file holds them, checked against the config's."""
        series, labels, declared = self.train_file  # type: ignore[misc]
        if not series:
            raise DataError(f"{path} holds no series")
        self.class_names = list(declared) if declared else sorted_labels(labels)
        self.num_classes = len(self.class_names)
        if num_classes is not None and num_classes != self.num_classes:
            raise ConfigValueError(
                f"data.num_classes={num_classes} does not match {path}: it has {self.num_classes} classes "
                f"{self.class_names}; set data.num_classes={self.num_classes}"
            )
        steps = {len(s) for s in series}
        self.lengths = (min(steps), max(steps))
        found = (steps.pop() if len(steps) == 1 else None, series[0].shape[1])  # (T or None, D)
        self.input_shape = found
        if input_shape is None:
            return
        config = tuple(input_shape)
        if len(config) != 2 or config[1] != found[1] or config[0] not in (None, found[0]):
            raise ConfigValueError(
                f"data.input_shape={list(config)} does not match {path}: series of "
                f"{found[0] or f'{self.lengths[0]} to {self.lengths[1]}'} steps of {found[1]} dimension(s); set "
                f"data.input_shape=[{found[0] or 'null'},{found[1]}]"
            )
        self.input_shape = config  # [null, D] takes series of one length too

    # Lightning's hooks
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train, train_path = self._read("TRAIN")
        test, test_path = self._read("TEST")
        x_train, x_test = [fill_missing(s) for s in train.series], [fill_missing(s) for s in test.series]
        y_train, y_test = self._indices(train.labels, train_path), self._indices(test.labels, test_path)
        self._check_shapes(x_test, test_path)
        fit, val = self._split(y_train, train_path)
        if self.normalise == "dataset":  # the steps the network trains on, not validation's or test's
            steps = np.concatenate([x_train[i] for i in fit])  # (all fit steps, D)
            self.mean, self.std = steps.mean(0), steps.std(0)
        self.splits = {
            "train": self._dataset([x_train[i] for i in fit], [y_train[i] for i in fit]),
            "val": self._dataset([x_train[i] for i in val], [y_train[i] for i in val]),
            "test": self._dataset(x_test, y_test),
        }
        sizes = ", ".join(f"{len(d)} {split}" for split, d in self.splits.items())
        log.info("%s: %s series, %d classes, input shape %s", self.name, sizes, self.num_classes, self.input_shape)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def state_dict(self) -> dict[str, Any]:
        """What reading new series needs without the training files: class names, normalisation and its statistics
        (plain lists: checkpoints load with weights_only)."""
        stats = {k: None if v is None else [float(x) for x in v] for k, v in (("mean", self.mean), ("std", self.std))}
        shape = list(self.input_shape)
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "normalise": self.normalise,
            "input_shape": shape,
            **stats,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        stored = state_dict.get("class_names")
        if not isinstance(stored, list) or not all(isinstance(name, str | int) for name in stored):
            raise CheckpointError(f"its stored class names {str(stored)[:200]} are not a list of names")
        names = [str(name) for name in stored]
        if len(names) != self.num_classes or (self.splits and names != self.class_names):
            raise DataError(
                f"the checkpoint's classes {names} are not this data's {self.num_classes} classes {self.class_names}"
            )
        normalise = state_dict.get("normalise")
        if normalise not in NORMALISE:
            raise CheckpointError(f"its stored data.normalise={str(normalise)[:200]} is not one of {list(NORMALISE)}")
        if normalise != self.normalise:
            log.info("data.normalise=%s, as the checkpoint was trained (not %s)", normalise, self.normalise)
        statistics = {key: self._stored_statistic(state_dict.get(key), key) for key in ("mean", "std")}
        self.class_names, self.normalise = names, normalise
        self.mean, self.std = statistics["mean"], statistics["std"]

    def _stored_statistic(self, value: Any, key: str) -> np.ndarray | None:
        """A stored mean or std: None, or one finite number a dimension, as (D,) float32."""
        if value is None:
            return None
        dims = self.input_shape[1]
        numbers = isinstance(value, list) and all(isinstance(x, int | float) and np.isfinite(x) for x in value)
        if not numbers or len(value) != dims:
            raise CheckpointError(f"its stored {key} {str(value)[:200]} is not {dims} finite numbers, one a dimension")
        return np.asarray(value, dtype=np.float32)

    # What the template may ask of a data module beyond Lightning's (each is optional)
    def read_inputs(self, path: str | Path) -> list[torch.Tensor]:
        """Every series of a `.ts`/`.tsv` file (labels ignored; a file with none is fine), filled and normalised as the
        training series were: a list of (T_i, D)."""
        series = read_series_file(path).series
        if not series:
            raise DataError(f"{path} holds no series")
        self._check_shapes(series, Path(path))
        if self.normalise == "dataset" and self.mean is None:
            if find_file(self.data_dir, self.name, "TRAIN") is None:
                raise DataError(
                    f"{path}: data.normalise=dataset needs the training split's mean and std: load them from a "
                    f"checkpoint (load_state_dict) or put {self.name}_TRAIN.ts in {self.data_dir}"
                )
            self.setup()
        return [self._normalised(fill_missing(s)) for s in series]

    def read_input(self, path: str | Path) -> torch.Tensor:
        """predict.py: the one series of a file, as `read_inputs` reads it: (T, D)."""
        inputs = self.read_inputs(path)
        if len(inputs) != 1:
            raise DataError(f"{path} holds {len(inputs)} series: predict.py reads one series a file")
        return inputs[0]

    def collate_inputs(self, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, None, torch.Tensor]:
        """predict.py: new series as a batch with no labels, (series (B, T_max, D), None, lengths (B,))."""
        return pad_sequence(inputs, batch_first=True), None, torch.tensor([len(x) for x in inputs], dtype=torch.long)

    def draw_input(self, ax: Any, series: np.ndarray, length: int | None = None) -> None:
        """The test pictures: one padded series (T_max, D), a line per dimension, the padding cut off: at `length`,
        at the data's one length, or (series of any length, no length given) after the last step not all zero."""
        series = np.asarray(series)
        if length is None and self.input_shape[0] is not None:
            length = self.input_shape[0]
        if length is None:
            nonzero = np.flatnonzero(np.abs(series).sum(1))
            length = int(nonzero[-1]) + 1 if nonzero.size else len(series)
        ax.plot(series[:length])

    def sample_batch(self, batch_size: int = 2) -> Batch:
        """Tests: random series of this data's shape and lengths, padded as the loaders pad them; reads no file."""
        fixed, dims = self.input_shape
        low, high = (fixed, fixed) if fixed is not None else self.lengths
        lengths = torch.randint(low, high + 1, (batch_size,)).tolist()
        labels = torch.randint(0, self.num_classes, (batch_size,)).tolist()
        return pad_batch([(torch.randn(n, dims), y) for n, y in zip(lengths, labels, strict=True)])

    # Helpers
    def _read(self, split: str) -> tuple[SeriesFile, Path]:
        path = find_file(self.data_dir, self.name, split)
        if path is None:
            places = [
                str(folder / f"{self.name}_{split}{{.ts,.tsv}}")
                for folder in (self.data_dir / self.name, self.data_dir)
            ]
            raise DataError(f"no {self.name}_{split} file: looked for {places} (data.data_dir, data.name)")
        data = self.train_file if split == "TRAIN" and self.train_file is not None else read_series_file(path)
        if not data.series:
            raise DataError(f"{path} holds no series")
        return data, path

    def _indices(self, labels: list[str], path: Path) -> list[int]:
        index = {name: i for i, name in enumerate(self.class_names)}
        if unknown := sorted(set(labels) - set(index)):
            raise DataError(f"{path}: labels {unknown} are not among the training file's classes {self.class_names}")
        return [index[label] for label in labels]

    def _check_shapes(self, series: list[np.ndarray], path: Path) -> None:
        """Every series has the data's dimensions, and its one length when it has one."""
        fixed, dims = self.input_shape
        for number, s in enumerate(series, 1):
            if s.shape[1] != dims or (fixed is not None and len(s) != fixed):
                raise DataError(
                    f"{path}: series {number} is {len(s)} steps of {s.shape[1]} dimension(s), not the "
                    f"{fixed or 'any number of'} steps of {dims} that data.input_shape={list(self.input_shape)} says"
                )

    def _split(self, labels: list[int], path: Path) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the training series to fit on and to validate on: stratified, else plain random."""
        index = np.arange(len(labels))
        share = {"test_size": self.val_fraction, "random_state": self.split_seed}
        try:
            return train_test_split(index, stratify=labels, **share)
        except ValueError as error:  # a class with one member, or fewer validation series than classes
            log.info("%s: validation split not stratified (%s): a plain random share instead", path, error)
        try:
            return train_test_split(index, **share)
        except ValueError as error:
            raise DataError(f"{path}: cannot hold out data.val_fraction={self.val_fraction}: {error}") from None

    def _normalised(self, series: np.ndarray) -> torch.Tensor:
        """(T, D) filled series -> (T, D) float32 tensor, normalised by `self.normalise`."""
        if self.normalise == "series":
            mean, std = series.mean(0), series.std(0)  # (D,) each, over this series' own steps
        elif self.normalise == "dataset":
            mean, std = self.mean, self.std
        else:
            return torch.from_numpy(np.ascontiguousarray(series, dtype=np.float32))
        std = np.where(std > 1e-8, std, 1.0)  # a constant dimension is centred, not blown up
        return torch.from_numpy(((series - mean) / std).astype(np.float32))

    def _dataset(self, series: list[np.ndarray], labels: list[int]) -> SeriesDataset:
        return SeriesDataset([self._normalised(s) for s in series], labels)

    def _loader(self, split: str, batch_size: int, shuffle: bool = False) -> DataLoader:
        if split not in self.splits:
            self.setup()
        return DataLoader(
            self.splits[split],
            batch_size=batch_size,
            shuffle=shuffle,
            collate_fn=pad_batch,
            num_workers=self.num_workers,
        )
