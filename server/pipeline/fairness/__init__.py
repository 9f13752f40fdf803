"""Stage 3: fairness re-ranking with guarantees, and the fairness report of every page.

Policies (see docs/FAIRNESS.md) compose into one constrained greedy fill (`select`):

1. amortised exposure: a per-group dual price from the server's `ExposureTracker`, added to the
   relevance of the group's items before the fill;
2. creator cap (hard), group floors (FA*IR's binomial floor for the protected groups, and
   per-group target-share floors), the cold-start slot: constraints of the fill;
3. creator repeat decay and diversity (MMR over embedding or keyword vectors): terms of the
   fill's marginal value; a windowed greedy DPP can replace MMR.

`rerank` returns positions into its input arrays, best first, and the page's report.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from server import _core
from server._core import rerank_select as _rust_select
from server.pipeline.fairness import fair_stats
from server.pipeline.fairness.exposure import ExposureTracker
from server.pipeline.fairness.params import targets, validate
from server.pipeline.fairness.report import discount, floor_need, group_exposure, in_groups, measure
from server.pipeline.fairness.select import LIFTED, select_py
from server.pipeline.fairness.vectors import vectors
from server.pipeline.types import FairnessParams, Page, Policy

__all__ = [
    "ExposureTracker",
    "fair_stats",
    "measure",
    "ranking_order",
    "relevance",
    "rerank",
    "select",
    "targets",
    "validate",
    "vectors",
]


def select(
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
    backend: str = "auto",
) -> tuple[NDArray[np.int64], int]:
    """The constrained greedy fill (`select.select_py` documents it) in Rust; `backend`
    "python" runs the reference implementation instead (the parity oracle)."""
    if backend == "python":
        return select_py(
            rel, creator, group, rank, emb, k, cap=cap, window=window, mult=mult, lam=lam,
            need=need, class_groups=class_groups, cold_eligible=cold_eligible,
            cold_pos=cold_pos, floor_over_cap=floor_over_cap, dpp_window=dpp_window,
        )  # fmt: skip
    n = rel.size
    d = emb.shape[1] if emb.ndim == 2 else 0
    chosen, flags = _rust_select(
        np.ascontiguousarray(rel, np.float64),
        np.ascontiguousarray(creator, np.int64),
        np.ascontiguousarray(group, np.int64),
        np.ascontiguousarray(rank, np.int64),
        np.ascontiguousarray(emb, np.float32).reshape(-1) if d else np.zeros(0, np.float32),
        d,
        min(k, n),
        cap,
        window,
        np.ascontiguousarray(mult, np.float64),
        lam,
        np.ascontiguousarray(need, np.int32).reshape(-1),
        need.shape[1] if need.ndim == 2 else 0,
        np.ascontiguousarray(class_groups, np.uint8).reshape(-1),
        np.ascontiguousarray(cold_eligible, np.uint8),
        cold_pos,
        floor_over_cap,
        dpp_window,
    )
    return np.asarray(chosen, np.int64), int(flags)


def relevance(scores: NDArray[np.float32]) -> NDArray[np.float64]:
    """Scores mapped to [0, 1] (min-max over the candidates; all equal -> all 1)."""
    s = scores.astype(np.float64)
    if s.size == 0:
        return s
    return _relevance(s, float(np.minimum.reduce(s)), float(np.maximum.reduce(s)))


def _relevance(s: NDArray[np.float64], lo: float, hi: float) -> NDArray[np.float64]:
    """`relevance` of the float64 scores `s` whose min and max are `lo` and `hi`."""
    if hi - lo <= 0:
        return np.ones_like(s)
    out: NDArray[np.float64] = (s - lo) / (hi - lo)
    return out


def ranking_order(scores: NDArray[np.float32], tiebreak: NDArray[np.int64]) -> NDArray[np.int64]:
    """`np.lexsort((tiebreak, -scores.astype(np.float64)))`: positions by score, best first,
    ties by `tiebreak`, then by position.

    For 1-D float32 scores and int64 tiebreaks (the pipeline's) one Rust call sorts packed
    keys (`_core.ranking_order`: 6 µs on a 450-candidate pool, where lexsort takes 12 µs and
    the numpy key sort this replaced 15 µs); anything else takes lexsort.
    """
    if (
        scores.dtype == np.float32
        and tiebreak.dtype == np.int64
        and scores.ndim == 1
        and tiebreak.shape == scores.shape
    ):
        return _core.ranking_order(scores, tiebreak)
    return _lexsort(scores, tiebreak)


def _lexsort(scores: NDArray[np.float32], tiebreak: NDArray[np.int64]) -> NDArray[np.int64]:
    out: NDArray[np.int64] = np.lexsort((tiebreak, -scores.astype(np.float64)))
    return out


def rerank(
    scores: NDArray[np.float32],
    creators: NDArray[np.int64],
    groups: NDArray[np.int64],
    tiebreak: NDArray[np.int64],
    num_results: int,
    params: FairnessParams,
    *,
    group_names: list[str],
    target_share: NDArray[np.float64],
    embeddings: NDArray[np.float32]
    | Callable[[NDArray[np.int64]], NDArray[np.float32]]
    | None = None,
    tracker: ExposureTracker | None = None,
    creator_key: str = "",
    n_creators: int = 0,
    backend: str = "auto",
) -> Page:
    """Pick `num_results` of the inputs with the active policies; report the page.

    `target_share` is the catalogue share per group code (targets default to it);
    `embeddings` (one row per input, or a function from input positions to their rows, so
    that only the rows used are fetched) feed diversity and the report's intra-list diversity;
    `tracker`, when given, supplies the amortised-exposure prices and records the page;
    `creator_key` names the space of the creator codes (the snapshot version) for it, and
    `n_creators` how many creators that space holds (the mean exposure per creator is over them).
    """
    n = scores.size
    k = min(num_results, n)
    active = params.active()
    target = targets(params, group_names, target_share)
    if active and n:
        s64 = scores.astype(np.float64)
        lo, hi = float(np.minimum.reduce(s64)), float(np.maximum.reduce(s64))
    order = ranking_order(scores, tiebreak)
    prices = tracker.prices(group_names) if tracker is not None else None
    floors = None
    if not active:
        chosen = order[:k].astype(np.int64)
        flags = 0
    else:
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n)
        base = _relevance(s64, lo, hi) if n else relevance(scores)
        rel = base
        if Policy.AMORTISED_EXPOSURE in active and tracker is not None and prices is not None:
            rel = rel + prices[groups]
            if params.creator_exposure_weight > 0:
                term = tracker.creator_price(creator_key, creators, n_creators)
                term *= params.creator_exposure_weight
                rel += term
        cap, window = k or 1, k or 1
        if Policy.CREATOR_CAP in active:
            cap, window = params.max_per_creator, params.creator_window or (k or 1)
        mult = _decay(k, 1.0, 1.0)  # ones
        if Policy.CREATOR_DECAY in active:
            mult = _decay(k, params.repeat_decay, params.repeat_decay_floor)
        lam = 1.0
        emb = np.zeros((n, 0), np.float32)
        dpp_window = 0
        if Policy.DIVERSITY in active and embeddings is not None and params.diversity_lambda < 1:
            lam = params.diversity_lambda
            if callable(embeddings):
                embeddings = embeddings(np.arange(n, dtype=np.int64))
            emb = np.asarray(embeddings, np.float32)
            dpp_window = params.dpp_window
        floors = floor_need(params, active, group_names, target, k)
        need, class_groups, _ = floors
        cold_pos = -1
        cold = np.zeros(n, bool)
        if Policy.COLD_START_SLOT in active and params.cold_start_position <= k:
            names = params.cold_start_groups or params.protected_groups
            cold = in_groups(groups, names, group_names) & (base >= params.cold_start_min_relevance)
            cold_pos = params.cold_start_position - 1
        floor_first = _declared_before(active, (Policy.GROUP_FLOOR, Policy.GROUP_SHARES))
        chosen, flags = select(
            rel, creators.astype(np.int64, copy=False), groups.astype(np.int64, copy=False),
            rank, emb, k,
            cap=cap, window=window,
            mult=mult, lam=lam, need=need, class_groups=class_groups, cold_eligible=cold,
            cold_pos=cold_pos, floor_over_cap=floor_first, dpp_window=dpp_window,
            backend=backend,
        )  # fmt: skip
    window_share = None
    if tracker is not None:
        tracker.record(
            group_names,
            group_exposure(groups[chosen], len(group_names)),
            target,
            step=params.exposure_step,
            max_price=params.max_exposure_price,
            update_prices=Policy.AMORTISED_EXPOSURE in active,
            aim=params.exposure_target_fraction,
        )
        window_share = tracker.window_shares(group_names)
        tracker.record_creators(creator_key, creators[chosen], discount(chosen.size))
    report = measure(
        scores, creators, groups, chosen, order[:k], params,
        group_names=group_names, target_share=target,
        page_embeddings=_page_rows(embeddings, chosen),
        window_share=window_share, prices=prices, floors=floors, active=active,
    )  # fmt: skip
    if flags & LIFTED:
        report.cold_start_position = params.cold_start_position
    return Page(positions=chosen.astype(np.int64), scores=scores[chosen], report=report)


@functools.lru_cache(maxsize=64)
def _decay(k: int, decay: float, floor: float) -> NDArray[np.float64]:
    """Creator repeat decay `(1 - floor) * decay**j + floor` for j = 0..k (read-only, cached);
    decay 1 and floor 1 give ones."""
    if decay == 1.0 and floor == 1.0:
        out = np.ones(k + 1)
    else:
        j = np.arange(k + 1, dtype=np.float64)
        out = (1.0 - floor) * decay**j
        out += floor
    out.flags.writeable = False
    return out


def _page_rows(
    embeddings: NDArray[np.float32] | Callable[[NDArray[np.int64]], NDArray[np.float32]] | None,
    chosen: NDArray[np.int64],
) -> NDArray[np.float32] | None:
    if embeddings is None:
        return None
    if callable(embeddings):
        return embeddings(chosen)
    return embeddings[chosen]


def _declared_before(active: tuple[Policy, ...], floors: tuple[Policy, ...]) -> bool:
    """Whether a floor policy is declared before the creator cap (so it wins a conflict)."""
    if Policy.CREATOR_CAP not in active:
        return True
    cap_at = active.index(Policy.CREATOR_CAP)
    return any(p in active and active.index(p) < cap_at for p in floors)
