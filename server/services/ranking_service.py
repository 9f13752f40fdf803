"""reelrank.v1.RankingService: the data plane, a thin adapter over server.pipeline."""

from __future__ import annotations

import functools
import threading
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from numpy.typing import NDArray

from server import _core
from server.api.reelrank.v1 import ranking_service_pb2 as pb
from server.api.reelrank.v1 import ranking_service_pb2_grpc as pb_grpc
from server.api.reelrank.v1 import types_pb2
from server.config import MAX_CANDIDATES, MAX_RESULTS, ServerConfig
from server.errors import FailedPrecondition, InvalidArgument
from server.index.loaded import LoadedSnapshot
from server.index.store import SnapshotStore
from server.logs import REQUEST_ID
from server.metrics import Metrics
from server.pipeline import fairness, ranking
from server.pipeline import rank as pipeline
from server.pipeline.budget import Budget
from server.pipeline.explain import explain
from server.pipeline.retrieval import retrieve
from server.pipeline.types import Scores
from server.pipeline.user_state import build_user_state
from server.services import convert

Handler = TypeVar("Handler", bound=Callable[..., Any])

# `convert.SOURCE_TO_PROTO` as the two arrays the native item encoder takes.
_SOURCE_FLAGS = np.array([int(s) for s in convert.SOURCE_TO_PROTO], np.uint8)
_SOURCE_VALUES = np.array(list(convert.SOURCE_TO_PROTO.values()), np.int32)


def _admitted(method: Handler) -> Handler:
    """Run a ranking RPC under the service's admission semaphore."""

    @functools.wraps(method)
    def run(self: RankingService, request: Any, context: grpc.ServicerContext) -> Any:
        with self.admission:
            return method(self, request, context)

    return typing.cast(Handler, run)


class RankingService(pb_grpc.RankingServiceServicer):
    def __init__(
        self, store: SnapshotStore, config: ServerConfig, metrics: Metrics | None = None
    ) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics
        # Group and creator exposure over recent pages, for the amortised-exposure policy.
        self.exposure = fairness.ExposureTracker(config.fairness.exposure_window)
        # Handlers are CPU-bound and mostly hold the GIL: more than one or two at a time in a
        # process only add GIL hand-offs (measured on the 1M snapshot: 8 concurrent requests
        # cost 1.3-1.6x the CPU per request of 1, and a long p99 tail). Each ranking RPC runs
        # whole under this semaphore; the others wait for a slot asleep, not contending.
        self.admission = threading.BoundedSemaphore(max(1, config.pipeline_concurrency))
        self._default_fits = ""  # snapshot version the fairness defaults were checked against

    @_admitted
    def Rank(self, request: pb.RankRequest, context: grpc.ServicerContext) -> pb.RankResponse:
        n, c = convert.limits(self.config, request.num_results, request.num_candidates)
        events = convert.events(request.recent_events)
        excluded = convert.exclusions(request.exclude_item_ids)
        params = convert.fairness(request.fairness, request.HasField("fairness"), self.config)
        quotas, blend = convert.overrides(request.overrides)
        # Read after the wait for a slot, so the stages budget only the time really left.
        budget = Budget.from_timeout(context.time_remaining())
        snap = self.store.current()
        if not request.HasField("fairness"):
            self.default_fairness_fits(snap)
        result = pipeline.rank(
            snap, request.user_id, events, excluded, n, c, params,
            quotas=quotas, blend=blend, budget=budget, tracker=self.exposure,
        )  # fmt: skip
        self.observe(result)
        scores = result.scores
        pos = result.page.positions
        items = scores.items[pos]
        resp = pb.RankResponse(
            snapshot_version=snap.version,
            fairness_report=convert.report(result.page.report),
            cold_start=result.state.cold,
            degraded=bool(result.degradations),
            degradations=[types_pb2.Degradation(stage=s, reason=r) for s, r in result.degradations],
            request_id=REQUEST_ID.get(),
            timings=[
                types_pb2.StageTiming(stage=k, micros=v) for k, v in result.timings_us.items()
            ],
            source_counts=convert.source_counts(result.candidates.source_counts),
        )
        # Scores are aligned with the candidates, so page positions index both. The page's items
        # are protobuf-encoded natively in one call (per-item messages cost ~10 µs each) and
        # appended: merging the encoding of a repeated field appends its elements.
        knn = scores.item_knn[pos] if scores.item_knn.size else np.zeros(pos.size, np.float32)
        resp.MergeFromString(
            _core.encode_ranked_items(
                snap.item_ids.encoded(items),
                snap.creator_ids.encoded(snap.item_creator[items]),
                [snap.groups[g] for g in snap.item_group[items].tolist()],
                snap.version,
                result.page.scores,
                scores.keyword[pos],
                scores.embedding[pos],
                scores.popularity[pos],
                scores.freshness[pos],
                scores.total[pos],
                knn,
                result.candidates.sources[pos],
                _SOURCE_FLAGS,
                _SOURCE_VALUES,
            )
        )
        if request.debug:
            for out, e in zip(resp.items, explain(snap, result.state, items), strict=True):
                out.explanation.matched_keywords.extend(e.matched_keywords)
                out.explanation.similar_to_item_id = e.similar_to_item_id
                out.explanation.similarity = e.similarity
        return resp

    def default_fairness_fits(self, snap: LoadedSnapshot) -> None:
        """The server's `[fairness]` defaults name only groups `snap` has: else the request is
        refused as FAILED_PRECONDITION, the operator's to fix, not INVALID_ARGUMENT. (Ranges are
        checked when the config is read; group names need a snapshot.) Checked once per
        snapshot version."""
        if self._default_fits == snap.version:
            return
        try:
            fairness.validate(self.config.fairness, snap.groups)
        except InvalidArgument as exc:
            raise FailedPrecondition(
                f"the server's default fairness settings do not fit snapshot {snap.version}: "
                f"{exc.message}; fix [fairness] in the server's config file"
            ) from None
        self._default_fits = snap.version

    def observe(self, result: pipeline.RankResult) -> None:
        if self.metrics is None:
            return
        self.metrics.record_rank(
            result.timings_us,
            result.candidates.source_counts,
            result.degradations,
            result.page.report,
        )

    @_admitted
    def RetrieveCandidates(
        self, request: pb.RetrieveCandidatesRequest, context: grpc.ServicerContext
    ) -> pb.RetrieveCandidatesResponse:
        c = convert.bounded(
            "num_candidates",
            request.num_candidates,
            self.config.default_num_candidates,
            MAX_CANDIDATES,
        )
        events = convert.events(request.recent_events)
        excluded = convert.exclusions(request.exclude_item_ids)
        snap = self.store.current()
        state = build_user_state(snap, request.user_id, events, excluded)
        cands = retrieve(snap, state, c)
        resp = pb.RetrieveCandidatesResponse(snapshot_version=snap.version)
        for i, bits, s in zip(
            cands.items.tolist(),
            cands.sources.tolist(),
            cands.retrieval_score.tolist(),
            strict=True,
        ):
            resp.candidates.add(
                item_id=snap.item_ids[i],
                creator_id=snap.creator_ids[int(snap.item_creator[i])],
                group=snap.groups[int(snap.item_group[i])],
                sources=convert.sources(bits),
                retrieval_score=s,
            )
        resp.source_counts.extend(convert.source_counts(cands.source_counts))
        return resp

    @_admitted
    def ScoreCandidates(
        self, request: pb.ScoreCandidatesRequest, context: grpc.ServicerContext
    ) -> pb.ScoreCandidatesResponse:
        if len(request.item_ids) > MAX_CANDIDATES:
            raise InvalidArgument(
                f"item_ids has {len(request.item_ids)} entries; "
                f"at most {MAX_CANDIDATES} are accepted"
            )
        events = convert.events(request.recent_events)
        snap = self.store.current()
        items = pipeline.resolve_items(snap, list(request.item_ids))
        state = build_user_state(snap, request.user_id, events, [])
        scores = ranking.score(snap, state, items)
        order = np.lexsort((pipeline.item_id_order(snap, items), -scores.total.astype(np.float64)))
        resp = pb.ScoreCandidatesResponse(snapshot_version=snap.version)
        stage = _stage_score_rows(scores, order)
        for p, stage_scores in zip(order.tolist(), stage, strict=True):
            i = int(items[p])
            resp.items.add(
                item_id=snap.item_ids[i],
                creator_id=snap.creator_ids[int(snap.item_creator[i])],
                group=snap.groups[int(snap.item_group[i])],
                score=float(scores.total[p]),
                stage_scores=stage_scores,
            )
        return resp

    @_admitted
    def RerankCandidates(
        self, request: pb.RerankCandidatesRequest, context: grpc.ServicerContext
    ) -> pb.RerankCandidatesResponse:
        if len(request.items) > MAX_CANDIDATES:
            raise InvalidArgument(
                f"items has {len(request.items)} entries; at most {MAX_CANDIDATES} are accepted"
            )
        n = convert.bounded(
            "num_results", request.num_results, self.config.default_num_results, MAX_RESULTS
        )
        params = convert.fairness(request.fairness, request.HasField("fairness"), self.config)
        seen: set[str] = set()
        for j, it in enumerate(request.items):
            if not it.item_id:
                raise InvalidArgument(f"items[{j}].item_id is empty")
            if it.item_id in seen:
                raise InvalidArgument(f"items[{j}].item_id {it.item_id!r} appears more than once")
            if not np.isfinite(it.score):
                raise InvalidArgument(f"items[{j}].score must be finite, got {it.score}")
            seen.add(it.item_id)
        snap = self.store.current()
        if not request.HasField("fairness"):
            self.default_fairness_fits(snap)
        items = pipeline.resolve_items(snap, [it.item_id for it in request.items])
        scores = np.array([it.score for it in request.items], dtype=np.float32)
        page = pipeline.rerank_scores(snap, items, scores, n, params, self.exposure)
        if self.metrics is not None:  # the fairness metrics aggregate every page served
            self.metrics.observe_fairness(page.report)
        resp = pb.RerankCandidatesResponse(
            snapshot_version=snap.version, fairness_report=convert.report(page.report)
        )
        for p in page.positions.tolist():
            src = request.items[p]
            i = int(items[p])
            out = resp.items.add()
            out.CopyFrom(src)
            out.creator_id = snap.creator_ids[int(snap.item_creator[i])]
            out.group = snap.groups[int(snap.item_group[i])]
        return resp


def _stage_score_rows(scores: Scores, pos: NDArray[np.int64]) -> list[types_pb2.StageScores]:
    """The ranking-stage signals of the candidates at `pos`, columns converted in bulk."""
    knn = scores.item_knn[pos].tolist() if scores.item_knn.size else [0.0] * pos.size
    return [
        types_pb2.StageScores(
            keyword=k, embedding=e, popularity=p, freshness=f, ranking=t, item_knn=n
        )
        for k, e, p, f, t, n in zip(
            scores.keyword[pos].tolist(),
            scores.embedding[pos].tolist(),
            scores.popularity[pos].tolist(),
            scores.freshness[pos].tolist(),
            scores.total[pos].tolist(),
            knn,
            strict=True,
        )
    ]


class InlineRankingService(pb_grpc.RankingServiceServicer):
    """The ranking RPCs as coroutines that run `RankingService`'s handlers inline on the event
    loop of the grpc.aio server.

    Nothing inside awaits, so the loop runs one ranking RPC at a time from start to end: the
    admission limit of `pipeline_concurrency = 1` without a thread hand-off, a semaphore wait
    or GIL ping-pong between handler threads (the semaphore is still taken, never contended).
    The admin plane stays sync and runs in the server's thread pool, so a blocking admin call
    never holds up the loop.
    """

    def __init__(self, service: RankingService) -> None:
        self.service = service

    async def Rank(self, request: pb.RankRequest, context: Any) -> pb.RankResponse:
        return self.service.Rank(request, context)

    async def RetrieveCandidates(
        self, request: pb.RetrieveCandidatesRequest, context: Any
    ) -> pb.RetrieveCandidatesResponse:
        return self.service.RetrieveCandidates(request, context)

    async def ScoreCandidates(
        self, request: pb.ScoreCandidatesRequest, context: Any
    ) -> pb.ScoreCandidatesResponse:
        return self.service.ScoreCandidates(request, context)

    async def RerankCandidates(
        self, request: pb.RerankCandidatesRequest, context: Any
    ) -> pb.RerankCandidatesResponse:
        return self.service.RerankCandidates(request, context)
