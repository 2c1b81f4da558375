"""Test-time views: the warps, the averaging, and one setting shared by eval, the card, the app and the export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageDraw

from anil_engine.checkpoint import load_checkpoint, save_checkpoint
from anil_engine.classifier import FewShotClassifier
from anil_engine.config import ModelConfig, Preprocessing
from anil_engine.errors import ConfigError
from anil_engine.export import export_classifier, export_trunk
from anil_engine.meta.trainrun import make_checkpoint
from anil_engine.models import AnilModel, calibrate_batchnorm, model_from_checkpoint, model_with_views
from anil_engine.runtime import OnnxClassifier
from anil_engine.views import VIEWS, ViewAverage, view_grid

ort = pytest.importorskip("onnxruntime")


def _strokes(n: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 1, size, size): dark strokes on white paper."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        im = Image.new("L", (size, size), 255)
        d = ImageDraw.Draw(im)
        for _ in range(3):
            d.line([tuple(rng.integers(4, size - 4, 2)) for _ in range(3)], fill=0, width=2)
        out.append(np.asarray(im)[None])
    return torch.from_numpy(np.stack(out))


def _drawing_model(views: int = 1) -> AnilModel:
    torch.manual_seed(0)
    m = AnilModel(ModelConfig(8, 4, 1, 28, 3), Preprocessing(28, 1, (1.0,), (1.0,), views=views))
    calibrate_batchnorm(m, torch.rand(64, 1, 28, 28))
    return m.eval()


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_is_torchvision_s_affine_warp_with_white_paper(view):
    images = _strokes(8)
    angle, shift, scale = view
    expected = TF.affine(images, angle=angle, translate=list(shift), scale=scale, shear=[0.0, 0.0],
                         interpolation=TF.InterpolationMode.BILINEAR, fill=255).float() / 255  # fmt: skip
    grid = view_grid(*view, 28).unsqueeze(0).expand(len(images), 28, 28, 2)
    got = 1 - F.grid_sample(1 - images.float() / 255, grid, mode="bilinear", align_corners=False)
    # torchvision rounds to uint8 (1/255 apart at most); at the border it blends the fill differently.
    assert (got - expected)[..., 2:-2, 2:-2].abs().max() <= 1 / 255 + 1e-6
    if view == VIEWS[0]:
        assert torch.allclose(got, images.float() / 255, atol=1e-5)
    # What comes in from outside the image is paper: a blank page stays blank in every view.
    blank = torch.ones(1, 1, 28, 28)
    assert torch.allclose(1 - F.grid_sample(1 - blank, grid[:1], align_corners=False), blank)


def test_the_features_are_the_mean_of_the_trunk_on_each_view():
    m = _drawing_model()
    x = _strokes(5).float() / 255
    averaged = ViewAverage(m.trunk, 28, 9)(x)
    by_hand = []
    for view in VIEWS:
        grid = view_grid(*view, 28).unsqueeze(0).expand(5, 28, 28, 2)
        by_hand.append(m.trunk(1 - F.grid_sample(1 - x, grid, mode="bilinear", align_corners=False)))
    assert torch.allclose(averaged, torch.stack(by_hand).mean(0), atol=1e-5)
    assert not torch.allclose(averaged, m.trunk(x), atol=1e-3)  # the views do change the features
    # Each image on its own (inductive): a batch gives each image's features alone.
    assert torch.allclose(ViewAverage(m.trunk, 28, 9)(x[2:3]), averaged[2:3], atol=1e-5)
    assert model_with_views(m, 1).test_trunk() is m.trunk


def test_the_setting_travels_in_the_checkpoint_and_is_checked(tmp_path):
    assert "views" not in Preprocessing().to_dict()  # checkpoints without views stay byte-identical
    assert Preprocessing.from_dict(Preprocessing(views=9).to_dict()).views == 9
    with pytest.raises(ConfigError, match="views must be one of"):
        Preprocessing(views=3)
    with pytest.raises(ConfigError, match="for drawings on white paper"):
        Preprocessing(32, 3, (0.5,) * 3, (0.2,) * 3, views=9)
    m = _drawing_model()
    other = model_with_views(m, 9)
    assert other.preprocessing.views == 9 and m.preprocessing.views == 1  # the caller's model is left alone
    assert other.trunk is m.trunk
    save_checkpoint(make_checkpoint(other, None, "anil", {}, {"name": "omniglot"}), tmp_path / "m.pt")
    assert model_from_checkpoint(load_checkpoint(tmp_path / "m.pt")).preprocessing.views == 9


def test_the_app_the_export_and_predict_use_the_model_s_views(tmp_path):
    m = _drawing_model(views=9)
    files = []
    for i, image in enumerate(_strokes(6, seed=1)):
        files.append(tmp_path / f"d{i}.png")
        Image.fromarray(image[0].numpy(), "L").save(files[-1])
    clf = FewShotClassifier(m, 0.5, 20)
    clf.adapt([("a", files[:2]), ("b", files[2:4]), ("c", files[4:])])
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(f))[None].copy()) for f in files]).float() / 255
    with torch.no_grad():
        expected = m.test_features(x)
        assert not torch.allclose(expected, m.forward_features(x), atol=1e-3)
    assert torch.allclose(clf.features(files)[0], expected, atol=1e-4)  # the app's features have the views
    report = export_trunk(m, tmp_path / "trunk.onnx")
    assert report.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "trunk.onnx"))
    assert session.get_modelmeta().custom_metadata_map["anil_studio.views"] == "9"
    assert np.allclose(session.run(None, {"images": x.numpy()})[0], expected.numpy(), atol=1e-4)
    export_classifier(m, clf.weight, clf.bias, clf.class_names, tmp_path / "c.onnx")
    predictions, skipped = OnnxClassifier(tmp_path / "c.onnx").predict(files)
    assert not skipped
    for a, b in zip(clf.predict(files)[0], predictions, strict=True):
        assert a.label == b.label and a.confidence == pytest.approx(b.confidence, abs=1e-4)


def test_eval_takes_views_and_the_card_stores_them(omniglot_root, tmp_path, capsys):
    from anil_engine.cli import main

    torch.manual_seed(0)
    model = AnilModel(ModelConfig(8, 4, 1, 16, 5), Preprocessing(16, 1, (1.0,), (1.0,)))
    ckpt = make_checkpoint(model, None, "anil", {}, {"name": "omniglot", "split_scheme": "lake"})
    save_checkpoint({**ckpt, "fast_lr": 0.4, "adaptation_steps": 1}, tmp_path / "m.pt")
    ev = ["eval", "--checkpoint", str(tmp_path / "m.pt"), "--data-root", str(omniglot_root), "--ways", "5",
          "--shots", "1", "--query", "1", "--episodes", "6", "--device", "cpu", "--json"]  # fmt: skip
    results = {}
    for views in (None, 1, 9):
        assert main(ev + ([] if views is None else ["--views", str(views)])) == 0
        results[views] = json.loads(capsys.readouterr().out)
    assert results[None]["views"] == results[1]["views"] == 1 and results[9]["views"] == 9
    assert results[None]["accuracy"] == results[1]["accuracy"]
    card = tmp_path / "m.md"
    args = ["card", "--checkpoint", str(tmp_path / "m.pt"), "--data-root", str(omniglot_root), "--settings",
            "5x1", "--episodes", "6", "--query", "1", "--device", "cpu", "--views", "9", "--write", "--out",
            str(card)]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    text = card.read_text()
    assert "**Test-time views**" in text and "averaged over 9 shifted, turned and scaled copies" in text
    assert "--views 9" in text
    stored = load_checkpoint(tmp_path / "m.pt")
    assert stored["preprocessing"]["views"] == 9
    (row,) = [line for line in text.splitlines() if line.startswith("| 5-way 1-shot |")]
    assert "| inductive BN, 9 views (the app's) | transductive BN (learn2learn's), the image alone |" in text
    cells = [c.strip() for c in row.strip("|").split("|")[1:]]
    # The app's protocol with the views, then (without them, 9x cheaper per episode) transductive, and the app's
    # protocol on the image alone: what the views add, on the same episodes.
    assert len(cells) == 3
    assert cells[0] == f"{results[9]['accuracy']:.2f} ± {results[9]['ci95']:.2f}"
    assert cells[2] == f"{results[1]['accuracy']:.2f} ± {results[1]['ci95']:.2f}"
    assert main([*ev, "--bn", "transductive", "--views", "1"]) == 0
    transductive = json.loads(capsys.readouterr().out)
    assert cells[1] == f"{transductive['accuracy']:.2f} ± {transductive['ci95']:.2f}"
    assert {(r["bn"], r["views"]) for r in stored["test_results"]} == {("inductive", 9), ("transductive", 1),
                                                                        ("inductive", 1)}  # fmt: skip
    # The stored setting is eval's default now.
    assert main(ev) == 0
    assert json.loads(capsys.readouterr().out)["views"] == 9


def test_photo_models_and_odd_counts_are_refused_with_the_fix(app_checkpoint, tmp_path, capsys):
    from anil_engine.cli import main

    args = ["eval", "--checkpoint", str(app_checkpoint), "--data-root", str(tmp_path), "--views", "9"]
    with pytest.raises(SystemExit):
        main(["eval", "--checkpoint", str(app_checkpoint), "--data-root", str(tmp_path), "--views", "4"])
    assert "invalid choice: 4" in capsys.readouterr().err
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "for drawings on white paper" in err and str(app_checkpoint) in err and "use views 1" in err


def test_a_card_s_evaluations_compute_a_split_s_features_once_per_trunk_and_views(omniglot_root, monkeypatch):
    from anil_engine import evaluation
    from anil_engine.config import EvalConfig, TaskSpec
    from anil_engine.datasets import load_dataset
    from anil_engine.jobs import run_to_end

    monkeypatch.setattr(evaluation, "_REMEMBERED", {})
    calls = []
    real = evaluation.split_features

    def counted(model, images, flip=False, session=None, batch=64):
        calls.append((model.preprocessing.views, flip))
        return (yield from real(model, images, flip, session, batch))

    monkeypatch.setattr(evaluation, "split_features", counted)
    torch.manual_seed(0)
    model = AnilModel(ModelConfig(8, 4, 1, 16, 5), Preprocessing(16, 1, (1.0,), (1.0,)))
    calibrate_batchnorm(model, torch.rand(32, 1, 16, 16))
    data = load_dataset("omniglot", omniglot_root, "test", 16, 1, "vinyals")

    def accuracy(views, ways, seed=0):
        config = EvalConfig(TaskSpec(ways, 1, 1), 5, seed=seed, views=views)
        return run_to_end(evaluation.evaluate(model.eval(), data, config, 0.4, 2, features_once=True))["accuracy"]

    first = accuracy(1, 5)
    assert accuracy(1, 5) == first and accuracy(1, 3, seed=1) >= 0 and calls == [(1, False)]
    accuracy(9, 5)
    assert calls == [(1, False), (9, False)]
    # What was remembered is what a fresh computation gives.
    monkeypatch.setattr(evaluation, "_REMEMBERED", {})
    assert accuracy(1, 5) == first and len(calls) == 3
