from __future__ import annotations

from pathlib import Path

import pytest

from anil_engine.errors import DataError
from anil_engine.jobs import run_to_end
from anil_engine.runtime import Prediction
from anil_engine.sorting import folder_name, sort_into_folders


def _photo(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def _prediction(path: Path, label: str, confidence: float) -> Prediction:
    return Prediction(str(path), label, confidence, {label: confidence})


def test_photos_are_copied_into_their_class_folders_and_the_unsure_ones_apart(tmp_path):
    a = _photo(tmp_path / "in", "cat.jpg", b"cat")
    b = _photo(tmp_path / "in", "dog.jpg", b"dog")
    c = _photo(tmp_path / "in", "blur.jpg", b"blur")
    report = run_to_end(
        sort_into_folders(
            [_prediction(a, "cats", 0.9), _prediction(b, "dogs", 0.8), _prediction(c, "cats", 0.4)],
            tmp_path / "out",
            unsure_below=0.5,
        )
    )
    assert (tmp_path / "out" / "cats" / "cat.jpg").read_bytes() == b"cat"
    assert (tmp_path / "out" / "dogs" / "dog.jpg").read_bytes() == b"dog"
    assert (tmp_path / "out" / "unsure" / "blur.jpg").read_bytes() == b"blur"
    assert a.exists() and b.exists() and c.exists()  # copies: the originals stay
    assert report.counts == {"cats": 1, "dogs": 1, "unsure": 1} and report.failed == []
    assert "sorted 3 photo(s) into 3 folder(s)" in report.summary()


def test_sorting_again_copies_nothing_twice_and_same_names_both_arrive(tmp_path):
    first = _photo(tmp_path / "day1", "IMG_0001.jpg", b"one")
    second = _photo(tmp_path / "day2", "IMG_0001.jpg", b"two")  # another photo, the same name
    predictions = [_prediction(first, "birds", 0.9), _prediction(second, "birds", 0.9)]
    run_to_end(sort_into_folders(predictions, tmp_path / "out"))
    again = run_to_end(sort_into_folders(predictions, tmp_path / "out"))
    names = sorted(p.name for p in (tmp_path / "out" / "birds").iterdir())
    assert names == ["IMG_0001 (2).jpg", "IMG_0001.jpg"]
    assert (tmp_path / "out" / "birds" / "IMG_0001 (2).jpg").read_bytes() == b"two"
    assert again.already == 2 and "2 of them were there already" in again.summary()


def test_a_missing_photo_is_named_and_the_others_still_sorted(tmp_path):
    gone = tmp_path / "in" / "gone.jpg"
    kept = _photo(tmp_path / "in", "kept.jpg", b"x")
    report = run_to_end(sort_into_folders([_prediction(gone, "a", 1.0), _prediction(kept, "a", 1.0)], tmp_path / "o"))
    assert report.counts == {"a": 1}
    assert len(report.failed) == 1 and str(gone) in report.failed[0] and "could not be copied" in report.failed[0]
    assert not list((tmp_path / "o").rglob(".*part*"))  # no half-written temporary left


def test_a_destination_that_cannot_be_a_folder_is_refused_before_any_copy(tmp_path):
    photo = _photo(tmp_path / "in", "a.jpg", b"x")
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    with pytest.raises(DataError, match="taken"):
        run_to_end(sort_into_folders([_prediction(photo, "a", 1.0)], blocker / "out"))
    no_files = "^/proc: no file can be written in this folder .*; choose another folder"  # not even by root
    with pytest.raises(DataError, match=no_files):
        run_to_end(sort_into_folders([_prediction(photo, "a", 1.0)], "/proc"))


def test_a_stopped_sort_leaves_whole_files_only(tmp_path):
    photos = [_photo(tmp_path / "in", f"{i}.jpg", bytes([i]) * 1000) for i in range(5)]
    job = sort_into_folders([_prediction(p, "a", 1.0) for p in photos], tmp_path / "out")
    next(job), next(job)
    job.close()  # what Stop does: the generator ends at its next yield
    copied = sorted((tmp_path / "out" / "a").iterdir())
    assert [p.name for p in copied] == ["0.jpg", "1.jpg"] and all(p.stat().st_size == 1000 for p in copied)


@pytest.mark.parametrize(
    ("label", "folder"),
    [("cats", "cats"), ("a/b", "a_b"), ("what?", "what_"), ("..", "_"), ("  ", "_"), ("dots...", "dots")],
)
def test_class_names_become_folder_names_on_any_system(label, folder):
    assert folder_name(label) == folder
