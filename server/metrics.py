"""Prometheus metrics and the interceptor that records every RPC.

Per RPC: request count by status code and a latency histogram; per pipeline stage: a latency
histogram; per retrieval source: candidates contributed; the serving snapshot's version and
load time; degradations by stage. With several serving processes each exposes its own
endpoint (port + worker index), which Prometheus scrapes as separate targets.

The per-request series are recorded into plain numbers (`_Counter`, `_Gauge`, `_Histogram`)
under one lock per `Metrics`, taken once per request by `Metrics.record_rank` and
`Metrics.record_rpc`; they become Prometheus metric families only when scraped, with the
names, types, labels and buckets prometheus_client's own classes expose (tests/test_metrics.py
holds them to it). Recording a Rank request costs ~8 µs instead of ~29 µs.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Mapping
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from server.handler_cache import AsyncUnary, CodeTrackingContext, Unary, WrappedHandlers
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


_Sample = tuple[str, dict[str, str], float]


class _Series(Protocol):
    def samples(self, created: bool) -> list[_Sample]: ...


S = TypeVar("S", bound=_Series)


class _Family(Collector, Generic[S]):
    """One metric family whose series record into plain Python numbers.

    prometheus_client's metrics take a lock and, for histograms, walk the buckets in Python on
    every call (~4.6 µs per `Histogram.observe`); a Rank request records ~25 observations.
    These families share one lock per `Metrics` (taken once per recorded request by
    `Metrics.record_rank` / `record_rpc`) and find a bucket with `bisect`. At scrape time
    `collect` yields exactly the samples prometheus_client's Counter / Gauge / Histogram would
    (same names, types, help, label order, `le` strings, float values, `_created`).
    """

    _type = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...] = (),
        *,
        registry: CollectorRegistry,
        lock: threading.Lock,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = labelnames
        self._lock = lock
        self._series: dict[tuple[str, ...], S] = {}
        if not labelnames:  # an unlabelled metric has its one series from the start
            self._series[()] = self._new_series()
        registry.register(self)

    def _new_series(self) -> S:
        raise NotImplementedError

    def labels(self, *values: str) -> S:
        """The series of these label values (in `labelnames` order), created on first use."""
        found = self._series.get(values)
        if found is None:
            if len(values) != len(self._labelnames):
                raise ValueError(f"{self._name}: expected labels {self._labelnames}, got {values}")
            with self._lock:
                found = self._series.get(values)
                if found is None:
                    found = self._series[values] = self._new_series()
        return found

    def describe(self) -> Iterable[Metric]:
        return [Metric(self._name, self._documentation, self._type)]

    def collect(self) -> Iterable[Metric]:
        metric = Metric(self._name, self._documentation, self._type)
        created = bool(getattr(prometheus_metrics, "_use_created", True))
        with self._lock:
            rows = [(values, s.samples(created)) for values, s in self._series.items()]
        for values, samples in rows:  # as prometheus_client's MetricWrapperBase.collect
            base = dict(zip(self._labelnames, values, strict=True))
            for suffix, extra, value in samples:
                metric.add_sample(self._name + suffix, {**base, **extra}, value)
        return [metric]


class _CounterSeries:
    __slots__ = ("_lock", "created", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        with self._lock:
            self.value += amount

    def samples(self, created: bool) -> list[_Sample]:
        out: list[_Sample] = [("_total", {}, self.value)]
        if created:
            out.append(("_created", {}, self.created))
        return out


class _GaugeSeries:
    __slots__ = ("_lock", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0

    def set(self, value: float) -> None:
        with self._lock:
            self.value = float(value)

    def samples(self, created: bool) -> list[_Sample]:
        return [("", {}, self.value)]


class _HistogramSeries:
    __slots__ = ("_bounds", "_les", "_lock", "counts", "created", "sum")

    def __init__(self, lock: threading.Lock, bounds: tuple[float, ...], les: tuple[str, ...]):
        self._lock = lock
        self._bounds = bounds
        self._les = les
        self.counts = [0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        with self._lock:
            self.add(amount)

    def add(self, amount: float) -> None:
        """`observe` without the lock (the caller holds it)."""
        self.sum += amount
        if amount == amount:  # NaN lands in no bucket (prometheus_client: `amount <= bound`)
            self.counts[bisect_left(self._bounds, amount)] += 1

    def samples(self, created: bool) -> list[_Sample]:
        out: list[_Sample] = []
        acc = 0.0
        for le, n in zip(self._les, self.counts, strict=True):
            acc += n
            out.append(("_bucket", {"le": le}, acc))
        out.append(("_count", {}, acc))
        if self._bounds[0] >= 0:
            out.append(("_sum", {}, self.sum))
        if created:
            out.append(("_created", {}, self.created))
        return out


class _Counter(_Family[_CounterSeries]):
    _type = "counter"

    def _new_series(self) -> _CounterSeries:
        return _CounterSeries(self._lock)


class _Gauge(_Family[_GaugeSeries]):
    _type = "gauge"

    def _new_series(self) -> _GaugeSeries:
        return _GaugeSeries(self._lock)


class _Histogram(_Family[_HistogramSeries]):
    _type = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...] = (),
        *,
        buckets: tuple[float, ...],
        registry: CollectorRegistry,
        lock: threading.Lock,
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self._bounds = tuple(bounds)
        # The `le` label values exactly as prometheus_client writes them (untyped there).
        self._les = tuple(str(floatToGoString(b)) for b in bounds)  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry=registry, lock=lock)

    def _new_series(self) -> _HistogramSeries:
        return _HistogramSeries(self._lock, self._bounds, self._les)

    def observe(self, amount: float) -> None:
        """Observe on the unlabelled series."""
        self.labels().observe(amount)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # Labelled series by (metric, label values).
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # One lock for every hot-path series: a request's recording takes it once.
        lock = self._lock = threading.Lock()
        r = self.registry
        self.requests = _Counter(
            "reelrank_requests", "RPCs handled, by method and status code", ("method", "code"),
            registry=r, lock=lock,
        )  # fmt: skip
        self.latency = _Histogram(
            "reelrank_request_latency_seconds", "RPC latency in the server", ("method",),
            buckets=LATENCY_BUCKETS, registry=r, lock=lock,
        )  # fmt: skip
        self.stage_latency = _Histogram(
            "reelrank_stage_latency_seconds", "Rank pipeline stage latency", ("stage",),
            buckets=LATENCY_BUCKETS, registry=r, lock=lock,
        )  # fmt: skip
        self.candidates = _Histogram(
            "reelrank_candidates", "Candidates per request by retrieval source", ("source",),
            buckets=COUNT_BUCKETS, registry=r, lock=lock,
        )  # fmt: skip
        self.degraded = _Counter(
            "reelrank_degraded", "Requests where a stage did less to meet the deadline", ("stage",),
            registry=r, lock=lock,
        )  # fmt: skip
        # Set once per snapshot load: prometheus_client's own metrics.
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
        self.fair_exposure = _Histogram(
            "reelrank_fairness_exposure_share", "Page exposure share per group", ("group",),
            buckets=SHARE_BUCKETS, registry=r, lock=lock,
        )  # fmt: skip
        self.fair_window_share = _Gauge(
            "reelrank_fairness_window_exposure_share",
            "Group exposure share over the server's recent pages", ("group",),
            registry=r, lock=lock,
        )  # fmt: skip
        self.fair_price = _Gauge(
            "reelrank_fairness_exposure_price", "Amortised-exposure dual price per group",
            ("group",), registry=r, lock=lock,
        )  # fmt: skip
        self.fair_min_ratio = _Histogram(
            "reelrank_fairness_min_exposure_ratio", "Smallest group exposure / target per page",
            buckets=SHARE_BUCKETS, registry=r, lock=lock,
        )  # fmt: skip
        self.fair_dcg = _Histogram(
            "reelrank_fairness_dcg_retained", "DCG retained against the ranking order per page",
            buckets=SHARE_BUCKETS, registry=r, lock=lock,
        )  # fmt: skip
        self.fair_ild = _Histogram(
            "reelrank_fairness_intra_list_diversity", "Intra-list diversity per page",
            buckets=SHARE_BUCKETS, registry=r, lock=lock,
        )  # fmt: skip
        self.fair_pages = _Counter(
            "reelrank_fairness_pages",
            "Pages by FA*IR test outcome and whether hard constraints held",
            ("fair_test", "constraints"), registry=r, lock=lock,
        )  # fmt: skip
        self._min_ratio = self.fair_min_ratio.labels()
        self._dcg = self.fair_dcg.labels()
        self._ild = self.fair_ild.labels()
        # Series looked up by what a request brings (see `_rows`, `_fairness_series`).
        self._rows_cache: dict[tuple[_Histogram, tuple[Any, ...]], list[_HistogramSeries]] = {}
        self._group_series: dict[str, tuple[_HistogramSeries, _GaugeSeries, _GaugeSeries]] = {}
        self._pages: dict[tuple[bool, bool], _CounterSeries] = {}

    def child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, cached (label values in the metric's label order)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def record_rank(
        self,
        timings_us: Mapping[str, int],
        source_counts: Mapping[Any, int],
        degradations: Iterable[tuple[str, str]],
        report: Any,
    ) -> None:
        """Record one Rank request under one lock: stage latencies, candidates per source
        (`Source` keys, labelled `name.lower()`), degraded stages (each once) and the page's
        `FairnessReport`: the series `RankingService.observe` records call by call, i.e.

            metrics.record_rank(result.timings_us, result.candidates.source_counts,
                                result.degradations, result.page.report)
        """
        stages = self._rows(self.stage_latency, tuple(timings_us))
        sources = self._rows(self.candidates, tuple(source_counts))
        # Each degraded stage once (a set, iterated as RankingService.observe iterates it).
        degraded = [self.child(self.degraded, s) for s in {s for s, _ in degradations}]
        groups, pages = self._fairness_series(report)
        with self._lock:
            for series, us in zip(stages, timings_us.values(), strict=True):
                series.add(us / 1e6)
            for series, cnt in zip(sources, source_counts.values(), strict=True):
                series.add(cnt)
            for counter in degraded:
                counter.value += 1.0
            self._add_fairness(report, groups, pages)

    def _rows(self, family: _Histogram, keys: tuple[Any, ...]) -> list[_HistogramSeries]:
        """The series of `family` for each key (a stage name, or a `Source` member labelled
        by its lower-cased name), cached by the whole key tuple: a request has the same keys
        as the last."""
        found = self._rows_cache.get((family, keys))
        if found is None:
            if len(self._rows_cache) > 1024:
                self._rows_cache.clear()
            labels = [str(k.name).lower() if isinstance(k, Enum) else str(k) for k in keys]
            found = [family.labels(v) for v in labels]
            self._rows_cache[(family, keys)] = found
        return found

    def observe_fairness(self, report: Any) -> None:
        """Record one page's `server.pipeline.types.FairnessReport`."""
        groups, pages = self._fairness_series(report)
        with self._lock:
            self._add_fairness(report, groups, pages)

    def _fairness_series(
        self, report: Any
    ) -> tuple[list[tuple[_HistogramSeries, _GaugeSeries, _GaugeSeries]], _CounterSeries]:
        by_group = self._group_series
        groups = []
        for g in report.groups:
            found = by_group.get(g.group)
            if found is None:
                found = by_group[g.group] = (
                    self.fair_exposure.labels(g.group),
                    self.fair_window_share.labels(g.group),
                    self.fair_price.labels(g.group),
                )
            groups.append(found)
        key = (bool(report.fair_test_passed), bool(report.constraints_satisfied))
        pages = self._pages.get(key)
        if pages is None:  # created on first use, so only outcomes met are exposed
            pages = self._pages[key] = self.fair_pages.labels(
                "pass" if key[0] else "fail", "held" if key[1] else "relaxed"
            )
        return groups, pages

    def _add_fairness(
        self,
        report: Any,
        groups: list[tuple[_HistogramSeries, _GaugeSeries, _GaugeSeries]],
        pages: _CounterSeries,
    ) -> None:
        """The caller holds the lock."""
        for g, (exposure, window, price) in zip(report.groups, groups, strict=True):
            exposure.add(g.exposure_share)
            window.value = float(g.window_exposure_share)
            price.value = float(g.price)
        self._min_ratio.add(report.min_exposure_ratio)
        self._dcg.add(report.dcg_retained)
        self._ild.add(report.intra_list_diversity)
        pages.value += 1.0

    def record_rpc(self, method: str, code: str, seconds: float) -> None:
        """Record one RPC's latency and status code (the interceptor's call)."""
        latency = self.child(self.latency, method)
        requests = self.child(self.requests, method, code)
        with self._lock:
            latency.add(seconds)
            requests.value += 1.0

    def serving(self, version: str, loaded_at: float) -> None:
        self.snapshot_info.clear()
        self.snapshot_info.labels(version=version).set(1)
        self.snapshot_loaded.set(loaded_at)
        self.snapshot_loads.labels(outcome="ok").inc()

    def serve_http(self, port: int, host: str = "127.0.0.1") -> int:
        """Expose /metrics; returns the bound port (0 picks a free one)."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Outermost interceptor: request id, latency and status code of every unary RPC.

    A coroutine wrapper for coroutine handlers (ranking, inline on the event loop), a plain one
    for sync handlers (admin, in the migration thread pool). Each RPC runs in its own asyncio
    task or pool call, so the request id context variable never leaks between RPCs.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._handlers = WrappedHandlers(self._wrap, self._wrap_async)

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        return self._handlers.get(details.method, await continuation(details))

    @staticmethod
    def _begin(context: Any) -> contextvars.Token[str]:
        given = dict(context.invocation_metadata() or ()).get("x-request-id")
        rid = new_request_id(given if isinstance(given, str) else None)
        context.set_trailing_metadata((("x-request-id", rid),))
        return REQUEST_ID.set(rid)

    @staticmethod
    def _code(context: Any, default: str) -> str:
        """The status an inner wrapper set (a sync one sets it and returns), else `default`."""
        c = context.code()
        return c.name if isinstance(c, grpc.StatusCode) else default

    def _wrap(self, full_method: str, inner: Unary) -> Unary:
        method = full_method.rsplit("/", 1)[-1]
        metrics = self.metrics

        def wrapped(request: Any, context: Any) -> Any:
            context = CodeTrackingContext(context)  # so the code set inside can be read here
            with _Observed(metrics, method, context):
                return inner(request, context)

        return wrapped

    def _wrap_async(self, full_method: str, inner: AsyncUnary) -> AsyncUnary:
        method = full_method.rsplit("/", 1)[-1]
        metrics = self.metrics

        async def wrapped(request: Any, context: Any) -> Any:
            with _Observed(metrics, method, context):
                return await inner(request, context)

        return wrapped


class _Observed:
    """One RPC under observation, around a sync or an async handler alike: its request id set
    for its duration, then its latency and status code recorded (a class, not a generator
    context manager: it runs on every request)."""

    __slots__ = ("context", "method", "metrics", "t0", "token")

    def __init__(self, metrics: Metrics, method: str, context: Any) -> None:
        self.metrics, self.method, self.context = metrics, method, context

    def __enter__(self) -> None:
        self.token = ObservabilityInterceptor._begin(self.context)
        self.t0 = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        code = ObservabilityInterceptor._code(self.context, "OK" if exc_type is None else "UNKNOWN")
        self.metrics.record_rpc(self.method, code, time.perf_counter() - self.t0)
        REQUEST_ID.reset(self.token)
