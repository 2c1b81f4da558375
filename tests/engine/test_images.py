from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anil_engine.errors import DataError
from anil_engine.images import load_image, load_images


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "1", "LA", "CMYK"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_mode_becomes_the_model_input(tmp_path, mode, channels):
    path = tmp_path / f"x.{'tif' if mode in ('I;16', 'CMYK') else 'png'}"
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8), "RGB")
    rgb.convert(mode).save(path) if mode != "I;16" else Image.fromarray(
        (np.arange(600).reshape(30, 20) * 100).astype(np.uint16)
    ).save(path)
    arr = load_image(path, 16, channels)
    assert arr.shape == (channels, 16, 16)
    assert arr.dtype == np.uint8


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535 // 2, dtype=np.uint16)).save(path)
    value = int(load_image(path, 16, 1).mean())
    assert 120 <= value <= 135


def test_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(path)
    assert load_image(path, 16, 3).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("L", (40, 20), 0)
    img.paste(255, (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    arr = load_image(path, 16, 1)[0]
    # Displayed upright, the white half is at the top.
    assert arr[:8].mean() > 200 and arr[8:].mean() < 60


def test_corrupt_and_non_image_files_are_named(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    trunc = tmp_path / "cut.png"
    Image.new("RGB", (50, 50), (1, 2, 3)).save(trunc)
    trunc.write_bytes(trunc.read_bytes()[:60])
    with pytest.raises(DataError, match="notes.png"):
        load_image(bad, 16, 3)
    with pytest.raises(DataError, match="cut.png"):
        load_image(trunc, 16, 3)
    with pytest.raises(DataError, match="missing.png: file not found"):
        load_image(tmp_path / "missing.png", 16, 3)
    arrays, ok, skipped = load_images([bad, trunc], 16, 3)
    assert arrays.shape == (0, 3, 16, 16) and ok == [] and len(skipped) == 2


def full_decode(path, size, channels):
    from anil_engine.images import prepare_image

    with Image.open(path) as image:
        image.load()
        return prepare_image(image, size, channels)


def photo(path, width, height):
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8))
    small.resize((width, height), Image.Resampling.BICUBIC).save(path, quality=92)
    return path


@pytest.mark.parametrize("channels", [1, 3])
def test_big_jpegs_decode_at_reduced_scale_and_small_ones_exactly(tmp_path, channels):
    # Under 8x the input size on a side (every Caltech-101 split image at 84 px): bit-identical.
    small = photo(tmp_path / "small.jpg", 671, 900)
    assert np.array_equal(load_image(small, 84, channels), full_decode(small, 84, channels))
    # A big photo: decoded at 1/4 (600 x 450; 1/8 would be under 4 x 84 = 336 px), a grey level or so off.
    big = photo(tmp_path / "big.jpg", 2400, 1800)
    with Image.open(big) as image:
        image.draft(image.mode, (4 * 84, 4 * 84))
        assert image.size == (600, 450)  # what load_image decodes
    diff = np.abs(load_image(big, 84, channels).astype(int) - full_decode(big, 84, channels).astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.5


def test_too_many_pixels_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.new("RGB", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels is over twice the limit
    with pytest.raises(DataError, match="huge.png: too many pixels to open safely"):
        load_image(path, 28, 1)
