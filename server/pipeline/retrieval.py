"""Stage 1: candidate retrieval from several sources, merged, seen and excluded items removed.

Sources, each with a quota: FAISS neighbours of the user embedding (stored profile folded with
recent events), exact keyword top-k from the Rust core, FAISS neighbours of the recent events'
items, trending (time-decayed popularity), fresh uploads and new/small creators. Sources are
merged in that order and de-duplicated; every candidate keeps the bit set of the sources that
proposed it. Optional sources are skipped when the deadline budget cannot fit them. The merge
(exclusions, per-source quotas, de-duplication) is one Rust call, `_core.merge_sources`. A
stored user without recent events reads the build's ANN and keyword lists instead of searching
(server/index/user_candidates.py); they go to the merge unfiltered, and only a list that the
request's exclusions leave short of its quota is searched online after all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from server import _core
from server.index.loaded import LoadedSnapshot
from server.index.sorted_sets import in_sorted
from server.pipeline.budget import Budget, timed
from server.pipeline.types import Candidates, RetrievalQuotas, Source, UserState

Hit = tuple[NDArray[np.int64], NDArray[np.float32]]
# A pool's head (int32 ids, excluded items still in) or a search's hits.
PoolHead = tuple[NDArray[np.int32] | NDArray[np.int64], NDArray[np.float32]]
EMPTY: Hit = (np.zeros(0, np.int64), np.zeros(0, np.float32))
# A user's precomputed list: ids, scores, and whether it holds every match there was.
Stored = tuple[NDArray[np.int32], NDArray[np.float32], bool]
MAX_NEIGHBOR_SEEDS = 5


def _search(
    snap: LoadedSnapshot, queries: NDArray[np.float32], quota: int, excluded: NDArray[np.int32]
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """FAISS search for several query vectors; hits merged best-first, excluded removed."""
    # Ask for enough extra neighbours that removing seen items still leaves `quota`.
    k = min(snap.n_items, quota + excluded.size)
    scores, ids = snap.ann_index.search(queries, k)
    ids, scores = ids.ravel(), scores.ravel()
    keep = ids >= 0
    if excluded.size:
        keep &= ~in_sorted(ids, excluded)
    ids, scores = ids[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    ids, scores = ids[order], scores[order]
    _, first = np.unique(ids, return_index=True)
    first.sort()
    return ids[first][:quota].astype(np.int64), scores[first][:quota].astype(np.float32)


def _stored(snap: LoadedSnapshot, state: UserState, source: str) -> Stored | None:
    """The build's list for this user and source, excluded items still in: the merge drops
    them and keeps `quota` of the rest, exactly what an online search would return if that
    many remain (`retrieve` checks, and searches when not). None: no list to use."""
    cands = snap.user_candidates
    if not state.stored_query or state.user_index is None or not cands.has(source):
        return None
    ids, scores = cands.get(source, state.user_index)
    # A keyword list shorter than the build's k holds every match there was (an ANN list
    # may be short because the build skipped past at most MAX_SEEN_SKIP seen items).
    return ids, scores, source == "keyword" and ids.size < cands.k[source]


def _ann(
    snap: LoadedSnapshot, state: UserState, quota: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    if quota <= 0 or not np.any(state.embedding):
        return EMPTY
    return _search(snap, state.embedding.reshape(1, -1), quota, state.excluded)


def _neighbors(
    snap: LoadedSnapshot, state: UserState, quota: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    seeds = state.positive_recent[-MAX_NEIGHBOR_SEEDS:]
    if quota <= 0 or seeds.size == 0:
        return EMPTY
    vectors = np.asarray(snap.item_emb[seeds], dtype=np.float32)
    vectors = vectors[np.any(vectors != 0, axis=1)]
    if vectors.shape[0] == 0:
        return EMPTY
    per_seed = max(1, -(-quota // vectors.shape[0]))
    return _search(snap, vectors, per_seed * vectors.shape[0], state.excluded)


def _keyword(
    snap: LoadedSnapshot, state: UserState, quota: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    if quota <= 0 or state.q_terms.size == 0:
        return EMPTY
    ids, scores = snap.keywords.topk(state.q_terms, state.q_weights, quota, state.excluded)
    return ids.astype(np.int64), scores


def _pool(snap: LoadedSnapshot, name: str, state: UserState, quota: int) -> PoolHead:
    """The head of a precomputed pool, excluded items not yet removed: the merge drops them
    and keeps `quota` of the rest (at most `excluded.size` of the head can be dropped)."""
    if quota <= 0:
        return np.zeros(0, np.int32), np.zeros(0, np.float32)
    head = snap.pools[name][: quota + state.excluded.size]
    return head, np.asarray(snap.item_popularity[head], dtype=np.float32)


def retrieve(
    snap: LoadedSnapshot,
    state: UserState,
    num_candidates: int,
    quotas: RetrievalQuotas | None = None,
    budget: Budget | None = None,
) -> Candidates:
    """Union of the sources' candidates in source order, de-duplicated, sources as bit flags."""
    q = quotas or RetrievalQuotas.for_total(
        num_candidates, known_user=not state.cold, has_events=state.positive_recent.size > 0
    )
    budget = budget or Budget()
    # (source, ids, scores, most ids kept once the excluded ones are dropped)
    parts: list[tuple[Source, NDArray[np.int32] | NDArray[np.int64], NDArray[np.float32], int]] = []
    steps: tuple[tuple[Source, str, int, Callable[[int], PoolHead]], ...] = (
        (Source.ANN, "ann", q.ann, lambda n: _ann(snap, state, n)),
        (Source.KEYWORD, "keyword", q.keyword, lambda n: _keyword(snap, state, n)),
        (
            Source.ITEM_NEIGHBOR,
            "item_neighbor",
            q.item_neighbor,
            lambda n: _neighbors(snap, state, n),
        ),
        (Source.POPULAR, "popular", q.popular, lambda n: _pool(snap, "popular", state, n)),
        (Source.FRESH, "fresh", q.fresh, lambda n: _pool(snap, "fresh", state, n)),
        (
            Source.COLD_START,
            "cold_start",
            q.cold_start,
            lambda n: _pool(snap, "cold_start", state, n),
        ),
    )
    stored: dict[int, tuple[str, int, Callable[[int], PoolHead]]] = {}  # part -> its search
    for src, name, quota, run in steps:
        # Pools are precomputed slices (microseconds): only searches are worth skipping.
        searched = src in (Source.ANN, Source.KEYWORD, Source.ITEM_NEIGHBOR)
        if quota > 0 and searched and not budget.allows(f"{name} source", "retrieval"):
            continue
        with timed(f"{name} source"):
            listed = _listed(snap, state, src, quota)
            ids, scores = run(quota) if listed is None else listed[:2]
        if listed is not None and not listed[2]:
            stored[len(parts)] = (name, quota, run)
        # Searches return their hits filtered and cut to size; stored lists and pools come
        # unfiltered, and keep `quota` once the merge drops the excluded ids.
        searched_now = searched and listed is None
        parts.append((src, ids, scores, ids.size if searched_now else max(quota, 0)))
    items, bits, best, counts = _merge(parts, state.excluded, num_candidates)
    # A stored list that lost too many items to the exclusions: search online after all.
    short = [j for j, (_, quota, _) in stored.items() if counts[j] < quota]
    for j in short:
        name, quota, run = stored[j]
        with timed(f"{name} source"):
            ids, scores = run(quota)
        parts[j] = (parts[j][0], ids, scores, ids.size)
    if short:
        items, bits, best, counts = _merge(parts, state.excluded, num_candidates)
    kept = {p[0]: int(c) for p, c in zip(parts, counts, strict=True)}
    return Candidates(items, bits, best, kept)


def _listed(snap: LoadedSnapshot, state: UserState, src: Source, quota: int) -> Stored | None:
    """The stored list answering the ANN or keyword source for this request, if any."""
    if quota <= 0:
        return None
    if src is Source.ANN and np.any(state.embedding):
        return _stored(snap, state, "ann")
    if src is Source.KEYWORD and state.q_terms.size:
        return _stored(snap, state, "keyword")
    return None


def _merge(
    parts: list[tuple[Source, NDArray[np.int32] | NDArray[np.int64], NDArray[np.float32], int]],
    excluded: NDArray[np.int32],
    num_candidates: int,
) -> tuple[NDArray[np.int32], NDArray[np.uint8], NDArray[np.float32], list[int]]:
    items, bits, best, counts = _core.merge_sources(
        [(ids, scores, int(src), limit) for src, ids, scores, limit in parts],
        excluded,
        num_candidates,
    )
    return items, bits, best, counts.tolist()
