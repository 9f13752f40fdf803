"""Precomputed per-user retrieval lists against the online searches they stand in for."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from server.index import builder
from server.index.loaded import LoadedSnapshot, open_snapshot
from server.pipeline import retrieval
from server.pipeline.types import Event, RetrievalQuotas
from server.pipeline.user_state import build_user_state


@pytest.fixture(scope="module")
def snap(built: dict[str, Any]) -> LoadedSnapshot:
    return open_snapshot(Path(built["path"]))


def _online(state: Any) -> Any:
    return dataclasses.replace(state, stored_query=False)


def _only(
    snap: LoadedSnapshot, state: Any, source: str, quota: int
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """What `retrieve` takes from one source (the others off): ids and scores, best first."""
    quotas = RetrievalQuotas(0, 0, 0, 0, 0, 0)
    quotas = dataclasses.replace(quotas, **{source: quota})
    cands = retrieval.retrieve(snap, state, quota, quotas)
    assert set(cands.source_counts.values()) <= {0, cands.items.size}
    return cands.items, cands.retrieval_score


def test_default_build_writes_both_lists(snap: LoadedSnapshot) -> None:
    cands = snap.user_candidates
    assert cands.has("ann") and cands.has("keyword")
    assert cands.k == {"ann": 300, "keyword": 150}
    assert snap.manifest["user_candidates"]["keyword"]["users"] == snap.n_users


def test_keyword_lists_equal_the_online_exact_topk(snap: LoadedSnapshot) -> None:
    used = 0
    for u in range(0, snap.n_users, 7):
        state = build_user_state(snap, snap.user_ids[u], [], [])
        assert state.stored_query
        pre = _only(snap, state, "keyword", 100)
        online = _only(snap, _online(state), "keyword", 100)
        np.testing.assert_array_equal(pre[0], online[0])
        np.testing.assert_array_equal(pre[1], online[1])
        used += pre[0].size > 0
    assert used > 50


def test_ann_lists_equal_the_online_search(snap: LoadedSnapshot) -> None:
    for u in range(0, snap.n_users, 7):
        state = build_user_state(snap, snap.user_ids[u], [], [])
        pre_ids, pre_sc = _only(snap, state, "ann", 225)
        on_ids, on_sc = _only(snap, _online(state), "ann", 225)
        np.testing.assert_allclose(pre_sc, on_sc, rtol=1e-5, atol=1e-6)
        # Same items (the order of exactly tied scores may differ).
        assert set(pre_ids.tolist()) == set(on_ids.tolist())
        assert not np.isin(pre_ids, state.excluded).any()


def test_request_exclusions_are_dropped_and_the_quota_still_filled(snap: LoadedSnapshot) -> None:
    u = 3
    base = build_user_state(snap, snap.user_ids[u], [], [])
    first = _only(snap, base, "keyword", 100)[0]
    drop = [snap.item_ids[int(i)] for i in first[:30]]
    state = build_user_state(snap, snap.user_ids[u], [], drop)
    assert state.stored_query
    ids, scores = _only(snap, state, "keyword", 100)
    assert ids.size == 100 and not np.isin(ids, first[:30]).any()
    online = _only(snap, _online(state), "keyword", 100)
    np.testing.assert_array_equal(ids, online[0])
    np.testing.assert_array_equal(scores, online[1])


def test_a_list_short_after_the_exclusions_searches_online(snap: LoadedSnapshot) -> None:
    """The build kept 300 ANN ids; excluding 100 of them leaves 200 for a quota of 225."""
    u = 4
    base = build_user_state(snap, snap.user_ids[u], [], [])
    stored, _ = snap.user_candidates.get("ann", u)
    assert stored.size == 300
    drop = [snap.item_ids[int(i)] for i in stored[::3]]
    state = build_user_state(snap, snap.user_ids[u], [], drop)
    assert state.stored_query and base.stored_query
    ids, scores = _only(snap, state, "ann", 225)
    on_ids, on_sc = _only(snap, _online(state), "ann", 225)
    assert ids.size == on_ids.size == 225
    np.testing.assert_array_equal(ids, on_ids)
    np.testing.assert_array_equal(scores, on_sc)
    assert not np.isin(ids, stored[::3]).any()


def test_quota_beyond_the_list_searches_online(snap: LoadedSnapshot) -> None:
    state = build_user_state(snap, snap.user_ids[5], [], [])
    ids, _ = _only(snap, state, "ann", 400)  # the build kept 300
    on_ids, _ = _only(snap, _online(state), "ann", 400)
    assert ids.size == on_ids.size > 300


def test_recent_events_always_search_online(snap: LoadedSnapshot) -> None:
    liked = Event(item_id=snap.item_ids[0], event_type="like", timestamp=1.0, watch_ratio=1.0)
    state = build_user_state(snap, snap.user_ids[5], [liked], [])
    assert not state.stored_query
    anonymous = build_user_state(snap, "", [], [])
    assert not anonymous.stored_query


def test_snapshot_without_lists_searches_online(demo_dir: Path, tmp_path: Path) -> None:
    cfg = builder.BuildConfig(
        precompute_ann=0, precompute_keyword=0, blend_weights={"keyword": 1.0}
    )
    m = builder.build_snapshot(
        demo_dir / "interactions.csv", demo_dir / "items.csv", tmp_path, config=cfg
    )
    bare = open_snapshot(Path(m["path"]))
    assert not bare.user_candidates.has("ann") and not bare.user_candidates.has("keyword")
    state = build_user_state(bare, bare.user_ids[2], [], [])
    assert _only(bare, state, "keyword", 50)[0].size > 0


def test_merged_session_profile_keeps_the_heaviest_profile_terms() -> None:
    from server.pipeline import user_state

    n = user_state.PROFILE_TERMS
    a_terms = np.arange(0, 2 * n, 2, dtype=np.int32)  # n stored terms
    a_w = np.linspace(1.0, 0.1, n).astype(np.float32)
    b_terms = np.arange(1, 2 * n, 2, dtype=np.int32)[:20]  # 20 new session terms
    b_w = np.full(20, 0.5, np.float32)
    terms, w = user_state._merge_sparse(a_terms, a_w, b_terms, b_w)
    assert terms.size == n and np.all(np.diff(terms) > 0)
    assert np.isclose(np.linalg.norm(w), 1.0)
    merged = dict(zip(a_terms.tolist(), a_w.tolist(), strict=True))
    merged.update(zip(b_terms.tolist(), b_w.tolist(), strict=True))
    best = sorted(merged, key=lambda t: (-merged[t], t))[:n]
    assert terms.tolist() == sorted(best)
