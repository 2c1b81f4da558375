"""Reading images exactly as the app, the CLI and the data sets all do.

One function decides how a file becomes pixels, so a picture gets the same
input whether it comes from a data set, a dropped file or `anil-studio predict`.
This module needs only Pillow and NumPy (no torch), so the torch-free runtime
can use it too.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from anil_engine.config import check_crop
from anil_engine.errors import DataError, os_message

try:  # HEIC/HEIF photos (iPhones' default format) through libheif; without the package they are named with the fix
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - a set-up without it (the torch-free runtime, say)
    HEIF_READABLE = False
else:
    register_heif_opener()
    HEIF_READABLE = True

# The most pixels an image may have: Pillow's own limit (about 89 megapixels). Pillow only warns up to twice
# that and decodes the image (hundreds of MB); ANIL Studio skips it with a message instead.
PIXEL_LIMIT = Image.MAX_IMAGE_PIXELS or 89_478_485
DRAFT_FACTOR = 4  # big JPEGs are decoded at a reduced scale, down to this multiple of the input size
HEIF_SUFFIXES = frozenset({".heic", ".heif"})
IMAGE_SUFFIXES = HEIF_SUFFIXES | {
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".ppm", ".pgm",
}  # fmt: skip
INK_LEVEL = 128  # grey levels below this are ink
INK_MARGIN = 0.1  # paper left around the ink on every side, as a fraction of the ink's longer side


def is_image_path(path: Path) -> bool:
    """True when the suffix is one of the image formats we read."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def _white_level(mode: str, arr: np.ndarray) -> float:
    """The value that shows as white in a deep greyscale image: 65535 for 16 bits; for 32-bit integers 255
    unless larger values occur (then 65535); for floating point 1.0 when every value is within [0, 1] (the
    scientific convention), else 255, else the largest value."""
    top = float(arr.max(initial=0.0))
    if mode.startswith("I;16"):
        return 65535.0
    if mode == "F" and top <= 1.0:
        return 1.0
    if top <= 255.0:
        return 255.0
    return 65535.0 if mode == "I" and top <= 65535.0 else top


def to_mode(image: Image.Image, channels: int) -> Image.Image:
    """Convert any Pillow mode to "L" (channels=1) or "RGB" (channels=3)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        image = Image.fromarray(np.clip(arr / _white_level(image.mode, arr) * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("L" if channels == 1 else "RGB")


def ink_crop(image: Image.Image) -> Image.Image:
    """The square around `image`'s ink (grey < INK_LEVEL), INK_MARGIN of its longer side wider on every side plus
    a pixel, centred on the ink; where it reaches past the image, white paper. An image without ink is unchanged.

    The drawing then fills the model's input whatever its size and position on the page, so the strokes keep
    more pixels (at 28x28 a small character of Omniglot's 105x105 page is a few pixels wide otherwise).
    """
    grey = np.asarray(image if image.mode == "L" else image.convert("L"))
    ys, xs = np.nonzero(grey < INK_LEVEL)
    if ys.size == 0:
        return image
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    side = round(max(y1 - y0, x1 - x0) * (1 + 2 * INK_MARGIN)) + 2
    top, left = round((y0 + y1) / 2 - side / 2), round((x0 + x1) / 2 - side / 2)
    inside = (max(left, 0), max(top, 0), min(left + side, image.width), min(top + side, image.height))
    out = Image.new(image.mode, (side, side), "white")
    out.paste(image.crop(inside), (inside[0] - left, inside[1] - top))
    return out


def prepare_image(image: Image.Image, size: int, channels: int, crop: str = "none") -> np.ndarray:
    """Pillow image -> uint8 array (channels, size, size), EXIF orientation applied; `crop` one of CROPS."""
    image = ImageOps.exif_transpose(image)
    image = to_mode(image, channels)
    check_crop(crop)
    if crop == "ink":
        image = ink_crop(image)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    arr = np.asarray(image, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.array(arr, dtype=np.uint8, copy=True, order="C")  # writable, contiguous


def load_image(path: str | Path, size: int, channels: int, crop: str = "none") -> np.ndarray:
    """Read one file into a uint8 array (channels, size, size), framed by `crop` (CROPS).

    Raises:
        DataError: the file is missing, not an image or corrupt; the message names it.
    """
    path = Path(path)
    check_crop(crop)  # before the file is opened: a wrong name is not a corrupt image
    if path.suffix.lower() in HEIF_SUFFIXES and not HEIF_READABLE:
        raise DataError(
            f"{path}: a HEIC/HEIF photo, which needs the pillow-heif package (pip install pillow-heif, or run "
            "scripts/setup.sh again); or convert it to JPEG"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, with the file named
            image = Image.open(path)
        with image:
            if image.width * image.height > PIXEL_LIMIT:
                raise DataError(too_many_pixels(path, f"{image.width} x {image.height} pixels"))
            if image.format == "JPEG" and crop == "none":  # framed by the ink, the drawing may be a small part
                # Decode big photos at 1/2 to 1/8 scale, never below 4x the input size (6x faster for a
                # 12-megapixel photo; the result differs by at most one grey level there). Images under
                # 8x the input size on a side, every image of the data sets we train on, are unaffected.
                image.draft(image.mode, (DRAFT_FACTOR * size, DRAFT_FACTOR * size))
            image.load()
            return prepare_image(image, size, channels, crop)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except PermissionError as exc:
        raise DataError(os_message(exc, path, "cannot be read")) from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: a folder, not an image file") from exc
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow names only the count
        raise DataError(too_many_pixels(path, _pixels(int(found[1])) if found else "")) from exc
    except UnidentifiedImageError as exc:
        if _is_empty(path):
            raise DataError(
                f"{path}: an empty file (0 bytes; a copy or download that did not finish?); copy it again or remove it"
            ) from exc
        raise DataError(f"{path}: not an image Pillow can read; remove it or convert it to PNG/JPEG") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: the image is corrupt or truncated ({exc}); re-export or remove it") from exc


def too_many_pixels(path: str | Path, size: str) -> str:
    """The message for an image too large to decode safely; `size` in words ("" when unknown)."""
    return (
        f"{path}: {size + ', ' if size else ''}more than the {_pixels(PIXEL_LIMIT)} this app opens safely (a larger "
        "image could fill the memory); downscale it first, e.g. to 8,000 pixels on its longer side"
    )


def _pixels(n: int) -> str:
    return f"{n / 1e6:,.0f} megapixels" if n >= 1_000_000 else f"{n:,} pixels"


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def load_images(
    paths: list[Path], size: int, channels: int, crop: str = "none"
) -> tuple[np.ndarray, list[Path], list[str]]:
    """Read many files, skipping the unreadable ones.

    Returns:
        (images uint8 (n_ok, channels, size, size), the paths read, one message per skipped file)
    """
    arrays, ok, skipped = [], [], []
    for path in paths:
        try:
            arrays.append(load_image(path, size, channels, crop))
            ok.append(path)
        except DataError as exc:
            skipped.append(str(exc))
    if arrays:
        stacked = np.stack(arrays)
    else:
        stacked = np.zeros((0, channels, size, size), dtype=np.uint8)
    return stacked, ok, skipped


def mostly_colour(paths: list[Path], sample: int = 5) -> bool:
    """Whether most of the first `sample` readable images are colour (from their headers; nothing decoded)."""
    colour, seen = 0, 0
    for p in paths[:sample]:
        try:
            with Image.open(p) as im:
                colour += im.mode in ("RGB", "RGBA", "CMYK", "YCbCr")
                seen += 1
        except OSError:
            continue
    return seen > 0 and colour * 2 > seen
