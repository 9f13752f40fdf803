"""The fairness report of one page (`measure`)."""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

from server.pipeline.fairness import fair_stats
from server.pipeline.fairness.params import protected_share
from server.pipeline.types import FairnessParams, FairnessReport, GroupExposure, Policy

_DISCOUNT: NDArray[np.float64] = 1.0 / np.log2(np.arange(2, 1002, dtype=np.float64))


def discount(k: int) -> NDArray[np.float64]:
    """Position exposure 1/log2(position + 1), positions 1..k (read-only for k <= 1000)."""
    if k <= _DISCOUNT.size:
        return _DISCOUNT[:k]
    out: NDArray[np.float64] = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    return out


def group_exposure(groups: NDArray[np.int64], n_groups: int) -> NDArray[np.float64]:
    """Unnormalised position-discounted exposure per group code of a page (groups in order)."""
    out: NDArray[np.float64] = np.bincount(
        groups, weights=discount(groups.size), minlength=n_groups
    )[:n_groups].astype(np.float64)
    return out


def cap_violated(creators: NDArray[np.int64], cap: int, window: int) -> bool:
    """Whether some creator has more than `cap` items in a window of `window` positions."""
    k = creators.size
    w = window or k
    order = np.lexsort((np.arange(k), creators))
    c, p = creators[order], order
    if k <= cap:
        return False
    # The item `cap` places later of the same creator must be at least `w` positions away.
    same = c[cap:] == c[:-cap]
    return bool(np.any(same & (p[cap:] - p[:-cap] < w)))


def floor_need(
    params: FairnessParams,
    active: tuple[Policy, ...],
    group_names: list[str],
    target: NDArray[np.float64],
    k: int,
) -> tuple[NDArray[np.int32], NDArray[np.uint8], list[str]]:
    """Floor classes: (need[t, f] for t = 0..k, class_groups[f, g], class names).

    Cached per settings (the arrays are shared: read-only).
    """
    args = (params, active, tuple(group_names), tuple(target.tolist()), k)
    try:
        return _floor_need(*args)
    except TypeError:  # unhashable settings (a list where a tuple belongs): no cache
        return _floor_need.__wrapped__(*args)


@functools.lru_cache(maxsize=256)
def _floor_need(
    params: FairnessParams,
    active: tuple[Policy, ...],
    names: tuple[str, ...],
    target_t: tuple[float, ...],
    k: int,
) -> tuple[NDArray[np.int32], NDArray[np.uint8], list[str]]:
    group_names = list(names)
    target = np.array(target_t)
    needs: list[NDArray[np.int64]] = []
    classes: list[NDArray[np.uint8]] = []
    class_names: list[str] = []
    n_groups = len(group_names)
    t = np.arange(k + 1, dtype=np.float64)
    for pol in active:
        if pol is Policy.GROUP_FLOOR:
            codes = [group_names.index(g) for g in params.protected_groups if g in group_names]
            p = protected_share(params, group_names, target)
            if codes and p > 0:
                table, _ = fair_stats.mtable(k, p, params.fair_alpha)
                member = np.zeros(n_groups, np.uint8)
                member[codes] = 1
                needs.append(table)
                classes.append(member)
                class_names.append("group_floor")
        elif pol is Policy.GROUP_SHARES:
            for g in range(n_groups):
                if target[g] > 0:
                    member = np.zeros(n_groups, np.uint8)
                    member[g] = 1
                    needs.append(np.floor(target[g] * t + 1e-9).astype(np.int64))
                    classes.append(member)
                    class_names.append("group_shares")
    if not needs:
        need = np.zeros((k + 1, 0), np.int32)
        cls = np.zeros((0, n_groups), np.uint8)
    else:
        need = np.stack(needs, axis=1).astype(np.int32)
        cls = np.stack(classes).astype(np.uint8)
    need.flags.writeable = False
    cls.flags.writeable = False
    return need, cls, class_names


def floors_met(
    page_groups: NDArray[np.int64],
    pool_groups: NDArray[np.int64],
    need: NDArray[np.int32],
    class_groups: NDArray[np.uint8],
) -> NDArray[np.bool_]:
    """Per class: whether every prefix holds min(need, what the pool has of the class)."""
    k = page_groups.size
    n_groups = class_groups.shape[1]
    have = class_groups.astype(np.int64) @ np.bincount(pool_groups, minlength=n_groups)[:n_groups]
    counts = np.cumsum(class_groups[:, page_groups], axis=1, dtype=np.int64)
    # Prefix 0 always holds (need[0] = 0); prefixes 1..k against the page's running counts.
    out: NDArray[np.bool_] = np.all(counts >= np.minimum(need[1 : k + 1].T, have[:, None]), axis=1)
    return out


def in_groups(
    groups: NDArray[np.int64], names: tuple[str, ...], group_names: list[str]
) -> NDArray[np.bool_]:
    """Whether each item's group is one of `names` (a table look-up, not `np.isin`)."""
    table = np.zeros(max(len(group_names), 1), bool)
    for g in names:
        if g in group_names:
            table[group_names.index(g)] = True
    out: NDArray[np.bool_] = table[groups]
    return out


def intra_list_diversity(emb: NDArray[np.float32] | None) -> float:
    """Mean pairwise cosine distance (1 - cos) among the page's item vectors."""
    if emb is None or emb.shape[0] < 2 or emb.shape[1] == 0:
        return 0.0
    x = emb.astype(np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    x = x * np.divide(1.0, np.sqrt(sq), out=np.zeros_like(sq), where=sq > 0)[:, None]
    # Sum of pairwise cosines = |sum of unit vectors|^2 - sum of self-similarities.
    total = x.sum(axis=0)
    m = x.shape[0]
    pair_sum = float(total @ total) - float((sq > 0).sum())
    return float(1.0 - pair_sum / (m * (m - 1)))


def measure(
    scores: NDArray[np.float32],
    creators: NDArray[np.int64],
    groups: NDArray[np.int64],
    chosen: NDArray[np.int64],
    ideal: NDArray[np.int64],
    params: FairnessParams,
    *,
    group_names: list[str],
    target_share: NDArray[np.float64],
    page_embeddings: NDArray[np.float32] | None = None,
    window_share: NDArray[np.float64] | None = None,
    prices: NDArray[np.float64] | None = None,
    floors: tuple[NDArray[np.int32], NDArray[np.uint8], list[str]] | None = None,
    active: tuple[Policy, ...] | None = None,
) -> FairnessReport:
    """Fairness figures of a page (`chosen`) against the unconstrained top (`ideal`).

    `target_share` is the per-group target (already resolved from `params`); `floors` is
    `floor_need`'s result for it when the caller has it; `page_embeddings` are the chosen
    items' vectors, in page order (for intra-list diversity).
    """
    active = params.active() if active is None else active
    k = chosen.size
    n_groups = len(group_names)
    disc = discount(k)
    total = float(disc.sum()) or 1.0
    g = groups[chosen]
    expo = group_exposure(g, n_groups) / total if k else np.zeros(n_groups)
    counts = np.bincount(g, minlength=n_groups)
    exposures = []
    ratios = []
    for code, name in enumerate(group_names):
        target = float(target_share[code]) if code < target_share.size else 0.0
        exposures.append(
            GroupExposure(
                name,
                int(counts[code]),
                float(expo[code]),
                target,
                float(window_share[code]) if window_share is not None else 0.0,
                float(prices[code]) if prices is not None else 0.0,
            )
        )
        if target > 0:
            ratios.append(float(expo[code]) / target)
    gains = np.maximum(scores.astype(np.float64), 0.0)
    ideal_dcg = float((gains[ideal] * disc).sum())
    dcg = float((gains[chosen] * disc).sum())
    retained = dcg / ideal_dcg if ideal_dcg > 0 else 1.0
    c = creators[chosen]
    per_creator = np.unique(c, return_counts=True)[1]
    max_per = int(per_creator.max()) if k else 0
    relaxed = []
    if Policy.CREATOR_CAP in active and cap_violated(
        c, params.max_per_creator, params.creator_window
    ):
        relaxed.append("creator_cap")
    need, class_groups, names = floors or floor_need(params, active, group_names, target_share, k)
    if names:
        met = floors_met(g, groups, need, class_groups)
        relaxed.extend(
            dict.fromkeys(n for n, ok in zip(names, met.tolist(), strict=True) if not ok)
        )
    p = protected_share(params, group_names, target_share)
    fair_ok, alpha_c = True, params.fair_alpha
    if p > 0 and k and any(x in group_names for x in params.protected_groups):
        protected = in_groups(g, params.protected_groups, group_names)
        fair_ok, alpha_c = fair_stats.passes(protected, p, params.fair_alpha)
    return FairnessReport(
        policy=params.policy,
        groups=exposures,
        max_items_per_creator=max_per,
        distinct_creators=int(per_creator.size),
        min_exposure_ratio=float(min(ratios)) if ratios else 1.0,
        dcg_retained=retained,
        constraints_satisfied=not relaxed,
        policies=active,
        max_exposure_ratio=float(max(ratios)) if ratios else 1.0,
        fair_test_passed=fair_ok,
        fair_alpha_adjusted=alpha_c,
        intra_list_diversity=intra_list_diversity(page_embeddings),
        ndcg_loss=1.0 - retained,
        relaxed=tuple(relaxed),
    )
