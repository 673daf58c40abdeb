"""scikit-learn's bundled 8x8 handwritten digits: 1,797 images, no download ever."""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from src.data.tensor_data import Split, TensorDataModule


class DigitsDataModule(TensorDataModule):
    """A fixed stratified train/val/test split of the digits (pixel values 0..16).

    The split uses its own `split_seed`, so every run and every `seed` sees the same test set.
    """

    max_value = 16.0

    def __init__(
        self,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed

    def load_splits(self) -> dict[str, Split]:
        digits = load_digits()
        images = torch.from_numpy(digits.images).to(torch.uint8).unsqueeze(1)  # (1797, 1, 8, 8)
        labels = torch.from_numpy(digits.target).long()  # (1797,)
        index = torch.arange(len(labels)).numpy()
        rest, test = train_test_split(
            index, test_size=self.test_fraction, stratify=labels, random_state=self.split_seed
        )
        val_share = self.val_fraction / (1.0 - self.test_fraction)
        train, val = train_test_split(rest, test_size=val_share, stratify=labels[rest], random_state=self.split_seed)
        splits = {"train": train, "val": val, "test": test}
        return {name: (images[idx], labels[idx]) for name, idx in splits.items()}
