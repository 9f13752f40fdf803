"""Admin plane: token checks, a rebuild as a long-running operation, a failed rebuild."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as ops_pb

from server.api.reelrank.admin.v1 import index_admin_service_pb2 as pb
from server.api.reelrank.admin.v1 import index_admin_service_pb2_grpc as pb_grpc
from server.api.reelrank.v1 import ranking_service_pb2, ranking_service_pb2_grpc
from server.app import App
from tests.conftest import ADMIN_TOKEN, make_app

AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


def _wait(
    ops: operations_pb2_grpc.OperationsStub, name: str, timeout: float = 120
) -> ops_pb.Operation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op = ops.GetOperation(ops_pb.GetOperationRequest(name=name), metadata=AUTH, timeout=10)
        if op.done:
            return op
        time.sleep(0.2)
    raise AssertionError(f"operation {name} did not finish in {timeout}s")


@pytest.fixture()
def admin_app(built: dict[str, Any], demo_dir: Path, tmp_path: Path) -> Any:
    root = tmp_path / "snapshots"
    root.mkdir()
    shutil.copytree(built["path"], root / built["version"])
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    app = make_app(root, (data,))
    yield app, data
    app.stop(grace=0)


def _stubs(
    app: App,
) -> tuple[grpc.Channel, pb_grpc.IndexAdminServiceStub, operations_pb2_grpc.OperationsStub]:
    ch = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    return ch, pb_grpc.IndexAdminServiceStub(ch), operations_pb2_grpc.OperationsStub(ch)


def test_status_requires_token(admin_app: Any) -> None:
    app, _ = admin_app
    ch, admin, _ = _stubs(app)
    with ch:
        with pytest.raises(grpc.RpcError) as err:
            admin.GetIndexStatus(pb.GetIndexStatusRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            admin.GetIndexStatus(
                pb.GetIndexStatusRequest(), metadata=(("authorization", "Bearer nope"),), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        status = admin.GetIndexStatus(pb.GetIndexStatusRequest(), metadata=AUTH, timeout=5)
        assert status.serving
        assert status.snapshot_version == app.store.current().version
        assert status.num_items == app.store.current().n_items
        assert status.ann_recall_at_100 > 0.9


def test_rebuild_swaps_snapshot_and_rank_reports_it(admin_app: Any) -> None:
    app, data = admin_app
    old = app.store.current().version
    ch, admin, ops = _stubs(app)
    with ch:
        op = admin.RebuildIndex(
            pb.RebuildIndexRequest(
                interactions_path=str(data / "interactions.csv"), items_path=str(data / "items.csv")
            ),
            metadata=AUTH,
            timeout=10,
        )
        assert op.name.startswith("operations/") and not op.done
        with pytest.raises(grpc.RpcError) as err:
            admin.RebuildIndex(
                pb.RebuildIndexRequest(
                    interactions_path=str(data / "interactions.csv"),
                    items_path=str(data / "items.csv"),
                ),
                metadata=AUTH,
                timeout=10,
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert op.name in err.value.details()
        done = _wait(ops, op.name)
        assert not done.HasField("error"), done.error.message
        result = pb.RebuildIndexResponse()
        done.response.Unpack(result)
        assert result.activated and result.snapshot_version != old
        meta = pb.RebuildIndexMetadata()
        done.metadata.Unpack(meta)
        assert meta.stage == pb.REBUILD_STAGE_DONE and meta.progress_percent == 100.0
        rank = ranking_service_pb2_grpc.RankingServiceStub(ch)
        resp = rank.Rank(ranking_service_pb2.RankRequest(user_id="x", num_results=5), timeout=10)
        assert resp.snapshot_version == result.snapshot_version


def test_failed_rebuild_keeps_serving_old_snapshot(admin_app: Any) -> None:
    app, data = admin_app
    old = app.store.current().version
    bad = data / "bad_items.csv"
    bad.write_text("item_id,creator_id,keywords,publish_ts\ni1,c1,a|b,not-a-time\n")
    ch, admin, ops = _stubs(app)
    with ch:
        op = admin.RebuildIndex(
            pb.RebuildIndexRequest(
                interactions_path=str(data / "interactions.csv"), items_path=str(bad)
            ),
            metadata=AUTH,
            timeout=10,
        )
        done = _wait(ops, op.name)
        assert done.HasField("error")
        assert done.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "bad_items.csv row 2, column publish_ts" in done.error.message
    assert app.store.current().version == old
    assert [p.name for p in app.store.root.iterdir() if p.name.startswith(".tmp-")] == []


def test_rebuild_path_outside_data_roots_refused(admin_app: Any, tmp_path: Path) -> None:
    app, data = admin_app
    ch, admin, _ = _stubs(app)
    with ch:
        with pytest.raises(grpc.RpcError) as err:
            admin.RebuildIndex(
                pb.RebuildIndexRequest(
                    interactions_path=str(data / ".." / ".." / "etc-passwd.csv"),
                    items_path=str(data / "items.csv"),
                ),
                metadata=AUTH,
                timeout=10,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "outside the configured data roots" in err.value.details()
