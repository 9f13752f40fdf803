"""Metrics: what /metrics exposes and how a request is recorded.

`Metrics` records into plain numbers behind one lock and yields prometheus_client's metric
families at scrape time. `ReferenceMetrics` below is the previous implementation (prometheus
Counter/Gauge/Histogram objects); the same observations must give the same exposition, byte
for byte apart from the `_created` timestamps.
"""

from __future__ import annotations

import math
import re
import threading
from typing import Any

import prometheus_client
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from server.metrics import COUNT_BUCKETS, LATENCY_BUCKETS, SHARE_BUCKETS, Metrics
from server.pipeline.types import FairnessReport, GroupExposure, Policy, Source


class ReferenceMetrics:
    """server.metrics.Metrics as it was: prometheus_client's own metric classes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # Labelled children by (metric, label values): `labels()` costs a few microseconds
        # per call, and a Rank request records ~20 series.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "reelrank_requests",
            "RPCs handled, by method and status code",
            ["method", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "reelrank_request_latency_seconds", "RPC latency in the server", ["method"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.stage_latency = Histogram(
            "reelrank_stage_latency_seconds", "Rank pipeline stage latency", ["stage"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.candidates = Histogram(
            "reelrank_candidates", "Candidates per request by retrieval source", ["source"],
            buckets=COUNT_BUCKETS, registry=r,
        )  # fmt: skip
        self.degraded = Counter(
            "reelrank_degraded", "Requests where a stage did less to meet the deadline", ["stage"],
            registry=r,
        )  # fmt: skip
        self.snapshot_info = Gauge(
            "reelrank_snapshot_info", "Serving snapshot (value 1, version as label)", ["version"],
            registry=r,
        )  # fmt: skip
        self.snapshot_loaded = Gauge(
            "reelrank_snapshot_loaded_timestamp_seconds", "When the serving snapshot was loaded",
            registry=r,
        )  # fmt: skip
        self.snapshot_loads = Counter(
            "reelrank_snapshot_loads", "Snapshot loads by outcome", ["outcome"], registry=r
        )
        # Fairness of served pages (fields of the FairnessReport, see docs/FAIRNESS.md).
        self.fair_exposure = Histogram(
            "reelrank_fairness_exposure_share", "Page exposure share per group", ["group"],
            buckets=SHARE_BUCKETS, registry=r,
        )  # fmt: skip
        self.fair_window_share = Gauge(
            "reelrank_fairness_window_exposure_share",
            "Group exposure share over the server's recent pages", ["group"], registry=r,
        )  # fmt: skip
        self.fair_price = Gauge(
            "reelrank_fairness_exposure_price", "Amortised-exposure dual price per group",
            ["group"], registry=r,
        )  # fmt: skip
        self.fair_min_ratio = Histogram(
            "reelrank_fairness_min_exposure_ratio", "Smallest group exposure / target per page",
            buckets=SHARE_BUCKETS, registry=r,
        )  # fmt: skip
        self.fair_dcg = Histogram(
            "reelrank_fairness_dcg_retained", "DCG retained against the ranking order per page",
            buckets=SHARE_BUCKETS, registry=r,
        )  # fmt: skip
        self.fair_ild = Histogram(
            "reelrank_fairness_intra_list_diversity", "Intra-list diversity per page",
            buckets=SHARE_BUCKETS, registry=r,
        )  # fmt: skip
        self.fair_pages = Counter(
            "reelrank_fairness_pages",
            "Pages by FA*IR test outcome and whether hard constraints held",
            ["fair_test", "constraints"], registry=r,
        )  # fmt: skip

    def child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, cached (label values in the metric's label order)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def observe_fairness(self, report: Any) -> None:
        """Record one page's `server.pipeline.types.FairnessReport`."""
        for g in report.groups:
            self.child(self.fair_exposure, g.group).observe(g.exposure_share)
            self.child(self.fair_window_share, g.group).set(g.window_exposure_share)
            self.child(self.fair_price, g.group).set(g.price)
        self.fair_min_ratio.observe(report.min_exposure_ratio)
        self.fair_dcg.observe(report.dcg_retained)
        self.fair_ild.observe(report.intra_list_diversity)
        self.child(
            self.fair_pages,
            "pass" if report.fair_test_passed else "fail",
            "held" if report.constraints_satisfied else "relaxed",
        ).inc()

    def serving(self, version: str, loaded_at: float) -> None:
        self.snapshot_info.clear()
        self.snapshot_info.labels(version=version).set(1)
        self.snapshot_loaded.set(loaded_at)
        self.snapshot_loads.labels(outcome="ok").inc()


def reference_observe(m: ReferenceMetrics, req: dict[str, Any]) -> None:
    """RankingService.observe and the interceptor's recording, as they were."""
    for stage, us in req["timings"].items():
        m.child(m.stage_latency, stage).observe(us / 1e6)
    for src, cnt in req["sources"].items():
        m.child(m.candidates, str(src.name).lower()).observe(cnt)
    for stage in {s for s, _ in req["degradations"]}:
        m.child(m.degraded, stage).inc()
    m.observe_fairness(req["report"])
    m.child(m.latency, req["method"]).observe(req["seconds"])
    m.child(m.requests, req["method"], req["code"]).inc()


def observe_one_by_one(m: Metrics, req: dict[str, Any]) -> None:
    """The same calls on the new Metrics: its per-call API (`child(...)`, `observe_fairness`:
    `RerankCandidates` records its pages with it; `Rank` calls `record_rank`)."""
    reference_observe(m, req)  # type: ignore[arg-type]


def record_batched(m: Metrics, req: dict[str, Any]) -> None:
    m.record_rank(req["timings"], req["sources"], req["degradations"], req["report"])
    m.record_rpc(req["method"], req["code"], req["seconds"])


def exposition(registry: CollectorRegistry) -> str:
    text = generate_latest(registry).decode()
    return re.sub(r"^(\S*_created(\{[^}]*\})?) \S+$", r"\1 <time>", text, flags=re.M)


# Values on bucket bounds, between them, past the last, negative, NaN and infinities.
edges = st.sampled_from(sorted({*LATENCY_BUCKETS, *SHARE_BUCKETS, *map(float, COUNT_BUCKETS)}))
values = st.one_of(
    edges,
    st.floats(-1.0, 20000.0),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e-12]),
)
reports = st.builds(
    FairnessReport,
    policy=st.just(Policy.DEFAULT),
    groups=st.lists(
        st.builds(
            GroupExposure,
            group=st.sampled_from(["established", "new_creator", "studio"]),
            item_count=st.integers(0, 20),
            exposure_share=values,
            target_share=st.floats(0, 1),
            window_exposure_share=values,
            price=values,
        ),
        max_size=3,
        unique_by=lambda g: g.group,
    ),
    max_items_per_creator=st.integers(0, 5),
    distinct_creators=st.integers(0, 20),
    min_exposure_ratio=values,
    dcg_retained=values,
    constraints_satisfied=st.booleans(),
    fair_test_passed=st.booleans(),
    intra_list_diversity=values,
)
requests = st.fixed_dictionaries(
    {
        "timings": st.dictionaries(
            st.sampled_from(["retrieval", "ranking", "reranking"]), st.integers(0, 6_000_000)
        ),
        "sources": st.dictionaries(
            st.sampled_from(list(Source)),
            st.one_of(st.integers(0, 20000), st.sampled_from(COUNT_BUCKETS)),
        ),
        "degradations": st.lists(
            st.tuples(st.sampled_from(["retrieval", "ranking"]), st.just("deadline")), max_size=3
        ),
        "report": reports,
        "method": st.sampled_from(["Rank", "RerankCandidates"]),
        "code": st.sampled_from(["OK", "INVALID_ARGUMENT", "NOT_FOUND"]),
        "seconds": values,
    }
)


@settings(max_examples=150, deadline=None)
@given(reqs=st.lists(requests, max_size=12), snapshot=st.booleans())
def test_exposition_matches_the_prometheus_client_metrics(
    reqs: list[dict[str, Any]], snapshot: bool
) -> None:
    ref, one, batched = ReferenceMetrics(), Metrics(), Metrics()
    if snapshot:
        for m in (ref, one, batched):
            m.serving("v7", 1234.5)
    for req in reqs:
        reference_observe(ref, req)
        observe_one_by_one(one, req)
        record_batched(batched, req)
    want = exposition(ref.registry)
    assert exposition(one.registry) == want
    assert exposition(batched.registry) == want
    # The names the registry reserves (its duplicate check) are the same too.
    assert set(batched.registry._names_to_collectors) == set(ref.registry._names_to_collectors)


def _one_group_report() -> FairnessReport:
    """A page's report with one group, for tests that need any valid report."""
    return FairnessReport(
        policy=Policy.DEFAULT,
        groups=[GroupExposure("established", 3, 0.7, 0.8, 0.75, 0.0)],
        max_items_per_creator=1,
        distinct_creators=3,
        min_exposure_ratio=0.9,
        dcg_retained=0.97,
        constraints_satisfied=True,
    )


def test_created_series_follow_the_prometheus_client_switch() -> None:
    req = {
        "timings": {"retrieval": 120},
        "sources": {Source.ANN: 200},
        "degradations": [("ranking", "deadline")],
        "report": _one_group_report(),
        "method": "Rank",
        "code": "OK",
        "seconds": 0.0012,
    }
    ref, new = ReferenceMetrics(), Metrics()
    reference_observe(ref, req)
    record_batched(new, req)
    assert "_created" in exposition(new.registry)
    prometheus_client.disable_created_metrics()
    try:
        text = exposition(new.registry)
        assert "_created" not in text
        assert text == exposition(ref.registry)
    finally:
        prometheus_client.enable_created_metrics()


def test_concurrent_recording_loses_no_observation() -> None:
    m = Metrics()
    report = _one_group_report()
    threads, per_thread = 4, 2000

    def work() -> None:
        for i in range(per_thread):
            m.record_rank({"retrieval": 300 + i % 7}, {Source.ANN: i % 300}, [], report)
            m.record_rpc("Rank", "OK", 0.001)
            m.child(m.stage_latency, "ranking").observe(0.0004)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = float(threads * per_thread)
    text = exposition(m.registry)
    for line in (
        f'reelrank_stage_latency_seconds_count{{stage="retrieval"}} {total}',
        f'reelrank_stage_latency_seconds_count{{stage="ranking"}} {total}',
        f'reelrank_candidates_count{{source="ann"}} {total}',
        f'reelrank_requests_total{{code="OK",method="Rank"}} {total}',
        f'reelrank_fairness_pages_total{{constraints="held",fair_test="pass"}} {total}',
        f"reelrank_fairness_dcg_retained_count {total}",
    ):
        assert line in text


def test_labels_must_match_the_label_names() -> None:
    m = Metrics()
    try:
        m.requests.labels("Rank")
    except ValueError as exc:
        assert "method" in str(exc)
    else:
        raise AssertionError("one label value for two label names was accepted")
