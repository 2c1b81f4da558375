"""The Evaluate-on-a-data-set dialog's Omniglot protocols: within one alphabet, and Lake et al.'s 20 runs."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_omniglot_npz

from app.testing import TIMEOUT_MS as TIMEOUT


@pytest.fixture(scope="module")
def twenty_drawers(tmp_path_factory):
    return write_omniglot_npz(tmp_path_factory.mktemp("omniglot20"), drawers=20, size=16)


def _lake_checkpoint(path):
    from anil_engine.checkpoint import save_checkpoint
    from anil_engine.config import ModelConfig, Preprocessing
    from anil_engine.meta.trainrun import make_checkpoint
    from anil_engine.models import AnilModel, calibrate_batchnorm

    torch.manual_seed(0)
    model = AnilModel(ModelConfig(8, 4, 1, 16, 5), Preprocessing(16, 1, (1.0,), (1.0,)))
    calibrate_batchnorm(model, torch.rand(32, 1, 16, 16))
    ckpt = make_checkpoint(model, None, "anil", {}, {"name": "omniglot", "split_scheme": "lake"})
    save_checkpoint({**ckpt, "fast_lr": 0.4, "adaptation_steps": 3}, path)
    return path


def test_lake_s_runs_and_episodes_within_an_alphabet_from_the_dialog(qtbot, twenty_drawers, tmp_path, capsys):
    """The protocol list is shown and enabled for Omniglot only; Lake's runs leave nothing to choose but the
    model, BatchNorm and method, and give the error `anil-studio lake-runs` prints; within one alphabet gives
    `eval --episodes-within alphabet`'s accuracy."""
    from anil_engine.cli import main
    from app.dialogs.eval_dialog import EvalDialog

    ckpt = _lake_checkpoint(tmp_path / "lake.pt")
    d = EvalDialog()
    qtbot.addWidget(d)
    d.show()
    d.set_checkpoint(str(ckpt), {"dataset": {"name": "omniglot", "split_scheme": "lake"}})
    assert d.protocol.isVisible() and d.protocol.isEnabled()
    d.dataset.setCurrentText("folder")
    assert not d.protocol.isEnabled() and d.protocol.currentData() is None
    d.dataset.setCurrentText("omniglot")
    d.data_root.setText(str(twenty_drawers))
    d.device.setCurrentText("cpu")
    d.protocol.setCurrentIndex(d.protocol.findData("lake-runs"))
    assert not any(b.isEnabled() for b in (d.split, d.ways, d.shots, d.query, d.episodes, d.seed))
    assert d.bn.isEnabled() and d.method.isEnabled() and d.run_button.isEnabled()
    with qtbot.waitSignal(d.results.model().rowsInserted, timeout=TIMEOUT):
        d.run_button.click()
    qtbot.waitUntil(lambda: not d.job.running, timeout=TIMEOUT)
    capsys.readouterr()
    assert main(["lake-runs", "--checkpoint", str(ckpt), "--data-root", str(twenty_drawers), "--device", "cpu",
                 "--json"]) == 0  # fmt: skip
    cli = json.loads(capsys.readouterr().out)
    line = d.results.item(0).text()
    assert line.startswith(f"error {cli['error']:.2f} ± {cli['ci95']:.2f} % — Lake et al.'s 20 runs") and (
        "humans 4.5 %" in line
    )
    assert d.progress.value() == d.progress.maximum() == 20

    d.protocol.setCurrentIndex(d.protocol.findData("alphabet"))
    assert all(b.isEnabled() for b in (d.split, d.ways, d.shots, d.query, d.episodes, d.seed))
    d.ways.setValue(20)
    d.shots.setValue(1)
    d.query.setValue(1)
    d.episodes.setValue(5)
    with qtbot.waitSignal(d.results.model().rowsInserted, timeout=TIMEOUT):
        d.run_button.click()
    qtbot.waitUntil(lambda: not d.job.running, timeout=TIMEOUT)
    assert main(["eval", "--checkpoint", str(ckpt), "--data-root", str(twenty_drawers), "--ways", "20", "--shots",
                 "1", "--query", "1", "--episodes", "5", "--episodes-within", "alphabet", "--device", "cpu",
                 "--json"]) == 0  # fmt: skip
    cli = json.loads(capsys.readouterr().out)
    assert (
        d.results.item(1)
        .text()
        .startswith(f"{cli['accuracy']:.2f} ± {cli['ci95']:.2f} % — omniglot test, 20-way 1-shot within one alphabet")
    )


def test_test_time_views_are_chosen_in_the_dialog_for_drawings_only(qtbot, twenty_drawers, tmp_path, capsys):
    """The Views box is shown and enabled for a drawings model, reached by Alt+V, and gives `eval --views`'s
    accuracy; a photo model's box offers nothing else."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from anil_engine.cli import main
    from app.dialogs.eval_dialog import EvalDialog

    ckpt = _lake_checkpoint(tmp_path / "lake.pt")
    d = EvalDialog()
    qtbot.addWidget(d)
    d.show()
    d.set_checkpoint(str(ckpt), {"dataset": {"name": "omniglot", "split_scheme": "lake"},
                                 "preprocessing": {"channels": 1, "views": 1}})  # fmt: skip
    assert d.views.isVisible() and d.views.isEnabled()
    assert [d.views.itemData(i) for i in range(d.views.count())] == [None, 5, 9]
    assert d.views.currentText() == "the model's (1: the image alone)"
    d.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is d, timeout=TIMEOUT)
    d.data_root.setFocus()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_V, Qt.KeyboardModifier.AltModifier)  # the label's mnemonic
    qtbot.waitUntil(d.views.hasFocus, timeout=TIMEOUT)
    qtbot.keyClick(d.views, Qt.Key.Key_End)
    assert d.views.currentData() == 9 and d.config().views == 9 and d.lake_runs_request().views == 9
    d.data_root.setText(str(twenty_drawers))
    d.device.setCurrentText("cpu")
    d.protocol.setCurrentIndex(d.protocol.findData("alphabet"))
    for box, value in ((d.ways, 20), (d.shots, 1), (d.query, 1), (d.episodes, 5)):
        box.setValue(value)
    with qtbot.waitSignal(d.results.model().rowsInserted, timeout=TIMEOUT):
        d.run_button.click()
    qtbot.waitUntil(lambda: not d.job.running, timeout=TIMEOUT)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ckpt), "--data-root", str(twenty_drawers), "--ways", "20", "--shots",
                 "1", "--query", "1", "--episodes", "5", "--episodes-within", "alphabet", "--device", "cpu",
                 "--views", "9", "--json"]) == 0  # fmt: skip
    cli = json.loads(capsys.readouterr().out)
    line = d.results.item(0).text()
    assert line.startswith(f"{cli['accuracy']:.2f} ± {cli['ci95']:.2f} %") and "head, 9 views" in line
    d.set_checkpoint(str(ckpt), {"preprocessing": {"channels": 3}})
    assert d.views.count() == 1 and not d.views.isEnabled() and d.config().views is None
