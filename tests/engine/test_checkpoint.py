from __future__ import annotations

import os

import pytest
import torch

from anil_engine.checkpoint import atomic_torch_save, load_checkpoint, save_checkpoint
from anil_engine.config import ModelConfig, Preprocessing
from anil_engine.errors import CheckpointError
from anil_engine.meta.trainrun import make_checkpoint
from anil_engine.models import AnilModel, model_from_checkpoint


def small_checkpoint():
    torch.manual_seed(0)
    model = AnilModel(ModelConfig(8, 4, 1, 28, 5), Preprocessing())
    return model, make_checkpoint(model, None, "anil", {"note": 1}, {"name": "omniglot", "split_scheme": "vinyals"})


def test_round_trip(tmp_path):
    model, ckpt = small_checkpoint()
    save_checkpoint(ckpt, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt")
    again = model_from_checkpoint(loaded)
    x = torch.rand(3, 1, 28, 28)
    model.eval(), again.eval()
    assert torch.equal(model(x), again(x))
    assert loaded["preprocessing"] == {"size": 28, "channels": 1, "mean": [0.0], "std": [1.0]}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_truncated_file(tmp_path):
    _, ckpt = small_checkpoint()
    save_checkpoint(ckpt, tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt: not a readable PyTorch file"):
        load_checkpoint(tmp_path / "cut.pt")


def test_foreign_and_text_files(tmp_path):
    atomic_torch_save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: not an ANIL Studio checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_checkpoint(tmp_path / "notes.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "absent.pt")


class Payload:
    pass


def test_unsafe_pickle_is_refused(tmp_path):
    torch.save({"format": "anil-studio-checkpoint", "obj": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="unsafe to load"):
        load_checkpoint(tmp_path / "evil.pt")


def test_wrong_version_and_incomplete(tmp_path):
    _, ckpt = small_checkpoint()
    atomic_torch_save({**ckpt, "version": 99}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "new.pt")
    atomic_torch_save({k: v for k, v in ckpt.items() if k != "state_dict"}, tmp_path / "part.pt")
    with pytest.raises(CheckpointError, match="lacks"):
        load_checkpoint(tmp_path / "part.pt")


def test_weights_that_do_not_fit(tmp_path):
    _, ckpt = small_checkpoint()
    ckpt["model"]["hidden_size"] = 16
    with pytest.raises(CheckpointError, match="do not fit"):
        model_from_checkpoint(ckpt, "x.pt")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder(tmp_path):
    _, ckpt = small_checkpoint()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(CheckpointError, match="cannot write there"):
        save_checkpoint(ckpt, locked / "m.pt")


def test_path_that_is_a_folder(tmp_path):
    _, ckpt = small_checkpoint()
    with pytest.raises(CheckpointError, match="is a folder"):
        save_checkpoint(ckpt, tmp_path)


def test_existing_file_survives_a_failed_save(tmp_path, monkeypatch):
    _, ckpt = small_checkpoint()
    target = tmp_path / "m.pt"
    save_checkpoint(ckpt, target)
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(CheckpointError, match="No space left"):
        save_checkpoint(ckpt, target)
    assert target.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_path_below_a_file_is_unwritable(tmp_path):
    _, ckpt = small_checkpoint()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CheckpointError, match="file.txt/m.pt: cannot write there"):
        save_checkpoint(ckpt, tmp_path / "file.txt" / "m.pt")


def test_preprocessing_keeps_its_crop_and_older_checkpoints_read_as_uncropped():
    from anil_engine.config import Preprocessing
    from anil_engine.errors import ConfigError

    old = {"size": 28, "channels": 1, "mean": [1.0], "std": [1.0]}
    assert Preprocessing.from_dict(old).crop == "none" and Preprocessing.from_dict(old).to_dict() == old
    framed = Preprocessing(28, 1, (1.0,), (1.0,), crop="ink")
    assert framed.to_dict() == {**old, "crop": "ink"} and Preprocessing.from_dict(framed.to_dict()) == framed
    with pytest.raises(ConfigError, match="crop must be one of"):
        Preprocessing(28, 1, (1.0,), (1.0,), crop="tight")
