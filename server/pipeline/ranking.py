"""Stage 2: score every candidate in one batch with the snapshot's blend of signals."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from server.index.loaded import LoadedSnapshot
from server.pipeline.types import Scores, UserState

SIGNALS = ("keyword", "embedding", "popularity", "freshness")


def score(snap: LoadedSnapshot, state: UserState, items: NDArray[np.int32]) -> Scores:
    """Blend keyword cosine (Rust core), embedding affinity, popularity and freshness."""
    items = np.ascontiguousarray(items, dtype=np.int32)
    if items.size and state.q_terms.size:
        kw = snap.keywords.score(state.q_terms, state.q_weights, items)
    else:
        kw = np.zeros(items.size, np.float32)
    norm = float(np.linalg.norm(state.embedding))
    if items.size and norm > 0:
        # Scale into roughly [-1, 1] so the blend weights mean the same for every user.
        emb = (snap.item_emb[items] @ state.embedding) / (norm * snap.emb_scale)
    else:
        emb = np.zeros(items.size, np.float32)
    pop = snap.item_popularity[items]
    fresh = snap.item_freshness[items]
    w = snap.blend_weights
    total = (
        w.get("keyword", 0) * kw
        + w.get("embedding", 0) * emb
        + w.get("popularity", 0) * pop
        + w.get("freshness", 0) * fresh
    )
    return Scores(
        items=items,
        total=np.asarray(total, np.float32),
        keyword=np.asarray(kw, np.float32),
        embedding=np.asarray(emb, np.float32),
        popularity=np.asarray(pop, np.float32),
        freshness=np.asarray(fresh, np.float32),
    )
