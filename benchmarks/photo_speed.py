"""Speed of the natural-image model: trunk throughput (torch eager vs onnxruntime), FLOPs against this CPU's
measured peak, and the app's operations on real JPEG photos, each on a quiet and on a busy machine.

    python benchmarks/photo_speed.py --caltech ../shared/data/caltech-101 [--checkpoint models/X.pt]

"Busy" runs a second CPU-heavy process (a NumPy matrix-multiply loop on every core) during the measurement,
as on a desktop where something else is compiling or rendering. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from anil_engine.checkpoint import load_checkpoint
from anil_engine.classifier import FewShotClassifier
from anil_engine.config import ModelConfig
from anil_engine.datasets.caltech import split_classes
from anil_engine.export import cached_trunk_onnx_bytes
from anil_engine.models import AnilModel, model_from_checkpoint
from anil_engine.runtime import cpu_session

REPO = Path(__file__).resolve().parent.parent


def _burn(stop) -> None:  # multiprocessing.Event
    a = np.random.default_rng(0).random((512, 512))
    while not stop.is_set():
        a = a @ a
        a /= np.abs(a).max()


class Busy:
    """A second process keeping the CPU busy while the block runs (or nothing when `on` is False)."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self) -> Busy:
        if self.on:
            self.stop = multiprocessing.Event()
            self.proc = multiprocessing.Process(target=_burn, args=(self.stop,), daemon=True)
            self.proc.start()
            time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.on:
            self.stop.set()
            self.proc.join(5)


def rate(fn, n_items: int, min_seconds: float = 3.0) -> float:
    fn()  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        fn()
        count += n_items
    return count / (time.perf_counter() - start)


def peak_gflops() -> float:
    """This CPU's measured float32 matrix-multiply rate (torch, all threads): the practical peak."""
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    seconds = 1 / rate(lambda: a @ b, 1, 2.0)
    return 2 * 2048**3 / seconds / 1e9


def gflops_per_image(model: AnilModel) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    size = model.preprocessing.size
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.forward_features(torch.rand(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def trunk_rows(ckpt_path: Path, sizes: list[int], busy: bool) -> list[str]:
    ckpt = load_checkpoint(ckpt_path)
    base = model_from_checkpoint(ckpt, str(ckpt_path))
    rows = []
    for size in sizes:
        c = base.config
        pre = base.backbone.preprocessing(size, base.preprocessing)
        model = AnilModel(ModelConfig(c.hidden_size, c.layers, c.channels, size, c.ways, c.backbone), pre).eval()
        model.load_state_dict(base.state_dict())
        session = cpu_session(cached_trunk_onnx_bytes(model))
        flops = gflops_per_image(model)
        for batch in (1, 64):
            x = torch.rand(batch, 3, size, size)
            with Busy(busy), torch.inference_mode():
                t = rate(lambda x=x, m=model: m.forward_features(x), batch)
                o = rate(lambda x=x, s=session: s.run(None, {"images": x.numpy()}), batch)
            rows.append(
                f"| {size} | {batch} | {'busy' if busy else 'quiet'} | {flops:.2f} | {t:,.0f} | {o:,.0f} | "
                f"{o / t:.1f}x | {o * flops:.0f} |"
            )
    return rows


def photos(caltech: Path, out: Path, classes: int, per_class: int, offset: int = 0) -> list[tuple[str, list[Path]]]:
    """Real Caltech-101 test-class JPEGs written as a folder of class folders."""
    result = []
    with zipfile.ZipFile(caltech / "101_ObjectCategories.zip") as z:
        for c in split_classes("test")[:classes]:
            names = sorted(n for n in z.namelist() if n.startswith(f"101_ObjectCategories/{c}/") and n.endswith(".jpg"))
            (out / c).mkdir(parents=True, exist_ok=True)
            paths = []
            for n in names[offset : offset + per_class]:
                p = out / c / Path(n).name
                p.write_bytes(z.read(n))
                paths.append(p)
            result.append((c, paths))
    return result


def app_rows(ckpt_path: Path, caltech: Path, busy: bool) -> list[str]:
    ckpt = load_checkpoint(ckpt_path)
    model = model_from_checkpoint(ckpt, str(ckpt_path))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        support = photos(caltech, Path(tmp) / "support", 5, 5)
        extra = photos(caltech, Path(tmp) / "extra", 1, 1, offset=5)[0][1][0]
        query = [p for _, ps in photos(caltech, Path(tmp) / "query", 5, 20, offset=6) for p in ps]
        for backend in ("torch", "onnxruntime"):
            clf = FewShotClassifier.for_checkpoint(ckpt, model, "cpu", backend)
            with Busy(busy):
                cold = []
                for _ in range(3):
                    clf.clear_cache()
                    start = time.perf_counter()
                    result = clf.adapt(support)
                    cold.append(time.perf_counter() - start)
                edited = [(n, [*ps, extra] if i == 0 else ps) for i, (n, ps) in enumerate(support)]
                clf.adapt(edited)  # the added image's features once
                re_adapt = []
                for _ in range(5):
                    start = time.perf_counter()
                    clf.adapt(edited)
                    re_adapt.append(time.perf_counter() - start)
                head_ms = 1000 * result.head_seconds
                clf.clear_cache()
                start = time.perf_counter()
                preds, _ = clf.predict(query)
                per_second = len(preds) / (time.perf_counter() - start)
            rows.append(
                f"| {backend} | {'busy' if busy else 'quiet'} | {1000 * statistics.median(cold):.0f} | "
                f"{1000 * statistics.median(re_adapt):.1f} | {head_ms:.1f} | {per_second:.0f} |"
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(REPO / "models" / "caltech101-effnet-anil.pt"))
    parser.add_argument("--caltech", required=True, help="folder holding 101_ObjectCategories.zip")
    parser.add_argument("--sizes", default="224,160", help="input sizes (224,160)")
    args = parser.parse_args()
    path, caltech = Path(args.checkpoint), Path(args.caltech)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; measured peak {peak_gflops():.0f} GFLOP/s")
    print()
    print("| input | batch | machine | GFLOP/image | torch eager (img/s) | onnxruntime (img/s) | ratio | "
          "onnxruntime GFLOP/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for busy in (False, True):
        print("\n".join(trunk_rows(path, sizes, busy)))
    print()
    print("| trunk engine | machine | 5x5 JPEG folder -> adapted, cold (ms) | re-adapt after 1 added image (ms) "
          "| head steps (ms) | classify incl. JPEG decoding (photos/s) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for busy in (False, True):
        print("\n".join(app_rows(path, caltech, busy)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
