"""The grpc.aio serving model: ranking inline on the event loop, the admin plane in the pool,
and errors from either mapped to the same rich status."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from server.api.reelrank.admin.v1 import index_admin_service_pb2 as admin_pb
from server.api.reelrank.admin.v1 import index_admin_service_pb2_grpc as admin_grpc
from server.api.reelrank.v1 import ranking_service_pb2 as pb
from server.api.reelrank.v1 import ranking_service_pb2_grpc as pb_grpc
from server.app import App
from server.services import ranking_service
from tests.conftest import ADMIN_TOKEN, make_app

AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


def _thread_of(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> list[str]:
    seen: list[str] = []
    real = getattr(target, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, spy)
    return seen


def test_ranking_runs_on_the_loop_and_admin_in_the_pool(
    app: App, channel: grpc.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranked = _thread_of(monkeypatch, ranking_service.pipeline, "rank")
    statused = _thread_of(monkeypatch, app.store, "current_or_none")
    user = app.store.current().user_ids[0]
    pb_grpc.RankingServiceStub(channel).Rank(pb.RankRequest(user_id=user), timeout=10)
    admin_grpc.IndexAdminServiceStub(channel).GetIndexStatus(
        admin_pb.GetIndexStatusRequest(), metadata=AUTH, timeout=10
    )
    assert ranked == [app.thread.name]
    assert statused and all(t.startswith("rpc") for t in statused)


def _error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


def test_domain_errors_carry_error_info_from_both_paths(
    app: App, channel: grpc.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Coroutine path: a ranking RPC refused.
    with pytest.raises(grpc.RpcError) as ranked:
        pb_grpc.RankingServiceStub(channel).Rank(pb.RankRequest(num_results=-1), timeout=10)
    assert ranked.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(ranked.value).domain == "reelrank.dev"
    # Sync path (thread pool): an admin RPC failing unexpectedly becomes INTERNAL + incident.

    def boom() -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.store, "current_or_none", boom)
    with pytest.raises(grpc.RpcError) as admin:
        admin_grpc.IndexAdminServiceStub(channel).GetIndexStatus(
            admin_pb.GetIndexStatusRequest(), metadata=AUTH, timeout=10
        )
    assert admin.value.code() == grpc.StatusCode.INTERNAL
    info = _error_info(admin.value)
    assert info.reason == "INTERNAL" and info.metadata["incident"] in admin.value.details()
    assert "boom" not in admin.value.details()


def test_pipeline_concurrency_above_one_ranks_in_the_pool(
    built: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    cfg_app = make_app(Path(built["path"]).parent, pipeline_concurrency=2)
    try:
        ranked = _thread_of(monkeypatch, ranking_service.pipeline, "rank")
        with grpc.insecure_channel(f"127.0.0.1:{cfg_app.port}") as ch:
            user = cfg_app.store.current().user_ids[0]
            pb_grpc.RankingServiceStub(ch).Rank(pb.RankRequest(user_id=user), timeout=10)
        assert len(ranked) == 1 and ranked[0].startswith("rpc")
    finally:
        cfg_app.stop(grace=0)
