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
    __slots__ = ("interactions_path", "items_path", "skip_activation")
    INTERACTIONS_PATH_FIELD_NUMBER: _ClassVar[int]
    ITEMS_PATH_FIELD_NUMBER: _ClassVar[int]
    SKIP_ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    interactions_path: str
    items_path: str
    skip_activation: bool
    def __init__(self, interactions_path: _Optional[str] = ..., items_path: _Optional[str] = ..., skip_activation: _Optional[bool] = ...) -> None: ...

class RebuildIndexMetadata(_message.Message):
    __slots__ = ("stage", "progress_percent", "start_time", "end_time", "snapshot_version")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    stage: RebuildStage
    progress_percent: float
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    snapshot_version: str
    def __init__(self, stage: _Optional[_Union[RebuildStage, str]] = ..., progress_percent: _Optional[float] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., snapshot_version: _Optional[str] = ...) -> None: ...

class RebuildIndexResponse(_message.Message):
    __slots__ = ("snapshot_version", "activated", "num_items", "num_users", "num_interactions", "build_seconds")
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_FIELD_NUMBER: _ClassVar[int]
    NUM_ITEMS_FIELD_NUMBER: _ClassVar[int]
    NUM_USERS_FIELD_NUMBER: _ClassVar[int]
    NUM_INTERACTIONS_FIELD_NUMBER: _ClassVar[int]
    BUILD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    snapshot_version: str
    activated: bool
    num_items: int
    num_users: int
    num_interactions: int
    build_seconds: float
    def __init__(self, snapshot_version: _Optional[str] = ..., activated: _Optional[bool] = ..., num_items: _Optional[int] = ..., num_users: _Optional[int] = ..., num_interactions: _Optional[int] = ..., build_seconds: _Optional[float] = ...) -> None: ...

class GetIndexStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetIndexStatusResponse(_message.Message):
    __slots__ = ("serving", "snapshot_version", "num_items", "num_users", "created_time", "loaded_time", "ann_index", "ann_recall_at_100", "available_versions")
    SERVING_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    NUM_ITEMS_FIELD_NUMBER: _ClassVar[int]
    NUM_USERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    LOADED_TIME_FIELD_NUMBER: _ClassVar[int]
    ANN_INDEX_FIELD_NUMBER: _ClassVar[int]
    ANN_RECALL_AT_100_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    serving: bool
    snapshot_version: str
    num_items: int
    num_users: int
    created_time: _timestamp_pb2.Timestamp
    loaded_time: _timestamp_pb2.Timestamp
    ann_index: str
    ann_recall_at_100: float
    available_versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, serving: _Optional[bool] = ..., snapshot_version: _Optional[str] = ..., num_items: _Optional[int] = ..., num_users: _Optional[int] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., loaded_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ann_index: _Optional[str] = ..., ann_recall_at_100: _Optional[float] = ..., available_versions: _Optional[_Iterable[str]] = ...) -> None: ...
