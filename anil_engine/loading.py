"""Loading a checkpoint for interactive use (the app): the classifier, and the words that describe it.

Qt-free, so the app's worker and the tests call the same code.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anil_engine.errors import AnilError

RESEARCH_HEADING = "## Research detail"


@dataclass
class LoadedModel:
    """A checkpoint made ready to adapt: its classifier, its metadata (no weights) and notes for the user."""

    path: str
    classifier: Any  # FewShotClassifier (typed loosely: importing it pulls in torch)
    info: dict[str, Any]  # the checkpoint without its state dict
    sha256: str
    cuda: bool
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def grayscale(self) -> bool:
        return int(self.info["preprocessing"]["channels"]) == 1


def loading_steps(
    path: str, device: str, fast_lr: float | None = None, steps: int | None = None
) -> Generator[str, None, LoadedModel]:
    """Load `path` and build its classifier; on the CPU the trunk runs in onnxruntime, else (or failing that) torch.

    Yields a line for the user before work that takes long (building the model's onnxruntime graph, once per
    model and machine: about half a minute for a photo model on 2 cores); returns the `LoadedModel`.

    Raises:
        CheckpointError: not a readable ANIL Studio checkpoint.
    """
    import torch

    from anil_engine.checkpoint import file_sha256, load_checkpoint
    from anil_engine.classifier import FewShotClassifier
    from anil_engine.export import trunk_graph_cached
    from anil_engine.models import model_from_checkpoint

    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path)
    notes = []
    backend = "onnxruntime" if device == "cpu" else "torch"
    if backend == "onnxruntime" and not trunk_graph_cached(model):
        yield (f"Loading {Path(path).name}: preparing it for fast use on this CPU (once per model on this "
               "computer; up to a minute)…")  # fmt: skip
    try:
        classifier = FewShotClassifier.for_checkpoint(ckpt, model, device, backend, fast_lr, steps)
    except AnilError as exc:  # the verified ONNX trunk could not be built: torch is always available
        notes.append(f"the fast CPU runtime (onnxruntime) could not run this model ({exc}); using PyTorch")
        classifier = FewShotClassifier.for_checkpoint(ckpt, model, device, "torch", fast_lr, steps)
    info = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return LoadedModel(str(path), classifier, info, file_sha256(path), torch.cuda.is_available(), notes)


@dataclass(frozen=True)
class ModelCard:
    """A model card split for the screen: plain words first, research detail behind a toggle."""

    plain: str  # Markdown
    detail: str  # Markdown; "" when there is none


def model_card(path: str, info: dict[str, Any]) -> ModelCard:
    """The bundled card file beside the checkpoint when there is one, else a summary in plain words."""
    card = Path(path).with_suffix(".md")
    try:
        text = card.read_text(encoding="utf-8") if card.is_file() else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    if text:
        plain, _, detail = text.partition(RESEARCH_HEADING)
        return ModelCard(plain.strip(), (RESEARCH_HEADING + detail).strip() if detail else "")
    return _summary_card(path, info)


def _summary_card(path: str, info: dict[str, Any]) -> ModelCard:
    pre, task, ds = info["preprocessing"], info.get("trained_task", {}), info.get("dataset", {})
    kind = "colour photos" if int(pre["channels"]) == 3 else "grayscale pictures (e.g. handwritten characters)"
    plain = [
        f"# {Path(path).name}",
        "",
        f"**What it is for.** Telling apart categories of {kind}, like those of its training data "
        f"({ds.get('name', 'unknown data set')}).",
        "",
        f"**How many images to give it.** It was trained on tasks of {task.get('ways', '?')} categories with "
        f"{task.get('shots', '?')} image(s) each; give at least that many per category.",
    ]
    results = [  # the plain protocol with the model's own head (not a baseline, not within one alphabet)
        r
        for r in info.get("test_results", [])
        if not r.get("within") and r.get("method", "head") == "head" and r.get("trunk", "trained") == "trained"
    ]
    if results:
        best = max(results, key=lambda r: (r["shots"], -r["ways"]))
        plain += [
            "",
            f"**Expected accuracy.** On its test data, {best['accuracy']:.0f} % right with {best['ways']} "
            f"categories of {best['shots']} image(s) each.",
        ]
    detail = [
        RESEARCH_HEADING,
        "",
        f"- Data set: {ds.get('name', '?')} ({ds.get('split_scheme', '')})",
        f"- Input: {pre['channels']} x {pre['size']} x {pre['size']}",
        f"- Trained: {task.get('ways', '?')}-way {task.get('shots', '?')}-shot",
        f"- Head adaptation: {info['adaptation_steps']} steps at fast_lr {info['fast_lr']}",
    ]
    for r in results:
        detail.append(f"- Test {r['ways']}-way {r['shots']}-shot ({r['bn']}): {r['accuracy']:.2f} ± {r['ci95']:.2f} %")
    return ModelCard("\n".join(plain), "\n".join(detail))


def status_line(loaded: LoadedModel, device: str) -> str:
    """One plain sentence for the model panel: what the model looks at and where it runs."""
    pre = loaded.info["preprocessing"]
    kind = "colour photos" if int(pre["channels"]) == 3 else "grayscale drawings"
    where = "the graphics card (CUDA)" if device.startswith("cuda") else "the CPU"
    views = int(pre.get("views", 1))
    how = f", each seen {views} ways (slightly shifted, turned and resized)" if views > 1 else ""
    return f"Ready: {loaded.name} looks at {kind} ({pre['size']} x {pre['size']} pixels){how}, on {where}."
