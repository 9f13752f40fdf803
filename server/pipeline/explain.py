"""Debug explanations: which keywords matched, which recent event an item resembles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from server.index.loaded import LoadedSnapshot
from server.pipeline.types import UserState

MAX_KEYWORDS = 5


@dataclass(frozen=True)
class Explanation:
    matched_keywords: list[str]
    similar_to_item_id: str
    similarity: float


def explain(snap: LoadedSnapshot, state: UserState, items: NDArray[np.int32]) -> list[Explanation]:
    """One explanation per item (only called for the returned page, so a loop is fine)."""
    seeds = state.positive_recent
    seed_vecs = np.asarray(snap.item_emb[seeds], dtype=np.float32) if seeds.size else None
    if seed_vecs is not None:
        seed_vecs = seed_vecs / np.maximum(np.linalg.norm(seed_vecs, axis=1, keepdims=True), 1e-12)
    q = dict(zip(state.q_terms.tolist(), state.q_weights.tolist(), strict=True))
    out = []
    for i in items.tolist():
        a, b = int(snap.kw_indptr[i]), int(snap.kw_indptr[i + 1])
        terms = np.asarray(snap.kw_indices[a:b]).tolist()
        weights = np.asarray(snap.kw_data[a:b]).tolist()
        contrib = sorted(
            ((q[t] * w, t) for t, w in zip(terms, weights, strict=True) if t in q), reverse=True
        )
        words = [snap.term(t).lstrip("#") for _, t in contrib[:MAX_KEYWORDS]]
        similar, sim = "", 0.0
        if seed_vecs is not None:
            v = np.asarray(snap.item_emb[i], dtype=np.float32)
            norm = float(np.linalg.norm(v))
            if norm > 0:
                sims = seed_vecs @ (v / norm)
                j = int(np.argmax(sims))
                similar, sim = snap.item_ids[int(seeds[j])], float(sims[j])
        out.append(Explanation(words, similar, sim))
    return out
