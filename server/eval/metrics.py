"""Top-k ranking metrics with binary relevance, per user, and catalogue-level figures.

Conventions (those of the published MovieLens baselines the README quotes):

* ``precision@k = hits / k``; ``recall@k = hits / |relevant|``;
* ``ndcg@k = DCG / IDCG`` with gains 1 and discount ``1 / log2(rank + 1)``; the ideal list puts
  ``min(|relevant|, k)`` hits first;
* ``map@k``: average precision, ``Σ_{rank ≤ k, hit} precision@rank / min(|relevant|, k)``;
* ``hit_rate@k``: 1 when at least one relevant item is in the top k;
* coverage: distinct recommended items / catalogue size;
* Gini of creator exposure: over every creator of the catalogue (unexposed ones count as 0),
  exposure = number of top-k slots given to the creator's items across all users;
* group exposure share: each fairness group's share of the position-discounted exposure
  (``1 / log2(rank + 1)``, as in the fairness report) of all top-k slots.

Users without relevant items are skipped by the caller (their recall is undefined).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from server.pipeline.fairness.report import group_exposure

Ranked = Sequence[int] | NDArray[np.int64]


def _hits(ranked: Ranked, relevant: set[int], k: int) -> NDArray[np.bool_]:
    return np.array([int(i) in relevant for i in list(ranked)[:k]], dtype=bool)


def precision_at_k(ranked: Ranked, relevant: set[int], k: int) -> float:
    return float(_hits(ranked, relevant, k).sum()) / k


def recall_at_k(ranked: Ranked, relevant: set[int], k: int) -> float:
    if not relevant:
        return 0.0
    return float(_hits(ranked, relevant, k).sum()) / len(relevant)


def ndcg_at_k(ranked: Ranked, relevant: set[int], k: int) -> float:
    if not relevant:
        return 0.0
    hits = _hits(ranked, relevant, k)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((disc[: hits.size] * hits).sum())
    idcg = float(disc[: min(len(relevant), k)].sum())
    return dcg / idcg


def average_precision_at_k(ranked: Ranked, relevant: set[int], k: int) -> float:
    if not relevant:
        return 0.0
    hits = _hits(ranked, relevant, k)
    if not hits.any():
        return 0.0
    prec = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float(prec[hits].sum()) / min(len(relevant), k)


def hit_rate_at_k(ranked: Ranked, relevant: set[int], k: int) -> float:
    return float(_hits(ranked, relevant, k).any())


def coverage(lists: Iterable[Ranked], n_items: int, k: int) -> float:
    seen: set[int] = set()
    for r in lists:
        seen.update(int(i) for i in list(r)[:k])
    return len(seen) / n_items if n_items else 0.0


def gini(values: NDArray[np.float64]) -> float:
    """Gini coefficient of non-negative values: 0 = equal, → 1 = all on one."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    total = float(x.sum())
    if n == 0 or total <= 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * total))


def creator_exposure_gini(
    lists: Iterable[Ranked], item_creator: NDArray[np.int64], n_creators: int, k: int
) -> float:
    counts = np.zeros(n_creators, np.float64)
    for r in lists:
        for i in list(r)[:k]:
            counts[int(item_creator[int(i)])] += 1
    return gini(counts)


def group_exposure_shares(
    lists: Iterable[Ranked], item_group: NDArray[np.int64], groups: Sequence[str], k: int
) -> dict[str, float]:
    """Each group's share of the position-discounted exposure of the lists' top `k` (0s when
    nothing was recommended)."""
    expo = np.zeros(len(groups), np.float64)
    for r in lists:
        top = np.asarray(list(r)[:k], np.int64)
        expo += group_exposure(item_group[top], len(groups))  # the fairness report's measure
    total = float(expo.sum())
    return {g: float(e / total) if total > 0 else 0.0 for g, e in zip(groups, expo, strict=True)}


METRICS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": average_precision_at_k,
    "hit_rate": hit_rate_at_k,
}


def summarise(
    ranked: Mapping[str, Ranked],
    relevant: Mapping[str, set[int]],
    *,
    ks: Sequence[int] = (10, 20),
    n_items: int,
    item_creator: NDArray[np.int64],
    n_creators: int,
    item_group: NDArray[np.int64] | None = None,
    groups: Sequence[str] = (),
) -> dict[str, float]:
    """Mean of every metric at every k over the users of `relevant` with a non-empty set; with
    `item_group` (codes into `groups`), each group's exposure share as `exposure_share@k:GROUP`."""
    users = [u for u, rel in relevant.items() if rel]
    out: dict[str, float] = {"users": float(len(users))}
    for k in ks:
        for name, fn in METRICS.items():
            vals = [fn(ranked.get(u, []), relevant[u], k) for u in users]
            out[f"{name}@{k}"] = float(np.mean(vals)) if vals else 0.0
        lists = [ranked.get(u, []) for u in users]
        out[f"coverage@{k}"] = coverage(lists, n_items, k)
        out[f"creator_gini@{k}"] = creator_exposure_gini(lists, item_creator, n_creators, k)
        if item_group is not None:
            for g, share in group_exposure_shares(lists, item_group, groups, k).items():
                out[f"exposure_share@{k}:{g}"] = share
    return out
