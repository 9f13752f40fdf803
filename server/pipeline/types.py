"""Plain data types shared by the pipeline stages."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


class Source(enum.IntFlag):
    """Retrieval sources as bits, so one candidate can carry several."""

    ANN = 1
    POPULAR = 2
    FRESH = 4
    COLD_START = 8
    KEYWORD = 16


class Policy(enum.Enum):
    NONE = "none"
    CREATOR_CAP = "creator_cap"
    EXPOSURE = "exposure"


@dataclass(frozen=True)
class Event:
    """A recent event of the requesting user."""

    item_id: str
    event_type: str
    timestamp: float
    watch_ratio: float = 0.0


@dataclass(frozen=True)
class RetrievalQuotas:
    """Candidates wanted per source for a request of `total` candidates."""

    ann: int
    keyword: int
    popular: int
    fresh: int
    cold_start: int

    @staticmethod
    def for_total(total: int, *, known_user: bool) -> RetrievalQuotas:
        # A cold user has no stored embedding or profile: lean on trending and fresh pools.
        shares = (0.5, 0.25, 0.1, 0.075, 0.075) if known_user else (0.2, 0.2, 0.3, 0.15, 0.15)
        ann, kw, pop, fresh, cold = (max(1, round(total * s)) for s in shares)
        return RetrievalQuotas(ann, kw, pop, fresh, cold)


@dataclass(frozen=True)
class FairnessParams:
    policy: Policy = Policy.CREATOR_CAP
    max_per_creator: int = 2
    creator_window: int = 0  # 0: the whole page
    protected_groups: tuple[str, ...] = ()
    min_protected_share: float = 0.2


@dataclass
class UserState:
    """The requesting user as the stages see it (stored profile folded with recent events)."""

    user_index: int | None
    embedding: NDArray[np.float32]
    q_terms: NDArray[np.int32]
    q_weights: NDArray[np.float32]
    excluded: NDArray[np.int32]
    recent_items: NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))

    @property
    def cold(self) -> bool:
        return self.user_index is None


@dataclass
class Candidates:
    items: NDArray[np.int32]
    sources: NDArray[np.uint8]
    retrieval_score: NDArray[np.float32]
    source_counts: dict[Source, int]


@dataclass
class Scores:
    items: NDArray[np.int32]
    total: NDArray[np.float32]
    keyword: NDArray[np.float32]
    embedding: NDArray[np.float32]
    popularity: NDArray[np.float32]
    freshness: NDArray[np.float32]


@dataclass
class GroupExposure:
    group: str
    item_count: int
    exposure_share: float
    target_share: float


@dataclass
class FairnessReport:
    policy: Policy
    groups: list[GroupExposure]
    max_items_per_creator: int
    distinct_creators: int
    min_exposure_ratio: float
    dcg_retained: float
    constraints_satisfied: bool


@dataclass
class Page:
    positions: NDArray[np.int64]  # indices into the re-ranker's input arrays, best first
    scores: NDArray[np.float32]
    report: FairnessReport
