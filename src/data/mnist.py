"""MNIST: 60,000 training and 10,000 test digits, 28x28 grayscale."""

from torchvision.datasets import MNIST

from src.data.tensor_data import Split
from src.data.torchvision_data import TorchvisionDataModule


class MNISTDataModule(TorchvisionDataModule):
    """torchvision reads (or downloads into) `data_dir/MNIST/raw/`."""

    dataset_class = MNIST

    def _tensors(self, dataset: MNIST) -> Split:
        return dataset.data.unsqueeze(1), dataset.targets.long()  # (N, 1, 28, 28) uint8, (N,)
