"""Prometheus metrics and the interceptor that records every RPC.

Per RPC: request count by status code and a latency histogram; per pipeline stage: a latency
histogram; per retrieval source: candidates contributed; the serving snapshot's version and
load time; degradations by stage. With several serving processes each exposes its own
endpoint (port + worker index), which Prometheus scrapes as separate targets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from server.logs import REQUEST_ID, new_request_id

# Log-spaced from 100 µs to 5 s: pipeline stages live at the bottom, slow rebuild-time RPCs top.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
    0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
# Shares and ratios of the fairness report (exposure shares, DCG retained, diversity).
SHARE_BUCKETS = (
    0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 1.0, 1.1,
    1.25, 1.5, 2.0,
)  # fmt: skip
COUNT_BUCKETS = (0, 1, 5, 10, 25, 50, 100, 200, 300, 500, 1000, 2500, 5000, 10000)


class Metrics:
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

    def serve_http(self, port: int, host: str = "127.0.0.1") -> int:
        """Expose /metrics; returns the bound port (0 picks a free one)."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)


class ObservabilityInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Outermost interceptor: request id, latency and status code of every unary RPC."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = details.method.rsplit("/", 1)[-1]
        given = dict(details.invocation_metadata or ()).get("x-request-id")
        metrics = self.metrics

        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            rid = new_request_id(given if isinstance(given, str) else None)
            token = REQUEST_ID.set(rid)
            context.set_trailing_metadata((("x-request-id", rid),))
            t0 = time.perf_counter()
            code = "OK"
            try:
                return inner(request, context)
            except BaseException:
                c = context.code()
                code = c.name if c is not None else "UNKNOWN"
                raise
            finally:
                metrics.child(metrics.latency, method).observe(time.perf_counter() - t0)
                metrics.child(metrics.requests, method, code).inc()
                REQUEST_ID.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
