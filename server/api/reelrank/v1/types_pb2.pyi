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
    CANDIDATE_SOURCE_ITEM_NEIGHBOR: _ClassVar[CandidateSource]

class FairnessPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAIRNESS_POLICY_UNSPECIFIED: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_NONE: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_CREATOR_CAP: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_EXPOSURE: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_CREATOR_DECAY: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_GROUP_FLOOR: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_GROUP_SHARES: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_DIVERSITY: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_AMORTISED_EXPOSURE: _ClassVar[FairnessPolicy]
    FAIRNESS_POLICY_COLD_START_SLOT: _ClassVar[FairnessPolicy]

class DiversitySimilarity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIVERSITY_SIMILARITY_UNSPECIFIED: _ClassVar[DiversitySimilarity]
    DIVERSITY_SIMILARITY_EMBEDDING: _ClassVar[DiversitySimilarity]
    DIVERSITY_SIMILARITY_KEYWORD: _ClassVar[DiversitySimilarity]
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
CANDIDATE_SOURCE_ITEM_NEIGHBOR: CandidateSource
FAIRNESS_POLICY_UNSPECIFIED: FairnessPolicy
FAIRNESS_POLICY_NONE: FairnessPolicy
FAIRNESS_POLICY_CREATOR_CAP: FairnessPolicy
FAIRNESS_POLICY_EXPOSURE: FairnessPolicy
FAIRNESS_POLICY_CREATOR_DECAY: FairnessPolicy
FAIRNESS_POLICY_GROUP_FLOOR: FairnessPolicy
FAIRNESS_POLICY_GROUP_SHARES: FairnessPolicy
FAIRNESS_POLICY_DIVERSITY: FairnessPolicy
FAIRNESS_POLICY_AMORTISED_EXPOSURE: FairnessPolicy
FAIRNESS_POLICY_COLD_START_SLOT: FairnessPolicy
DIVERSITY_SIMILARITY_UNSPECIFIED: DiversitySimilarity
DIVERSITY_SIMILARITY_EMBEDDING: DiversitySimilarity
DIVERSITY_SIMILARITY_KEYWORD: DiversitySimilarity

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
    __slots__ = ("keyword", "embedding", "popularity", "freshness", "ranking", "item_knn")
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    POPULARITY_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    ITEM_KNN_FIELD_NUMBER: _ClassVar[int]
    keyword: float
    embedding: float
    popularity: float
    freshness: float
    ranking: float
    item_knn: float
    def __init__(self, keyword: _Optional[float] = ..., embedding: _Optional[float] = ..., popularity: _Optional[float] = ..., freshness: _Optional[float] = ..., ranking: _Optional[float] = ..., item_knn: _Optional[float] = ...) -> None: ...

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

class GroupTarget(_message.Message):
    __slots__ = ("group", "share")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    group: str
    share: float
    def __init__(self, group: _Optional[str] = ..., share: _Optional[float] = ...) -> None: ...

class FairnessOptions(_message.Message):
    __slots__ = ("policy", "max_items_per_creator", "creator_window", "protected_groups", "min_protected_share", "policies", "fair_alpha", "repeat_decay", "repeat_decay_floor", "group_targets", "diversity_lambda", "similarity", "exposure_step", "max_exposure_price", "cold_start_position", "cold_start_min_relevance", "creator_exposure_weight", "dpp_window", "exposure_target_fraction")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_PER_CREATOR_FIELD_NUMBER: _ClassVar[int]
    CREATOR_WINDOW_FIELD_NUMBER: _ClassVar[int]
    PROTECTED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    MIN_PROTECTED_SHARE_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    FAIR_ALPHA_FIELD_NUMBER: _ClassVar[int]
    REPEAT_DECAY_FIELD_NUMBER: _ClassVar[int]
    REPEAT_DECAY_FLOOR_FIELD_NUMBER: _ClassVar[int]
    GROUP_TARGETS_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_LAMBDA_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_STEP_FIELD_NUMBER: _ClassVar[int]
    MAX_EXPOSURE_PRICE_FIELD_NUMBER: _ClassVar[int]
    COLD_START_POSITION_FIELD_NUMBER: _ClassVar[int]
    COLD_START_MIN_RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    CREATOR_EXPOSURE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    DPP_WINDOW_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_TARGET_FRACTION_FIELD_NUMBER: _ClassVar[int]
    policy: FairnessPolicy
    max_items_per_creator: int
    creator_window: int
    protected_groups: _containers.RepeatedScalarFieldContainer[str]
    min_protected_share: float
    policies: _containers.RepeatedScalarFieldContainer[FairnessPolicy]
    fair_alpha: float
    repeat_decay: float
    repeat_decay_floor: float
    group_targets: _containers.RepeatedCompositeFieldContainer[GroupTarget]
    diversity_lambda: float
    similarity: DiversitySimilarity
    exposure_step: float
    max_exposure_price: float
    cold_start_position: int
    cold_start_min_relevance: float
    creator_exposure_weight: float
    dpp_window: int
    exposure_target_fraction: float
    def __init__(self, policy: _Optional[_Union[FairnessPolicy, str]] = ..., max_items_per_creator: _Optional[int] = ..., creator_window: _Optional[int] = ..., protected_groups: _Optional[_Iterable[str]] = ..., min_protected_share: _Optional[float] = ..., policies: _Optional[_Iterable[_Union[FairnessPolicy, str]]] = ..., fair_alpha: _Optional[float] = ..., repeat_decay: _Optional[float] = ..., repeat_decay_floor: _Optional[float] = ..., group_targets: _Optional[_Iterable[_Union[GroupTarget, _Mapping]]] = ..., diversity_lambda: _Optional[float] = ..., similarity: _Optional[_Union[DiversitySimilarity, str]] = ..., exposure_step: _Optional[float] = ..., max_exposure_price: _Optional[float] = ..., cold_start_position: _Optional[int] = ..., cold_start_min_relevance: _Optional[float] = ..., creator_exposure_weight: _Optional[float] = ..., dpp_window: _Optional[int] = ..., exposure_target_fraction: _Optional[float] = ...) -> None: ...

class GroupExposure(_message.Message):
    __slots__ = ("group", "item_count", "exposure_share", "target_share", "window_exposure_share", "price")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_SHARE_FIELD_NUMBER: _ClassVar[int]
    TARGET_SHARE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_EXPOSURE_SHARE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    group: str
    item_count: int
    exposure_share: float
    target_share: float
    window_exposure_share: float
    price: float
    def __init__(self, group: _Optional[str] = ..., item_count: _Optional[int] = ..., exposure_share: _Optional[float] = ..., target_share: _Optional[float] = ..., window_exposure_share: _Optional[float] = ..., price: _Optional[float] = ...) -> None: ...

class FairnessReport(_message.Message):
    __slots__ = ("policy", "groups", "max_items_per_creator", "distinct_creators", "min_exposure_ratio", "dcg_retained", "constraints_satisfied", "policies", "max_exposure_ratio", "fair_test_passed", "fair_alpha_adjusted", "intra_list_diversity", "ndcg_loss", "relaxed_constraints", "cold_start_position")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_PER_CREATOR_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_CREATORS_FIELD_NUMBER: _ClassVar[int]
    MIN_EXPOSURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    DCG_RETAINED_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_SATISFIED_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    MAX_EXPOSURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    FAIR_TEST_PASSED_FIELD_NUMBER: _ClassVar[int]
    FAIR_ALPHA_ADJUSTED_FIELD_NUMBER: _ClassVar[int]
    INTRA_LIST_DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    NDCG_LOSS_FIELD_NUMBER: _ClassVar[int]
    RELAXED_CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    COLD_START_POSITION_FIELD_NUMBER: _ClassVar[int]
    policy: FairnessPolicy
    groups: _containers.RepeatedCompositeFieldContainer[GroupExposure]
    max_items_per_creator: int
    distinct_creators: int
    min_exposure_ratio: float
    dcg_retained: float
    constraints_satisfied: bool
    policies: _containers.RepeatedScalarFieldContainer[FairnessPolicy]
    max_exposure_ratio: float
    fair_test_passed: bool
    fair_alpha_adjusted: float
    intra_list_diversity: float
    ndcg_loss: float
    relaxed_constraints: _containers.RepeatedScalarFieldContainer[str]
    cold_start_position: int
    def __init__(self, policy: _Optional[_Union[FairnessPolicy, str]] = ..., groups: _Optional[_Iterable[_Union[GroupExposure, _Mapping]]] = ..., max_items_per_creator: _Optional[int] = ..., distinct_creators: _Optional[int] = ..., min_exposure_ratio: _Optional[float] = ..., dcg_retained: _Optional[float] = ..., constraints_satisfied: _Optional[bool] = ..., policies: _Optional[_Iterable[_Union[FairnessPolicy, str]]] = ..., max_exposure_ratio: _Optional[float] = ..., fair_test_passed: _Optional[bool] = ..., fair_alpha_adjusted: _Optional[float] = ..., intra_list_diversity: _Optional[float] = ..., ndcg_loss: _Optional[float] = ..., relaxed_constraints: _Optional[_Iterable[str]] = ..., cold_start_position: _Optional[int] = ...) -> None: ...

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

class Explanation(_message.Message):
    __slots__ = ("matched_keywords", "similar_to_item_id", "similarity")
    MATCHED_KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_TO_ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    matched_keywords: _containers.RepeatedScalarFieldContainer[str]
    similar_to_item_id: str
    similarity: float
    def __init__(self, matched_keywords: _Optional[_Iterable[str]] = ..., similar_to_item_id: _Optional[str] = ..., similarity: _Optional[float] = ...) -> None: ...

class RequestContext(_message.Message):
    __slots__ = ("locale", "device", "request_time")
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TIME_FIELD_NUMBER: _ClassVar[int]
    locale: str
    device: str
    request_time: _timestamp_pb2.Timestamp
    def __init__(self, locale: _Optional[str] = ..., device: _Optional[str] = ..., request_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RetrievalQuotas(_message.Message):
    __slots__ = ("ann", "keyword", "item_neighbor", "popular", "fresh", "cold_start")
    ANN_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    ITEM_NEIGHBOR_FIELD_NUMBER: _ClassVar[int]
    POPULAR_FIELD_NUMBER: _ClassVar[int]
    FRESH_FIELD_NUMBER: _ClassVar[int]
    COLD_START_FIELD_NUMBER: _ClassVar[int]
    ann: int
    keyword: int
    item_neighbor: int
    popular: int
    fresh: int
    cold_start: int
    def __init__(self, ann: _Optional[int] = ..., keyword: _Optional[int] = ..., item_neighbor: _Optional[int] = ..., popular: _Optional[int] = ..., fresh: _Optional[int] = ..., cold_start: _Optional[int] = ...) -> None: ...

class StageOverrides(_message.Message):
    __slots__ = ("quotas", "blend_weights")
    class BlendWeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    BLEND_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    quotas: RetrievalQuotas
    blend_weights: _containers.ScalarMap[str, float]
    def __init__(self, quotas: _Optional[_Union[RetrievalQuotas, _Mapping]] = ..., blend_weights: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Degradation(_message.Message):
    __slots__ = ("stage", "reason")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    stage: str
    reason: str
    def __init__(self, stage: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
