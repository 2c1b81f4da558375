from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anil_engine.classifier import FewShotClassifier
from anil_engine.config import ModelConfig, Preprocessing
from anil_engine.errors import ConfigError
from anil_engine.models import AnilModel, calibrate_batchnorm
from anil_engine.project import Project, ProjectError, load_project, save_project


def make_classifier(ways=5):
    """A random trunk whose BatchNorm statistics are calibrated on the synthetic images."""
    torch.manual_seed(0)
    pre = Preprocessing(32, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    model = AnilModel(ModelConfig(16, 4, 3, 32, ways), pre)
    calibrate_batchnorm(model, torch.rand(64, 3, 32, 32))
    return FewShotClassifier(model, fast_lr=0.5, steps=20)


def support_from(root: Path, n_classes=3, per_class=4):
    classes = sorted(p for p in root.iterdir())[:n_classes]
    return [(c.name, sorted(c.iterdir())[:per_class]) for c in classes]


def test_adapt_and_predict_on_support_images(folder_root):
    clf = make_classifier()
    support = support_from(folder_root)
    result = clf.adapt(support)
    assert result.class_names == ["class_00", "class_01", "class_02"]
    assert result.new_images == 12 and result.n_images == 12
    assert "mean row" in result.head_init
    again = clf.adapt(support)
    assert again.new_images == 0  # features are cached
    held_out = [sorted((folder_root / n).iterdir())[-1] for n, _ in support]
    preds, skipped = clf.predict(held_out)
    assert not skipped and [p.label for p in preds] == [n for n, _ in support]
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in preds)


def test_prediction_does_not_depend_on_the_batch(folder_root):
    clf = make_classifier()
    clf.adapt(support_from(folder_root))
    paths = sorted((folder_root / "class_05").iterdir())
    together, _ = clf.predict(paths)
    alone, _ = make_classifier_with_same_head(clf).predict(paths[:1])
    assert together[0].probabilities == pytest.approx(alone[0].probabilities, abs=1e-6)


def make_classifier_with_same_head(clf):
    other = FewShotClassifier(clf.model, clf.fast_lr, clf.steps)
    other.set_head(clf.class_names, clf.weight, clf.bias)
    return other


def test_leave_one_out_and_folder_evaluation(folder_root):
    clf = make_classifier()
    clf.adapt(support_from(folder_root, 3, 3))
    loo = clf.leave_one_out()
    assert loo.n_images == 9 and len(loo.confusion) == 3 and sum(map(sum, loo.confusion)) == 9
    assert loo.accuracy >= 66.0


def test_labelled_folder_evaluation(tmp_path, folder_root):
    import shutil

    clf = make_classifier()
    clf.adapt(support_from(folder_root, 3, 3))
    for name in ("class_00", "class_01", "class_02"):
        shutil.copytree(folder_root / name, tmp_path / "labelled" / name)
    report = clf.evaluate_folder(tmp_path / "labelled")
    assert report.n_images == 18 and set(report.per_class) == {"class_00", "class_01", "class_02"}
    assert report.accuracy >= 80.0
    shutil.copytree(folder_root / "class_07", tmp_path / "labelled" / "class_07")
    with pytest.raises(ConfigError, match="class_07"):
        clf.evaluate_folder(tmp_path / "labelled")


def test_unreadable_support_file_is_skipped_and_named(tmp_path, folder_root):
    clf = make_classifier()
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    support = support_from(folder_root, 2, 2)
    support[0] = (support[0][0], [*support[0][1], bad])
    result = clf.adapt(support)
    assert result.n_images == 4 and any("bad.png" in m for m in result.skipped)


def test_one_class_is_refused(folder_root):
    clf = make_classifier()
    with pytest.raises(ConfigError, match="at least 2 classes"):
        clf.adapt(support_from(folder_root, 1, 2))
    with pytest.raises(ConfigError, match="no adapted head"):
        clf.predict([])


def test_project_round_trip(tmp_path, folder_root):
    clf = make_classifier()
    support = support_from(folder_root, 2, 2)
    clf.adapt(support)
    project = Project(str(tmp_path / "m.pt"), [(n, [str(p) for p in ps]) for n, ps in support])
    save_project(project, tmp_path / "work.anilproj")
    loaded = load_project(tmp_path / "work.anilproj")
    assert loaded.classes == project.classes and loaded.checkpoint == project.checkpoint
    # No head is stored: a fresh classifier adapted on the opened project's images gives the same head.
    again = make_classifier()
    again.adapt([(n, [Path(p) for p in ps]) for n, ps in loaded.classes])
    assert again.class_names == clf.class_names
    assert torch.equal(again.weight, clf.weight) and torch.equal(again.bias, clf.bias)
    (tmp_path / "bad.anilproj").write_text("{")
    with pytest.raises(ProjectError, match="bad.anilproj: not a readable project file"):
        load_project(tmp_path / "bad.anilproj")


def test_progress_counts_every_image_and_stopping_keeps_the_finished_batches(folder_root, monkeypatch, tmp_path):
    import anil_engine.classifier as classifier_module

    monkeypatch.setattr(classifier_module, "BATCH", 5)
    clf = make_classifier()
    support = support_from(folder_root, 3, 4)  # 12 images: batches of 4+... per class (one class = one call)
    gen = clf.iter_adapt(support)
    items = []
    with pytest.raises(StopIteration) as stop:
        while True:
            items.append(next(gen))
    result = stop.value.value
    assert [(i.stage, i.done, i.total) for i in items] == [
        ("adapt", 4, 12),
        ("adapt", 8, 12),
        ("adapt", 12, 12),
    ]
    assert result.new_images == 12
    # Classify 18 images (one not an image) in batches of 5; stop after the first batch.
    (tmp_path / "broken.png").write_bytes(b"not a png")
    paths = [*sorted((folder_root / "class_05").iterdir()), *sorted((folder_root / "class_06").iterdir())]
    paths = [*paths, tmp_path / "broken.png", *sorted((folder_root / "class_07").iterdir())[:5]]
    gen = clf.iter_predict(paths)
    first = next(gen)
    assert (first.stage, first.done, first.total) == ("classify", 5, 18)
    gen.close()  # what the app's Stop does
    assert len(clf._cache) == 12 + 5
    items = []
    gen = clf.iter_predict(paths)
    with pytest.raises(StopIteration) as stop:
        while True:
            items.append(next(gen))
    predictions, skipped = stop.value.value
    assert [i.done for i in items] == [10, 15, 18]  # the 5 cached count at once; the rest in batches
    assert len(predictions) == 17 and len(skipped) == 1 and "broken.png" in skipped[0]
    fresh = make_classifier_with_same_head(clf)
    expected, _ = fresh.predict(paths)
    assert [p.probabilities for p in predictions] == [pytest.approx(e.probabilities, abs=1e-6) for e in expected]


def test_folder_evaluation_progress_spans_all_classes(folder_root, tmp_path):
    clf = make_classifier()
    clf.adapt(support_from(folder_root, 3, 2))
    labelled = tmp_path / "labelled"
    for c in ("class_00", "class_01", "class_02"):
        (labelled / c).mkdir(parents=True)
        for p in sorted((folder_root / c).iterdir())[2:]:
            (labelled / c / p.name).write_bytes(p.read_bytes())
    gen = clf.iter_evaluate_folder(labelled)
    items = []
    with pytest.raises(StopIteration) as stop:
        while True:
            items.append(next(gen))
    assert [(i.stage, i.done, i.total) for i in items] == [
        ("evaluate", 4, 12),
        ("evaluate", 8, 12),
        ("evaluate", 12, 12),
    ]
    assert stop.value.value == clf.evaluate_folder(labelled)


def test_leave_one_out_reports_progress_and_matches_the_plain_call(folder_root):
    clf = make_classifier()
    clf.adapt(support_from(folder_root, 3, 6))  # 18 images
    gen = clf.iter_leave_one_out()
    items = []
    with pytest.raises(StopIteration) as stop:
        while True:
            items.append(next(gen))
    assert [(i.stage, i.done, i.total) for i in items] == [("leave-one-out", n, 18) for n in range(1, 19)]
    assert stop.value.value == clf.leave_one_out()


def test_project_saved_without_a_model_keeps_no_model(tmp_path, folder_root):
    image = str(sorted((folder_root / "class_00").iterdir())[0])
    save_project(Project("", [("a", [image])]), tmp_path / "p.anilproj")
    loaded = load_project(tmp_path / "p.anilproj")
    assert loaded.checkpoint == "" and loaded.classes == [("a", [image])]


def test_predictions_csv_has_a_column_for_every_class_seen():
    import csv
    import io

    from anil_engine.classifier import Prediction, predictions_csv

    before = Prediction("/x/a.png", "cat", 0.75, {"cat": 0.75, "dog": 0.25})
    after = Prediction("/x/b,c.png", "owl", 0.5, {"cat": 0.2, "dog": 0.3, "owl": 0.5})  # a class added later
    rows = list(csv.reader(io.StringIO(predictions_csv([before, after]))))
    assert rows == [
        ["path", "label", "confidence", "p(cat)", "p(dog)", "p(owl)"],
        ["/x/a.png", "cat", "0.750000", "0.750000", "0.250000", "0.000000"],
        ["/x/b,c.png", "owl", "0.500000", "0.200000", "0.300000", "0.500000"],
    ]


def test_missing_and_unreadable_files_are_skipped_with_their_names(folder_root, tmp_path):
    clf = make_classifier()
    clf.adapt(support_from(folder_root, 2, 2))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    good = sorted((folder_root / "class_05").iterdir())[0]
    predictions, skipped = clf.predict([tmp_path / "gone.png", tmp_path / "bad.png", good])
    assert [p.path for p in predictions] == [str(good)]
    assert skipped[0] == f"{tmp_path / 'gone.png'}: file not found"
    assert skipped[1].startswith(f"{tmp_path / 'bad.png'}: not an image Pillow can read")
