"""A fake of ``IndexAdminService`` and ``google.longrunning.Operations``, for tests.

Kept apart from :mod:`client.fake_server` so the data-plane fake never needs the admin
generated code.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.longrunning import operations_pb2_grpc, operations_proto_pb2
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import status_pb2

from server.api.reelrank.admin.v1 import (
    index_admin_service_pb2,
    index_admin_service_pb2_grpc,
)

__all__ = ["FakeAdminService"]


@dataclass
class _Operation:
    name: str
    request: Any
    polls: int = 0
    op: operations_proto_pb2.Operation = field(default_factory=operations_proto_pb2.Operation)


class FakeAdminService(
    index_admin_service_pb2_grpc.IndexAdminServiceServicer,
    operations_pb2_grpc.OperationsServicer,  # type: ignore[misc]
):
    """``IndexAdminService`` + ``Operations``: a rebuild finishes after ``polls_to_finish``.

    A rebuild whose ``interactions_path`` contains ``"bad"`` finishes with an
    ``INVALID_ARGUMENT`` error. Every call needs ``authorization: Bearer <token>``.
    """

    _STAGES = (
        index_admin_service_pb2.REBUILD_STAGE_QUEUED,
        index_admin_service_pb2.REBUILD_STAGE_LOADING,
        index_admin_service_pb2.REBUILD_STAGE_BUILDING,
        index_admin_service_pb2.REBUILD_STAGE_WRITING,
        index_admin_service_pb2.REBUILD_STAGE_ACTIVATING,
    )

    def __init__(self, token: str = "test-token", polls_to_finish: int = 3) -> None:
        self.token = token
        self.polls_to_finish = polls_to_finish
        self.operations: dict[str, _Operation] = {}
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _auth(self, context: grpc.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata())
        if metadata.get("authorization") != f"Bearer {self.token}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong admin token")

    def _metadata(self, op: _Operation, stage: int, percent: float) -> any_pb2.Any:
        packed = any_pb2.Any()
        packed.Pack(
            index_admin_service_pb2.RebuildIndexMetadata(
                stage=stage,  # type: ignore[arg-type]
                progress_percent=percent,
                start_time=timestamp_pb2.Timestamp(seconds=1_700_000_000),
                snapshot_version="v2",
            )
        )
        return packed

    def RebuildIndex(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.calls["RebuildIndex"] += 1
        self._auth(context)
        with self._lock:
            name = f"operations/rebuild-{len(self.operations) + 1}"
            op = _Operation(name=name, request=request)
            op.op.name = name
            op.op.metadata.CopyFrom(self._metadata(op, self._STAGES[0], 0.0))
            self.operations[name] = op
        return op.op

    def GetOperation(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.calls["GetOperation"] += 1
        self._auth(context)
        with self._lock:
            op = self.operations.get(request.name)
            if op is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"no operation {request.name}")
            assert op is not None
            op.polls += 1
            if op.op.done:
                return op.op
            if op.polls >= self.polls_to_finish:
                op.op.done = True
                op.op.metadata.CopyFrom(
                    self._metadata(op, index_admin_service_pb2.REBUILD_STAGE_DONE, 100.0)
                )
                if "bad" in op.request.interactions_path:
                    op.op.error.CopyFrom(
                        status_pb2.Status(code=3, message="interactions table has no user_id")
                    )
                else:
                    op.op.response.Pack(
                        index_admin_service_pb2.RebuildIndexResponse(
                            snapshot_version="v2",
                            activated=not op.request.skip_activation,
                            num_items=1000,
                            num_users=200,
                            num_interactions=50_000,
                            build_seconds=1.5,
                        )
                    )
            else:
                stage = self._STAGES[min(op.polls, len(self._STAGES) - 1)]
                percent = 100.0 * op.polls / self.polls_to_finish
                op.op.metadata.CopyFrom(self._metadata(op, stage, percent))
            return op.op

    def GetIndexStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.calls["GetIndexStatus"] += 1
        self._auth(context)
        return index_admin_service_pb2.GetIndexStatusResponse(
            serving=True,
            snapshot_version="v1",
            num_items=1000,
            num_users=200,
            created_time=timestamp_pb2.Timestamp(seconds=1_700_000_000),
            loaded_time=timestamp_pb2.Timestamp(seconds=1_700_000_100),
            ann_index="IVF64,Flat",
            ann_recall_at_100=0.97,
            available_versions=["v1", "v0"],
        )

    def register(self, server: grpc.Server) -> None:
        """Add the admin and operations services to ``server``."""
        index_admin_service_pb2_grpc.add_IndexAdminServiceServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        operations_pb2_grpc.add_OperationsServicer_to_server(self, server)
