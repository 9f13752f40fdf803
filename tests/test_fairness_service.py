"""Fairness over the wire: options in, the report out, errors as INVALID_ARGUMENT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from server.api.reelrank.v1 import ranking_service_pb2 as pb
from server.api.reelrank.v1 import ranking_service_pb2_grpc as pb_grpc
from server.api.reelrank.v1 import types_pb2 as t
from server.app import App
from server.config import ServerConfig
from server.services import convert

ALL = [
    t.FAIRNESS_POLICY_CREATOR_CAP, t.FAIRNESS_POLICY_GROUP_FLOOR, t.FAIRNESS_POLICY_GROUP_SHARES,
    t.FAIRNESS_POLICY_CREATOR_DECAY, t.FAIRNESS_POLICY_DIVERSITY,
    t.FAIRNESS_POLICY_AMORTISED_EXPOSURE, t.FAIRNESS_POLICY_COLD_START_SLOT,
]  # fmt: skip


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> pb_grpc.RankingServiceStub:
    return pb_grpc.RankingServiceStub(channel)


def test_default_policy_reports_every_field(stub: pb_grpc.RankingServiceStub, app: App) -> None:
    snap = app.store.current()
    resp = stub.Rank(pb.RankRequest(user_id=snap.user_ids[3], num_results=20), timeout=10)
    r = resp.fairness_report
    assert list(r.policies) == [
        convert.POLICY_TO_PROTO[p] for p in ServerConfig().fairness.active()
    ]
    assert {g.group for g in r.groups} == set(snap.groups)
    assert sum(g.exposure_share for g in r.groups) == pytest.approx(1.0, abs=1e-5)
    assert all(0 <= g.window_exposure_share <= 1 for g in r.groups)
    assert 0 < r.fair_alpha_adjusted <= 0.1
    assert r.ndcg_loss == pytest.approx(1 - r.dcg_retained, abs=1e-6)
    assert r.max_exposure_ratio >= r.min_exposure_ratio
    assert r.intra_list_diversity > 0
    assert r.constraints_satisfied and not r.relaxed_constraints
    creators = [i.creator_id for i in resp.items]
    cfg = ServerConfig().fairness
    w, cap = cfg.creator_window or len(creators), cfg.max_per_creator
    windows = [creators[s : s + w] for s in range(max(1, len(creators) - w + 1))]
    assert all(max(win.count(c) for c in win) <= cap for win in windows)


def test_options_override_the_defaults(stub: pb_grpc.RankingServiceStub, app: App) -> None:
    snap = app.store.current()
    opts = t.FairnessOptions(
        policies=ALL,
        max_items_per_creator=1,
        creator_window=5,
        fair_alpha=0.05,
        repeat_decay=0.5,
        diversity_lambda=0.7,
        similarity=t.DIVERSITY_SIMILARITY_KEYWORD,
        dpp_window=4,
        group_targets=[t.GroupTarget(group="new_creator", share=0.3)],
        cold_start_position=3,
        exposure_target_fraction=0.9,
    )
    params = convert.fairness(opts, True, ServerConfig())
    assert params.exposure_target_fraction == pytest.approx(0.9)
    assert convert.fairness(t.FairnessOptions(), True, ServerConfig()).exposure_target_fraction == (
        ServerConfig().fairness.exposure_target_fraction
    )
    resp = stub.Rank(
        pb.RankRequest(user_id=snap.user_ids[5], num_results=15, fairness=opts), timeout=10
    )
    r = resp.fairness_report
    assert list(r.policies) == ALL
    targets = {g.group: g.target_share for g in r.groups}
    assert targets["new_creator"] == pytest.approx(0.3)
    assert sum(targets.values()) == pytest.approx(1.0, abs=1e-5)
    creators = [i.creator_id for i in resp.items]
    assert all(len(set(creators[s : s + 5])) == len(creators[s : s + 5]) for s in range(11))
    # GROUP_SHARES: new creators hold floor(0.3 t) of every prefix (the pool has enough).
    new = [i.group == "new_creator" for i in resp.items]
    assert all(sum(new[:p]) >= int(0.3 * p + 1e-9) for p in range(1, len(new) + 1))


def test_rerank_stage_reports_too(stub: pb_grpc.RankingServiceStub, app: App) -> None:
    snap = app.store.current()
    scored = stub.ScoreCandidates(
        pb.ScoreCandidatesRequest(user_id=snap.user_ids[1], item_ids=snap.item_ids[:200]),
        timeout=10,
    )
    resp = stub.RerankCandidates(
        pb.RerankCandidatesRequest(
            items=scored.items, num_results=10,
            fairness=t.FairnessOptions(policy=t.FAIRNESS_POLICY_EXPOSURE),
        ),
        timeout=10,
    )  # fmt: skip
    r = resp.fairness_report
    assert r.policy == t.FAIRNESS_POLICY_EXPOSURE
    assert list(r.policies) == [t.FAIRNESS_POLICY_CREATOR_CAP, t.FAIRNESS_POLICY_GROUP_FLOOR]
    assert r.fair_test_passed


def _pages_recorded(app: App) -> float:
    return sum(
        s.value
        for m in app.metrics.registry.collect()
        if m.name == "reelrank_fairness_pages"
        for s in m.samples
        if s.name == "reelrank_fairness_pages_total"
    )


def test_rerank_stage_pages_reach_the_fairness_metrics(
    stub: pb_grpc.RankingServiceStub, app: App
) -> None:
    snap = app.store.current()
    items = [t.ScoredItem(item_id=i, score=1.0 - j / 100) for j, i in enumerate(snap.item_ids[:50])]
    before = _pages_recorded(app)
    stub.RerankCandidates(pb.RerankCandidatesRequest(items=items, num_results=10), timeout=10)
    assert _pages_recorded(app) == before + 1


@pytest.mark.parametrize(
    ("opts", "needle"),
    [
        (t.FairnessOptions(max_items_per_creator=-1), "max_items_per_creator"),
        (
            t.FairnessOptions(
                group_targets=[
                    t.GroupTarget(group="new_creator", share=0.6),
                    t.GroupTarget(group="established", share=0.6),
                ]
            ),
            "above 1",
        ),
        (t.FairnessOptions(group_targets=[t.GroupTarget(group="aliens", share=0.1)]), "unknown"),
        (t.FairnessOptions(policies=[t.FAIRNESS_POLICY_NONE, t.FAIRNESS_POLICY_DIVERSITY]), "NONE"),
        (t.FairnessOptions(policies=[42]), "not a known FairnessPolicy"),
        (t.FairnessOptions(fair_alpha=1.5), "fair_alpha"),
        (t.FairnessOptions(cold_start_position=0), "cold_start_position"),
        (t.FairnessOptions(dpp_window=-2), "dpp_window"),
        (t.FairnessOptions(exposure_target_fraction=0.0), "exposure_target_fraction"),
    ],
)
def test_invalid_options_are_invalid_argument(
    stub: pb_grpc.RankingServiceStub, opts: Any, needle: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Rank(pb.RankRequest(user_id="u", fairness=opts), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


def test_default_naming_a_group_the_snapshot_lacks_is_the_operators_error(
    built: dict[str, Any],
) -> None:
    """A server default naming an unknown group fails requests that use it as
    FAILED_PRECONDITION (fix the config), not INVALID_ARGUMENT (fix the request)."""
    from server.pipeline.types import FairnessParams
    from tests.conftest import make_app

    bad = make_app(
        Path(built["path"]).parent, fairness=FairnessParams(protected_groups=("aliens",))
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{bad.port}") as ch:
            stub = pb_grpc.RankingServiceStub(ch)
            user = bad.store.current().user_ids[0]
            with pytest.raises(grpc.RpcError) as err:
                stub.Rank(pb.RankRequest(user_id=user), timeout=10)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "aliens" in err.value.details() and "config" in err.value.details()
            items = [t.ScoredItem(item_id=i, score=1.0) for i in bad.store.current().item_ids[:5]]
            with pytest.raises(grpc.RpcError) as err:
                stub.RerankCandidates(pb.RerankCandidatesRequest(items=items), timeout=10)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            # A request that brings its own groups is served.
            opts = t.FairnessOptions(protected_groups=["new_creator"])
            assert stub.Rank(pb.RankRequest(user_id=user, fairness=opts), timeout=10).items
    finally:
        bad.stop(grace=0)
