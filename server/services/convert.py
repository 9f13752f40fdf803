"""Proto ⇄ pipeline conversion and request validation (raises `InvalidArgument`)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

from server.api.reelrank.v1 import types_pb2
from server.config import MAX_CANDIDATES, MAX_EVENTS, MAX_EXCLUDED, MAX_RESULTS, ServerConfig
from server.errors import InvalidArgument
from server.pipeline.types import (
    Event,
    FairnessParams,
    FairnessReport,
    Policy,
    RetrievalQuotas,
    Similarity,
    Source,
)

EVENT_NAMES = {
    types_pb2.EVENT_TYPE_VIEW: "view",
    types_pb2.EVENT_TYPE_LIKE: "like",
    types_pb2.EVENT_TYPE_COMMENT: "comment",
    types_pb2.EVENT_TYPE_SHARE: "share",
    types_pb2.EVENT_TYPE_FAVORITE: "favorite",
    types_pb2.EVENT_TYPE_COMPLETE: "complete",
    types_pb2.EVENT_TYPE_SKIP: "skip",
    types_pb2.EVENT_TYPE_DISLIKE: "dislike",
}
POLICY_FROM_PROTO = {
    types_pb2.FAIRNESS_POLICY_NONE: Policy.NONE,
    types_pb2.FAIRNESS_POLICY_CREATOR_CAP: Policy.CREATOR_CAP,
    types_pb2.FAIRNESS_POLICY_EXPOSURE: Policy.EXPOSURE,
    types_pb2.FAIRNESS_POLICY_CREATOR_DECAY: Policy.CREATOR_DECAY,
    types_pb2.FAIRNESS_POLICY_GROUP_FLOOR: Policy.GROUP_FLOOR,
    types_pb2.FAIRNESS_POLICY_GROUP_SHARES: Policy.GROUP_SHARES,
    types_pb2.FAIRNESS_POLICY_DIVERSITY: Policy.DIVERSITY,
    types_pb2.FAIRNESS_POLICY_AMORTISED_EXPOSURE: Policy.AMORTISED_EXPOSURE,
    types_pb2.FAIRNESS_POLICY_COLD_START_SLOT: Policy.COLD_START_SLOT,
}
SIMILARITY_FROM_PROTO = {
    types_pb2.DIVERSITY_SIMILARITY_EMBEDDING: Similarity.EMBEDDING,
    types_pb2.DIVERSITY_SIMILARITY_KEYWORD: Similarity.KEYWORD,
}
POLICY_TO_PROTO = {v: k for k, v in POLICY_FROM_PROTO.items()} | {
    Policy.DEFAULT: types_pb2.FAIRNESS_POLICY_UNSPECIFIED
}
SOURCE_TO_PROTO = {
    Source.ANN: types_pb2.CANDIDATE_SOURCE_ANN,
    Source.POPULAR: types_pb2.CANDIDATE_SOURCE_POPULAR,
    Source.FRESH: types_pb2.CANDIDATE_SOURCE_FRESH,
    Source.COLD_START: types_pb2.CANDIDATE_SOURCE_COLD_START,
    Source.KEYWORD: types_pb2.CANDIDATE_SOURCE_KEYWORD,
    Source.ITEM_NEIGHBOR: types_pb2.CANDIDATE_SOURCE_ITEM_NEIGHBOR,
}
FUTURE_SLACK_S = 60.0


def bounded(name: str, value: int, default: int, maximum: int) -> int:
    if value < 0:
        raise InvalidArgument(f"{name} must be >= 0 (0 means the server default), got {value}")
    if value > maximum:
        raise InvalidArgument(f"{name} must be <= {maximum}, got {value}")
    return value or default


def events(raw: Sequence[types_pb2.UserEvent]) -> list[Event]:
    if len(raw) > MAX_EVENTS:
        raise InvalidArgument(
            f"recent_events has {len(raw)} entries; at most {MAX_EVENTS} are accepted"
        )
    now = time.time()
    out = []
    for i, e in enumerate(raw):
        where = f"recent_events[{i}]"
        if not e.item_id:
            raise InvalidArgument(f"{where}.item_id is empty")
        name = EVENT_NAMES.get(e.event_type)
        if name is None:
            raise InvalidArgument(
                f"{where}.event_type must be set to a known EventType, got {e.event_type}"
            )
        if not e.HasField("timestamp") or e.timestamp.seconds <= 0:
            raise InvalidArgument(f"{where}.timestamp must be set to a time after 1970-01-01")
        ts = e.timestamp.seconds + e.timestamp.nanos / 1e9
        if ts > now + FUTURE_SLACK_S:
            raise InvalidArgument(f"{where}.timestamp is {ts - now:.0f}s in the future")
        if not math.isfinite(e.watch_ratio) or not 0.0 <= e.watch_ratio <= 1.5:
            raise InvalidArgument(f"{where}.watch_ratio must be in [0, 1.5], got {e.watch_ratio}")
        out.append(Event(e.item_id, name, ts, float(e.watch_ratio)))
    return out


def exclusions(raw: Sequence[str]) -> list[str]:
    if len(raw) > MAX_EXCLUDED:
        raise InvalidArgument(
            f"exclude_item_ids has {len(raw)} entries; at most {MAX_EXCLUDED} are accepted"
        )
    return list(raw)


def fairness(msg: types_pb2.FairnessOptions, has: bool, cfg: ServerConfig) -> FairnessParams:
    """Request options over the server defaults; range checks are `fairness.validate`'s."""
    d = cfg.fairness
    if not has:
        return d
    if msg.policy not in POLICY_FROM_PROTO and msg.policy != types_pb2.FAIRNESS_POLICY_UNSPECIFIED:
        raise InvalidArgument(f"fairness.policy {msg.policy} is not a known FairnessPolicy")
    for j, pol in enumerate(msg.policies):
        if pol not in POLICY_FROM_PROTO:
            raise InvalidArgument(f"fairness.policies[{j}] {pol} is not a known FairnessPolicy")
    if msg.similarity not in SIMILARITY_FROM_PROTO and msg.similarity != 0:
        raise InvalidArgument(f"fairness.similarity {msg.similarity} is not a known similarity")
    if msg.max_items_per_creator < 0:
        raise InvalidArgument(
            f"fairness.max_items_per_creator must be >= 0, got {msg.max_items_per_creator}"
        )
    if msg.creator_window < 0:
        raise InvalidArgument(f"fairness.creator_window must be >= 0, got {msg.creator_window}")
    out = d
    if msg.policy != types_pb2.FAIRNESS_POLICY_UNSPECIFIED or msg.policies:
        # A request that names its policy replaces the server's composition.
        out = dataclasses.replace(
            out,
            policy=POLICY_FROM_PROTO.get(msg.policy, d.policy),
            policies=tuple(POLICY_FROM_PROTO[p] for p in msg.policies),
        )
    changes: dict[str, object] = {
        "max_per_creator": msg.max_items_per_creator or d.max_per_creator,
        "creator_window": msg.creator_window or d.creator_window,
        "protected_groups": tuple(msg.protected_groups) or d.protected_groups,
        "min_protected_share": msg.min_protected_share or d.min_protected_share,
    }
    for name in (
        "fair_alpha",
        "repeat_decay",
        "repeat_decay_floor",
        "diversity_lambda",
        "exposure_step",
        "max_exposure_price",
        "cold_start_min_relevance",
        "creator_exposure_weight",
        "exposure_target_fraction",
    ):
        if msg.HasField(name):
            changes[name] = float(getattr(msg, name))
    for name in ("cold_start_position", "dpp_window"):
        if msg.HasField(name):
            changes[name] = int(getattr(msg, name))
    if msg.group_targets:
        changes["group_targets"] = tuple((t.group, float(t.share)) for t in msg.group_targets)
    if msg.similarity:
        changes["similarity"] = SIMILARITY_FROM_PROTO[msg.similarity]
    return dataclasses.replace(out, **changes)  # type: ignore[arg-type]


def limits(cfg: ServerConfig, num_results: int, num_candidates: int) -> tuple[int, int]:
    n = bounded("num_results", num_results, cfg.default_num_results, MAX_RESULTS)
    c = bounded("num_candidates", num_candidates, cfg.default_num_candidates, MAX_CANDIDATES)
    return n, c


def sources(bits: int) -> list[int]:
    return [p for s, p in SOURCE_TO_PROTO.items() if bits & int(s)]


def report(r: FairnessReport) -> types_pb2.FairnessReport:
    return types_pb2.FairnessReport(
        policy=POLICY_TO_PROTO[r.policy],
        groups=[
            types_pb2.GroupExposure(
                group=g.group,
                item_count=g.item_count,
                exposure_share=g.exposure_share,
                target_share=g.target_share,
                window_exposure_share=g.window_exposure_share,
                price=g.price,
            )
            for g in r.groups
        ],
        max_items_per_creator=r.max_items_per_creator,
        distinct_creators=r.distinct_creators,
        min_exposure_ratio=r.min_exposure_ratio,
        dcg_retained=r.dcg_retained,
        constraints_satisfied=r.constraints_satisfied,
        policies=[POLICY_TO_PROTO[p] for p in r.policies],
        max_exposure_ratio=r.max_exposure_ratio,
        fair_test_passed=r.fair_test_passed,
        fair_alpha_adjusted=r.fair_alpha_adjusted,
        intra_list_diversity=r.intra_list_diversity,
        ndcg_loss=r.ndcg_loss,
        relaxed_constraints=list(r.relaxed),
        cold_start_position=r.cold_start_position,
    )


def source_counts(counts: dict[Source, int]) -> list[types_pb2.SourceCount]:
    return [types_pb2.SourceCount(source=SOURCE_TO_PROTO[s], count=n) for s, n in counts.items()]


def overrides(msg: types_pb2.StageOverrides) -> tuple[RetrievalQuotas | None, dict[str, float]]:
    """Per-request quotas (None when none given) and blend weights, validated."""
    quotas = None
    if msg.HasField("quotas"):
        q = msg.quotas
        given = {f.name: int(getattr(q, f.name)) for f in dataclasses.fields(RetrievalQuotas)}
        for name, value in given.items():
            if value < 0 or value > MAX_CANDIDATES:
                raise InvalidArgument(
                    f"overrides.quotas.{name} must be in [0, {MAX_CANDIDATES}], got {value}"
                )
        quotas = RetrievalQuotas(**given)
    blend = dict(msg.blend_weights)
    for name, w in blend.items():
        if not math.isfinite(w):
            raise InvalidArgument(f"overrides.blend_weights[{name!r}] must be finite, got {w}")
    return quotas, blend
