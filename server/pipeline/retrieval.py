"""Stage 1: candidate retrieval from several sources, merged, seen and excluded items removed."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from server.index.loaded import LoadedSnapshot
from server.pipeline.types import Candidates, RetrievalQuotas, Source, UserState


def _drop(items: NDArray[np.int64], excluded: NDArray[np.int32]) -> NDArray[np.int64]:
    if excluded.size == 0 or items.size == 0:
        return items
    return items[~np.isin(items, excluded, assume_unique=False)]


def _ann(
    snap: LoadedSnapshot, state: UserState, quota: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    if quota <= 0 or not np.any(state.embedding):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    # Ask for enough extra neighbours that removing seen items still leaves `quota`.
    k = min(snap.n_items, quota + state.excluded.size)
    scores, ids = snap.ann_index.search(state.embedding.reshape(1, -1), k)
    ids, scores = ids[0], scores[0]
    keep = ids >= 0
    ids, scores = ids[keep], scores[keep]
    if state.excluded.size:
        ok = ~np.isin(ids, state.excluded)
        ids, scores = ids[ok], scores[ok]
    return ids[:quota].astype(np.int64), scores[:quota].astype(np.float32)


def _keyword(
    snap: LoadedSnapshot, state: UserState, quota: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    if quota <= 0 or state.q_terms.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    ids, scores = snap.keywords.topk(state.q_terms, state.q_weights, quota, state.excluded)
    return ids.astype(np.int64), scores


def _pool(snap: LoadedSnapshot, name: str, state: UserState, quota: int) -> NDArray[np.int64]:
    pool = snap.pools[name].astype(np.int64)
    return _drop(pool, state.excluded)[:quota]


def retrieve(snap: LoadedSnapshot, state: UserState, num_candidates: int) -> Candidates:
    """Union of the sources' candidates in source order, de-duplicated, sources as bit flags."""
    q = RetrievalQuotas.for_total(num_candidates, known_user=not state.cold)
    ann_ids, ann_scores = _ann(snap, state, q.ann)
    kw_ids, kw_scores = _keyword(snap, state, q.keyword)
    parts: list[tuple[Source, NDArray[np.int64], NDArray[np.float32]]] = [
        (Source.ANN, ann_ids, ann_scores),
        (Source.KEYWORD, kw_ids, kw_scores),
    ]
    for src, name, quota in (
        (Source.POPULAR, "popular", q.popular),
        (Source.FRESH, "fresh", q.fresh),
        (Source.COLD_START, "cold_start", q.cold_start),
    ):
        ids = _pool(snap, name, state, quota)
        parts.append((src, ids, snap.item_popularity[ids].astype(np.float32)))
    all_ids = np.concatenate([p[1] for p in parts])
    all_bits = np.concatenate([np.full(p[1].size, int(p[0]), np.uint8) for p in parts])
    all_scores = np.concatenate([p[2] for p in parts])
    counts = {p[0]: int(p[1].size) for p in parts}
    if all_ids.size == 0:
        return Candidates(
            np.zeros(0, np.int32), np.zeros(0, np.uint8), np.zeros(0, np.float32), counts
        )
    uniq, first, inv = np.unique(all_ids, return_index=True, return_inverse=True)
    bits = np.zeros(uniq.size, np.uint8)
    np.bitwise_or.at(bits, inv, all_bits)
    best = np.full(uniq.size, -np.inf, np.float32)
    np.maximum.at(best, inv, all_scores)
    order = np.argsort(first, kind="stable")[:num_candidates]
    return Candidates(uniq[order].astype(np.int32), bits[order], best[order], counts)
