"""Does the app stay responsive while it classifies many images? The real window, driven by real drops.

    python benchmarks/app_responsiveness.py --caltech ../shared/data/caltech-101 [--images 1000]
    python benchmarks/app_responsiveness.py --support SUPPORT_DIR --queries IMAGES_DIR
    python benchmarks/app_responsiveness.py --support-drop ../shared/data/caltech-101/101_ObjectCategories.zip

With `--caltech`, the support set is 5 photos of each of the first 3 classes of the zip and the queries are
every 8th photo (up to `--images`), extracted to a temporary folder. Prints the time from the drop to the
results, and the longest time the Qt event loop was blocked meanwhile (it is pumped every 10 ms; a gap
over ~100 ms is a visible freeze). With `--support-drop` (a folder of class folders, or a zip of one), the
same for dropping it on the support set until the head is adapted (a zip is unpacked into a temporary
folder first). Runs offscreen unless QT_QPA_PLATFORM is set (e.g. xcb under Xvfb).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path


def extract_caltech(zip_path: Path, n_images: int, work: Path) -> tuple[Path, Path]:
    with zipfile.ZipFile(zip_path) as z:
        names = sorted(n for n in z.namelist() if n.lower().endswith(".jpg"))
        classes = sorted({Path(n).parent.name for n in names})[:3]
        support, queries = work / "support", work / "queries"
        for c in classes:
            for n in [n for n in names if Path(n).parent.name == c][:5]:
                (support / c).mkdir(parents=True, exist_ok=True)
                (support / c / Path(n).name).write_bytes(z.read(n))
        for i, n in enumerate(names[::8][:n_images]):
            (queries / f"{i:05d}_{Path(n).name}").parent.mkdir(parents=True, exist_ok=True)
            (queries / f"{i:05d}_{Path(n).name}").write_bytes(z.read(n))
    return support, queries


def pump_until(app, window, start, results: list) -> tuple[float, list[float], bool]:
    """Call `start`, then pump the event loop every 10 ms until `results` has an item and no job runs.

    Returns (seconds, the duration of every pump, whether the status-bar progress was shown).
    """
    begin, gaps, progress_seen = time.perf_counter(), [], False
    start()
    while not results or window.jobs:
        t = time.perf_counter()
        app.processEvents()
        gaps.append(time.perf_counter() - t)
        progress_seen = progress_seen or not window.job_progress.isHidden()
        time.sleep(0.01)
        if time.perf_counter() - begin > 1800:
            raise TimeoutError("the job did not finish in 30 minutes")
    return time.perf_counter() - begin, gaps, progress_seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caltech", default=None, help="folder holding 101_ObjectCategories.zip")
    parser.add_argument("--images", type=int, default=1000, help="query photos taken from the zip (1000)")
    parser.add_argument("--support", default=None, help="support folder of class folders (instead of --caltech)")
    parser.add_argument("--queries", default=None, help="folder of images to classify (instead of --caltech)")
    parser.add_argument("--support-drop", default=None, help="only time dropping this folder or zip on the support set")
    parser.add_argument("--checkpoint", default=None, help="model (default: the app's default)")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtWidgets import QApplication

    from app.testing import benchmark_window, send_drop

    work = Path(tempfile.mkdtemp(prefix="anil-responsiveness-"))
    os.environ["XDG_DATA_HOME"] = str(work / "data")  # the app's autosaves stay in the temporary folder
    try:
        if args.support_drop:
            support, queries = Path(args.support_drop), None
        elif args.caltech:
            support, queries = extract_caltech(Path(args.caltech) / "101_ObjectCategories.zip", args.images, work)
        elif args.support and args.queries:
            support, queries = Path(args.support), Path(args.queries)
        else:
            parser.error("give --caltech, --support and --queries, or --support-drop")
        app = QApplication(sys.argv)
        window = benchmark_window(work, args.checkpoint)
        window.data_dir = work  # a dropped zip is unpacked here, afresh
        adapted, classified = [], []
        window.adapted.connect(adapted.append)
        window.classified.connect(classified.append)
        print(f"model: {Path(window.checkpoint_path).name}; Qt platform: {app.platformName()}")
        drop_support = lambda: send_drop(window.support_view, [support], wait=False)  # noqa: E731
        seconds, gaps, progress_seen = pump_until(app, window, drop_support, adapted)
        n_images = sum(len(c.paths) for c in window.support.classes)
        if queries is None:
            print(f"support drop: {len(window.support.classes)} classes, {n_images} images adapted in {seconds:.1f} s")
        else:
            seconds, gaps, progress_seen = pump_until(
                app, window, lambda: send_drop(window.classify_panel, [queries], wait=False), classified
            )
            n = len(classified[0])
            print(f"classified {n} images in {seconds:.1f} s ({n / seconds:.0f} images/s)")
        print(f"longest event-loop block meanwhile: {1000 * max(gaps):.0f} ms (over {len(gaps)} pumps)")
        print(f"progress bar shown: {'yes' if progress_seen else 'no'}")
        window.close()
        window.settings.sync()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
