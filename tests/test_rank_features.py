"""Rank in production shape: recent events, overrides, deadlines, request ids, metrics."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_status import rpc_status

from server.api.reelrank.v1 import ranking_service_pb2 as pb
from server.api.reelrank.v1 import ranking_service_pb2_grpc as pb_grpc
from server.api.reelrank.v1 import types_pb2
from server.app import App
from server.pipeline import budget as budget_mod
from server.pipeline import rank
from server.pipeline.budget import Budget
from server.pipeline.types import FairnessParams, Policy

NONE = types_pb2.FairnessOptions(policy=types_pb2.FAIRNESS_POLICY_NONE)


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> pb_grpc.RankingServiceStub:
    return pb_grpc.RankingServiceStub(channel)


@pytest.fixture(scope="module")
def tags(demo_dir: Path) -> dict[str, set[str]]:
    """item id -> its tags, from the demo catalogue."""
    with (demo_dir / "items.csv").open(newline="") as f:
        return {r["item_id"]: set(r["keywords"].split("|")) for r in csv.DictReader(f)}


def _like(item_id: str, ago: float) -> types_pb2.UserEvent:
    t = timestamp_pb2.Timestamp()
    t.FromSeconds(int(time.time() - ago))
    return types_pb2.UserEvent(
        item_id=item_id, event_type=types_pb2.EVENT_TYPE_LIKE, timestamp=t, watch_ratio=1.0
    )


def test_recent_likes_move_their_topic_up_in_the_same_page(
    app: App, stub: pb_grpc.RankingServiceStub, tags: dict[str, set[str]]
) -> None:
    user = app.store.current().user_ids[10]
    before = stub.Rank(pb.RankRequest(user_id=user, num_results=20, fairness=NONE), timeout=10)
    on_page = Counter(t for it in before.items for t in tags[it.item_id])
    # A tag with enough items that the user's page does not already show.
    counts = Counter(t for ts in tags.values() for t in ts)
    tag = next(t for t, n in counts.most_common() if 40 <= n <= 400 and on_page[t] == 0)
    liked = [i for i, ts in tags.items() if tag in ts][:5]
    after = stub.Rank(
        pb.RankRequest(
            user_id=user,
            num_results=20,
            fairness=NONE,
            recent_events=[_like(i, 60 * k) for k, i in enumerate(liked)],
            debug=True,
        ),
        timeout=10,
    )
    share = sum(tag in tags[it.item_id] for it in after.items) / len(after.items)
    assert share >= 0.25, (tag, share)
    assert not {it.item_id for it in after.items} & set(liked)
    sources = {s for it in after.items for s in it.sources}
    assert types_pb2.CANDIDATE_SOURCE_ITEM_NEIGHBOR in sources
    explained = [it for it in after.items if it.explanation.similar_to_item_id]
    assert explained and all(e.explanation.similar_to_item_id in liked for e in explained)
    assert any(tag.lower() in it.explanation.matched_keywords for it in after.items)


def test_every_item_carries_stage_scores_and_sources(
    app: App, stub: pb_grpc.RankingServiceStub
) -> None:
    resp = stub.Rank(pb.RankRequest(user_id=app.store.current().user_ids[2]), timeout=10)
    assert resp.request_id
    assert {t.stage for t in resp.timings} == {"retrieval", "ranking", "reranking"}
    assert sum(c.count for c in resp.source_counts) >= len(resp.items)
    for it in resp.items:
        assert it.sources
        assert it.stage_scores.ranking != 0 or it.stage_scores.popularity == 0


def test_request_id_is_echoed(stub: pb_grpc.RankingServiceStub) -> None:
    resp, call = stub.Rank.with_call(
        pb.RankRequest(user_id="x"), metadata=(("x-request-id", "req-123"),), timeout=10
    )
    assert resp.request_id == "req-123"
    assert ("x-request-id", "req-123") in call.trailing_metadata()


def test_request_id_survives_an_error(stub: pb_grpc.RankingServiceStub) -> None:
    """An error's status replaces the trailers; the request id must still be among them."""
    with pytest.raises(grpc.RpcError) as err:
        stub.Rank(
            pb.RankRequest(user_id="x", num_results=100_000),
            metadata=(("x-request-id", "req-err"),),
            timeout=10,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("x-request-id", "req-err") in err.value.trailing_metadata()
    status = rpc_status.from_call(err.value)  # type: ignore[arg-type]
    assert status is not None and status.details  # the ErrorInfo trailer is still there


def test_generated_request_ids_are_unique(stub: pb_grpc.RankingServiceStub) -> None:
    ids = []
    for _ in range(3):
        resp, call = stub.Rank.with_call(pb.RankRequest(user_id="x"), timeout=10)
        assert ("x-request-id", resp.request_id) in call.trailing_metadata()
        ids.append(resp.request_id)
    assert len(set(ids)) == 3 and all(len(i) == 24 for i in ids)


def test_a_forked_process_draws_its_own_request_ids() -> None:
    # In a fresh interpreter: forking this test process would fork its gRPC threads too.
    code = (
        "import os\n"
        "from server.logs import new_request_id\n"
        "parent = new_request_id(None)\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.write(w, new_request_id(None).encode()); os._exit(0)\n"
        "os.wait()\n"
        "print(parent, os.read(r, 64).decode())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    parent, child = out.stdout.split()
    # Both are the first id of their process; only the per-process prefix tells them apart.
    assert parent[16:] == child[16:] and parent[:16] != child[:16]


def test_overrides_quotas_and_blend(app: App, stub: pb_grpc.RankingServiceStub) -> None:
    user = app.store.current().user_ids[3]
    only_popularity = {name: 0.0 for name in app.store.current().blend_weights}
    only_popularity["popularity"] = 1.0
    resp = stub.Rank(
        pb.RankRequest(
            user_id=user,
            num_results=15,
            num_candidates=300,
            fairness=NONE,
            overrides=types_pb2.StageOverrides(
                quotas=types_pb2.RetrievalQuotas(popular=250),
                blend_weights=only_popularity,
            ),
        ),
        timeout=10,
    )
    counts = {c.source: c.count for c in resp.source_counts}
    assert counts[types_pb2.CANDIDATE_SOURCE_POPULAR] == 250
    pops = [it.stage_scores.popularity for it in resp.items]
    assert pops == sorted(pops, reverse=True)
    assert [it.score for it in resp.items] == pytest.approx(pops, abs=1e-6)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (types_pb2.StageOverrides(blend_weights={"vibes": 1.0}), "unknown blend signal"),
        (
            types_pb2.StageOverrides(quotas=types_pb2.RetrievalQuotas(ann=-1)),
            "overrides.quotas.ann",
        ),
    ],
)
def test_bad_overrides(
    stub: pb_grpc.RankingServiceStub, overrides: types_pb2.StageOverrides, needle: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Rank(pb.RankRequest(user_id="x", overrides=overrides), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


def test_deadline_degrades_instead_of_failing(app: App, stub: pb_grpc.RankingServiceStub) -> None:
    user = app.store.current().user_ids[4]
    saved = dict(budget_mod.COSTS._est)
    try:
        # Pretend the searches got slow: within a 1 s deadline they no longer fit.
        for step in ("ann source", "keyword source", "item_neighbor source"):
            budget_mod.COSTS._est[step] = 5.0
        resp = stub.Rank(pb.RankRequest(user_id=user, num_results=10), timeout=1.0)
    finally:
        budget_mod.COSTS._est.clear()
        budget_mod.COSTS._est.update(saved)
    assert resp.degraded
    assert any("ann source" in d.reason for d in resp.degradations)
    assert len(resp.items) == 10
    assert all(types_pb2.CANDIDATE_SOURCE_ANN not in it.sources for it in resp.items)
    # Without a deadline nothing degrades.
    full = stub.Rank(pb.RankRequest(user_id=user, num_results=10))
    assert not full.degraded


def test_ranking_stage_trims_candidates_to_the_budget(app: App) -> None:
    snap = app.store.current()
    saved = dict(budget_mod.COSTS._est)
    try:
        budget_mod.COSTS._est["ranking per 500 candidates"] = 0.5
        b = Budget(deadline=time.monotonic() + 0.1)
        r = rank.rank(
            snap, snap.user_ids[1], [], [], 10, 500, FairnessParams(policy=Policy.NONE), budget=b
        )
    finally:
        budget_mod.COSTS._est.clear()
        budget_mod.COSTS._est.update(saved)
    assert r.degradations and r.degradations[-1][0] == "ranking"
    assert 10 <= r.scores.items.size < 500
    assert len(set(r.items.tolist())) == 10


def test_metrics_count_requests_and_errors(app: App, stub: pb_grpc.RankingServiceStub) -> None:
    stub.Rank(pb.RankRequest(user_id="x", num_results=3), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.Rank(pb.RankRequest(user_id="x", num_results=-3), timeout=10)
    port = app.metrics.serve_http(0)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'reelrank_requests_total{code="OK",method="Rank"}' in text
    assert 'reelrank_requests_total{code="INVALID_ARGUMENT",method="Rank"}' in text
    assert 'reelrank_stage_latency_seconds_count{stage="retrieval"}' in text
    assert f'reelrank_snapshot_info{{version="{app.store.current().version}"}} 1.0' in text
    assert 'reelrank_candidates_count{source="popular"}' in text
