"""Write a split of the bundled digits as PNG files, to try predict.py on images it has not seen as tensors.

    python scripts/digits_to_png.py digits_png                 # the test split: digits_png/000_label6.png, ...
    python scripts/digits_to_png.py digits_png --split val
    python predict.py ckpt_path=<run>/checkpoints/last.ckpt input=digits_png

Each pixel value v (0..16) is saved as round(v * 255 / 16) in an 8-bit grey PNG: lossless, so predict.py's
preprocessing gives back exactly the tensors the model is tested on (tests/test_predict.py checks it).
"""

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from hydra.utils import instantiate
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.machinery.config.schemas import compose_config  # noqa: E402


def write_digits(folder: Path, split: str = "test") -> list[Path]:
    """The digits of `split` (conf/data/digits.yaml's fixed split) as `<index>_label<label>.png` files, in order."""
    with tempfile.TemporaryDirectory() as scratch:
        datamodule = instantiate(compose_config("train", ["data=digits"], scratch).data)
    images, labels = datamodule.load_splits()[split]  # (N, 1, 8, 8) uint8 in 0..16, (N,)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (image, label) in enumerate(zip(images, labels.tolist(), strict=True)):
        pixels = (image[0].double() * 255 / 16).round().to(torch.uint8).numpy()  # (8, 8)
        paths.append(folder / f"{index:03d}_label{label}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--split", choices=["train", "val", "test"], default="test")
    args = parser.parse_args()
    paths = write_digits(args.folder, args.split)
    print(f"Wrote {len(paths)} PNG files of the digits' {args.split} split to {args.folder}")


if __name__ == "__main__":
    main()
