"""Stage 3: fairness re-ranking (creator cap, protected-group floor) and the page's report.

The greedy fill walks page positions, not candidates: at each position it takes the best
remaining candidate that keeps the creator cap, or the best protected one when the protected
group is below its floor for this prefix. When the cap cannot be met (too few creators among
the candidates) the page is still filled and the report says the constraint was relaxed.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from server.errors import InvalidArgument
from server.pipeline.types import FairnessParams, FairnessReport, GroupExposure, Page, Policy


def validate(params: FairnessParams, known_groups: list[str]) -> None:
    if params.max_per_creator < 1:
        raise InvalidArgument(f"max_items_per_creator must be >= 1, got {params.max_per_creator}")
    if params.creator_window < 0:
        raise InvalidArgument(f"creator_window must be >= 0, got {params.creator_window}")
    if not 0.0 <= params.min_protected_share <= 1.0 or math.isnan(params.min_protected_share):
        raise InvalidArgument(
            f"min_protected_share must be in [0, 1], got {params.min_protected_share}"
        )
    unknown = [g for g in params.protected_groups if g not in known_groups]
    if unknown:
        raise InvalidArgument(
            f"unknown protected group(s) {unknown}; this snapshot has groups {known_groups}"
        )


def _discount(k: int) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
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
) -> Page:
    """Pick `num_results` of the inputs; returns positions into the input arrays, best first."""
    n = scores.size
    k = min(num_results, n)
    order = np.lexsort((tiebreak, -scores.astype(np.float64)))
    protected = np.zeros(n, bool)
    if params.policy is Policy.EXPOSURE:
        codes = [group_names.index(g) for g in params.protected_groups if g in group_names]
        protected = np.isin(groups, codes)
    satisfied = True
    if params.policy is Policy.NONE:
        chosen = order[:k]
    else:
        window = params.creator_window or k
        cap = params.max_per_creator
        taken = np.zeros(n, bool)
        placed: dict[int, list[int]] = {}
        picks: list[int] = []
        n_prot = 0
        prot_left = int(protected.sum())

        def fits(i: int, pos: int) -> bool:
            recent = [p for p in placed.get(int(creators[i]), ()) if p > pos - window]
            return len(recent) < cap

        for pos in range(k):
            need = (
                params.policy is Policy.EXPOSURE
                and prot_left > 0
                and n_prot < math.floor(params.min_protected_share * (pos + 1) + 1e-9)
            )
            pick = -1
            fallback = -1
            for i in order:
                if taken[i]:
                    continue
                if fallback < 0:
                    fallback = int(i)
                if need and not protected[i]:
                    continue
                if fits(int(i), pos):
                    pick = int(i)
                    break
            if pick < 0 and need:
                # No protected item fits the cap: fill with the best capped item instead.
                satisfied = False
                pick = next((int(i) for i in order if not taken[i] and fits(int(i), pos)), -1)
            if pick < 0:
                satisfied = False
                pick = fallback
            taken[pick] = True
            picks.append(pick)
            placed.setdefault(int(creators[pick]), []).append(pos)
            if protected[pick]:
                n_prot += 1
                prot_left -= 1
        chosen = np.asarray(picks, dtype=np.int64)
    report = measure(
        scores,
        creators,
        groups,
        chosen,
        order[:k],
        params,
        group_names=group_names,
        target_share=target_share,
    )
    report.constraints_satisfied = report.constraints_satisfied and satisfied
    return Page(positions=chosen.astype(np.int64), scores=scores[chosen], report=report)


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
) -> FairnessReport:
    """Fairness figures of a page (`chosen`) against the unconstrained top (`ideal`)."""
    k = chosen.size
    disc = _discount(k)
    total = float(disc.sum()) or 1.0
    g = groups[chosen]
    exposures = []
    ratios = []
    for code, name in enumerate(group_names):
        mask = g == code
        share = float(disc[mask].sum()) / total if k else 0.0
        target = float(target_share[code]) if code < target_share.size else 0.0
        exposures.append(GroupExposure(name, int(mask.sum()), share, target))
        if target > 0:
            ratios.append(share / target)
    gains = np.maximum(scores.astype(np.float64), 0.0)
    ideal_dcg = float((gains[ideal] * disc).sum())
    dcg = float((gains[chosen] * disc).sum())
    c = creators[chosen]
    max_per = int(np.bincount(np.unique(c, return_inverse=True)[1]).max()) if k else 0
    ok = True
    if params.policy is not Policy.NONE and k:
        window = params.creator_window or k
        for start in range(max(1, k - window + 1)):
            _, cnt = np.unique(c[start : start + window], return_counts=True)
            if cnt.max() > params.max_per_creator:
                ok = False
                break
    return FairnessReport(
        policy=params.policy,
        groups=exposures,
        max_items_per_creator=max_per,
        distinct_creators=int(np.unique(c).size),
        min_exposure_ratio=float(min(ratios)) if ratios else 1.0,
        dcg_retained=dcg / ideal_dcg if ideal_dcg > 0 else 1.0,
        constraints_satisfied=ok,
    )
