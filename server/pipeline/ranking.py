"""Stage 2: score every candidate in one batch with the snapshot's blend of signals.

Signals (each one vectorised call over all candidates, no per-candidate Python):

* ``embedding``: collaborative affinity, the inner product of the user and item factors
  (EASE or SVD, see server/index/collab.py) divided by the user norm and the largest item
  norm, so it lies in [-1, 1]; the candidates' rows are read in place from the (mapped)
  factor matrix by the Rust core (``_core.gather_dot``) instead of gathered into a copy;
* ``item_knn``: the ItemKNN score of the candidate against the user's history (Rust core,
  sparse cosine neighbours; a short history walks its items' neighbour lists instead of the
  candidates' rows), divided by its maximum over the candidates;
* ``keyword``: sparse cosine between the user's TF-IDF profile and the item (Rust core);
* ``popularity`` and ``freshness``: per-item attributes in [0, 1].

The weights are the snapshot's ``blend_weights``, fitted on a validation split at build time
(server/index/blend.py computes the same features for the fit).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from server import _core
from server.index.blend import SIGNALS, normalise_by_max
from server.index.loaded import LoadedSnapshot
from server.pipeline.types import Scores, UserState

__all__ = ["SIGNALS", "score"]


def score(snap: LoadedSnapshot, state: UserState, items: NDArray[np.int32]) -> Scores:
    """Blend the signals above for every candidate in `items`."""
    items = np.ascontiguousarray(items, dtype=np.int32)
    if items.size and state.q_terms.size:
        kw = snap.keywords.score(state.q_terms, state.q_weights, items)
    else:
        kw = np.zeros(items.size, np.float32)
    norm = float(np.linalg.norm(state.embedding))
    if items.size and norm > 0:
        # Scale into roughly [-1, 1] so the blend weights mean the same for every user.
        dots = _core.gather_dot(snap.item_emb, items, state.embedding)
        emb = dots / (norm * snap.emb_scale)
    else:
        emb = np.zeros(items.size, np.float32)
    if items.size and state.history.size and snap.item_knn is not None:
        knn = normalise_by_max(snap.item_knn.score(state.history, state.history_weights, items))
    else:
        knn = np.zeros(items.size, np.float32)
    pop = snap.item_popularity[items]
    fresh = snap.item_freshness[items]
    w = snap.blend_weights
    total = (
        w.get("keyword", 0) * kw
        + w.get("embedding", 0) * emb
        + w.get("item_knn", 0) * knn
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
        item_knn=np.asarray(knn, np.float32),
    )
