"""Write the table of Lake et al.'s 20 one-shot classification runs from their `all_runs.zip`.

Lake, Salakhutdinov & Tenenbaum (Science 2015) scored humans (4.5 % errors) and Bayesian Program Learning
(3.3 %) on 20 fixed runs: in each, one drawing of 20 characters of one evaluation alphabet to learn from, and 20
drawings of the same characters by other people to classify. Their images are copies of Omniglot's own, so the
runs can be stated as (alphabet, character, drawer) rows and read from any copy of the data set. This script
finds every image of the zip (github.com/brendenlake/omniglot, `python/one-shot-classification/all_runs.zip`,
MIT) pixel for pixel in the data set and writes that table; `anil-studio lake-runs` reads it.

    python scripts/lake_runs_table.py all_runs.zip DATA --out anil_engine/datasets/splits/omniglot_lake_runs.tsv
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from anil_engine.datasets.lake_runs import RUN_COLUMNS, write_runs_table
from anil_engine.datasets.omniglot import characters_table, drawings_reader
from anil_engine.errors import DataError


def _key(image: np.ndarray) -> bytes:
    return np.packbits(image.reshape(-1) > 127).tobytes()


def zip_runs(path: Path) -> dict[str, dict[str, bytes]]:
    """{run folder: {"class_labels.txt" or "training/class01.png" ...: file bytes}} of Lake's zip."""
    runs: dict[str, dict[str, bytes]] = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            parts = name.strip("/").split("/")
            if name.endswith("/") or not parts[0].startswith("run") or len(parts) < 2:
                continue
            runs.setdefault(parts[0], {})["/".join(parts[1:])] = z.read(name)
    return dict(sorted(runs.items()))


def runs_rows(path: Path, data_root: Path) -> list[dict[str, str]]:
    """The table's rows: every training and test image of every run, found in the data set."""
    read = drawings_reader(data_root)
    index: dict[bytes, tuple[str, str, int]] = {}
    for row in characters_table():
        if row["set"] == "evaluation":  # Lake's runs are drawn from the evaluation alphabets
            for d, drawing in enumerate(read(row["set"], row["alphabet"], row["character"])):
                index.setdefault(_key(drawing), (row["alphabet"], row["character"], d + 1))
    rows = []
    for run, files in zip_runs(path).items():
        labels = files["class_labels.txt"].decode().split()
        answers = {Path(test).stem: Path(train).stem for test, train in zip(labels[::2], labels[1::2], strict=True)}
        for name in sorted(files):
            role, _, file = name.partition("/")
            if role not in ("training", "test") or not file.endswith(".png"):
                continue
            with Image.open(io.BytesIO(files[name])) as im:
                found = index.get(_key(np.asarray(im.convert("L"))))
            if found is None:
                raise DataError(f"{path}: {run}/{name} is not an image of the evaluation set in {data_root}")
            item = Path(file).stem
            answer = answers.get(item, "") if role == "test" else item
            alphabet, character, drawer = found
            values = (run, role, item, alphabet, character, str(drawer), answer)
            rows.append(dict(zip(RUN_COLUMNS, values, strict=True)))
    return rows


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs_zip", type=Path, help="Lake's all_runs.zip")
    p.add_argument("data_root", type=Path, help="folder with Omniglot (images_evaluation.npz or the PNG folders)")
    p.add_argument("--out", type=Path, required=True, help="table to write (.tsv)")
    args = p.parse_args(argv)
    digest = hashlib.sha256(args.runs_zip.read_bytes()).hexdigest()
    rows = runs_rows(args.runs_zip, args.data_root)
    write_runs_table(rows, args.out, f"from all_runs.zip sha256 {digest}")
    print(f"wrote {args.out}: {len(rows)} images of {len({r['run'] for r in rows})} runs ({', '.join(RUN_COLUMNS)})")
    return args.out


if __name__ == "__main__":
    main()
