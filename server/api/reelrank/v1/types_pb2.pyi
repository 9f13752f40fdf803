import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_VIEW: _ClassVar[EventType]
    EVENT_TYPE_LIKE: _ClassVar[EventType]
    EVENT_TYPE_COMMENT: _ClassVar[EventType]
    EVENT_TYPE_SHARE: _ClassVar[EventType]
    EVENT_TYPE_FAVORITE: _ClassVar[EventType]
    EVENT_TYPE_COMPLETE: _ClassVar[EventType]
    EVENT_TYPE_SKIP: _ClassVar[EventType]
    EVENT_TYPE_DISLIKE: _ClassVar[EventType]

class CandidateSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANDIDATE_SOURCE_UNSPECIFIED: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_ANN: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_POPULAR: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_FRESH: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_COLD_START: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_KEYWORD: _ClassVar[CandidateSource]

class FairnessPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAIRNESS_POLICY_UNSPECIFIED: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_NONE: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_CREATOR_CAP: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_EXPOSURE: _ClassVar[FairnessPolicy]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_VIEW: EventType
EVENT_TYPE_LIKE: EventType
EVENT_TYPE_COMMENT: EventType
EVENT_TYPE_SHARE: EventType
EVENT_TYPE_FAVORITE: EventType
EVENT_TYPE_COMPLETE: EventType
EVENT_TYPE_SKIP: EventType
EVENT_TYPE_DISLIKE: EventType
CANDIDATE_SOURCE_UNSPECIFIED: CandidateSource
CANDIDATE_SOURCE_ANN: CandidateSource
CANDIDATE_SOURCE_POPULAR: CandidateSource
CANDIDATE_SOURCE_FRESH: CandidateSource
CANDIDATE_SOURCE_COLD_START: CandidateSource
CANDIDATE_SOURCE_KEYWORD: CandidateSource
FAIRNESS_POLICY_UNSPECIFIED: FairnessPolicy
FAIRNESS_POLICY_NONE: FairnessPolicy
FAIRNESS_POLICY_CREATOR_CAP: FairnessPolicy
FAIRNESS_POLICY_EXPOSURE: FairnessPolicy

class UserEvent(_message.Message):
    __slots__ = ("item_id", "event_type", "timestamp", "watch_ratio")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    WATCH_RATIO_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    event_type: EventType
    timestamp: _timestamp_pb2.Timestamp
    watch_ratio: float
    def __init__(self, item_id: _Optional[str] = ..., event_type: _Optional[_Union[EventType, str]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., watch_ratio: _Optional[float] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("item_id", "creator_id", "group", "sources", "retrieval_score")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CREATOR_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    creator_id: str
    group: str
    sources: _containers.RepeatedScalarFieldContainer[CandidateSource]
    retrieval_score: float
    def __init__(self, item_id: _Optional[str] = ..., creator_id: _Optional[str] = ..., group: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[CandidateSource, str]]] = ..., retrieval_score: _Optional[float] = ...) -> None: ...

class StageScores(_message.Message):
    __slots__ = ("keyword", "embedding", "popularity", "freshness", "ranking")
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    POPULARITY_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    keyword: float
    embedding: float
    popularity: float
    freshness: float
    ranking: float
    def __init__(self, keyword: _Optional[float] = ..., embedding: _Optional[float] = ..., popularity: _Optional[float] = ..., freshness: _Optional[float] = ..., ranking: _Optional[float] = ...) -> None: ...

class ScoredItem(_message.Message):
    __slots__ = ("item_id", "creator_id", "group", "score", "stage_scores", "sources")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CREATOR_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    STAGE_SCORES_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    creator_id: str
    group: str
    score: float
    stage_scores: StageScores
    sources: _containers.RepeatedScalarFieldContainer[CandidateSource]
    def __init__(self, item_id: _Optional[str] = ..., creator_id: _Optional[str] = ..., group: _Optional[str] = ..., score: _Optional[float] = ..., stage_scores: _Optional[_Union[StageScores, _Mapping]] = ..., sources: _Optional[_Iterable[_Union[CandidateSource, str]]] = ...) -> None: ...

class FairnessOptions(_message.Message):
    __slots__ = ("policy", "max_items_per_creator", "creator_window", "protected_groups", "min_protected_share")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_PER_CREATOR_FIELD_NUMBER: _ClassVar[int]
    CREATOR_WINDOW_FIELD_NUMBER: _ClassVar[int]
    PROTECTED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    MIN_PROTECTED_SHARE_FIELD_NUMBER: _ClassVar[int]
    policy: FairnessPolicy
    max_items_per_creator: int
    creator_window: int
    protected_groups: _containers.RepeatedScalarFieldContainer[str]
    min_protected_share: float
    def __init__(self, policy: _Optional[_Union[FairnessPolicy, str]] = ..., max_items_per_creator: _Optional[int] = ..., creator_window: _Optional[int] = ..., protected_groups: _Optional[_Iterable[str]] = ..., min_protected_share: _Optional[float] = ...) -> None: ...

class GroupExposure(_message.Message):
    __slots__ = ("group", "item_count", "exposure_share", "target_share")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_SHARE_FIELD_NUMBER: _ClassVar[int]
    TARGET_SHARE_FIELD_NUMBER: _ClassVar[int]
    group: str
    item_count: int
    exposure_share: float
    target_share: float
    def __init__(self, group: _Optional[str] = ..., item_count: _Optional[int] = ..., exposure_share: _Optional[float] = ..., target_share: _Optional[float] = ...) -> None: ...

class FairnessReport(_message.Message):
    __slots__ = ("policy", "groups", "max_items_per_creator", "distinct_creators", "min_exposure_ratio", "dcg_retained", "constraints_satisfied")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_PER_CREATOR_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_CREATORS_FIELD_NUMBER: _ClassVar[int]
    MIN_EXPOSURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    DCG_RETAINED_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_SATISFIED_FIELD_NUMBER: _ClassVar[int]
    policy: FairnessPolicy
    groups: _containers.RepeatedCompositeFieldContainer[GroupExposure]
    max_items_per_creator: int
    distinct_creators: int
    min_exposure_ratio: float
    dcg_retained: float
    constraints_satisfied: bool
    def __init__(self, policy: _Optional[_Union[FairnessPolicy, str]] = ..., groups: _Optional[_Iterable[_Union[GroupExposure, _Mapping]]] = ..., max_items_per_creator: _Optional[int] = ..., distinct_creators: _Optional[int] = ..., min_exposure_ratio: _Optional[float] = ..., dcg_retained: _Optional[float] = ..., constraints_satisfied: _Optional[bool] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "micros")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MICROS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    micros: int
    def __init__(self, stage: _Optional[str] = ..., micros: _Optional[int] = ...) -> None: ...

class SourceCount(_message.Message):
    __slots__ = ("source", "count")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    source: CandidateSource
    count: int
    def __init__(self, source: _Optional[_Union[CandidateSource, str]] = ..., count: _Optional[int] = ...) -> None: ...
