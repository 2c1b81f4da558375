"""Trunk throughput, torch eager vs onnxruntime, and the end-to-end "support folder -> adapted classifier".

    python benchmarks/trunk_speed.py [--models models/*.pt] [--caltech ../shared/data/caltech-101]

Prints a Markdown table; both engines are measured in the same run on the same inputs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch


def images_per_second(fn, batch: np.ndarray, min_seconds: float = 2.0) -> float:
    fn(batch)  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        fn(batch)
        n += batch.shape[0]
    return n / (time.perf_counter() - start)


def trunk_table(paths: list[Path]) -> list[str]:
    import onnxruntime as ort

    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.export import export_trunk
    from anil_engine.models import model_from_checkpoint

    rows = [
        "| model | input | batch | torch eager (img/s) | onnxruntime (img/s) | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for path in paths:
        model = model_from_checkpoint(load_checkpoint(path), str(path)).eval()
        pre = model.preprocessing
        with tempfile.TemporaryDirectory() as tmp:
            export_trunk(model, Path(tmp) / "t.onnx")
            session = ort.InferenceSession(str(Path(tmp) / "t.onnx"), providers=["CPUExecutionProvider"])
        for batch in (1, 64):
            x = np.random.default_rng(0).random((batch, pre.channels, pre.size, pre.size)).astype(np.float32)

            def run_torch(a: np.ndarray, model=model) -> None:
                with torch.inference_mode():
                    model.test_features(torch.from_numpy(a))  # with the model's test-time views, as exported

            t = images_per_second(run_torch, x)
            o = images_per_second(lambda a, s=session: s.run(None, {"images": a}), x)
            views = f", {pre.views} views" if pre.views > 1 else ""
            rows.append(
                f"| {path.stem} | {pre.channels}x{pre.size}x{pre.size}{views} | {batch} | {t:,.0f} | {o:,.0f} "
                f"| {o / t:.1f}x |"
            )
    return rows


def end_to_end(path: Path, caltech: Path | None) -> list[str]:
    """Support folder of 5 classes x 5 images -> adapted classifier ready, torch vs onnxruntime trunk."""
    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.classifier import FewShotClassifier
    from anil_engine.models import model_from_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        support = Path(tmp)
        if caltech is not None:
            with zipfile.ZipFile(caltech / "101_ObjectCategories.zip") as z:
                from anil_engine.datasets.caltech import split_classes

                for c in split_classes("test")[:5]:
                    names = sorted(
                        n for n in z.namelist() if n.startswith(f"101_ObjectCategories/{c}/") and n.endswith(".jpg")
                    )[:5]
                    (support / c).mkdir()
                    for n in names:
                        (support / c / Path(n).name).write_bytes(z.read(n))
        else:
            from PIL import Image

            rng = np.random.default_rng(0)
            for c in range(5):
                (support / f"c{c}").mkdir()
                for i in range(5):
                    Image.fromarray(rng.integers(0, 256, (240, 300, 3), dtype=np.uint8)).save(support / f"c{c}/{i}.jpg")
        classes = [(d.name, sorted(d.iterdir())) for d in sorted(support.iterdir())]
        ckpt = load_checkpoint(path)
        rows = [
            "| model | trunk engine | support 5x5 -> adapted (ms, median of 5, cold feature cache) |",
            "|---|---|---|",
        ]
        for backend in ("torch", "onnxruntime"):
            times = []
            clf = FewShotClassifier(
                model_from_checkpoint(ckpt, str(path)), ckpt["fast_lr"], ckpt["adaptation_steps"], backend=backend
            )
            for _ in range(5):
                clf.clear_cache()
                start = time.perf_counter()
                clf.adapt(classes)
                times.append(1000 * (time.perf_counter() - start))
            rows.append(f"| {path.stem} | {backend} | {statistics.median(times):.0f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="checkpoints (default: models/*.pt)")
    parser.add_argument("--caltech", default=None, help="Caltech-101 folder for real support photos")
    args = parser.parse_args()
    from anil_engine.registry import bundled_models

    paths = [Path(p) for p in args.models] if args.models else [m.path for m in bundled_models()]
    if not paths:
        print("no checkpoints given and none in models/", file=sys.stderr)
        return 2
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n".join(trunk_table(paths)))
    print()
    for p in paths:
        print("\n".join(end_to_end(p, Path(args.caltech) if args.caltech else None)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
