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


def extract_omniglot(omniglot: Path, n_classes: int, work: Path) -> dict[str, dict[str, list[Path]]]:
    """Evaluation-set characters of the `lake` test split as PNG files: 5 support, 3 query, 12 labelled."""
    import numpy as np
    from PIL import Image

    from anil_engine.datasets.omniglot import wanted_characters

    images = np.load(omniglot / "images_evaluation.npz")["images"]
    import csv

    from anil_engine.datasets.omniglot import SPLITS_DIR

    with open(SPLITS_DIR / "omniglot_characters.tsv", newline="") as f:
        index = {
            (r["alphabet"], r["character"]): int(r["array_index"])
            for r in csv.DictReader(f, delimiter="\t")
            if r["set"] == "evaluation"
        }
    chosen = wanted_characters("lake", "test")[:: 659 // n_classes][:n_classes]
    out: dict[str, dict[str, list[Path]]] = {"support": {}, "query": {}, "labelled": {}}
    for _set, alphabet, character in chosen:
        name = f"{alphabet}-{character[-2:]}"
        drawings = images[index[(alphabet, character)]]
        for part, sl in (("support", slice(0, 5)), ("query", slice(5, 8)), ("labelled", slice(8, 20))):
            folder = work / part / name
            folder.mkdir(parents=True, exist_ok=True)
            out[part][name] = []
            for d, drawing in enumerate(drawings[sl]):
                target = folder / f"{name}_{d:02d}.png"
                Image.fromarray(np.where(drawing, 255, 0).astype(np.uint8)).save(target)
                out[part][name].append(target)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caltech", default=None, help="folder with 101_ObjectCategories.zip")
    parser.add_argument("--omniglot", default=None, help="folder with images_evaluation.npz (instead of Caltech)")
    parser.add_argument("--prefix", default="", help="prefix of the screenshot file names")
    parser.add_argument("--train-demo", default="", help="Omniglot data root: also run a short meta-training")
    parser.add_argument(
        "--eval-demo",
        default="",
        help="data root of the model's data set: also evaluate it on 1,000 test episodes (5-way 1-shot) in the app",
    )
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
    work = Path(tempfile.mkdtemp(prefix="anil-shots-"))
    if args.omniglot:
        parts = extract_omniglot(Path(args.omniglot), 5, work)
    else:
        classes = args.classes.split(",") if args.classes else split_classes("test")[:5]
        parts = extract_classes(Path(args.caltech), classes, work)
    app = QApplication(sys.argv)
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, checkpoint=args.checkpoint)
    window.errors.show_dialogs = False
    window.errors.reported.connect(lambda level, text: print(f"[{level}] {text}"))
    window.session.confirm_discard = lambda: True
    window.resize(1500, 950)
    window.show()
    wait_until(lambda: window.classifier is not None)
    wait_until(lambda: False if window.jobs else True)

    def shot(name: str, widget=None) -> None:
        for _ in range(20):
            app.processEvents()
        (widget or window).grab().save(str(out / (args.prefix + name)))
        print("saved", out / (args.prefix + name))

    shot("1-start.png")
    adapted = []
    window.adapted.connect(adapted.append)
    send_drop(window.support_view, [work / "support"])
    wait_until(lambda: bool(adapted))
    shot("2-support-adapted.png")
    classified = []
    window.classified.connect(classified.append)
    send_drop(window.classify_panel, [p for ps in parts["query"].values() for p in ps])
    wait_until(lambda: bool(classified))
    shot("3-classified.png")
    evaluated = []
    window.evaluated.connect(evaluated.append)
    send_drop(window.evaluate_panel, [work / "labelled"])
    window.tabs.setCurrentWidget(window.evaluate_panel)
    wait_until(lambda: bool(evaluated))
    shot("4-evaluate-labelled-folder.png")
    correct = sum(p.label == Path(p.path).parent.name for p in classified[0])
    print(f"query top-1: {correct}/{len(classified[0])}; labelled folder accuracy {evaluated[0].accuracy:.1f} %")
    if args.train_demo:
        window.show_train_dialog()
        d = window.train_dialog
        d.dataset.setCurrentText("omniglot")
        d.data_root.setText(args.train_demo)
        for box, value in (
            (d.ways, 5),
            (d.shots, 1),
            (d.query, 1),
            (d.meta_batch, 8),
            (d.iterations, 60),
            (d.val_every, 10),
            (d.val_episodes, 50),
            (d.hidden, 32),
        ):
            box.setValue(value)
        d.device.setCurrentText("cpu")
        d.out.setText(str(work / "train-demo"))
        d.move(window.x() + 200, window.y() + 20)
        loaded = []
        window.model_loaded.connect(loaded.append)
        d.start(resume=False)
        wait_until(lambda: bool(loaded), timeout_s=900)
        shot("5-meta-train.png", d)
        d.close()
    if args.eval_demo:
        window.show_eval_dialog()
        d = window.eval_dialog
        d.data_root.setText(args.eval_demo)
        d.ways.setValue(5)
        d.shots.setValue(1)
        d.device.setCurrentText("cpu")
        d.move(window.x() + 200, window.y() + 20)
        d.run()
        wait_until(lambda: d.results.count() > 0, timeout_s=1800)
        print("evaluate on a data set:", d.results.item(0).text())
        shot("6-evaluate-data-set.png", d)
        d.close()
    window.close()
    settings.sync()  # write now: nothing is left for QSettings to write into the removed folder at exit
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
