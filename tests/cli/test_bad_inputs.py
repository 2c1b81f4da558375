"""A corpus of bad inputs through the CLI: every file ends in the result or in a message naming it, the exit
codes are the documented ones, no traceback, no NaN in JSON; and a seeded fuzz over damaged files."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from anil_engine.checkpoint import load_checkpoint, save_checkpoint
from anil_engine.cli import EXIT_CODES, build_parser, main
from anil_engine.errors import AnilError

LATIN1 = os.fsdecode(b"caf\xe9.png")  # as in conftest's bad_corpus


def _run(capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    code = main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def test_classify_names_every_bad_file_and_keeps_the_good_ones(bad_corpus, app_checkpoint, capsys, monkeypatch):
    import anil_engine.images as images

    monkeypatch.setattr(images, "PIXEL_LIMIT", 70 * 70)
    code, out, err = _run(capsys, "classify", "--checkpoint", str(app_checkpoint), "--support",
                          str(bad_corpus["support"]), str(bad_corpus["queries"]), str(bad_corpus["empty"]), "--quiet",
                          "--json", "--csv", str(bad_corpus["queries"].parent / "out.csv"))  # fmt: skip
    assert code == 0
    result = json.loads(out)  # valid JSON: no NaN
    classified = {Path(p["path"]).name for p in result["predictions"]}
    assert classified == {"good.png", LATIN1}
    q = bad_corpus["queries"]
    for name, why in [
        ("truncated.jpg", "corrupt or truncated"),
        ("garbage.png", "not an image"),
        ("empty.jpg", "an empty file (0 bytes"),
        ("dead.png", "a broken link"),
        ("loop", "a loop"),
        ("huge.png", "80 x 80 pixels, more than the 4,900 pixels this app opens safely"),
    ]:
        assert any(str(q / name) in line and why in line for line in err.splitlines()), (name, err)
    # Files that are not images are named together, per folder.
    assert any(line.startswith(f"warning: {q}: ") and "readme.txt" in line for line in err.splitlines())
    assert f"{bad_corpus['empty']}: no images inside" in err
    assert f"{bad_corpus['support'] / 'empty_class'}: no images inside; this class is left out" in err
    assert "notes.txt" in err
    assert (q.parent / "out.csv").read_bytes().count(b"\n") == 3  # header + 2, the Latin-1 name as its bytes
    assert os.fsencode(LATIN1) in (q.parent / "out.csv").read_bytes()


def test_predict_text_output_survives_a_latin1_name(bad_corpus, app_checkpoint, capsys, tmp_path):
    onnx = tmp_path / "clf.onnx"
    assert _run(capsys, "adapt", "--checkpoint", str(app_checkpoint), "--support", str(bad_corpus["support"]),
                "--out", str(onnx), "--quiet")[0] == 0  # fmt: skip
    # In a terminal of a UTF-8 desktop locale (PYTHONIOENCODING=utf-8 makes Python's streams behave so here).
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "LC_ALL": "C.UTF-8"}
    latin1 = bad_corpus["queries"] / LATIN1
    run = subprocess.run([sys.executable, "-m", "anil_engine", "predict", "--model", str(onnx), str(latin1)],
                         capture_output=True, env=env, timeout=300)  # fmt: skip
    assert run.returncode == 0 and b"Traceback" not in run.stderr
    assert run.stdout.startswith(os.fsencode(latin1) + b"\t")  # the name's own bytes
    code, out, err = _run(capsys, "predict", "--model", str(onnx), str(bad_corpus["empty"]))
    assert code == 2 and out == "" and f"{bad_corpus['empty']}: no images inside" in err
    trunk = tmp_path / "trunk.onnx"
    assert _run(capsys, "export", "--checkpoint", str(app_checkpoint), "--out", str(trunk))[0] == 0
    code, _, err = _run(capsys, "predict", "--model", str(trunk), str(bad_corpus["good"]))
    assert code == 2 and "a frozen trunk export" in err


def test_a_non_finite_checkpoint_is_refused_everywhere(app_checkpoint, bad_corpus, capsys, tmp_path):
    bad = tmp_path / "nan.pt"
    ckpt = load_checkpoint(app_checkpoint)
    name = next(k for k, v in ckpt["state_dict"].items() if k.endswith("conv.weight"))
    ckpt["state_dict"][name] = ckpt["state_dict"][name].clone()
    ckpt["state_dict"][name].view(-1)[0] = float("nan")
    save_checkpoint(ckpt, bad)
    for args in (
        ["classify", "--checkpoint", str(bad), "--support", str(bad_corpus["support"]), str(bad_corpus["good"])],
        ["adapt", "--checkpoint", str(bad), "--support", str(bad_corpus["support"]), "--out", str(tmp_path / "x.onnx")],
        ["export", "--checkpoint", str(bad), "--out", str(tmp_path / "t.onnx")],
        ["eval", "--checkpoint", str(bad), "--data-root", str(tmp_path)],
    ):
        code, out, err = _run(capsys, *args)
        assert code == 2 and out == "" and f"{bad}: tensor {name} holds 1 non-finite value" in err, args
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "t.onnx").exists()


def test_a_malicious_pickle_is_refused_as_unsafe_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "x", "payload": Evil()}, evil)
    code, _, err = _run(capsys, "export", "--checkpoint", str(evil), "--out", str(tmp_path / "t.onnx"))
    assert code == 2 and "unsafe to load; it was refused and nothing in it ran" in err and not marker.exists()


def test_outputs_that_cannot_be_written_fail_before_the_work(app_checkpoint, bad_corpus, capsys, tmp_path, folder_root):
    (tmp_path / "a-file").write_text("x")
    below_file = str(tmp_path / "a-file" / "out.onnx")
    code, _, err = _run(capsys, "adapt", "--checkpoint", str(app_checkpoint), "--support", str(bad_corpus["support"]),
                        "--out", below_file)  # fmt: skip
    assert code == 2 and "a file, not a folder" in err and "Adapt" not in err
    code, _, err = _run(capsys, "train", "--dataset", "folder", "--data-root", str(folder_root), "--out",
                        str(tmp_path / "a-file"), "--iterations", "1", "--quiet")  # fmt: skip
    assert code == 2 and "is a file; give a folder for the run" in err


def test_a_stale_temporary_of_a_killed_write_is_removed_by_the_next_write(tmp_path):
    from anil_engine.checkpoint import STALE_TMP_S, atomic_write_bytes

    target = tmp_path / "project.anilproj"
    stale, fresh, other = tmp_path / ".project.anilproj.abcd1234.tmp", tmp_path / ".project.anilproj.efgh5678.tmp", \
        tmp_path / ".project.anilproj.mine.tmp"  # fmt: skip
    for f in (stale, fresh, other):
        f.write_bytes(b"half")
    old = stale.stat().st_mtime - STALE_TMP_S - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomic_write_bytes(b"{}", target)
    assert target.read_bytes() == b"{}" and not stale.exists()
    assert fresh.exists() and other.exists()  # a write in progress, and a file not of our pattern, stay


def test_the_exit_codes_are_documented_in_help():
    text = build_parser().format_help()
    assert all(f"{code} " in text for code in EXIT_CODES)


@pytest.mark.parametrize("kind", ["jpeg", "png", "checkpoint", "onnx"])
def test_fuzzed_files_give_a_result_or_a_named_error(kind, tmp_path, app_checkpoint):
    """Random truncations and byte flips (seeded, 40 each): never an exception other than ours."""
    from anil_engine.images import load_image
    from anil_engine.runtime import OnnxClassifier

    source = tmp_path / f"source.{kind}"
    if kind in ("jpeg", "png"):
        Image.new("RGB", (48, 48), (120, 40, 200)).save(source, format=kind.upper())
        read = lambda p: load_image(p, 32, 3)  # noqa: E731
    elif kind == "checkpoint":
        shutil.copy(app_checkpoint, source)
        read = load_checkpoint
    else:
        from anil_engine.cli import main as cli

        assert cli(["export", "--checkpoint", str(app_checkpoint), "--out", str(source)]) == 0
        read = OnnxClassifier  # a trunk export: refused with a message when intact
    data = source.read_bytes()
    rng = random.Random(0)
    for i in range(40):
        damaged = bytearray(data[: rng.randrange(1, len(data))] if i % 2 else data)
        for _ in range(rng.randrange(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        f = tmp_path / f"damaged-{i}.{kind}"
        f.write_bytes(bytes(damaged))
        try:
            read(f)
        except AnilError as exc:
            assert str(f) in str(exc)


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv")
def test_unreadable_folders_are_named_not_a_traceback(bad_corpus, app_checkpoint, tmp_path):
    """Root with the capabilities that bypass file permissions dropped, as a normal user's process would be."""
    locked_class = bad_corpus["support"] / "class_locked"
    shutil.copytree(bad_corpus["support"] / "class_00", locked_class)
    locked_queries = tmp_path / "locked_queries"
    locked_queries.mkdir()
    for folder in (locked_class, locked_queries):
        folder.chmod(0)
    try:
        run = subprocess.run(
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m", "anil_engine",
             "classify", "--checkpoint", str(app_checkpoint), "--support", str(bad_corpus["support"]),
             str(bad_corpus["good"]), str(locked_queries), "--quiet", "--json"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        for folder in (locked_class, locked_queries):
            folder.chmod(0o755)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    for folder in (locked_class, locked_queries):
        assert f"{folder}: cannot be read (Permission denied)" in run.stderr
    assert [Path(p["path"]).name for p in json.loads(run.stdout)["predictions"]] == ["good.png"]


def test_a_classifier_export_with_damaged_metadata_is_refused_clearly(bad_corpus, app_checkpoint, capsys, tmp_path):
    import onnx

    onnx_path = tmp_path / "clf.onnx"
    assert _run(capsys, "adapt", "--checkpoint", str(app_checkpoint), "--support", str(bad_corpus["support"]),
                "--out", str(onnx_path), "--quiet")[0] == 0  # fmt: skip
    for key, value, why in [
        ("anil_studio.class_names", None, "metadata is incomplete or damaged"),
        ("anil_studio.input_size", "64", "disagrees with the graph"),
    ]:
        proto = onnx.load(onnx_path)
        kept = [(p.key, p.value) for p in proto.metadata_props if p.key != key]
        del proto.metadata_props[:]
        for k, v in kept + ([(key, value)] if value is not None else []):
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        damaged = tmp_path / f"damaged-{key}.onnx"
        onnx.save(proto, damaged)
        code, out, err = _run(capsys, "predict", "--model", str(damaged), str(bad_corpus["good"]))
        assert code == 2 and out == "" and f"{damaged}: " in err and why in err, err
