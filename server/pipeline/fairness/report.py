"""The fairness report of one page (`measure`)."""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray

from server.pipeline.fairness import fair_stats
from server.pipeline.fairness.params import protected_share
from server.pipeline.types import FairnessParams, FairnessReport, GroupExposure, Policy

_DISCOUNT: NDArray[np.float64] = 1.0 / np.log2(np.arange(2, 1002, dtype=np.float64))
_DISCOUNT.flags.writeable = False
# The same discounts as Python floats, and `float(discount(k).sum())` (numpy's pairwise sum,
# so exactly the old total) per k met: a page's report works on 20-element lists.
_DISCOUNT_LIST: list[float] = _DISCOUNT.tolist()
_DISCOUNT_TOTAL: dict[int, float] = {}


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


def _discounts(k: int) -> tuple[list[float], float]:
    """(discount(k) as floats, its numpy sum or 1.0 when that is 0)."""
    total = _DISCOUNT_TOTAL.get(k)
    if total is None:
        total = float(discount(k).sum()) or 1.0
        if k <= _DISCOUNT.size:
            _DISCOUNT_TOTAL[k] = total
    disc = _DISCOUNT_LIST[:k] if k <= _DISCOUNT.size else discount(k).tolist()
    return disc, total


def cap_violated(creators: NDArray[np.int64], cap: int, window: int) -> bool:
    """Whether some creator has more than `cap` (>= 1) items in a window of `window` positions
    (0: the whole page)."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    return _creator_stats(creators.tolist(), cap, window)[2]


def _creator_stats(creators: list[int], cap: int, window: int) -> tuple[int, int, bool]:
    """(most items of one creator, distinct creators, whether the cap is violated) in one
    pass over a page's creators; `cap` 0 skips the cap check."""
    w = window or len(creators)
    violated = False
    seen: dict[int, list[int]] = {}
    for pos, c in enumerate(creators):
        at = seen.get(c)
        if at is None:
            seen[c] = [pos]
            continue
        at.append(pos)
        # The item `cap` places later of the same creator must be at least `w` positions away.
        if cap and len(at) > cap and pos - at[-1 - cap] < w:
            violated = True
    most = max(map(len, seen.values())) if seen else 0
    return most, len(seen), violated


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
    global _floor_need_last
    args = (params, active, tuple(group_names), tuple(target.tolist()), k)
    # The last settings first: a server sends most pages with the same ones, and comparing
    # them (the same objects) is cheaper than hashing the 20-field params for the LRU cache.
    last = _floor_need_last
    if last is not None and last[0] == args:
        return last[1]
    try:
        out = _floor_need(*args)
    except TypeError:  # unhashable settings (a list where a tuple belongs): no cache
        return _floor_need.__wrapped__(*args)
    _floor_need_last = (args, out)
    return out


_floor_need_last: (
    tuple[
        tuple[FairnessParams, tuple[Policy, ...], tuple[str, ...], tuple[float, ...], int],
        tuple[NDArray[np.int32], NDArray[np.uint8], list[str]],
    ]
    | None
) = None


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
    met = _floors_met(page_groups.tolist(), pool_groups, need, class_groups)
    return np.array(met, dtype=bool).reshape(len(met))


def _floors_met(
    page_groups: list[int],
    pool_groups: NDArray[np.int64],
    need: NDArray[np.int32],
    class_groups: NDArray[np.uint8],
) -> list[bool]:
    k = len(page_groups)
    have: list[int] | None = None  # per class: items of the pool (only looked at if short)
    out = []
    # Prefix 0 always holds (need[0] = 0); prefixes 1..k against the page's running counts.
    members = class_groups.tolist()
    for f, (member, row) in enumerate(zip(members, need[1 : k + 1].T.tolist(), strict=True)):
        count, ok = 0, True
        for code, n in zip(page_groups, row, strict=True):
            count += member[code]
            if count < n:
                if have is None:
                    n_groups = class_groups.shape[1]
                    pool = np.bincount(pool_groups, minlength=n_groups)[:n_groups].tolist()
                    have = [sum(m * c for m, c in zip(cls, pool, strict=True)) for cls in members]
                if count < have[f]:
                    ok = False
                    break
        out.append(ok)
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
    m = x.shape[0]
    if np.minimum.reduce(sq) > 0:  # no zero (or NaN) row: every row has a direction
        x *= (1.0 / np.sqrt(sq))[:, None]
        n_unit = m
    else:  # zero rows stay zero
        sq_list = sq.tolist()
        inv = [1.0 / math.sqrt(v) if v > 0 else 0.0 for v in sq_list]
        x *= np.array(inv)[:, None]
        n_unit = sum(v > 0 for v in sq_list)
    # Sum of pairwise cosines = |sum of unit vectors|^2 - sum of self-similarities.
    total = x.sum(axis=0)
    pair_sum = float(total @ total) - float(n_unit)
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
    k = int(chosen.size)
    n_groups = len(group_names)
    disc, total = _discounts(k)
    g = groups[chosen].tolist()
    size = n_groups
    if g:
        if min(g) < 0:
            raise ValueError(f"group codes must be non-negative, got {min(g)}")
        size = max(size, max(g) + 1)  # codes past the names count for no group
    # Position-discounted exposure per group, accumulated in page order (as np.bincount does).
    expo = [0.0] * size
    counts = [0] * size
    for code, d in zip(g, disc, strict=True):
        expo[code] += d
        counts[code] += 1
    targets = target_share.tolist()
    windows = window_share.tolist() if window_share is not None else None
    price_list = prices.tolist() if prices is not None else None
    exposures = []
    ratios = []
    for code, name in enumerate(group_names):
        target = float(targets[code]) if code < len(targets) else 0.0
        share = expo[code] / total
        exposures.append(
            GroupExposure(
                name,
                counts[code],
                share,
                target,
                float(windows[code]) if windows is not None else 0.0,
                float(price_list[code]) if price_list is not None else 0.0,
            )
        )
        if target > 0:
            ratios.append(share / target)
    retained = _dcg_retained(scores, chosen, ideal, k)
    capped = Policy.CREATOR_CAP in active
    if capped and params.max_per_creator < 1:
        raise ValueError(f"cap must be >= 1, got {params.max_per_creator}")
    max_per, distinct, violated = _creator_stats(
        creators[chosen].tolist(), params.max_per_creator if capped else 0, params.creator_window
    )
    relaxed = ["creator_cap"] if violated else []
    if floors is None and (Policy.GROUP_FLOOR in active or Policy.GROUP_SHARES in active):
        floors = floor_need(params, active, group_names, target_share, k)
    if floors is not None and floors[2]:
        need, class_groups, names = floors
        met = _floors_met(g, groups, need, class_groups)
        relaxed.extend(dict.fromkeys(n for n, ok in zip(names, met, strict=True) if not ok))
    fair_ok, alpha_c = True, params.fair_alpha
    if k and any(x in group_names for x in params.protected_groups):
        p = protected_share(params, group_names, target_share)
        if p > 0:
            codes = {group_names.index(x) for x in params.protected_groups if x in group_names}
            protected = [x in codes for x in g]
            fair_ok, alpha_c = fair_stats.passes_flags(protected, p, params.fair_alpha)
    return FairnessReport(
        policy=params.policy,
        groups=exposures,
        max_items_per_creator=max_per,
        distinct_creators=distinct,
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


def _dcg_retained(
    scores: NDArray[np.float32], chosen: NDArray[np.int64], ideal: NDArray[np.int64], k: int
) -> float:
    """DCG of `chosen` over DCG of `ideal` (gains: scores clipped at 0; 1 when the ideal is 0).

    Both sums in one numpy reduction over a (2, k) array: row sums are numpy's pairwise sums,
    bit-identical to summing each row alone."""
    if ideal.size == k:
        gains = np.maximum(scores[np.concatenate((ideal, chosen))].astype(np.float64), 0.0)
        rows = gains.reshape(2, k)
        rows *= _DISCOUNT[:k] if k <= _DISCOUNT.size else discount(k)
        ideal_dcg, dcg = np.add.reduce(rows, axis=1).tolist()
    else:  # broadcasting as the element-wise products allow (or raise)
        gains = np.maximum(scores.astype(np.float64), 0.0)
        disc = discount(k)
        ideal_dcg = float((gains[ideal] * disc).sum())
        dcg = float((gains[chosen] * disc).sum())
    return float(dcg / ideal_dcg) if ideal_dcg > 0 else 1.0
