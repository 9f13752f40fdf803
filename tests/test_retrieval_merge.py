"""The retrieval merge (``_core.merge_sources``) against the numpy code it replaced.

The reference is the merge ``retrieval.retrieve`` ran before it moved to Rust: each source's
ids less the excluded ones (``in_sorted``), cut to the source's quota, concatenated, then
``np.unique(return_index, return_inverse)``, ``np.bitwise_or.at``, ``np.maximum.at`` and a
stable argsort of the first positions. Results must match exactly (scores bit for bit,
including signed zeros and NaN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from server import _core
from server.index.loaded import LoadedSnapshot, open_snapshot
from server.index.sorted_sets import in_sorted
from server.pipeline import retrieval
from server.pipeline.types import Candidates, Event, RetrievalQuotas, Source
from server.pipeline.user_state import build_user_state
from tests.retrieval_reference import Part, reference_merge

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Few distinct values: exact ties, signed zeros and NaN (np.maximum propagates it).
SCORES = [0.0, -0.0, 0.5, 0.25, 1.0, -1.0, float("nan"), float("inf")]


def check_same(got: tuple[Any, ...], want: tuple[Any, ...]) -> None:
    items, bits, scores, counts = got
    assert items.dtype == np.int32 and bits.dtype == np.uint8 and scores.dtype == np.float32
    np.testing.assert_array_equal(items, want[0])
    np.testing.assert_array_equal(bits, want[1])
    # bit for bit: -0.0 vs 0.0 and NaN payloads included
    np.testing.assert_array_equal(scores.view(np.uint32), want[2].view(np.uint32))
    assert counts.tolist() == want[3]


@st.composite
def sources(draw: st.DrawFn) -> tuple[list[Part], NDArray[np.int32], int]:
    id_range = draw(st.sampled_from([5, 40, 2000]))  # small ranges: many duplicates
    parts: list[Part] = []
    for s in range(draw(st.integers(0, 6))):
        n = draw(st.integers(0, 40))
        ids = draw(st.lists(st.integers(0, id_range), min_size=n, max_size=n))
        if draw(st.booleans()):  # a precomputed list or a search: unique ids
            ids = list(dict.fromkeys(ids))
        dtype = draw(st.sampled_from([np.int32, np.int64]))
        scores = [draw(st.sampled_from(SCORES)) for _ in ids]
        limit = draw(st.integers(0, 45))
        parts.append((1 << s, np.array(ids, dtype), np.array(scores, np.float32), limit))
    excluded = np.array(
        sorted(draw(st.sets(st.integers(0, id_range), max_size=30))), dtype=np.int32
    )
    return parts, excluded, draw(st.integers(0, 120))


@SETTINGS
@given(case=sources())
def test_merge_matches_the_numpy_reference(case: tuple[list[Part], NDArray[np.int32], int]) -> None:
    parts, excluded, n = case
    got = _core.merge_sources([(p[1], p[2], p[0], p[3]) for p in parts], excluded, n)
    check_same(got, reference_merge(parts, excluded, n))


def test_merge_of_wide_ids_follows_numpy() -> None:
    """Ids beyond int32 (never real item ids) are merged as int64, then cast, like numpy."""
    parts: list[Part] = [
        (1, np.array([7, 8], np.int32), np.array([1.0, 1.0], np.float32), 5),
        (2, np.array([(1 << 32) + 7, 7], np.int64), np.array([3.0, 2.0], np.float32), 5),
    ]
    excluded = np.array([8], np.int32)
    got = _core.merge_sources([(p[1], p[2], p[0], p[3]) for p in parts], excluded, 5)
    check_same(got, reference_merge(parts, excluded, 5))


def test_merge_argument_errors() -> None:
    ids, sc = np.array([1, 2], np.int64), np.ones(2, np.float32)
    ex = np.zeros(0, np.int32)
    with pytest.raises(ValueError, match="excluded must be strictly increasing"):
        _core.merge_sources([(ids, sc, 1, 2)], np.array([3, 1], np.int32), 5)
    with pytest.raises(ValueError, match="source 0: ids and scores must have the same length"):
        _core.merge_sources([(ids, sc[:1], 1, 2)], ex, 5)
    with pytest.raises(TypeError, match="source 0: ids must be a 1-D numpy array of dtype int32"):
        _core.merge_sources([(ids.astype(np.float64), sc, 1, 2)], ex, 5)
    with pytest.raises(TypeError, match=r"source 0: scores must be .* float32"):
        _core.merge_sources([(ids, sc.astype(np.float64), 1, 2)], ex, 5)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        _core.merge_sources([(ids, sc, 1, -1)], ex, 5)
    with pytest.raises(ValueError, match="num_candidates must be >= 0"):
        _core.merge_sources([(ids, sc, 1, 2)], ex, -1)
    items, bits, scores, counts = _core.merge_sources([], ex, 5)
    assert items.size == bits.size == scores.size == counts.size == 0


# ----------------------------------------------------------------------------- retrieve


@pytest.fixture(scope="module")
def snap(built: dict[str, Any]) -> LoadedSnapshot:
    return open_snapshot(Path(built["path"]))


def reference_stored(
    snap: LoadedSnapshot, state: Any, source: str, quota: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """A user's precomputed list filtered in numpy, as `retrieve` read it before the merge
    filtered it: None (search online) when fewer than `quota` ids are left, unless it is a
    keyword list shorter than the build's k (every match there was)."""
    cands = snap.user_candidates
    if not state.stored_query or state.user_index is None or not cands.has(source):
        return None
    stored, scores = cands.get(source, state.user_index)
    ids = stored.astype(np.int64)
    complete = source == "keyword" and ids.size < cands.k[source]
    keep = ~in_sorted(ids, state.excluded)
    if int(keep.sum()) < quota and not complete:
        return None
    return ids[keep][:quota], scores[keep][:quota]


def reference_retrieve(snap: LoadedSnapshot, state: Any, num_candidates: int) -> Candidates:
    """`retrieve` as it was before the Rust merge: pools filtered in numpy, then the numpy
    merge (the searched sources' functions are unchanged and already filter)."""
    q = RetrievalQuotas.for_total(
        num_candidates, known_user=not state.cold, has_events=state.positive_recent.size > 0
    )
    ex = state.excluded
    parts: list[Part] = []
    ann = q.ann > 0 and np.any(state.embedding)
    keyword = q.keyword > 0 and state.q_terms.size > 0
    searched = [
        (
            Source.ANN,
            (ann and reference_stored(snap, state, "ann", q.ann))
            or retrieval._ann(snap, state, q.ann),
        ),
        (
            Source.KEYWORD,
            (keyword and reference_stored(snap, state, "keyword", q.keyword))
            or retrieval._keyword(snap, state, q.keyword),
        ),
        (Source.ITEM_NEIGHBOR, retrieval._neighbors(snap, state, q.item_neighbor)),
    ]
    for src, (ids, scores) in searched:
        parts.append((int(src), ids, scores, ids.size))
    for src, name, quota in (
        (Source.POPULAR, "popular", q.popular),
        (Source.FRESH, "fresh", q.fresh),
        (Source.COLD_START, "cold_start", q.cold_start),
    ):
        ids = np.zeros(0, np.int64)
        if quota > 0:
            head = snap.pools[name][: quota + ex.size].astype(np.int64)
            ids = (head[~in_sorted(head, ex)] if ex.size else head)[:quota]
        pop = np.asarray(snap.item_popularity[ids], np.float32)
        parts.append((int(src), ids, pop, ids.size))
    items, bits, best, counts = reference_merge(parts, ex, num_candidates)
    by_source = {Source(p[0]): c for p, c in zip(parts, counts, strict=True)}
    return Candidates(items, bits, best, by_source)


def test_retrieve_matches_the_numpy_pipeline(snap: LoadedSnapshot) -> None:
    popular = snap.pools["popular"]
    used = 0
    for u in range(0, snap.n_users, 5):
        uid = snap.user_ids[u]
        # every third user also excludes the head of the popular pool, and some carry events
        exclude = [snap.item_ids[int(i)] for i in popular[: 10 * (u % 3)]]
        events = []
        if u % 4 == 1:
            item = snap.item_ids[int(popular[u % popular.size])]
            events = [Event(item_id=item, event_type="like", timestamp=1.0, watch_ratio=1.0)]
        state = build_user_state(snap, uid, events, exclude)
        for n in (7, 60, 500):
            got = retrieval.retrieve(snap, state, n)
            want = reference_retrieve(snap, state, n)
            np.testing.assert_array_equal(got.items, want.items)
            np.testing.assert_array_equal(got.sources, want.sources)
            np.testing.assert_array_equal(
                got.retrieval_score.view(np.uint32), want.retrieval_score.view(np.uint32)
            )
            assert got.source_counts == want.source_counts
            assert not np.isin(got.items, state.excluded).any()
            used += got.items.size > 0
    anonymous = build_user_state(snap, "", [], [])
    got, want = retrieval.retrieve(snap, anonymous, 50), reference_retrieve(snap, anonymous, 50)
    np.testing.assert_array_equal(got.items, want.items)
    assert got.source_counts == want.source_counts
    assert used > 100
