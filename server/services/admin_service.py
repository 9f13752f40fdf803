"""reelrank.admin.v1.IndexAdminService and google.longrunning.Operations for rebuilds."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path

import grpc
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as ops_pb
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import code_pb2, status_pb2

from server.api.reelrank.admin.v1 import index_admin_service_pb2 as pb
from server.api.reelrank.admin.v1 import index_admin_service_pb2_grpc as pb_grpc
from server.config import ServerConfig
from server.errors import FailedPrecondition, InvalidArgument, NotFound
from server.index import builder
from server.index.store import SnapshotStore

log = logging.getLogger(__name__)

STAGES = {
    "loading": pb.REBUILD_STAGE_LOADING,
    "keywords": pb.REBUILD_STAGE_BUILDING,
    "profiles": pb.REBUILD_STAGE_BUILDING,
    "embeddings": pb.REBUILD_STAGE_BUILDING,
    "ann": pb.REBUILD_STAGE_BUILDING,
    "pools": pb.REBUILD_STAGE_BUILDING,
    "writing": pb.REBUILD_STAGE_WRITING,
    "done": pb.REBUILD_STAGE_WRITING,
}


def _ts(t: float) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromNanoseconds(int(t * 1e9))
    return out


def _pack(msg: object) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(msg)
    return out


class Operations(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    """In-memory registry of long-running operations (they do not survive a restart)."""

    def __init__(self) -> None:
        self._ops: dict[str, ops_pb.Operation] = {}
        self._lock = threading.Lock()

    def put(self, op: ops_pb.Operation) -> None:
        with self._lock:
            self._ops[op.name] = op

    def get(self, name: str) -> ops_pb.Operation:
        with self._lock:
            op = self._ops.get(name)
            if op is None:
                raise NotFound(
                    f"operation {name!r} not found (operations are kept in memory until restart)"
                )
            out = ops_pb.Operation()
            out.CopyFrom(op)
            return out

    def running(self) -> str | None:
        with self._lock:
            return next((n for n, op in self._ops.items() if not op.done), None)

    def GetOperation(
        self, request: ops_pb.GetOperationRequest, context: grpc.ServicerContext
    ) -> ops_pb.Operation:
        return self.get(request.name)

    def ListOperations(
        self, request: ops_pb.ListOperationsRequest, context: grpc.ServicerContext
    ) -> ops_pb.ListOperationsResponse:
        with self._lock:
            ops = [op for op in self._ops.values()]
        return ops_pb.ListOperationsResponse(operations=ops)


class IndexAdminService(pb_grpc.IndexAdminServiceServicer):
    def __init__(self, store: SnapshotStore, config: ServerConfig, operations: Operations) -> None:
        self.store = store
        self.config = config
        self.ops = operations
        self._start_lock = threading.Lock()

    def _checked_path(self, field: str, raw: str) -> Path:
        if not raw:
            raise InvalidArgument(f"{field} is required")
        path = Path(raw).resolve()
        roots = [r.resolve() for r in self.config.data_roots]
        if not any(path.is_relative_to(r) for r in roots):
            raise InvalidArgument(
                f"{field} {raw!r} is outside the configured data roots {[str(r) for r in roots]}",
                reason="PATH_OUTSIDE_DATA_ROOTS",
            )
        if not path.is_file():
            raise NotFound(f"{field} {raw!r} does not exist or is not a file")
        return path

    def RebuildIndex(
        self, request: pb.RebuildIndexRequest, context: grpc.ServicerContext
    ) -> ops_pb.Operation:
        interactions = self._checked_path("interactions_path", request.interactions_path)
        items = self._checked_path("items_path", request.items_path)
        with self._start_lock:
            running = self.ops.running()
            if running is not None:
                raise FailedPrecondition(
                    f"a rebuild is already running: {running}", operation=running
                )
            name = f"operations/rebuild-{uuid.uuid4().hex[:12]}"
            meta = pb.RebuildIndexMetadata(
                stage=pb.REBUILD_STAGE_QUEUED, progress_percent=0.0, start_time=_ts(time.time())
            )
            op = ops_pb.Operation(name=name, metadata=_pack(meta), done=False)
            self.ops.put(op)
        threading.Thread(
            target=self._run,
            args=(name, meta, interactions, items, not request.skip_activation),
            daemon=True,
            name=name,
        ).start()
        return self.ops.get(name)

    def _run(
        self,
        name: str,
        meta: pb.RebuildIndexMetadata,
        interactions: Path,
        items: Path,
        activate: bool,
    ) -> None:
        t0 = time.perf_counter()

        def progress(stage: str, pct: float) -> None:
            meta.stage = STAGES.get(stage, pb.REBUILD_STAGE_BUILDING)
            meta.progress_percent = pct * 0.9
            self.ops.put(ops_pb.Operation(name=name, metadata=_pack(meta), done=False))

        try:
            manifest = builder.build_snapshot(
                interactions, items, self.store.root, progress=progress
            )
            meta.snapshot_version = manifest["version"]
            if activate:
                meta.stage = pb.REBUILD_STAGE_ACTIVATING
                meta.progress_percent = 92.0
                self.ops.put(ops_pb.Operation(name=name, metadata=_pack(meta), done=False))
                self.store.activate(manifest["version"])
            counts = manifest["counts"]
            result = pb.RebuildIndexResponse(
                snapshot_version=manifest["version"],
                activated=activate,
                num_items=counts["items"],
                num_users=counts["users"],
                num_interactions=counts["interactions"],
                build_seconds=time.perf_counter() - t0,
            )
            meta.stage, meta.progress_percent = pb.REBUILD_STAGE_DONE, 100.0
            meta.end_time.CopyFrom(_ts(time.time()))
            self.ops.put(
                ops_pb.Operation(name=name, metadata=_pack(meta), done=True, response=_pack(result))
            )
            log.info("rebuild %s finished: snapshot %s", name, manifest["version"])
        except Exception as exc:
            code = code_pb2.INVALID_ARGUMENT if isinstance(exc, ValueError) else code_pb2.INTERNAL
            if code == code_pb2.INTERNAL:
                log.exception("rebuild %s failed", name)
            else:
                log.warning("rebuild %s failed: %s", name, exc)
            meta.stage = pb.REBUILD_STAGE_DONE
            meta.end_time.CopyFrom(_ts(time.time()))
            err = status_pb2.Status(
                code=code, message=f"rebuild failed, serving snapshot unchanged: {exc}"
            )
            self.ops.put(ops_pb.Operation(name=name, metadata=_pack(meta), done=True, error=err))

    def GetIndexStatus(
        self, request: pb.GetIndexStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetIndexStatusResponse:
        snap = self.store.current_or_none()
        resp = pb.GetIndexStatusResponse(
            serving=snap is not None, available_versions=self.store.versions()
        )
        if snap is not None:
            m = snap.manifest
            resp.snapshot_version = snap.version
            resp.num_items = snap.n_items
            resp.num_users = snap.n_users
            resp.created_time.FromJsonString(m["created_at"])
            resp.loaded_time.CopyFrom(_ts(snap.loaded_at))
            resp.ann_index = m["ann"]["factory"]
            resp.ann_recall_at_100 = float(m["ann"]["recall_at_100"])
        return resp
