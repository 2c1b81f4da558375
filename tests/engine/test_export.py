from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from anil_engine.checkpoint import save_checkpoint
from anil_engine.classifier import FewShotClassifier
from anil_engine.config import ModelConfig, Preprocessing
from anil_engine.errors import ExportError
from anil_engine.export import export_classifier, export_trunk
from anil_engine.meta.trainrun import make_checkpoint
from anil_engine.models import AnilModel, calibrate_batchnorm
from anil_engine.runtime import OnnxClassifier

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = AnilModel(ModelConfig(8, 4, 3, 32, 5), Preprocessing(32, 3, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)))
    calibrate_batchnorm(m, torch.rand(64, 3, 32, 32))
    return m.eval()


@pytest.fixture(scope="module")
def adapted(model, folder_root):
    clf = FewShotClassifier(model, 0.5, 20)
    clf.adapt([(f"class_{i:02d}", sorted((folder_root / f"class_{i:02d}").iterdir())[:3]) for i in range(4)])
    return clf


def test_trunk_export_matches_torch_with_dynamic_batch(tmp_path, model):
    report = export_trunk(model, tmp_path / "trunk.onnx")
    assert report.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "trunk.onnx"))
    for n in (1, 5, 64):
        x = torch.rand(n, 3, 32, 32)
        got = session.run(None, {"images": x.numpy()})[0]
        with torch.no_grad():
            assert np.abs(got - model.forward_features(x).numpy()).max() <= 1e-4


def test_classifier_export_metadata_and_batch_independence(tmp_path, model, adapted):
    export_classifier(model, adapted.weight, adapted.bias, adapted.class_names, tmp_path / "c.onnx", "abc123")
    session = ort.InferenceSession(str(tmp_path / "c.onnx"))
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["anil_studio.class_names"]) == adapted.class_names
    assert meta["anil_studio.input_size"] == "32" and meta["anil_studio.channels"] == "3"
    assert json.loads(meta["anil_studio.mean"]) == pytest.approx([0.5, 0.4, 0.3])
    assert meta["anil_studio.source_checkpoint_sha256"] == "abc123" and "Lanczos" in meta["anil_studio.preprocessing"]
    batch = np.random.default_rng(0).random((64, 3, 32, 32)).astype(np.float32)
    together = session.run(None, {"images": batch})[0]
    alone = session.run(None, {"images": batch[:1]})[0]
    assert np.abs(together[0] - alone[0]).max() <= 1e-6
    assert np.allclose(together.sum(1), 1, atol=1e-5)


def test_runtime_top1_equals_the_app_classifier(tmp_path, model, adapted, folder_root):
    export_classifier(model, adapted.weight, adapted.bias, adapted.class_names, tmp_path / "c.onnx")
    paths = [p for i in range(4) for p in sorted((folder_root / f"class_{i:02d}").iterdir())]
    app_preds, _ = adapted.predict(paths)
    rt_preds, skipped = OnnxClassifier(tmp_path / "c.onnx").predict(paths)
    assert not skipped
    assert [p.label for p in rt_preds] == [p.label for p in app_preds]
    for a, b in zip(app_preds, rt_preds, strict=True):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)


def test_predict_cli_runs_without_torch(tmp_path, model, adapted, folder_root):
    export_classifier(model, adapted.weight, adapted.bias, adapted.class_names, tmp_path / "c.onnx")
    args = ["predict", "--model", str(tmp_path / "c.onnx"), str(folder_root / "class_00"), "--json"]
    code = (
        "import sys, json\n"
        "from anil_engine.cli import main\n"
        f"rc = main({args!r})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "sys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert len(results) == 6
    assert {"path", "label", "confidence", "probabilities"} <= set(results[0])
    assert set(results[0]["probabilities"]) == set(adapted.class_names)


def test_adapt_and_export_cli(tmp_path, model, folder_root):
    ckpt = tmp_path / "m.pt"
    save_checkpoint(make_checkpoint(model, None, "anil", {}, {"name": "folder"}), ckpt)
    support = tmp_path / "support"
    for i in range(3):
        (support / f"c{i}").mkdir(parents=True)
        for p in sorted((folder_root / f"class_{i:02d}").iterdir())[:2]:
            (support / f"c{i}" / p.name).write_bytes(p.read_bytes())
    (support / "c0" / "notes.txt").write_text("x")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "anil_engine",
            "adapt",
            "--checkpoint",
            str(ckpt),
            "--support",
            str(support),
            "--out",
            str(tmp_path / "c.onnx"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["classes"] == ["c0", "c1", "c2"] and summary["max_abs_diff"] <= 1e-4
    assert "notes.txt" in out.stderr
    trunk = subprocess.run(
        [sys.executable, "-m", "anil_engine", "export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "t.onnx")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trunk.returncode == 0, trunk.stderr


def test_bad_outputs_and_inputs(tmp_path, model, adapted):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="cannot write there"):
        export_trunk(model, tmp_path / "file" / "t.onnx")
    with pytest.raises(ExportError, match="is a folder"):
        export_trunk(model, tmp_path)
    with pytest.raises(ExportError, match="2 class names"):
        export_classifier(model, adapted.weight, adapted.bias, ["a", "b"], tmp_path / "c.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ExportError, match="junk.onnx: not a loadable ONNX model"):
        OnnxClassifier(tmp_path / "junk.onnx")
    export_trunk(model, tmp_path / "trunk.onnx")
    with pytest.raises(ExportError, match="trunk.onnx: a frozen trunk export"):
        OnnxClassifier(tmp_path / "trunk.onnx")


@pytest.mark.parametrize("bn", ["inductive", "transductive"])
def test_evaluation_gives_the_same_result_with_onnxruntime_and_torch(model, folder_root, bn):
    from anil_engine.config import EvalConfig, TaskSpec
    from anil_engine.datasets import load_dataset
    from anil_engine.evaluation import evaluate
    from anil_engine.jobs import run_to_end

    data = load_dataset("folder", folder_root, "all", 32, 3)
    config = EvalConfig(TaskSpec(3, 1, 3), 15, bn, 0)
    a = run_to_end(evaluate(model, data, config, 0.5, 10, use_onnx=True))
    b = run_to_end(evaluate(model, data, config, 0.5, 10, use_onnx=False))
    assert a["trunk_engine"] == "onnxruntime" and b["trunk_engine"] == "torch"
    assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1e-9)


def test_inductive_features_computed_once_give_each_episode_s_result(model, folder_root):
    from anil_engine.config import EvalConfig, TaskSpec
    from anil_engine.datasets import load_dataset
    from anil_engine.evaluation import evaluate
    from anil_engine.jobs import run_to_end

    data = load_dataset("folder", folder_root, "all", 32, 3)  # 72 images
    config = EvalConfig(TaskSpec(3, 1, 3), 15, "inductive", 0)  # 15 episodes x 12 images: more trunk work
    once = run_to_end(evaluate(model, data, config, 0.5, 10))
    each = run_to_end(evaluate(model, data, config, 0.5, 10, features_once=False))
    assert once["features_once"] and not each["features_once"]
    assert once["accuracy"] == pytest.approx(each["accuracy"], abs=1e-9) and once["ci95"] == pytest.approx(each["ci95"])
    few = EvalConfig(TaskSpec(3, 1, 3), 5, "inductive", 0)  # 60 images: fewer than the split's
    assert not run_to_end(evaluate(model, data, few, 0.5, 10))["features_once"]
    transductive = EvalConfig(TaskSpec(3, 1, 3), 15, "transductive", 0)  # batch statistics: per episode always
    assert not run_to_end(evaluate(model, data, transductive, 0.5, 10))["features_once"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_features_computed_once_on_a_gpu_model_give_the_cpu_result(model, folder_root):
    # A GPU pre-training validates its model where it is: the features come from the model's device and the
    # head follows the features to the CPU (a CUDA-only mix-up that once stopped a pre-training at epoch 4).
    from anil_engine.config import EvalConfig, TaskSpec
    from anil_engine.datasets import load_dataset
    from anil_engine.evaluation import evaluate
    from anil_engine.jobs import run_to_end

    data = load_dataset("folder", folder_root, "all", 32, 3)
    config = EvalConfig(TaskSpec(3, 1, 3), 15, "inductive", 0)
    cpu = run_to_end(evaluate(model, data, config, 0.5, 10, use_onnx=False, features_once=True))
    gpu = run_to_end(evaluate(copy.deepcopy(model).cuda(), data, config, 0.5, 10, "cuda", features_once=True))
    assert gpu["features_once"] and gpu["trunk_engine"] == "torch"
    assert gpu["accuracy"] == pytest.approx(cpu["accuracy"], abs=1e-9)


def test_export_leaves_the_model_untouched(tmp_path, model):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_trunk(model, tmp_path / "t.onnx")
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    model.eval()


def _drawing(path, box: tuple[int, int, int, int], ring: bool) -> Path:
    """A 60x60 page with a square outline (ring) or a filled square of ink at box."""
    page = Image.new("L", (60, 60), "white")
    ImageDraw.Draw(page).rectangle(box, outline="black", fill=None if ring else "black", width=3)
    page.save(path)
    return path


def test_an_ink_cropped_model_frames_every_image_alike_in_the_app_the_export_and_the_runtime(tmp_path):
    torch.manual_seed(0)
    m = AnilModel(ModelConfig(8, 4, 1, 28, 2), Preprocessing(28, 1, (1.0,), (1.0,), crop="ink"))
    calibrate_batchnorm(m, torch.rand(64, 1, 28, 28))
    m.eval()
    support = [("ring", [_drawing(tmp_path / "r1.png", (5, 5, 25, 25), True)]),
               ("block", [_drawing(tmp_path / "b1.png", (30, 30, 50, 50), False)])]  # fmt: skip
    clf = FewShotClassifier(m, 0.5, 50)
    clf.adapt(support)
    # Drawn elsewhere on the page: the same input once framed, so the same features; larger: the same answer.
    queries = [
        _drawing(tmp_path / "r2.png", (35, 2, 55, 22), True),
        _drawing(tmp_path / "b2.png", (2, 2, 56, 56), False),
    ]
    features = clf.features([*queries, support[0][1][0]])[0]
    assert torch.allclose(features[0], features[2], atol=1e-5)
    assert [p.label for p in clf.predict(queries)[0]] == ["ring", "block"]
    export_classifier(m, clf.weight, clf.bias, clf.class_names, tmp_path / "c.onnx")
    meta = ort.InferenceSession(str(tmp_path / "c.onnx")).get_modelmeta().custom_metadata_map
    assert (
        meta["anil_studio.crop"] == "ink" and "crop to the square around the ink" in meta["anil_studio.preprocessing"]
    )
    runtime = OnnxClassifier(tmp_path / "c.onnx")
    predictions, skipped = runtime.predict(queries)
    assert runtime.crop == "ink" and not skipped and [p.label for p in predictions] == ["ring", "block"]
    for a, b in zip(clf.predict(queries)[0], predictions, strict=True):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
