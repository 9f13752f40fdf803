"""Build the requesting user's state: stored profile and embedding folded with recent events."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from server.data.schema import DEFAULT_EVENT_WEIGHTS
from server.index.collab import fold_in
from server.index.loaded import LoadedSnapshot
from server.pipeline.types import Event, UserState

# Recent events are this session's intent: weigh them above the stored history.
RECENT_EMBEDDING_BOOST = 2.0
RECENT_KEYWORD_BOOST = 1.0
RECENT_HALF_LIFE_S = 1800.0
PROFILE_TERMS = 64


def _merge_sparse(
    a_terms: NDArray[np.int32],
    a_w: NDArray[np.float32],
    b_terms: NDArray[np.int32],
    b_w: NDArray[np.float32],
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    terms = np.concatenate([a_terms, b_terms])
    if terms.size == 0:
        return terms.astype(np.int32), np.zeros(0, np.float32)
    uniq, inv = np.unique(terms, return_inverse=True)
    w = np.bincount(inv, weights=np.concatenate([a_w, b_w]).astype(np.float64))
    pos = np.flatnonzero(w > 0)
    if pos.size > PROFILE_TERMS:
        # The cap of stored profiles: the heaviest terms (ties by term id), so a session's
        # events do not grow the keyword query, and its exact top-k's cost, without bound.
        pos = np.sort(pos[np.lexsort((uniq[pos], -w[pos]))[:PROFILE_TERMS]])
    w = w[pos]
    norm = float(np.sqrt(np.sum(w * w))) or 1.0
    return uniq[pos].astype(np.int32), (w / norm).astype(np.float32)


def _sorted_union(canonical: NDArray[np.int32], *parts: NDArray[np.int32]) -> NDArray[np.int32]:
    """Sorted distinct ids of `canonical` (itself sorted and distinct) and `parts`; without
    sorting when the parts are empty (a stored user's request without events: the common one)."""
    if not any(p.size for p in parts):
        return canonical
    return np.unique(np.concatenate([canonical, *parts])).astype(np.int32)


def build_user_state(
    snap: LoadedSnapshot, user_id: str, events: list[Event], exclude_ids: list[str]
) -> UserState:
    """Resolve the user; events and exclusions naming unknown items are ignored."""
    u = snap.user_index.get(user_id) if user_id else None
    dim = snap.item_emb.shape[1]
    emb = (
        np.array(snap.user_emb[u], dtype=np.float32) if u is not None else np.zeros(dim, np.float32)
    )
    if u is not None:
        q_terms, q_weights = snap.user_profile(u)
    else:
        q_terms, q_weights = np.zeros(0, np.int32), np.zeros(0, np.float32)

    known = [(snap.item_index.get(e.item_id), e) for e in events]
    known_events = [(i, e) for i, e in known if i is not None]
    recent = np.array([i for i, _ in known_events], dtype=np.int32)
    positive = np.zeros(0, np.int32)
    if known_events:
        weights = np.array(
            [
                DEFAULT_EVENT_WEIGHTS[e.event_type]
                * (0.5 + e.watch_ratio if e.watch_ratio > 0 else 1.0)
                for _, e in known_events
            ],
            dtype=np.float32,
        )
        ts = np.array([e.timestamp for _, e in known_events], dtype=np.float64)
        ages = np.maximum(ts.max() - ts, 0.0)
        decay = (0.5 ** (ages / RECENT_HALF_LIFE_S)).astype(np.float32)
        by_time = np.argsort(ts, kind="stable")
        positive = recent[by_time][weights[by_time] > 0]
        emb = emb + RECENT_EMBEDDING_BOOST * fold_in(
            snap.item_query, recent.astype(np.int64), weights * decay
        )
        r_terms, r_weights = snap.keywords.build_profile(
            recent, weights, ages, RECENT_HALF_LIFE_S, PROFILE_TERMS
        )
        q_terms, q_weights = _merge_sparse(
            q_terms, q_weights, r_terms, RECENT_KEYWORD_BOOST * r_weights
        )

    # Sorted and distinct: open_snapshot refuses a snapshot whose rows are not (_check_seen).
    seen = snap.user_seen(u) if u is not None else np.zeros(0, np.int32)
    ex = [snap.item_index.get(i) for i in exclude_ids]
    excluded = _sorted_union(seen, recent, np.array([i for i in ex if i is not None], np.int32))
    # ItemKNN query: the stored history (as the build's blend fit saw it) plus positive events.
    history = _sorted_union(seen, positive)
    return UserState(
        u,
        np.asarray(emb, np.float32),
        np.asarray(q_terms, np.int32),
        np.asarray(q_weights, np.float32),
        excluded,
        recent,
        positive_recent=positive,
        history=history,
        history_weights=np.ones(history.size, np.float32),
        stored_query=u is not None and not known_events,
    )
