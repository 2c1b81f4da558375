"""Lake et al.'s 20 one-shot runs: the shipped table, the script that writes it, the evaluation, its CLI and card."""

from __future__ import annotations

import csv
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CHARACTERS_TSV, REPO, write_omniglot_npz
from PIL import Image

from anil_engine.datasets.lake_runs import LAKE_RUNS_TABLE, load_lake_runs, read_runs_table
from anil_engine.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def twenty_drawers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic Omniglot arrays with all 20 drawers (Lake's runs use drawers up to 20)."""
    return write_omniglot_npz(tmp_path_factory.mktemp("omniglot20"), drawers=20, size=16)


def _evaluation_characters() -> dict[tuple[str, str], int]:
    with open(CHARACTERS_TSV, newline="") as f:
        return {(r["alphabet"], r["character"]): int(r["array_index"]) for r in csv.DictReader(f, delimiter="\t")
                if r["set"] == "evaluation"}  # fmt: skip


def _lake_checkpoint(path: Path, scheme: str = "lake", name: str = "omniglot", steps: int = 3) -> Path:
    """A random 8-channel CNN4 on 16x16 inputs (BatchNorm statistics from noise), saved as an Omniglot model."""
    from anil_engine.checkpoint import save_checkpoint
    from anil_engine.config import ModelConfig, Preprocessing
    from anil_engine.meta.trainrun import make_checkpoint
    from anil_engine.models import AnilModel, calibrate_batchnorm

    torch.manual_seed(0)
    model = AnilModel(ModelConfig(8, 4, 1, 16, 5), Preprocessing(16, 1, (1.0,), (1.0,)))
    calibrate_batchnorm(model, torch.rand(32, 1, 16, 16))
    ckpt = make_checkpoint(model, None, "anil", {}, {"name": name, "split_scheme": scheme})
    save_checkpoint({**ckpt, "fast_lr": 0.4, "adaptation_steps": steps}, path)
    return path


def _write_table(path: Path, runs: dict[str, list[tuple[str, str, str, str, int, str]]]) -> Path:
    """A runs table: {run: [(role, item, alphabet, character, drawer, answer)]}."""
    from anil_engine.datasets.lake_runs import RUN_COLUMNS, write_runs_table

    rows = [dict(zip(RUN_COLUMNS, (run, *r[:4], str(r[4]), r[5]), strict=True)) for run, rs in runs.items() for r in rs]
    write_runs_table(rows, path, "a test's")
    return path


def _run(alphabet: str, characters: list[str], support_drawer: int, query_drawer: int, order: list[int]):
    """One run: the characters' support drawings, then their queries in `order` (query i answers class order[i])."""
    rows = [("training", f"class{i + 1:02d}", alphabet, c, support_drawer, f"class{i + 1:02d}")
            for i, c in enumerate(characters)]  # fmt: skip
    rows += [("test", f"item{i + 1:02d}", alphabet, characters[c], query_drawer, f"class{c + 1:02d}")
             for i, c in enumerate(order)]  # fmt: skip
    return rows


def test_the_shipped_table_is_lake_s_20_runs():
    """20 runs of 20 characters of one evaluation alphabet (10 alphabets, two runs each); every query is a drawing
    of its answer's character by another drawer; the table names the zip it was read from."""
    runs = read_runs_table()
    characters = _evaluation_characters()
    assert len(runs) == 20 and LAKE_RUNS_TABLE.read_text().startswith("# Lake et al. (2015) one-shot classification")
    assert "sha256 437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325" in LAKE_RUNS_TABLE.read_text()
    alphabets = []
    for rows in runs.values():
        support = {r["item"]: r for r in rows if r["role"] == "training"}
        query = [r for r in rows if r["role"] == "test"]
        assert len(support) == 20 and len(query) == 20
        assert len({(r["alphabet"], r["character"]) for r in support.values()}) == 20  # 20 different characters
        assert {r["answer"] for r in query} == set(support)  # every character asked once
        assert len({r["alphabet"] for r in rows}) == 1
        alphabets.append(rows[0]["alphabet"])
        for r in rows:
            assert (r["alphabet"], r["character"]) in characters and 1 <= int(r["drawer"]) <= 20
        for q in query:
            s = support[q["answer"]]
            assert (q["alphabet"], q["character"]) == (s["alphabet"], s["character"]) and q["drawer"] != s["drawer"]
    assert len(set(alphabets)) == 10 and all(alphabets.count(a) == 2 for a in alphabets)


def _lake_zip_script():
    spec = importlib.util.spec_from_file_location("lake_runs_table", REPO / "scripts" / "lake_runs_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_script_finds_every_image_of_lake_s_zip(omniglot_root, tmp_path, capsys):
    """scripts/lake_runs_table.py: Lake's zip (its layout and class_labels.txt) -> rows naming each image's
    character and drawer, read back as the same drawings; an image not in the data set is named."""
    index = _evaluation_characters()
    chars = sorted(c for a, c in index if a == "Tengwar")[:3]
    drawings = np.load(omniglot_root / "images_evaluation.npz")["images"]

    def png(character: str, drawer: int) -> bytes:
        import io

        out = io.BytesIO()
        Image.fromarray(np.where(drawings[index[("Tengwar", character)], drawer - 1], 255, 0).astype(np.uint8)).convert(
            "1"
        ).save(out, "PNG")
        return out.getvalue()

    labels = ["run01/test/item01.png run01/training/class03.png", "run01/test/item02.png run01/training/class01.png",
              "run01/test/item03.png run01/training/class02.png"]  # fmt: skip
    zip_path = tmp_path / "all_runs.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        z.writestr("run01/class_labels.txt", "\n".join(labels) + "\n")
        for i, c in enumerate(chars):
            z.writestr(f"run01/training/class{i + 1:02d}.png", png(c, 1))
        for i, c in enumerate((chars[2], chars[0], chars[1])):
            z.writestr(f"run01/test/item{i + 1:02d}.png", png(c, 3))
    script = _lake_zip_script()
    out = script.main([str(zip_path), str(omniglot_root), "--out", str(tmp_path / "runs.tsv")])
    assert "6 images of 1 runs" in capsys.readouterr().out
    (run,) = load_lake_runs(omniglot_root, out)
    assert run.characters == tuple(f"Tengwar/{c}" for c in chars) and run.answers.tolist() == [2, 0, 1]
    assert np.array_equal(run.query[0], np.where(drawings[index[("Tengwar", chars[2])], 2], 255, 0))
    with zipfile.ZipFile(zip_path, "a") as z:
        z.writestr("run01/test/item04.png", _blank_png())  # paper only: no drawing of the data set
    with pytest.raises(DataError, match=r"run01/test/item04.png is not an image of the evaluation set"):
        script.main([str(zip_path), str(omniglot_root), "--out", str(tmp_path / "runs2.tsv")])
    assert not (tmp_path / "runs2.tsv").exists()


def _blank_png() -> bytes:
    import io

    out = io.BytesIO()
    Image.new("1", (16, 16), 1).save(out, "PNG")
    return out.getvalue()


def test_modified_hausdorff_distance_of_ink():
    """Lake's baseline: the larger mean nearest-point distance, on ink coordinates centred on their mean."""
    from anil_engine.lake_evaluation import ink_points, modified_hausdorff

    a = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    assert modified_hausdorff(a, b) == modified_hausdorff(b, a) == 1.0  # mean(0, 2) from b's side
    drawing = np.full((10, 10), 255, np.uint8)
    drawing[2:4, 3] = 0
    shifted = np.roll(drawing, (4, 5), axis=(0, 1))  # the same stroke elsewhere on the paper
    assert torch.equal(ink_points(drawing), ink_points(shifted)) and ink_points(drawing).shape == (2, 2)
    assert modified_hausdorff(ink_points(drawing), ink_points(np.full((10, 10), 255, np.uint8))) == float("inf")


def test_errors_per_run_follow_the_answers(twenty_drawers, tmp_path):
    """Queries that are the support drawings themselves, in another order: every method is right on all of them;
    the same queries with wrong answers: all wrong. The head and the trunk's nearest class mean alike."""
    from anil_engine.jobs import run_to_end
    from anil_engine.lake_evaluation import LakeRunsRequest, evaluate_lake_runs

    ckpt = _lake_checkpoint(tmp_path / "m.pt", steps=30)
    chars = sorted(c for a, c in _evaluation_characters() if a == "Kannada")[:5]
    order = [3, 0, 4, 1, 2]
    two_runs = {"run01": _run("Kannada", chars, 7, 7, order), "run02": _run("Kannada", chars[:4], 2, 2, [1, 0, 3, 2])}
    right = _write_table(tmp_path / "right.tsv", two_runs)
    runs = _run("Kannada", chars, 7, 7, order)
    wrong = [(*r[:5], f"class{(int(r[5][-2:]) % 5) + 1:02d}") if r[0] == "test" else r for r in runs]
    wrong_table = _write_table(tmp_path / "wrong.tsv", {"run01": wrong})
    for method in ("head", "ncm"):
        request = LakeRunsRequest(
            str(ckpt), str(twenty_drawers), method, device="cpu", baselines=True, table=str(right)
        )
        result = run_to_end(evaluate_lake_runs(request))
        assert result["errors"] == [0.0, 0.0] and result["queries"] == 9 and result["adaptation_steps"] == 30
        assert {k: v["errors"] for k, v in result["baselines"].items()} == {
            "nearest class mean (same trunk)": [0.0, 0.0],
            "Modified Hausdorff Distance (pixels)": [0.0, 0.0],
        }
        request = LakeRunsRequest(str(ckpt), str(twenty_drawers), method, device="cpu", table=str(wrong_table))
        result = run_to_end(evaluate_lake_runs(request))
        assert result["errors"] == [100.0] and result["error"] == 100.0 and result["accuracy"] == 0.0
    assert result["published"]["humans"] == 4.5


def test_lake_runs_on_the_shipped_table_agree_with_a_direct_computation(twenty_drawers, tmp_path):
    """The shipped runs on a complete (synthetic) copy: each run's error is the nearest support feature's, and
    transductive BatchNorm uses the run's 40 images' statistics (a different result)."""
    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.datasets.lake_runs import load_lake_runs
    from anil_engine.jobs import run_to_end
    from anil_engine.lake_evaluation import LakeRunsRequest, evaluate_lake_runs, run_images
    from anil_engine.models import model_from_checkpoint

    ckpt = _lake_checkpoint(tmp_path / "m.pt")
    result = run_to_end(evaluate_lake_runs(LakeRunsRequest(str(ckpt), str(twenty_drawers), "ncm", device="cpu")))
    model = model_from_checkpoint(load_checkpoint(ckpt)).eval()
    expected = []
    for run in load_lake_runs(twenty_drawers):
        with torch.no_grad():
            f = model.forward_features(
                run_images(np.concatenate([run.support, run.query]), model.preprocessing).float() / 255
            )
        nearest = torch.cdist(f[20:], f[:20]).argmin(1).numpy()
        expected.append(100.0 * float(np.mean(nearest != run.answers)))
    assert result["errors"] == pytest.approx(expected) and result["runs"] == 20 and result["queries"] == 400
    trans = run_to_end(evaluate_lake_runs(LakeRunsRequest(str(ckpt), str(twenty_drawers), "ncm", "transductive",
                                                          device="cpu")))  # fmt: skip
    assert trans["errors"] != result["errors"]


def test_missing_drawers_and_seen_characters_are_refused(omniglot_root, twenty_drawers, tmp_path):
    from anil_engine.jobs import run_to_end
    from anil_engine.lake_evaluation import LakeRunsRequest, evaluate_lake_runs

    lake = _lake_checkpoint(tmp_path / "lake.pt")
    with pytest.raises(DataError, match=r"has 4 drawings, and Lake's run\d\d needs drawer \d+; use the complete"):
        load_lake_runs(omniglot_root)  # the session's synthetic copy has 4 drawers
    vinyals = _lake_checkpoint(tmp_path / "vinyals.pt", scheme="vinyals")
    with pytest.raises(ConfigError, match=r"vinyals split trains on \d+ of the 200 characters of Lake's runs"):
        run_to_end(evaluate_lake_runs(LakeRunsRequest(str(vinyals), str(twenty_drawers))))
    caltech = _lake_checkpoint(tmp_path / "caltech.pt", name="caltech101")
    with pytest.raises(ConfigError, match="a caltech101 model; Lake's runs are Omniglot drawings"):
        run_to_end(evaluate_lake_runs(LakeRunsRequest(str(caltech), str(twenty_drawers))))
    with pytest.raises(ConfigError, match="method must be one of"):
        LakeRunsRequest(str(lake), str(twenty_drawers), method="knn")
    bad = tmp_path / "bad.tsv"
    bad.write_text("run\trole\titem\n")
    with pytest.raises(DataError, match="lacks the column"):
        read_runs_table(bad)


def test_the_lake_runs_command(twenty_drawers, tmp_path, capsys):
    from anil_engine.cli import main

    ckpt = _lake_checkpoint(tmp_path / "m.pt")
    args = ["lake-runs", "--checkpoint", str(ckpt), "--data-root", str(twenty_drawers), "--device", "cpu"]
    assert main([*args, "--json", "--baselines"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["errors"]) == 20 and set(result["baselines"]) == {
        "nearest class mean (same trunk)", "Modified Hausdorff Distance (pixels)"}  # fmt: skip
    assert main([*args, "--quiet", "--method", "ncm"]) == 0
    out = capsys.readouterr().out
    assert "Lake et al.'s 20 one-shot runs (20-way 1-shot within one alphabet, 400 queries)" in out
    assert f"error {result['baselines']['nearest class mean (same trunk)']['error']:.2f} ±" in out
    assert "published: humans 4.5 %, Bayesian Program Learning 3.3 %" in out
    assert main(["lake-runs", "--checkpoint", str(ckpt), "--data-root", str(tmp_path), "--quiet"]) == 2
    assert "no Omniglot found" in capsys.readouterr().err


def test_the_card_gains_the_lake_runs_row(twenty_drawers, tmp_path, capsys):
    """`card --settings ...,lake-runs`: the errors of both BatchNorm modes and both baselines, as `lake-runs`
    measures them; recorded in the checkpoint with --write; the card says how to rerun them."""
    from anil_engine.cards import LAKE_RUNS, parse_settings
    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.cli import main

    assert parse_settings("20x1, lake-runs") == [(20, 1, None), (20, 1, LAKE_RUNS)]
    ckpt = _lake_checkpoint(tmp_path / "m.pt")
    card = tmp_path / "m.md"
    args = ["card", "--checkpoint", str(ckpt), "--data-root", str(twenty_drawers), "--settings", "lake-runs,5x1",
            "--episodes", "3", "--query", "1", "--device", "cpu", "--write", "--quiet", "--out", str(card)]  # fmt: skip
    assert main(args) == 0
    text = card.read_text()
    (row,) = [line for line in text.splitlines() if line.startswith("| Lake et al.'s 20 runs |")]
    cells = [c.strip() for c in row.strip("|").split("|")[1:]]
    assert len(cells) == 4 and "--ways 5 --shots 1" in text  # the one-row eval command skips lake-runs
    assert f"anil-studio lake-runs --checkpoint {ckpt} --data-root DATA --baselines" in text
    capsys.readouterr()
    base = ["lake-runs", "--checkpoint", str(ckpt), "--data-root", str(twenty_drawers), "--device", "cpu", "--json"]
    assert main([*base, "--baselines"]) == 0
    inductive = json.loads(capsys.readouterr().out)
    assert main([*base, "--bn", "transductive"]) == 0
    transductive = json.loads(capsys.readouterr().out)
    measured = [inductive, transductive, *inductive["baselines"].values()]
    assert cells == [f"{r['error']:.2f} ± {r['ci95']:.2f}" for r in measured]
    stored = [r for r in load_checkpoint(ckpt)["test_results"] if r["within"] == LAKE_RUNS]
    assert [(r["bn"], r["method"], r["accuracy"]) for r in stored] == [
        ("inductive", "head", inductive["accuracy"]),
        ("transductive", "head", transductive["accuracy"]),
        ("inductive", "ncm", measured[2]["accuracy"]),
        ("inductive", "mhd", measured[3]["accuracy"]),
    ]
    assert main([*args[:-2], "--photo", "--out", str(tmp_path / "p.md")]) == 2
    assert "@alphabet and lake-runs settings are for Omniglot cards" in capsys.readouterr().err


def test_redrawn_runs_pair_other_drawers_on_the_same_characters(twenty_drawers):
    """Each redrawn run: the run's characters and answers, every support drawing by one drawer and every query
    by another; seeded."""
    from anil_engine.datasets.lake_runs import redrawn_runs
    from anil_engine.datasets.omniglot import drawings_reader

    runs = load_lake_runs(twenty_drawers)[:3]
    redrawn = redrawn_runs(twenty_drawers, runs, 4, seed=1)
    read = drawings_reader(twenty_drawers)
    pairs = set()
    for run, group in zip(runs, redrawn, strict=True):
        assert len(group) == 4
        drawings = [read("evaluation", *c.split("/")) for c in run.characters]
        for r in group:
            assert r.characters == run.characters and np.array_equal(r.answers, run.answers)
            (support,) = {d for d in range(20) if all(np.array_equal(r.support[i], drawings[i][d]) for i in range(20))}
            (query,) = {d for d in range(20) if all(np.array_equal(r.query[i], drawings[a][d])
                                                    for i, a in enumerate(run.answers))}  # fmt: skip
            assert support != query
            pairs.add((support, query))
    assert len(pairs) > 1  # not one pair for all
    again = redrawn_runs(twenty_drawers, runs, 4, seed=1)
    assert all(
        np.array_equal(a.query, b.query) for g, h in zip(redrawn, again, strict=True) for a, b in zip(g, h, strict=True)
    )
    other = redrawn_runs(twenty_drawers, runs, 4, seed=2)
    assert not all(
        np.array_equal(a.query, b.query) for g, h in zip(redrawn, other, strict=True) for a, b in zip(g, h, strict=True)
    )


def test_the_lake_runs_command_with_redrawn_drawers(twenty_drawers, tmp_path, capsys):
    from anil_engine.cli import main

    ckpt = _lake_checkpoint(tmp_path / "m.pt")
    args = ["lake-runs", "--checkpoint", str(ckpt), "--data-root", str(twenty_drawers), "--device", "cpu",
            "--redraws", "2", "--method", "ncm"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    redrawn = json.loads(capsys.readouterr().out)["redrawn"]
    assert set(redrawn) == {"draws", "seed", "ncm"} and len(redrawn["ncm"]["errors"]) == 20
    assert main([*args, "--quiet", "--baselines", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "the runs' characters with other drawers (2 random pairs per run, seed 3): nearest class mean" in out
    assert "; Modified Hausdorff Distance" in out
    assert main([*args, "--redraws", "-1"]) == 2
    assert "redraws must be >= 0" in capsys.readouterr().err


def test_the_runs_read_the_same_from_the_png_folders(twenty_drawers, tmp_path):
    """Omniglot's original layout (images_evaluation/<alphabet>/<characterNN>/XXXX_YY.png) gives the same runs as
    the arrays: drawer YY is the YY-th drawing."""
    index = _evaluation_characters()
    chars = sorted(c for a, c in index if a == "Tibetan")[:3]
    table = _write_table(tmp_path / "runs.tsv", {"run01": _run("Tibetan", chars, 5, 12, [2, 0, 1])})
    drawings = np.load(twenty_drawers / "images_evaluation.npz")["images"]
    root = tmp_path / "folders"
    (root / "images_background").mkdir(parents=True)
    for c in chars:
        folder = root / "images_evaluation" / "Tibetan" / c
        folder.mkdir(parents=True)
        for d in range(20):
            image = np.where(drawings[index[("Tibetan", c)], d], 255, 0).astype(np.uint8)
            Image.fromarray(image).convert("1").save(folder / f"{index[('Tibetan', c)] + 965:04d}_{d + 1:02d}.png")
    (from_folders,) = load_lake_runs(root, table)
    (from_arrays,) = load_lake_runs(twenty_drawers, table)
    assert np.array_equal(from_folders.support, from_arrays.support) and np.array_equal(
        from_folders.query, from_arrays.query
    )
    assert from_folders.answers.tolist() == [2, 0, 1]
