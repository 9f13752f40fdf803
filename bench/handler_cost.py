"""CPU of the whole Rank handler in-process, and the part of it spent inside the Rust core.

`handler_cost(snap_dir, users, n)` calls `RankingService.Rank` as the server does (a parsed
request in, the response serialised), for stored users without recent events, and returns
the CPU time per call and the wall time per call inside the native calls: the Rust core's
functions and the keyword / ItemKNN matrices' methods, timed by wrappers. The native part is
what remains of a request if every line of Python around it were free; `make bench-serve`
sets it against the handler budget that the issue's throughput ratio leaves.

Run alone: `python bench/handler_cost.py SNAPSHOT_DIR USERS_FILE [N]`.
"""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NATIVE_FUNCTIONS = ("rerank_select", "encode_ranked_items", "merge_sources", "gather_dot")


class _Timed:
    """A proxy whose callable attributes add their wall time to a shared counter."""

    def __init__(self, target: Any, name: str, acc: collections.Counter[str]) -> None:
        self._target, self._name, self._acc = target, name, acc

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        return _timed(value, f"{self._name}.{attr}", self._acc) if callable(value) else value


def _timed(f: Callable[..., Any], name: str, acc: collections.Counter[str]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter_ns()
        try:
            return f(*args, **kwargs)
        finally:
            acc[name] += time.perf_counter_ns() - t

    return run


class _Context:
    def time_remaining(self) -> None:
        return None


def handler_cost(snap_dir: Path, users: list[str], n: int = 3000) -> dict[str, Any]:
    from server import _core
    from server.api.reelrank.v1 import ranking_service_pb2 as pb
    from server.config import ServerConfig
    from server.index.store import SnapshotStore
    from server.metrics import Metrics
    from server.pipeline import fairness
    from server.services.ranking_service import RankingService

    store = SnapshotStore(snap_dir.parent)
    store.activate(snap_dir.name)
    service = RankingService(store, ServerConfig(), Metrics())
    rng = np.random.default_rng(2)
    requests = [
        pb.RankRequest(user_id=users[int(i)], num_results=20).SerializeToString()
        for i in rng.integers(0, len(users), n + 500)
    ]
    ctx = _Context()

    def run(batch: list[bytes]) -> None:
        for raw in batch:
            service.Rank(pb.RankRequest.FromString(raw), ctx).SerializeToString()

    run(requests[n:])  # warm caches and the stage cost estimates
    t_cpu = time.process_time()
    run(requests[:n])
    cpu_us = (time.process_time() - t_cpu) / n * 1e6

    # The same calls again with the native functions timed (the wrappers cost ~1 us in all).
    acc: collections.Counter[str] = collections.Counter()
    saved = {name: getattr(_core, name) for name in NATIVE_FUNCTIONS}
    saved_select = fairness._rust_select
    snap = store.current()
    saved_matrices = (snap.keywords, snap.item_knn)
    try:
        for name in NATIVE_FUNCTIONS:
            setattr(_core, name, _timed(saved[name], name, acc))
        fairness._rust_select = _core.rerank_select
        snap.keywords = _Timed(snap.keywords, "keywords", acc)  # type: ignore[assignment]
        if snap.item_knn is not None:
            snap.item_knn = _Timed(snap.item_knn, "item_knn", acc)  # type: ignore[assignment]
        t_wall = time.perf_counter_ns()
        run(requests[:n])
        wall_us = (time.perf_counter_ns() - t_wall) / n / 1e3
    finally:
        for name, f in saved.items():
            setattr(_core, name, f)
        fairness._rust_select = saved_select
        snap.keywords, snap.item_knn = saved_matrices
    native = {k: v / n / 1e3 for k, v in acc.most_common()}
    return {
        "requests": n,
        "cpu_us_per_call": cpu_us,
        "wall_us_per_call_timed": wall_us,
        "native_us_per_call": native,
        "native_total_us": sum(native.values()),
    }


if __name__ == "__main__":
    import json

    snap_dir, users_file = Path(sys.argv[1]), Path(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    print(json.dumps(handler_cost(snap_dir, users_file.read_text().split(), count), indent=2))
