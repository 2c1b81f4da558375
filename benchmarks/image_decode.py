"""Reading a big JPEG for the model: `load_image` (reduced-scale decode) against a full decode, same run.

    python benchmarks/image_decode.py [--width 4000 --height 3000] [--size 84] [--repeats 5] [--photo FILE.jpg]

Without `--photo`, a synthetic photo-like JPEG (smooth colour fields, quality 90) is written to a temporary
folder. Prints the median seconds of each path, the speed-up and the largest pixel difference.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from anil_engine.images import load_image, prepare_image


def full_decode(path: Path, size: int, channels: int) -> np.ndarray:
    """The reference: decode every pixel, then the same conversion and resize as `load_image`."""
    with Image.open(path) as image:
        image.load()
        return prepare_image(image, size, channels)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (file cache)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default=None, help="a JPEG to read (default: a synthetic one)")
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--size", type=int, default=84, help="model input size (84)")
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.photo) if args.photo else Path(tmp) / "photo.jpg"
        if not args.photo:
            rng = np.random.default_rng(0)
            fields = rng.integers(0, 255, (args.height // 8, args.width // 8, 3), dtype=np.uint8)
            Image.fromarray(fields).resize((args.width, args.height), Image.Resampling.BICUBIC).save(path, quality=90)
        with Image.open(path) as image:
            shape = f"{image.size[0]}x{image.size[1]} {image.format}"
        full = median_seconds(lambda: full_decode(path, args.size, args.channels), args.repeats)
        ours = median_seconds(lambda: load_image(path, args.size, args.channels), args.repeats)
        diff = np.abs(
            load_image(path, args.size, args.channels).astype(int) - full_decode(path, args.size, args.channels)
        )
    print(f"{shape} -> {args.channels}x{args.size}x{args.size}, median of {args.repeats}:")
    print("| path | seconds per image |")
    print("|---|---|")
    print(f"| full decode (reference) | {full:.4f} |")
    print(f"| load_image (reduced-scale decode) | {ours:.4f} |")
    print(f"speed-up {full / ours:.1f}x; largest pixel difference {diff.max()} (mean {diff.mean():.3f}) of 255")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
