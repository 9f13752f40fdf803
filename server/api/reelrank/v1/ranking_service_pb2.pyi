from server.api.reelrank.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RankRequest(_message.Message):
    __slots__ = ("user_id", "num_results", "recent_events", "exclude_item_ids", "fairness", "debug", "num_candidates", "context", "overrides")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    RECENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_FIELD_NUMBER: _ClassVar[int]
    DEBUG_FIELD_NUMBER: _ClassVar[int]
    NUM_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    num_results: int
    recent_events: _containers.RepeatedCompositeFieldContainer[_types_pb2.UserEvent]
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    fairness: _types_pb2.FairnessOptions
    debug: bool
    num_candidates: int
    context: _types_pb2.RequestContext
    overrides: _types_pb2.StageOverrides
    def __init__(self, user_id: _Optional[str] = ..., num_results: _Optional[int] = ..., recent_events: _Optional[_Iterable[_Union[_types_pb2.UserEvent, _Mapping]]] = ..., exclude_item_ids: _Optional[_Iterable[str]] = ..., fairness: _Optional[_Union[_types_pb2.FairnessOptions, _Mapping]] = ..., debug: _Optional[bool] = ..., num_candidates: _Optional[int] = ..., context: _Optional[_Union[_types_pb2.RequestContext, _Mapping]] = ..., overrides: _Optional[_Union[_types_pb2.StageOverrides, _Mapping]] = ...) -> None: ...

class RankedItem(_message.Message):
    __slots__ = ("item_id", "creator_id", "score", "snapshot_version", "group", "stage_scores", "sources", "explanation")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CREATOR_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    STAGE_SCORES_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    creator_id: str
    score: float
    snapshot_version: str
    group: str
    stage_scores: _types_pb2.StageScores
    sources: _containers.RepeatedScalarFieldContainer[_types_pb2.CandidateSource]
    explanation: _types_pb2.Explanation
    def __init__(self, item_id: _Optional[str] = ..., creator_id: _Optional[str] = ..., score: _Optional[float] = ..., snapshot_version: _Optional[str] = ..., group: _Optional[str] = ..., stage_scores: _Optional[_Union[_types_pb2.StageScores, _Mapping]] = ..., sources: _Optional[_Iterable[_Union[_types_pb2.CandidateSource, str]]] = ..., explanation: _Optional[_Union[_types_pb2.Explanation, _Mapping]] = ...) -> None: ...

class RankResponse(_message.Message):
    __slots__ = ("items", "snapshot_version", "fairness_report", "timings", "source_counts", "cold_start", "degraded", "degradations", "request_id")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_REPORT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    COLD_START_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADATIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RankedItem]
    snapshot_version: str
    fairness_report: _types_pb2.FairnessReport
    timings: _containers.RepeatedCompositeFieldContainer[_types_pb2.StageTiming]
    source_counts: _containers.RepeatedCompositeFieldContainer[_types_pb2.SourceCount]
    cold_start: bool
    degraded: bool
    degradations: _containers.RepeatedCompositeFieldContainer[_types_pb2.Degradation]
    request_id: str
    def __init__(self, items: _Optional[_Iterable[_Union[RankedItem, _Mapping]]] = ..., snapshot_version: _Optional[str] = ..., fairness_report: _Optional[_Union[_types_pb2.FairnessReport, _Mapping]] = ..., timings: _Optional[_Iterable[_Union[_types_pb2.StageTiming, _Mapping]]] = ..., source_counts: _Optional[_Iterable[_Union[_types_pb2.SourceCount, _Mapping]]] = ..., cold_start: _Optional[bool] = ..., degraded: _Optional[bool] = ..., degradations: _Optional[_Iterable[_Union[_types_pb2.Degradation, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RetrieveCandidatesRequest(_message.Message):
    __slots__ = ("user_id", "num_candidates", "recent_events", "exclude_item_ids")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    RECENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    num_candidates: int
    recent_events: _containers.RepeatedCompositeFieldContainer[_types_pb2.UserEvent]
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., num_candidates: _Optional[int] = ..., recent_events: _Optional[_Iterable[_Union[_types_pb2.UserEvent, _Mapping]]] = ..., exclude_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RetrieveCandidatesResponse(_message.Message):
    __slots__ = ("candidates", "source_counts", "snapshot_version")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[_types_pb2.Candidate]
    source_counts: _containers.RepeatedCompositeFieldContainer[_types_pb2.SourceCount]
    snapshot_version: str
    def __init__(self, candidates: _Optional[_Iterable[_Union[_types_pb2.Candidate, _Mapping]]] = ..., source_counts: _Optional[_Iterable[_Union[_types_pb2.SourceCount, _Mapping]]] = ..., snapshot_version: _Optional[str] = ...) -> None: ...

class ScoreCandidatesRequest(_message.Message):
    __slots__ = ("user_id", "recent_events", "item_ids")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RECENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    recent_events: _containers.RepeatedCompositeFieldContainer[_types_pb2.UserEvent]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., recent_events: _Optional[_Iterable[_Union[_types_pb2.UserEvent, _Mapping]]] = ..., item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ScoreCandidatesResponse(_message.Message):
    __slots__ = ("items", "snapshot_version")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_types_pb2.ScoredItem]
    snapshot_version: str
    def __init__(self, items: _Optional[_Iterable[_Union[_types_pb2.ScoredItem, _Mapping]]] = ..., snapshot_version: _Optional[str] = ...) -> None: ...

class RerankCandidatesRequest(_message.Message):
    __slots__ = ("items", "num_results", "fairness")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NUM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_types_pb2.ScoredItem]
    num_results: int
    fairness: _types_pb2.FairnessOptions
    def __init__(self, items: _Optional[_Iterable[_Union[_types_pb2.ScoredItem, _Mapping]]] = ..., num_results: _Optional[int] = ..., fairness: _Optional[_Union[_types_pb2.FairnessOptions, _Mapping]] = ...) -> None: ...

class RerankCandidatesResponse(_message.Message):
    __slots__ = ("items", "fairness_report", "snapshot_version")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_REPORT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_types_pb2.ScoredItem]
    fairness_report: _types_pb2.FairnessReport
    snapshot_version: str
    def __init__(self, items: _Optional[_Iterable[_Union[_types_pb2.ScoredItem, _Mapping]]] = ..., fairness_report: _Optional[_Union[_types_pb2.FairnessReport, _Mapping]] = ..., snapshot_version: _Optional[str] = ...) -> None: ...
