from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anil_engine.errors import ConfigError, DataError
from anil_engine.images import is_image_path, load_image, load_images, prepare_image


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


@pytest.mark.parametrize(
    ("values", "grey"),
    [
        (np.full((8, 8), 0.5, dtype=np.float32), 128),  # floating point in [0, 1]
        (np.full((8, 8), 127.5, dtype=np.float32), 128),  # floating point in 0-255
        (np.repeat([[2000.0], [4000.0]], 4, 0).repeat(8, 1).astype(np.float32), 191),  # else its largest is white
        (np.repeat([[np.nan], [0.5]], 4, 0).repeat(8, 1).astype(np.float32), 64),  # not-a-number: black
        (np.full((8, 8), 1000, dtype=np.int32), 4),  # 32-bit integers past 255: 16-bit range
    ],
)
def test_deep_greyscale_images_are_scaled_by_their_own_range(tmp_path, values, grey):
    path = tmp_path / "deep.tif"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode in ("F", "I")
    assert abs(int(load_image(path, 8, 1).astype(float).mean().round()) - grey) <= 1


@pytest.mark.parametrize(("suffix", "kind"), [(".heic", "HEIF"), (".HEIF", "HEIF"), (".avif", "AVIF")])
def test_heic_and_avif_photos_are_read(tmp_path, suffix, kind):
    """iPhones save HEIC by default (pillow-heif, a dependency, lets Pillow read it); AVIF: Pillow itself."""
    path = tmp_path / f"IMG_0001{suffix}"
    Image.new("RGB", (64, 48), (30, 160, 60)).save(path, format=kind)
    assert is_image_path(path)
    arr = load_image(path, 16, 3)
    assert arr.shape == (3, 16, 16)
    assert np.abs(arr.reshape(3, -1).mean(1) - [30, 160, 60]).max() < 15


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
    with pytest.raises(DataError, match=r"huge.png: 10,000 pixels, more than .* downscale it first") as error:
        load_image(path, 28, 1)
    assert "decompression bomb" not in str(error.value)  # Pillow's words are for programmers
    monkeypatch.setattr("anil_engine.images.PIXEL_LIMIT", 5000)  # under twice Pillow's: refused by the app's check
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(DataError, match=r"huge.png: 100 x 100 pixels, more than the 5,000 pixels this app opens"):
        load_image(path, 28, 1)


def _page(size: int, box: tuple[int, int, int, int], mode: str = "L") -> Image.Image:
    """White paper with a black rectangle of ink at box (left, top, right, bottom), right/bottom exclusive."""
    page = Image.new(mode, (size, size), "white")
    page.paste(Image.new(mode, (box[2] - box[0], box[3] - box[1]), "black"), box[:2])
    return page


def test_ink_crop_frames_the_drawing_whatever_its_size_and_place():
    from anil_engine.images import ink_crop

    # A 20x10 block of ink: the square is 20 * 1.2 + 2 = 26 pixels, centred on the ink.
    out = ink_crop(_page(105, (30, 40, 50, 50)))
    assert out.size == (26, 26)
    ink = np.argwhere(np.asarray(out) < 128)
    assert (ink.min(0).tolist(), ink.max(0).tolist()) == ([8, 3], [17, 22])  # rows 8-17, columns 3-22

    # The same shape drawn small in one corner or large in the middle fills the same part of the model's input;
    # without the crop it does not.
    def ink_box(pixels: np.ndarray) -> list[int]:
        ink = np.argwhere(pixels[0] < 128)
        return [*ink.min(0), *ink.max(0)]

    small, large = _page(105, (2, 2, 22, 22)), _page(105, (20, 20, 80, 80))
    cropped = [ink_box(prepare_image(page, 28, 1, "ink")) for page in (small, large)]
    assert np.abs(np.subtract(*cropped)).max() <= 1 and cropped[0][2] - cropped[0][0] >= 20
    assert ink_box(prepare_image(small, 28, 1)) != ink_box(prepare_image(large, 28, 1))
    # Past the page's edge the square is paper, and a page without ink is left as it is.
    edge = np.asarray(ink_crop(_page(40, (0, 0, 10, 10))))
    assert edge.shape == (14, 14) and edge[:2].min() == 255 and edge[:, :2].min() == 255 and edge[2:12, 2:12].max() == 0
    blank = Image.new("L", (30, 20), "white")
    assert ink_crop(blank) is blank


def test_ink_crop_reads_colour_images_and_files(tmp_path):
    from anil_engine.images import ink_crop

    colour = ink_crop(_page(60, (10, 10, 30, 20), "RGB"))
    assert colour.mode == "RGB" and colour.size == (26, 26)
    path = tmp_path / "drawing.png"
    _page(60, (10, 10, 30, 20)).save(path)
    assert np.array_equal(load_image(path, 16, 1, "ink"), prepare_image(ink_crop(_page(60, (10, 10, 30, 20))), 16, 1))
    assert np.array_equal(load_images([path], 16, 3, "ink")[0][0], load_image(path, 16, 3, "ink"))
    with pytest.raises(ConfigError, match="crop must be one of"):
        load_image(path, 16, 1, "tight")
