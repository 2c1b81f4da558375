"""Animated-PNG videos that stand in for a camera pointed at objects: one per Caltech-101 class.

    python scripts/make_camera_videos.py ../shared/data/caltech-101/101_ObjectCategories.zip OUT_DIR [CLASS ...]

Each video shows photos 6-15 of its class (the support photos of the walk are never in it), 640 x 480,
each photo held for half a second, as a hand-held camera moving between similar views would. Qt Multimedia
plays animated PNG (and GIF, MP4, WebM) as video; the app's “Video file…” camera choice takes any of them.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

from PIL import Image

DEFAULT = ("airplanes", "ibis", "cougar_face")


def main(zip_path: str, out: str, classes: list[str]) -> None:
    Path(out).mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as z:
        names = sorted(n for n in z.namelist() if n.lower().endswith(".jpg"))
        for c in classes:
            mine = [n for n in names if Path(n).parent.name == c][5:15]
            frames = [Image.open(io.BytesIO(z.read(n))).convert("RGB").resize((640, 480)) for n in mine]
            frames[0].save(Path(out) / f"{c}.png", save_all=True, append_images=frames[1:], duration=500, loop=0)
            print(Path(out) / f"{c}.png", len(frames), "frames")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:] or list(DEFAULT))
