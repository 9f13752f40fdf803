"""Plain data types shared by the pipeline stages."""

from __future__ import annotations

import dataclasses
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
    ITEM_NEIGHBOR = 32


class Policy(enum.Enum):
    """A fairness policy, or (DEFAULT, NONE, EXPOSURE) a preset of policies; docs/FAIRNESS.md."""

    DEFAULT = "default"  # preset: the recommended composition, DEFAULT_POLICIES
    NONE = "none"
    CREATOR_CAP = "creator_cap"
    EXPOSURE = "exposure"  # preset: creator cap + FA*IR group floor
    CREATOR_DECAY = "creator_decay"
    GROUP_FLOOR = "group_floor"
    GROUP_SHARES = "group_shares"
    DIVERSITY = "diversity"
    AMORTISED_EXPOSURE = "amortised_exposure"
    COLD_START_SLOT = "cold_start_slot"


DEFAULT_POLICIES: tuple[Policy, ...] = (
    Policy.CREATOR_CAP,
    Policy.GROUP_FLOOR,
    Policy.CREATOR_DECAY,
    Policy.AMORTISED_EXPOSURE,
    Policy.COLD_START_SLOT,
)
PRESETS: dict[Policy, tuple[Policy, ...]] = {
    Policy.DEFAULT: DEFAULT_POLICIES,
    Policy.NONE: (),
    Policy.EXPOSURE: (Policy.CREATOR_CAP, Policy.GROUP_FLOOR),
}


class Similarity(enum.Enum):
    """What the diversity policy compares items by."""

    EMBEDDING = "embedding"
    KEYWORD = "keyword"


@dataclass(frozen=True)
class Event:
    """A recent event of the requesting user."""

    item_id: str
    event_type: str
    timestamp: float
    watch_ratio: float = 0.0


@dataclass(frozen=True)
class RetrievalQuotas:
    """Candidates wanted per source."""

    ann: int
    keyword: int
    item_neighbor: int
    popular: int
    fresh: int
    cold_start: int

    @staticmethod
    def for_total(total: int, *, known_user: bool, has_events: bool = False) -> RetrievalQuotas:
        """Default split of `total` candidates over the sources.

        A cold user has no stored embedding or profile, so trending and fresh pools carry
        more weight; recent events open the item-neighbour source.
        """
        if known_user:
            shares = [0.45, 0.2, 0.1, 0.1, 0.075, 0.075]
        else:
            shares = [0.15, 0.15, 0.15, 0.3, 0.125, 0.125]
        if not has_events:
            shares[2] = 0.0
        ann, kw, nb, pop, fresh, cold = (max(1, round(total * s)) if s else 0 for s in shares)
        return RetrievalQuotas(ann, kw, nb, pop, fresh, cold)

    def override(self, **given: int) -> RetrievalQuotas:
        """Replace the quotas given as positive numbers; zeros keep the default."""
        return dataclasses.replace(self, **{k: v for k, v in given.items() if v > 0})


@dataclass(frozen=True)
class FairnessParams:
    """Fairness re-ranking settings: server defaults, overridden per request.

    `policies`, when not empty, is the composition in its declared order; otherwise `policy`
    (one policy or a preset) decides. The order sets precedence between hard constraints (a
    group floor declared before the creator cap wins over it when both cannot hold).
    """

    policy: Policy = Policy.DEFAULT
    # At most 2 items of one creator in any 5 consecutive positions: no creator floods a
    # screen, while a strong creator may still appear again further down. A whole-page cap
    # (creator_window=0) cost 7% NDCG@10 on MovieLens and 4 points of DCG on the synthetic feed.
    max_per_creator: int = 2
    creator_window: int = 5  # 0: the whole page
    protected_groups: tuple[str, ...] = ()
    min_protected_share: float = 0.0  # FA*IR p; 0: the protected groups' catalogue share
    policies: tuple[Policy, ...] = ()
    fair_alpha: float = 0.1
    repeat_decay: float = 0.95
    repeat_decay_floor: float = 0.8
    group_targets: tuple[tuple[str, float], ...] = ()  # empty: catalogue shares
    diversity_lambda: float = 0.9
    similarity: Similarity = Similarity.EMBEDDING
    dpp_window: int = 0  # > 0: windowed greedy DPP over the last dpp_window items, not MMR
    exposure_step: float = 0.005
    max_exposure_price: float = 1.0
    # The exposure prices aim at this fraction of each group's target share (> 1 over-aims).
    # The issue asks for >= 90% of target and every point above costs DCG: 0.95 keeps a margin
    # (0.92 of target over 1,000 pages from a cold tracker, 0.95 warm; 0.93 dipped to 0.899 on
    # one user sample) and keeps 0.003 more DCG than 1.0 (BENCHMARKS.md, "cap x aim").
    exposure_target_fraction: float = 0.95
    exposure_window: int = 1000  # pages kept by the server's exposure tracker
    # Creator-level amortised exposure: relevance + weight * clip(1 - e_c / mean, -1, 1) over
    # the tracker's window. 0.03 exposed 802 creators instead of 660 on the synthetic feed for
    # 0.2 points of DCG retained (BENCHMARKS.md); part of AMORTISED_EXPOSURE.
    creator_exposure_weight: float = 0.03
    cold_start_position: int = 5  # 1-based slot of the lifted cold-start item
    cold_start_min_relevance: float = 0.5
    cold_start_groups: tuple[str, ...] = ()  # empty: the protected groups

    def __post_init__(self) -> None:
        # Settings read from a config file arrive as strings and lists: normalise them here.
        def fix(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        try:
            fix("policy", Policy(self.policy))
            fix("policies", tuple(Policy(p) for p in self.policies))
            fix("similarity", Similarity(self.similarity))
        except ValueError as exc:
            raise ValueError(f"fairness: {exc}; known: {[p.value for p in Policy]}") from None
        for name in ("protected_groups", "cold_start_groups"):
            fix(name, tuple(str(g) for g in getattr(self, name)))
        fix("group_targets", tuple((str(g), float(s)) for g, s in self.group_targets))

    def active(self) -> tuple[Policy, ...]:
        """The policies applied, in declared order (presets expanded)."""
        if self.policies:
            out: list[Policy] = []
            for p in self.policies:
                out.extend(PRESETS.get(p, (p,)))
            return tuple(dict.fromkeys(out))
        return PRESETS.get(self.policy, (self.policy,))


@dataclass
class UserState:
    """The requesting user as the stages see it (stored profile folded with recent events)."""

    user_index: int | None
    embedding: NDArray[np.float32]
    q_terms: NDArray[np.int32]
    q_weights: NDArray[np.float32]
    excluded: NDArray[np.int32]  # sorted, unique: seen + recent + caller-excluded items
    recent_items: NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    # The user's items as an ItemKNN query (ids strictly increasing, weights > 0).
    history: NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    history_weights: NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    # Recent items with positive feedback, oldest first: seeds for item-neighbour retrieval.
    positive_recent: NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    # True when the embedding and keyword profile are the snapshot's own (a stored user with
    # no recent events): retrieval may then read the build's precomputed lists.
    stored_query: bool = False

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
    # ItemKNN score divided by its max over the candidates (server/index/collab.py).
    item_knn: NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))


@dataclass
class GroupExposure:
    group: str
    item_count: int
    exposure_share: float
    target_share: float
    window_exposure_share: float = 0.0  # over the server's sliding window (0: no tracker)
    price: float = 0.0  # amortised-exposure dual price applied to this page


@dataclass
class FairnessReport:
    policy: Policy
    groups: list[GroupExposure]
    max_items_per_creator: int
    distinct_creators: int
    min_exposure_ratio: float
    dcg_retained: float
    constraints_satisfied: bool
    policies: tuple[Policy, ...] = ()
    max_exposure_ratio: float = 1.0
    fair_test_passed: bool = True
    fair_alpha_adjusted: float = 0.0
    intra_list_diversity: float = 0.0
    ndcg_loss: float = 0.0
    relaxed: tuple[str, ...] = ()
    cold_start_position: int = 0  # 1-based position of the lifted cold-start item, 0: none


@dataclass
class Page:
    positions: NDArray[np.int64]  # indices into the re-ranker's input arrays, best first
    scores: NDArray[np.float32]
    report: FairnessReport
