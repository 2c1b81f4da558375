"""GUI tests: real drops (QMimeData with file URLs), adaptation off the GUI thread, undo, projects, training."""

from __future__ import annotations

import csv
import os
import sys
import threading
from pathlib import Path

import pytest
import torch

pytest.importorskip("PySide6")

from PySide6.QtCore import QPoint, QSettings, Qt  # noqa: E402

from app.testing import TIMEOUT_MS as TIMEOUT  # noqa: E402
from app.testing import send_drop as drop  # noqa: E402
from app.window import MainWindow  # noqa: E402


def finish_run_and_use_it(qtbot, window, d):
    """Start the dialog's run; at its end the current model stays until "Use this model" is clicked."""
    before = window.checkpoint_path
    d.start(resume=False)
    qtbot.waitUntil(lambda: d.use_button.isEnabled() and not d.job.running, timeout=TIMEOUT * 3)
    assert window.checkpoint_path == before  # no silent model swap
    d.show()
    assert d.use_button.isVisible()
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT * 3) as loaded:
        d.use_button.click()
    return loaded


def adapt_threads(window) -> list[str]:
    """Record the thread every adaptation runs in."""
    seen = []
    original = window.classifier.iter_adapt

    def recording(*args, **kwargs):  # a generator: its body runs where the job drives it
        seen.append(threading.current_thread().name)
        return (yield from original(*args, **kwargs))

    window.classifier.iter_adapt = recording
    return seen


def test_drop_folder_of_class_folders_adapts_off_the_gui_thread(qtbot, window, folder_root):
    threads = adapt_threads(window)
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT) as blocker:
        drop(window.support_view, [folder_root])
    assert window.support.names() == [f"class_{i:02d}" for i in range(12)]
    assert len(blocker.args[0].class_names) == 12
    assert threads and all(t != threading.main_thread().name for t in threads)
    assert "Learned 12 classes" in window.support_view.status.text()
    assert "Reading the dropped files" not in window.statusBar().currentMessage()  # read: not said for 5 s more


def test_drop_images_on_card_undo_redo(qtbot, window, folder_root):
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    assert window.support.names() == ["class_00", "class_01"]
    extra = sorted((folder_root / "class_02").iterdir())[:2]
    drop(window.support_view.cards["class_00"], extra)
    assert len(window.support.find("class_00").paths) == 8
    window.support.undo_stack.undo()
    assert len(window.support.find("class_00").paths) == 6
    window.support.undo_stack.redo()
    assert len(window.support.find("class_00").paths) == 8
    window.support.rename_class("class_00", "cats")
    assert window.support.names() == ["cats", "class_01"]
    window.support.undo_stack.undo()
    window.support.remove_class("class_01")
    assert window.support.names() == ["class_00"]
    window.support.undo_stack.undo()
    assert window.support.names() == ["class_00", "class_01"]
    assert not window.support.undo_stack.isClean() and window.windowTitle().endswith("*")


def test_loose_images_start_a_class_and_bad_files_are_named(qtbot, window, folder_root, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("x")
    messages = []
    window.errors.reported.connect(lambda level, text: messages.append(text))
    drop(window.support_view, sorted((folder_root / "class_03").iterdir())[:3] + [bad])
    assert window.support.names() == ["class"]
    assert any("notes.txt" in m for m in messages)


def test_classify_export_sort_and_evaluate(qtbot, window, folder_root, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    support = tmp_path / "support"
    for name in ("class_00", "class_01", "class_02"):
        (support / name).mkdir(parents=True)
        for p in sorted((folder_root / name).iterdir())[:3]:
            (support / name / p.name).write_bytes(p.read_bytes())
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [support])
    queries = [sorted((folder_root / n).iterdir())[-1] for n in ("class_00", "class_01", "class_02")]
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT) as blocker:
        drop(window.classify_panel, queries)
    assert [p.label for p in blocker.args[0]] == ["class_00", "class_01", "class_02"]
    assert window.classify_panel.results_model.rowCount() == 3
    window.exports.export_csv(tmp_path / "out.csv")
    rows = list(csv.reader(open(tmp_path / "out.csv")))
    assert rows[0][:3] == ["path", "label", "confidence"] and len(rows) == 4
    # Sort into folders…: a visible, enabled button; copies every result into its class's folder in a job.
    assert window.classify_panel.sort_button.isVisibleTo(window) and window.classify_panel.sort_button.isEnabled()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "sorted"))
    messages = []
    window.errors.reported.connect(lambda level, text: messages.append(text))
    window.classify_panel.sort_button.click()
    qtbot.waitUntil(lambda: any(m.startswith("sorted 3 photo(s)") for m in messages), timeout=TIMEOUT)
    for query in queries:
        assert (tmp_path / "sorted" / query.parent.name / query.name).read_bytes() == query.read_bytes()
    with qtbot.waitSignal(window.evaluated, timeout=TIMEOUT) as loo:
        window.leave_one_out()
    assert loo.args[0].n_images == 9
    assert not window.evaluate_panel.confusion.pixmap().isNull()
    labelled = tmp_path / "labelled"
    for name in ("class_00", "class_01"):
        (labelled / name).mkdir(parents=True)
        for p in sorted((folder_root / name).iterdir())[3:]:
            (labelled / name / p.name).write_bytes(p.read_bytes())
    with qtbot.waitSignal(window.evaluated, timeout=TIMEOUT) as folder_eval:
        drop(window.evaluate_panel, [labelled])
    assert folder_eval.args[0].n_images == 6


def test_project_round_trip(qtbot, window, folder_root, tmp_path, checkpoint):
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_04", folder_root / "class_05"])
    assert window.session.save_to(tmp_path / "p.anilproj")
    assert window.support.undo_stack.isClean()
    settings = QSettings(str(tmp_path / "s2.ini"), QSettings.Format.IniFormat)
    other = MainWindow(settings=settings, checkpoint=str(checkpoint))
    other.errors.show_dialogs = False
    qtbot.addWidget(other)
    qtbot.waitUntil(lambda: other.classifier is not None, timeout=TIMEOUT)
    with qtbot.waitSignal(other.adapted, timeout=TIMEOUT):
        other.session.open_project(tmp_path / "p.anilproj")
    assert other.support.names() == ["class_04", "class_05"]
    assert torch.allclose(other.classifier.weight, window.classifier.weight)
    other.wait_for_jobs()


def test_bad_checkpoint_drop_reports_and_keeps_running(qtbot, window, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"nonsense")
    messages = []
    window.errors.reported.connect(lambda level, text: messages.append(text))
    before = window.classifier, window.checkpoint_path
    drop(window.support_view, [bad])
    qtbot.waitUntil(lambda: any("broken.pt" in m for m in messages), timeout=TIMEOUT)
    window.wait_for_jobs()
    # The failed load changed nothing: the same classifier and model, named in the panel, and no class added.
    assert (window.classifier, window.checkpoint_path) == before and window.support.classes == []
    assert window.model_panel.model_combo.currentText().startswith("tiny.pt")
    qtbot.waitUntil(lambda: "still using tiny.pt" in window.model_panel.status.text(), timeout=TIMEOUT)


def test_close_asks_when_unsaved(qtbot, window, folder_root):
    asked = []
    window.session.confirm_discard = lambda: asked.append(1) or False
    drop(window.support_view, [folder_root / "class_00"])
    assert not window.close()
    assert asked
    window.session.confirm_discard = lambda: True


def test_meta_training_in_the_app_becomes_the_current_model(qtbot, window, folder_root, tmp_path):
    window.show_train_dialog()
    d = window.train_dialog
    d.dataset.setCurrentText("folder")
    d.data_root.setText(str(folder_root))
    d.ways.setValue(2)
    d.shots.setValue(1)
    d.query.setValue(1)
    d.meta_batch.setValue(2)
    d.iterations.setValue(3)
    d.input_size.setValue(32)
    d.hidden.setValue(8)
    d.val_every.setValue(3)
    d.val_episodes.setValue(3)
    d.device.setCurrentText("cpu")
    d.out.setText(str(tmp_path / "run"))
    loaded = finish_run_and_use_it(qtbot, window, d)
    assert loaded.args[0].endswith("best.pt")
    assert window.model_panel.model_combo.currentText() == "best.pt (run)"  # the picker names the current model
    assert d.progress.value() == 3 and len(d._xs) == 3
    assert d._vx == [0, 3]  # the starting point's validation is drawn too
    d.close()


def tiny_folder_run(window, folder_root, out, val_every):
    """The training dialog set for a 2-iteration run on the tiny folder data set, on the CPU."""
    window.show_train_dialog()
    d = window.train_dialog
    d.dataset.setCurrentText("folder")
    d.data_root.setText(str(folder_root))
    for box, value in ((d.ways, 2), (d.shots, 1), (d.query, 1), (d.meta_batch, 2), (d.iterations, 2)):
        box.setValue(value)
    d.input_size.setValue(32)
    d.hidden.setValue(8)
    d.val_every.setValue(val_every)
    d.device.setCurrentText("cpu")
    d.out.setText(str(out))
    return d


def test_meta_training_from_a_trunk_that_learnt_the_validation_classes(qtbot, window, folder_root, tmp_path):
    """A final model's trunk (`pretrain --train-splits train+val`) as the start: nothing is validated and the
    dialog's last words say the last point was kept, not "best validation accuracy None %"."""
    from anil_engine.config import PretrainConfig
    from anil_engine.jobs import run_to_end
    from anil_engine.meta.pretraining import pretrain

    trunk = tmp_path / "final.pt"
    pre = PretrainConfig("folder", str(folder_root), epochs=1, batch_size=16, hidden_size=8, input_size=32, ways=2,
                         device="cpu", train_splits="train+val")  # fmt: skip
    run_to_end(pretrain(pre, trunk))
    d = tiny_folder_run(window, folder_root, tmp_path / "run", val_every=1)
    d.init_from.setText(str(trunk))
    finish_run_and_use_it(qtbot, window, d)
    assert d._vx == []  # no validation point drawn
    assert d.status.text().startswith("Finished: no validation, the last point kept, saved as ")
    d.close()


def test_train_dialog_offers_tasks_within_one_alphabet_for_omniglot(qtbot, window, omniglot_root, tmp_path):
    window.show_train_dialog()
    d = window.train_dialog
    d.dataset.setCurrentText("omniglot")
    d.data_root.setText(str(omniglot_root))
    box = d.within_alphabet
    assert box.isVisible() and box.isEnabled() and not box.isChecked()
    assert d.config().within is None
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    assert box.isChecked() and d.config().within == "alphabet"
    d.dataset.setCurrentText("folder")  # not Omniglot: no alphabets
    assert not box.isEnabled() and d.config().within is None
    d.close()


def test_train_dialog_offers_the_lake_folds_in_plain_words(qtbot, window, omniglot_root):
    """The split box lists lake's validation folds, says what they are, and a chosen fold reaches the run."""
    window.show_train_dialog()
    d = window.train_dialog
    d.dataset.setCurrentText("omniglot")
    d.data_root.setText(str(omniglot_root))
    split = d.split_scheme
    assert split.isVisible() and split.isEnabled()
    assert [split.itemText(i) for i in range(split.count())][1:] == ["lake", *(f"lake-fold{k}" for k in range(5))]
    assert "every background alphabet is validated on once" in split.toolTip()
    split.setFocus()
    qtbot.keyClick(split, Qt.Key.Key_End)  # the keyboard reaches the last fold
    assert split.currentText() == "lake-fold4" and d.config().split_scheme == "lake-fold4"
    d.close()


def test_train_dialog_offers_the_ink_crop_and_refuses_a_trunk_framed_otherwise(qtbot, window, omniglot_root, tmp_path):
    """The crop box is shown and enabled, Alt+C ticks it, the run's config carries it; a trunk pre-trained with the
    crop and a run without it is refused with the box to tick, in the dialog's own words."""
    from anil_engine.jobs import run_to_end
    from anil_engine.meta.pretraining import PretrainConfig, pretrain

    run_to_end(pretrain(PretrainConfig(dataset="omniglot", data_root=str(omniglot_root), epochs=1, batch_size=512,
                                       hidden_size=8, ways=5, device="cpu", val_episodes=20, crop="ink"),
                        tmp_path / "pre.pt"))  # fmt: skip
    window.show_train_dialog()
    d = window.train_dialog
    d.dataset.setCurrentText("omniglot")
    d.data_root.setText(str(omniglot_root))
    box = d.crop_ink
    assert box.isVisible() and box.isEnabled() and not box.isChecked() and d.config().crop == "none"
    d.init_from.setText(str(tmp_path / "pre.pt"))
    d.hidden.setValue(8)
    d.ways.setValue(5)
    d.shots.setValue(1)
    d.query.setValue(1)
    d.iterations.setValue(1)
    d.out.setText(str(tmp_path / "run"))
    errors = []
    d.error.connect(errors.append)
    d.start(resume=False)
    qtbot.waitUntil(lambda: bool(errors) or not d.job.running, timeout=60_000)
    qtbot.waitUntil(lambda: bool(errors), timeout=10_000)
    assert "tick 'crop every image to its ink'" in str(errors[-1])
    from PySide6.QtWidgets import QApplication

    d.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is d, timeout=TIMEOUT)
    d.init_from.setFocus()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_C, Qt.KeyboardModifier.AltModifier)  # the box's mnemonic
    qtbot.waitUntil(box.isChecked, timeout=TIMEOUT)  # a mnemonic clicks after a short animation
    assert d.config().crop == "ink"
    d.close()


def test_pretraining_then_meta_training_in_the_app(qtbot, window, folder_root, tmp_path):
    d = tiny_folder_run(window, folder_root, tmp_path / "run", val_every=2)
    d.val_episodes.setValue(3)
    d.pretrain_epochs.setValue(1)
    statuses = []
    original_start = d.start

    def start_and_watch(resume: bool) -> None:
        original_start(resume)
        d.job.progress.connect(lambda p: statuses.append(d.status.text()))

    d.start = start_and_watch
    loaded = finish_run_and_use_it(qtbot, window, d)
    assert loaded.args[0] == str(tmp_path / "run" / "best.pt")
    assert (tmp_path / "run" / "pretrained.pt").is_file()
    assert any(s.startswith("Pre-training the trunk, epoch 1/1") for s in statuses)
    assert statuses[-1].startswith("Iteration 2/2") and d.progress.maximum() == 2 and d.progress.value() == 2
    d.close()


def test_export_classifier_from_the_app_matches_torch_free_predict(qtbot, window, folder_root, tmp_path):
    from anil_engine.runtime import OnnxClassifier

    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01", folder_root / "class_02"])
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT * 2):
        window.exports.export_onnx(tmp_path / "c.onnx", classifier=True)
    queries = [p for n in ("class_03", "class_00") for p in sorted((folder_root / n).iterdir())]
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT) as blocker:
        drop(window.classify_panel, queries)
    runtime, _ = OnnxClassifier(tmp_path / "c.onnx").predict(queries)
    assert [p.label for p in runtime] == [p.label for p in blocker.args[0]]
    # The same through `anil-studio predict` in a fresh process that never imports torch.
    import json
    import subprocess
    import sys

    args = ["predict", "--model", str(tmp_path / "c.onnx"), *map(str, queries), "--json"]
    code = f"import sys; from anil_engine.cli import main; rc = main({args!r}); assert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert [r["label"] for r in json.loads(out.stdout)] == [p.label for p in blocker.args[0]]


def test_app_uses_onnxruntime_trunk_on_cpu(window):
    assert window.classifier.backend == "onnxruntime"
    assert window.model_panel.status.text().startswith("Ready: tiny.pt looks at")  # plain words on screen
    assert "trunk: onnxruntime" in window.model_panel.status.toolTip()  # the detail one hover away


def test_model_list_shows_the_loaded_model(qtbot, window):
    # tiny.pt is not bundled: it joins the list, named with its folder, rather than the picker going blank.
    assert (
        window.model_panel.model_combo.currentIndex() >= 0
        and window.model_panel.model_combo.currentText().startswith("tiny.pt (")
    )
    if window.model_panel.model_combo.count():
        bundled = window.model_panel.model_combo.itemData(0)
        window.load_model(bundled)
        qtbot.waitUntil(lambda: window.checkpoint_path == bundled, timeout=TIMEOUT)
        assert window.model_panel.model_combo.currentIndex() == 0


def test_garbage_is_collected_on_the_gui_thread_only_while_a_window_is_open(qtbot):
    import gc

    from app import gc_guard

    assert gc.isenabled()
    gc_guard.acquire()
    try:
        assert not gc.isenabled(), "no automatic collection (it could run inside a worker thread)"

        # A cycle is still collected, by the GUI thread's timer.
        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a
        import weakref

        alive = weakref.ref(a)
        del a, b
        keep = [Node() for _ in range(2 * gc.get_threshold()[0])]  # cross the generation-0 threshold
        qtbot.waitUntil(lambda: alive() is None, timeout=5000)
        assert len(keep) > 0
    finally:
        gc_guard.release()
    assert gc.isenabled()


def test_episode_evaluation_in_the_app_matches_the_cli(qtbot, window, folder_root, checkpoint):
    from anil_engine.cli.evaluating import run_eval
    from anil_engine.config import EvalConfig, TaskSpec
    from anil_engine.evaluation import EvalRequest

    window.show_eval_dialog()
    d = window.eval_dialog
    assert d.checkpoint == str(checkpoint) and d.dataset.currentText() == "folder"  # from the checkpoint
    assert d.ways.value() == 5  # its trained task (the fixture's head has 5 ways)
    d.data_root.setText(str(folder_root))
    d.split.setCurrentText("all")
    d.ways.setValue(3)
    d.query.setValue(2)
    d.episodes.setValue(20)
    d.device.setCurrentText("cpu")
    with qtbot.waitSignal(d.results.model().rowsInserted, timeout=TIMEOUT):
        d.run()
    request = EvalRequest(
        str(checkpoint), str(folder_root), EvalConfig(TaskSpec(3, 1, 2), 20), "folder", "all", None, "cpu"
    )
    cli = run_eval(request, quiet=True)
    assert d.results.count() == 1
    expected = f"{cli['accuracy']:.2f} ± {cli['ci95']:.2f} % — folder all, 3-way 1-shot"
    assert d.results.item(0).text().startswith(expected)

    qtbot.waitUntil(lambda: not d.job.running, timeout=TIMEOUT)  # `done` comes before the job has ended
    first_job = d.job
    d.episodes.setValue(100000)
    d.run()
    assert d.job is not first_job and d.progress.maximum() == 100000
    qtbot.waitUntil(lambda: d.progress.value() >= 10, timeout=TIMEOUT)
    d.stop()
    qtbot.waitUntil(lambda: not d.job.running, timeout=TIMEOUT)
    assert d.status.text().startswith("Stopped: no result") and d.results.count() == 1
    d.data_root.setText("")
    d.run()
    assert d.status.text() == "Not started: choose the data root: the folder that holds the data set"
    d.close()
    # The folder of a data set that ran is remembered, for this dialog and the Meta-train one.
    assert window.settings.value("data_root/folder") == str(folder_root)
    window.show_train_dialog()
    assert window.train_dialog.data_root.text() == ""
    window.train_dialog.dataset.setCurrentText("folder")
    assert window.train_dialog.data_root.text() == str(folder_root)
    window.train_dialog.close()


# ------------------------------------------------------------------ every drop also has a menu item / button
def menu_action(window, text: str):
    for top in window.menuBar().actions():
        for a in top.menu().actions():
            if a.text() == text:
                return a
    raise AssertionError(f"no menu action {text!r}")


@pytest.fixture
def pick(monkeypatch):
    """Answer the next file dialogs: pick(files=[...]) / pick(folder=...); records each dialog's title."""
    from PySide6.QtWidgets import QFileDialog

    answers, titles = {"files": [], "folder": ""}, []

    def files(parent, title, *args):
        titles.append(title)
        return [str(p) for p in answers["files"]], ""

    def folder(parent, title, *args):
        titles.append(title)
        return str(answers["folder"]) if answers["folder"] else ""

    monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(files))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(folder))

    def set_answer(files=(), folder=""):
        answers["files"], answers["folder"] = list(files), folder
        return titles

    return set_answer


def test_support_classify_and_evaluate_without_dragging(qtbot, window, folder_root, tmp_path, pick):
    titles = pick(folder=folder_root)
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT) as adapted:
        menu_action(window, "Add support folder…").trigger()
    assert window.support.names() == [f"class_{i:02d}" for i in range(12)]
    assert len(adapted.args[0].class_names) == 12
    # images of a new class through the support set's button; then more images through a card's "+"
    new = sorted((folder_root / "class_03").iterdir())
    pick(files=new[:2])
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        window.support_view.add_images_button.click()
    # named after the folder the images were picked from (class_03 exists already: the next free name)
    assert window.support.names()[-1] == "class_03 2" and len(window.support.classes[-1].paths) == 2
    pick(files=new[2:4])
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        window.support_view.cards["class_03 2"].add_button.click()
    assert window.support.classes[-1].paths == new[:4]
    window.support.undo_stack.undo()
    assert window.support.classes[-1].paths == new[:2]
    assert titles[-1] == "Images to add to class class_03 2"
    # classify images, then a folder; the Classify tab comes to the front
    window.tabs.setCurrentWidget(window.evaluate_panel)
    queries = [sorted((folder_root / n).iterdir())[-1] for n in ("class_00", "class_01")]
    pick(files=queries)
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT) as blocker:
        menu_action(window, "Classify images…").trigger()
    assert [p.path for p in blocker.args[0]] == [str(q) for q in queries]
    assert window.tabs.currentWidget() is window.classify_panel
    pick(folder=folder_root / "class_05")
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT) as blocker:
        menu_action(window, "Classify a folder…").trigger()
    assert len(blocker.args[0]) == 6 and window.classify_panel.results_model.rowCount() == 8
    # a labelled folder
    pick(folder=folder_root)
    with qtbot.waitSignal(window.evaluated, timeout=TIMEOUT) as evaluated:
        menu_action(window, "Evaluate on a labelled folder…").trigger()
    assert evaluated.args[0].n_images == 12 * 6
    assert window.tabs.currentWidget() is window.evaluate_panel
    # a cancelled dialog changes nothing
    names, count = window.support.names(), window.support.undo_stack.count()
    pick()
    for text in ("Add support images as a new class…", "Add support folder…", "Classify images…"):
        menu_action(window, text).trigger()
    window.wait_for_jobs()
    assert window.support.names() == names and window.support.undo_stack.count() == count
    assert window.classify_panel.results_model.rowCount() == 8


def test_paste_image_data_and_files_to_classify(qtbot, window, folder_root, tmp_path):
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QGuiApplication, QImage

    window.paste_dir = tmp_path / "pasted"
    messages = []
    window.errors.reported.connect(lambda level, text: messages.append(text))
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    clipboard = QGuiApplication.clipboard()
    source = sorted((folder_root / "class_01").iterdir())[0]
    clipboard.setImage(QImage(str(source)))
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT) as blocker:
        menu_action(window, "Paste images to classify").trigger()
    (pasted,) = blocker.args[0]
    saved = list((tmp_path / "pasted").iterdir())
    assert [str(p) for p in saved] == [pasted.path] and saved[0].suffix == ".png"
    assert not any(".part" in p.name for p in saved)
    direct = window.classifier.predict([source])[0][0]  # the same pixels classified from the original file
    assert pasted.label == direct.label
    assert pasted.probabilities == pytest.approx(direct.probabilities, abs=1e-5)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in sorted((folder_root / "class_00").iterdir())[:2]])
    clipboard.setMimeData(mime)
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT) as blocker:
        menu_action(window, "Paste images to classify").trigger()
    assert [p.path for p in blocker.args[0]] == [str(p) for p in sorted((folder_root / "class_00").iterdir())[:2]]
    clipboard.setText("not an image")
    menu_action(window, "Paste images to classify").trigger()
    assert "the clipboard holds no image" in messages[-1]
    # an unwritable paste folder: a message naming it, nothing classified
    window.paste_dir = tmp_path / "file-not-folder"
    window.paste_dir.write_text("x")
    clipboard.setImage(QImage(str(source)))
    count = window.classify_panel.results_model.rowCount()
    menu_action(window, "Paste images to classify").trigger()
    window.wait_for_jobs()
    assert "could not save the pasted image" in messages[-1] and "file-not-folder" in messages[-1]
    assert window.classify_panel.results_model.rowCount() == count


def test_help_lists_every_shortcut_and_the_versions(qtbot, window):
    from app.dialogs.help import menu_shortcuts

    rows = {text: keys for _menu, text, keys in menu_shortcuts(window.menuBar())}
    assert rows["Add support images as a new class…"] == "Ctrl+I"
    assert rows["Classify images…"] == "Ctrl+K"
    assert rows["Evaluate on a data set…"] == "Ctrl+Shift+L"
    assert "Ctrl+Shift+Z" in rows["Redo"]
    all_keys = [k for keys in rows.values() for k in keys.split(", ")]
    assert len(all_keys) == len(set(all_keys)), "two actions share a shortcut"
    window.help.show_shortcuts()
    text = window.help.text_dialogs["shortcuts"].browser.toPlainText()
    assert "Paste images to classify" in text and "Ctrl+V" in text and "Double-click an image" in text
    window.help.show_about()
    about = window.help.text_dialogs["about"].browser.toPlainText()
    assert torch.__version__ in about and window.checkpoint_path in about and "onnxruntime" in about
    window.help.show_about()  # a second call reuses the dialog
    assert len(window.help.text_dialogs) == 2


@pytest.fixture
def gated_images(monkeypatch):
    """Batches of 2 images; after `open_for` more image reads, reading waits until `gate` is set."""
    import anil_engine.classifier as classifier_module

    monkeypatch.setattr(classifier_module, "BATCH", 2)
    original = classifier_module.load_image
    state = {"open_for": 10**9, "gate": threading.Event()}

    def load_image(*args, **kwargs):
        if state["open_for"] <= 0:
            assert state["gate"].wait(timeout=60)
        state["open_for"] -= 1
        return original(*args, **kwargs)

    monkeypatch.setattr(classifier_module, "load_image", load_image)
    return state


def test_long_image_jobs_show_progress_and_stop(qtbot, window, folder_root, gated_images, tmp_path):
    messages = []
    window.errors.reported.connect(lambda level, text: messages.append(text))
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    qtbot.waitUntil(lambda: not window.jobs, timeout=TIMEOUT)
    assert window.job_progress.isHidden()  # shown while the adaptation's batches ran, hidden when it ended
    gated_images["open_for"] = 2  # the first batch of the classification, then it waits
    window.classify_paths([folder_root / "class_02"])
    qtbot.waitUntil(lambda: not window.job_progress.isHidden(), timeout=TIMEOUT)
    assert window.job_progress.label.text() == "Classifying: 2/6 images"
    assert window.job_progress.bar.value() == 2 and window.job_progress.bar.maximum() == 6
    window.job_progress.stop.click()
    gated_images["gate"].set()
    qtbot.waitUntil(lambda: not window.jobs, timeout=TIMEOUT)
    assert window.job_progress.isHidden() and window.classify_panel.results_model.rowCount() == 0
    assert messages[-1] == "classification stopped; no results added"
    # The two finished images stay cached: classifying again reads only the other four.
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT) as blocker:
        window.classify_paths([folder_root / "class_02"])
    assert len(blocker.args[0]) == 6 and window.classify_panel.results_model.rowCount() == 6
    # Esc stops an evaluation of a labelled folder, which then reports no result.
    labelled = tmp_path / "labelled"
    for name in ("class_00", "class_01"):
        (labelled / name).mkdir(parents=True)
        for p in sorted((folder_root / name).iterdir()):
            (labelled / name / p.name).write_bytes(p.read_bytes())
    gated_images["gate"].clear()
    gated_images["open_for"] = 2
    window.evaluate_paths([labelled])
    qtbot.waitUntil(lambda: not window.job_progress.isHidden(), timeout=TIMEOUT)
    assert window.job_progress.label.text() == "Evaluating: 2/12 images"
    menu_action(window, "Stop the running image job").trigger()
    gated_images["gate"].set()
    qtbot.waitUntil(lambda: not window.jobs, timeout=TIMEOUT)
    assert window.evaluate_panel.summary.text() == "<b>Labelled folder labelled</b>: stopped; no result."
    assert window.job_progress.isHidden()


def test_a_support_change_restarts_the_running_adaptation(qtbot, window, folder_root, gated_images):
    adapted = []
    window.adapted.connect(adapted.append)
    gated_images["open_for"] = 2
    drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    qtbot.waitUntil(lambda: not window.job_progress.isHidden(), timeout=TIMEOUT)
    assert window.job_progress.label.text() == "Adapting: 2/12 images"
    first = window._adapt_job
    drop(window.support_view, [folder_root / "class_02"])  # while the first adaptation waits
    qtbot.waitUntil(lambda: window._adapt_pending, timeout=TIMEOUT)
    gated_images["gate"].set()
    qtbot.waitUntil(lambda: bool(adapted), timeout=TIMEOUT)
    window.wait_for_jobs()
    assert window._adapt_job is not first
    assert [r.class_names for r in adapted] == [["class_00", "class_01", "class_02"]]  # the stopped one is silent
    # the stopped job's finished batches stayed cached: the first, and the second if the worker had started
    # it before the stop (it was waiting for its third image)
    assert adapted[0].new_images in (18 - 2, 18 - 4)
    assert "Learned 3 classes" in window.support_view.status.text()


def test_escape_stops_an_adaptation(qtbot, window, folder_root, gated_images):
    gated_images["open_for"] = 2
    drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    qtbot.waitUntil(lambda: not window.job_progress.isHidden(), timeout=TIMEOUT)
    menu_action(window, "Stop the running image job").trigger()
    gated_images["gate"].set()
    qtbot.waitUntil(lambda: not window.jobs, timeout=TIMEOUT)
    assert window.support_view.status.text().startswith("Adaptation stopped; the head is still the previous one.")
    assert not window.classifier.is_adapted and window.job_progress.isHidden()
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        window.adapt_now()


def test_results_can_be_reordered_and_are_summarised(qtbot, window, folder_root):
    from PySide6.QtCore import Qt

    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01", folder_root / "class_02"])
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT) as blocker:
        drop(window.classify_panel, [folder_root / "class_03", folder_root / "class_01"])
    classified = blocker.args[0]

    def shown():
        view = window.classify_panel.results_sorted
        return [view.index(i, 0).data(Qt.ItemDataRole.UserRole) for i in range(view.rowCount())]

    assert shown() == classified and len(classified) == 12
    window.classify_panel.results_order.setCurrentText("least confident first")
    assert [p.confidence for p in shown()] == sorted(p.confidence for p in classified)
    window.classify_panel.results_order.setCurrentText("by class")
    assert [p.label for p in shown()] == sorted(p.label for p in classified)
    window.classify_panel.results_order.setCurrentText("as classified")
    assert shown() == classified
    counts = {n: sum(p.label == n for p in classified) for n in ("class_00", "class_01", "class_02")}
    expected = ", ".join(f"{n} {c}" for n, c in counts.items() if c)
    assert window.classify_panel.results_summary.text() == f"12 images: {expected}"
    # The delegate paints a row (thumbnail, label, bars) without error and gives it a fixed height.
    image = window.classify_panel.results.grab().toImage()
    colours = {image.pixel(x, y) for x in range(0, min(image.width(), 400), 3) for y in range(0, 60, 3)}
    assert len(colours) > 20  # the first row's thumbnail, text and bars, not an empty view
    assert window.classify_panel.results.sizeHintForRow(0) == window.classify_panel.results.sizeHintForRow(11) > 56
    # Long status lines (the adaptation's, the summary) wrap or elide: the window still fits a 1280-px screen.
    window.support_view.status.setText("a long status line " * 20)
    assert window.minimumSizeHint().width() <= 1280
    window.classify_panel.clear()
    assert not window.classify_panel.predictions and window.classify_panel.results_summary.text() == ""


def test_leave_one_out_shows_progress_and_stops(qtbot, window, folder_root, monkeypatch):
    import anil_engine.classifier as classifier_module

    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])  # 12 images
    qtbot.waitUntil(lambda: not window.jobs, timeout=TIMEOUT)
    gate, calls, original = threading.Event(), [], classifier_module.adapt_head

    def gated_adapt_head(*args, **kwargs):
        calls.append(1)
        if len(calls) > 9:  # the 10th held-out image waits
            assert gate.wait(timeout=60)
        return original(*args, **kwargs)

    monkeypatch.setattr(classifier_module, "adapt_head", gated_adapt_head)
    menu_action(window, "Leave-one-out evaluation").trigger()
    qtbot.waitUntil(lambda: window.job_progress.label.text() == "Leave-one-out: 9/12 images", timeout=TIMEOUT)
    assert not window.job_progress.isHidden()
    window.job_progress.stop.click()
    gate.set()
    qtbot.waitUntil(lambda: not window.jobs, timeout=TIMEOUT)
    assert window.evaluate_panel.summary.text() == "<b>Leave-one-out on the support set</b>: stopped; no result."
    # Stopped at the next image: the 10th ran if the worker had started it before Stop, never the 11th.
    assert len(calls) in (9, 10)


def test_images_dragged_from_a_browser(qtbot, window, folder_root, tmp_path):
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QImage

    from app.testing import send_mime_drop

    window.paste_dir = tmp_path / "pasted"
    messages = []
    window.errors.reported.connect(lambda level, text: messages.append(text))

    def browser_drag(source: Path | None, url: str) -> QMimeData:
        mime = QMimeData()
        mime.setUrls([QUrl(url)])
        if source is not None:
            mime.setImageData(QImage(str(source)))
        return mime

    # Image data on the empty support area starts a class; on a card it joins that class.
    a, b = sorted((folder_root / "class_00").iterdir())[:2]
    send_mime_drop(window.support_view, browser_drag(a, "https://example.org/a.png"))
    assert window.support.names() == ["class"] and len(window.support.classes[0].paths) == 1
    send_mime_drop(window.support_view.cards["class"], browser_drag(b, "https://example.org/b.png"))
    assert len(window.support.classes[0].paths) == 2
    assert all(p.parent == window.paste_dir and p.suffix == ".png" for p in window.support.classes[0].paths)
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_01"])
    # On Classify it is classified like the original file.
    source = sorted((folder_root / "class_01").iterdir())[-1]
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT) as blocker:
        send_mime_drop(window.classify_panel, browser_drag(source, "https://example.org/c.png"))
    (dropped,) = blocker.args[0]
    direct = window.classifier.predict([source])[0][0]
    assert dropped.label == direct.label and Path(dropped.path).parent == window.paste_dir
    # An address without image data is named in a message, and nothing else happens.
    count = window.classify_panel.results_model.rowCount()
    send_mime_drop(window.classify_panel, browser_drag(None, "https://example.org/page.html"))
    window.wait_for_jobs()
    assert messages[-1].startswith("https://example.org/page.html: not a file on this computer")
    assert window.classify_panel.results_model.rowCount() == count


def dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_unsaved_work_is_autosaved_and_removed_when_saved(qtbot, window, folder_root, tmp_path):
    window.autosave_timer.setInterval(10)
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    qtbot.waitUntil(lambda: window.autosaves.path.is_file(), timeout=TIMEOUT)
    from anil_engine.project import load_project

    saved = load_project(window.autosaves.path)
    assert [n for n, _ in saved.classes] == ["class_00", "class_01"]
    assert Path(os.environ["XDG_DATA_HOME"]) in window.autosaves.path.parents  # the app's data folder
    assert window.session.save_to(tmp_path / "p.anilproj")
    assert not window.autosaves.path.exists() and not window.autosaves.path.with_suffix(".json").exists()
    window.support.remove_class("class_01")  # unsaved again
    qtbot.waitUntil(lambda: window.autosaves.path.is_file(), timeout=TIMEOUT)
    window.support.undo_stack.undo()  # back to the saved state: nothing to recover
    qtbot.waitUntil(lambda: not window.autosaves.path.exists(), timeout=TIMEOUT)
    window.support.remove_class("class_01")
    qtbot.waitUntil(lambda: window.autosaves.path.is_file(), timeout=TIMEOUT)
    window.close()  # the user was asked (confirm_close) and chose: the autosave goes
    assert not window.autosaves.path.exists()


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_in_the_terminal_or_sigterm_closes_the_app_keeping_unsaved_work(qtbot, window, folder_root, signame):
    import signal

    from PySide6.QtWidgets import QMessageBox

    from anil_engine.project import load_project
    from app.main import CloseOnSignals

    asked = []
    window.session.confirm_discard = lambda: asked.append(1) or False  # a question would keep the window open
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    window.autosave_timer.stop()  # no autosave yet: the signal has to write it
    assert not window.session.saved and not window.autosaves.path.exists()
    window.show()
    qtbot.waitExposed(window)
    box = QMessageBox(QMessageBox.Icon.Question, "Open?", "a modal question left open", parent=window)
    box.setModal(True)
    box.show()
    before = signal.getsignal(signal.SIGINT)  # pytest's, or ignored in a worker started in the background
    signals = CloseOnSignals(window)
    try:
        os.kill(os.getpid(), getattr(signal, signame))
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT)
        assert signals.received == [getattr(signal, signame)] and not box.isVisible() and not asked
    finally:
        signals.uninstall()
    assert signal.getsignal(signal.SIGINT) == before  # the process's own handler is back
    window.support.undo_stack.clear()  # what its destructor does at exit: "clean" again, yet the autosave stays
    saved = load_project(window.autosaves.path)  # kept for the next start, which offers it
    assert [n for n, _ in saved.classes] == ["class_00", "class_01"]


def test_a_signal_asks_as_any_close_does_when_unsaved_work_cannot_be_kept(qtbot, window, folder_root, tmp_path):
    import signal

    from app.main import CloseOnSignals

    messages, asked = [], []
    window.errors.reported.connect(lambda level, text: messages.append(text))
    window.session.confirm_discard = lambda: asked.append(1) or False  # the user keeps the window open
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    window.autosave_timer.stop()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    window.session.autosaves.folder = blocker / "autosave"  # cannot be made: a file is in the way
    window.show()
    qtbot.waitExposed(window)
    signals = CloseOnSignals(window)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        qtbot.waitUntil(lambda: bool(asked), timeout=TIMEOUT)
        assert window.isVisible() and not signals.received  # a later signal tries again, not an instant exit
    finally:
        signals.uninstall()
    assert any(str(blocker) in m and "could not be kept" in m for m in messages), messages
    assert window.support.names() == ["class_00", "class_01"] and not window.session.saved
    window.session.confirm_discard = lambda: True  # the fixture's close at the end
    window.session.autosaves.folder = tmp_path / "autosave"


def test_work_of_a_session_that_died_is_offered_and_restored(qtbot, window, folder_root, tmp_path, checkpoint):
    from app.autosave import AutosaveStore

    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_02", folder_root / "class_03"])
    project_file = tmp_path / "mine.anilproj"
    pid = dead_pid()
    AutosaveStore(window.autosaves.folder, pid).write(window.session.current_project(), project_file)
    # a running app's:
    AutosaveStore(window.autosaves.folder, os.getppid()).write(window.session.current_project(), None)
    messages = []
    settings = QSettings(str(tmp_path / "s2.ini"), QSettings.Format.IniFormat)
    other = MainWindow(settings=settings, checkpoint=str(checkpoint))
    other.errors.show_dialogs = False
    other.errors.reported.connect(lambda level, text: messages.append(text))
    other.confirm_close = lambda: True
    qtbot.addWidget(other)
    qtbot.waitUntil(lambda: other.session.recovery_box is not None, timeout=TIMEOUT)
    (found,) = other.autosaves.leftovers()  # not the running app's, not its own
    assert found.path.name == f"autosave-{pid}.anilproj" and found.project_path == project_file
    assert other.recover_action.isEnabled()
    assert messages[0].startswith("unsaved work from a session that did not close: 2 classes, 12 images of mine")
    qtbot.waitUntil(lambda: other.classifier is not None, timeout=TIMEOUT)
    with qtbot.waitSignal(other.adapted, timeout=TIMEOUT):
        restore = next(b for b in other.session.recovery_box.buttons() if b.text() == "Restore")
        restore.click()
    assert other.support.names() == ["class_02", "class_03"]
    assert not other.support.undo_stack.isClean() and other.windowTitle() == "ANIL Studio — mine.anilproj *"
    assert not found.path.exists()
    qtbot.waitUntil(other.autosaves.path.is_file, timeout=TIMEOUT)  # now this session's to keep (written by a job)
    assert not other.recover_action.isEnabled()
    other.support.undo_stack.undo()  # the restore is one undoable step
    assert other.support.names() == []
    other.wait_for_jobs()
    other.close()


def test_discarding_recovered_work_and_an_unwritable_autosave_folder(qtbot, window, folder_root, tmp_path):
    from app.autosave import AutosaveStore

    messages = []
    window.errors.reported.connect(lambda level, text: messages.append(text))
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_04"] + [folder_root / "class_05"])
    leftover = AutosaveStore(window.autosaves.folder, dead_pid())
    leftover.write(window.session.current_project(), None)
    window.session.offer_recovery()
    discard = next(b for b in window.session.recovery_box.buttons() if b.text() == "Discard")
    discard.click()
    assert not leftover.path.exists() and not window.recover_action.isEnabled()
    assert messages[-1].startswith("discarded unsaved work: 2 classes, 12 images, autosaved")
    window.autosaves.folder = tmp_path / "a-file"
    window.autosaves.folder.write_text("not a folder")
    window.session.autosave()
    qtbot.waitUntil(lambda: messages[-1].startswith("autosave failed:"), timeout=TIMEOUT)
    assert "save the project (Ctrl+S)" in messages[-1]


def test_results_go_back_into_the_support_set(qtbot, window, folder_root, monkeypatch):
    from PySide6.QtCore import QItemSelectionModel
    from PySide6.QtWidgets import QInputDialog

    from app.testing import send_mime_drop

    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT):
        drop(window.classify_panel, [folder_root / "class_02"])
    view, proxy = window.classify_panel.results, window.classify_panel.results_sorted
    for row in (0, 2):
        view.selectionModel().select(proxy.index(row, 0), QItemSelectionModel.SelectionFlag.Select)
    chosen = window.classify_panel.selected_results()
    assert [p.path for p in chosen] == [
        window.classify_panel.predictions[0].path,
        window.classify_panel.predictions[2].path,
    ]
    # Dragging them carries their files, which a class card takes like any drop.
    mime = proxy.mimeData([proxy.index(0, 0), proxy.index(2, 0)])
    assert [u.toLocalFile() for u in mime.urls()] == [p.path for p in chosen]
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT) as blocker:
        send_mime_drop(window.support_view.cards["class_01"], mime)
    assert window.support.find("class_01").paths[-2:] == [Path(p.path) for p in chosen]
    assert blocker.args[0].n_images == 14
    # The context menu lists every support class and a new class.
    menu = window.classify_panel.results_menu(chosen)
    submenu = menu.actions()[0].menu()
    assert menu.actions()[0].text() == "Add 2 images to support class"
    assert [a.text() for a in submenu.actions() if not a.isSeparator()] == ["class_00", "class_01", "New class…"]
    # Its actions: an existing class (duplicates are not added twice) and a new class.
    messages = []
    window.errors.reported.connect(lambda level, text: messages.append(text))
    window.add_results_to_class([Path(p.path) for p in chosen], "class_01")
    assert messages[-1] == "2 of the images were already in class class_01"
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("class_02", True)))
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT) as blocker:
        window.add_results_to_class([Path(p.path) for p in window.classify_panel.predictions[3:5]], None)
    assert window.support.names() == ["class_00", "class_01", "class_02"]
    assert blocker.args[0].class_names == ["class_00", "class_01", "class_02"]
    # The results were classified again with the new head: class_02 is now a class they can get.
    qtbot.waitUntil(lambda: not window.jobs, timeout=TIMEOUT)
    assert set(window.classify_panel.predictions[0].probabilities) == {"class_00", "class_01", "class_02"}
    window.support.undo_stack.undo()
    assert window.support.names() == ["class_00", "class_01"]


def test_number_keys_add_the_selected_results_to_that_support_class(qtbot, window, folder_root):
    from PySide6.QtCore import QItemSelectionModel, Qt

    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT):
        drop(window.classify_panel, [folder_root / "class_03"])
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    window.classify_panel.results.setFocus()
    qtbot.waitUntil(window.classify_panel.results.hasFocus, timeout=TIMEOUT)
    window.classify_panel.results.selectionModel().select(
        window.classify_panel.results_sorted.index(1, 0), QItemSelectionModel.SelectionFlag.Select
    )
    chosen = window.classify_panel.selected_results()
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        qtbot.keyClick(window.classify_panel.results, Qt.Key.Key_2)
    assert window.support.find("class_01").paths[-1] == Path(chosen[0].path)
    before = [list(c.paths) for c in window.support.classes]
    qtbot.keyClick(window.classify_panel.results, Qt.Key.Key_9)  # no 9th class: nothing happens
    assert [list(c.paths) for c in window.support.classes] == before
    assert window.classify_panel.results_menu(chosen).actions()[0].menu().actions()[1].shortcut().toString() == "2"


def test_a_labelled_folder_s_mistakes_can_be_listed_and_corrected(qtbot, window, folder_root, tmp_path):
    support = tmp_path / "support"
    for name in ("class_00", "class_01", "class_02", "class_03"):
        (support / name).mkdir(parents=True)
        for p in sorted((folder_root / name).iterdir())[:1]:  # one shot: some mistakes are likely
            (support / name / p.name).write_bytes(p.read_bytes())
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [support])
    labelled = tmp_path / "labelled"
    for name in ("class_00", "class_01", "class_02", "class_03"):
        (labelled / name).mkdir(parents=True)
        for p in sorted((folder_root / name).iterdir())[1:]:
            (labelled / name / p.name).write_bytes(p.read_bytes())
    for p in sorted((folder_root / "class_01").iterdir())[1:4]:  # mislabelled on purpose: mistakes to list
        (labelled / "class_00" / f"wrong_{p.name}").write_bytes(p.read_bytes())
    with qtbot.waitSignal(window.evaluated, timeout=TIMEOUT) as blocker:
        drop(window.evaluate_panel, [labelled])
    report = blocker.args[0]
    wrong = sum(sum(row) - row[i] for i, row in enumerate(report.confusion))
    assert len(report.mistakes) == wrong
    assert all(p.label != truth and Path(p.path).parent.name == truth for p, truth in report.mistakes)
    if not wrong:
        assert not window.evaluate_panel.mistakes_button.isEnabled()
        assert window.evaluate_panel.mistakes_button.text() == "No mistakes"
        return
    assert window.evaluate_panel.mistakes_button.isEnabled()
    assert (
        window.evaluate_panel.mistakes_button.text()
        == f"Show the {wrong} mistake{'s' if wrong > 1 else ''} in Classify"
    )
    window.show()
    window.tabs.setCurrentWidget(window.evaluate_panel)
    assert window.evaluate_panel.mistakes_button.isVisible()  # on screen, not only connected
    window.evaluate_panel.mistakes_button.click()
    assert window.tabs.currentWidget() is window.classify_panel
    assert [p.path for p in window.classify_panel.predictions] == [p.path for p, _ in report.mistakes]
    assert window.classify_panel.results_order.currentText() == "least confident first"
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        for name in ("class_00", "class_01", "class_02", "class_03"):  # leave-one-out needs 2 per class
            window.support.add_images(name, [sorted((folder_root / name).iterdir())[-1]])
    qtbot.waitUntil(lambda: not window.jobs, timeout=TIMEOUT)
    with qtbot.waitSignal(window.evaluated, timeout=TIMEOUT) as loo:
        window.leave_one_out()
    assert not window.evaluate_panel.mistakes_button.isEnabled()  # leave-one-out has no list of files
    from app.panels.evaluate_panel import mistakes_text

    assert window.evaluate_panel.mistakes_button.text() == mistakes_text(loo.args[0].confusion, 0)


def test_the_mistakes_button_says_how_many_and_whether_they_can_be_listed():
    """Before: "Show the 0 mistakes in Classify" on a leave-one-out that had mistakes (it lists none)."""
    from app.panels.evaluate_panel import mistakes_text

    assert mistakes_text([[3, 0], [0, 2]], 0) == "No mistakes"
    assert mistakes_text([[3, 1], [0, 2]], 1) == "Show the 1 mistake in Classify"
    assert mistakes_text([[3, 1], [2, 2]], 3) == "Show the 3 mistakes in Classify"
    assert mistakes_text([[3, 1], [2, 2]], 0) == "3 mistakes (a labelled folder's mistakes can be listed in Classify)"


def test_zip_archives_dropped_are_unpacked_and_used_as_folders(qtbot, window, folder_root, tmp_path):
    import zipfile

    archive = tmp_path / "support.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for c in ("class_00", "class_01"):
            for img in sorted((folder_root / c).iterdir())[:3]:
                z.write(img, f"support/{c}/{img.name}")
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [archive])
    assert window.support.names() == ["class_00", "class_01"]
    assert all(window.data_dir in p.parents for c in window.support.classes for p in c.paths)
    assert "Unpacking" not in window.statusBar().currentMessage()  # unpacked: no longer said
    queries = tmp_path / "queries.zip"
    with zipfile.ZipFile(queries, "w") as z:
        for img in sorted((folder_root / "class_01").iterdir())[3:]:
            z.write(img, img.name)
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT) as blocker:
        drop(window.classify_panel, [queries])
    assert [p.label for p in blocker.args[0]] == ["class_01"] * 3
    messages = []
    window.errors.reported.connect(lambda level, text: messages.append(text))
    (tmp_path / "broken.zip").write_bytes(b"nope")
    drop(window.evaluate_panel, [tmp_path / "broken.zip"])
    qtbot.waitUntil(lambda: not window.jobs, timeout=TIMEOUT)
    assert messages[-1].startswith(f"{tmp_path / 'broken.zip'}: not a readable zip archive")


def test_the_qt_binding_keeps_none_s_reference_count(qapp):
    # PySide6 6.12.0 on Python 3.11 lost one reference to None per call and crashed long sessions.
    from app.qt_check import binding_problem, none_refcount_leak_per_call

    if sys.version_info < (3, 12):
        assert none_refcount_leak_per_call() > -0.5, binding_problem()
    assert binding_problem() is None


def test_class_cards_read_only_the_thumbnails_on_screen_and_remove_images(qtbot, window, folder_root, tmp_path):
    from PySide6.QtCore import Qt

    from app import thumbnails

    many = tmp_path / "many"
    many.mkdir()
    source = (folder_root / "class_00" / "img_00.png").read_bytes()
    for i in range(300):
        (many / f"{i:03d}.png").write_bytes(source)
    thumbnails._thumb_cache.clear()
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    drop(window.support_view, [many])
    qtbot.waitUntil(lambda: "many" in window.support_view.cards, timeout=TIMEOUT)
    card = window.support_view.cards["many"]
    qtbot.waitUntil(lambda: len(thumbnails._thumb_cache) > 0, timeout=TIMEOUT)
    assert 0 < len(thumbnails._thumb_cache) < 100  # a card shows a row: far fewer than its 300 images are read
    # Double-click and Delete remove an image (undoable), as with the earlier list widget.
    first = card.thumbs.model().index(0, 0)
    card.thumbs.doubleClicked.emit(first)
    assert len(window.support.find("many").paths) == 299
    card = window.support_view.cards["many"]
    card.thumbs.setCurrentIndex(card.thumbs.model().index(0, 0))
    qtbot.keyClick(card, Qt.Key.Key_Delete)
    assert len(window.support.find("many").paths) == 298
    window.support.undo_stack.undo()
    window.support.undo_stack.undo()
    assert len(window.support.find("many").paths) == 300


def test_a_folder_of_many_classes_is_one_edit(qtbot, window, folder_root):
    rebuilds = []
    window.support.changed.connect(lambda: rebuilds.append(1))
    window.support.add_class("class_00")  # an existing name: the folder's class_00 becomes "class_00 2"
    rebuilds.clear()
    drop(window.support_view, [folder_root])
    assert len(rebuilds) == 1
    assert window.support.names() == ["class_00", "class_00 2", *[f"class_{i:02d}" for i in range(1, 12)]]
    window.support.undo_stack.undo()
    assert window.support.names() == ["class_00"]


def test_a_loaded_model_is_kept_out_of_later_collections(qtbot, window):
    import gc
    import time

    # The window fixture's model has loaded: what existed then is frozen, so a full collection is quick.
    assert gc.get_freeze_count() > 10000
    start = time.perf_counter()
    gc.collect(2)
    frozen_pass = time.perf_counter() - start
    gc.unfreeze()
    start = time.perf_counter()
    gc.collect(2)
    full_pass = time.perf_counter() - start
    gc.freeze()
    assert frozen_pass < full_pass
    # The last window to close gives the objects back to the collector.
    window.close()
    assert gc.get_freeze_count() == 0


def test_the_app_opens_on_the_photo_model_and_adapts_with_it(qtbot, tmp_path, folder_root):
    """No checkpoint given: the bundled EfficientNet-Lite0 ANIL model is loaded, shown and used."""
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    w.errors.show_dialogs = False
    w.session.confirm_discard = lambda: True
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.classifier is not None, timeout=TIMEOUT * 4)
    assert Path(w.checkpoint_path).name == "caltech101-effnet-anil.pt"
    assert w.model_panel.model_combo.isVisible() and w.model_panel.model_combo.currentIndex() == 0
    assert w.classifier.model.config.backbone == "efficientnet_lite0"
    # Plain words first; the research detail and the head's settings are one click away, collapsed.
    panel = w.model_panel
    assert "photos" in panel.card.toPlainText().lower() and "fast_lr" not in panel.card.toPlainText()
    assert panel.research.isVisible() and not panel.research.isExpanded()
    assert "fast_lr" in panel.detail.toPlainText()
    assert panel.advanced.isVisible() and not panel.advanced.isExpanded()
    assert panel.fast_lr.visibleRegion().isEmpty()  # collapsed: not on screen
    panel.advanced.expand(animate=False)
    qtbot.waitUntil(lambda: not panel.fast_lr.visibleRegion().isEmpty(), timeout=5000)
    assert panel.fast_lr.isEnabled() and not panel.steps.visibleRegion().isEmpty()
    assert panel.fast_lr.value() == pytest.approx(w.classifier.fast_lr)
    with qtbot.waitSignal(w.adapted, timeout=TIMEOUT * 2) as blocker:
        drop(w.support_view, [folder_root])
    assert len(blocker.args[0].class_names) >= 2
    w.wait_for_jobs()


def test_meta_training_from_the_pretrained_trunk_in_the_app(qtbot, window, folder_root, tmp_path):
    window.show_train_dialog()
    d = window.train_dialog
    assert d.backbone.isVisible() and d.backbone.isEnabled() and d.trunk_train.isVisible()
    d.dataset.setCurrentText("folder")
    d.backbone.setCurrentIndex(d.backbone.findData("efficientnet_lite0"))
    assert d.input_size.value() == 224 and not d.hidden.isEnabled()  # the trunk's own input size
    d.trunk_train.setCurrentIndex(d.trunk_train.findData("last:1"))
    d.data_root.setText(str(folder_root))
    d.ways.setValue(2)
    d.shots.setValue(1)
    d.query.setValue(1)
    d.meta_batch.setValue(2)
    d.iterations.setValue(2)
    d.input_size.setValue(64)
    d.val_every.setValue(2)
    d.val_episodes.setValue(3)
    d.device.setCurrentText("cpu")
    d.out.setText(str(tmp_path / "run"))
    config = d.config()
    assert (config.backbone, config.trunk_train) == ("efficientnet_lite0", "last:1")
    statuses = []
    original = d.status.setText
    d.status.setText = lambda text: (statuses.append(text), original(text))[1]
    loaded = finish_run_and_use_it(qtbot, window, d)
    assert loaded.args[0].endswith("best.pt")
    # The data preparation is shown as it happens, not as a silent "Loading data…".
    assert any("frozen trunk's outputs (training images): " in t for t in statuses)
    assert window.classifier.model.config.backbone == "efficientnet_lite0"
    assert d._vx == [0, 2]
    d.close()


def test_a_drop_offered_as_move_is_taken_as_a_copy(qtbot, window, folder_root):
    """A file manager may propose Move; the app only reads the files and must say Copy."""
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder_root / "class_00"))])
    actions = Qt.DropAction.MoveAction | Qt.DropAction.CopyAction
    args = (actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    for target in (window.support_view, window):
        enter = QDragEnterEvent(QPoint(5, 5), *args)
        enter.setDropAction(Qt.DropAction.MoveAction)
        QApplication.sendEvent(target, enter)
        assert enter.isAccepted() and enter.dropAction() == Qt.DropAction.CopyAction
        drop_event = QDropEvent(QPointF(5, 5), *args)
        drop_event.setDropAction(Qt.DropAction.MoveAction)
        QApplication.sendEvent(target, drop_event)
        assert drop_event.isAccepted() and drop_event.dropAction() == Qt.DropAction.CopyAction
    assert (folder_root / "class_00").is_dir() and any((folder_root / "class_00").iterdir())
    window.wait_for_jobs()


def test_renaming_a_class_to_an_existing_name_is_refused_and_the_field_restored(qtbot, window, folder_root):
    window.show()
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    reported = []
    window.errors.reported.connect(lambda level, text: reported.append((level, text)))
    card = window.support_view.cards["class_01"]
    assert card.name_edit.isVisible() and card.name_edit.isEnabled()
    card.name_edit.setText("class_00")
    card.name_edit.editingFinished.emit()
    assert [c.name for c in window.support.classes] == ["class_00", "class_01"]
    assert window.support_view.cards["class_01"].name_edit.text() == "class_01"
    assert any("already exists" in text for _, text in reported)
    window.support_view.cards["class_01"].name_edit.setText("  ")
    window.support_view.cards["class_01"].name_edit.editingFinished.emit()
    assert window.support_view.cards["class_01"].name_edit.text() == "class_01"
    window.wait_for_jobs()


def test_fewer_than_two_classes_leave_no_classifier_no_results_and_no_export(qtbot, window, folder_root):
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    assert window.export_classifier_action.isEnabled()
    queries = [sorted((folder_root / n).iterdir())[-1] for n in ("class_00", "class_01")]
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT):
        drop(window.classify_panel, queries)
    assert window.classify_panel.results_model.rowCount() == 2
    window.support.remove_class("class_01")  # one class left: no classifier
    qtbot.waitUntil(lambda: not window.classifier.is_adapted, timeout=TIMEOUT)
    assert window.classify_panel.results_model.rowCount() == 0  # the old head's answers are gone
    assert not window.export_classifier_action.isEnabled()
    assert "Adapt the head first" in window.export_classifier_action.statusTip()
    window.exports.export_classifier_dialog()  # the shortcut still answers, with the reason
    window.support.undo_stack.undo()  # two classes again: a classifier again
    qtbot.waitUntil(
        lambda: window.classifier.is_adapted and window.export_classifier_action.isEnabled(), timeout=TIMEOUT
    )
    window.wait_for_jobs()


def test_the_window_fits_a_1024x768_screen(qtbot, window):
    window.show()
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 768, (hint.width(), hint.height())
    window.resize(1024, 740)
    assert window.width() <= 1024


def test_file_dialogs_do_not_open_in_the_bundled_models_folder(qtbot, tmp_path):
    from anil_engine.registry import bundled_models

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, checkpoint=str(bundled_models()[-1].path))
    w.errors.show_dialogs = False
    w.session.confirm_discard = lambda: True
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.classifier is not None, timeout=TIMEOUT)
    assert Path(w.session.last_dir()).resolve() != bundled_models()[-1].path.parent.resolve()
    w.wait_for_jobs()


def test_an_evaluation_on_screen_is_marked_out_of_date_when_its_inputs_change(qtbot, window, folder_root):
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    with qtbot.waitSignal(window.evaluated, timeout=TIMEOUT):
        window.leave_one_out()
    text = window.evaluate_panel.summary.text()
    assert "Out of date" not in text and "model tiny.pt" in text and "2 support classes" in text
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        window.support.add_images("class_00", [sorted((folder_root / "class_02").iterdir())[0]])
    assert window.evaluate_panel.summary.text().startswith("<b>Out of date</b> (the support set changed since")
    assert not window.evaluate_panel.confusion.isEnabled()
    with qtbot.waitSignal(window.evaluated, timeout=TIMEOUT):
        window.leave_one_out()
    assert "Out of date" not in window.evaluate_panel.summary.text() and window.evaluate_panel.confusion.isEnabled()
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT):
        window.load_model(window.checkpoint_path)
    assert "another model was loaded" in window.evaluate_panel.summary.text()
    window.wait_for_jobs()


def test_a_card_counts_what_the_head_is_adapted_on_and_names_unreadable_files(qtbot, window, folder_root, tmp_path):
    support = tmp_path / "support"
    for name in ("class_00", "class_01"):
        (support / name).mkdir(parents=True)
        for p in sorted((folder_root / name).iterdir())[:3]:
            (support / name / p.name).write_bytes(p.read_bytes())
    good = (support / "class_00" / "img_00.png").read_bytes()
    (support / "class_00" / "truncated.png").write_bytes(good[: len(good) // 2])  # half a file
    window.show()
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT) as blocker:
        drop(window.support_view, [support])
    assert blocker.args[0].n_images == 6 and blocker.args[0].unreadable == [str(support / "class_00" / "truncated.png")]
    card = window.support_view.cards["class_00"]
    assert card.count.isVisible() and card.count.text() == "3 of 4 images used"
    assert "truncated.png" in card.count.toolTip()
    assert window.support_view.cards["class_01"].count.text() == "3 images"
    window.wait_for_jobs()


def test_colour_photos_on_a_grayscale_model_get_a_warning(qtbot, window, folder_root, tmp_path):
    from anil_engine.registry import bundled_models

    omniglot = next(m for m in bundled_models() if m.name == "omniglot-vinyals-anil")
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT):
        window.load_model(str(omniglot.path))
    reported = []
    window.errors.reported.connect(lambda level, text: reported.append((level, text)))
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])  # colour PNGs
    assert any(
        level == "warning" and "grayscale" in text and "caltech101-effnet-anil" in text for level, text in reported
    )
    window.wait_for_jobs()


def test_an_empty_window_tells_a_newcomer_what_to_do(qtbot, window, folder_root):
    window.show()
    assert window.support_view.guide.isVisible() and "Start here" in window.support_view.guide.text()
    assert window.classify_panel.guide.isVisible() and "Drop photos" in window.classify_panel.guide.text()
    menu_action(window, "Getting started").trigger()
    dialog = window.help.text_dialogs["getting-started"]
    assert dialog.isVisible() and "Teach it your categories" in dialog.browser.toPlainText()
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [folder_root / "class_00", folder_root / "class_01"])
    assert not window.support_view.guide.isVisible()
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT):
        drop(window.classify_panel, [sorted((folder_root / "class_00").iterdir())[-1]])
    assert not window.classify_panel.guide.isVisible()
    window.classify_panel.clear()
    assert window.classify_panel.guide.isVisible()
    window.wait_for_jobs()


def test_a_model_with_test_time_views_says_so_and_classifies_through_them(qtbot, window, tmp_path):
    import numpy as np
    from PIL import Image, ImageDraw

    from anil_engine.checkpoint import save_checkpoint
    from anil_engine.classifier import FewShotClassifier
    from anil_engine.config import ModelConfig, Preprocessing
    from anil_engine.meta.trainrun import make_checkpoint
    from anil_engine.models import AnilModel, calibrate_batchnorm

    torch.manual_seed(0)
    model = AnilModel(ModelConfig(8, 4, 1, 28, 2), Preprocessing(28, 1, (1.0,), (1.0,), views=9))
    calibrate_batchnorm(model, torch.rand(64, 1, 28, 28))
    ckpt = make_checkpoint(model.eval(), None, "anil", {}, {"name": "omniglot", "split_scheme": "lake"})
    save_checkpoint({**ckpt, "fast_lr": 0.5, "adaptation_steps": 20}, tmp_path / "views.pt")
    rng = np.random.default_rng(0)
    for name in ("bars", "rings"):
        for i in range(4):
            im = Image.new("L", (40, 40), 255)
            d = ImageDraw.Draw(im)
            x, y = rng.integers(4, 12, 2)
            (d.line if name == "bars" else d.ellipse)((x, y, x + 22, y + 22), fill=0, width=3)
            where = tmp_path / ("support" if i < 3 else "query") / name
            where.mkdir(parents=True, exist_ok=True)
            im.save(where / f"{i}.png")
    window.show()
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT):
        window.load_model(str(tmp_path / "views.pt"))
    status = window.model_panel.status
    assert status.isVisible() and "each seen 9 ways" in status.text()
    assert window.classifier.model.preprocessing.views == 9
    menu_action(window, "Evaluate on a data set…").trigger()  # Ctrl+Shift+L: its Views box starts at the model's
    views = window.eval_dialog.views
    assert views.isVisible() and views.isEnabled() and views.currentText() == "the model's (9: 9 views)"
    assert [views.itemData(i) for i in range(views.count())] == [None, 1, 5]
    window.eval_dialog.close()
    with qtbot.waitSignal(window.adapted, timeout=TIMEOUT):
        drop(window.support_view, [tmp_path / "support" / "bars", tmp_path / "support" / "rings"])
    queries = [tmp_path / "query" / "bars" / "3.png", tmp_path / "query" / "rings" / "3.png"]
    with qtbot.waitSignal(window.classified, timeout=TIMEOUT):
        drop(window.classify_panel, queries)
    # The same answers as the engine's classifier on the model's view-averaged features (torch, no ONNX).
    reference = FewShotClassifier(model, 0.5, 20)
    reference.adapt([(c, sorted((tmp_path / "support" / c).iterdir())) for c in ("bars", "rings")])
    for shown, expected in zip(window.classify_panel.predictions, reference.predict(queries)[0], strict=True):
        assert shown.probabilities == pytest.approx(expected.probabilities, abs=1e-4)
    window.wait_for_jobs()


def test_a_card_of_heic_photos_shows_them_once_decoded_in_the_background(qtbot, window, tmp_path):
    from PIL import Image
    from PySide6.QtCore import Qt

    from app import thumbnails

    folder = tmp_path / "greens"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 48), (30, 160 + 20 * i, 60)).save(folder / f"IMG_{i}.HEIC")
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    drop(window.support_view, [folder])
    qtbot.waitUntil(lambda: "greens" in window.support_view.cards, timeout=TIMEOUT)
    model = window.support_view.cards["greens"].thumbs.model()
    keys = [(str(p), thumbnails.THUMB, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())]
    # Nothing here asks for a thumbnail: only the card, repainting on `loader.ready` (dataChanged), takes them from
    # the worker into the cache, with the photos, not grey squares.
    qtbot.waitUntil(lambda: all(k in thumbnails._thumb_cache for k in keys), timeout=TIMEOUT)
    for row in range(3):
        pixmap = model.data(model.index(row, 0), Qt.ItemDataRole.DecorationRole)
        assert pixmap.toImage().pixelColor(10, 10).name() != "#bbbbbb"
