"""Held-out splits of an interactions table: random per-user 80/20 and leave-last-out.

A split works on (user, item) pairs, not rows: every row of a pair goes to the same side, so
a held-out item is never also "seen" in training. Only positive pairs (summed weight > 0) are
held out; negative ones (skips, dislikes) always stay in training. The training rows are
written in the input's format with all its columns untouched, so the build reads them like
any other input.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from server.data import loaders

KINDS = ("random", "last")


@dataclass(frozen=True)
class Split:
    kind: str
    seed: int
    train_path: Path
    test: dict[str, set[str]]  # user id -> held-out item ids
    train_rows: int
    test_pairs: int


def _pairs(inter: loaders.Interactions) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Pair id per row and the unique pairs' ids."""
    key = inter.user_index.astype(np.int64) * len(inter.item_vocab) + inter.item_index
    uniq, inv = np.unique(key, return_inverse=True)
    return inv.astype(np.int64), uniq


def held_out_pairs(
    user: NDArray[np.int64],
    positive: NDArray[np.bool_],
    last_ts: NDArray[np.int64],
    kind: str,
    seed: int,
    test_ratio: float = 0.2,
) -> NDArray[np.bool_]:
    """Which pairs are held out. `user`, `positive`, `last_ts` are per pair.

    random: per user, a seeded shuffle of the positive pairs, the first
    ``round(test_ratio · n)`` held out; last: each user's latest positive pair (ties broken
    by the seeded shuffle), for users with at least two positive pairs.
    """
    if kind not in KINDS:
        raise ValueError(f"split kind must be one of {KINDS}, got {kind!r}")
    n = user.size
    out = np.zeros(n, bool)
    idx = np.flatnonzero(positive)
    if idx.size == 0:
        return out
    u = user[idx]
    counts = np.bincount(u, minlength=int(user.max()) + 1)
    key = np.random.default_rng(seed).random(idx.size)
    if kind == "random":
        order = np.lexsort((key, u))
        n_test = np.round(test_ratio * counts).astype(np.int64)
    else:
        # Ties at the latest timestamp are common (MovieLens users rate in bursts within one
        # second) and broken by the seeded key: any fixed order (say, by item id) would tie
        # the held-out item to the id assignment and bias every method's score.
        order = np.lexsort((key, -last_ts[idx], u))
        n_test = (counts >= 2).astype(np.int64)
    su = u[order]
    start = np.searchsorted(su, su, side="left")
    rank = np.arange(idx.size) - start
    out[idx[order[rank < n_test[su]]]] = True
    return out


def _read_raw(path: Path) -> pa.Table:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pq.read_table(path)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig") as f:
        header = next(csv.reader([f.readline()]))
    types = {c: pa.string() for c in header}
    return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types=types))


def make_split(
    interactions_path: Path, out_dir: Path, kind: str = "random", seed: int = 0
) -> Split:
    """Write `out_dir/train.<suffix>` and return the held-out items per user."""
    interactions_path = Path(interactions_path)
    inter = loaders.load_interactions(interactions_path)
    pair, uniq = _pairs(inter)
    n_items = len(inter.item_vocab)
    p_user = uniq // n_items
    p_item = uniq % n_items
    w = np.bincount(pair, weights=inter.weight.astype(np.float64), minlength=uniq.size)
    last = np.full(uniq.size, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(last, pair, inter.timestamp.astype(np.int64))
    held = held_out_pairs(p_user, w > 0, last, kind, seed)
    row_test = held[pair]
    out_dir.mkdir(parents=True, exist_ok=True)
    table = _read_raw(interactions_path)
    if table.num_rows != inter.n_rows:
        raise ValueError(
            f"{interactions_path}: read {table.num_rows} raw rows but {inter.n_rows} parsed rows"
        )
    train = table.filter(pa.array(~row_test))
    if interactions_path.name.lower().endswith(".parquet"):
        train_path = out_dir / "train.parquet"
        pq.write_table(train, train_path)
    else:
        train_path = out_dir / "train.csv"
        pcsv.write_csv(train, train_path)
    test: dict[str, set[str]] = {}
    for pu, pi in zip(p_user[held].tolist(), p_item[held].tolist(), strict=True):
        test.setdefault(str(inter.user_vocab[pu]), set()).add(str(inter.item_vocab[pi]))
    return Split(kind, seed, train_path, test, int(train.num_rows), int(held.sum()))
