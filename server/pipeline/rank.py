"""The `Rank` pipeline: retrieval → ranking → fairness re-ranking on one snapshot reference."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from server.errors import NotFound
from server.index.loaded import LoadedSnapshot
from server.pipeline import fairness, ranking, retrieval
from server.pipeline.types import Candidates, Event, FairnessParams, Page, Scores, Source, UserState
from server.pipeline.user_state import build_user_state


@dataclass
class RankResult:
    snapshot: LoadedSnapshot
    state: UserState
    candidates: Candidates
    scores: Scores
    page: Page
    timings_us: dict[str, int] = field(default_factory=dict)

    @property
    def items(self) -> NDArray[np.int32]:
        return self.scores.items[self.page.positions]


def item_id_order(snap: LoadedSnapshot, items: NDArray[np.int32]) -> NDArray[np.int64]:
    """Rank of each item's id string among `items`: the tie-breaker 'by item id'."""
    ids = np.array([snap.item_ids[i] for i in items.tolist()], dtype=str)
    out: NDArray[np.int64] = np.argsort(np.argsort(ids, kind="stable"), kind="stable")
    return out


def rerank_scores(
    snap: LoadedSnapshot,
    items: NDArray[np.int32],
    scores: NDArray[np.float32],
    num_results: int,
    params: FairnessParams,
) -> Page:
    if not params.protected_groups and snap.protected_groups:
        params = dataclasses.replace(params, protected_groups=tuple(snap.protected_groups))
    fairness.validate(params, snap.groups)
    return fairness.rerank(
        scores,
        snap.item_creator[items].astype(np.int64),
        snap.item_group[items].astype(np.int64),
        item_id_order(snap, items),
        num_results,
        params,
        group_names=snap.groups,
        target_share=snap.group_target_share,
    )


def rank(
    snap: LoadedSnapshot,
    user_id: str,
    events: list[Event],
    exclude_ids: list[str],
    num_results: int,
    num_candidates: int,
    params: FairnessParams,
) -> RankResult:
    fairness.validate(params, snap.groups)
    t0 = time.perf_counter_ns()
    state = build_user_state(snap, user_id, events, exclude_ids)
    cands = retrieval.retrieve(snap, state, max(num_candidates, num_results))
    t1 = time.perf_counter_ns()
    scores = ranking.score(snap, state, cands.items)
    t2 = time.perf_counter_ns()
    page = rerank_scores(snap, cands.items, scores.total, num_results, params)
    t3 = time.perf_counter_ns()
    timings = {
        "retrieval": (t1 - t0) // 1000,
        "ranking": (t2 - t1) // 1000,
        "reranking": (t3 - t2) // 1000,
    }
    return RankResult(snap, state, cands, scores, page, timings)


def resolve_items(snap: LoadedSnapshot, item_ids: list[str]) -> NDArray[np.int32]:
    """Snapshot rows of `item_ids`; an unknown id is NOT_FOUND, naming the first few."""
    idx = [snap.item_index.get(i, -1) for i in item_ids]
    missing = [item_ids[j] for j, i in enumerate(idx) if i < 0]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise NotFound(
            f"item(s) not in snapshot {snap.version}: {shown}{more}", snapshot_version=snap.version
        )
    return np.asarray(idx, dtype=np.int32)


SOURCE_ORDER = (Source.ANN, Source.KEYWORD, Source.POPULAR, Source.FRESH, Source.COLD_START)
