"""`--download`: fetch a data set with its library's own downloader, where the network allows.

Each downloader writes its usual layout; the function returns the data root the
loaders then read. Offline, the downloader's error is turned into a message that
says which files to put where instead.
"""

from __future__ import annotations

from pathlib import Path

from anil_engine.errors import DataError

# What to put where when the download is impossible (the loaders' layouts, see README "Data").
LAYOUTS = {
    "omniglot": "images_background.npz + images_evaluation.npz, or images_background/ + images_evaluation/",
    "caltech-101": "101_ObjectCategories/ or 101_ObjectCategories.zip",
    "cifar-fs": "cifar-100-python/{train,test,meta}",
    "fc100": "cifar-100-python/{train,test,meta}",
    "mini-imagenet": "mini-imagenet-cache-{train,validation,test}.pkl",
}


def download(name: str, root: str | Path) -> Path:
    """Download data set `name` below `root`; return the folder to pass to the loaders."""
    root = Path(root).expanduser()
    if name not in LAYOUTS:
        raise DataError(f"--download is not available for {name!r}; put the files in {root} yourself")
    try:
        root.mkdir(parents=True, exist_ok=True)
        if name == "omniglot":
            from torchvision.datasets import Omniglot

            for background in (True, False):
                Omniglot(str(root), background=background, download=True)
            return root / "omniglot-py"
        if name == "caltech-101":
            from torchvision.datasets import Caltech101

            Caltech101(str(root), download=True)
            return root / "caltech101"
        if name in ("cifar-fs", "fc100"):
            from torchvision.datasets import CIFAR100

            CIFAR100(str(root), download=True)
            return root
        from anil_engine._l2l import learn2learn

        for mode in ("train", "validation", "test"):
            learn2learn().vision.datasets.MiniImagenet(str(root), mode=mode, download=True)
        return root
    except DataError:
        raise
    except Exception as exc:  # network, disk and server errors all end here
        raise DataError(
            f"{root}: downloading {name} failed ({type(exc).__name__}: {exc}). Without network access, put "
            f"{LAYOUTS[name]} into {root} and run again without --download"
        ) from exc
