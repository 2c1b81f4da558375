"""Walk the real app through the main flow on real photos and save screenshots.

Run under a real X server (see scripts/screenshots.sh, which starts Xvfb):

    python scripts/screenshots.py --caltech ../shared/data/caltech-101 --out docs/screenshots

Uses five Caltech-101 *test* classes (never seen in training): 5 support images
per class, 3 query images per class, the rest as a labelled evaluation folder.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path


def extract_classes(caltech: Path, classes: list[str], work: Path) -> dict[str, dict[str, list[Path]]]:
    archive = caltech / "101_ObjectCategories.zip"
    out: dict[str, dict[str, list[Path]]] = {"support": {}, "query": {}, "labelled": {}}
    with zipfile.ZipFile(archive) as z:
        for c in classes:
            names = sorted(n for n in z.namelist() if n.startswith(f"101_ObjectCategories/{c}/") and n.endswith(".jpg"))
            parts = {"support": names[:5], "query": names[5:8], "labelled": names[8:28]}
            for part, members in parts.items():
                folder = work / part / c
                folder.mkdir(parents=True, exist_ok=True)
                out[part][c] = []
                for m in members:
                    target = folder / Path(m).name
                    target.write_bytes(z.read(m))
                    out[part][c].append(target)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caltech", required=True, help="folder with 101_ObjectCategories.zip")
    parser.add_argument("--classes", default="", help="comma-separated Caltech-101 test classes")
    parser.add_argument("--checkpoint", default=None, help="model (default: the app's default)")
    parser.add_argument("--out", default="docs/screenshots")
    args = parser.parse_args()

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from anil_engine.datasets.caltech import split_classes
    from app.testing import send_drop, wait_until
    from app.window import MainWindow

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    classes = args.classes.split(",") if args.classes else split_classes("test")[:5]
    work = Path(tempfile.mkdtemp(prefix="anil-shots-"))
    parts = extract_classes(Path(args.caltech), classes, work)
    app = QApplication(sys.argv)
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, checkpoint=args.checkpoint)
    window.errors.show_dialogs = False
    window.errors.reported.connect(lambda level, text: print(f"[{level}] {text}"))
    window.confirm_close = lambda: True
    window.resize(1500, 950)
    window.show()
    wait_until(lambda: window.classifier is not None)
    wait_until(lambda: False if window.jobs else True)

    def shot(name: str, widget=None) -> None:  # noqa: ANN001
        for _ in range(20):
            app.processEvents()
        (widget or window).grab().save(str(out / name))
        print("saved", out / name)

    shot("1-start.png")
    adapted = []
    window.adapted.connect(adapted.append)
    send_drop(window.support_view, [work / "support"])
    wait_until(lambda: bool(adapted))
    shot("2-support-adapted.png")
    classified = []
    window.classified.connect(classified.append)
    send_drop(window.query_area, [p for ps in parts["query"].values() for p in ps])
    wait_until(lambda: bool(classified))
    shot("3-classified.png")
    evaluated = []
    window.evaluated.connect(evaluated.append)
    send_drop(window.eval_area, [work / "labelled"])
    window.tabs.setCurrentWidget(window.eval_area)
    wait_until(lambda: bool(evaluated))
    shot("4-evaluate-labelled-folder.png")
    correct = sum(p.label == Path(p.path).parent.name for p in classified[0])
    print(f"query top-1: {correct}/{len(classified[0])}; labelled folder accuracy {evaluated[0].accuracy:.1f} %")
    window.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
