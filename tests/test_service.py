"""A real server on port 0: Rank and each stage RPC, health, reflection and errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server.api.reelrank.v1 import ranking_service_pb2 as pb
from server.api.reelrank.v1 import ranking_service_pb2_grpc as pb_grpc
from server.api.reelrank.v1 import types_pb2
from server.app import App
from server.index import snapshot
from tests.conftest import make_app


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> pb_grpc.RankingServiceStub:
    return pb_grpc.RankingServiceStub(channel)


def _seen(app: App, user_id: str) -> set[str]:
    snap = app.store.current()
    u = snap.user_index[user_id]
    return {snap.item_ids[i] for i in snap.user_seen(u).tolist()}


def _event(
    item_id: str, kind: int = types_pb2.EVENT_TYPE_LIKE, ts: float | None = None
) -> types_pb2.UserEvent:
    t = timestamp_pb2.Timestamp()
    t.FromSeconds(int(ts if ts is not None else time.time() - 5))
    return types_pb2.UserEvent(item_id=item_id, event_type=kind, timestamp=t)


def _user(app: App, k: int = 0) -> str:
    return app.store.current().user_ids[k]


def test_rank_known_user_returns_distinct_unseen_items(
    app: App, stub: pb_grpc.RankingServiceStub
) -> None:
    user = _user(app, 3)
    resp = stub.Rank(pb.RankRequest(user_id=user, num_results=25), timeout=10)
    ids = [it.item_id for it in resp.items]
    assert len(ids) == 25
    assert len(set(ids)) == 25
    assert not set(ids) & _seen(app, user)
    assert resp.snapshot_version == app.store.current().version
    assert all(it.snapshot_version == resp.snapshot_version for it in resp.items)
    assert not resp.cold_start
    # Default policy caps creators at 2 per page; the report agrees with the page.
    creators = [it.creator_id for it in resp.items]
    # Default policy: at most 2 items of a creator in any 5 consecutive positions.
    for start in range(len(creators) - 4):
        window = creators[start : start + 5]
        assert max(window.count(c) for c in window) <= 2
    assert resp.fairness_report.max_items_per_creator == max(creators.count(c) for c in creators)
    assert resp.fairness_report.distinct_creators == len(set(creators))
    assert resp.fairness_report.constraints_satisfied


def test_rank_is_personalised(app: App, stub: pb_grpc.RankingServiceStub) -> None:
    a = stub.Rank(pb.RankRequest(user_id=_user(app, 1), num_results=20), timeout=10)
    b = stub.Rank(pb.RankRequest(user_id=_user(app, 2), num_results=20), timeout=10)
    overlap = {i.item_id for i in a.items} & {i.item_id for i in b.items}
    assert len(overlap) < 15


def test_unknown_user_gets_cold_start_page(stub: pb_grpc.RankingServiceStub) -> None:
    resp = stub.Rank(
        pb.RankRequest(
            user_id="nobody-at-all",
            num_results=10,
            fairness=types_pb2.FairnessOptions(policy=types_pb2.FAIRNESS_POLICY_NONE),
        ),
        timeout=10,
    )
    assert resp.cold_start
    assert len({i.item_id for i in resp.items}) == 10
    # Ranked by trend (popularity, freshness as tie-breaker), not by all-zero personal signals.
    scores = [i.score for i in resp.items]
    assert scores == sorted(scores, reverse=True) and min(scores) > 0
    for i in resp.items:
        s = i.stage_scores
        assert i.score == pytest.approx(s.popularity + 0.3 * s.freshness, abs=1e-5)
    assert sum(i.stage_scores.popularity for i in resp.items) / len(resp.items) > 0.8


def test_recent_events_and_exclusions_are_removed(
    app: App, stub: pb_grpc.RankingServiceStub
) -> None:
    user = _user(app, 5)
    first = stub.Rank(pb.RankRequest(user_id=user, num_results=10), timeout=10)
    top = [i.item_id for i in first.items]
    resp = stub.Rank(
        pb.RankRequest(
            user_id=user,
            num_results=10,
            recent_events=[_event(top[0])],
            exclude_item_ids=top[1:4],
        ),
        timeout=10,
    )
    got = {i.item_id for i in resp.items}
    assert not got & set(top[:4])


def test_policy_none_returns_ranking_order(app: App, stub: pb_grpc.RankingServiceStub) -> None:
    resp = stub.Rank(
        pb.RankRequest(
            user_id=_user(app, 7),
            num_results=15,
            debug=True,
            fairness=types_pb2.FairnessOptions(policy=types_pb2.FAIRNESS_POLICY_NONE),
        ),
        timeout=10,
    )
    scores = [i.stage_scores.ranking for i in resp.items]
    assert scores == sorted(scores, reverse=True)
    assert resp.fairness_report.policy == types_pb2.FAIRNESS_POLICY_NONE
    assert resp.fairness_report.dcg_retained == pytest.approx(1.0)
    assert {t.stage for t in resp.timings} == {"retrieval", "ranking", "reranking"}
    assert all(i.sources for i in resp.items)
    assert sum(c.count for c in resp.source_counts) >= 15


def test_debug_stage_scores_match_score_rpc(app: App, stub: pb_grpc.RankingServiceStub) -> None:
    user = _user(app, 9)
    ranked = stub.Rank(pb.RankRequest(user_id=user, num_results=10, debug=True), timeout=10)
    ids = [i.item_id for i in ranked.items]
    scored = stub.ScoreCandidates(pb.ScoreCandidatesRequest(user_id=user, item_ids=ids), timeout=10)
    by_id = {s.item_id: s.score for s in scored.items}
    for it in ranked.items:
        assert by_id[it.item_id] == pytest.approx(it.stage_scores.ranking, rel=1e-5, abs=1e-6)
    got = [s.score for s in scored.items]
    assert got == sorted(got, reverse=True)


def test_retrieve_stage(app: App, stub: pb_grpc.RankingServiceStub) -> None:
    user = _user(app, 4)
    resp = stub.RetrieveCandidates(
        pb.RetrieveCandidatesRequest(user_id=user, num_candidates=200), timeout=10
    )
    ids = [c.item_id for c in resp.candidates]
    assert 0 < len(ids) <= 200
    assert len(set(ids)) == len(ids)
    assert not set(ids) & _seen(app, user)
    sources = {s for c in resp.candidates for s in c.sources}
    assert types_pb2.CANDIDATE_SOURCE_ANN in sources
    assert types_pb2.CANDIDATE_SOURCE_POPULAR in sources


def test_rerank_stage_caps_creators(app: App, stub: pb_grpc.RankingServiceStub) -> None:
    snap = app.store.current()
    # Five items of one creator with the best scores, plus others: the cap must hold.
    creator = int(np.bincount(snap.item_creator).argmax())
    same = np.flatnonzero(np.asarray(snap.item_creator) == creator)[:5]
    others = np.flatnonzero(np.asarray(snap.item_creator) != creator)[:20]
    items = [
        types_pb2.ScoredItem(item_id=snap.item_ids[i], score=10.0 - k) for k, i in enumerate(same)
    ]
    items += [
        types_pb2.ScoredItem(item_id=snap.item_ids[i], score=1.0 - 0.01 * k)
        for k, i in enumerate(others)
    ]
    resp = stub.RerankCandidates(
        pb.RerankCandidatesRequest(
            items=items,
            num_results=10,
            fairness=types_pb2.FairnessOptions(
                policy=types_pb2.FAIRNESS_POLICY_CREATOR_CAP,
                max_items_per_creator=2,
                creator_window=10,  # the whole 10-item page
            ),
        ),
        timeout=10,
    )
    creators = [i.creator_id for i in resp.items]
    assert len(resp.items) == 10
    assert creators[:2] == [snap.creator_ids[creator]] * 2
    assert creators.count(snap.creator_ids[creator]) == 2
    assert resp.fairness_report.dcg_retained < 1.0


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (pb.RankRequest(user_id="u", num_results=-1), "num_results must be >= 0"),
        (pb.RankRequest(user_id="u", num_results=1_000_000), "num_results must be <= 1000"),
        (pb.RankRequest(user_id="u", num_candidates=-5), "num_candidates"),
        (
            pb.RankRequest(user_id="u", recent_events=[types_pb2.UserEvent(item_id="x")]),
            "event_type",
        ),
        (
            pb.RankRequest(
                user_id="u",
                recent_events=[types_pb2.UserEvent(event_type=types_pb2.EVENT_TYPE_LIKE)],
            ),
            "item_id is empty",
        ),
        (
            pb.RankRequest(
                user_id="u",
                recent_events=[
                    types_pb2.UserEvent(item_id="x", event_type=types_pb2.EVENT_TYPE_LIKE)
                ],
            ),
            "timestamp must be set",
        ),
        (
            pb.RankRequest(user_id="u", recent_events=[_event("x", ts=time.time() + 86_400)]),
            "in the future",
        ),
        (
            pb.RankRequest(
                user_id="u", fairness=types_pb2.FairnessOptions(protected_groups=["martians"])
            ),
            "unknown protected group",
        ),
        (
            pb.RankRequest(
                user_id="u", fairness=types_pb2.FairnessOptions(min_protected_share=1.5)
            ),
            "min_protected_share",
        ),
    ],
)
def test_bad_requests_are_invalid_argument(
    stub: pb_grpc.RankingServiceStub, request_: Any, needle: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Rank(request_, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


def test_score_unknown_item_is_not_found(stub: pb_grpc.RankingServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.ScoreCandidates(
            pb.ScoreCandidatesRequest(user_id="u", item_ids=["no-such-item"]), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-item" in err.value.details()


def test_rerank_duplicate_items_rejected(app: App, stub: pb_grpc.RankingServiceStub) -> None:
    iid = app.store.current().item_ids[0]
    items = [types_pb2.ScoredItem(item_id=iid, score=1.0)] * 2
    with pytest.raises(grpc.RpcError) as err:
        stub.RerankCandidates(pb.RerankCandidatesRequest(items=items), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(
        refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert {
        "reelrank.v1.RankingService",
        "reelrank.admin.v1.IndexAdminService",
        "grpc.health.v1.Health",
    } <= names


def test_server_without_snapshot_fails_precondition(tmp_path: Path) -> None:
    empty = make_app(tmp_path / "none")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{empty.port}") as ch:
            stub = pb_grpc.RankingServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                stub.Rank(pb.RankRequest(user_id="u"), timeout=10)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "no index snapshot" in err.value.details()
            health = health_pb2_grpc.HealthStub(ch)
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        empty.stop(grace=0)


def test_newest_valid_snapshot_is_served_and_corrupt_ones_skipped(
    built: dict[str, Any], tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "snaps"
    root.mkdir()
    good = root / built["version"]
    shutil.copytree(built["path"], good)
    newer = root / "29990101T000000Z"
    shutil.copytree(built["path"], newer)
    with (newer / "item_emb.npy").open("r+b") as f:
        f.seek(200)
        f.write(b"\x00garbage\x00")
    assert snapshot.list_versions(root)[0] == newer.name
    served = make_app(root)
    try:
        assert served.store.current().version == good.name
    finally:
        served.stop(grace=0)
