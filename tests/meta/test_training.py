"""Integration: meta-train a few iterations on tiny synthetic data, interrupt, resume, evaluate."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from anil_engine.checkpoint import load_checkpoint
from anil_engine.config import TrainConfig
from anil_engine.errors import ConfigError
from anil_engine.jobs import run_to_end
from anil_engine.meta.training import train
from anil_engine.meta.trainrun import DataProgress, TrainProgress


def config(root, **kw):
    base = dict(
        dataset="omniglot",
        data_root=str(root),
        ways=5,
        shots=1,
        query=1,
        meta_batch_size=2,
        iterations=4,
        val_every=2,
        val_episodes=5,
        checkpoint_every=2,
        hidden_size=8,
        device="cpu",
        seed=7,
    )
    return TrainConfig(**{**base, **kw})


def test_train_writes_log_and_checkpoints(tmp_path, omniglot_root):
    job = train(config(omniglot_root), tmp_path / "run")
    items = []
    while True:
        try:
            items.append(next(job))
        except StopIteration as stop:
            result = stop.value
            break
    assert result["iterations"] == 4
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [0, 1, 2, 3, 4]
    # The starting point's validation comes first, as progress too (the app draws it).
    data = [p for p in items if isinstance(p, DataProgress)]  # reading the data is shown first
    assert [p.stage for p in data] == ["Reading the training images", "Reading the validation images"]
    items = [p for p in items if isinstance(p, TrainProgress)]
    assert [p.iteration for p in items] == [0, 1, 2, 3, 4]
    assert items[0].val_accuracy == lines[0]["val_accuracy"] and items[0].loss != items[0].loss  # NaN
    assert "val_accuracy" in lines[0] and "val_accuracy" in lines[2] and "val_accuracy" not in lines[1]
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert best["kind"] == "anil" and "resume" not in best
    assert last["resume"]["iteration"] == 4 and best["train_config"]["ways"] == 5


@pytest.mark.parametrize("engine", ["batched", "reference"])
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, omniglot_root, engine):
    straight = run_to_end(train(config(omniglot_root, engine=engine), tmp_path / "a"))
    gen = train(config(omniglot_root, engine=engine), tmp_path / "b")
    for progress in gen:
        if isinstance(progress, TrainProgress) and progress.iteration == 3:
            gen.close()  # what Cancel in the app and Ctrl-C in the CLI do
            break
    assert load_checkpoint(tmp_path / "b" / "last.pt")["resume"]["iteration"] == 3
    with pytest.raises(ConfigError, match="other settings"):  # the other engine's sampler state does not fit
        other = "reference" if engine == "batched" else "batched"
        run_to_end(train(config(omniglot_root, engine=other), tmp_path / "b", resume=True))
    resumed = run_to_end(train(config(omniglot_root, engine=engine), tmp_path / "b", resume=True))
    assert resumed["iterations"] == straight["iterations"] == 4
    a = load_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["state_dict"]
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k


def test_float64_runs_of_both_engines_end_at_the_same_weights(tmp_path, omniglot_root):
    from anil_engine.models import model_from_checkpoint

    states = {}
    for engine in ("reference", "batched"):
        cfg = config(omniglot_root, engine=engine, precision="float64", iterations=6, val_every=6, checkpoint_every=6)
        run_to_end(train(cfg, tmp_path / engine))
        states[engine] = load_checkpoint(tmp_path / engine / "last.pt")["state_dict"]
    compared = 0
    for name, ref in states["reference"].items():
        got = states["batched"][name]
        if not ref.is_floating_point():
            assert torch.equal(got, ref), name
            continue
        assert ref.dtype == got.dtype == torch.float64, name
        # A convolution bias feeds a training-mode BatchNorm, which subtracts it again: its gradient is
        # rounding noise, in float64 far below Adam's eps (1e-8), so it stays near its initial zero in
        # both engines, where relative differences mean nothing.
        if name.endswith("conv.bias"):
            assert max(got.abs().max(), ref.abs().max()) < 1e-6, name
            continue
        scale = ref.abs().max()
        if name.endswith("running_mean"):  # it follows the convolution bias too: on the activations' scale
            scale = scale + states["reference"][name.replace("mean", "var")].sqrt().max()
        rel = float((got - ref).abs().max() / scale.clamp_min(1e-12))
        assert rel <= 1e-9, (name, rel)
        compared += 1
    assert compared == 4 * 5 + 2 + 2  # conv weight, BN weight, bias, running mean, var per block; head; mean, std
    # The float64 checkpoint opens as the usual float32 model (evaluation, the app, export).
    model = model_from_checkpoint(load_checkpoint(tmp_path / "batched" / "best.pt"))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ConfigError, match="precision must be one of"):
        config(omniglot_root, precision="float16")


def test_resume_refuses_other_settings_and_existing_runs(tmp_path, omniglot_root):
    run_to_end(train(config(omniglot_root, iterations=2), tmp_path / "r"))
    with pytest.raises(ConfigError, match="other settings"):
        run_to_end(train(config(omniglot_root, iterations=3, ways=4), tmp_path / "r", resume=True))
    with pytest.raises(ConfigError, match="already holds a run"):
        run_to_end(train(config(omniglot_root), tmp_path / "r"))
    longer = run_to_end(train(config(omniglot_root, iterations=3), tmp_path / "r", resume=True))
    assert longer["iterations"] == 3


def test_config_messages_name_the_bad_value():
    with pytest.raises(ConfigError, match="ways must be >= 2, got 1"):
        TrainConfig(data_root="x", ways=1)
    with pytest.raises(ConfigError, match="meta_lr must be > 0, got -1"):
        TrainConfig(data_root="x", meta_lr=-1)
    with pytest.raises(ConfigError, match="device must be one of"):
        TrainConfig(data_root="x", device="tpu")


def test_pretrain_then_meta_train_from_it(tmp_path, omniglot_root):
    from anil_engine.meta.pretraining import PretrainConfig, pretrain
    from anil_engine.models import model_from_checkpoint

    pre = PretrainConfig(
        dataset="omniglot", data_root=str(omniglot_root), epochs=1, batch_size=512, hidden_size=8, ways=5, device="cpu",
        val_episodes=20,
    )  # fmt: skip
    result = run_to_end(pretrain(pre, tmp_path / "pre.pt"))
    ckpt = load_checkpoint(tmp_path / "pre.pt")
    assert ckpt["kind"] == "pretrained" and result["val_5w1s"] >= 0
    cfg = config(omniglot_root, init_from=str(tmp_path / "pre.pt"), init_feature_norm=4.0, iterations=1)
    run_to_end(train(cfg, tmp_path / "run"))
    trained = model_from_checkpoint(load_checkpoint(tmp_path / "run" / "last.pt"))
    source = model_from_checkpoint(ckpt)
    # The first conv comes from the pre-trained trunk (one Adam step away from it).
    delta = (trained.trunk[1][0].conv.weight - source.trunk[1][0].conv.weight).abs().max()
    assert delta < 5 * cfg.meta_lr
    # The pre-training that made the starting trunk travels with the run's checkpoints, and onto the card.
    from anil_engine.cards import _card_header
    from anil_engine.config import CardRequest

    record = load_checkpoint(tmp_path / "run" / "last.pt")["metrics"]["pretraining"]
    assert record["epochs"] == 1 and record["compute"] == "float32" and record["device"] == "cpu"
    assert record["train_seconds"] == ckpt["metrics"]["train_seconds"] > 0
    seconds = f"{record['train_seconds']:,.0f} s"
    header = _card_header(CardRequest(checkpoint=str(tmp_path / "run" / "last.pt"), data_root="x", out="card.md"),
                          load_checkpoint(tmp_path / "run" / "last.pt"), "")  # fmt: skip
    line = [t for t in header if t.startswith("- **Pre-training**")]
    assert line == [f"- **Pre-training** (the starting trunk): 1 epochs on the train classes, {seconds} on cpu "
                    f"({record['machine']}), "
                    f"forward pass in float32, torch {record['torch']}"]  # fmt: skip
    # A run started from that ANIL checkpoint keeps the record; one from scratch has none (and no line).
    from anil_engine.meta.trainrun import pretraining_record

    assert pretraining_record(str(tmp_path / "run" / "last.pt")) == record
    assert pretraining_record("") is None


def test_cosine_classifier_logits_and_pretrain_options(tmp_path, omniglot_root):
    from anil_engine.meta.pretraining import CosineClassifier, PretrainConfig, pretrain

    clf = CosineClassifier(4, 3, scale=10.0)
    f = torch.randn(5, 4)
    logits = clf(f)
    assert logits.abs().max() <= 10.0 + 1e-5
    # Invariant to the feature's length, proportional to the cosine with each row.
    assert torch.allclose(clf(3 * f), logits, atol=1e-5)
    row = clf.weight[1] / clf.weight[1].norm()
    assert torch.allclose(logits[:, 1], 10 * (f / f.norm(dim=1, keepdim=True)) @ row, atol=1e-5)
    pre = PretrainConfig(
        dataset="omniglot",
        data_root=str(omniglot_root),
        epochs=1,
        batch_size=512,
        hidden_size=8,
        ways=5,
        device="cpu",
        classifier="cosine",
        label_smoothing=0.1,
        augment=False,
        val_episodes=20,
    )
    run_to_end(pretrain(pre, tmp_path / "cos.pt"))
    ckpt = load_checkpoint(tmp_path / "cos.pt")
    assert ckpt["metrics"]["pretrain_config"]["classifier"] == "cosine"
    with pytest.raises(ConfigError, match="classifier must be one of"):
        PretrainConfig(dataset="omniglot", data_root="x", classifier="arc")
    with pytest.raises(ConfigError, match="label_smoothing"):
        PretrainConfig(dataset="omniglot", data_root="x", label_smoothing=1.0)


def test_pretraining_loss_within_the_image_s_own_alphabet(tmp_path, omniglot_root, pretrain_root):
    from anil_engine.meta.pretraining import PretrainConfig, _class_group_ids, pretrain, pretraining_loss

    names = ["A/c01/rot000", "A/c02/rot000", "B/c01/rot000", "A/c01/rot090", "A/c03/rot000", "A/c02/rot090"]
    group = _class_group_ids(names)
    assert group.tolist() == [0, 0, 1, 2, 0, 2]  # an alphabet at one rotation
    torch.manual_seed(0)
    logits, y = torch.randn(4, 6), torch.tensor([0, 2, 5, 4])
    plain = PretrainConfig(dataset="omniglot", data_root="x")
    within = PretrainConfig(dataset="omniglot", data_root="x", within_loss=0.5)
    full = torch.nn.functional.cross_entropy(logits, y)
    assert torch.equal(pretraining_loss(logits, y, plain, group), full)
    # By hand: each image's softmax over its own group's classes only (B's single class: loss 0).
    own = [([0, 1, 4], 0), ([2], 0), ([3, 5], 1), ([0, 1, 4], 2)]
    by_hand = torch.stack([-torch.log_softmax(logits[i, cols], 0)[k] for i, (cols, k) in enumerate(own)]).mean()
    assert torch.allclose(pretraining_loss(logits, y, within, group), full + 0.5 * by_hand)

    run = dict(epochs=1, batch_size=512, hidden_size=8, ways=5, device="cpu", augment=False, val_episodes=20)
    run_to_end(pretrain(PretrainConfig("omniglot", str(omniglot_root), within_loss=1.0, **run), tmp_path / "w.pt"))
    run_to_end(pretrain(PretrainConfig("omniglot", str(omniglot_root), **run), tmp_path / "p.pt"))
    w, p = load_checkpoint(tmp_path / "w.pt"), load_checkpoint(tmp_path / "p.pt")
    assert w["metrics"]["pretrain_config"]["within_loss"] == 1.0
    # The same seed and batches: only the second loss tells the two trunks apart.
    assert any(not torch.equal(w["state_dict"][k], p["state_dict"][k]) for k in w["state_dict"])
    # A folder of classes has no alphabets.
    with pytest.raises(ConfigError, match="--within-loss: grouping classes by alphabet needs Omniglot"):
        run_to_end(pretrain(_pretrain_config(pretrain_root, within_loss=1.0), tmp_path / "f.pt"))
    with pytest.raises(ConfigError, match="within_loss"):
        PretrainConfig(dataset="omniglot", data_root="x", within_loss=float("nan"))


def test_mirror_classes_learn_every_drawing_s_mirror_image_as_a_class_of_its_own(
    tmp_path, omniglot_root, pretrain_root, monkeypatch
):
    import anil_engine.meta.pretraining as pretraining
    from anil_engine.meta.pretraining import PretrainConfig, _Pretraining, pretrain

    cfg = PretrainConfig(
        "omniglot", str(omniglot_root), epochs=1, batch_size=64, hidden_size=8, ways=5, device="cpu",
        augment=False, mirror_classes=True, val_episodes=20,
    )  # fmt: skip
    run = _Pretraining(cfg, tmp_path / "m.pt")
    n = run.train_data.n_classes
    assert run.n_drawn == n and run.classifier.out_features == 2 * n
    seen = {}
    run.model.trunk.register_forward_pre_hook(lambda _m, args: seen.update(x=args[0].detach().clone()))
    real_loss = pretraining.pretraining_loss
    monkeypatch.setattr(pretraining, "pretraining_loss", lambda lg, y, *a: seen.update(y=y) or real_loss(lg, y, *a))
    idx = run.order[: cfg.batch_size]
    run.train_step()
    plain = run.train_data.images[idx].float() / 255
    labels = run.train_data.labels[idx]
    mirrored = seen["y"] >= n
    assert 0 < int(mirrored.sum()) < len(idx)  # about half of the batch
    for i in range(len(idx)):
        # Each image is itself with its own label, or its mirror image with its class's mirror class.
        want = plain[i].flip(-1) if mirrored[i] else plain[i]
        assert torch.allclose(seen["x"][i], want, atol=1e-6)
        assert int(seen["y"][i]) == int(labels[i]) + (n if mirrored[i] else 0)
    monkeypatch.undo()
    run_to_end(pretrain(cfg, tmp_path / "m.pt"))
    assert load_checkpoint(tmp_path / "m.pt")["metrics"]["pretrain_config"]["mirror_classes"] is True
    # A photo's mirror image shows the same object: refused, with the reason and the fix.
    with pytest.raises(ConfigError, match="--mirror-classes: a mirrored photo shows the same object.*leave"):
        run_to_end(pretrain(_pretrain_config(pretrain_root, mirror_classes=True), tmp_path / "f.pt"))
    with pytest.raises(ConfigError, match="--mirror-classes and --within-loss: choose one"):
        run_to_end(pretrain(replace(cfg, within_loss=1.0), tmp_path / "w.pt"))


def test_rescale_features_sets_the_mean_norm():
    from anil_engine.config import ModelConfig, Preprocessing
    from anil_engine.models import AnilModel, calibrate_batchnorm, rescale_features

    torch.manual_seed(0)
    model = AnilModel(ModelConfig(8, 4, 1, 28, 5), Preprocessing())
    x = torch.rand(64, 1, 28, 28)
    calibrate_batchnorm(model, x)
    before = model.eval().forward_features(x)
    scale = rescale_features(model, x, 3.0)
    after = model.forward_features(x)
    assert torch.allclose(after.norm(dim=1).mean(), torch.tensor(3.0), atol=1e-4)
    assert torch.allclose(after, before * scale, atol=1e-5)


def _pretrain_config(root, **kw):
    from anil_engine.meta.pretraining import PretrainConfig

    base = dict(
        dataset="folder", data_root=str(root), epochs=2, batch_size=16, hidden_size=8, input_size=16, ways=5,
        device="cpu", val_episodes=20,
    )  # fmt: skip
    return PretrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def pretrain_root(tmp_path_factory):
    """32 classes of 4 small images: 20 training classes (5 steps of 16 per epoch), 5 validation classes."""
    from conftest import write_class_folders

    return write_class_folders(tmp_path_factory.mktemp("pretrain"), n_classes=32, per_class=4, size=16)


@pytest.fixture(scope="module")
def pretrained_without_a_stop(tmp_path_factory, pretrain_root):
    from anil_engine.meta.pretraining import pretrain, resume_path

    out = tmp_path_factory.mktemp("full") / "full.pt"
    result = run_to_end(pretrain(_pretrain_config(pretrain_root), out))
    assert not resume_path(out).exists()  # removed once the result is written
    return out, result


class _StopInsideAStep(Exception):
    pass


@pytest.mark.parametrize("stop", ["closed mid-epoch", "closed at an epoch's end", "error inside a step"])
def test_pretraining_stopped_and_resumed_ends_at_the_same_weights(
    tmp_path, pretrain_root, pretrained_without_a_stop, monkeypatch, stop
):
    from anil_engine.meta import pretraining

    monkeypatch.setattr(pretraining, "PROGRESS_STEPS", 1)  # a progress item after every step
    cfg = _pretrain_config(pretrain_root)
    full_path, full = pretrained_without_a_stop

    out = tmp_path / "part.pt"
    state = pretraining.resume_path(out)
    assert state == tmp_path / "part.resume.pt"
    job = pretraining.pretrain(cfg, out)
    if stop == "error inside a step":
        calls = {"n": 0}
        affine = pretraining.random_affine

        def failing_affine(x, generator):
            calls["n"] += 1
            y = affine(x, generator)  # its random numbers are drawn, then the step dies
            if calls["n"] == 4:
                raise _StopInsideAStep
            return y

        monkeypatch.setattr(pretraining, "random_affine", failing_affine)
        with pytest.raises(_StopInsideAStep):
            for _ in job:
                pass
        monkeypatch.setattr(pretraining, "random_affine", affine)
        expected = (1, 3)  # three steps done
    else:
        items = []
        for item in job:
            items.append(item)
            if stop == "closed mid-epoch" and item.step == 3 or item.val_accuracy is not None:
                break
        job.close()
        expected = (1, 3) if stop == "closed mid-epoch" else (2, 0)
        assert items[-1].step == (3 if stop == "closed mid-epoch" else items[-1].steps // 2)
    assert not out.exists() and state.is_file()
    saved = load_checkpoint(state)["resume"]
    assert (saved["epoch"], saved["step_in_epoch"]) == expected

    resumed = run_to_end(pretraining.pretrain(cfg, out, resume=True))
    assert not state.exists()
    a, b = load_checkpoint(full_path), load_checkpoint(out)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert resumed["val_5w1s"] == full["val_5w1s"]


def test_pretraining_saves_its_state_while_it_runs_and_refuses_to_mix_runs(tmp_path, pretrain_root):
    from anil_engine.errors import CheckpointError
    from anil_engine.meta.pretraining import pretrain, resume_path

    cfg = _pretrain_config(pretrain_root, epochs=1)
    out = tmp_path / "pre.pt"
    with pytest.raises(CheckpointError, match=r"pre.resume.pt: nothing to resume; start without --resume"):
        run_to_end(pretrain(cfg, out, resume=True))
    job = pretrain(cfg, out, save_every_s=0.0)  # a state after every step
    next(job)  # the first progress item comes after PROGRESS_STEPS steps (or at the epoch's end)
    saved = load_checkpoint(resume_path(out))
    assert saved["kind"] == "pretrained" and saved["resume"]["step_in_epoch"] >= 1
    with pytest.raises(ConfigError, match=r"pre.resume.pt: an unfinished pre-training of pre.pt; pass --resume"):
        run_to_end(pretrain(cfg, out))
    with pytest.raises(ConfigError, match=r"other settings; resume with the same settings"):
        run_to_end(pretrain(_pretrain_config(pretrain_root, epochs=1, lr=0.01), out, resume=True))
    job.close()
    run_to_end(pretrain(_pretrain_config(pretrain_root, epochs=1, device="auto"), out, resume=True))
    assert load_checkpoint(out)["kind"] == "pretrained" and not resume_path(out).exists()


def test_pretrain_then_train_is_one_resumable_job(tmp_path, pretrain_root):
    from anil_engine.errors import CheckpointError
    from anil_engine.meta.pretraining import PretrainProgress, pretrain_then_train
    from anil_engine.meta.trainrun import TrainProgress

    cfg = TrainConfig(
        dataset="folder", data_root=str(pretrain_root), ways=2, shots=1, query=1, meta_batch_size=2, iterations=3,
        val_every=3, val_episodes=3, checkpoint_every=1, hidden_size=8, input_size=16, device="cpu",
    )  # fmt: skip
    out = tmp_path / "run"
    with pytest.raises(CheckpointError, match="nothing to resume"):
        run_to_end(pretrain_then_train(cfg, 2, out, resume=True))
    job = pretrain_then_train(cfg, 2, out)
    assert isinstance(next(job), PretrainProgress)
    job.close()  # stopped during pre-training
    assert (out / "pretrained.resume.pt").is_file() and not (out / "pretrained.pt").exists()
    with pytest.raises(ConfigError, match=r"already holds a run \(pretrained.resume.pt\); resume it"):
        run_to_end(pretrain_then_train(cfg, 2, out))
    job = pretrain_then_train(cfg, 2, out, resume=True)
    kinds = []
    for item in job:
        kinds.append(type(item))
        if isinstance(item, TrainProgress) and item.iteration == 1:
            break
    job.close()  # stopped during meta-training, after one iteration
    assert PretrainProgress in kinds and kinds[-1] is TrainProgress
    assert (out / "pretrained.pt").is_file() and not (out / "pretrained.resume.pt").exists()
    assert load_checkpoint(out / "last.pt")["resume"]["iteration"] == 1
    result = run_to_end(pretrain_then_train(cfg, 2, out, resume=True))
    assert result["iterations"] == 3
    saved = load_checkpoint(out / "last.pt")["train_config"]
    assert saved["init_from"] == str(out / "pretrained.pt") and saved["init_feature_norm"] == 16.0
    plain = tmp_path / "plain"
    run_to_end(train(cfg, plain))
    with pytest.raises(ConfigError, match="did not start from pretrained.pt; resume it without pre-training"):
        run_to_end(pretrain_then_train(cfg, 2, plain, resume=True))
    with pytest.raises(ConfigError, match="leave 'start trunk from'"):
        run_to_end(pretrain_then_train(TrainConfig(**{**cfg.to_dict(), "init_from": "x.pt"}), 2, tmp_path / "b"))


def test_elastic_stroke_augmentation(tmp_path, pretrain_root):
    """A smooth displacement of at most `amplitude` of the image: ink moves a little, a constant image stays,
    the draws are seeded; a pre-training with it runs, records it, and a state saved before the setting
    existed resumes as elastic 0."""
    from anil_engine.checkpoint import save_checkpoint
    from anil_engine.meta.pretraining import pretrain, random_elastic, resume_path

    x = torch.zeros(6, 1, 28, 28)
    x[:, :, 10:18, 13:15] = 1.0  # a vertical stroke
    a = random_elastic(x, 0.05, torch.Generator().manual_seed(1))
    b = random_elastic(x, 0.05, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    moved = (a - x).abs().sum((1, 2, 3))
    assert (moved > 0.5).all()  # every image changed
    assert a[:, :, :7].abs().max() < 1e-6 and a[:, :, 21:].abs().max() < 1e-6  # by under 3 pixels (0.05 x 28 = 1.4)
    assert torch.allclose(random_elastic(torch.full_like(x, 0.3), 0.05, torch.Generator()), torch.full_like(x, 0.3))
    with pytest.raises(ConfigError, match="elastic must be in"):
        _pretrain_config(pretrain_root, elastic=0.7)

    cfg = _pretrain_config(pretrain_root, epochs=1, elastic=0.05)
    run_to_end(pretrain(cfg, tmp_path / "e.pt"))
    assert load_checkpoint(tmp_path / "e.pt")["metrics"]["pretrain_config"]["elastic"] == 0.05

    plain = _pretrain_config(pretrain_root, epochs=2)
    out = tmp_path / "old.pt"
    job = pretrain(plain, out)
    next(job)
    job.close()
    state = load_checkpoint(resume_path(out))
    del state["resume"]["pretrain_config"]["elastic"]  # as an earlier version saved it
    save_checkpoint(state, resume_path(out))
    run_to_end(pretrain(plain, out, resume=True))
    assert out.is_file() and not resume_path(out).exists()


def test_pretraining_in_bfloat16_trains_float32_weights(tmp_path, pretrain_root):
    """`--compute bfloat16`: the forward pass under autocast, weights and optimizer float32; it learns as float32
    does (training accuracy of the tiny set well above chance), is recorded, and a resume must keep it."""
    from anil_engine.meta.pretraining import pretrain

    with pytest.raises(ConfigError, match="compute must be one of"):
        _pretrain_config(pretrain_root, compute="float16")
    results = {}
    for compute in ("float32", "bfloat16"):
        cfg = _pretrain_config(pretrain_root, epochs=15, lr=0.03, compute=compute, augment=False)
        last = list(pretrain(cfg, tmp_path / f"{compute}.pt"))[-1]
        ckpt = load_checkpoint(tmp_path / f"{compute}.pt")
        assert ckpt["metrics"]["pretrain_config"]["compute"] == compute
        assert all(v.dtype in (torch.float32, torch.int64) for v in ckpt["state_dict"].values())
        assert all(torch.isfinite(v.float()).all() for v in ckpt["state_dict"].values())
        results[compute] = last.accuracy
    assert results["bfloat16"] > 30 and abs(results["bfloat16"] - results["float32"]) < 20, results  # chance: 5 %

    out = tmp_path / "r.pt"
    job = pretrain(_pretrain_config(pretrain_root, compute="bfloat16"), out)
    next(job)
    job.close()
    with pytest.raises(ConfigError, match="other settings"):
        run_to_end(pretrain(_pretrain_config(pretrain_root), out, resume=True))
    run_to_end(pretrain(_pretrain_config(pretrain_root, compute="bfloat16"), out, resume=True))
    assert out.is_file()


def test_five_conv_blocks_pool_a_twice_larger_image_to_one_pixel(tmp_path, pretrain_root):
    """`--layers 5`: one more 2x max-pool, so 32 px inputs end at 1x1 with hidden-size features, as 16 px ones do
    with 4 blocks; pre-training and meta-training from it keep the blocks, and a 4-block run refuses the trunk."""
    from anil_engine.config import ModelConfig, Preprocessing
    from anil_engine.meta.pretraining import pretrain
    from anil_engine.models import AnilModel, model_from_checkpoint

    pre = Preprocessing(32, 3, (0.5,) * 3, (0.25,) * 3)
    assert AnilModel(ModelConfig(8, 5, 3, 32, 5), pre).forward_features(torch.rand(2, 3, 32, 32)).shape == (2, 8)
    assert AnilModel(ModelConfig(8, 4, 3, 32, 5), pre).forward_features(torch.rand(2, 3, 32, 32)).shape == (2, 32)
    with pytest.raises(ConfigError, match="layers must be 1, 2 or 4 .* or 5 .*, got 3"):
        ModelConfig(layers=3)
    with pytest.raises(ConfigError, match="5 conv blocks pool the image 32x: the input size must be >= 32"):
        _pretrain_config(pretrain_root, layers=5, input_size=28)
    out = tmp_path / "five.pt"
    run_to_end(pretrain(_pretrain_config(pretrain_root, epochs=1, layers=5, input_size=32), out))
    assert load_checkpoint(out)["model"]["layers"] == 5
    assert model_from_checkpoint(load_checkpoint(out)).num_features == 8
    meta = dict(dataset="folder", ways=3, input_size=32, init_from=str(out), iterations=1, val_every=1)
    with pytest.raises(ConfigError, match="5 layers.*does not match this run.*4 layers.*--layers"):
        run_to_end(train(config(pretrain_root, **meta), tmp_path / "four"))
    run_to_end(train(config(pretrain_root, layers=5, **meta), tmp_path / "run"))
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    trained = model_from_checkpoint(last)
    assert trained.config.layers == 5 and trained.num_features == 8
    # The model picker's words and the card say so.
    from anil_engine.backbones import describe
    from anil_engine.cards import _card_header
    from anil_engine.config import CardRequest

    assert describe(last["model"]).endswith("hidden size 8, 5 conv blocks, 32 px input")
    header = _card_header(CardRequest(checkpoint=str(tmp_path / "c.pt"), data_root="x", out="c.md"), last, "")
    assert any("CNN4 trunk, hidden size 8, 5 conv blocks, 3x32x32 input" in line for line in header)


def test_pretraining_on_the_training_and_validation_classes(tmp_path, pretrain_root, monkeypatch):
    """`--train-splits train+val` (a final model): the classifier covers both splits' classes, the checkpoint and
    the card's pre-training record say so, and no validation runs (its classes are learnt); a resume keeps it."""
    from anil_engine.cards import _pretraining_line
    from anil_engine.meta import pretraining
    from anil_engine.meta.trainrun import pretraining_record

    validations, evaluate = [], pretraining.evaluate
    monkeypatch.setattr(pretraining, "evaluate", lambda *a, **k: validations.append(a) or evaluate(*a, **k))
    with pytest.raises(ConfigError, match="train_splits must be one of"):
        _pretrain_config(pretrain_root, train_splits="val")
    out = tmp_path / "final.pt"
    job = pretraining.pretrain(_pretrain_config(pretrain_root, train_splits="train+val"), out)
    next(job)
    job.close()
    state = load_checkpoint(pretraining.resume_path(out))
    assert state["resume"]["classifier"]["weight"].shape[0] == 25  # 20 training + 5 validation classes
    with pytest.raises(ConfigError, match="other settings"):
        run_to_end(pretraining.pretrain(_pretrain_config(pretrain_root), out, resume=True))
    result = run_to_end(pretraining.pretrain(_pretrain_config(pretrain_root, train_splits="train+val"), out, True))
    ckpt = load_checkpoint(out)
    assert validations == [] and result["val_5w1s"] is None and ckpt["metrics"]["val_5w1s"] is None
    assert ckpt["dataset"]["train_split"] == "train+val"
    record = pretraining_record(str(out))
    assert record["train_splits"] == "train+val"
    assert "on the train+val classes" in _pretraining_line(record)[0]
    # The default learns the training classes only and validates on the others.
    run_to_end(pretraining.pretrain(_pretrain_config(pretrain_root, epochs=1), tmp_path / "plain.pt"))
    assert len(validations) == 1
    assert load_checkpoint(tmp_path / "plain.pt")["dataset"]["train_split"] == "train"


def test_a_final_model_from_a_trunk_that_learnt_the_validation_classes(tmp_path, pretrain_root, monkeypatch):
    """ANIL from a `train+val` trunk has nothing to validate on: no validation runs, the last point is kept and
    the card says so; `--iterations 0` packages the starting trunk itself (rescaled, zero head)."""
    from anil_engine.cards import _card_header
    from anil_engine.config import CardRequest
    from anil_engine.meta import pretraining, training
    from anil_engine.models import model_from_checkpoint

    trunk = tmp_path / "final.pt"
    run_to_end(pretraining.pretrain(_pretrain_config(pretrain_root, epochs=1, train_splits="train+val"), trunk))
    validations = []
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: validations.append(a))
    cfg = dict(
        dataset="folder", data_root=str(pretrain_root), ways=5, shots=1, query=1, meta_batch_size=2, val_every=1,
        val_episodes=3, checkpoint_every=1, hidden_size=8, input_size=16, device="cpu", init_from=str(trunk),
        init_feature_norm=4.0,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="iterations must be > 0 \\(or 0 with init_from"):
        TrainConfig(**{**cfg, "init_from": "", "init_feature_norm": 0.0}, iterations=0)
    result = run_to_end(train(TrainConfig(**cfg, iterations=0), tmp_path / "zero"))
    best = load_checkpoint(tmp_path / "zero" / "best.pt")
    model = model_from_checkpoint(best)
    assert validations == [] and result["iterations"] == 0 and result["best_val_accuracy"] is None
    assert torch.count_nonzero(model.head.weight) == 0 and torch.count_nonzero(model.head.bias) == 0
    source = model_from_checkpoint(load_checkpoint(trunk))
    conv = model.trunk[1][0].conv.weight
    assert torch.equal(conv, source.trunk[1][0].conv.weight)  # the trunk itself; only the last BN is rescaled
    header = _card_header(CardRequest(checkpoint="best.pt", data_root="x", out="card.md"), best, "")
    assert "trunk pre-trained on `train` and `val`, so no validation" in header[2]
    assert "0 meta-iterations, the last kept (no validation)" in next(t for t in header if "**Training**" in t)
    run_to_end(train(TrainConfig(**cfg, iterations=2), tmp_path / "two"))
    assert validations == []
    two = load_checkpoint(tmp_path / "two" / "best.pt")
    assert two["metrics"]["iterations"] == 2 and two["metrics"]["best_val_accuracy"] is None
    assert torch.equal(
        two["state_dict"]["head.weight"], load_checkpoint(tmp_path / "two" / "last.pt")["state_dict"]["head.weight"]
    )


def test_ink_crop_is_chosen_at_pretraining_and_travels_with_the_trunk(tmp_path, omniglot_root):
    """`--crop ink` pre-trains on the framed drawings, the checkpoint keeps it, ANIL from that trunk must show its
    images the same way (a mismatch is refused with the option to give) and evaluation reads them so too."""
    from anil_engine.datasets import load_dataset
    from anil_engine.meta.pretraining import PretrainConfig, pretrain
    from anil_engine.models import model_from_checkpoint

    with pytest.raises(ConfigError, match="crop must be one of"):
        PretrainConfig(dataset="omniglot", data_root="x", crop="tight")
    pre = PretrainConfig(
        dataset="omniglot", data_root=str(omniglot_root), epochs=1, batch_size=512, hidden_size=8, ways=5, device="cpu",
        val_episodes=20, crop="ink",
    )  # fmt: skip
    run_to_end(pretrain(pre, tmp_path / "pre.pt"))
    assert load_checkpoint(tmp_path / "pre.pt")["preprocessing"]["crop"] == "ink"
    with pytest.raises(
        ConfigError, match="with --crop ink, this run would show them with --crop none; choose --crop ink"
    ):
        run_to_end(train(config(omniglot_root, init_from=str(tmp_path / "pre.pt"), iterations=1), tmp_path / "bad"))
    run_to_end(
        train(config(omniglot_root, init_from=str(tmp_path / "pre.pt"), iterations=1, crop="ink"), tmp_path / "run")
    )
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    model = model_from_checkpoint(ckpt)
    assert model.preprocessing.crop == "ink" and ckpt["train_config"]["crop"] == "ink"
    # The framed and the whole drawings are different inputs, cached apart.
    framed = load_dataset("omniglot", omniglot_root, "test", 28, 1, "vinyals", crop="ink")
    whole = load_dataset("omniglot", omniglot_root, "test", 28, 1, "vinyals")
    assert framed.class_names == whole.class_names and not torch.equal(framed.images, whole.images)
    assert torch.equal(
        load_dataset("omniglot", omniglot_root, "test", 28, 1, "vinyals", crop="ink").images, framed.images
    )
