"""The `Rank` pipeline: retrieval → ranking → fairness re-ranking on one snapshot reference."""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from server.errors import InvalidArgument, NotFound
from server.index.loaded import LoadedSnapshot
from server.pipeline import fairness, ranking, retrieval
from server.pipeline.budget import COSTS, RESERVE_S, Budget, timed
from server.pipeline.types import (
    Candidates,
    Event,
    FairnessParams,
    Page,
    RetrievalQuotas,
    Scores,
    UserState,
)
from server.pipeline.user_state import build_user_state


@dataclass
class RankResult:
    snapshot: LoadedSnapshot
    state: UserState
    candidates: Candidates
    scores: Scores
    page: Page
    timings_us: dict[str, int] = field(default_factory=dict)
    degradations: list[tuple[str, str]] = field(default_factory=list)

    @property
    def items(self) -> NDArray[np.int32]:
        return self.scores.items[self.page.positions]


def item_id_order(snap: LoadedSnapshot, items: NDArray[np.int32]) -> NDArray[np.int64]:
    """Rank of each item's id string among `items`: the tie-breaker 'by item id'."""
    out: NDArray[np.int64] = snap.item_ids.rank[items]
    return out


def rerank_scores(
    snap: LoadedSnapshot,
    items: NDArray[np.int32],
    scores: NDArray[np.float32],
    num_results: int,
    params: FairnessParams,
    tracker: fairness.ExposureTracker | None = None,
) -> Page:
    if not params.protected_groups and snap.protected_groups:
        params = _with_protected(params, tuple(snap.protected_groups))
    _validate(params, tuple(snap.groups))
    return fairness.rerank(
        scores,
        snap.item_creator[items].astype(np.int64),
        snap.item_group[items].astype(np.int64),
        item_id_order(snap, items),
        num_results,
        params,
        group_names=snap.groups,
        target_share=snap.group_target_share,
        # Only the page's rows unless diversity compares every candidate (a 500-row gather).
        embeddings=lambda pos: fairness.vectors(snap, items[pos], params),
        tracker=tracker,
        creator_key=snap.version,
        n_creators=len(snap.creator_ids),
    )


@functools.lru_cache(maxsize=256)
def _validate(params: FairnessParams, groups: tuple[str, ...]) -> None:
    """`fairness.validate`, remembered for valid settings (the server default is checked on
    every request otherwise); an invalid one raises and is never cached."""
    fairness.validate(params, list(groups))


@functools.lru_cache(maxsize=64)
def _with_protected(params: FairnessParams, groups: tuple[str, ...]) -> FairnessParams:
    """`params` with the snapshot's protected groups (cached: replace() costs ~50 us)."""
    return dataclasses.replace(params, protected_groups=groups)


def apply_blend(snap: LoadedSnapshot, scores: Scores, overrides: dict[str, float]) -> Scores:
    """Recompute the blended total with some weights replaced (per-request override)."""
    unknown = sorted(set(overrides) - set(signal_names(scores)))
    if unknown:
        raise InvalidArgument(
            f"unknown blend signal(s) {unknown}; known: {sorted(signal_names(scores))}"
        )
    weights = {**snap.blend_weights, **overrides}
    total = np.zeros(scores.items.size, np.float64)
    for name in signal_names(scores):
        total += weights.get(name, 0.0) * np.asarray(getattr(scores, name), np.float64)
    return dataclasses.replace(scores, total=total.astype(np.float32))


def cold_start_blend(scores: Scores) -> dict[str, float]:
    """Weights for a user with no profile: trending first, freshness as a tie-breaker."""
    weights = dict.fromkeys(signal_names(scores), 0.0)
    weights.update(popularity=1.0, freshness=0.3)
    return weights


def signal_names(scores: Scores) -> list[str]:
    """The per-signal arrays of `Scores` (every field but the items and the blended total)."""
    return [f.name for f in dataclasses.fields(scores) if f.name not in ("items", "total")]


def rank(
    snap: LoadedSnapshot,
    user_id: str,
    events: list[Event],
    exclude_ids: list[str],
    num_results: int,
    num_candidates: int,
    params: FairnessParams,
    *,
    quotas: RetrievalQuotas | None = None,
    blend: dict[str, float] | None = None,
    budget: Budget | None = None,
    tracker: fairness.ExposureTracker | None = None,
) -> RankResult:
    """Run the three stages on one snapshot; `budget` (a deadline) may make stages do less."""
    _validate(params, tuple(snap.groups))
    budget = budget or Budget()
    t0 = time.perf_counter_ns()
    state = build_user_state(snap, user_id, events, exclude_ids)
    n_cands = max(num_candidates, num_results)
    if quotas is not None:
        quotas = RetrievalQuotas.for_total(
            n_cands, known_user=not state.cold, has_events=state.positive_recent.size > 0
        ).override(**dataclasses.asdict(quotas))
    cands = retrieval.retrieve(snap, state, n_cands, quotas, budget)
    t1 = time.perf_counter_ns()
    cands = _fit_ranking_budget(cands, num_results, budget)
    with timed("ranking per 500 candidates"):
        scores = ranking.score(snap, state, cands.items)
    if blend:
        scores = apply_blend(snap, scores, blend)
    elif not np.any(state.embedding) and state.q_terms.size == 0:
        # Nothing personal to go on (unknown user, no usable events): the fitted blend is
        # about personal signals and may give popularity no weight, so rank by trend.
        scores = apply_blend(snap, scores, cold_start_blend(scores))
    t2 = time.perf_counter_ns()
    page = rerank_scores(snap, cands.items, scores.total, num_results, params, tracker)
    t3 = time.perf_counter_ns()
    timings = {
        "retrieval": (t1 - t0) // 1000,
        "ranking": (t2 - t1) // 1000,
        "reranking": (t3 - t2) // 1000,
    }
    return RankResult(snap, state, cands, scores, page, timings, budget.degradations)


def _fit_ranking_budget(cands: Candidates, num_results: int, budget: Budget) -> Candidates:
    """Keep only as many candidates as the deadline lets the ranking stage score."""
    n = cands.items.size
    if budget.deadline is None or n <= num_results:
        return cands
    per = COSTS.estimate("ranking per 500 candidates") / 500
    room = budget.left() - RESERVE_S
    fit = int(room / per) if per > 0 else n
    if fit >= n:
        return cands
    keep = max(num_results, fit)
    budget.note("ranking", f"scored {keep} of {n} candidates: {max(room, 0) * 1e3:.1f} ms left")
    return Candidates(
        cands.items[:keep], cands.sources[:keep], cands.retrieval_score[:keep], cands.source_counts
    )


def resolve_items(snap: LoadedSnapshot, item_ids: list[str]) -> NDArray[np.int32]:
    """Snapshot rows of `item_ids`; an unknown id is NOT_FOUND, naming the first few."""
    idx = snap.item_ids.lookup(item_ids)
    missing = [item_ids[j] for j in np.flatnonzero(idx < 0).tolist()]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise NotFound(
            f"item(s) not in snapshot {snap.version}: {shown}{more}", snapshot_version=snap.version
        )
    return np.asarray(idx, dtype=np.int32)
