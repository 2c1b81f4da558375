"""Lake et al.'s one-shot protocol: every episode's classes are unrotated characters of one alphabet."""

from __future__ import annotations

import pytest
import torch
from conftest import CHARACTERS_TSV

from anil_engine.config import EvalConfig, TaskSpec
from anil_engine.datasets.omniglot import load_omniglot
from anil_engine.errors import ConfigError
from anil_engine.tasks import FastEpisodeSampler, class_groups


@pytest.fixture(scope="module")
def lake_test(omniglot_root):
    return load_omniglot(omniglot_root, "lake", "test", size=16)


def test_every_episode_is_one_alphabet_unrotated_and_seeded(lake_test):
    groups = class_groups(lake_test.class_names, "alphabet")
    assert len(groups) == 20  # Lake's 20 evaluation alphabets
    task = TaskSpec(20, 1, 1)
    draws = []
    for seed in (0, 0, 1):
        sampler = FastEpisodeSampler(lake_test, task, seed, groups=groups)
        episodes = []
        for _ in range(30):
            idx, _labels = sampler.sample_indices()
            classes = sorted({int(lake_test.labels[i]) for i in idx})
            names = [lake_test.class_names[c] for c in classes]
            assert len(classes) == 20 and len({n.split("/")[0] for n in names}) == 1
            assert all(n.endswith("/rot000") for n in names)
            episodes.append(idx)
        draws.append(torch.stack(episodes))
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])  # seeded, reproducible
    alphabets = {lake_test.class_names[int(lake_test.labels[e[0]])].split("/")[0] for e in draws[0]}
    assert len(alphabets) > 5  # the alphabet changes from episode to episode


def test_rotated_alphabet_groups_are_one_alphabet_at_one_rotation_each(lake_test):
    groups = class_groups(lake_test.class_names, "rotated-alphabet")
    assert len(groups) == 4 * 20  # each evaluation alphabet at each of the split's 4 rotations
    assert sorted(c for g in groups for c in g) == list(range(len(lake_test.class_names)))  # every class once
    for group in groups:
        keys = {(n.split("/")[0], n.split("/")[2]) for n in (lake_test.class_names[c] for c in group)}
        assert len(keys) == 1
    unrotated = [g for g in groups if lake_test.class_names[g[0]].endswith("/rot000")]
    assert unrotated == class_groups(lake_test.class_names, "alphabet")  # the same order: same seeded episodes
    sampler = FastEpisodeSampler(lake_test, TaskSpec(20, 1, 1), 0, groups=groups)
    rotations = set()
    for _ in range(30):
        idx, _labels = sampler.sample_indices()
        names = {lake_test.class_names[int(lake_test.labels[i])] for i in idx}
        assert len(names) == 20 and len({(n.split("/")[0], n.split("/")[2]) for n in names}) == 1
        rotations |= {n.split("/")[2] for n in names}
    assert len(rotations) > 1  # episodes at other rotations than the unrotated characters


def test_without_groups_the_draws_are_learn2learn_s_unchanged(lake_test):
    task = TaskSpec(5, 1, 1)
    a, b = FastEpisodeSampler(lake_test, task, 3), FastEpisodeSampler(lake_test, task, 3)
    assert all(torch.equal(a.sample_indices()[0], b.sample_indices()[0]) for _ in range(5))


def test_other_data_and_impossible_episodes_are_refused(lake_test):
    with pytest.raises(ConfigError, match="needs Omniglot"):
        class_groups(["class_00", "class_01"], "alphabet")
    with pytest.raises(ConfigError, match="no group has 60 classes"):
        FastEpisodeSampler(lake_test, TaskSpec(60, 1, 1), 0, groups=class_groups(lake_test.class_names, "alphabet"))
    with pytest.raises(ConfigError, match="within must be one of"):
        EvalConfig(within="continent")


def test_eval_reports_within_an_alphabet(omniglot_root, tmp_path, capsys):
    from anil_engine.checkpoint import save_checkpoint
    from anil_engine.cli import main
    from anil_engine.config import ModelConfig, Preprocessing
    from anil_engine.meta.trainrun import make_checkpoint
    from anil_engine.models import AnilModel

    torch.manual_seed(0)
    model = AnilModel(ModelConfig(8, 4, 1, 16, 5), Preprocessing(16, 1, (1.0,), (1.0,)))
    ckpt = make_checkpoint(model, None, "anil", {}, {"name": "omniglot", "split_scheme": "lake"})
    save_checkpoint({**ckpt, "fast_lr": 0.4, "adaptation_steps": 1}, tmp_path / "m.pt")
    args = [
        "eval",
        "--checkpoint",
        str(tmp_path / "m.pt"),
        "--data-root",
        str(omniglot_root),
        "--ways",
        "20",
        "--shots",
        "1",
        "--query",
        "1",
        "--episodes",
        "4",
        "--episodes-within",
        "alphabet",
        "--device",
        "cpu",
    ]
    assert main([*args, "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["within"] == "alphabet" and result["split_scheme"] == "lake" and result["ways"] == 20
    assert main(args + ["--quiet"]) == 0
    assert "20-way 1-shot within one alphabet" in capsys.readouterr().out


def test_the_card_gains_within_alphabet_rows_with_the_ncm_baseline(omniglot_root, tmp_path, capsys):
    from anil_engine.cards import parse_settings
    from anil_engine.checkpoint import save_checkpoint
    from anil_engine.cli import main
    from anil_engine.config import ModelConfig, Preprocessing
    from anil_engine.meta.trainrun import make_checkpoint
    from anil_engine.models import AnilModel

    assert parse_settings("20x1, 5x5,20x1@alphabet") == [(20, 1, None), (5, 5, None), (20, 1, "alphabet")]
    with pytest.raises(ConfigError, match="@drawer is not one of @alphabet"):
        parse_settings("20x1@drawer")
    torch.manual_seed(0)
    model = AnilModel(ModelConfig(8, 4, 1, 16, 5), Preprocessing(16, 1, (1.0,), (1.0,)))
    ckpt = make_checkpoint(model, None, "anil", {}, {"name": "omniglot", "split_scheme": "lake"})
    save_checkpoint({**ckpt, "fast_lr": 0.4, "adaptation_steps": 1}, tmp_path / "m.pt")
    card = tmp_path / "m.md"
    args = ["card", "--checkpoint", str(tmp_path / "m.pt"), "--data-root", str(omniglot_root), "--settings",
            "5x1,20x1@alphabet", "--episodes", "4", "--query", "1", "--device", "cpu", "--out", str(card)]  # fmt: skip
    assert main(args) == 0
    text = card.read_text()
    assert "### Within one alphabet (Lake et al. 2015's one-shot protocol)" in text and "Humans: 4.5 % error" in text
    (plain,) = [line for line in text.splitlines() if line.startswith("| 5-way 1-shot |")]
    (within,) = [line for line in text.splitlines() if line.startswith("| 20-way 1-shot within one alphabet |")]
    assert plain.count("±") == 2 and within.count("±") == 3  # inductive, transductive, nearest class mean
    # The card's numbers are eval's on the same episodes.
    ev = ["eval", "--checkpoint", str(tmp_path / "m.pt"), "--data-root", str(omniglot_root), "--ways", "20",
          "--shots", "1", "--query", "1", "--episodes", "4", "--episodes-within", "alphabet", "--device", "cpu",
          "--json"]  # fmt: skip
    capsys.readouterr()
    import json

    for cell, extra in zip(
        within.strip("|").split("|")[1:], ([], ["--bn", "transductive"], ["--method", "ncm"]), strict=True
    ):
        assert main(ev + extra) == 0
        r = json.loads(capsys.readouterr().out)
        assert cell.strip() == f"{r['accuracy']:.2f} ± {r['ci95']:.2f}"


def _tiny_lake_train_args(root, out, *extra: str) -> list[str]:
    """`train` arguments: 2 iterations of 5-way 1-shot on the tiny lake split, validated every iteration."""
    return ["train", "--dataset", "omniglot", "--split-scheme", "lake", "--data-root", str(root),
            "--ways", "5", "--shots", "1", "--query", "1", "--iterations", "2", "--meta-batch-size", "2",
            "--val-every", "1", "--val-episodes", "3", "--hidden-size", "8", "--input-size", "16",
            *extra, "--device", "cpu", "--out", str(out), "--quiet"]  # fmt: skip


def _three_iterations(args: list[str]) -> list[str]:
    """`_tiny_lake_train_args` with 3 iterations instead of 2 (to resume a finished run for one more)."""
    return [a if a != "2" or args[i - 1] != "--iterations" else "3" for i, a in enumerate(args)]


def _validations(monkeypatch) -> list:
    """The EvalConfig of every validation meta-training runs from now on (in this test)."""
    from anil_engine.meta import training

    seen = []
    real = training.evaluate

    def spy(model, data, config, *args, **kwargs):
        seen.append(config)
        return real(model, data, config, *args, **kwargs)

    monkeypatch.setattr(training, "evaluate", spy)
    return seen


def test_meta_training_tasks_within_an_alphabet(omniglot_root, tmp_path, capsys):
    """`train --episodes-within alphabet`: every training task's classes share one alphabet; the run's
    validation is within an alphabet too; the setting is recorded, resumed, and refused with learn2learn's
    sampler (which cannot draw within a group)."""
    import json

    from anil_engine.cli import main
    from anil_engine.config import ModelConfig, Preprocessing, TrainConfig
    from anil_engine.datasets.omniglot import load_omniglot
    from anil_engine.meta.engines import MetaEngine
    from anil_engine.meta.trainrun import task_groups
    from anil_engine.models import AnilModel

    config = TrainConfig(data_root=str(omniglot_root), ways=5, shots=1, query=1, split_scheme="lake", within="alphabet")
    train = load_omniglot(omniglot_root, "lake", "train", size=16)
    model = AnilModel(ModelConfig(8, 4, 1, 16, 5), Preprocessing(16, 1, (1.0,), (1.0,)))
    engine = MetaEngine("batched", model, train, config.task, 0, "cpu", 0.1, 1, True, "auto",
                        task_groups(config, train))  # fmt: skip
    alphabets_seen = set()
    for _ in range(20):
        idx, _labels = engine.sampler.sample_indices()
        names = {train.class_names[int(train.labels[i])] for i in idx}
        assert len(names) == 5 and len({n.split("/")[0] for n in names}) == 1
        assert all(n.endswith("/rot000") for n in names)
        alphabets_seen |= {n.split("/")[0] for n in names}
    assert len(alphabets_seen) > 3
    with pytest.raises(ConfigError, match="fast sampler only"):
        TrainConfig(data_root="d", within="alphabet", sampler="learn2learn")
    with pytest.raises(ConfigError, match="fast sampler only"):
        TrainConfig(data_root="d", within="alphabet", engine="reference")

    out = tmp_path / "run"
    args = _tiny_lake_train_args(omniglot_root, out, "--episodes-within", "alphabet")
    assert main(args) == 0
    assert json.loads((out / "config.json").read_text())["within"] == "alphabet"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("val_accuracy") is not None for r in records)
    resumed = _three_iterations(args)
    assert main(resumed + ["--resume"]) == 0
    plain = [a for a in resumed if a not in ("--episodes-within", "alphabet")]
    capsys.readouterr()
    assert main(plain + ["--resume"]) == 2  # other settings than the saved run's: refused
    assert "was trained with other settings" in capsys.readouterr().err


def test_training_tasks_within_rotated_alphabets_validated_within_unrotated_ones(omniglot_root, tmp_path):
    """`train --episodes-within rotated-alphabet --val-within alphabet`: training tasks from one alphabet at one
    rotation, validation by Lake's protocol; both recorded in the run's config."""
    import json

    from anil_engine.cli import main
    from anil_engine.config import TrainConfig
    from anil_engine.datasets.omniglot import load_omniglot
    from anil_engine.meta.trainrun import task_groups

    config = TrainConfig(data_root="d", split_scheme="lake", within="rotated-alphabet", val_within="alphabet")
    assert config.validation_within == "alphabet"
    train = load_omniglot(omniglot_root, "lake", "train", size=16)
    groups = task_groups(config, train)
    assert {train.class_names[g[0]].split("/")[2] for g in groups} == {"rot000", "rot090", "rot180", "rot270"}
    out = tmp_path / "run"
    extra = ("--episodes-within", "rotated-alphabet", "--val-within", "alphabet", "--sampler", "fast")
    assert main(_tiny_lake_train_args(omniglot_root, out, *extra)) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["within"], saved["val_within"]) == ("rotated-alphabet", "alphabet")
    assert any("val_accuracy" in json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines())


def test_validation_within_an_alphabet_while_training_tasks_stay_mixed(omniglot_root, tmp_path, monkeypatch):
    """`train --val-within alphabet`: best.pt is chosen on tasks within one alphabet (the protocol tested),
    while the training tasks stay the whole split's; recorded in config.json, and other values refused."""
    import json

    from anil_engine.cli import main
    from anil_engine.config import TrainConfig
    from anil_engine.meta.trainrun import task_groups

    validated = _validations(monkeypatch)
    out = tmp_path / "run"
    args = _tiny_lake_train_args(omniglot_root, out, "--val-within", "alphabet")
    assert main(args) == 0
    assert [v.within for v in validated] == ["alphabet"] * 3  # iterations 0, 1 and 2
    saved = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert (saved.val_within, saved.within) == ("alphabet", None)
    assert task_groups(saved, None) is None  # the training tasks: the whole split
    with pytest.raises(ConfigError, match="val_within must be one of"):
        TrainConfig(data_root="d", val_within="continent")


def test_validation_by_the_nearest_class_mean_of_the_trunk(omniglot_root, tmp_path, monkeypatch):
    """`train --val-method ncm`: best.pt is chosen by the trunk's nearest class mean (within an alphabet here),
    whatever the head; recorded in config.json, the default stays the head, other values refused."""
    import json

    from anil_engine.cli import main
    from anil_engine.config import TrainConfig

    validated = _validations(monkeypatch)
    out = tmp_path / "run"
    assert main(_tiny_lake_train_args(omniglot_root, out, "--val-method", "ncm", "--val-within", "alphabet")) == 0
    assert [(v.method, v.within) for v in validated] == [("ncm", "alphabet")] * 3
    assert json.loads((out / "config.json").read_text())["val_method"] == "ncm"
    assert TrainConfig(data_root="d").validation(0).method == "head"
    with pytest.raises(ConfigError, match="val_method must be one of"):
        TrainConfig(data_root="d", val_method="knn")


def _script(name: str = "compare_trunks"):
    """scripts/NAME.py as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_lake_checkpoint(path, seed):
    """A random 8-channel CNN4 on 16x16 inputs, saved as a lake-split checkpoint; returns the model."""
    from anil_engine.checkpoint import save_checkpoint
    from anil_engine.config import ModelConfig, Preprocessing
    from anil_engine.meta.trainrun import make_checkpoint
    from anil_engine.models import AnilModel

    torch.manual_seed(seed)
    model = AnilModel(ModelConfig(8, 4, 1, 16, 5), Preprocessing(16, 1, (1.0,), (1.0,)))
    save_checkpoint(make_checkpoint(model, None, "anil", {}, {"name": "omniglot", "split_scheme": "lake"}), path)
    return model


def test_two_trunks_compared_on_the_same_episodes(omniglot_root, tmp_path, capsys):
    """scripts/compare_trunks.py: each trunk's accuracy and the paired difference, on the same seeded episodes."""
    from anil_engine.evaluation import mean_ci95

    compare = _script()
    for seed in (0, 1):
        _tiny_lake_checkpoint(tmp_path / f"m{seed}.pt", seed)
    args = ["--data-root", str(omniglot_root), "--split", "test", "--within", "alphabet", "--ways", "20",
            "--query", "1", "--episodes", "6"]  # fmt: skip
    a, b, diff = compare.main([str(tmp_path / "m0.pt"), str(tmp_path / "m1.pt"), *args])
    assert diff[0] == pytest.approx(b[0] - a[0])
    same = compare.main([str(tmp_path / "m0.pt"), str(tmp_path / "m0.pt"), *args])
    assert same[0] == a and same[2] == mean_ci95([0.0] * 6)  # a trunk against itself: no difference
    out = capsys.readouterr().out
    assert "second - first, paired (same episodes): 0.00 ± 0.00" in out
    namespace = compare.argparse.Namespace(data_root=str(omniglot_root), split="test", within="alphabet", ways=20,
                                           shots=1, query=1, episodes=6, seed=0, l2=False)  # fmt: skip
    alphabets = []
    accuracies = compare.episode_accuracies(str(tmp_path / "m0.pt"), namespace, alphabets=alphabets)
    assert len(accuracies) == 6 and mean_ci95(accuracies) == a
    # Each episode's alphabet, in order; with --within alphabet the script prints the difference per alphabet.
    with open(CHARACTERS_TSV) as f:  # the lake split's test classes: the evaluation alphabets
        evaluation = {line.split("\t")[3] for line in f if line.split("\t")[1] == "evaluation"}
    assert len(alphabets) == 6 and set(alphabets) <= evaluation and len(set(alphabets)) > 1
    compare.main([str(tmp_path / "m0.pt"), str(tmp_path / "m1.pt"), *args])
    out = capsys.readouterr().out
    for name in set(alphabets):
        assert f"  {name} ({alphabets.count(name)} episodes): " in out
    assert f"the {len(set(alphabets))} alphabets as the sample: " in out


def test_folds_saved_and_pooled_over_their_alphabets(omniglot_root, tmp_path, capsys):
    """--episodes-out keeps each episode's accuracies and alphabet; --pool joins the files of two folds into one
    comparison whose per-alphabet interval counts both folds' alphabets; a fold pooled twice is refused."""
    import json

    compare = _script()
    for seed in (0, 1):
        _tiny_lake_checkpoint(tmp_path / f"m{seed}.pt", seed)
    m0, m1 = str(tmp_path / "m0.pt"), str(tmp_path / "m1.pt")
    common = ["--data-root", str(omniglot_root), "--within", "alphabet", "--ways", "20", "--query", "1",
              "--episodes", "6"]  # fmt: skip
    # the lake split's test and val alphabets stand in for two folds (disjoint alphabets)
    first = compare.main([m0, m1, *common, "--split", "test", "--episodes-out", str(tmp_path / "f1.json")])
    second = compare.main([m0, m1, *common, "--split", "val", "--episodes-out", str(tmp_path / "f2.json")])
    saved = [json.loads((tmp_path / f"f{i}.json").read_text()) for i in (1, 2)]
    assert compare.mean_ci95(saved[0]["first"]) == first[0] and compare.mean_ci95(saved[1]["second"]) == second[1]
    assert all(len(s["alphabets"]) == 6 for s in saved)
    capsys.readouterr()
    pooled = compare.main(["--pool", str(tmp_path / "f1.json"), str(tmp_path / "f2.json")])
    diffs = [y - x for s in saved for x, y in zip(s["first"], s["second"], strict=True)]
    assert pooled[2] == compare.mean_ci95(diffs)
    assert pooled[3] == compare.by_alphabet(diffs, saved[0]["alphabets"] + saved[1]["alphabets"])[1]
    names = set(saved[0]["alphabets"]) | set(saved[1]["alphabets"])
    out = capsys.readouterr().out
    assert "2 files, 12 episodes" in out and f"the {len(names)} alphabets as the sample: " in out
    with pytest.raises(SystemExit, match="already pooled"):
        compare.main(["--pool", str(tmp_path / "f1.json"), str(tmp_path / "f1.json")])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="bad.json: not an --episodes-out file"):
        compare.main(["--pool", str(tmp_path / "bad.json")])


def test_the_paired_difference_with_the_alphabets_as_the_sample():
    """compare_trunks.by_alphabet: each alphabet's mean difference is one observation, a t interval over them."""
    import math

    compare = _script()
    groups, (mean, ci) = compare.by_alphabet([1.0, 0.0, 3.0, 4.0, 4.0, 4.0], ["A", "B", "A", "C", "C", "C"])
    assert groups == {"A": [1.0, 3.0], "B": [0.0], "C": [4.0, 4.0, 4.0]}
    # alphabet means 2, 0, 4: mean 2, sd 2; t(0.975, 2 degrees of freedom) = 4.3027
    assert mean == pytest.approx(2.0) and ci == pytest.approx(4.3027 * 2 / math.sqrt(3), rel=1e-4)
    one = compare.by_alphabet([1.0, 2.0], ["A", "A"])[1]
    assert one[0] == pytest.approx(1.5) and math.isnan(one[1])  # one alphabet: no interval over alphabets


def test_l2_normalised_features_ignore_each_image_s_feature_length(omniglot_root, tmp_path, monkeypatch):
    """compare_trunks.py --l2: the class means of unit-length features, so rescaling any image's features
    changes nothing (without --l2 it does)."""
    compare = _script()
    _tiny_lake_checkpoint(tmp_path / "m.pt", 0)
    namespace = compare.argparse.Namespace(data_root=str(omniglot_root), split="test", within="alphabet", ways=20,
                                           shots=1, query=1, episodes=20, seed=0, l2=True)  # fmt: skip
    plain = {l2: compare.episode_accuracies(str(tmp_path / "m.pt"), compare.argparse.Namespace(
        **{**vars(namespace), "l2": l2})) for l2 in (False, True)}  # fmt: skip
    original = compare.view_features
    scales = {}

    def rescaled(model, images, views):
        features = original(model, images, views)
        g = torch.Generator().manual_seed(0)
        scales["s"] = torch.rand(len(features), 1, generator=g) * 100 + 0.01
        return features * scales["s"]

    monkeypatch.setattr(compare, "view_features", rescaled)
    assert compare.episode_accuracies(str(tmp_path / "m.pt"), namespace) == plain[True]
    namespace.l2 = False
    assert compare.episode_accuracies(str(tmp_path / "m.pt"), namespace) != plain[False]


def test_views_averaged_features_compared(omniglot_root, tmp_path, capsys):
    """compare_trunks.py --views-b: one trunk against itself with test-time views averaged, paired."""
    from anil_engine.evaluation import split_features
    from anil_engine.jobs import run_to_end

    compare = _script()
    model = _tiny_lake_checkpoint(tmp_path / "m.pt", 0)
    args = ["--data-root", str(omniglot_root), "--split", "test", "--within", "alphabet", "--ways", "20",
            "--query", "1", "--episodes", "6"]  # fmt: skip
    plain, viewed, diff = compare.main([str(tmp_path / "m.pt"), str(tmp_path / "m.pt"), *args, "--views-b", "9"])
    assert diff[0] == pytest.approx(viewed[0] - plain[0])
    assert "second - first, paired (same episodes)" in capsys.readouterr().out

    images = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    one = compare.view_features(model, images, 1)
    assert torch.allclose(one, run_to_end(split_features(model, images)), atol=1e-4)
    nine = compare.view_features(model, images, 9)
    assert nine.shape == one.shape and torch.isfinite(nine).all() and not torch.allclose(nine, one)
    shifted = compare.view_features(model, images, 5)  # the first 5 views: the original and 4 one-pixel shifts
    assert not torch.allclose(shifted, one) and not torch.allclose(shifted, nine)
    with pytest.raises(SystemExit):
        compare.main([str(tmp_path / "m.pt"), str(tmp_path / "m.pt"), *args, "--views-b", "3"])


def test_two_trunks_joined_as_an_ensemble(omniglot_root, tmp_path, capsys):
    """compare_trunks.py --join-b: the second trunk's unit-length features side by side with a third's. A trunk
    joined with itself scores exactly as its unit-length features alone; joined with another trunk, otherwise."""
    compare = _script()
    for seed in (0, 1):
        _tiny_lake_checkpoint(tmp_path / f"m{seed}.pt", seed)
    m0, m1 = str(tmp_path / "m0.pt"), str(tmp_path / "m1.pt")
    namespace = compare.argparse.Namespace(data_root=str(omniglot_root), split="test", within="alphabet", ways=20,
                                           shots=1, query=1, episodes=20, seed=0, l2=True)  # fmt: skip
    alone = compare.episode_accuracies(m0, namespace)
    assert compare.episode_accuracies(m0, namespace, joined=m0) == alone
    ensemble = compare.episode_accuracies(m0, namespace, joined=m1)
    assert len(ensemble) == 20 and ensemble != alone
    args = ["--data-root", str(omniglot_root), "--split", "test", "--within", "alphabet", "--ways", "20",
            "--query", "1", "--episodes", "20", "--l2"]  # fmt: skip
    first, second, diff = compare.main([m0, m0, *args, "--join-b", m1])
    assert second == compare.mean_ci95(ensemble) and diff[0] == pytest.approx(second[0] - first[0])
    vinyals = tmp_path / "v.pt"  # the same trunk on the other split: other classes, refused by name
    from anil_engine.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(m1)
    ckpt["dataset"]["split_scheme"] = "vinyals"
    save_checkpoint(ckpt, vinyals)
    with pytest.raises(SystemExit, match="join like with like"):
        compare.episode_accuracies(m0, namespace, joined=str(vinyals))


def test_square_root_and_support_centred_features(omniglot_root, tmp_path, monkeypatch):
    """compare_trunks.py --sqrt-b undoes squared features; --centre-b ignores what every image's features share
    (a vector added to all of them changes nothing), where unit-length features alone change."""
    compare = _script()
    _tiny_lake_checkpoint(tmp_path / "m.pt", 0)
    m = str(tmp_path / "m.pt")
    namespace = compare.argparse.Namespace(data_root=str(omniglot_root), split="test", within="alphabet", ways=20,
                                           shots=1, query=1, episodes=20, seed=0, l2=False)  # fmt: skip
    plain, centred = compare.episode_accuracies(m, namespace), compare.episode_accuracies(m, namespace, centre=True)
    l2 = compare.episode_accuracies(m, compare.argparse.Namespace(**{**vars(namespace), "l2": True}))
    original = compare.view_features
    monkeypatch.setattr(compare, "view_features", lambda model, images, views: original(model, images, views) ** 2)
    assert compare.episode_accuracies(m, namespace) != plain
    assert compare.episode_accuracies(m, namespace, sqrt=True) == plain
    shift = torch.randn(8, generator=torch.Generator().manual_seed(0)).abs() * 10  # the tiny trunk: 8 features
    monkeypatch.setattr(compare, "view_features", lambda model, images, views: original(model, images, views) + shift)
    assert compare.episode_accuracies(m, namespace, centre=True) == centred
    namespace.l2 = True
    assert compare.episode_accuracies(m, namespace) != l2
    monkeypatch.setattr(compare, "view_features", original)
    namespace.l2 = False
    args = ["--data-root", str(omniglot_root), "--split", "test", "--within", "alphabet", "--ways", "20",
            "--query", "1", "--episodes", "20"]  # fmt: skip
    first, second, diff = compare.main([m, m, *args, "--sqrt-b", "--centre-b"])
    assert second == compare.mean_ci95(compare.episode_accuracies(m, namespace, sqrt=True, centre=True))
    assert diff[0] == pytest.approx(second[0] - first[0])


def test_features_centred_on_the_training_split_s_mean(omniglot_root, tmp_path, monkeypatch):
    """compare_trunks.py --base-centre-b (SimpleShot's CL2N): features minus the training images' mean feature,
    then unit length. A vector added to every image's features changes nothing; the centre is the training
    split's, not the episode's support (--centre-b); neither the other centring nor a joined trunk goes with it."""
    compare = _script()
    _tiny_lake_checkpoint(tmp_path / "m.pt", 0)
    m = str(tmp_path / "m.pt")
    namespace = compare.argparse.Namespace(data_root=str(omniglot_root), split="test", within="alphabet", ways=20,
                                           shots=1, query=1, episodes=20, seed=0, l2=False)  # fmt: skip
    centred = compare.episode_accuracies(m, namespace, base_centre=True)
    assert centred != compare.episode_accuracies(m, namespace, centre=True)
    original, splits = compare.trunk_features, []

    def recorded(checkpoint, args, *rest):
        splits.append(args.split)
        return original(checkpoint, args, *rest)

    monkeypatch.setattr(compare, "trunk_features", recorded)
    assert compare.episode_accuracies(m, namespace, sqrt=True, base_centre=True) != centred
    assert splits == ["test", "train"] and namespace.split == "test"  # the evaluated split is left as it was
    views = compare.view_features
    shift = torch.randn(8, generator=torch.Generator().manual_seed(0)).abs() * 10  # the tiny trunk: 8 features
    monkeypatch.setattr(compare, "view_features", lambda model, images, n: views(model, images, n) + shift)
    assert compare.episode_accuracies(m, namespace, base_centre=True) == centred
    assert compare.episode_accuracies(m, namespace) != compare.episode_accuracies(m, namespace, base_centre=True)
    args = ["--data-root", str(omniglot_root), "--split", "test", "--within", "alphabet", "--ways", "20",
            "--query", "1", "--episodes", "20"]  # fmt: skip
    for other in (["--centre-b"], ["--join-b", m]):  # the second trunk's features alone are centred
        with pytest.raises(SystemExit):
            compare.main([m, m, *args, *other, "--base-centre-b"])


def test_meta_training_from_the_prototype_head_start(omniglot_root, tmp_path, monkeypatch):
    """`train --head-init proto --flip`: every task's head starts from its support prototypes in meta-training too
    (Proto-MAML): the trunk learns, the unused shared head stays as it was, validation (which keeps best.pt)
    adapts as the checkpoint will at test time, and the checkpoint's test-time start is the prototypes."""
    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.cli import main

    validated = _validations(monkeypatch)
    out = tmp_path / "run"
    args = _tiny_lake_train_args(omniglot_root, out, "--head-init", "proto", "--flip", "--checkpoint-every", "1")
    assert main(args) == 0
    assert [(v.head_init, v.flip) for v in validated] == [("proto", True)] * 3  # iterations 0, 1 and 2
    before = load_checkpoint(out / "last.pt")
    assert before["head_init"] == "proto"
    assert main(_three_iterations(args) + ["--resume"]) == 0
    after = load_checkpoint(out / "last.pt")
    state, later = before["state_dict"], after["state_dict"]
    heads = [k for k in state if k.startswith("head.")]
    assert heads and all(torch.equal(state[k], later[k]) for k in heads)
    trunk = [k for k in state if k.endswith("conv.weight")]
    assert trunk and all(not torch.equal(state[k], later[k]) for k in trunk)


def test_unpooled_features_are_the_last_block_before_its_pool(omniglot_root, tmp_path, capsys):
    """compare_trunks.py --unpooled-b: the last conv block's map before its max pool, flattened; pooling it gives
    back the trunk's own features, and the paired comparison runs on it."""
    from anil_engine.evaluation import split_features
    from anil_engine.jobs import run_to_end

    compare = _script()
    model = _tiny_lake_checkpoint(tmp_path / "m.pt", 0)
    images = torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8)
    unpooled = compare.unpooled_features(model, images)
    pooled = run_to_end(split_features(model, images))
    side = int((unpooled.shape[1] // pooled.shape[1]) ** 0.5)
    assert unpooled.shape == (5, pooled.shape[1] * side * side) and side >= 2
    maps = unpooled.view(5, pooled.shape[1], side, side)
    assert torch.allclose(torch.nn.functional.max_pool2d(maps, 2).flatten(1), pooled, atol=1e-4)
    args = ["--data-root", str(omniglot_root), "--split", "test", "--within", "alphabet", "--ways", "20",
            "--query", "1", "--episodes", "6"]  # fmt: skip
    plain, flat, diff = compare.main([str(tmp_path / "m.pt"), str(tmp_path / "m.pt"), *args, "--unpooled-b"])
    assert diff[0] == pytest.approx(flat[0] - plain[0])
    assert "second - first, paired (same episodes)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="one view"):
        compare.main([str(tmp_path / "m.pt"), str(tmp_path / "m.pt"), *args, "--unpooled-b", "--views-b", "5"])


def test_pre_training_variants_screened_against_the_engine_s_own_step(omniglot_root, tmp_path):
    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.config import PretrainConfig
    from anil_engine.jobs import run_to_end
    from anil_engine.meta.pretraining import _Pretraining, pretrain

    screen = _script("omniglot_pretrain_screen")
    weights, tiny = {}, ["--data-root", str(omniglot_root), "--epochs", "1", "--hidden-size", "8"]
    for variant in screen.VARIANTS:
        out = tmp_path / f"{variant}.pt"
        teacher = ["--teacher", str(tmp_path / "base.pt")] if variant == "distil" else []  # base runs first
        screen.main([variant, *tiny, *teacher, "--out", str(out)])
        weights[variant] = load_checkpoint(out)["state_dict"]
        assert not (tmp_path / f"{variant}.resume.pt").exists()
    # `base` is `pretrain --crop ink` itself: the same weights.
    config = PretrainConfig(
        "omniglot", str(omniglot_root), "lake", epochs=1, hidden_size=8, input_size=28, ways=20, seed=42,
        device="cpu", crop="ink", compute="float32",
    )  # fmt: skip
    run_to_end(pretrain(config, tmp_path / "engine.pt"))
    engine = load_checkpoint(tmp_path / "engine.pt")["state_dict"]
    assert all(torch.equal(engine[k], weights["base"][k]) for k in engine)
    for variant in screen.VARIANTS[1:]:  # each variant changes what the trunk learns
        assert any(not torch.equal(weights[variant][k], engine[k]) for k in engine), variant
    # The screen leaves the engine as it was: its step and its data loading.
    assert _Pretraining.train_step.__module__ == "anil_engine.meta.pretraining"
    import anil_engine.meta.pretraining as pretraining
    from anil_engine.datasets import load_dataset

    assert pretraining.load_dataset is load_dataset
    # About half the images get a white square (clipped at the edges: at least its 4x4 corner); the others none.
    x = torch.zeros(64, 1, 28, 28)
    erased = screen.erase(x, torch.Generator().manual_seed(0))
    hit = (erased == 1).flatten(1).any(1)
    assert 10 < int(hit.sum()) < 54 and bool((erased[~hit] == 0).all())
    assert int((erased[hit] == 1).flatten(1).sum(1).min()) >= 4 * 4  # at least a 4x4 corner of a square
