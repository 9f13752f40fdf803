"""Server factory: wires store, services, interceptors, health and reflection.

Tests call `create_server(config)` with port 0 and talk to the real server over a channel;
`server.main` adds signal handling around the same factory.
"""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass

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
from server.services.ranking_service import RankingService

log = logging.getLogger(__name__)
RANKING = ranking_service_pb2.DESCRIPTOR.services_by_name["RankingService"].full_name
ADMIN = index_admin_service_pb2.DESCRIPTOR.services_by_name["IndexAdminService"].full_name


@dataclass
class App:
    server: grpc.Server
    port: int
    store: SnapshotStore
    health: health.HealthServicer
    config: ServerConfig
    metrics: Metrics

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", RANKING):
            self.health.set(name, status)

    def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING first so balancers drain us, then let in-flight calls finish."""
        self.health.enter_graceful_shutdown()
        self.server.stop(self.config.grace_seconds if grace is None else grace).wait()


def warm_up(snap: LoadedSnapshot) -> None:
    """Run a few real requests so first user requests do not pay for page faults and caches."""
    users = [*snap.user_ids[: min(4, snap.n_users)], ""]

    for u in users:
        pipeline.rank(snap, u, [], [], 20, 500, FairnessParams())


def create_server(config: ServerConfig, *, load: bool = True) -> App:
    if not config.data_roots:
        config.data_roots = (config.snapshot_dir.resolve().parent,)
    store = SnapshotStore(config.snapshot_dir, warmup=warm_up)
    metrics = Metrics()
    store.listeners.append(lambda snap: metrics.serving(snap.version, snap.loaded_at))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="rpc"),
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
    # The generated registration helpers carry no annotations.
    add_ranking = ranking_service_pb2_grpc.add_RankingServiceServicer_to_server
    add_admin = index_admin_service_pb2_grpc.add_IndexAdminServiceServicer_to_server
    add_ranking(RankingService(store, config, metrics), server)  # type: ignore[no-untyped-call]
    add_admin(IndexAdminService(store, config, ops), server)  # type: ignore[no-untyped-call]
    operations_pb2_grpc.add_OperationsServicer_to_server(ops, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
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
    app = App(server, port, store, health_servicer, config, metrics)
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
