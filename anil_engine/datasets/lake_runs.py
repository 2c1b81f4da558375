"""Lake et al.'s 20 one-shot classification runs (Science 2015), read from any copy of Omniglot.

In each run, one drawing of each of 20 characters of one evaluation alphabet is the support (Lake's
"training" images, class01-class20) and 20 drawings of the same characters by other people are the queries
("test", item01-item20), each to be matched to one of the 20. Humans made 4.5 % errors on these runs,
Bayesian Program Learning 3.3 %, Lake's Modified Hausdorff Distance baseline 38.8 %.

Their images are copies of Omniglot's, so `splits/omniglot_lake_runs.tsv` states every run as
(alphabet, characterNN, drawer) rows, written by `scripts/lake_runs_table.py` from Lake's `all_runs.zip`
(github.com/brendenlake/omniglot, MIT) by finding each image pixel for pixel in the data set.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anil_engine.datasets.omniglot import SPLITS_DIR, drawings_reader
from anil_engine.errors import DataError

LAKE_RUNS_TABLE = SPLITS_DIR / "omniglot_lake_runs.tsv"
RUN_COLUMNS = ("run", "role", "item", "alphabet", "character", "drawer", "answer")


@dataclass(frozen=True)
class LakeRun:
    """One run: support (20, 105, 105) and query (20, 105, 105) uint8 drawings (255 = paper), and for each
    query the index of its support drawing; `characters`: "alphabet/characterNN" of each support drawing."""

    name: str
    support: np.ndarray
    query: np.ndarray
    answers: np.ndarray
    characters: tuple[str, ...]


def write_runs_table(rows: list[dict[str, str]], path: str | Path, provenance: str) -> None:
    """Write the rows (keys `RUN_COLUMNS`) as a tab-separated table, `provenance` as a first comment line."""
    from anil_engine.checkpoint import atomic_write_bytes

    out = io.StringIO()
    out.write(f"# Lake et al. (2015) one-shot classification runs, {provenance}\n")
    writer = csv.DictWriter(out, RUN_COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out.getvalue().encode(), path)


def read_runs_table(path: str | Path = LAKE_RUNS_TABLE) -> dict[str, list[dict[str, str]]]:
    """{run: its rows}, in the table's order; a missing column or file is a DataError naming it."""
    path = Path(path)
    try:
        lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read the table of Lake's runs ({exc.strerror}); reinstall ANIL Studio"
        ) from exc
    runs: dict[str, list[dict[str, str]]] = {}
    reader = csv.DictReader(lines, delimiter="\t")
    missing = set(RUN_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise DataError(f"{path}: the table of Lake's runs lacks the column(s) {', '.join(sorted(missing))}")
    for row in reader:
        runs.setdefault(row["run"], []).append(row)
    return runs


def run_characters(table: str | Path = LAKE_RUNS_TABLE) -> set[tuple[str, str]]:
    """(alphabet, characterNN) of every character in the runs."""
    return {(r["alphabet"], r["character"]) for rows in read_runs_table(table).values() for r in rows}


def load_lake_runs(root: str | Path, table: str | Path = LAKE_RUNS_TABLE) -> list[LakeRun]:
    """Every run of `table`, its drawings read from the Omniglot copy under `root` (arrays or PNG folders)."""
    read = drawings_reader(root)

    def drawing(run: str, row: dict[str, str]) -> np.ndarray:
        drawings = read("evaluation", row["alphabet"], row["character"])
        drawer = int(row["drawer"])
        if not 1 <= drawer <= len(drawings):
            raise DataError(
                f"{root}: {row['alphabet']}/{row['character']} has {len(drawings)} drawings, and Lake's "
                f"{run} needs drawer {drawer}; use the complete Omniglot (20 drawers per character)"
            )
        return drawings[drawer - 1]

    runs = []
    for name, rows in read_runs_table(table).items():
        support = [r for r in rows if r["role"] == "training"]
        query = [r for r in rows if r["role"] == "test"]
        position = {r["item"]: i for i, r in enumerate(support)}
        unknown = [r["item"] for r in query if r["answer"] not in position]
        if not support or not query or unknown:
            raise DataError(f"{table}: {name} has no support or query rows, or answers outside its support: {unknown}")
        runs.append(
            LakeRun(
                name,
                np.stack([drawing(name, r) for r in support]),
                np.stack([drawing(name, r) for r in query]),
                np.array([position[r["answer"]] for r in query], dtype=np.int64),
                tuple(f"{r['alphabet']}/{r['character']}" for r in support),
            )
        )
    return runs


def redrawn_runs(root: str | Path, runs: list[LakeRun], draws: int, seed: int) -> list[list[LakeRun]]:
    """For each run, `draws` runs on its characters and answers with other drawers: each a random pair of
    drawers (seeded), one for every support drawing, another for every query, as Lake's runs pair them. How hard
    the runs' characters are without Lake's choice of drawers."""
    import random

    read = drawings_reader(root)
    rng = random.Random(seed)
    out = []
    for run in runs:
        drawings = [read("evaluation", *c.split("/")) for c in run.characters]
        n = min(len(d) for d in drawings)
        redrawn = []
        for k in range(draws):
            support, query = rng.sample(range(n), 2)
            redrawn.append(
                LakeRun(
                    f"{run.name}-redrawn{k + 1}",
                    np.stack([d[support] for d in drawings]),
                    np.stack([drawings[a][query] for a in run.answers]),
                    run.answers,
                    run.characters,
                )
            )
        out.append(redrawn)
    return out
