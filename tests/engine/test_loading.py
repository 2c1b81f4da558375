"""A checkpoint loaded for the app (Qt-free): its classifier, card in plain words, status line."""

from __future__ import annotations

from pathlib import Path

from anil_engine.jobs import run_to_end
from anil_engine.loading import RESEARCH_HEADING, loading_steps, model_card, status_line
from anil_engine.registry import bundled_models


def test_a_checkpoint_loads_ready_to_adapt_with_plain_words(app_checkpoint):
    loaded = run_to_end(loading_steps(str(app_checkpoint), "cpu"))
    assert loaded.classifier.backend == "onnxruntime" and not loaded.notes
    assert "state_dict" not in loaded.info and len(loaded.sha256) == 64 and not loaded.grayscale
    line = status_line(loaded, "cpu")
    assert line == f"Ready: {Path(app_checkpoint).name} looks at colour photos (32 x 32 pixels), on the CPU."
    card = model_card(loaded.path, loaded.info)  # no card file beside it: a summary, plain words first
    assert "**What it is for.**" in card.plain and "fast_lr" not in card.plain
    assert card.detail.startswith(RESEARCH_HEADING) and "fast_lr" in card.detail


def test_loading_says_so_before_it_builds_a_model_s_fast_cpu_graph_and_only_then(app_checkpoint, tmp_path, monkeypatch):
    """The first load of a model on a machine exports its onnxruntime graph (half a minute for the photo model)."""

    def said_and_loaded(device: str) -> tuple[list[str], object]:
        lines, gen = [], loading_steps(str(app_checkpoint), device)
        while True:
            try:
                lines.append(next(gen))
            except StopIteration as stop:
                return lines, stop.value

    monkeypatch.setenv("ANIL_STUDIO_CACHE", str(tmp_path / "empty-cache"))
    lines, loaded = said_and_loaded("cpu")
    assert len(lines) == 1 and lines[0].startswith(f"Loading {Path(app_checkpoint).name}: preparing it for fast use")
    assert loaded.classifier.backend == "onnxruntime" and list((tmp_path / "empty-cache" / "onnx").glob("*.onnx"))
    lines, loaded = said_and_loaded("cpu")  # cached now: nothing to say
    assert lines == [] and loaded.classifier.backend == "onnxruntime"
    monkeypatch.setenv("ANIL_STUDIO_CACHE", str(tmp_path / "another-empty-cache"))
    assert said_and_loaded("cpu")[0]  # a new cache folder: said again
    monkeypatch.setenv("ANIL_STUDIO_CACHE", str(tmp_path / ("x" * 300)))  # cannot even be looked at (ENAMETOOLONG)
    lines, loaded = said_and_loaded("cpu")  # built in memory, as with a cache that cannot be written
    assert lines and loaded.classifier.backend == "onnxruntime"


def test_head_settings_given_override_the_checkpoint_s(app_checkpoint):
    loaded = run_to_end(loading_steps(str(app_checkpoint), "cpu", fast_lr=0.7, steps=3))
    assert (loaded.classifier.fast_lr, loaded.classifier.steps) == (0.7, 3)


def test_a_bundled_card_is_split_at_its_research_detail():
    photo = next(m for m in bundled_models() if m.name == "caltech101-effnet-anil")
    card = model_card(str(photo.path), {})
    assert card.plain.startswith("# caltech101-effnet-anil") and RESEARCH_HEADING not in card.plain
    assert card.detail.startswith(RESEARCH_HEADING) and "EfficientNet-Lite0" in card.detail
