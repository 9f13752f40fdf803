"""RankingClient against an in-process fake RankingService: conversion, errors, retries."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import status_pb2

from client.errors import ReelrankError, from_status_proto, status_code_from_int
from client.fake_server import FakeRankingService, FakeServer, start_fake_server
from client.rank_client import (
    Event,
    RankingClient,
    event_type_from_str,
    fairness_options,
    resolve_target,
    service_config,
)
from server.api.reelrank.v1 import types_pb2

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    srv = start_fake_server(FakeRankingService())
    yield srv
    srv.stop()


@pytest.fixture()
def client(server: FakeServer) -> Iterator[RankingClient]:
    with RankingClient(server.target, timeout=2.0) as rc:
        yield rc


def test_rank_returns_page_and_converts_request(server: FakeServer, client: RankingClient) -> None:
    now = time.time()
    page = client.rank(
        "u1",
        7,
        recent_events=[Event("item-3", "like", now - 10.25, 0.5), Event("item-4", "SKIP", now)],
        exclude_item_ids=["nope"],
        fairness_policy="creator_cap",
        debug=True,
    )
    assert len(page.items) == 7
    assert page.snapshot_version == "fake-snapshot-1"
    assert page.items[0].stage_scores.ranking == pytest.approx(0.9)
    sent = server.ranking.requests[-1]
    assert sent.user_id == "u1" and sent.num_results == 7 and sent.debug
    assert [e.event_type for e in sent.recent_events] == [
        types_pb2.EVENT_TYPE_LIKE,
        types_pb2.EVENT_TYPE_SKIP,
    ]
    ts = sent.recent_events[0].timestamp
    assert ts.seconds + ts.nanos / 1e9 == pytest.approx(now - 10.25, abs=1e-6)
    assert sent.recent_events[0].watch_ratio == pytest.approx(0.5)
    assert list(sent.exclude_item_ids) == ["nope"]
    assert sent.fairness.policy == types_pb2.FAIRNESS_POLICY_CREATOR_CAP


def test_other_stages_and_health(client: RankingClient) -> None:
    assert len(client.retrieve("u1", 12).candidates) == 12
    scored = client.score("u1", ["a", "b", "c"])
    assert [it.item_id for it in scored.items] == ["a", "b", "c"]
    page = client.rerank(scored.items, 2, fairness_policy="none")
    assert len(page.items) == 2
    assert page.fairness_report.policy == types_pb2.FAIRNESS_POLICY_NONE
    assert client.health() == "SERVING"
    assert client.health("reelrank.v1.RankingService") == "SERVING"


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_errors_become_reelrank_error(client: RankingClient, code: grpc.StatusCode) -> None:
    with pytest.raises(ReelrankError) as info:
        client.rank(f"error:{code.name}")
    assert info.value.code == code
    assert info.value.details == f"injected {code.name} for error:{code.name}"
    assert code.name in str(info.value)


def test_deadline_exceeded() -> None:
    with (
        start_fake_server(FakeRankingService(latencies=[0.5])) as srv,
        RankingClient(srv.target, timeout=0.05) as rc,
    ):
        with pytest.raises(ReelrankError) as info:
            rc.rank("u1")
        assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_unreachable_server_is_unavailable() -> None:
    with RankingClient("127.0.0.1:1", timeout=0.5, max_retries=0) as rc:
        with pytest.raises(ReelrankError) as info:
            rc.rank("u1")
        assert info.value.code == UNAVAILABLE


def test_local_argument_errors_raise_value_error(client: RankingClient) -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        client.rank("u1", recent_events=[Event("i", "teleport", 0.0)])
    with pytest.raises(ValueError, match="unknown fairness policy"):
        client.rank("u1", fairness_policy="max-fun")
    assert event_type_from_str("EVENT_TYPE_COMPLETE") == types_pb2.EVENT_TYPE_COMPLETE
    with pytest.raises(ValueError):
        event_type_from_str("unspecified")
    assert fairness_options(None) is None


# ------------------------------------------------------------------------------------ retries


@pytest.mark.parametrize(
    ("errors", "max_retries", "expected_calls", "expected_code"),
    [
        ([UNAVAILABLE, UNAVAILABLE, None], 3, 3, None),  # retried until success
        ([UNAVAILABLE] * 10, 2, 3, UNAVAILABLE),  # retries exhausted
        ([UNAVAILABLE, None], 0, 1, UNAVAILABLE),  # retries disabled
        ([grpc.StatusCode.INVALID_ARGUMENT, None], 3, 1, grpc.StatusCode.INVALID_ARGUMENT),
        ([grpc.StatusCode.RESOURCE_EXHAUSTED, None], 3, 1, grpc.StatusCode.RESOURCE_EXHAUSTED),
        ([grpc.StatusCode.DEADLINE_EXCEEDED, None], 3, 1, grpc.StatusCode.DEADLINE_EXCEEDED),
        ([grpc.StatusCode.INTERNAL, None], 3, 1, grpc.StatusCode.INTERNAL),
    ],
)
def test_retries_on_unavailable_only(
    errors: list[grpc.StatusCode | None],
    max_retries: int,
    expected_calls: int,
    expected_code: grpc.StatusCode | None,
) -> None:
    fake = FakeRankingService(errors=errors)
    with start_fake_server(fake) as srv, RankingClient(srv.target, max_retries=max_retries) as rc:
        if expected_code is None:
            assert len(rc.rank("u1", 3).items) == 3
        else:
            with pytest.raises(ReelrankError) as info:
                rc.rank("u1", 3)
            assert info.value.code == expected_code
    assert fake.calls["Rank"] == expected_calls


def test_service_config_json() -> None:
    config = json.loads(service_config(["a.B", "c.D/Get"], max_retries=3, round_robin=True))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method,) = config["methodConfig"]
    assert method["name"] == [{"service": "a.B"}, {"service": "c.D", "method": "Get"}]
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method["retryPolicy"]["maxAttempts"] == 4
    assert json.loads(service_config(["a.B"], max_retries=0, round_robin=False)) == {}


def test_comma_target_is_round_robin() -> None:
    assert resolve_target("localhost:1") == ("localhost:1", False)
    assert resolve_target("127.0.0.1:1, localhost:2") == ("ipv4:127.0.0.1:1,127.0.0.1:2", True)
    assert resolve_target("[::1]:1,[::1]:2") == ("ipv6:[::1]:1,[::1]:2", True)
    a, b = FakeRankingService(), FakeRankingService()
    with (
        start_fake_server(a) as sa,
        start_fake_server(b) as sb,
        RankingClient(f"{sa.target},{sb.target}") as rc,
    ):
        for _ in range(10):
            rc.rank("u1", 1)
    assert a.calls["Rank"] > 0 and b.calls["Rank"] > 0
    assert a.calls["Rank"] + b.calls["Rank"] == 10


def test_error_helpers() -> None:
    err = ReelrankError(UNAVAILABLE, "down", reason="X", metadata={"k": "v"})
    again = pickle.loads(pickle.dumps(err))
    assert (again.code, again.details, again.reason, again.metadata) == (
        UNAVAILABLE,
        "down",
        "X",
        {"k": "v"},
    )
    status = status_pb2.Status(code=5, message="gone")
    converted = from_status_proto(status)
    assert converted.code == grpc.StatusCode.NOT_FOUND and converted.details == "gone"
    assert status_code_from_int(999) == grpc.StatusCode.UNKNOWN
