"""A folder of bad inputs for walking the app (scripts/walk_bad_inputs.sh) or the CLI by hand.

    python scripts/make_bad_corpus.py OUT_DIR

OUT_DIR/support: two good classes (5 generated photos each), an empty class folder, a text file.
OUT_DIR/queries: 2 good photos and one of each kind of bad file: a non-UTF-8 name (Latin-1 bytes), a
truncated JPEG, random bytes named .png, an empty .jpg, a text file, a dangling link, a link loop, a PNG
whose header claims 20000 x 20000 pixels (over the pixel limit), a FIFO. Prints each bad file with the
words its message should contain.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def photo(path: Path, colour: tuple[int, int, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (96, 96, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path)
    return path


def over_limit_png(path: Path, side: int = 20000) -> Path:
    """A tiny file whose header claims side x side pixels: refused before anything is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))  # fmt: skip
    return path


def main(out: Path) -> dict[str, str]:
    support, queries = out / "support", out / "queries"
    for c, colour in (("red_things", (200, 40, 40)), ("blue_things", (40, 40, 200))):
        for i in range(5):
            photo(support / c / f"{i}.png", colour, i)
    (support / "empty_class").mkdir(parents=True, exist_ok=True)
    (support / "notes.txt").write_text("not an image")
    photo(queries / "good_red.png", (190, 50, 50), 10)
    photo(queries / "good_blue.png", (50, 50, 190), 11)
    expected = {}
    latin = queries / os.fsdecode(b"caf\xe9.png")
    photo(latin, (200, 40, 40), 12)  # readable: it must be classified, its name shown as it is
    truncated = queries / "truncated.jpg"
    Image.new("RGB", (64, 64), (9, 9, 200)).save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:300])
    expected["truncated.jpg"] = "corrupt or truncated"
    (queries / "garbage.png").write_bytes(np.random.default_rng(0).bytes(200))
    expected["garbage.png"] = "not an image"
    (queries / "empty.jpg").write_bytes(b"")
    expected["empty.jpg"] = "empty.jpg"
    (queries / "readme.txt").write_text("x")
    expected["readme.txt"] = "readme.txt"
    for link, target in (("dead.png", queries / "nowhere.png"), ("loop", queries)):
        if not (queries / link).is_symlink():
            (queries / link).symlink_to(target)
    expected["dead.png"] = "dead.png"
    expected["loop"] = "loop"
    over_limit_png(queries / "huge.png")
    expected["huge.png"] = "pixels"
    if not (queries / "pipe").exists():
        os.mkfifo(queries / "pipe")
    expected["pipe"] = "pipe"
    expected["empty_class"] = "empty_class"
    expected["notes.txt"] = "notes.txt"
    return expected


if __name__ == "__main__":
    for name, words in main(Path(sys.argv[1])).items():
        print(f"{name}\t{words}")
