from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from anil_engine.cli import build_parser, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "anil_engine", *args], capture_output=True, text=True, timeout=600)


def tiny_train_args(root, out, iterations: int, val_every: int) -> list[str]:
    """`train` arguments for a tiny 2-way 1-shot run on the synthetic class folders."""
    return [
        "train",
        "--dataset",
        "folder",
        "--data-root",
        str(root),
        "--ways",
        "2",
        "--shots",
        "1",
        "--query",
        "1",
        "--iterations",
        str(iterations),
        "--meta-batch-size",
        "2",
        "--val-every",
        str(val_every),
        "--hidden-size",
        "8",
        "--input-size",
        "32",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--quiet",
    ]


def test_float64_training_and_evaluating_its_checkpoint(tmp_path, folder_root):
    """What benchmarks/engine_accuracy.sh does with PRECISION=float64: train in float64, evaluate last.pt."""
    import torch

    out = tmp_path / "run64"
    args = tiny_train_args(folder_root, out, iterations=2, val_every=2)
    train = run_cli(*args, "--precision", "float64", "--engine", "reference", "--val-episodes", "4")
    assert train.returncode == 0, train.stderr
    assert json.loads((out / "config.json").read_text())["precision"] == "float64"
    state = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    assert state["head.weight"].dtype == torch.float64
    ev = run_cli(
        "eval", "--checkpoint", str(out / "last.pt"), "--dataset", "folder", "--data-root", str(folder_root),
        "--split", "test", "--ways", "2", "--shots", "1", "--query", "2", "--episodes", "10", "--json",
    )  # fmt: skip
    assert ev.returncode == 0, ev.stderr
    assert 0 <= json.loads(ev.stdout)["accuracy"] <= 100
    bad = run_cli(*args, "--precision", "float16")
    assert bad.returncode == 2 and "--precision" in bad.stderr


def test_help_documents_every_flag():
    parser = build_parser()
    for name in ("train", "eval", "pretrain", "card"):
        sub = parser._subparsers._group_actions[0].choices[name]
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"
    out = run_cli("eval", "--help").stdout
    for flag in (
        "--checkpoint",
        "--dataset",
        "--data-root",
        "--split",
        "--ways",
        "--shots",
        "--episodes",
        "--bn",
        "--seed",
        "--json",
    ):
        assert flag in out


def test_train_then_eval_json(tmp_path, folder_root, capsys):
    train = run_cli(*tiny_train_args(folder_root, tmp_path / "run", iterations=3, val_every=3), "--val-episodes", "4")
    assert train.returncode == 0, train.stderr
    summary = json.loads(train.stdout.strip().splitlines()[-1])
    assert summary["iterations"] == 3
    eval_args = [
        "eval",
        "--checkpoint",
        summary["best"],
        "--dataset",
        "folder",
        "--data-root",
        str(folder_root),
        "--split",
        "test",
        "--ways",
        "2",
        "--shots",
        "1",
        "--query",
        "2",
        "--episodes",
        "20",
        "--json",
    ]
    ev = run_cli(*eval_args)
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert {"accuracy", "ci95", "episodes", "ways", "shots", "bn"} <= set(result)
    assert result["episodes"] == 20 and result["ways"] == 2 and result["bn"] == "inductive"
    assert 0 <= result["accuracy"] <= 100 and result["ci95"] >= 0
    tr = run_cli(*eval_args, "--bn", "transductive")
    assert json.loads(tr.stdout)["bn"] == "transductive"

    # Baselines, in process (faster): nearest class mean on the trained trunk, and a random trunk.
    ncm, rnd = run_main_json(*eval_args, "--method", "ncm"), run_main_json(*eval_args, "--random-trunk")
    assert (ncm["method"], ncm["trunk"]) == ("ncm", "trained")
    assert (rnd["method"], rnd["trunk"]) == ("head", "random")
    assert rnd["episodes"] == ncm["episodes"] == 20

    card_ckpt = tmp_path / "card.pt"
    card_ckpt.write_bytes(Path(summary["best"]).read_bytes())
    card = tmp_path / "card.md"
    recipe = tmp_path / "recipe.md"
    recipe.write_text("1. **Pre-train** the trunk.\n2. Meta-train it.\n")
    card_args = ["card", "--checkpoint", str(card_ckpt), "--data-root", str(folder_root), "--settings", "2x1,2x2",
                 "--episodes", "10", "--query", "2", "--baselines", "--adaptation-steps", "7", "--device", "cpu",
                 "--recipe", str(recipe)]  # fmt: skip
    original = card_ckpt.read_bytes()
    # An --out that cannot be written fails at once, before any evaluation, and changes nothing.
    (tmp_path / "a-file").write_text("x")
    assert main([*card_args, "--write", "--out", str(tmp_path / "a-file" / "card.md")]) == 2
    assert "a file, not a folder" in capsys.readouterr().err and card_ckpt.read_bytes() == original
    # Without --write the checkpoint is the input only: the card is written, the checkpoint unchanged.
    assert main([*card_args, "--out", str(card)]) == 0
    assert card_ckpt.read_bytes() == original and "--write" not in card.read_text()
    capsys.readouterr()
    assert main([*card_args, "--write", "--out", str(card)]) == 0
    # A long card shows where it is: a progress bar per row and BatchNorm mode, each baseline named.
    err = capsys.readouterr().err
    assert "eval 2w1s inductive" in err and "eval 2w2s transductive" in err and "10/10" in err
    assert "eval 2w1s inductive nearest class mean" in err and "eval 2w1s inductive random trunk" in err
    text = card.read_text()
    # A recipe file is read into the card and named in its command; where it was trained is recorded.
    assert "1. **Pre-train** the trunk.\n2. Meta-train it." in text and f"--recipe {recipe}" in text
    assert "meta-training on cpu (" in text and "cores" in text
    assert "baseline: random trunk" in text and "nearest class mean" in text and "--baselines" in text
    rows = [line for line in text.splitlines() if line.startswith(("| 2-way 1-shot", "| 2-way 2-shot"))]
    assert len(rows) == 2 and all(row.count("±") == 4 for row in rows)
    from anil_engine.checkpoint import load_checkpoint

    assert "7 SGD steps" in text and "--adaptation-steps 7" in text
    assert load_checkpoint(card_ckpt)["adaptation_steps"] == 7
    stored = load_checkpoint(card_ckpt)["test_results"]
    assert [(r["ways"], r["bn"], r["method"], r["trunk"]) for r in stored[:4]] == [
        (2, "inductive", "head", "trained"),
        (2, "transductive", "head", "trained"),
        (2, "inductive", "head", "random"),
        (2, "inductive", "ncm", "trained"),
    ]


def run_main_json(*args: str) -> dict:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(list(args)) == 0
    return json.loads(buffer.getvalue())


@pytest.mark.parametrize(
    "args,message",
    [
        (["eval", "--checkpoint", "nope.pt", "--data-root", "."], "nope.pt: no such checkpoint file"),
        (["train", "--data-root", "/nonexistent/omniglot", "--out", "OUT"], "no Omniglot found"),
    ],
)
def test_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    args = [a.replace("OUT", str(tmp_path / "o")) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_checkpoint_file_is_reported(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x00garbage")
    assert main(["eval", "--checkpoint", str(bad), "--data-root", str(tmp_path)]) == 2
    assert "model.pt: not a readable PyTorch file" in capsys.readouterr().err


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path, folder_root, signame):
    import signal
    import time

    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "anil_engine",
        *tiny_train_args(folder_root, out, iterations=100000, val_every=1000),
        "--checkpoint-every",
        "1000",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        log = out / "metrics.jsonl"
        if log.is_file() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and (out / "last.pt").is_file()
    from anil_engine.checkpoint import load_checkpoint

    done = load_checkpoint(out / "last.pt")["resume"]["iteration"]
    assert done >= 2  # metrics.jsonl had 3 lines: validation at 0 and two iterations
    resume_args = [a if a != "100000" else str(done + 2) for a in args[3:]] + ["--resume"]
    resumed = run_cli(*resume_args)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["iterations"] == done + 2


def test_ctrl_c_stops_pretraining_with_a_resumable_state(tmp_path):
    import signal
    import time

    from conftest import write_class_folders

    from anil_engine.checkpoint import load_checkpoint

    root = write_class_folders(tmp_path / "data", n_classes=32, per_class=4, size=16)
    out = tmp_path / "pre.pt"
    args = [
        "pretrain", "--dataset", "folder", "--data-root", str(root), "--input-size", "16", "--hidden-size", "8",
        "--ways", "5", "--batch-size", "16", "--epochs", "1000", "--device", "cpu", "--val-episodes", "10",
        "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "anil_engine", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    state = tmp_path / "pre.resume.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not state.is_file():  # written before the first step
        time.sleep(0.2)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"saved {state}; continue with the same command plus --resume" in err
    assert not out.exists()
    saved = load_checkpoint(state)["resume"]
    assert saved["epoch"] > 1 or saved["step_in_epoch"] > 0  # two seconds of training were kept
    again = run_cli(*args)
    assert again.returncode == 2 and "pass --resume to continue it" in again.stderr
    changed = run_cli(*args, "--lr", "0.01", "--resume")
    assert changed.returncode == 2 and "was pre-trained with other settings" in changed.stderr


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_background_evaluation_stops_on_a_signal_and_says_so(tmp_path, app_checkpoint, folder_root, signame):
    """`anil-studio card ... &` or under nohup starts with SIGINT ignored; `kill -INT` and `kill -TERM` must still
    stop every command (not only training) with status 130 and a word, never a silent kill or a run to the end."""
    import signal
    import threading
    import time

    args = [
        "eval", "--checkpoint", str(app_checkpoint), "--dataset", "folder", "--data-root", str(folder_root),
        "--split", "test", "--ways", "2", "--shots", "1", "--query", "2", "--episodes", "1000000", "--device", "cpu",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "anil_engine", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # what a shell's `&` does
    )
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "it/s" not in "".join(err):  # the episodes' bar: the job is running
        time.sleep(0.2)
    assert proc.poll() is None, "".join(err)
    proc.send_signal(getattr(signal, signame))
    proc.wait(timeout=60)
    reader.join(timeout=10)
    assert proc.returncode == 130, "".join(err)
    assert "interrupted" in "".join(err) and "Traceback" not in "".join(err)
    assert proc.stdout.read() == ""  # no result printed for a run that did not finish


def test_train_with_pretrain_epochs_runs_the_recipe_in_one_command(tmp_path, folder_root):
    from anil_engine.checkpoint import load_checkpoint

    out = tmp_path / "run"
    args = tiny_train_args(folder_root, out, iterations=2, val_every=2)
    done = run_cli(*args, "--pretrain-epochs", "1", "--val-episodes", "4")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["iterations"] == 2
    assert load_checkpoint(out / "pretrained.pt")["kind"] == "pretrained"
    saved = load_checkpoint(out / "best.pt")["train_config"]
    assert saved["init_from"] == str(out / "pretrained.pt") and saved["init_feature_norm"] == 16.0
    both = run_cli(*tiny_train_args(folder_root, tmp_path / "b", 2, 2), "--pretrain-epochs", "1", "--init-from", "x.pt")
    assert both.returncode == 2 and "leave 'start trunk from' (--init-from) empty" in both.stderr


def test_classify_command_adapts_classifies_and_evaluates(tmp_path, folder_root):
    import shutil

    import torch

    from anil_engine.checkpoint import save_checkpoint
    from anil_engine.config import ModelConfig, Preprocessing
    from anil_engine.meta.trainrun import make_checkpoint
    from anil_engine.models import AnilModel, calibrate_batchnorm

    torch.manual_seed(0)
    model = AnilModel(ModelConfig(16, 4, 3, 32, 5), Preprocessing(32, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    calibrate_batchnorm(model, torch.rand(64, 3, 32, 32))
    ckpt = make_checkpoint(model, None, "anil", {}, {"name": "folder"})
    ckpt["fast_lr"], ckpt["adaptation_steps"] = 0.5, 20
    save_checkpoint(ckpt, tmp_path / "m.pt")
    for part, sl in (("support", slice(0, 3)), ("labelled", slice(3, 6))):
        for name in ("class_00", "class_01"):
            (tmp_path / part / name).mkdir(parents=True)
            for p in sorted((folder_root / name).iterdir())[sl]:
                shutil.copy(p, tmp_path / part / name / p.name)
    out = run_cli(
        "classify",
        "--checkpoint",
        str(tmp_path / "m.pt"),
        "--support",
        str(tmp_path / "support"),
        str(tmp_path / "labelled" / "class_01"),
        "--leave-one-out",
        "--labelled",
        str(tmp_path / "labelled"),
        "--csv",
        str(tmp_path / "out.csv"),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["classes"] == ["class_00", "class_01"] and len(result["predictions"]) == 3
    rows = list(csv.reader(open(tmp_path / "out.csv")))
    assert rows[0] == ["path", "label", "confidence", "p(class_00)", "p(class_01)"]
    assert [r[:2] for r in rows[1:]] == [[p["path"], p["label"]] for p in result["predictions"]]
    assert result["leave_one_out"]["images"] == 6 and result["labelled"]["images"] == 6
    assert len(result["labelled"]["confusion"]) == 2
    confusion = result["labelled"]["confusion"]
    mistakes = result["labelled"]["mistakes"]
    assert len(mistakes) == confusion[0][1] + confusion[1][0]
    assert all(m["true"] != m["predicted"] and f"/{m['true']}/" in m["path"] for m in mistakes)
    from anil_engine.cli.applying import classify_summary  # what a person gets without --json

    lines = classify_summary(result).splitlines()
    assert lines[0] == f"2 classes: class_00, class_01 ({result['head_init']})"
    assert lines[1:4] == [f"{p['path']}\t{p['label']}\t{100 * p['confidence']:.1f} %" for p in result["predictions"]]
    loo, labelled = result["leave_one_out"], result["labelled"]
    assert lines[4].startswith(f"leave-one-out on the support: {loo['accuracy']:.1f} % of 6 images (class_00 ")
    assert lines[5].startswith(f"labelled folder: {labelled['accuracy']:.1f} % of 6 images (class_00 ")
    assert [line.split("\t")[0] for line in lines[6:]] == [f"  wrong: {m['path']}" for m in mistakes]


def test_info_lists_versions_devices_and_models(capsys):
    import torch

    from anil_engine import environment
    from anil_engine.registry import bundled_models

    assert main(["info", "--json", "--no-build"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["torch"].startswith(torch.__version__)
    assert rows["anil-studio"] != "not installed" and rows["learn2learn"] != "not installed"
    assert rows["GPU"] == ("none found by torch" if not torch.cuda.is_available() else rows["GPU"])
    assert rows["Bundled models"].split(", ")[0] == bundled_models()[0].name
    assert rows["CPU bfloat16"] == environment.cpu_bfloat16()  # this machine's, as `pretrain` warns
    assert rows["Fused CPU kernel"] in (
        "loaded",
        "not loaded yet (training loads it; `anil-studio info` builds and checks it)",
    ) or rows["Fused CPU kernel"].startswith("unavailable")
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert any(line.startswith("Python ") for line in text.splitlines())


def test_classify_takes_zip_archives_and_heic_photos_and_sorts_them_into_folders(tmp_path, folder_root):
    import zipfile

    from anil_engine.checkpoint import save_checkpoint
    from anil_engine.config import ModelConfig, Preprocessing
    from anil_engine.meta.trainrun import make_checkpoint
    from anil_engine.models import AnilModel

    model = AnilModel(ModelConfig(8, 4, 3, 32, 5), Preprocessing(32, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    ckpt = make_checkpoint(model, None, "anil", {}, {"name": "folder"})
    ckpt["fast_lr"], ckpt["adaptation_steps"] = 0.5, 5
    save_checkpoint(ckpt, tmp_path / "m.pt")
    with zipfile.ZipFile(tmp_path / "support.zip", "w") as z:
        for c in ("class_00", "class_01"):
            for img in sorted((folder_root / c).iterdir())[:3]:
                z.write(img, f"support/{c}/{img.name}")
    from PIL import Image
    from pillow_heif import register_heif_opener

    register_heif_opener()  # to write one here (the engine registers it for reading)
    heic = tmp_path / "IMG_0001.HEIC"  # an iPhone's photo among the queries
    with Image.open(sorted((folder_root / "class_01").iterdir())[-1]) as image:
        image.convert("RGB").save(heic, format="HEIF")
    with zipfile.ZipFile(tmp_path / "queries.zip", "w") as z:
        for img in [*sorted((folder_root / "class_01").iterdir())[3:], heic]:
            z.write(img, img.name)
    out = run_cli(
        "classify",
        "--checkpoint",
        str(tmp_path / "m.pt"),
        "--support",
        str(tmp_path / "support.zip"),
        str(tmp_path / "queries.zip"),
        "--quiet",
        "--sort-into",
        str(tmp_path / "sorted"),
    )
    assert out.returncode == 0, out.stderr
    *_, sorted_line = out.stdout.splitlines()
    assert sorted_line.startswith(f"sorted 4 image(s) into {tmp_path / 'sorted'}: ")
    copies = sorted(p.relative_to(tmp_path / "sorted").parts[0] for p in (tmp_path / "sorted").rglob("*.*"))
    assert len(copies) == 4 and set(copies) <= {"class_00", "class_01"}  # every query, in its class's folder
    first, *predictions, _ = out.stdout.splitlines()  # without --json: a line per image, for a person
    assert first.startswith("2 classes: class_00, class_01 (") and len(predictions) == 4
    assert all("unpacked" in line.split("\t")[0] and line.endswith(" %") for line in predictions)
    assert any(line.split("\t")[0].endswith("IMG_0001.HEIC") for line in predictions)


def test_pretrain_warns_that_bfloat16_is_emulated_on_a_cpu_without_its_instructions(tmp_path, folder_root, capsys,
                                                                                     monkeypatch):  # fmt: skip
    from anil_engine import environment

    avx2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n"
    zen4 = avx2.replace("avx2", "avx2 avx512f avx512_bf16")
    arm = "processor\t: 0\nFeatures\t: fp asimd sve bf16\n"
    assert environment.cpu_flags(avx2) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert "Ctrl-C and run with --compute float32" in environment.slow_bfloat16_note("cpu", avx2)
    assert environment.slow_bfloat16_note("cpu", zen4) is None and environment.slow_bfloat16_note("cpu", arm) is None
    assert environment.slow_bfloat16_note("cuda:0", avx2) is None  # a GPU computes bfloat16 itself
    assert environment.cpu_flags("processor\t: 0\n") is None and environment.slow_bfloat16_note("cpu", "") is None
    assert environment.cpu_bfloat16(zen4) == "yes (avx512_bf16)" and environment.cpu_bfloat16(avx2).startswith("no:")

    monkeypatch.setattr(environment, "cpu_flags", lambda cpuinfo=None: frozenset({"avx2"}))
    args = [
        "pretrain", "--dataset", "folder", "--data-root", str(folder_root), "--input-size", "16", "--hidden-size",
        "4", "--ways", "2", "--batch-size", "4", "--epochs", "1", "--device", "cpu", "--val-episodes", "2", "--quiet",
    ]  # fmt: skip
    for compute, warned in (("bfloat16", True), ("float32", False)):
        assert main([*args, "--compute", compute, "--out", str(tmp_path / f"{compute}.pt")]) == 0
        err = capsys.readouterr().err
        assert ("warning: --compute bfloat16: this CPU has no bfloat16 instructions" in err) is warned, err
        assert (tmp_path / f"{compute}.pt").is_file()
