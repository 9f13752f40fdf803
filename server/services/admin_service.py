"""reelrank.admin.v1.IndexAdminService: a thin adapter over `server.admin`.

`Operations` (the standard `google.longrunning.Operations` service) is re-exported from
`server.admin.operations` for the server factory.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid

import grpc
from google.longrunning import operations_proto_pb2 as ops_pb

from server.admin import inputs, quality
from server.admin.operations import Operations
from server.admin.rebuild import RebuildJob, ts
from server.api.reelrank.admin.v1 import index_admin_service_pb2 as pb
from server.api.reelrank.admin.v1 import index_admin_service_pb2_grpc as pb_grpc
from server.config import ServerConfig
from server.errors import FailedPrecondition, InvalidArgument, NotFound, ReelrankError
from server.index import snapshot
from server.index.store import SnapshotStore

__all__ = ["IndexAdminService", "Operations", "SnapshotCorrupt"]

log = logging.getLogger(__name__)

REBUILD_LOCK = ".rebuild.lock"


class SnapshotCorrupt(ReelrankError):
    """A kept snapshot fails verification (missing file, size or checksum mismatch)."""

    code = grpc.StatusCode.DATA_LOSS
    reason = "SNAPSHOT_CORRUPT"


class IndexAdminService(pb_grpc.IndexAdminServiceServicer):
    def __init__(self, store: SnapshotStore, config: ServerConfig, operations: Operations) -> None:
        self.store = store
        self.config = config
        self.ops = operations
        self._start_lock = threading.Lock()

    # ------------------------------------------------------------ rebuild

    def RebuildIndex(
        self, request: pb.RebuildIndexRequest, context: grpc.ServicerContext
    ) -> ops_pb.Operation:
        interactions, items = inputs.resolve(
            self.config, request.source, request.interactions_path, request.items_path
        )
        with self._start_lock:
            running = self.ops.running()
            if running is not None:
                raise FailedPrecondition(
                    f"a rebuild is already running: {running} (wait for it or cancel it)",
                    reason="REBUILD_RUNNING",
                    operation=running,
                )
            # Sibling serving processes (--processes) share the root: one rebuild among them.
            lock_fd = snapshot.try_lock(self.store.root / REBUILD_LOCK)
            if lock_fd is None:
                raise FailedPrecondition(
                    "a rebuild is already running in another server process sharing "
                    f"{self.store.root} (its pid is in {REBUILD_LOCK})",
                    reason="REBUILD_RUNNING",
                )
            try:
                job = RebuildJob(
                    f"operations/rebuild-{uuid.uuid4().hex[:12]}",
                    self.ops,
                    self.store,
                    self.config,
                    interactions,
                    items,
                    activate=not request.skip_activation,
                    force=request.force,
                    source=request.source,
                    lock_fd=lock_fd,
                )
            except BaseException:
                os.close(lock_fd)
                raise
            job.start()
        log.info("rebuild %s started: %s, %s", job.name, interactions, items)
        return self.ops.get(job.name)

    # ------------------------------------------------------------ status and snapshots

    def GetIndexStatus(
        self, request: pb.GetIndexStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetIndexStatusResponse:
        snap = self.store.current_or_none()
        resp = pb.GetIndexStatusResponse(
            serving=snap is not None,
            available_versions=self.store.versions(),
            loads=self.store.loads,
            load_failures=self.store.load_failures,
            previous_version=self.store.previous_version or "",
            running_operation=self.ops.running() or "",
        )
        if snap is not None:
            m = snap.manifest
            resp.snapshot_version = snap.version
            resp.num_items = snap.n_items
            resp.num_users = snap.n_users
            resp.num_interactions = int(m.get("counts", {}).get("interactions", 0))
            resp.created_time.FromJsonString(m["created_at"])
            resp.loaded_time.CopyFrom(ts(snap.loaded_at))
            resp.load_seconds = self.store.last_load_seconds
            resp.build_seconds = float(m.get("build_seconds", 0.0))
            resp.ann_index = m["ann"]["factory"]
            resp.ann_recall_at_100 = float(m["ann"]["recall_at_100"])
            ndcg = quality.ndcg_at_10(m)
            if ndcg is not None:
                resp.ndcg_at_10 = ndcg
            for step, seconds in m.get("timings_s", {}).items():
                resp.build_timings_seconds[step] = float(seconds)
        return resp

    def ListSnapshots(
        self, request: pb.ListSnapshotsRequest, context: grpc.ServicerContext
    ) -> pb.ListSnapshotsResponse:
        serving = self.store.current_or_none()
        resp = pb.ListSnapshotsResponse()
        for version in self.store.versions():
            directory = self.store.root / version
            entry = resp.snapshots.add(
                version=version,
                active=serving is not None and serving.version == version,
                size_bytes=snapshot.directory_bytes(directory),
            )
            try:
                m = snapshot.read_manifest(directory)
                counts = m.get("counts", {})
                entry.created_time.FromJsonString(m["created_at"])
                entry.num_items = int(counts.get("items", 0))
                entry.num_users = int(counts.get("users", 0))
                entry.num_interactions = int(counts.get("interactions", 0))
                entry.ann_recall_at_100 = float(m.get("ann", {}).get("recall_at_100", 0.0))
                ndcg = quality.ndcg_at_10(m)
                if ndcg is not None:
                    entry.ndcg_at_10 = ndcg
                entry.quality_gate_failures.extend(quality.failures(m, self.config))
            except (snapshot.SnapshotError, KeyError, ValueError) as exc:
                entry.error = str(exc)
        return resp

    def ActivateSnapshot(
        self, request: pb.ActivateSnapshotRequest, context: grpc.ServicerContext
    ) -> pb.ActivateSnapshotResponse:
        version = request.version
        if not version:
            raise InvalidArgument("version is required")
        if not snapshot.VERSION_RE.match(version):
            raise InvalidArgument(
                f"version {version!r} is not a snapshot version (like 20261128T041500Z)"
            )
        directory = self.store.root / version
        if not directory.is_dir():
            raise NotFound(
                f"snapshot {version!r} not found under {self.store.root} "
                f"(kept: {', '.join(self.store.versions()) or 'none'})",
                version=version,
            )
        try:
            manifest = snapshot.read_manifest(directory)
        except snapshot.SnapshotError as exc:
            raise SnapshotCorrupt(str(exc), version=version) from exc
        reasons = quality.failures(manifest, self.config)
        if reasons and not request.force:
            raise FailedPrecondition(
                f"snapshot {version} fails the quality gate ({'; '.join(reasons)}); "
                "set force to activate it anyway",
                reason="QUALITY_GATE",
                version=version,
            )
        before = self.store.current_or_none()
        t0 = time.perf_counter()
        try:
            loaded = self.store.activate(version, persist=True)
        except snapshot.SnapshotError as exc:
            raise SnapshotCorrupt(
                f"snapshot {version} cannot be served, still serving "
                f"{before.version if before else 'nothing'}: {exc}",
                version=version,
            ) from exc
        elapsed = time.perf_counter() - t0
        log.info(
            "activated snapshot %s (was %s) in %.2fs%s",
            version,
            before.version if before else "none",
            elapsed,
            " (forced past the quality gate)" if reasons else "",
        )
        return pb.ActivateSnapshotResponse(
            snapshot_version=loaded.version,
            previous_version=before.version if before else "",
            activation_seconds=elapsed,
        )
