"""Base for torchvision's downloadable data sets held as tensors (MNIST, CIFAR-10)."""

from src.data.splits import hold_out
from src.data.tensor_data import Split, TensorDataModule
from src.errors import DataError


class TorchvisionDataModule(TensorDataModule):
    """Downloads in `prepare_data` when missing; holds out `val_size` training images as validation.

    Subclasses name the torchvision class and turn one of its data sets into tensors.
    The hold-out uses its own `split_seed`, so the validation set is the same for every run.
    """

    dataset_class: type
    max_value = 255.0

    def __init__(self, data_dir: str, val_size: int = 5000, split_seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir = data_dir
        self.val_size = val_size
        self.split_seed = split_seed

    def prepare_data(self) -> None:
        # Lightning calls this on one process per node: the only place that touches the network.
        try:
            for train in (True, False):
                self.dataset_class(self.data_dir, train=train, download=True)
        except (OSError, RuntimeError) as error:  # no network (URLError is an OSError), a damaged download
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise DataError(
                f"{self.dataset_class.__name__} is not in data.data_dir={self.data_dir} and could not be downloaded "
                f"({reason}): connect to the network once, or copy its files there (docs/troubleshooting.md)"
            ) from None

    def _tensors(self, dataset) -> Split:
        """Images (N, C, H, W) as uint8 and labels (N,) as int64."""
        raise NotImplementedError

    def load_splits(self) -> dict[str, Split]:
        images, labels = self._tensors(self.dataset_class(self.data_dir, train=True, download=False))
        train, val = hold_out(len(images), self.val_size, self.split_seed)
        return {
            "train": (images[train], labels[train]),
            "val": (images[val], labels[val]),
            "test": self._tensors(self.dataset_class(self.data_dir, train=False, download=False)),
        }
