"""Blend weights of the ranking signals, fitted on a validation split at build time.

The ranker scores a candidate as ``Σ_s w_s · f_s`` over the signals in `SIGNALS` (see
`server.pipeline.ranking`). The build holds out a random share of a sample of users'
positive interactions, fits every model on the rest, computes the same features the server
computes for each validation user's candidates (retrieved as the server would: top items by
the collaborative embedding and by the keyword profile, plus the popular pool), and picks the
weights that maximise NDCG@10 of the held-out items by coordinate ascent over a grid. The
collaborative embedding is the anchor (weight 1 while searching: the blend is scale-free);
the result is normalised to ``Σ |w| = 1`` and recorded in the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SIGNALS = ("embedding", "item_knn", "keyword", "popularity", "freshness")
ANCHOR = "embedding"
GRID = (-1.0, -0.5, -0.25, -0.1, -0.05, 0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class ValidationSet:
    """Features of every validation user's candidates, padded to a rectangle.

    `features` is ``[n_signals, n_users, n_cands]`` in `SIGNALS` order; `relevant` marks the
    held-out items; `valid` masks padding; `n_relevant` counts each user's held-out items
    (including those the candidates missed, so the NDCG is the full-ranking one).
    """

    features: NDArray[np.float32]
    relevant: NDArray[np.bool_]
    valid: NDArray[np.bool_]
    n_relevant: NDArray[np.int64]


def ndcg_at_k(
    scores: NDArray[np.float32],
    relevant: NDArray[np.bool_],
    valid: NDArray[np.bool_],
    n_relevant: NDArray[np.int64],
    k: int = 10,
) -> float:
    """Mean NDCG@k (binary relevance) of ranking each row's valid entries by score."""
    if scores.shape[0] == 0:
        return 0.0
    s = np.where(valid, scores, -np.inf)
    kk = min(k, s.shape[1])
    top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    top_scores = np.take_along_axis(s, top, 1)
    top = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), 1)
    rel = np.take_along_axis(relevant & valid, top, 1)
    disc = 1.0 / np.log2(np.arange(2, kk + 2))
    dcg = (rel * disc).sum(axis=1)
    ideal_disc = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    idcg = ideal_disc[np.minimum(n_relevant, k)]
    ok = n_relevant > 0
    return float(np.mean(dcg[ok] / idcg[ok])) if ok.any() else 0.0


def combine(weights: Mapping[str, float], features: NDArray[np.float32]) -> NDArray[np.float32]:
    """``Σ_s w_s f_s`` over the leading (signal) axis of `features`."""
    total = np.zeros(features.shape[1:], np.float32)
    for j, name in enumerate(SIGNALS):
        w = float(weights.get(name, 0.0))
        if w:
            total += np.float32(w) * features[j]
    return total


def fit_weights(
    val: ValidationSet, *, rounds: int = 3
) -> tuple[dict[str, float], dict[str, float]]:
    """Coordinate ascent over `GRID`; returns (weights, report with NDCG before/after)."""
    w = {s: 0.0 for s in SIGNALS}
    w[ANCHOR] = 1.0

    def score(cand: dict[str, float]) -> float:
        return ndcg_at_k(combine(cand, val.features), val.relevant, val.valid, val.n_relevant)

    anchor_only = best = score(w)
    for _ in range(rounds):
        improved = False
        for s in SIGNALS:
            if s == ANCHOR:
                continue
            for g in GRID:
                if g == w[s]:
                    continue
                cand = {**w, s: g}
                v = score(cand)
                if v > best + 1e-6:
                    best, w, improved = v, cand, True
        if not improved:
            break
    total = sum(abs(v) for v in w.values()) or 1.0
    weights = {s: round(w[s] / total, 6) for s in SIGNALS}
    report = {
        "val_ndcg_at_10_anchor_only": round(anchor_only, 5),
        "val_ndcg_at_10_fitted": round(best, 5),
        "val_users": int(val.features.shape[1]),
    }
    return weights, report


def normalise_by_max(raw: NDArray[np.float32]) -> NDArray[np.float32]:
    """Scale a user's non-negative scores over a candidate set so the best is 1 (0 stays 0)."""
    m = float(raw.max(initial=0.0))
    out: NDArray[np.float32] = (raw / m).astype(np.float32) if m > 0 else raw.astype(np.float32)
    return out
