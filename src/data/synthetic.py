"""Random images of a chosen shape and class count, for smoke tests and throughput."""

import torch

from src.data.tensor_data import Split, TensorDataModule


class SyntheticDataModule(TensorDataModule):
    """Each class is a fixed random prototype image plus Gaussian noise, so it can be learnt.

    `noise` sets how hard it is: at 0 every image is its class prototype.
    """

    def __init__(
        self,
        num_train: int = 1024,
        num_val: int = 256,
        num_test: int = 256,
        noise: float = 1.0,
        data_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.noise = noise
        self.data_seed = data_seed

    def load_splits(self) -> dict[str, Split]:
        generator = torch.Generator().manual_seed(self.data_seed)
        prototypes = torch.randn(self.num_classes, *self.dims, generator=generator)  # (K, C, H, W)
        splits = {}
        for name, size in self.sizes.items():
            labels = torch.randint(0, self.num_classes, (size,), generator=generator)
            noise = torch.randn(size, *self.dims, generator=generator)
            splits[name] = (prototypes[labels] + self.noise * noise, labels)
        return splits
