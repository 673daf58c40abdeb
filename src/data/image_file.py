"""Decoding one image file as every image path of the template does (training folders, predict.py, the ONNX
predictor): PIL and numpy only, so the exported-model predictor can use it without torch."""

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from src.errors import DataError, first_line


def load_image(path: str | Path, header_only: bool = False) -> Image.Image | None:
    """Decode an image to RGB, as torchvision's loader does (`header_only`: only check that it opens, cheap for large
    folders); a damaged or oversized file is a `DataError` naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as f, Image.open(f) as image:
                return None if header_only else _to_8_bit(image).convert("RGB")
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise DataError(
            f"{path} is too large to decode ({first_line(error)}); shrink or remove it, or if you trust it "
            "raise PIL.Image.MAX_IMAGE_PIXELS"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path} is not a readable image: {first_line(error)}") from None


def _to_8_bit(image: Image.Image) -> Image.Image:
    """A 16-bit grey image (PNG, TIFF: mode I;16) as its top 8 bits; PIL's convert("RGB") would clip it to white."""
    if image.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
    return image
