"""Reading images; every failure becomes a DataError that names the file."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vilem.errors import DataError


def load_image(path: Path) -> Image.Image:
    """Open ``path`` as an RGB image, or raise DataError saying why it cannot be read."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image {path} is corrupt or not an image: {exc}") from exc


def check_image(path: Path) -> None:
    """Cheap validity check without decoding all pixels."""
    try:
        with Image.open(path) as im:
            im.verify()
    except FileNotFoundError as exc:
        raise DataError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image {path} is corrupt or not an image: {exc}") from exc
