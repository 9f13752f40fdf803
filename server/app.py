"""Server factory: wires store, services, interceptors, health and reflection.

Tests call `create_server(config)` with port 0, `App.start()`, and talk to the real server over
a channel; `server.main` adds signal handling around the same factory.

The server is a `grpc.aio` server whose event loop runs in a thread the `App` owns, so callers
stay synchronous. With `pipeline_concurrency = 1` (the default) the ranking RPCs are coroutines
that run their CPU-bound handler inline on the loop, one at a time; the admin plane
(IndexAdminService, google.longrunning Operations, including the blocking `WaitOperation`) is
sync code, which grpc.aio runs in the migration thread pool (`max_workers` threads). With
`pipeline_concurrency > 1` the ranking RPCs run in that pool too, under the admission semaphore.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.longrunning import operations_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from server.api.reelrank.admin.v1 import index_admin_service_pb2, index_admin_service_pb2_grpc
from server.api.reelrank.v1 import ranking_service_pb2, ranking_service_pb2_grpc
from server.auth import AdminAuthInterceptor, server_credentials
from server.config import ServerConfig
from server.errors import ErrorMappingInterceptor
from server.index.loaded import LoadedSnapshot
from server.index.store import SnapshotStore
from server.metrics import Metrics, ObservabilityInterceptor
from server.pipeline import rank as pipeline
from server.pipeline.types import FairnessParams
from server.services.admin_service import IndexAdminService, Operations
from server.services.ranking_service import InlineRankingService, RankingService

log = logging.getLogger(__name__)
T = TypeVar("T")
RANKING = ranking_service_pb2.DESCRIPTOR.services_by_name["RankingService"].full_name
ADMIN = index_admin_service_pb2.DESCRIPTOR.services_by_name["IndexAdminService"].full_name


@dataclass
class App:
    """A grpc.aio server and the event loop thread it runs on, driven from sync code."""

    server: grpc.aio.Server
    port: int
    store: SnapshotStore
    health: health.aio.HealthServicer
    config: ServerConfig
    metrics: Metrics
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    pool: futures.ThreadPoolExecutor
    _stopped: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the server's loop and wait for its result (not from the loop)."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("App.run called on the event loop thread: it would deadlock")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.run(self.server.start())

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )

        async def set_all() -> None:
            for name in ("", RANKING):
                await self.health.set(name, status)

        with self._lock:  # after stop() the loop is gone: nobody is left to ask
            if not self._stopped:
                self.run(set_all(), timeout=30)

    def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING first so balancers drain us, then let in-flight calls finish.

        Blocks until the server has stopped, then ends the loop thread. Idempotent.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True

        async def drain() -> None:
            await self.health.enter_graceful_shutdown()
            await self.server.stop(self.config.grace_seconds if grace is None else grace)

        try:
            self.run(drain())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()
            self.pool.shutdown(wait=False)


def warm_up(snap: LoadedSnapshot) -> None:
    """Run a few real requests so first user requests do not pay for page faults and caches."""
    users = [*snap.user_ids[: min(4, snap.n_users)], ""]

    for u in users:
        pipeline.rank(snap, u, [], [], 20, 500, FairnessParams())


def create_server(config: ServerConfig, *, load: bool = True) -> App:
    """Build the server (not yet started: call `App.start()`), bound to `config.port`."""
    if not config.data_roots:
        config.data_roots = (config.snapshot_dir.resolve().parent,)
    store = SnapshotStore(config.snapshot_dir, warmup=warm_up)
    metrics = Metrics()
    store.listeners.append(lambda snap: metrics.serving(snap.version, snap.loaded_at))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-aio", daemon=True)
    thread.start()
    pool = futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="rpc")
    try:
        # grpc.aio binds a server to the loop it is created on: build it there.
        server, port, health_servicer = asyncio.run_coroutine_threadsafe(
            _build(config, store, metrics, pool), loop
        ).result()
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        pool.shutdown(wait=False)
        raise
    app = App(server, port, store, health_servicer, config, metrics, loop, thread, pool)
    store.listeners.append(lambda _snap: app.set_serving(True))
    app.set_serving(False)
    if load:
        snap = store.load_startup()  # cleans crashed builds; pinned or newest version
        if snap is None:
            log.warning(
                "no snapshot under %s: ranking RPCs answer FAILED_PRECONDITION until one is built",
                config.snapshot_dir,
            )
    if config.processes > 1:
        store.follow_active()  # siblings follow admin activations made through any process
    return app


async def _build(
    config: ServerConfig, store: SnapshotStore, metrics: Metrics, pool: futures.ThreadPoolExecutor
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    server = grpc.aio.server(
        # Sync (non-coroutine) handlers run here: the admin plane, and the ranking RPCs too
        # when pipeline_concurrency > 1.
        pool,
        # First is outermost: observe everything, then authenticate, then map domain errors.
        interceptors=[
            ObservabilityInterceptor(metrics),
            AdminAuthInterceptor(config.admin_token, ranking_token=config.ranking_token),
            ErrorMappingInterceptor(),
        ],
        # Several serving processes share one port with SO_REUSEPORT (see server/main.py).
        options=[("grpc.so_reuseport", 1 if config.reuse_port else 0)],
    )
    ops = Operations()
    ranking = RankingService(store, config, metrics)
    # The generated registration helpers carry no annotations.
    add_ranking = ranking_service_pb2_grpc.add_RankingServiceServicer_to_server
    add_admin = index_admin_service_pb2_grpc.add_IndexAdminServiceServicer_to_server
    if config.pipeline_concurrency == 1:
        add_ranking(InlineRankingService(ranking), server)  # type: ignore[no-untyped-call]
    else:
        add_ranking(ranking, server)  # type: ignore[no-untyped-call]
    add_admin(IndexAdminService(store, config, ops), server)  # type: ignore[no-untyped-call]
    operations_pb2_grpc.add_OperationsServicer_to_server(ops, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            RANKING,
            ADMIN,
            "google.longrunning.Operations",
            reflection.SERVICE_NAME,
            health.SERVICE_NAME,
        ),
        server,
    )
    creds = server_credentials(config)  # None: plaintext; else TLS (mutual with a client CA)
    address = f"{config.host}:{config.port}"
    port = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {config.host}:{config.port}")
    return server, port, health_servicer
