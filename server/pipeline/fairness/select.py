"""The constrained greedy fill shared by every policy, and its Python reference.

At each page position the fill takes the candidate with the best marginal value among those the
hard constraints allow::

    value(i) = lam * rel(i) * mult(j_c(i)) - (1 - lam) * max_sim(i, page)

``rel`` is the (price-adjusted) relevance, ``mult[j]`` (``(1 - floor) * decay**j + floor``) the
creator repeat decay for a creator already on the page ``j`` times, ``max_sim`` the largest
cosine similarity to an item already placed (MMR; zero vectors are similar to nothing).
Ties go to the lower ``rank``.

Hard constraints, in this precedence:

* group floors: ``need[t, f]`` is the least number of items of floor class ``f`` (a set of
  groups) in the top ``t``. Before each position the fill checks, for every horizon ``t``, whether
  the outstanding demand up to ``t`` (capped by the class's remaining candidates) fills every
  slot left before ``t``; if so the position must go to a class with demand there (earliest
  deadline first, which meets every deadline whenever the demands fit at all, as with target
  shares summing to <= 1);
* the creator cap: at most ``cap`` items of a creator in any ``window`` consecutive positions;
  by default it wins over a floor (``floor_over_cap`` reverses that);
* the cold-start slot: at position ``cold_pos`` (0-based), if no eligible item is on the page
  yet, the best eligible item that fits the cap is taken.

When no candidate fits, the constraint with the lowest precedence is dropped for that position
and the page is still filled; the report then says which constraint was relaxed.

`select_py` is the reference; `server._core.rerank_select` (rust_core/src/rerank.rs) is the same
algorithm, and a parity test holds them to identical output.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

LIFTED = 1  # flag bit: the cold-start slot lifted an item


def select_py(
    rel: NDArray[np.float64],
    creator: NDArray[np.int64],
    group: NDArray[np.int64],
    rank: NDArray[np.int64],
    emb: NDArray[np.float32],
    k: int,
    *,
    cap: int,
    window: int,
    mult: NDArray[np.float64],
    lam: float,
    need: NDArray[np.int32],
    class_groups: NDArray[np.uint8],
    cold_eligible: NDArray[np.bool_],
    cold_pos: int,
    floor_over_cap: bool,
    dpp_window: int = 0,
) -> tuple[NDArray[np.int64], int]:
    """Reference implementation (see the module docstring); returns (chosen, flags).

    `dpp_window > 0` replaces MMR's penalty with the windowed greedy DPP term
    `log(1 - s' S^-1 s)` against the last `dpp_window` placed items (scalar loops in the same
    order as the Rust code, so both give bit-identical values).
    """
    n = rel.size
    k = min(k, n)
    creator = np.unique(creator, return_inverse=True)[1].reshape(-1)
    n_creators = int(creator.max()) + 1 if n else 0
    n_classes = need.shape[1] if need.ndim == 2 else 0
    member = class_groups[:, group].astype(bool) if n_classes else np.zeros((0, n), bool)
    remaining = member.sum(axis=1).astype(np.int64)
    counts = np.zeros(n_classes, np.int64)
    taken = np.zeros(n, bool)
    placed: list[list[int]] = [[] for _ in range(n_creators)]
    max_sim = np.zeros(n, np.float64)
    use_sim = emb.ndim == 2 and emb.shape[1] > 0 and lam < 1.0
    if use_sim:
        sq = (emb.astype(np.float64) ** 2).sum(axis=1)
        inv_norm = np.divide(1.0, np.sqrt(sq), out=np.zeros(n), where=sq > 0)
    cold_done = False
    flags = 0
    chosen: list[int] = []

    def fits(i: int, pos: int) -> bool:
        p = placed[int(creator[i])]
        return len(p) < cap or p[len(p) - cap] <= pos - window

    for pos in range(k):
        forced: NDArray[np.bool_] | None = None
        for t in range(pos + 1, k + 1):
            out = np.minimum(np.maximum(need[t] - counts, 0), remaining) if n_classes else None
            if out is not None and out.sum() >= t - pos:
                forced = out > 0
                break
        reps = np.array([len(placed[int(c)]) for c in creator], np.int64)
        if dpp_window > 0:
            recent = chosen[len(chosen) - min(dpp_window, len(chosen)) :]
            terms = _dpp_terms(emb, inv_norm, recent) if use_sim else np.zeros(n)
            value = lam * rel * mult[reps] + (1.0 - lam) * terms
        else:
            value = lam * rel * mult[reps] - (1.0 - lam) * max_sim
        free = ~taken
        cap_ok = np.array([fits(i, pos) for i in range(n)]) & free
        in_forced = member[forced].any(axis=0) if forced is not None else None

        def best(mask: NDArray[np.bool_], value: NDArray[np.float64] = value) -> int:
            idx = np.flatnonzero(mask)
            if idx.size == 0:
                return -1
            v = value[idx]
            top = idx[v == v.max()]
            return int(top[np.argmin(rank[top])])

        pick = -1
        if in_forced is not None:
            pick = best(cap_ok & in_forced)
            if pick < 0 and floor_over_cap:
                pick = best(free & in_forced)
        elif pos == cold_pos and not cold_done:
            pick = best(cap_ok & cold_eligible)
            if pick >= 0:
                flags |= LIFTED
        if pick < 0:
            pick = best(cap_ok)
        if pick < 0:
            pick = best(free)
        taken[pick] = True
        chosen.append(pick)
        placed[int(creator[pick])].append(pos)
        if n_classes:
            inc = member[:, pick]
            counts += inc
            remaining -= inc
        if cold_eligible[pick] and pos <= max(cold_pos, 0):
            cold_done = True
        if use_sim and dpp_window == 0:
            dots = (emb.astype(np.float32) @ emb[pick].astype(np.float32)).astype(np.float64)
            max_sim = np.maximum(max_sim, dots * inv_norm * inv_norm[pick])
    return np.asarray(chosen, np.int64), flags


DPP_JITTER = 1e-6


def _dpp_terms(
    emb: NDArray[np.float32], inv_norm: NDArray[np.float64], window: list[int]
) -> NDArray[np.float64]:
    """`log(1 - s' S^-1 s)` of every candidate against `window` (S: its cosine kernel)."""
    e = emb.astype(np.float32)

    def cos(a: int, b: int) -> float:
        return float(np.dot(e[a], e[b])) * float(inv_norm[a]) * float(inv_norm[b])

    w = len(window)
    chol = [[0.0] * w for _ in range(w)]
    for a in range(w):
        for b in range(a + 1):
            v = 1.0 + DPP_JITTER if a == b else cos(window[a], window[b])
            for t in range(b):
                v -= chol[a][t] * chol[b][t]
            chol[a][b] = math.sqrt(max(v, DPP_JITTER)) if a == b else v / chol[b][b]
    out = np.zeros(emb.shape[0])
    for i in range(emb.shape[0]):
        y = [0.0] * w
        norm = 0.0
        for a in range(w):
            v = cos(i, window[a])
            for t in range(a):
                v -= chol[a][t] * y[t]
            y[a] = v / chol[a][a]
            norm += y[a] * y[a]
        out[i] = math.log(max(1.0 - norm, DPP_JITTER))
    return out
