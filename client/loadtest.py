"""Load generator for ``reelrank.v1.RankingService/Rank``.

Two ways to apply load, as in the gRPC qps client:

* **closed loop** (``concurrency``): ``C`` callers each send the next request as soon as the
  previous one answered. Throughput adapts to the server, so latency never shows queueing
  behind the load generator; it measures service time at a given concurrency and the
  maximum throughput.
* **open loop** (``rate``): requests are *scheduled* at a fixed rate (constant or Poisson
  arrivals) regardless of answers, and latency is measured from the **scheduled** send time.
  When the server (or the client) cannot keep up, requests queue and the latency shows it;
  this is the latency users of a service with that arrival rate would see.

Workers are processes (``multiprocessing`` spawn), each running a ``grpc.aio`` event loop on
its own channel; their results are merged (the histograms are mergeable). Each worker also
measures its own CPU time so the report states the client's per-request overhead.

Examples
--------
>>> from client.loadtest import LoadConfig, Workload, run_load, format_report
>>> cfg = LoadConfig(target="localhost:50051", rate=500.0, duration=10.0)  # doctest: +SKIP
>>> print(format_report(run_load(cfg)))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import math
import multiprocessing
import os
import queue
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import grpc
import grpc.aio
import numpy as np
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from client.histogram import LogHistogram
from client.rank_client import channel_options, fairness_options, resolve_target
from server.api.reelrank.v1 import ranking_service_pb2, types_pb2

__all__ = [
    "PERCENTILES",
    "LoadConfig",
    "LoadReport",
    "Stats",
    "Workload",
    "compare_reports",
    "format_report",
    "load_ids",
    "plot_report",
    "run_load",
]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
REPORT_FORMAT = "reelrank-loadtest/1"
RANK_METHOD = "/reelrank.v1.RankingService/Rank"

# Event mix of the synthetic recent events (roughly a short-video session).
_EVENT_TYPES = np.array(
    [
        types_pb2.EVENT_TYPE_VIEW,
        types_pb2.EVENT_TYPE_COMPLETE,
        types_pb2.EVENT_TYPE_SKIP,
        types_pb2.EVENT_TYPE_LIKE,
        types_pb2.EVENT_TYPE_SHARE,
        types_pb2.EVENT_TYPE_COMMENT,
        types_pb2.EVENT_TYPE_FAVORITE,
        types_pb2.EVENT_TYPE_DISLIKE,
    ]
)
_EVENT_WEIGHTS = np.array([0.45, 0.2, 0.2, 0.08, 0.02, 0.02, 0.02, 0.01])


# ============================================================================================
# Configuration
# ============================================================================================


@dataclass
class Workload:
    """What each request asks for.

    Parameters
    ----------
    users : sequence of str, optional
        Known user ids, most popular first (for example from ``--users-file``). When
        absent, ids are ``f"{user_prefix}{i}"`` for ``i`` in ``range(num_users)``.
    user_prefix : str, default "u"
    num_users : int, default 1000
    zipf_s : float, default 1.1
        Exponent of the Zipf law over user popularity rank (``p(rank r) ~ r**-s``);
        0 draws users uniformly.
    cold_fraction : float, default 0.0
        Share of requests for never-seen users (ids ``cold-<worker>-<n>``).
    events_per_request : int, default 0
        Recent events attached to each request, items drawn uniformly from ``items``.
    items : sequence of str
        Item ids for the recent events (``--items-file``).
    num_results : int, default 20
        Page size asked for; 0 leaves it to the server (then page fullness is not checked).
    fairness_policy : str, optional
        ``none``, ``creator_cap`` or ``exposure``; ``None`` uses the server default.
    num_candidates : int, default 0
        Candidates to retrieve; 0 uses the server default.
    seed : int, default 0
        Seed of the request stream (each worker derives its own).
    """

    users: Sequence[str] | None = None
    user_prefix: str = "u"
    num_users: int = 1000
    zipf_s: float = 1.1
    cold_fraction: float = 0.0
    events_per_request: int = 0
    items: Sequence[str] = ()
    num_results: int = 20
    fairness_policy: str | None = None
    num_candidates: int = 0
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` on an inconsistent workload."""
        if self.users is not None and len(self.users) == 0:
            raise ValueError("the users file is empty")
        if self.users is None and self.num_users < 1:
            raise ValueError("num_users must be >= 1")
        if self.zipf_s < 0:
            raise ValueError("zipf_s must be >= 0")
        if not 0.0 <= self.cold_fraction <= 1.0:
            raise ValueError("cold_fraction must be in [0, 1]")
        if self.events_per_request < 0:
            raise ValueError("events_per_request must be >= 0")
        if self.events_per_request > 0 and not self.items:
            raise ValueError("events_per_request > 0 needs item ids (--items-file)")
        if self.num_results < 0:
            raise ValueError("num_results must be >= 0")
        fairness_options(self.fairness_policy)


@dataclass
class LoadConfig:
    """A load test run.

    Parameters
    ----------
    target : str
        ``HOST:PORT`` or a comma list (round robin).
    concurrency : int, default 8
        Closed loop: callers in total (split over processes). Ignored when ``rate`` is set.
    rate : float, optional
        Open loop: requests per second in total. ``None`` selects the closed loop.
    arrival : {"poisson", "constant"}
        Open-loop inter-arrival times: exponential or fixed.
    duration : float, default 10.0
        Measured seconds (after the warm-up).
    warmup : float, default 2.0
        Seconds of load before measuring; requests *scheduled* in it are not reported.
    processes : int, default 1
        Worker processes; 1 runs the event loop in the calling process.
    deadline : float, default 2.0
        Per-request deadline in seconds.
    channels : int, default 1
        gRPC channels (HTTP/2 connections) per worker process.
    max_in_flight : int, default 20000
        Open loop: outstanding requests per worker beyond which scheduled requests are
        skipped (and counted as ``skipped``) instead of sent.
    workload : Workload
    tls : bool, default False
    root_certificates : bytes, optional
    progress : bool, default True
        Print a progress line on stderr every second.
    connect_timeout : float, default 10.0
        Seconds each worker waits for its channels to connect before giving up.
    check_every : int, default 10
        Parse and check every ``check_every``-th successful answer (page fullness, duplicate
        items, cold start, fairness report); 1 checks every page. The others are counted
        and timed but never deserialised, which keeps the client's cost per request below a
        plain ``grpc.aio`` client's.
    """

    target: str = "localhost:50051"
    concurrency: int = 8
    rate: float | None = None
    arrival: Literal["poisson", "constant"] = "poisson"
    duration: float = 10.0
    warmup: float = 2.0
    processes: int = 1
    deadline: float = 2.0
    channels: int = 1
    max_in_flight: int = 20_000
    workload: Workload = field(default_factory=Workload)
    tls: bool = False
    root_certificates: bytes | None = None
    progress: bool = True
    connect_timeout: float = 10.0
    check_every: int = 10

    @property
    def mode(self) -> Literal["open", "closed"]:
        """``"open"`` when a rate is set, else ``"closed"``."""
        return "open" if self.rate is not None else "closed"

    def validate(self) -> None:
        """Raise ``ValueError`` on an inconsistent configuration."""
        if self.rate is not None and not self.rate > 0:
            raise ValueError("rate must be > 0")
        if self.arrival not in ("poisson", "constant"):
            raise ValueError("arrival must be 'poisson' or 'constant'")
        if self.processes < 1:
            raise ValueError("processes must be >= 1")
        if self.rate is None and self.concurrency < self.processes:
            raise ValueError("concurrency must be >= processes")
        if not self.duration > 0:
            raise ValueError("duration must be > 0")
        if self.warmup < 0:
            raise ValueError("warmup must be >= 0")
        if not self.deadline > 0:
            raise ValueError("deadline must be > 0")
        if self.channels < 1 or self.max_in_flight < 1:
            raise ValueError("channels and max_in_flight must be >= 1")
        if self.check_every < 1:
            raise ValueError("check_every must be >= 1")
        self.workload.validate()

    def describe(self) -> dict[str, Any]:
        """The configuration as a JSON-friendly dict (user and item lists summarised)."""
        wl = asdict(self.workload)
        wl["users"] = None if self.workload.users is None else len(self.workload.users)
        wl["items"] = len(self.workload.items)
        out = asdict(self)
        out["workload"] = wl
        out["root_certificates"] = self.root_certificates is not None
        out["mode"] = self.mode
        return out


def load_ids(path: str | os.PathLike[str], column: str) -> list[str]:
    """Read ids from a file: one per line, or a CSV whose header has ``column``.

    Parameters
    ----------
    path : str or path-like
        Text file (blank lines and ``#`` comments skipped) or CSV.
    column : str
        CSV column to use (``"user_id"`` or ``"item_id"``).
    """
    text = Path(path).read_text(encoding="utf-8")
    first = text.split("\n", 1)[0]
    if "," in first and column in [c.strip() for c in first.split(",")]:
        return [row[column].strip() for row in csv.DictReader(text.splitlines()) if row[column]]
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]


# ============================================================================================
# Results
# ============================================================================================


def _new_hist() -> LogHistogram:
    return LogHistogram(precision=0.01, lowest=1e-6)


@dataclass
class Stats:
    """Counters and histograms of one worker, or merged over workers."""

    latency: LogHistogram = field(default_factory=_new_hist)
    error_latency: LogHistogram = field(default_factory=_new_hist)
    dispatch_lag: LogHistogram = field(default_factory=_new_hist)
    errors: dict[str, int] = field(default_factory=dict)
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    warmup_completed: int = 0
    answers_checked: int = 0
    pages_checked: int = 0
    full_pages: int = 0
    duplicate_pages: int = 0
    cold_start_pages: int = 0
    fairness_pages: int = 0
    constraints_satisfied: int = 0
    sum_max_items_per_creator: float = 0.0
    sum_distinct_creators: float = 0.0
    sum_min_exposure_ratio: float = 0.0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    # Second k of the measured window (by completion time): its latency histogram and errors.
    timeline: list[LogHistogram] = field(default_factory=list)
    timeline_errors: list[int] = field(default_factory=list)

    _HISTS = ("latency", "error_latency", "dispatch_lag")
    _LISTS = ("errors", "timeline", "timeline_errors")

    def merge(self, other: Stats) -> None:
        """Add ``other`` into this (CPU seconds add up; wall time is the longest)."""
        for name in self._HISTS:
            getattr(self, name).merge(getattr(other, name))
        for code, n in other.errors.items():
            self.errors[code] = self.errors.get(code, 0) + n
        for k, hist in enumerate(other.timeline):
            if k < len(self.timeline):
                self.timeline[k].merge(hist)
            else:
                self.timeline.append(hist.copy())
        for k, n in enumerate(other.timeline_errors):
            if k < len(self.timeline_errors):
                self.timeline_errors[k] += n
            else:
                self.timeline_errors.append(n)
        for name, value in vars(other).items():
            if name in self._HISTS or name in self._LISTS:
                continue
            if name == "wall_seconds":
                self.wall_seconds = max(self.wall_seconds, value)
            else:
                setattr(self, name, getattr(self, name) + value)

    @property
    def completed(self) -> int:
        """Measured requests that finished (answered or failed)."""
        return self.ok + self.failed

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict; :meth:`from_dict` restores it."""
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            out[name] = value.to_dict() if name in self._HISTS else value
        out["errors"] = dict(sorted(self.errors.items()))
        out["timeline"] = [h.to_dict() for h in self.timeline]
        out["timeline_errors"] = list(self.timeline_errors)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stats:
        """Inverse of :meth:`to_dict`."""
        stats = cls()
        for name, value in data.items():
            if name in cls._HISTS:
                setattr(stats, name, LogHistogram.from_dict(value))
            elif name == "errors":
                stats.errors = {str(k): int(v) for k, v in value.items()}
            elif name == "timeline":
                stats.timeline = [LogHistogram.from_dict(h) for h in value]
            elif name == "timeline_errors":
                stats.timeline_errors = [int(n) for n in value]
            elif hasattr(stats, name):
                setattr(stats, name, value)
        return stats


@dataclass
class LoadReport:
    """The merged result of a run.

    Attributes
    ----------
    config : dict
        :meth:`LoadConfig.describe` of the run.
    stats : Stats
        Merged counters and histograms of the measured window.
    duration_s : float
        Length of the measured window.
    started_at : str
        ISO-8601 UTC start time.
    """

    config: dict[str, Any]
    stats: Stats
    duration_s: float
    started_at: str = ""

    # ---------------------------------------------------------------- derived figures

    @property
    def achieved_rate(self) -> float:
        """Measured requests completed per second (answered or failed)."""
        return self.stats.completed / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def ok_rate(self) -> float:
        """Successful responses per second."""
        return self.stats.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def cpu_per_request_s(self) -> float:
        """Client CPU seconds per request (every request the workers sent, warm-up included)."""
        n = self.stats.completed + self.stats.warmup_completed
        return self.stats.cpu_seconds / n if n else math.nan

    @property
    def client_cpu_share(self) -> float:
        """Client CPU time over the workers' wall time (1.0 = every worker on a full core)."""
        processes = int(self.config.get("processes", 1))
        wall = self.stats.wall_seconds * processes
        return self.stats.cpu_seconds / wall if wall > 0 else math.nan

    def summary(self) -> dict[str, float | int | None]:
        """Flat headline figures (the ones :func:`compare_reports` compares)."""
        s = self.stats
        lat = s.latency
        out: dict[str, float | int | None] = {
            "ok": s.ok,
            "errors": s.failed,
            "skipped": s.skipped,
            "achieved_rate": self.achieved_rate,
            "ok_rate": self.ok_rate,
            "latency_mean_ms": lat.mean * 1e3 if lat.count else None,
            "latency_min_ms": lat.min * 1e3 if lat.count else None,
        }
        for q in PERCENTILES:
            out[f"latency_p{q:g}_ms"] = lat.percentile(q) * 1e3 if lat.count else None
        out["latency_max_ms"] = lat.max * 1e3 if lat.count else None
        if s.dispatch_lag.count:
            out["dispatch_lag_p99_ms"] = s.dispatch_lag.percentile(99) * 1e3
        out["error_share"] = s.failed / s.completed if s.completed else None
        out["full_page_share"] = s.full_pages / s.pages_checked if s.pages_checked else None
        out["answers_checked"] = s.answers_checked
        out["duplicate_pages"] = s.duplicate_pages
        out["duplicate_page_share"] = (
            s.duplicate_pages / s.answers_checked if s.answers_checked else None
        )
        out["cold_start_share"] = (
            s.cold_start_pages / s.answers_checked if s.answers_checked else None
        )
        fp = s.fairness_pages
        out["mean_max_items_per_creator"] = s.sum_max_items_per_creator / fp if fp else None
        out["mean_distinct_creators"] = s.sum_distinct_creators / fp if fp else None
        out["mean_min_exposure_ratio"] = s.sum_min_exposure_ratio / fp if fp else None
        out["constraints_satisfied_share"] = s.constraints_satisfied / fp if fp else None
        out["client_cpu_us_per_request"] = self.cpu_per_request_s * 1e6
        out["client_cpu_share"] = self.client_cpu_share
        return out

    # ---------------------------------------------------------------- (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict: headline summary plus everything needed to rebuild."""
        return {
            "format": REPORT_FORMAT,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "config": self.config,
            "summary": self.summary(),
            "errors_by_code": dict(sorted(self.stats.errors.items())),
            "stats": self.stats.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadReport:
        """Inverse of :meth:`to_dict`."""
        if data.get("format") != REPORT_FORMAT:
            raise ValueError(f"not a reelrank load test report (format {data.get('format')!r})")
        return cls(
            config=dict(data["config"]),
            stats=Stats.from_dict(data["stats"]),
            duration_s=float(data["duration_s"]),
            started_at=str(data.get("started_at", "")),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the report as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LoadReport:
        """Read a report written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


# ============================================================================================
# Request generation
# ============================================================================================


class RequestFactory:
    """Draws ``RankRequest`` messages for one worker.

    Users follow a Zipf law over popularity rank, a share of requests are for unknown
    (cold) users, and each request may carry random recent events.
    """

    _BATCH = 4096
    _CACHE_USERS = 100_000  # serialised requests kept for the most popular users

    def __init__(self, workload: Workload, worker: int) -> None:
        self.workload = workload
        self.worker = worker
        self._rng = np.random.default_rng([workload.seed, worker])
        self._users: Sequence[str] | None = workload.users
        n = len(workload.users) if workload.users is not None else workload.num_users
        ranks = np.arange(1, n + 1, dtype=np.float64)
        weights = ranks ** (-workload.zipf_s)
        self._cdf = np.cumsum(weights / weights.sum())
        self._cdf[-1] = 1.0
        self._fairness = fairness_options(workload.fairness_policy)
        self._user_batch: list[int] = []
        self._cold_batch: list[bool] = []
        self._cold_counter = 0
        self._items = list(workload.items)
        self._last = n - 1
        self._cache: dict[int, bytes] = {}

    def _refill(self) -> None:
        u = self._rng.random(self._BATCH)
        self._user_batch = np.searchsorted(self._cdf, u, side="right").tolist()
        cold = self._rng.random(self._BATCH) < self.workload.cold_fraction
        self._cold_batch = cold.tolist()

    def _draw(self) -> tuple[int, bool]:
        if not self._user_batch:
            self._refill()
        return min(self._user_batch.pop(), self._last), self._cold_batch.pop()

    def _user(self, index: int, cold: bool) -> str:
        if cold:
            self._cold_counter += 1
            return f"cold-{self.worker}-{self._cold_counter}"
        if self._users is not None:
            return self._users[index]
        return f"{self.workload.user_prefix}{index}"

    def user_id(self) -> str:
        """The next user id."""
        return self._user(*self._draw())

    def events(self, now: float) -> list[types_pb2.UserEvent]:
        """Random recent events, oldest first, within the last hour."""
        k = self.workload.events_per_request
        if k == 0:
            return []
        rng = self._rng
        items = rng.integers(0, len(self._items), size=k)
        kinds = rng.choice(_EVENT_TYPES, size=k, p=_EVENT_WEIGHTS)
        ages = np.sort(rng.random(k) * 3600.0)[::-1]
        ratios = rng.random(k)
        out = []
        for item, kind, age, ratio in zip(
            items.tolist(), kinds.tolist(), ages.tolist(), ratios.tolist(), strict=True
        ):
            ts = now - 1.0 - age
            seconds = int(ts)
            out.append(
                types_pb2.UserEvent(
                    item_id=self._items[item],
                    event_type=kind,
                    timestamp=timestamp_pb2.Timestamp(
                        seconds=seconds, nanos=int((ts - seconds) * 1e9)
                    ),
                    watch_ratio=round(ratio, 3),
                )
            )
        return out

    def request(self) -> ranking_service_pb2.RankRequest:
        """The next request."""
        return self._build(self.user_id())

    def request_bytes(self) -> bytes:
        """The next request, serialised (the same stream as :meth:`request`).

        Requests without events for known users depend on the user only, so they are
        serialised once per user and reused: the load tester's hot path does a dict lookup.
        """
        index, cold = self._draw()
        if cold or self.workload.events_per_request:
            return bytes(self._build(self._user(index, cold)).SerializeToString())
        data = self._cache.get(index)
        if data is None:
            data = bytes(self._build(self._user(index, False)).SerializeToString())
            if index < self._CACHE_USERS:
                self._cache[index] = data
        return data

    def _build(self, user_id: str) -> ranking_service_pb2.RankRequest:
        wl = self.workload
        return ranking_service_pb2.RankRequest(
            user_id=user_id,
            num_results=wl.num_results,
            recent_events=self.events(time.time()),
            fairness=self._fairness,
            num_candidates=wl.num_candidates,
        )


# ============================================================================================
# Worker (one event loop)
# ============================================================================================

ProgressSink = Callable[[dict[str, Any]], None]


@dataclass
class _Plan:
    worker: int
    concurrency: int
    rate: float | None
    phase_offset: float


def _plans(cfg: LoadConfig) -> list[_Plan]:
    p = cfg.processes
    if cfg.rate is not None:
        # Constant arrivals: workers interleave so the merged stream stays evenly spaced.
        # Poisson: a superposition of Poisson streams is Poisson at the summed rate.
        return [_Plan(i, 0, cfg.rate / p, i / cfg.rate) for i in range(p)]
    base, extra = divmod(cfg.concurrency, p)
    return [_Plan(i, base + (1 if i < extra else 0), None, 0.0) for i in range(p)]


class _Worker:
    def __init__(self, cfg: LoadConfig, plan: _Plan, sink: ProgressSink | None) -> None:
        self.cfg = cfg
        self.plan = plan
        self.sink = sink
        self.stats = Stats()
        self.factory = RequestFactory(cfg.workload, plan.worker)
        self._completed_all = 0
        self._num_results = cfg.workload.num_results
        self._open_loop = plan.rate is not None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._check_every = cfg.check_every
        self._until_check = 1  # the first answer is always checked
        # The last per-second cut of the latency histogram and the error count.
        self._cut = _new_hist()
        self._cut_errors = 0
        self._emitted_errors = 0

    # ------------------------------------------------------------ one request

    async def _one(self, call: Any, scheduled: float, measured: bool) -> None:
        # The hot path: a cached serialised request, raw bytes back, one histogram record;
        # only every check_every-th answer is deserialised and checked.
        request = self.factory.request_bytes()
        sent = time.perf_counter()
        stats = self.stats
        try:
            data = await call(request, timeout=self.cfg.deadline)
        except grpc.aio.AioRpcError as error:
            done = time.perf_counter()
            self._completed_all += 1
            if not measured:
                stats.warmup_completed += 1
                return
            code = error.code().name
            stats.errors[code] = stats.errors.get(code, 0) + 1
            stats.failed += 1
            stats.error_latency.record(done - (scheduled if self._open_loop else sent))
            return
        done = time.perf_counter()
        self._completed_all += 1
        if not measured:
            stats.warmup_completed += 1
            return
        stats.ok += 1
        if self._open_loop:
            # Open loop: from the scheduled time (queueing shows); closed loop: from the send.
            stats.latency.record(done - scheduled)
            stats.dispatch_lag.record(sent - scheduled if sent > scheduled else 0.0)
        else:
            stats.latency.record(done - sent)
        self._until_check -= 1
        if self._until_check == 0:
            self._until_check = self._check_every
            self._check(data)

    def _check(self, data: bytes) -> None:
        stats = self.stats
        stats.answers_checked += 1
        if self._num_results:
            stats.pages_checked += 1
        try:
            response = ranking_service_pb2.RankResponse.FromString(data)
        except DecodeError:
            return  # counted as checked, not full: shows as a drop in the full-page share
        items = response.items
        n = len(items)
        if self._num_results and n == self._num_results:
            stats.full_pages += 1
        if n > 1 and len({it.item_id for it in items}) < n:
            stats.duplicate_pages += 1
        if response.cold_start:
            stats.cold_start_pages += 1
        if response.HasField("fairness_report"):
            report = response.fairness_report
            stats.fairness_pages += 1
            stats.sum_max_items_per_creator += report.max_items_per_creator
            stats.sum_distinct_creators += report.distinct_creators
            stats.sum_min_exposure_ratio += report.min_exposure_ratio
            stats.constraints_satisfied += 1 if report.constraints_satisfied else 0

    # ------------------------------------------------------------ loops

    async def _closed(self, calls: list[Any], t_measure: float, t_end: float) -> None:
        async def caller(k: int) -> None:
            call = calls[k % len(calls)]
            one = self._one
            perf_counter = time.perf_counter
            while True:
                now = perf_counter()
                if now >= t_end:
                    return
                await one(call, now, now >= t_measure)

        await asyncio.gather(*(caller(k) for k in range(self.plan.concurrency)))

    async def _open(self, calls: list[Any], t_start: float, t_measure: float, t_end: float) -> None:
        assert self.plan.rate is not None
        rate = self.plan.rate
        poisson = self.cfg.arrival == "poisson"
        rng = np.random.default_rng([self.cfg.workload.seed, self.plan.worker, 1])
        gaps: list[float] = []
        scheduled = t_start + self.plan.phase_offset
        if poisson:
            scheduled = t_start + float(rng.exponential(1.0 / rate))
        k = 0
        in_flight = self._in_flight
        while scheduled < t_end:
            delay = scheduled - time.perf_counter()
            # Sleep until the scheduled time; when behind, still yield so answers are read.
            await asyncio.sleep(delay if delay > 0 else 0)
            measured = scheduled >= t_measure
            if len(in_flight) >= self.cfg.max_in_flight:
                if measured:
                    self.stats.skipped += 1
            else:
                task = asyncio.create_task(self._one(calls[k % len(calls)], scheduled, measured))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            k += 1
            if poisson:
                if not gaps:
                    gaps = rng.exponential(1.0 / rate, size=1024).tolist()
                scheduled += gaps.pop()
            else:
                scheduled += 1.0 / rate
        if in_flight:
            await asyncio.wait(list(in_flight), timeout=self.cfg.deadline + 5.0)

    async def _ticker(self, t_measure: float) -> None:
        """Every second of the measured window: cut the timeline; and report progress."""
        k = math.floor(time.perf_counter() - t_measure) + 1
        while True:
            await asyncio.sleep(max(0.0, t_measure + k - time.perf_counter()))
            if k >= 1:
                self._cut_timeline()
            self._emit(t_measure)
            k += 1

    def _cut_timeline(self) -> None:
        stats = self.stats
        second = stats.latency.since(self._cut)
        errors = stats.failed - self._cut_errors
        self._cut = stats.latency.copy()
        self._cut_errors = stats.failed
        if len(stats.timeline) < math.ceil(self.cfg.duration):
            stats.timeline.append(second)
            stats.timeline_errors.append(errors)
        else:  # calls still answering after the window: part of its last second
            stats.timeline[-1].merge(second)
            stats.timeline_errors[-1] += errors

    def _emit(self, t_measure: float) -> None:
        if self.sink is None:
            return
        failed = self.stats.failed
        self.sink(
            {
                "worker": self.plan.worker,
                "completed": self._completed_all,
                "errors": failed - self._emitted_errors,
                "in_flight": len(self._in_flight),
                "measuring": time.perf_counter() >= t_measure,
                "hist": self.stats.latency.to_dict(),
            }
        )
        self._emitted_errors = failed

    async def run(self, start_wall: float) -> Stats:
        cfg = self.cfg
        resolved, multi = resolve_target(cfg.target)
        options = channel_options(
            retry_services=(), max_retries=0, round_robin=multi, keepalive_ms=60_000
        )
        channels = []
        for c in range(cfg.channels):
            opts = [*options, ("grpc.channel_id", c)]  # distinct args: distinct connections
            if cfg.tls or cfg.root_certificates is not None:
                creds = grpc.ssl_channel_credentials(root_certificates=cfg.root_certificates)
                channels.append(grpc.aio.secure_channel(resolved, creds, options=opts))
            else:
                channels.append(grpc.aio.insecure_channel(resolved, options=opts))
        try:
            for ch in channels:
                try:
                    await asyncio.wait_for(ch.channel_ready(), timeout=cfg.connect_timeout)
                except TimeoutError as exc:
                    raise ConnectionError(
                        f"could not connect to {cfg.target} within {cfg.connect_timeout:g}s"
                    ) from exc
            # Bytes in, bytes out: requests are serialised (and cached) by the factory and
            # answers deserialised only when checked.
            calls = [ch.unary_unary(RANK_METHOD) for ch in channels]
            # Translate the shared wall-clock start into this process's perf_counter.
            t_start = time.perf_counter() + max(0.0, start_wall - time.time())
            t_measure = t_start + cfg.warmup
            t_end = t_measure + cfg.duration
            await asyncio.sleep(max(0.0, t_start - time.perf_counter()))
            cpu0 = time.process_time()
            ticker = asyncio.create_task(self._ticker(t_measure))
            try:
                if self.plan.rate is None:
                    await self._closed(calls, t_measure, t_end)
                else:
                    await self._open(calls, t_start, t_measure, t_end)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            self.stats.cpu_seconds = time.process_time() - cpu0
            self.stats.wall_seconds = time.perf_counter() - t_start
            self._cut_timeline()
            self._emit(t_measure)
            return self.stats
        finally:
            for ch in channels:
                await ch.close()


def _worker_process(
    cfg: LoadConfig, plan: _Plan, out: Any, go: Any, start_wall: Any
) -> None:  # pragma: no cover - runs in a child process
    """Entry point of a worker process: connect, wait for the start signal, run, report."""

    def sink(snapshot: dict[str, Any]) -> None:
        out.put(("progress", plan.worker, snapshot))

    try:
        worker = _Worker(cfg, plan, sink if cfg.progress else None)

        async def main() -> Stats:
            out.put(("ready", plan.worker, None))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, go.wait)
            return await worker.run(start_wall.value)

        stats = asyncio.run(main())
        out.put(("result", plan.worker, stats.to_dict()))
    except BaseException as exc:  # report anything, including KeyboardInterrupt
        out.put(("error", plan.worker, f"{type(exc).__name__}: {exc}"))


# ============================================================================================
# Driver
# ============================================================================================


class _ProgressPrinter:
    """Merges workers' per-second snapshots into one line on stderr."""

    def __init__(self, stream: TextIO | None, workers: int) -> None:
        self.stream = stream
        self.hists = [_new_hist() for _ in range(workers)]
        self.completed = [0] * workers
        self.errors = 0
        self.in_flight = [0] * workers
        self.measuring = False
        self._last_t = time.monotonic()
        self._last_completed = 0
        self._dirty = False

    def update(self, snapshot: Mapping[str, Any]) -> None:
        w = int(snapshot["worker"])
        self.completed[w] = int(snapshot["completed"])
        self.in_flight[w] = int(snapshot["in_flight"])
        self.errors += int(snapshot["errors"])
        self.measuring = self.measuring or bool(snapshot["measuring"])
        self.hists[w] = LogHistogram.from_dict(snapshot["hist"])  # cumulative
        self._dirty = True

    def maybe_print(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.stream is None or not self._dirty or (not force and now - self._last_t < 0.95):
            return
        total = sum(self.completed)
        rate = (total - self._last_completed) / max(now - self._last_t, 1e-9)
        self._last_t, self._last_completed, self._dirty = now, total, False
        hist = _new_hist()
        for h in self.hists:
            hist.merge(h)
        if hist.count:
            lat = (
                f"p50 {hist.percentile(50) * 1e3:7.2f} ms  p99 {hist.percentile(99) * 1e3:7.2f} ms"
            )
        else:
            lat = "p50       - ms  p99       - ms"
        phase = "run   " if self.measuring else "warmup"
        print(
            f"[{phase}] {rate:9.1f} req/s  {lat}  errors {self.errors}  "
            f"in flight {sum(self.in_flight)}  done {total}",
            file=self.stream,
            flush=True,
        )


def run_load(cfg: LoadConfig, *, progress_stream: TextIO | None = None) -> LoadReport:
    """Run a load test and return the merged report.

    Parameters
    ----------
    cfg : LoadConfig
        What to run; validated first.
    progress_stream : file-like, optional
        Where progress lines go when ``cfg.progress`` is set (default ``sys.stderr``).

    Returns
    -------
    LoadReport

    Raises
    ------
    ValueError
        On an invalid configuration.
    ConnectionError
        When a worker cannot connect within ``cfg.connect_timeout`` seconds.
    RuntimeError
        When a worker process fails.
    """
    cfg.validate()
    stream = (progress_stream or sys.stderr) if cfg.progress else None
    printer = _ProgressPrinter(stream, cfg.processes)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    plans = _plans(cfg)
    if cfg.processes == 1:
        stats = _run_in_process(cfg, plans[0], printer)
    else:
        stats = _run_processes(cfg, plans, printer)
    printer.maybe_print(force=True)
    return LoadReport(
        config=cfg.describe(), stats=stats, duration_s=cfg.duration, started_at=started_at
    )


def _run_in_process(cfg: LoadConfig, plan: _Plan, printer: _ProgressPrinter) -> Stats:
    def sink(snapshot: dict[str, Any]) -> None:
        printer.update(snapshot)
        printer.maybe_print()

    worker = _Worker(cfg, plan, sink if cfg.progress else None)
    return asyncio.run(worker.run(time.time()))


def _run_processes(cfg: LoadConfig, plans: list[_Plan], printer: _ProgressPrinter) -> Stats:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    start_wall = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=_worker_process,
            args=(cfg, plan, out, go, start_wall),
            name=f"reelrank-load-{plan.worker}",
            daemon=True,
        )
        for plan in plans
    ]
    for proc in procs:
        proc.start()
    merged = Stats()
    pending = {p.worker for p in plans}
    ready: set[int] = set()
    failures: list[str] = []
    try:
        while pending:
            try:
                kind, worker, payload = out.get(timeout=0.2)
            except queue.Empty:
                dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead and not failures:
                    failures.append(f"worker process exited with code {dead[0].exitcode}")
                if failures and not go.is_set():
                    break
                if failures and all(not p.is_alive() for p in procs):
                    break
                printer.maybe_print()
                continue
            if kind == "ready":
                ready.add(worker)
                if len(ready) == len(procs):
                    # A common start a little in the future, so every worker begins together.
                    start_wall.value = time.time() + 0.2
                    go.set()
            elif kind == "progress":
                printer.update(payload)
                printer.maybe_print()
            elif kind == "result":
                merged.merge(Stats.from_dict(payload))
                pending.discard(worker)
            elif kind == "error":
                failures.append(f"worker {worker}: {payload}")
                pending.discard(worker)
                go.set()  # release the others; they will finish and report
    finally:
        go.set()
        for proc in procs:
            proc.join(timeout=cfg.deadline + 10.0)
            if proc.is_alive():
                proc.terminate()
                proc.join()
    if failures:
        message = "; ".join(failures)
        if "ConnectionError" in message:
            raise ConnectionError(message)
        raise RuntimeError(message)
    return merged


# ============================================================================================
# Reports
# ============================================================================================


def _ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def _table(rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            left = (align[i] if i < len(align) else "r") == "l"
            cells.append(cell.ljust(widths[i]) if left else cell.rjust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return lines


def format_report(report: LoadReport) -> str:
    """Render a report as a text table.

    Parameters
    ----------
    report : LoadReport

    Returns
    -------
    str
    """
    cfg = report.config
    s = report.stats
    summary = report.summary()
    wl = cfg.get("workload", {})
    if cfg.get("mode") == "open":
        how = f"open loop, {cfg.get('arrival')} arrivals at {float(cfg.get('rate') or 0):g} req/s"
    else:
        how = f"closed loop, concurrency {cfg.get('concurrency')}"
    lines = [
        f"reelrank load test against {cfg.get('target')}: {how}, "
        f"{cfg.get('processes')} process(es)",
        f"measured {report.duration_s:g} s after {float(cfg.get('warmup', 0)):g} s warm-up; "
        f"deadline {float(cfg.get('deadline', 0)):g} s; num_results {wl.get('num_results')}",
        "",
    ]
    target_rate = f"{float(cfg['rate']):.1f}" if cfg.get("mode") == "open" else "-"
    lines += _table(
        [
            ["requests", "ok", "errors", "skipped", "achieved req/s", "target req/s"],
            [
                str(s.completed + s.skipped),
                str(s.ok),
                str(s.failed),
                str(s.skipped),
                f"{report.achieved_rate:.1f}",
                target_rate,
            ],
        ],
        "l",
    )
    lines.append("")
    origin = "scheduled send time" if cfg.get("mode") == "open" else "send time"
    lines.append(f"latency of successful calls, ms (from {origin}):")
    header = ["count", "min", *(f"p{q:g}" for q in PERCENTILES), "max", "mean"]
    row = [
        str(s.latency.count),
        _ms(summary["latency_min_ms"]),
        *(_ms(summary[f"latency_p{q:g}_ms"]) for q in PERCENTILES),
        _ms(summary["latency_max_ms"]),
        _ms(summary["latency_mean_ms"]),
    ]
    lines += ["  " + line for line in _table([header, row])]
    if s.dispatch_lag.count:
        lines.append(
            f"  dispatch lag (client behind schedule): p50 "
            f"{s.dispatch_lag.percentile(50) * 1e3:.2f} ms, p99 "
            f"{s.dispatch_lag.percentile(99) * 1e3:.2f} ms, max {s.dispatch_lag.max * 1e3:.2f} ms"
        )
    if s.errors:
        lines += ["", "errors by status code:"]
        err_rows = [["code", "count", "share"]]
        for code, n in sorted(s.errors.items(), key=lambda kv: -kv[1]):
            err_rows.append([code, str(n), f"{n / max(s.completed, 1):.2%}"])
        lines += ["  " + line for line in _table(err_rows, "l")]
        if s.error_latency.count:
            lines.append(
                f"  latency of failed calls: p50 {s.error_latency.percentile(50) * 1e3:.2f} ms, "
                f"p99 {s.error_latency.percentile(99) * 1e3:.2f} ms"
            )

    def pct(key: str) -> str:
        v = summary[key]
        return "-" if v is None else f"{float(v):.1%}"

    def num(key: str) -> str:
        v = summary[key]
        return "-" if v is None else f"{float(v):.3f}"

    every = int(cfg.get("check_every", 1))
    sample = "every answer" if every == 1 else f"every {every}th answer"
    lines += ["", f"answers ({sample} checked: {s.answers_checked} of {s.ok}):"]
    lines += [
        "  " + line
        for line in _table(
            [
                [
                    "full pages",
                    "duplicate pages",
                    "cold start",
                    "max items/creator",
                    "distinct creators",
                    "min exposure ratio",
                    "constraints held",
                ],
                [
                    pct("full_page_share"),
                    str(s.duplicate_pages),
                    pct("cold_start_share"),
                    num("mean_max_items_per_creator"),
                    num("mean_distinct_creators"),
                    num("mean_min_exposure_ratio"),
                    pct("constraints_satisfied_share"),
                ],
            ]
        )
    ]
    lines += [
        "",
        f"client overhead: {report.cpu_per_request_s * 1e6:.0f} us CPU per request "
        f"({s.cpu_seconds:.2f} CPU s over {cfg.get('processes')} process(es), "
        f"{report.client_cpu_share:.0%} of their wall time)",
    ]
    if report.client_cpu_share > 0.85:
        lines.append(
            "  warning: the load generator was CPU-bound; latency and rate reflect the client. "
            "Add --processes or lower the load."
        )
    return "\n".join(lines)


_COMPARE_KEYS: tuple[tuple[str, str, bool | None], ...] = (
    ("achieved_rate", "achieved req/s", False),
    ("ok", "ok", None),
    ("errors", "errors", True),
    ("error_share", "error share", True),
    ("latency_mean_ms", "latency mean ms", True),
    ("latency_p50_ms", "latency p50 ms", True),
    ("latency_p90_ms", "latency p90 ms", True),
    ("latency_p99_ms", "latency p99 ms", True),
    ("latency_p99.9_ms", "latency p99.9 ms", True),
    ("latency_max_ms", "latency max ms", True),
    ("full_page_share", "full page share", False),
    ("duplicate_pages", "duplicate pages", True),
    ("duplicate_page_share", "duplicate page share", True),
    ("mean_max_items_per_creator", "max items/creator", True),
    ("mean_distinct_creators", "distinct creators", False),
    ("mean_min_exposure_ratio", "min exposure ratio", False),
    ("client_cpu_us_per_request", "client CPU us/req", True),
)


def compare_reports(a: LoadReport, b: LoadReport, *, threshold: float = 0.05) -> str:
    """Table of the headline figures of two reports and their differences.

    Parameters
    ----------
    a, b : LoadReport
        Baseline and candidate.
    threshold : float, default 0.05
        Relative change beyond which a row is flagged ``better`` / ``worse``.

    Returns
    -------
    str
    """
    sa, sb = a.summary(), b.summary()
    rows = [["metric", "a", "b", "diff", "change", ""]]
    for key, label, lower_better in _COMPARE_KEYS:
        va, vb = sa.get(key), sb.get(key)
        if va is None and vb is None:
            continue

        def fmt(v: float | int | None) -> str:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return "-"
            return str(v) if isinstance(v, int) else f"{v:.3f}"

        diff = change = verdict = ""
        if va is not None and vb is not None:
            d = float(vb) - float(va)
            diff = f"{d:+.3f}" if isinstance(d, float) else str(d)
            if float(va) != 0:
                rel = d / abs(float(va))
                change = f"{rel:+.1%}"
                if lower_better is not None and abs(rel) >= threshold:
                    verdict = "better" if (rel < 0) == lower_better else "worse"
            elif d != 0 and lower_better is not None:
                verdict = "better" if (d < 0) == lower_better else "worse"
        rows.append([label, fmt(va), fmt(vb), diff, change, verdict])
    ca, cb = a.config, b.config
    lines = [
        f"a: {ca.get('mode')} loop, target {ca.get('target')}, started {a.started_at}",
        f"b: {cb.get('mode')} loop, target {cb.get('target')}, started {b.started_at}",
        "",
    ]
    lines += _table(rows, "l")
    codes = sorted(set(a.stats.errors) | set(b.stats.errors))
    if codes:
        lines += ["", "errors by code (a -> b):"]
        for code in codes:
            lines.append(
                f"  {code}: {a.stats.errors.get(code, 0)} -> {b.stats.errors.get(code, 0)}"
            )
    return "\n".join(lines)


def iter_percentiles(hist: LogHistogram) -> Iterator[tuple[str, float]]:
    """``("p50", seconds)``, ... for the standard percentiles."""
    for q in PERCENTILES:
        yield f"p{q:g}", hist.percentile(q)


# ============================================================================================
# Plot
# ============================================================================================


def plot_backend() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, imported on first use.

    Raises
    ------
    ImportError
        With an install hint when matplotlib is absent.
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            "--plot needs matplotlib, which is not installed: "
            "pip install 'matplotlib>=3.8,<4' (or the reelrank[dev] extra)"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def matplotlib_ticker() -> Any:
    """``matplotlib.ticker`` (after :func:`plot_backend`)."""
    import matplotlib.ticker

    return matplotlib.ticker


def plot_report(report: LoadReport, path: str | os.PathLike[str]) -> None:
    """Write a PNG of a run: latency and rate over time, and the latency histogram.

    The top panel shows, for each second of the measured window, the p50 and p99 of the
    calls that completed in it (left axis, ms, log scale) and the completed requests per
    second (right axis); the bottom panel the latency histogram of the whole window (log
    buckets, merged to about 4 % width) with the p50, p99 and p99.9 marked.

    Parameters
    ----------
    report : LoadReport
    path : str or path-like
        Where to write the PNG.

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    """
    plt = plot_backend()
    s = report.stats
    cfg = report.config
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), layout="constrained")
    if cfg.get("mode") == "open":
        how = f"open loop at {float(cfg.get('rate') or 0):g} req/s ({cfg.get('arrival')})"
    else:
        how = f"closed loop, concurrency {cfg.get('concurrency')}"
    fig.suptitle(
        f"reelrank loadtest against {cfg.get('target')}: {how}, started {report.started_at}"
    )

    seconds = [k + 0.5 for k in range(len(s.timeline))]
    p50 = [h.percentile(50) * 1e3 if h.count else math.nan for h in s.timeline]
    p99 = [h.percentile(99) * 1e3 if h.count else math.nan for h in s.timeline]
    width = [min(1.0, max(report.duration_s - k, 1e-9)) for k in range(len(s.timeline))]
    rates = [
        (h.count + e) / w for h, e, w in zip(s.timeline, s.timeline_errors, width, strict=True)
    ]
    top.plot(seconds, p99, "o-", color="tab:red", label="p99", markersize=3)
    top.plot(seconds, p50, "o-", color="tab:blue", label="p50", markersize=3)
    top.set_yscale("log")
    ticker = matplotlib_ticker()
    plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")

    def minor_label(v: float, _: Any) -> str:
        lead = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        return f"{v:g}" if lead in (2, 5) else ""

    top.yaxis.set_major_formatter(plain)
    top.yaxis.set_minor_formatter(ticker.FuncFormatter(minor_label))
    top.set_xlabel("second of the measured window")
    top.set_ylabel("latency, ms (calls completed in that second)")
    top.grid(True, which="both", alpha=0.3)
    rate_axis = top.twinx()
    rate_axis.step(seconds, rates, where="mid", color="tab:gray", alpha=0.6, label="req/s")
    rate_axis.set_ylabel("completed req/s")
    rate_axis.set_ylim(0, 1.35 * max(rates, default=1.0) or 1.0)
    lines = top.get_legend_handles_labels()
    more = rate_axis.get_legend_handles_labels()
    top.legend(lines[0] + more[0], lines[1] + more[1], loc="upper center", ncols=3)
    top.set_ylim(top.get_ylim()[0], top.get_ylim()[1] * 2.5)  # room for the legend
    errors = sum(s.timeline_errors)
    top.set_title(
        f"per second: {report.achieved_rate:.1f} req/s achieved, {errors} errors", fontsize=10
    )

    lat = s.latency
    if lat.count:
        # Merge the 1 % buckets 4 by 4 so the bars are readable.
        merged: dict[int, int] = {}
        for index, n in lat.buckets().items():
            merged[index // 4] = merged.get(index // 4, 0) + n
        lows = [lat.bucket_bounds(4 * i)[0] * 1e3 for i in sorted(merged)]
        highs = [lat.bucket_bounds(4 * i + 3)[1] * 1e3 for i in sorted(merged)]
        counts = [merged[i] for i in sorted(merged)]
        bottom.bar(
            lows,
            counts,
            width=[h - lo for lo, h in zip(lows, highs, strict=True)],
            align="edge",
            color="tab:blue",
            alpha=0.7,
        )
        bottom.set_xscale("log")
        bottom.xaxis.set_major_formatter(plain)
        bottom.xaxis.set_minor_formatter(ticker.FuncFormatter(minor_label))
        for q, color in ((50, "tab:green"), (99, "tab:red"), (99.9, "tab:purple")):
            value = lat.percentile(q) * 1e3
            bottom.axvline(value, color=color, linestyle="--", label=f"p{q:g} {value:.2f} ms")
        bottom.legend(loc="upper right")
    else:
        bottom.text(0.5, 0.5, "no successful calls", ha="center", transform=bottom.transAxes)
    bottom.set_xlabel("latency, ms (log scale)")
    bottom.set_ylabel("calls")
    bottom.set_title(f"latency histogram of {lat.count} successful calls", fontsize=10)
    bottom.grid(True, which="both", alpha=0.3)
    fig.savefig(os.fspath(path), format="png", dpi=100)
    plt.close(fig)
