"""The per-process admission limit on ranking pipelines (`pipeline_concurrency`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from server.api.reelrank.v1 import ranking_service_pb2 as pb
from server.config import ServerConfig
from server.index.store import SnapshotStore
from server.services import ranking_service


class _Ctx:
    def time_remaining(self) -> float:
        return 5.0


@pytest.mark.parametrize("limit", [1, 2])
def test_no_more_pipelines_run_at_once_than_the_limit(
    built: dict[str, Any], monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    root = Path(built["path"]).parent
    store = SnapshotStore(root)
    store.load_startup()
    svc = ranking_service.RankingService(
        store, ServerConfig(snapshot_dir=root, pipeline_concurrency=limit)
    )
    inside, peak, lock = 0, 0, threading.Lock()
    real = ranking_service.pipeline.rank

    def counting_rank(*args: Any, **kwargs: Any) -> Any:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        time.sleep(0.02)  # long enough for the other threads to pile up
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                inside -= 1

    monkeypatch.setattr(ranking_service.pipeline, "rank", counting_rank)
    user = store.current().user_ids[0]
    errors: list[BaseException] = []

    def call() -> None:
        try:
            assert len(svc.Rank(pb.RankRequest(user_id=user, num_results=5), _Ctx()).items) == 5
        except BaseException as exc:  # reported below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert peak == limit
