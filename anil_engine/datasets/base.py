"""The in-memory data set every loader produces."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageTensorDataset(torch.utils.data.Dataset):
    """Images held as one uint8 tensor.

    Attributes:
        images: uint8 (n, channels, size, size).
        labels: int64 (n,), values 0..n_classes-1.
        class_names: one name per label.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (n, c, h, w), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels {tuple(self.labels.shape)} do not match {self.images.shape[0]} images")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> torch.Tensor:
        """(n_classes,) images per class."""
        return torch.bincount(self.labels, minlength=self.n_classes)

    def labels_to_indices(self) -> dict[int, list[int]]:
        """Class label -> list of sample indices, as learn2learn's MetaDataset wants."""
        order = torch.argsort(self.labels, stable=True)
        counts = self.class_counts().tolist()
        out, start = {}, 0
        for label, count in enumerate(counts):
            out[label] = order[start : start + count].tolist()
            start += count
        return out


def joined(first: ImageTensorDataset, second: ImageTensorDataset) -> ImageTensorDataset:
    """Both data sets' images as one, the second's classes after the first's (labels shifted, names kept)."""
    return ImageTensorDataset(
        torch.cat([first.images, second.images]),
        torch.cat([first.labels, second.labels + first.n_classes]),
        [*first.class_names, *second.class_names],
    )
