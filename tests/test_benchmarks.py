"""The benchmark scripts: the speed table's measurements and the engine-accuracy report's verdicts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def speed(monkeypatch):
    module = load("meta_train_speed")
    # channels, size, hidden, ways, shots, query, meta_batch: seconds per engine, not minutes.
    monkeypatch.setattr(module, "CONFIGS", {"tiny": (1, 16, 4, 3, 1, 2, 4)})
    return module


def test_speed_table_has_both_engines_and_the_speed_up_of_each_round(speed):
    results = []
    for engine in speed.ENGINES:
        m = speed.measure("tiny", engine, 2, "cpu")
        assert m.engine == engine and len(m.times) == 2 and min(m.times) > 0
        results.append(speed.Measurement(**{**m.__dict__, "round_medians": (m.seconds_per_iteration,)}))
    ref, fast = (m.seconds_per_iteration for m in results)
    (row,) = speed.table(results)[2:]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "tiny" and cells[1] == "4"
    assert cells[4] == f"{ref / fast:.2f}x"
    assert cells[5] == f"{ref / fast:.2f}"  # one round: the same ratio


def test_profile_lists_the_top_operations(speed):
    m = speed.measure("tiny", "batched", 1, "cpu", profile=True)
    assert "convolution" in m.profile and "Self CPU" in m.profile
    assert speed.measure("tiny", "batched", 1, "cpu").profile == ""


def test_speed_table_gives_extra_engines_their_speed_up(speed):
    m = lambda engine, s: speed.Measurement("tiny", engine, s, 0.001, 10.0, "cuda", (s,), (s,))  # noqa: E731
    rows = speed.table([m("reference", 0.3), m("batched", 0.05), m("batched-triton", 0.025)])
    assert rows[0].rstrip().endswith("| batched-triton s/it (speed-up) |")
    cells = [c.strip() for c in rows[2].strip().strip("|").split("|")]
    assert cells[4] == "6.00x" and cells[-1] == "0.0250 (12.00x)"


def write_run(work, seed, engine, inductive, transductive):
    run = work / f"seed{seed}" / engine
    run.mkdir(parents=True)
    (run / "done.json").write_text(json.dumps({"train_seconds": 12.5}))
    for mode, (acc, ci) in (("inductive", inductive), ("transductive", transductive)):
        (run / f"test-{mode}.json").write_text(json.dumps({"accuracy": acc, "ci95": ci}))


def test_accuracy_report_says_whether_the_batched_mean_is_inside_the_reference_interval(tmp_path):
    report = load("engine_accuracy_report")
    write_run(tmp_path, 1, "reference", (85.0, 0.6), (90.0, 0.5))
    write_run(tmp_path, 1, "batched", (85.5, 0.6), (90.2, 0.5))  # 0.5 from the reference: inside
    write_run(tmp_path, 2, "reference", (84.0, 0.6), (89.0, 0.5))
    write_run(tmp_path, 2, "batched", (84.9, 0.6), (89.5, 0.5))  # 0.9: outside
    rows = report.report(tmp_path, ["1", "2"])
    by = {tuple(c.strip() for c in r.strip("|").split("|")[:2]): r for r in rows[2:]}
    assert by[("1", "batched")].rstrip(" |").endswith("yes")
    assert "+0.50 (± 0.85)" in by[("1", "batched")]
    assert by[("2", "batched")].rstrip(" |").endswith("no")
    assert "84.50" in by[("mean of 2 seeds", "reference")] and "85.20" in by[("mean of 2 seeds", "batched")]
    assert not any("reference-avx2" in r for r in rows)  # the control run is optional


def test_accuracy_report_shows_the_rounding_control_against_the_reference(tmp_path):
    report = load("engine_accuracy_report")
    write_run(tmp_path, 1, "reference", (85.0, 0.6), (90.0, 0.5))
    write_run(tmp_path, 1, "batched", (85.5, 0.6), (90.2, 0.5))
    write_run(tmp_path, 1, "reference-avx2", (84.0, 0.6), (89.7, 0.5))
    rows = report.report(tmp_path, ["1"])
    (control,) = [r for r in rows if "| reference-avx2 |" in r]
    assert "-1.00 (± 0.85)" in control and control.rstrip(" |").endswith("no")


def test_accuracy_report_compares_final_weights_without_conv_biases(tmp_path):
    import torch

    report = load("engine_accuracy_report")
    write_run(tmp_path, 1, "reference", (85.0, 0.6), (90.0, 0.5))
    write_run(tmp_path, 1, "batched", (85.0, 0.6), (90.0, 0.5))
    ref = {
        "b.conv.weight": torch.tensor([2.0, -4.0], dtype=torch.float64),
        "b.conv.bias": torch.tensor([1e-10, 0.0], dtype=torch.float64),
        "b.normalize.running_mean": torch.tensor([0.5, 0.0], dtype=torch.float64),
        "b.normalize.running_var": torch.tensor([9.0, 4.0], dtype=torch.float64),
        "b.normalize.num_batches_tracked": torch.tensor(7),
    }
    got = {**ref, "b.conv.weight": torch.tensor([2.0, -4.0 + 4e-9], dtype=torch.float64)}
    got["b.conv.bias"] = torch.tensor([-3e-10, 0.0], dtype=torch.float64)  # relatively far apart: not counted
    for engine, state in (("reference", ref), ("batched", got)):
        torch.save({"state_dict": state}, tmp_path / "seed1" / engine / "last.pt")
        (tmp_path / "seed1" / engine / "config.json").write_text(json.dumps({"precision": "float64"}))
    cells = lambda row: [c.strip() for c in row.strip().strip("|").split("|")]  # noqa: E731
    (batched,) = [cells(r) for r in report.report(tmp_path, ["1"]) if "| batched |" in r]
    assert batched[2] == "float64" and batched[-1] == "1.0e-09"  # 4e-9 / max |w| = 4
    # The running mean, on the activations' scale: 0.5 + sqrt(9) = 3.5.
    got["b.normalize.running_mean"] = torch.tensor([0.5 + 7e-8, 0.0], dtype=torch.float64)
    torch.save({"state_dict": got}, tmp_path / "seed1" / "batched" / "last.pt")
    (batched,) = [cells(r) for r in report.report(tmp_path, ["1"]) if "| batched |" in r]
    assert batched[-1] == "2.0e-08"


def run_script(name: str, *args: object):
    """A benchmark script run as a user would (offscreen); its output, after checking it succeeded."""
    import os
    import subprocess

    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def test_app_responsiveness_runs_the_real_window_on_a_folder(folder_root, app_checkpoint, tmp_path):

    support = tmp_path / "support"
    for name in ("class_00", "class_01"):
        (support / name).mkdir(parents=True)
        for p in sorted((folder_root / name).iterdir())[:3]:
            (support / name / p.name).write_bytes(p.read_bytes())
    out = run_script(
        "app_responsiveness", "--support", support, "--queries", folder_root, "--checkpoint", app_checkpoint
    )
    assert "classified 72 images in" in out.stdout  # 12 classes x 6 images
    assert "longest event-loop block meanwhile:" in out.stdout


@pytest.mark.skipif(
    __import__("app.frames", fromlist=["x"]).multimedia_error() is not None, reason="needs Qt Multimedia"
)
def test_camera_benchmark_measures_the_preview_and_the_same_pictures_as_files(folder_root, app_checkpoint, tmp_path):

    from PIL import Image

    support = tmp_path / "support"
    frames = []
    for name in ("class_00", "class_01", "class_02"):
        (support / name).mkdir(parents=True)
        for p in sorted((folder_root / name).iterdir())[:3]:
            (support / name / p.name).write_bytes(p.read_bytes())
        frames += [Image.open(p).convert("RGB") for p in sorted((folder_root / name).iterdir())[3:]]
    video = tmp_path / "camera.png"
    frames[0].save(video, save_all=True, append_images=frames[1:], duration=33, loop=0, format="PNG")
    out = run_script("camera_preview", "--support", support, "--video", video, "--seconds", "3",
                     "--checkpoint", app_checkpoint, "--json", tmp_path / "r")  # fmt: skip
    result = json.loads((tmp_path / "r").read_text())
    assert result["pictures_classified"] > 10 and result["files_per_s"] > 0
    assert result["pictures_classified"] + result["pictures_skipped"] <= result["frames_received"] + 1
    assert result["meets_targets"] == (result["pictures_per_s"] >= 15 and result["longest_block_ms"] <= 50)
    assert "live preview:" in out.stdout and "the same pictures as files" in out.stdout


def test_image_decode_benchmark_compares_both_paths(capsys, monkeypatch):
    module = load("image_decode")
    monkeypatch.setattr(sys, "argv", ["image_decode.py", "--width", "1600", "--height", "1200", "--repeats", "1"])
    assert module.main() == 0
    out = capsys.readouterr().out
    assert "| full decode (reference) |" in out and "| load_image (reduced-scale decode) |" in out
    assert "speed-up" in out and "largest pixel difference" in out


def test_pretrain_speed_times_both_float_types_on_the_same_steps(folder_root, monkeypatch):
    out = run_script(
        "pretrain_speed", "--dataset", "folder", "--data-root", folder_root, "--hidden", "4,8", "--input-size", 16,
        "--batch-size", 8, "--steps", 2,
    )  # fmt: skip
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in out.stdout.splitlines() if r.startswith("| CNN4-")]
    assert [r[0] for r in rows] == ["CNN4-4, 16x16", "CNN4-8, 16x16"]
    assert all(float(c.rstrip("x").replace(",", "")) > 0 for r in rows for c in r[2:])
    # The table: medians of the timed steps, images per second of the batch, float32 / bfloat16.
    speed = load("pretrain_speed")
    monkeypatch.setattr(speed, "step_times", lambda configs, steps: [[0.4, 0.2, 0.3], [0.1, 0.5, 0.15]])
    args = speed.argparse.Namespace(
        dataset="folder", data_root=str(folder_root), split_scheme="vinyals", hidden="8", input_size=16,
        batch_size=8, device="cpu", steps=3,
    )  # fmt: skip
    assert speed.table(args)[2] == "| CNN4-8, 16x16 | 8 | 0.300 | 0.150 | 27 | 53 | 2.00x |"
