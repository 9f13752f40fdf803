"""The fairness stage as it was before its per-request overhead was cut: the oracle for the
parity tests (tests/test_fairness_report_parity.py). Kept verbatim apart from names; the
shared pieces whose code did not change (`discount`, `floor_need`, `select`, `targets`,
`mtable`) come from the package.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from server.pipeline.fairness import fair_stats, select
from server.pipeline.fairness.params import targets
from server.pipeline.fairness.report import discount, floor_need
from server.pipeline.fairness.select import LIFTED
from server.pipeline.types import FairnessParams, FairnessReport, GroupExposure, Page, Policy


def ref_protected_share(
    params: FairnessParams, group_names: list[str], target: NDArray[np.float64]
) -> float:
    if params.min_protected_share > 0:
        return params.min_protected_share
    codes = [group_names.index(g) for g in params.protected_groups if g in group_names]
    return float(min(1.0, target[codes].sum())) if codes else 0.0


# ---- report.py ----


def ref_group_exposure(groups: NDArray[np.int64], n_groups: int) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.bincount(
        groups, weights=discount(groups.size), minlength=n_groups
    )[:n_groups].astype(np.float64)
    return out


def ref_cap_violated(creators: NDArray[np.int64], cap: int, window: int) -> bool:
    k = creators.size
    w = window or k
    order = np.lexsort((np.arange(k), creators))
    c, p = creators[order], order
    if k <= cap:
        return False
    same = c[cap:] == c[:-cap]
    return bool(np.any(same & (p[cap:] - p[:-cap] < w)))


def ref_floors_met(
    page_groups: NDArray[np.int64],
    pool_groups: NDArray[np.int64],
    need: NDArray[np.int32],
    class_groups: NDArray[np.uint8],
) -> NDArray[np.bool_]:
    k = page_groups.size
    n_groups = class_groups.shape[1]
    have = class_groups.astype(np.int64) @ np.bincount(pool_groups, minlength=n_groups)[:n_groups]
    counts = np.cumsum(class_groups[:, page_groups], axis=1, dtype=np.int64)
    out: NDArray[np.bool_] = np.all(counts >= np.minimum(need[1 : k + 1].T, have[:, None]), axis=1)
    return out


def ref_in_groups(
    groups: NDArray[np.int64], names: tuple[str, ...], group_names: list[str]
) -> NDArray[np.bool_]:
    table = np.zeros(max(len(group_names), 1), bool)
    for g in names:
        if g in group_names:
            table[group_names.index(g)] = True
    out: NDArray[np.bool_] = table[groups]
    return out


def ref_intra_list_diversity(emb: NDArray[np.float32] | None) -> float:
    if emb is None or emb.shape[0] < 2 or emb.shape[1] == 0:
        return 0.0
    x = emb.astype(np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    x = x * np.divide(1.0, np.sqrt(sq), out=np.zeros_like(sq), where=sq > 0)[:, None]
    total = x.sum(axis=0)
    m = x.shape[0]
    pair_sum = float(total @ total) - float((sq > 0).sum())
    return float(1.0 - pair_sum / (m * (m - 1)))


def ref_passes(protected: NDArray[np.bool_], p: float, alpha: float) -> tuple[bool, float]:
    k = protected.size
    table, a = fair_stats.mtable(k, p, alpha)
    counts = np.concatenate(([0], np.cumsum(protected)))
    return bool(np.all(counts >= table)), a


def reference_measure(
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
    active = params.active() if active is None else active
    k = chosen.size
    n_groups = len(group_names)
    disc = discount(k)
    total = float(disc.sum()) or 1.0
    g = groups[chosen]
    expo = ref_group_exposure(g, n_groups) / total if k else np.zeros(n_groups)
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
    if Policy.CREATOR_CAP in active and ref_cap_violated(
        c, params.max_per_creator, params.creator_window
    ):
        relaxed.append("creator_cap")
    need, class_groups, names = floors or floor_need(params, active, group_names, target_share, k)
    if names:
        met = ref_floors_met(g, groups, need, class_groups)
        relaxed.extend(
            dict.fromkeys(n for n, ok in zip(names, met.tolist(), strict=True) if not ok)
        )
    p = ref_protected_share(params, group_names, target_share)
    fair_ok, alpha_c = True, params.fair_alpha
    if p > 0 and k and any(x in group_names for x in params.protected_groups):
        protected = ref_in_groups(g, params.protected_groups, group_names)
        fair_ok, alpha_c = ref_passes(protected, p, params.fair_alpha)
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
        intra_list_diversity=ref_intra_list_diversity(page_embeddings),
        ndcg_loss=1.0 - retained,
        relaxed=tuple(relaxed),
    )


# ---- exposure.py ----


class ReferenceExposureTracker:
    """Sliding-window group exposure and per-group dual prices, keyed by group name."""

    def __init__(self, window: int = 1000) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._lock = threading.Lock()
        self._pages: deque[dict[str, float]] = deque()
        self._sum: dict[str, float] = {}
        self._price: dict[str, float] = {}
        self._creator_key = ""
        self._creator_sum: NDArray[np.float64] = np.zeros(0)
        self._creator_total = 0.0
        self._creator_seen = 0  # highest creator code recorded + 1
        self._creator_pages: deque[tuple[NDArray[np.int64], NDArray[np.float64]]] = deque()

    def creator_price(
        self, key: str, creators: NDArray[np.int64], n_creators: int = 0
    ) -> NDArray[np.float64]:
        """Creator-level exposure term of each given creator, in [-1, 1].

        `1 - e_c / m`, clipped to [-1, 1]: `e_c` is the creator's position-discounted exposure
        over the window's pages and `m` the mean over `n_creators` creators (the catalogue's;
        at least every creator code seen). +1 for a creator not shown in the window, 0 at the
        mean, -1 at twice the mean or more. Zeros before any page is recorded. `key` names the
        creator-code space (the snapshot version); a new key starts afresh.
        """
        with self._lock:
            if key != self._creator_key or self._creator_total <= 0:
                return np.zeros(creators.size)
            mean = self._creator_total / max(n_creators, self._creator_seen)
            load = np.zeros(creators.size)
            inside = creators < self._creator_sum.size
            load[inside] = self._creator_sum[creators[inside]]
            out: NDArray[np.float64] = np.clip(1.0 - load / mean, -1.0, 1.0)
            return out

    def record_creators(
        self, key: str, creators: NDArray[np.int64], exposure: NDArray[np.float64]
    ) -> None:
        """Add one page's per-position exposure of its creators (snapshot creator codes)."""
        with self._lock:
            if key != self._creator_key:
                self._creator_key = key
                self._creator_sum = np.zeros(0)
                self._creator_total = 0.0
                self._creator_seen = 0
                self._creator_pages.clear()
            top = int(creators.max()) + 1 if creators.size else 0
            self._creator_seen = max(self._creator_seen, top)
            if top > self._creator_sum.size:
                grown = np.zeros(max(top, 2 * self._creator_sum.size))
                grown[: self._creator_sum.size] = self._creator_sum
                self._creator_sum = grown
            np.add.at(self._creator_sum, creators, exposure)
            self._creator_total += float(exposure.sum())
            self._creator_pages.append((creators.copy(), exposure.copy()))
            while len(self._creator_pages) > self.window:
                c, e = self._creator_pages.popleft()
                np.subtract.at(self._creator_sum, c, e)
                self._creator_total -= float(e.sum())

    def prices(self, group_names: list[str]) -> NDArray[np.float64]:
        with self._lock:
            return np.array([self._price.get(g, 0.0) for g in group_names])

    def window_shares(self, group_names: list[str]) -> NDArray[np.float64]:
        with self._lock:
            total = sum(self._sum.values())
            if total <= 0:
                return np.zeros(len(group_names))
            return np.array([self._sum.get(g, 0.0) / total for g in group_names])

    @property
    def pages(self) -> int:
        with self._lock:
            return len(self._pages)

    def record(
        self,
        group_names: list[str],
        exposure: NDArray[np.float64],
        target: NDArray[np.float64],
        *,
        step: float,
        max_price: float,
        update_prices: bool = True,
        aim: float = 1.0,
    ) -> None:
        """Add one page's exposure per group (unnormalised) and take a price step.

        The prices aim at `aim * target`: a group's price rises while its page share is below
        that and falls while above.
        """
        total = float(exposure.sum())
        if total <= 0:
            return
        page = {g: float(e) for g, e in zip(group_names, exposure.tolist(), strict=True)}
        with self._lock:
            self._pages.append(page)
            for g, e in page.items():
                self._sum[g] = self._sum.get(g, 0.0) + e
            while len(self._pages) > self.window:
                for g, e in self._pages.popleft().items():
                    self._sum[g] -= e
            if update_prices:
                for g, e, t in zip(group_names, exposure.tolist(), target.tolist(), strict=True):
                    a = aim * t
                    if a <= 0:
                        continue
                    gap = (a - e / total) / a  # relative shortfall of this page
                    p = self._price.get(g, 0.0) + step * gap
                    self._price[g] = min(max(p, 0.0), max_price)


# ---- __init__.py ----


def ref_relevance(scores: NDArray[np.float32]) -> NDArray[np.float64]:
    """Scores mapped to [0, 1] (min-max over the candidates; all equal -> all 1)."""
    s = scores.astype(np.float64)
    if s.size == 0:
        return s
    lo, hi = float(s.min()), float(s.max())
    if hi - lo <= 0:
        return np.ones_like(s)
    out: NDArray[np.float64] = (s - lo) / (hi - lo)
    return out


def reference_rerank(
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
    tracker: ReferenceExposureTracker | None = None,
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
    order = np.lexsort((tiebreak, -scores.astype(np.float64)))
    prices = tracker.prices(group_names) if tracker is not None else None
    floors = None
    if not active:
        chosen = order[:k].astype(np.int64)
        flags = 0
    else:
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n)
        base = ref_relevance(scores)
        rel = base
        if Policy.AMORTISED_EXPOSURE in active and tracker is not None and prices is not None:
            rel = rel + prices[groups]
            if params.creator_exposure_weight > 0:
                term = tracker.creator_price(creator_key, creators, n_creators)
                rel = rel + params.creator_exposure_weight * term
        cap, window = k or 1, k or 1
        if Policy.CREATOR_CAP in active:
            cap, window = params.max_per_creator, params.creator_window or (k or 1)
        mult = np.ones(k + 1)
        if Policy.CREATOR_DECAY in active:
            j = np.arange(k + 1, dtype=np.float64)
            mult = (1.0 - params.repeat_decay_floor) * params.repeat_decay**j
            mult += params.repeat_decay_floor
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
            cold = ref_in_groups(groups, names, group_names) & (
                base >= params.cold_start_min_relevance
            )
            cold_pos = params.cold_start_position - 1
        floor_first = _declared_before(active, (Policy.GROUP_FLOOR, Policy.GROUP_SHARES))
        chosen, flags = select(
            rel, creators.astype(np.int64), groups.astype(np.int64), rank, emb, k,
            cap=cap, window=window,
            mult=mult, lam=lam, need=need, class_groups=class_groups, cold_eligible=cold,
            cold_pos=cold_pos, floor_over_cap=floor_first, dpp_window=dpp_window,
            backend=backend,
        )  # fmt: skip
    window_share = None
    if tracker is not None:
        tracker.record(
            group_names,
            ref_group_exposure(groups[chosen], len(group_names)),
            target,
            step=params.exposure_step,
            max_price=params.max_exposure_price,
            update_prices=Policy.AMORTISED_EXPOSURE in active,
            aim=params.exposure_target_fraction,
        )
        window_share = tracker.window_shares(group_names)
        tracker.record_creators(creator_key, creators[chosen], discount(chosen.size))
    report = reference_measure(
        scores, creators, groups, chosen, order[:k], params,
        group_names=group_names, target_share=target,
        page_embeddings=_page_rows(embeddings, chosen),
        window_share=window_share, prices=prices, floors=floors, active=active,
    )  # fmt: skip
    if flags & LIFTED:
        report.cold_start_position = params.cold_start_position
    return Page(positions=chosen.astype(np.int64), scores=scores[chosen], report=report)


def _page_rows(  # type: ignore[no-untyped-def]
    embeddings, chosen: NDArray[np.int64]
):
    if embeddings is None:
        return None
    if callable(embeddings):
        return embeddings(chosen)
    return embeddings[chosen]


def _declared_before(active: tuple[Policy, ...], floors: tuple[Policy, ...]) -> bool:
    if Policy.CREATOR_CAP not in active:
        return True
    cap_at = active.index(Policy.CREATOR_CAP)
    return any(p in active and active.index(p) < cap_at for p in floors)
