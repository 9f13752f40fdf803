"""An in-process fake of the reelrank services, for tests and for calibrating the load tester.

The fake answers ``Rank`` with deterministic pages and can inject latencies and errors on a
fixed cycle, recording what it injected so tests can compare the client's measurements with
the truth. It also serves the standard health service; ``client.fake_admin`` fakes the admin
plane.

Magic user ids
--------------
``error:<CODE>``
    ``Rank`` fails with that status code (for example ``error:NOT_FOUND``).
``dup:<anything>``
    The page repeats its first item at the end (for the load tester's answer checks).
``cold-...``
    The page is marked ``cold_start``.

Examples
--------
>>> from client.fake_server import FakeRankingService, start_fake_server
>>> server = start_fake_server(FakeRankingService(latencies=[0.005]))  # doctest: +SKIP
>>> server.target  # doctest: +SKIP
'127.0.0.1:40123'
>>> server.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.api.reelrank.v1 import ranking_service_pb2, ranking_service_pb2_grpc, types_pb2

if TYPE_CHECKING:
    from client.fake_admin import FakeAdminService
    from client.histogram import LogHistogram

__all__ = [
    "FakeRankingService",
    "FakeServer",
    "expected_percentiles",
    "start_fake_server",
]

SNAPSHOT = "fake-snapshot-1"


class FakeRankingService(ranking_service_pb2_grpc.RankingServiceServicer):
    """``RankingService`` with injectable latency and errors.

    Parameters
    ----------
    latencies : sequence of float, optional
        Seconds to sleep in ``Rank``; call ``k`` sleeps ``latencies[k % len(latencies)]``.
    errors : sequence of grpc.StatusCode or None, optional
        Call ``k`` of ``Rank`` fails with ``errors[k % len(errors)]`` (after its latency)
        unless that is ``None``.
    num_creators : int, default 4
        Creators the page's items cycle through.
    catalogue : int, default 1000
        Distinct item ids the pages are drawn from.

    Attributes
    ----------
    calls : collections.Counter
        Calls per method name.
    injected_errors : collections.Counter
        Errors injected by the ``errors`` cycle, by status code name.
    applied_latencies : list of float
        The latency applied to each ``Rank`` call, in call order.
    served_latencies : list of float
        The time each ``Rank`` call really spent sleeping its latency (``perf_counter``,
        including the oversleep of a busy machine), in call order.
    """

    def __init__(
        self,
        *,
        latencies: Sequence[float] | None = None,
        errors: Sequence[grpc.StatusCode | None] | None = None,
        num_creators: int = 4,
        catalogue: int = 1000,
    ) -> None:
        self.latencies = list(latencies or [0.0])
        self.errors = list(errors or [None])
        self.num_creators = num_creators
        self.catalogue = catalogue
        self.calls: Counter[str] = Counter()
        self.injected_errors: Counter[str] = Counter()
        self.applied_latencies: list[float] = []
        self._served: dict[int, float] = {}
        self.requests: list[Any] = []
        self._lock = threading.Lock()
        self._rank_calls = 0

    @property
    def served_latencies(self) -> list[float]:
        """Measured sleep of each ``Rank`` call, in call order."""
        with self._lock:
            return [self._served[k] for k in sorted(self._served)]

    # ------------------------------------------------------------ helpers

    def _count(self, method: str, request: Any) -> None:
        with self._lock:
            self.calls[method] += 1
            if len(self.requests) < 10_000:
                self.requests.append(request)

    def _page(self, user_id: str, n: int, debug: bool) -> list[ranking_service_pb2.RankedItem]:
        start = sum(user_id.encode()) % self.catalogue
        items = []
        for i in range(n):
            creator = i % self.num_creators
            item = ranking_service_pb2.RankedItem(
                item_id=f"item-{(start + i) % self.catalogue}",
                creator_id=f"creator-{creator}",
                group="new_creator" if creator == 0 else "established",
                score=round(1.0 - i / max(n, 1), 6),
                snapshot_version=SNAPSHOT,
            )
            if debug:
                item.stage_scores.CopyFrom(
                    types_pb2.StageScores(
                        keyword=0.5, embedding=0.25, popularity=0.125, freshness=1.0, ranking=0.9
                    )
                )
                item.sources.extend([types_pb2.CANDIDATE_SOURCE_ANN])
            items.append(item)
        return items

    # ------------------------------------------------------------ RPCs

    def Rank(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._count("Rank", request)
        with self._lock:
            k = self._rank_calls
            self._rank_calls += 1
        latency = self.latencies[k % len(self.latencies)]
        with self._lock:
            self.applied_latencies.append(latency)
        t0 = time.perf_counter()
        if latency > 0:
            time.sleep(latency)
        served = time.perf_counter() - t0
        with self._lock:
            self._served[k] = served
        if request.user_id.startswith("error:"):
            code = grpc.StatusCode[request.user_id.removeprefix("error:")]
            context.abort(code, f"injected {code.name} for {request.user_id}")
        error = self.errors[k % len(self.errors)]
        if error is not None:
            with self._lock:
                self.injected_errors[error.name] += 1
            context.abort(error, f"injected {error.name} on call {k}")
        n = request.num_results or 20
        items = self._page(request.user_id, n, request.debug)
        if request.user_id.startswith("dup:") and n > 1:
            items[-1].CopyFrom(items[0])
        excluded = set(request.exclude_item_ids)
        items = [it for it in items if it.item_id not in excluded]
        creators = Counter(it.creator_id for it in items)
        policy = request.fairness.policy or types_pb2.FAIRNESS_POLICY_EXPOSURE
        response = ranking_service_pb2.RankResponse(
            items=items,
            snapshot_version=SNAPSHOT,
            cold_start=request.user_id.startswith("cold-"),
            fairness_report=types_pb2.FairnessReport(
                policy=policy,
                max_items_per_creator=max(creators.values(), default=0),
                distinct_creators=len(creators),
                min_exposure_ratio=0.75,
                dcg_retained=0.98,
                constraints_satisfied=True,
                groups=[
                    types_pb2.GroupExposure(
                        group="new_creator", item_count=1, exposure_share=0.2, target_share=0.25
                    )
                ],
            ),
        )
        if request.debug:
            response.timings.extend(
                [
                    types_pb2.StageTiming(stage="retrieval", micros=1200),
                    types_pb2.StageTiming(stage="ranking", micros=800),
                    types_pb2.StageTiming(stage="reranking", micros=150),
                ]
            )
            response.source_counts.extend(
                [types_pb2.SourceCount(source=types_pb2.CANDIDATE_SOURCE_ANN, count=n)]
            )
        return response

    def RetrieveCandidates(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._count("RetrieveCandidates", request)
        n = request.num_candidates or 50
        return ranking_service_pb2.RetrieveCandidatesResponse(
            candidates=[
                types_pb2.Candidate(
                    item_id=it.item_id,
                    creator_id=it.creator_id,
                    group=it.group,
                    sources=[types_pb2.CANDIDATE_SOURCE_POPULAR],
                    retrieval_score=it.score,
                )
                for it in self._page(request.user_id, n, False)
            ],
            snapshot_version=SNAPSHOT,
        )

    def ScoreCandidates(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._count("ScoreCandidates", request)
        items = [
            types_pb2.ScoredItem(item_id=item_id, creator_id="creator-0", score=1.0 / (i + 1))
            for i, item_id in enumerate(request.item_ids)
        ]
        return ranking_service_pb2.ScoreCandidatesResponse(items=items, snapshot_version=SNAPSHOT)

    def RerankCandidates(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._count("RerankCandidates", request)
        n = request.num_results or 20
        items = sorted(request.items, key=lambda it: -it.score)[:n]
        return ranking_service_pb2.RerankCandidatesResponse(
            items=items,
            fairness_report=types_pb2.FairnessReport(policy=request.fairness.policy),
            snapshot_version=SNAPSHOT,
        )


class FakeServer:
    """A running fake server.

    Attributes
    ----------
    server : grpc.Server
    port : int
    target : str
        ``"127.0.0.1:<port>"``.
    ranking : FakeRankingService
    admin : FakeAdminService or None
    """

    def __init__(
        self,
        server: grpc.Server,
        port: int,
        ranking: FakeRankingService,
        admin: FakeAdminService | None,
    ) -> None:
        self.server = server
        self.port = port
        self.target = f"127.0.0.1:{port}"
        self.ranking = ranking
        self.admin = admin

    def stop(self, grace: float | None = None) -> None:
        """Stop serving and wait for the server to shut down."""
        self.server.stop(grace).wait()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_fake_server(
    ranking: FakeRankingService | None = None,
    *,
    admin: FakeAdminService | None = None,
    max_workers: int = 8,
    host: str = "127.0.0.1",
    port: int = 0,
) -> FakeServer:
    """Start a fake server on ``host:port`` (port 0 picks a free port).

    Parameters
    ----------
    ranking : FakeRankingService, optional
        The ranking servicer (a default one when omitted).
    admin : client.fake_admin.FakeAdminService, optional
        Also serve the admin plane and operations.
    max_workers : int, default 8
        Handler threads; with a fixed latency ``L`` the server's capacity is about
        ``max_workers / L`` requests per second, beyond which requests queue.

    Returns
    -------
    FakeServer
    """
    ranking = ranking or FakeRankingService()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fake-rank"),
        options=[("grpc.so_reuseport", 0)],
    )
    ranking_service_pb2_grpc.add_RankingServiceServicer_to_server(ranking, server)  # type: ignore[no-untyped-call]
    if admin is not None:
        admin.register(server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("reelrank.v1.RankingService", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return FakeServer(server, bound, ranking, admin)


def expected_percentiles(
    served: Sequence[float], floor: LogHistogram, qs: Sequence[float] = (50, 90, 99)
) -> dict[float, float]:
    """What a client should measure: the server's latencies plus the client-side floor.

    A load tester sees the time the server spent plus a floor (serialisation, transport and
    both processes' scheduling). On a busy machine that floor is not negligible, and the
    server's sleeps overshoot. Given the latencies the fake really served
    (:attr:`FakeRankingService.served_latencies`) and the latency histogram of a
    zero-latency calibration run at the same request rate, the expected percentiles are
    those of ``served + floor`` with the two independent (the floor taken at its 100
    percentiles 0.5, 1.5, ..., 99.5).

    Parameters
    ----------
    served : sequence of float
        Seconds the server spent per call.
    floor : LogHistogram
        The client's latencies against a zero-latency server.
    qs : sequence of float
        Percentiles to return.

    Returns
    -------
    dict
        Percentile to seconds.
    """
    import numpy as np

    floor_samples = np.array([floor.percentile(q + 0.5) for q in range(100)])
    total = (np.asarray(served, dtype=np.float64)[:, None] + floor_samples[None, :]).ravel()
    return {q: float(np.percentile(total, q)) for q in qs}
