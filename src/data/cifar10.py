"""CIFAR-10: 50,000 training and 10,000 test images, 32x32 RGB, ten classes."""

import torch
from torchvision.datasets import CIFAR10

from src.data.tensor_data import Split
from src.data.torchvision_data import TorchvisionDataModule


class CIFAR10DataModule(TorchvisionDataModule):
    """torchvision reads (or downloads into) `data_dir/cifar-10-batches-py/`.

    Augmentation (random crop with padding, horizontal flip) is set in the config and runs batched.
    """

    dataset_class = CIFAR10
    class_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

    def _tensors(self, dataset: CIFAR10) -> Split:
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32) uint8
        return images, torch.tensor(dataset.targets)
