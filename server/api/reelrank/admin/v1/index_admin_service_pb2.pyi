import datetime

from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RebuildStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REBUILD_STAGE_UNSPECIFIED: _ClassVar[RebuildStage]
    REBUILD_STAGE_QUEUED: _ClassVar[RebuildStage]
    REBUILD_STAGE_LOADING: _ClassVar[RebuildStage]
    REBUILD_STAGE_BUILDING: _ClassVar[RebuildStage]
    REBUILD_STAGE_WRITING: _ClassVar[RebuildStage]
    REBUILD_STAGE_ACTIVATING: _ClassVar[RebuildStage]
    REBUILD_STAGE_DONE: _ClassVar[RebuildStage]
REBUILD_STAGE_UNSPECIFIED: RebuildStage
REBUILD_STAGE_QUEUED: RebuildStage
REBUILD_STAGE_LOADING: RebuildStage
REBUILD_STAGE_BUILDING: RebuildStage
REBUILD_STAGE_WRITING: RebuildStage
REBUILD_STAGE_ACTIVATING: RebuildStage
REBUILD_STAGE_DONE: RebuildStage

class RebuildIndexRequest(_message.Message):
    __slots__ = ("interactions_path", "items_path", "skip_activation", "source", "force")
    INTERACTIONS_PATH_FIELD_NUMBER: _ClassVar[int]
    ITEMS_PATH_FIELD_NUMBER: _ClassVar[int]
    SKIP_ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    interactions_path: str
    items_path: str
    skip_activation: bool
    source: str
    force: bool
    def __init__(self, interactions_path: _Optional[str] = ..., items_path: _Optional[str] = ..., skip_activation: _Optional[bool] = ..., source: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RebuildIndexMetadata(_message.Message):
    __slots__ = ("stage", "progress_percent", "start_time", "end_time", "snapshot_version", "step", "source", "cancel_requested")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    stage: RebuildStage
    progress_percent: float
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    snapshot_version: str
    step: str
    source: str
    cancel_requested: bool
    def __init__(self, stage: _Optional[_Union[RebuildStage, str]] = ..., progress_percent: _Optional[float] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., snapshot_version: _Optional[str] = ..., step: _Optional[str] = ..., source: _Optional[str] = ..., cancel_requested: _Optional[bool] = ...) -> None: ...

class RebuildIndexResponse(_message.Message):
    __slots__ = ("snapshot_version", "activated", "num_items", "num_users", "num_interactions", "build_seconds", "activation_seconds", "pruned_versions")
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_FIELD_NUMBER: _ClassVar[int]
    NUM_ITEMS_FIELD_NUMBER: _ClassVar[int]
    NUM_USERS_FIELD_NUMBER: _ClassVar[int]
    NUM_INTERACTIONS_FIELD_NUMBER: _ClassVar[int]
    BUILD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PRUNED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    snapshot_version: str
    activated: bool
    num_items: int
    num_users: int
    num_interactions: int
    build_seconds: float
    activation_seconds: float
    pruned_versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, snapshot_version: _Optional[str] = ..., activated: _Optional[bool] = ..., num_items: _Optional[int] = ..., num_users: _Optional[int] = ..., num_interactions: _Optional[int] = ..., build_seconds: _Optional[float] = ..., activation_seconds: _Optional[float] = ..., pruned_versions: _Optional[_Iterable[str]] = ...) -> None: ...

class GetIndexStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetIndexStatusResponse(_message.Message):
    __slots__ = ("serving", "snapshot_version", "num_items", "num_users", "created_time", "loaded_time", "ann_index", "ann_recall_at_100", "available_versions", "num_interactions", "build_seconds", "load_seconds", "ndcg_at_10", "loads", "load_failures", "previous_version", "running_operation", "build_timings_seconds")
    class BuildTimingsSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SERVING_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    NUM_ITEMS_FIELD_NUMBER: _ClassVar[int]
    NUM_USERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    LOADED_TIME_FIELD_NUMBER: _ClassVar[int]
    ANN_INDEX_FIELD_NUMBER: _ClassVar[int]
    ANN_RECALL_AT_100_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NUM_INTERACTIONS_FIELD_NUMBER: _ClassVar[int]
    BUILD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NDCG_AT_10_FIELD_NUMBER: _ClassVar[int]
    LOADS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FAILURES_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUNNING_OPERATION_FIELD_NUMBER: _ClassVar[int]
    BUILD_TIMINGS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    serving: bool
    snapshot_version: str
    num_items: int
    num_users: int
    created_time: _timestamp_pb2.Timestamp
    loaded_time: _timestamp_pb2.Timestamp
    ann_index: str
    ann_recall_at_100: float
    available_versions: _containers.RepeatedScalarFieldContainer[str]
    num_interactions: int
    build_seconds: float
    load_seconds: float
    ndcg_at_10: float
    loads: int
    load_failures: int
    previous_version: str
    running_operation: str
    build_timings_seconds: _containers.ScalarMap[str, float]
    def __init__(self, serving: _Optional[bool] = ..., snapshot_version: _Optional[str] = ..., num_items: _Optional[int] = ..., num_users: _Optional[int] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., loaded_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ann_index: _Optional[str] = ..., ann_recall_at_100: _Optional[float] = ..., available_versions: _Optional[_Iterable[str]] = ..., num_interactions: _Optional[int] = ..., build_seconds: _Optional[float] = ..., load_seconds: _Optional[float] = ..., ndcg_at_10: _Optional[float] = ..., loads: _Optional[int] = ..., load_failures: _Optional[int] = ..., previous_version: _Optional[str] = ..., running_operation: _Optional[str] = ..., build_timings_seconds: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ListSnapshotsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[Snapshot]
    def __init__(self, snapshots: _Optional[_Iterable[_Union[Snapshot, _Mapping]]] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("version", "active", "created_time", "num_items", "num_users", "num_interactions", "ann_recall_at_100", "ndcg_at_10", "size_bytes", "quality_gate_failures", "error")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    NUM_ITEMS_FIELD_NUMBER: _ClassVar[int]
    NUM_USERS_FIELD_NUMBER: _ClassVar[int]
    NUM_INTERACTIONS_FIELD_NUMBER: _ClassVar[int]
    ANN_RECALL_AT_100_FIELD_NUMBER: _ClassVar[int]
    NDCG_AT_10_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUALITY_GATE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    version: str
    active: bool
    created_time: _timestamp_pb2.Timestamp
    num_items: int
    num_users: int
    num_interactions: int
    ann_recall_at_100: float
    ndcg_at_10: float
    size_bytes: int
    quality_gate_failures: _containers.RepeatedScalarFieldContainer[str]
    error: str
    def __init__(self, version: _Optional[str] = ..., active: _Optional[bool] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., num_items: _Optional[int] = ..., num_users: _Optional[int] = ..., num_interactions: _Optional[int] = ..., ann_recall_at_100: _Optional[float] = ..., ndcg_at_10: _Optional[float] = ..., size_bytes: _Optional[int] = ..., quality_gate_failures: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ...) -> None: ...

class ActivateSnapshotRequest(_message.Message):
    __slots__ = ("version", "force")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    version: str
    force: bool
    def __init__(self, version: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class ActivateSnapshotResponse(_message.Message):
    __slots__ = ("snapshot_version", "previous_version", "activation_seconds")
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    snapshot_version: str
    previous_version: str
    activation_seconds: float
    def __init__(self, snapshot_version: _Optional[str] = ..., previous_version: _Optional[str] = ..., activation_seconds: _Optional[float] = ...) -> None: ...
