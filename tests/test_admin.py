"""Admin plane: token checks, a rebuild as a long-running operation, a failed rebuild."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as ops_pb
from google.protobuf import duration_pb2

from server.api.reelrank.admin.v1 import index_admin_service_pb2 as pb
from server.api.reelrank.admin.v1 import index_admin_service_pb2_grpc as pb_grpc
from server.api.reelrank.v1 import ranking_service_pb2, ranking_service_pb2_grpc
from server.app import App
from server.config import DataSource
from server.index import snapshot
from server.pipeline import rank as pipeline
from server.pipeline.types import FairnessParams
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
    app.config.rebuild_nice = 0  # the suite shares the machine; do not starve the build
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


def test_admin_error_keeps_request_id(admin_app: Any) -> None:
    """The admin plane's sync error path also carries the caller's request id back."""
    app, _ = admin_app
    ch, _, ops = _stubs(app)
    with ch, pytest.raises(grpc.RpcError) as err:
        ops.GetOperation(
            ops_pb.GetOperationRequest(name="operations/none"),
            metadata=(*AUTH, ("x-request-id", "adm-1")),
            timeout=5,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert ("x-request-id", "adm-1") in err.value.trailing_metadata()


def test_rebuild_swaps_snapshot_and_rank_reports_it(admin_app: Any) -> None:
    app, data = admin_app
    old = app.store.current().version
    ancient = ["20000101T000000Z", "20000102T000000Z"]
    for v in ancient:
        clone_snapshot(app.store.root, old, v)
    app.config.keep_snapshots = 2
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
        # Retention: the newest two are kept (new + the previous one), the rest deleted.
        assert sorted(result.pruned_versions) == ancient
        assert app.store.versions() == [result.snapshot_version, old]
        assert snapshot.read_active(app.store.root) == result.snapshot_version
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
        done = ops.WaitOperation(
            ops_pb.WaitOperationRequest(name=op.name, timeout=duration_pb2.Duration(seconds=120)),
            metadata=AUTH,
            timeout=130,
        )
        assert done.done and done.HasField("error")
        assert done.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "bad_items.csv row 2, column publish_ts" in done.error.message
        listed = ops.ListOperations(ops_pb.ListOperationsRequest(), metadata=AUTH, timeout=5)
        assert [o.name for o in listed.operations] == [op.name]
        ops.DeleteOperation(ops_pb.DeleteOperationRequest(name=op.name), metadata=AUTH, timeout=5)
        with pytest.raises(grpc.RpcError) as err:
            ops.GetOperation(ops_pb.GetOperationRequest(name=op.name), metadata=AUTH, timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
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


def test_rebuild_symlink_escape_refused(admin_app: Any, tmp_path: Path) -> None:
    app, data = admin_app
    outside = tmp_path / "outside.csv"
    outside.write_text("user_id,item_id,event_type,timestamp\n")
    (data / "sneaky.csv").symlink_to(outside)
    ch, admin, _ = _stubs(app)
    with ch, pytest.raises(grpc.RpcError) as err:
        admin.RebuildIndex(
            pb.RebuildIndexRequest(
                interactions_path=str(data / "sneaky.csv"), items_path=str(data / "items.csv")
            ),
            metadata=AUTH,
            timeout=10,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "outside the configured data roots" in err.value.details()


def test_rebuild_source_must_be_configured(admin_app: Any) -> None:
    app, data = admin_app
    ch, admin, _ = _stubs(app)
    with ch:
        with pytest.raises(grpc.RpcError) as err:
            admin.RebuildIndex(pb.RebuildIndexRequest(source="nope"), metadata=AUTH, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "unknown source 'nope'" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            admin.RebuildIndex(
                pb.RebuildIndexRequest(source="demo", items_path=str(data / "items.csv")),
                metadata=AUTH,
                timeout=10,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _build_workers(root: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"server.admin.worker" in cmd and str(root).encode() in cmd:
                pids.append(int(proc.name))
    return pids


def test_cancel_named_source_rebuild_leaves_nothing(admin_app: Any) -> None:
    app, data = admin_app
    app.config.sources = {"demo": DataSource(data / "interactions.csv", data / "items.csv")}
    old, versions = app.store.current().version, app.store.versions()
    ch, admin, ops = _stubs(app)
    with ch:
        op = admin.RebuildIndex(pb.RebuildIndexRequest(source="demo"), metadata=AUTH, timeout=10)
        meta = pb.RebuildIndexMetadata()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the child is building
            cur = ops.GetOperation(ops_pb.GetOperationRequest(name=op.name), metadata=AUTH)
            cur.metadata.Unpack(meta)
            if meta.stage >= pb.REBUILD_STAGE_LOADING or cur.done:
                break
            time.sleep(0.05)
        assert meta.source == "demo" and not cur.done
        assert _build_workers(app.store.root)
        ops.CancelOperation(ops_pb.CancelOperationRequest(name=op.name), metadata=AUTH, timeout=5)
        done = _wait(ops, op.name, timeout=30)
        assert done.error.code == grpc.StatusCode.CANCELLED.value[0], done.error.message
        assert "nothing was published" in done.error.message
        # Cancelling a finished operation is a no-op.
        ops.CancelOperation(ops_pb.CancelOperationRequest(name=op.name), metadata=AUTH, timeout=5)
    assert _build_workers(app.store.root) == []
    assert app.store.current().version == old and app.store.versions() == versions
    assert [p.name for p in app.store.root.iterdir() if p.name.startswith(".tmp-")] == []


def clone_snapshot(root: Path, src: str, version: str, **manifest_changes: Any) -> Path:
    """Copy snapshot `src` to `version` (a newer name), optionally changing manifest keys."""
    dst = root / version
    shutil.copytree(root / src, dst)
    path = dst / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["version"] = version
    for key, value in manifest_changes.items():
        if key == "recall":
            manifest["ann"]["recall_at_100"] = value
        else:
            manifest[key] = value
    path.write_text(json.dumps(manifest))
    return dst


def test_list_activate_and_rollback(admin_app: Any) -> None:
    app, _ = admin_app
    v1 = app.store.current().version
    v2 = "29991231T000000Z"
    clone_snapshot(app.store.root, v1, v2)
    ch, admin, _ = _stubs(app)
    rank = ranking_service_pb2_grpc.RankingServiceStub(ch)
    with ch:
        listed = admin.ListSnapshots(pb.ListSnapshotsRequest(), metadata=AUTH, timeout=5)
        assert [(s.version, s.active) for s in listed.snapshots] == [(v2, False), (v1, True)]
        assert listed.snapshots[1].size_bytes > 0 and not listed.snapshots[1].quality_gate_failures
        fwd = admin.ActivateSnapshot(
            pb.ActivateSnapshotRequest(version=v2), metadata=AUTH, timeout=10
        )
        assert (fwd.snapshot_version, fwd.previous_version) == (v2, v1)
        t0 = time.perf_counter()
        back = admin.ActivateSnapshot(
            pb.ActivateSnapshotRequest(version=v1), metadata=AUTH, timeout=10
        )
        rollback_s = time.perf_counter() - t0
        assert rollback_s < 2.0 and back.snapshot_version == v1
        status = admin.GetIndexStatus(pb.GetIndexStatusRequest(), metadata=AUTH, timeout=5)
        assert (status.snapshot_version, status.previous_version) == (v1, v2)
        assert status.load_seconds > 0 and status.loads >= 3 and status.num_interactions > 0
        resp = rank.Rank(ranking_service_pb2.RankRequest(user_id="x", num_results=5), timeout=10)
        assert resp.snapshot_version == v1
        # The choice survives a restart, although v2 is newer.
        assert snapshot.read_active(app.store.root) == v1
        with pytest.raises(grpc.RpcError) as err:
            admin.ActivateSnapshot(
                pb.ActivateSnapshotRequest(version="20000101T000000Z"), metadata=AUTH, timeout=5
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:
            admin.ActivateSnapshot(
                pb.ActivateSnapshotRequest(version="../etc"), metadata=AUTH, timeout=5
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    restarted = make_app(app.store.root, ())
    try:
        assert restarted.store.current().version == v1
    finally:
        restarted.stop(grace=0)


def test_quality_gate_refuses_unless_forced(admin_app: Any) -> None:
    app, _ = admin_app
    v1 = app.store.current().version
    weak = "29991231T000000Z"
    clone_snapshot(app.store.root, v1, weak, recall=0.5, quality={"ndcg_at_10": 0.01})
    app.config.min_ndcg_at_10 = 0.05
    ch, admin, _ = _stubs(app)
    with ch:
        listed = admin.ListSnapshots(pb.ListSnapshotsRequest(), metadata=AUTH, timeout=5)
        assert len(listed.snapshots[0].quality_gate_failures) == 2
        assert listed.snapshots[0].ndcg_at_10 == pytest.approx(0.01)
        with pytest.raises(grpc.RpcError) as err:
            admin.ActivateSnapshot(
                pb.ActivateSnapshotRequest(version=weak), metadata=AUTH, timeout=10
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "ANN recall@100 0.5000 < floor 0.9" in err.value.details()
        assert "NDCG@10 0.0100 < floor 0.05" in err.value.details()
        assert app.store.current().version == v1
        forced = admin.ActivateSnapshot(
            pb.ActivateSnapshotRequest(version=weak, force=True), metadata=AUTH, timeout=10
        )
        assert forced.snapshot_version == weak == app.store.current().version


def test_corrupt_snapshot_refused_and_old_keeps_serving(admin_app: Any) -> None:
    app, _ = admin_app
    v1 = app.store.current().version
    bad = clone_snapshot(app.store.root, v1, "29991231T000000Z")
    emb = bad / "item_emb.npy"
    raw = bytearray(emb.read_bytes())
    raw[-1] ^= 0xFF  # same size, different content
    emb.write_bytes(bytes(raw))
    no_manifest = "29991230T000000Z"
    (app.store.root / no_manifest).mkdir()
    ch, admin, _ = _stubs(app)
    with ch:
        with pytest.raises(grpc.RpcError) as err:
            admin.ActivateSnapshot(
                pb.ActivateSnapshotRequest(version=bad.name, force=True), metadata=AUTH, timeout=10
            )
        assert err.value.code() == grpc.StatusCode.DATA_LOSS
        assert "checksum mismatch" in err.value.details() and v1 in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            admin.ActivateSnapshot(
                pb.ActivateSnapshotRequest(version=no_manifest), metadata=AUTH, timeout=10
            )
        assert err.value.code() == grpc.StatusCode.DATA_LOSS
        assert "no manifest.json" in err.value.details()
        status = admin.GetIndexStatus(pb.GetIndexStatusRequest(), metadata=AUTH, timeout=5)
        assert status.snapshot_version == v1 and status.load_failures == 1
    # A restart skips the corrupt newest snapshot and serves the good one.
    restarted = make_app(app.store.root, ())
    try:
        assert restarted.store.current().version == v1
    finally:
        restarted.stop(grace=0)


def test_in_flight_request_finishes_on_its_snapshot(admin_app: Any) -> None:
    """A request holds one snapshot reference for its whole life, across any number of swaps."""
    app, _ = admin_app
    v1 = app.store.current().version
    v2 = "29991231T000000Z"
    clone_snapshot(app.store.root, v1, v2)
    held = app.store.current()
    errors: list[BaseException] = []
    seen: set[str] = set()
    stop = threading.Event()

    def traffic() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = ranking_service_pb2_grpc.RankingServiceStub(ch)
            while not stop.is_set():
                try:
                    r = stub.Rank(ranking_service_pb2.RankRequest(user_id="x"), timeout=10)
                    seen.add(r.snapshot_version)
                except grpc.RpcError as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for v in (v2, v1, v2):
            app.store.activate(v)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == [] and seen == {v1, v2}
    assert app.store.current().version == v2
    # The reference taken before the swaps still ranks, on the old snapshot.
    page = pipeline.rank(held, held.user_ids[0], [], [], 10, 200, FairnessParams())
    assert held.version == v1 and len(page.items) == 10


def test_one_rebuild_across_sibling_processes(admin_app: Any) -> None:
    """Serving processes sharing a root (`--processes`) run one rebuild among them."""
    app, data = admin_app
    held = snapshot.try_lock(app.store.root / ".rebuild.lock")  # a sibling's rebuild
    assert held is not None
    ch, admin, _ = _stubs(app)
    try:
        with ch, pytest.raises(grpc.RpcError) as err:
            admin.RebuildIndex(
                pb.RebuildIndexRequest(
                    interactions_path=str(data / "interactions.csv"),
                    items_path=str(data / "items.csv"),
                ),
                metadata=AUTH,
                timeout=10,
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "another server process" in err.value.details()
    finally:
        os.close(held)


def test_siblings_follow_the_pinned_version(admin_app: Any) -> None:
    app, _ = admin_app
    v1 = app.store.current().version
    v2 = "29991231T000000Z"
    clone_snapshot(app.store.root, v1, v2)
    stop = app.store.follow_active(interval=0.05)
    try:
        snapshot.write_active(app.store.root, v2)  # what a sibling's ActivateSnapshot writes
        deadline = time.monotonic() + 10
        while app.store.current().version != v2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.store.current().version == v2
    finally:
        stop.set()


def test_rebuild_refused_by_quality_gate_keeps_serving(admin_app: Any) -> None:
    app, data = admin_app
    old = app.store.current().version
    app.config.min_ann_recall = 1.01  # no snapshot can pass
    ch, admin, ops = _stubs(app)
    with ch:
        op = admin.RebuildIndex(
            pb.RebuildIndexRequest(
                interactions_path=str(data / "interactions.csv"), items_path=str(data / "items.csv")
            ),
            metadata=AUTH,
            timeout=10,
        )
        done = _wait(ops, op.name)
        assert done.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert "fails the quality gate (ANN recall@100" in done.error.message
        assert "--force" in done.error.message
        meta = pb.RebuildIndexMetadata()
        done.metadata.Unpack(meta)
        new = meta.snapshot_version
        # Built and kept, not serving; a restart would keep serving the old one too.
        assert app.store.versions()[0] == new and app.store.current().version == old
        assert snapshot.read_active(app.store.root) == old
        forced = admin.ActivateSnapshot(
            pb.ActivateSnapshotRequest(version=new, force=True), metadata=AUTH, timeout=10
        )
        assert forced.snapshot_version == new
