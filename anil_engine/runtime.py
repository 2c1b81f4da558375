"""Torch-free inference of an exported classifier: onnxruntime, NumPy and Pillow only.

from anil_engine.runtime import OnnxClassifier
clf = OnnxClassifier("classifier.onnx")
results, skipped = clf.predict(["photo.jpg"])
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anil_engine.config import CROPS
from anil_engine.errors import DataError, ExportError
from anil_engine.images import load_image
from anil_engine.listing import expand_inputs

BATCH = 64


def cpu_session(model: bytes | str | Path) -> Any:
    """The one way ANIL Studio opens an ONNX graph: onnxruntime on the CPU, a thread pool the size of torch's.

    onnxruntime's and torch's intra-op pools each default to one thread per core; both alive in one
    process (the app, evaluation) they spin against each other on a busy 2-core machine. Here
    onnxruntime gets `ANIL_STUDIO_THREADS` threads (default: the CPU count), one inter-op thread and
    sequential execution, and does not spin-wait after a run (so a torch call that follows is not starved).
    """
    import os

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("ANIL_STUDIO_THREADS", os.cpu_count() or 1))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Prediction:
    """One classified image (the app, the CLI and exported classifiers all give these)."""

    path: str
    label: str
    confidence: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
        }


class OnnxClassifier:
    """An exported ANIL Studio classifier (`anil-studio adapt` or the app's Export)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"{self.path}: no such model file")
        try:
            self.session = cpu_session(self.path)
            meta = self.session.get_modelmeta().custom_metadata_map  # damaged bytes here fail to decode
        except Exception as exc:  # onnxruntime raises its own types
            raise ExportError(f"{self.path}: not a loadable ONNX model ({exc})") from exc
        kind = meta.get("anil_studio.kind")
        if kind == "trunk":
            raise ExportError(
                f"{self.path}: a frozen trunk export (it gives features, not classes); export the adapted "
                "classifier with `anil-studio adapt` or the app's File ▸ Export adapted classifier"
            )
        if kind != "classifier":
            raise ExportError(
                f"{self.path}: not an ANIL Studio classifier export (no anil_studio metadata); create one with "
                "`anil-studio adapt` or the app's File ▸ Export adapted classifier"
            )
        self.class_names, self.size, self.channels = self._read_metadata(meta)
        self.crop = meta.get("anil_studio.crop", "none")  # exports before crop have none
        if self.crop not in CROPS:
            raise ExportError(
                f"{self.path}: it frames images by {self.crop!r}, which this ANIL Studio does not know; update "
                "ANIL Studio or export the classifier again"
            )

    def _read_metadata(self, meta: dict[str, str]) -> tuple[list[str], int, int]:
        """Class names and input shape from the metadata, checked against the graph itself."""
        try:
            names = json.loads(meta["anil_studio.class_names"])
            size, channels = int(meta["anil_studio.input_size"]), int(meta["anil_studio.channels"])
            if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
                raise ValueError("class names are not a list of names")
        except (KeyError, ValueError, TypeError) as exc:
            raise ExportError(
                f"{self.path}: its ANIL Studio metadata is incomplete or damaged ({exc}); export the classifier again"
            ) from exc
        shape = self.session.get_inputs()[0].shape  # (batch, channels, size, size); batch is symbolic
        outputs = self.session.get_outputs()[0].shape
        if list(shape[1:]) != [channels, size, size] or (isinstance(outputs[-1], int) and outputs[-1] != len(names)):
            raise ExportError(
                f"{self.path}: its metadata ({len(names)} classes, {channels} x {size} x {size} input) disagrees "
                f"with the graph (input {shape}, output {outputs}); export the classifier again"
            )
        return names, size, channels

    def predict(self, paths: list[str | Path]) -> tuple[list[Prediction], list[str]]:
        """Classify image files; unreadable ones are skipped with a message naming them."""
        listing = expand_inputs([Path(p) for p in paths])
        arrays, ok, skipped = [], [], list(listing.messages)
        for p in listing.images:
            try:
                arrays.append(load_image(p, self.size, self.channels, self.crop))
                ok.append(p)
            except DataError as exc:
                skipped.append(str(exc))
        out = []
        for i in range(0, len(ok), BATCH):
            x = np.stack(arrays[i : i + BATCH]).astype(np.float32) / 255.0
            probs = self.session.run(None, {"images": x})[0]
            for p, row in zip(ok[i : i + BATCH], probs, strict=True):
                best = int(row.argmax())
                out.append(
                    Prediction(
                        str(p),
                        self.class_names[best],
                        float(row[best]),
                        {n: float(v) for n, v in zip(self.class_names, row, strict=True)},
                    )
                )
        return out, skipped
