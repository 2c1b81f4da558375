"""The CLI's and the dialogs' defaults and choices are the configs' own: never retyped."""

from __future__ import annotations

import pytest

from anil_engine.cli import build_parser
from anil_engine.config import (
    BN_MODES,
    CLASSIFIERS,
    DATASETS,
    DEVICES,
    ENGINES,
    HEAD_INITS,
    METHODS,
    PRECISIONS,
    SAMPLERS,
    SPLIT_SCHEMES,
    CardRequest,
    EvalConfig,
    PretrainConfig,
    TrainConfig,
    field_defaults,
)

# CLI options that are not config fields, or whose default is "the data set's / the checkpoint's".
NOT_FROM_CONFIG = {"input_size", "init_feature_norm", "split_scheme", "dataset", "data_root"}


def _options(command: str) -> dict:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {a.dest: a for a in sub.choices[command]._actions}


@pytest.mark.parametrize(("command", "config"), [("train", TrainConfig), ("pretrain", PretrainConfig)])
def test_training_options_default_to_the_config(command, config):
    options, defaults = _options(command), field_defaults(config)
    shared = set(options) & set(defaults) - NOT_FROM_CONFIG
    assert len(shared) >= 14 if command == "train" else len(shared) >= 12
    for name in shared:
        assert options[name].default == defaults[name], name


def test_eval_and_card_options_default_to_their_configs():
    e, d = _options("eval"), field_defaults(EvalConfig)
    assert (e["ways"].default, e["query"].default) == (d["task"].ways, d["task"].query)
    assert (e["episodes"].default, e["bn"].default, e["seed"].default, e["method"].default) == (
        d["episodes"], d["bn"], d["seed"], d["method"])  # fmt: skip
    c, r = _options("card"), field_defaults(CardRequest)
    assert {n: c[n].default for n in ("settings", "episodes", "seed", "query")} == {
        n: r[n] for n in ("settings", "episodes", "seed", "query")}  # fmt: skip


def test_choices_are_the_engine_constants():
    t, p, e = _options("train"), _options("pretrain"), _options("eval")
    assert tuple(t["device"].choices) == DEVICES and tuple(t["dataset"].choices) == DATASETS
    assert tuple(t["split_scheme"].choices) == SPLIT_SCHEMES and tuple(t["engine"].choices) == ENGINES
    assert tuple(t["sampler"].choices) == SAMPLERS and tuple(t["precision"].choices) == PRECISIONS
    assert tuple(t["head_init"].choices) == HEAD_INITS and tuple(p["classifier"].choices) == CLASSIFIERS
    assert tuple(e["bn"].choices) == BN_MODES and tuple(e["method"].choices) == METHODS
    assert "(0.001)" in t["meta_lr"].help % {"default": t["meta_lr"].default}  # help shows the default


def test_the_dialogs_start_from_the_configs(qtbot):
    pytest.importorskip("PySide6")
    from app.dialogs.eval_dialog import EvalDialog
    from app.dialogs.train_dialog import TrainDialog

    t, d = TrainDialog(), field_defaults(TrainConfig)
    qtbot.addWidget(t)
    shown = {
        "ways": t.ways.value(), "shots": t.shots.value(), "query": t.query.value(), "meta_lr": t.meta_lr.value(),
        "fast_lr": t.fast_lr.value(), "meta_batch_size": t.meta_batch.value(),
        "adaptation_steps": t.steps.value(), "iterations": t.iterations.value(), "hidden_size": t.hidden.value(),
        "val_every": t.val_every.value(), "val_episodes": t.val_episodes.value(), "device": t.device.currentText(),
        "dataset": t.dataset.currentText(), "backbone": t.backbone.currentData(),
        "trunk_train": t.trunk_train.currentData(), "first_order": t.first_order.isChecked(),
    }  # fmt: skip
    assert shown == {k: d[k] for k in shown}
    assert [t.device.itemText(i) for i in range(t.device.count())] == list(DEVICES)
    e, d = EvalDialog(), field_defaults(EvalConfig)
    qtbot.addWidget(e)
    assert (e.episodes.value(), e.bn.currentText(), e.method.currentText(), e.seed.value()) == (
        d["episodes"], d["bn"], d["method"], d["seed"])  # fmt: skip
    assert [e.split_scheme.itemText(i) for i in range(e.split_scheme.count())] == list(SPLIT_SCHEMES)
