"""`--download`: the libraries' downloaders are called and their layouts handed to the loaders (no network)."""

from __future__ import annotations

import pytest
import torchvision.datasets

from anil_engine.cli import main
from anil_engine.datasets.download import download
from anil_engine.errors import DataError


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def factory(self, name: str):
        def make(root, **kwargs):
            self.calls.append((name, {"root": root, **kwargs}))

        return make


@pytest.mark.parametrize(
    "dataset,cls,expected_root",
    [
        ("omniglot", "Omniglot", "omniglot-py"),
        ("caltech-101", "Caltech101", "caltech101"),
        ("cifar-fs", "CIFAR100", ""),
        ("fc100", "CIFAR100", ""),
    ],
)
def test_torchvision_downloaders(tmp_path, monkeypatch, dataset, cls, expected_root):
    rec = Recorder()
    monkeypatch.setattr(torchvision.datasets, cls, rec.factory(cls))
    root = download(dataset, tmp_path / "data")
    assert root == (tmp_path / "data" / expected_root if expected_root else tmp_path / "data")
    assert rec.calls and all(name == cls and kw["download"] for name, kw in rec.calls)
    if dataset == "omniglot":
        assert [kw["background"] for _, kw in rec.calls] == [True, False]


def test_mini_imagenet_uses_learn2learn(tmp_path, monkeypatch):
    from anil_engine._l2l import learn2learn

    rec = Recorder()
    monkeypatch.setattr(learn2learn().vision.datasets, "MiniImagenet", rec.factory("MiniImagenet"))
    assert download("mini-imagenet", tmp_path) == tmp_path
    assert [kw["mode"] for _, kw in rec.calls] == ["train", "validation", "test"]


def test_offline_download_says_which_files_to_put_where(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    with pytest.raises(DataError, match=r"put cifar-100-python/\{train,test,meta\} into"):
        download("cifar-fs", tmp_path)
    with pytest.raises(DataError, match="not available for 'folder'"):
        download("folder", tmp_path)
    args = ["train", "--dataset", "cifar-fs", "--data-root", str(tmp_path), "--download", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "downloading cifar-fs failed" in err and "Traceback" not in err
