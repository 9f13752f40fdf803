"""Typed clients for the reelrank gRPC services.

:class:`RankingClient` wraps ``reelrank.v1.RankingService`` (the data plane) and
:class:`AdminClient` wraps ``reelrank.admin.v1.IndexAdminService`` plus
``google.longrunning.Operations`` (the admin plane). Both take plain Python values, return
the generated protobuf messages, and raise :class:`client.errors.ReelrankError` for every
failed call.

Examples
--------
>>> from client.rank_client import Event, RankingClient
>>> with RankingClient("localhost:50051") as rc:  # doctest: +SKIP
...     page = rc.rank("u42", 10, recent_events=[Event("v1", "like", 1.7e9)])
...     print([item.item_id for item in page.items])
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.longrunning import operations_pb2_grpc, operations_proto_pb2
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from client.errors import ReelrankError, from_status_proto, translate_rpc_errors
from server.api.reelrank.v1 import ranking_service_pb2, ranking_service_pb2_grpc, types_pb2

if TYPE_CHECKING:
    from server.api.reelrank.admin.v1 import index_admin_service_pb2

__all__ = [
    "DEFAULT_TARGET",
    "AdminClient",
    "Event",
    "RankingClient",
    "channel_options",
    "event_type_from_str",
    "fairness_options",
    "resolve_target",
    "service_config",
]

DEFAULT_TARGET = "localhost:50051"
RANKING_SERVICE = "reelrank.v1.RankingService"
ADMIN_SERVICE = "reelrank.admin.v1.IndexAdminService"
OPERATIONS_SERVICE = "google.longrunning.Operations"
HEALTH_SERVICE = "grpc.health.v1.Health"

_T = TypeVar("_T")
FairnessArg = str | types_pb2.FairnessOptions | None


# --------------------------------------------------------------------------------------------
# Request helpers
# --------------------------------------------------------------------------------------------


def event_type_from_str(name: str) -> int:
    """Map an event type name to the ``reelrank.v1.EventType`` enum value.

    Parameters
    ----------
    name : str
        ``"like"``, ``"LIKE"`` or ``"EVENT_TYPE_LIKE"`` (case-insensitive).

    Returns
    -------
    int
        The enum number.

    Raises
    ------
    ValueError
        If the name is not a known, specified event type.
    """
    key = name.strip().upper()
    if not key.startswith("EVENT_TYPE_"):
        key = "EVENT_TYPE_" + key
    if key == "EVENT_TYPE_UNSPECIFIED" or key not in types_pb2.EventType.keys():  # noqa: SIM118
        valid = ", ".join(event_type_names())
        raise ValueError(f"unknown event type {name!r} (expected one of: {valid})")
    return int(types_pb2.EventType.Value(key))


def event_type_names() -> list[str]:
    """The accepted short event type names, lower case (``view``, ``like``, ...)."""
    return [
        k.removeprefix("EVENT_TYPE_").lower()
        for k in types_pb2.EventType.keys()  # noqa: SIM118
        if k != "EVENT_TYPE_UNSPECIFIED"
    ]


@dataclass(frozen=True, slots=True)
class Event:
    """One recent interaction of the requesting user.

    Parameters
    ----------
    item_id : str
        The item interacted with.
    event_type : str
        ``view``, ``like``, ``comment``, ``share``, ``favorite``, ``complete``, ``skip`` or
        ``dislike`` (the ``EVENT_TYPE_`` prefix and case are optional).
    timestamp : float
        Unix time in seconds.
    watch_ratio : float, default 0.0
        Fraction of the video watched, in [0, 1.5]; 0 means unknown.
    """

    item_id: str
    event_type: str
    timestamp: float
    watch_ratio: float = 0.0

    def to_proto(self) -> types_pb2.UserEvent:
        """Convert to a ``reelrank.v1.UserEvent`` (raises ValueError on a bad event type)."""
        seconds = int(self.timestamp // 1)
        nanos = round((self.timestamp - seconds) * 1e9)
        if nanos >= 1_000_000_000:
            seconds, nanos = seconds + 1, nanos - 1_000_000_000
        return types_pb2.UserEvent(
            item_id=self.item_id,
            event_type=event_type_from_str(self.event_type),  # type: ignore[arg-type]
            timestamp=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos),
            watch_ratio=self.watch_ratio,
        )


EventArg = Event | types_pb2.UserEvent


def _events(events: Iterable[EventArg]) -> list[types_pb2.UserEvent]:
    return [e.to_proto() if isinstance(e, Event) else e for e in events]


_POLICIES = {
    "none": types_pb2.FAIRNESS_POLICY_NONE,
    "creator_cap": types_pb2.FAIRNESS_POLICY_CREATOR_CAP,
    "exposure": types_pb2.FAIRNESS_POLICY_EXPOSURE,
    "default": types_pb2.FAIRNESS_POLICY_UNSPECIFIED,
}
POLICY_NAMES = ("none", "creator_cap", "exposure")


def fairness_options(policy: FairnessArg) -> types_pb2.FairnessOptions | None:
    """Build ``FairnessOptions`` from a policy name, pass a message through, or ``None``.

    Parameters
    ----------
    policy : str or FairnessOptions or None
        ``"none"``, ``"creator_cap"``, ``"exposure"`` (or ``"default"``), a ready message,
        or ``None`` to let the server apply its defaults.

    Raises
    ------
    ValueError
        On an unknown policy name.
    """
    if policy is None or isinstance(policy, types_pb2.FairnessOptions):
        return policy
    key = policy.strip().lower().replace("-", "_")
    if key not in _POLICIES:
        raise ValueError(
            f"unknown fairness policy {policy!r} (expected one of: none, creator_cap, exposure)"
        )
    return types_pb2.FairnessOptions(policy=_POLICIES[key])


# --------------------------------------------------------------------------------------------
# Channel construction
# --------------------------------------------------------------------------------------------


def _is_ip(host: str) -> int:
    """Return 4 or 6 for an IP literal, 0 otherwise."""
    try:
        return ipaddress.ip_address(host.strip("[]")).version
    except ValueError:
        return 0


def _split_host_port(address: str) -> tuple[str, str]:
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, rest.lstrip(":")
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError(f"address {address!r} must be HOST:PORT")
    return host, port


def resolve_target(target: str) -> tuple[str, bool]:
    """Turn a target, or a comma list of ``HOST:PORT``, into a gRPC target string.

    A single address is passed through unchanged (gRPC's default DNS resolver handles it).
    A comma list becomes an ``ipv4:`` (or ``ipv6:``) target, the addresses resolved here,
    so that a ``round_robin`` policy spreads calls over every backend.

    Parameters
    ----------
    target : str
        ``"localhost:50051"``, ``"dns:///svc:50051"`` or ``"10.0.0.1:50051,10.0.0.2:50051"``.

    Returns
    -------
    tuple of (str, bool)
        The gRPC target and whether it names several backends.
    """
    if "," not in target:
        return target, False
    addresses: list[tuple[int, str, str]] = []
    for raw in target.split(","):
        if not raw.strip():
            continue
        host, port = _split_host_port(raw)
        version = _is_ip(host)
        if not version:
            info = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            family, *_, sockaddr = info[0]
            host = str(sockaddr[0])
            version = 6 if family == socket.AF_INET6 else 4
        addresses.append((version, host.strip("[]"), port))
    versions = {v for v, _, _ in addresses}
    if versions == {4}:
        return "ipv4:" + ",".join(f"{h}:{p}" for _, h, p in addresses), True
    if versions == {6}:
        return "ipv6:" + ",".join(f"[{h}]:{p}" for _, h, p in addresses), True
    raise ValueError("a comma target list must be all IPv4 or all IPv6 addresses")


def _method_name(name: str) -> dict[str, str]:
    service, _, method = name.partition("/")
    return {"service": service, "method": method} if method else {"service": service}


def service_config(
    services: Sequence[str],
    *,
    max_retries: int,
    round_robin: bool,
    initial_backoff_s: float = 0.05,
    max_backoff_s: float = 1.0,
) -> str:
    """The gRPC service config JSON: retry on ``UNAVAILABLE`` only, optional round robin.

    Parameters
    ----------
    services : sequence of str
        Fully-qualified service names (``"pkg.Service"``) or single methods
        (``"pkg.Service/Method"``) the retry policy applies to.
    max_retries : int
        Retries after the first attempt; 0 disables the retry policy. gRPC caps the total
        number of attempts at 5.
    round_robin : bool
        Whether to select the ``round_robin`` load-balancing policy.

    Returns
    -------
    str
        JSON for the ``grpc.service_config`` channel option.
    """
    config: dict[str, Any] = {}
    if round_robin:
        config["loadBalancingConfig"] = [{"round_robin": {}}]
    if max_retries > 0 and services:
        config["methodConfig"] = [
            {
                "name": [_method_name(s) for s in services],
                "retryPolicy": {
                    "maxAttempts": min(max_retries + 1, 5),
                    "initialBackoff": f"{initial_backoff_s:g}s",
                    "maxBackoff": f"{max_backoff_s:g}s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return json.dumps(config)


def channel_options(
    *,
    retry_services: Sequence[str],
    max_retries: int,
    round_robin: bool,
    keepalive_ms: int,
) -> list[tuple[str, Any]]:
    """Channel options shared by the clients and the load tester.

    Parameters
    ----------
    retry_services : sequence of str
        Services whose calls are retried on ``UNAVAILABLE``.
    max_retries : int
        Retries after the first attempt; 0 turns retries off (``grpc.enable_retries=0``).
    round_robin : bool
        Use the ``round_robin`` policy (for comma target lists).
    keepalive_ms : int
        HTTP/2 keepalive ping interval while calls are active; 0 disables keepalive.
    """
    options: list[tuple[str, Any]] = [
        ("grpc.enable_retries", 1 if max_retries > 0 else 0),
        (
            "grpc.service_config",
            service_config(retry_services, max_retries=max_retries, round_robin=round_robin),
        ),
        # Use the service config above, not one from DNS TXT records.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ]
    if keepalive_ms > 0:
        options += [
            ("grpc.keepalive_time_ms", keepalive_ms),
            ("grpc.keepalive_timeout_ms", max(1000, min(20_000, keepalive_ms))),
            # Ping only while calls are in flight: servers with default settings answer
            # idle pings with GOAWAY(too_many_pings).
            ("grpc.keepalive_permit_without_calls", 0),
            ("grpc.http2.max_pings_without_data", 0),
        ]
    return options


def _make_channel(
    target: str,
    *,
    tls: bool,
    root_certificates: bytes | None,
    options: list[tuple[str, Any]],
) -> grpc.Channel:
    if tls or root_certificates is not None:
        credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
        return grpc.secure_channel(target, credentials, options=options)
    return grpc.insecure_channel(target, options=options)


class _BaseClient:
    """Channel, metadata, deadlines and the one error-conversion point."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float,
        token: str | None,
        tls: bool,
        root_certificates: bytes | None,
        keepalive_ms: int,
        max_retries: int,
        retry_services: Sequence[str],
        channel: grpc.Channel | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.target = target
        self.timeout = float(timeout)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        if channel is None:
            resolved, multi = resolve_target(target)
            options = channel_options(
                retry_services=retry_services,
                max_retries=max_retries,
                round_robin=multi,
                keepalive_ms=keepalive_ms,
            )
            channel = _make_channel(
                resolved, tls=tls, root_certificates=root_certificates, options=options
            )
            self._owns_channel = True
        else:
            self._owns_channel = False
        self.channel: grpc.Channel = channel
        self._health = health_pb2_grpc.HealthStub(channel)

    def _call(self, method: Callable[..., _T], request: Any, timeout: float | None) -> _T:
        """Invoke one unary RPC with the deadline and metadata; convert failures."""
        with translate_rpc_errors():
            return method(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata,
            )

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """Ask the standard gRPC health service.

        Parameters
        ----------
        service : str, default ""
            Service name to check; ``""`` is the whole server.

        Returns
        -------
        str
            ``"SERVING"``, ``"NOT_SERVING"``, ``"SERVICE_UNKNOWN"`` or ``"UNKNOWN"``.
        """
        response = self._call(
            self._health.Check, health_pb2.HealthCheckRequest(service=service), timeout
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Block until the channel connects.

        Raises
        ------
        ReelrankError
            ``UNAVAILABLE`` if the server cannot be reached within ``timeout`` seconds.
        """
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            raise ReelrankError(
                grpc.StatusCode.UNAVAILABLE,
                f"could not connect to {self.target} within {timeout:g}s",
            ) from exc

    def close(self) -> None:
        """Close the channel (when this client created it)."""
        if self._owns_channel:
            self.channel.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_Self = TypeVar("_Self", bound=_BaseClient)


# --------------------------------------------------------------------------------------------
# Data plane
# --------------------------------------------------------------------------------------------


class RankingClient(_BaseClient):
    """Client of ``reelrank.v1.RankingService``.

    Parameters
    ----------
    target : str, default "localhost:50051"
        ``HOST:PORT``, any gRPC target URI, or a comma list of ``HOST:PORT`` which is
        load-balanced round robin.
    timeout : float, default 2.0
        Default per-call deadline in seconds.
    token : str, optional
        Sent as ``authorization: Bearer <token>`` on every call.
    tls : bool, default False
        Use TLS (system roots unless ``root_certificates`` is given).
    root_certificates : bytes, optional
        PEM roots for TLS; implies ``tls``.
    keepalive_ms : int, default 60000
        HTTP/2 keepalive ping interval while calls are in flight; 0 disables.
    max_retries : int, default 3
        Transparent retries of calls that fail with ``UNAVAILABLE`` (and only those),
        configured through the channel's service config; 0 disables retries.
    channel : grpc.Channel, optional
        Use an existing channel instead of creating one (then ``close`` leaves it open).

    Examples
    --------
    >>> with RankingClient("127.0.0.1:50051", timeout=1.0) as rc:  # doctest: +SKIP
    ...     page = rc.rank("u1", 10, fairness_policy="exposure")
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = 2.0,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        keepalive_ms: int = 60_000,
        max_retries: int = 3,
        channel: grpc.Channel | None = None,
    ) -> None:
        super().__init__(
            target,
            timeout=timeout,
            token=token,
            tls=tls,
            root_certificates=root_certificates,
            keepalive_ms=keepalive_ms,
            max_retries=max_retries,
            retry_services=(RANKING_SERVICE, HEALTH_SERVICE),
            channel=channel,
        )
        self._stub = ranking_service_pb2_grpc.RankingServiceStub(  # type: ignore[no-untyped-call]
            self.channel
        )

    def rank(
        self,
        user_id: str,
        num_results: int = 20,
        *,
        recent_events: Iterable[EventArg] = (),
        exclude_item_ids: Iterable[str] = (),
        fairness_policy: FairnessArg = None,
        debug: bool = False,
        num_candidates: int = 0,
        timeout: float | None = None,
    ) -> ranking_service_pb2.RankResponse:
        """Rank one page of a user's feed.

        Parameters
        ----------
        user_id : str
            The user; unknown ids get a cold-start page.
        num_results : int, default 20
            Page size in [1, 1000]; 0 uses the server default.
        recent_events : iterable of Event or UserEvent
            The session's latest events, newest last.
        exclude_item_ids : iterable of str
            Items that must not appear.
        fairness_policy : {"none", "creator_cap", "exposure"} or FairnessOptions, optional
            Fairness re-ranking; ``None`` uses the server defaults.
        debug : bool, default False
            Ask for stage scores, sources, timings and candidate counts.
        num_candidates : int, default 0
            Candidates to retrieve before ranking; 0 uses the server default.
        timeout : float, optional
            Deadline in seconds for this call (default: the client's).

        Returns
        -------
        RankResponse

        Raises
        ------
        ReelrankError
            When the call fails.
        ValueError
            On a bad event type or policy name (before anything is sent).
        """
        request = ranking_service_pb2.RankRequest(
            user_id=user_id,
            num_results=num_results,
            recent_events=_events(recent_events),
            exclude_item_ids=list(exclude_item_ids),
            fairness=fairness_options(fairness_policy),
            debug=debug,
            num_candidates=num_candidates,
        )
        response: ranking_service_pb2.RankResponse = self._call(self._stub.Rank, request, timeout)
        return response

    def retrieve(
        self,
        user_id: str,
        num_candidates: int = 0,
        *,
        recent_events: Iterable[EventArg] = (),
        exclude_item_ids: Iterable[str] = (),
        timeout: float | None = None,
    ) -> ranking_service_pb2.RetrieveCandidatesResponse:
        """Run only the retrieval stage.

        Parameters
        ----------
        user_id : str
            The user; unknown or empty ids get cold-start pools.
        num_candidates : int, default 0
            Candidates wanted in [1, 10000]; 0 uses the server default.
        recent_events, exclude_item_ids, timeout
            As in :meth:`rank`.

        Returns
        -------
        RetrieveCandidatesResponse
        """
        request = ranking_service_pb2.RetrieveCandidatesRequest(
            user_id=user_id,
            num_candidates=num_candidates,
            recent_events=_events(recent_events),
            exclude_item_ids=list(exclude_item_ids),
        )
        response: ranking_service_pb2.RetrieveCandidatesResponse = self._call(
            self._stub.RetrieveCandidates, request, timeout
        )
        return response

    def score(
        self,
        user_id: str,
        item_ids: Iterable[str],
        *,
        recent_events: Iterable[EventArg] = (),
        timeout: float | None = None,
    ) -> ranking_service_pb2.ScoreCandidatesResponse:
        """Run only the ranking stage over ``item_ids``.

        Parameters
        ----------
        user_id : str
            The user whose profile scores the items.
        item_ids : iterable of str
            Items to score; each must exist in the serving snapshot.
        recent_events, timeout
            As in :meth:`rank`.

        Returns
        -------
        ScoreCandidatesResponse
            Items by descending score.
        """
        request = ranking_service_pb2.ScoreCandidatesRequest(
            user_id=user_id, recent_events=_events(recent_events), item_ids=list(item_ids)
        )
        response: ranking_service_pb2.ScoreCandidatesResponse = self._call(
            self._stub.ScoreCandidates, request, timeout
        )
        return response

    def rerank(
        self,
        items: Iterable[types_pb2.ScoredItem],
        num_results: int = 20,
        *,
        fairness_policy: FairnessArg = None,
        timeout: float | None = None,
    ) -> ranking_service_pb2.RerankCandidatesResponse:
        """Run only the fairness re-ranking stage over scored items.

        Parameters
        ----------
        items : iterable of ScoredItem
            Scored items, for example ``score(...).items``.
        num_results : int, default 20
            Page size in [1, 1000]; 0 uses the server default.
        fairness_policy, timeout
            As in :meth:`rank`.

        Returns
        -------
        RerankCandidatesResponse
        """
        request = ranking_service_pb2.RerankCandidatesRequest(
            items=list(items),
            num_results=num_results,
            fairness=fairness_options(fairness_policy),
        )
        response: ranking_service_pb2.RerankCandidatesResponse = self._call(
            self._stub.RerankCandidates, request, timeout
        )
        return response


# --------------------------------------------------------------------------------------------
# Admin plane
# --------------------------------------------------------------------------------------------

ProgressCallback = Callable[["index_admin_service_pb2.RebuildIndexMetadata"], None]


def _admin_modules() -> tuple[Any, Any]:
    """Import the admin-plane generated modules (lazily, so the data plane never needs them).

    Raises
    ------
    ImportError
        With the underlying reason when the generated admin code cannot be loaded.
    """
    try:
        from server.api.reelrank.admin.v1 import (
            index_admin_service_pb2,
            index_admin_service_pb2_grpc,
        )
    except (ImportError, TypeError) as exc:  # TypeError: descriptor pool build failure
        raise ImportError(
            f"cannot load the admin API (server.api.reelrank.admin.v1): {exc}"
        ) from exc
    return index_admin_service_pb2, index_admin_service_pb2_grpc


def admin_token_from_env() -> str | None:
    """The admin token from ``REELRANK_ADMIN_TOKEN`` (``None`` when unset or empty)."""
    return os.environ.get("REELRANK_ADMIN_TOKEN") or None


class AdminClient(_BaseClient):
    """Client of ``reelrank.admin.v1.IndexAdminService`` and its long-running operations.

    Parameters
    ----------
    target : str, default "localhost:50051"
        As for :class:`RankingClient`.
    token : str, optional
        Admin bearer token; defaults to the ``REELRANK_ADMIN_TOKEN`` environment variable.
    timeout : float, default 10.0
        Default per-call deadline in seconds (a single poll, not a whole rebuild).
    tls, root_certificates, keepalive_ms, max_retries, channel
        As for :class:`RankingClient`. Only the read-only calls (``GetIndexStatus``,
        ``ListSnapshots``, ``GetOperation``, ``ListOperations``) are retried; ``RebuildIndex``
        is never retried (it is not idempotent).
    client_certificate_chain, client_private_key : bytes, optional
        PEM client certificate and key for a server that requires mutual TLS (both or
        neither; implies TLS, with ``root_certificates`` as the server's CA).

    Examples
    --------
    >>> with AdminClient("localhost:50051", token="s3cret") as admin:  # doctest: +SKIP
    ...     op = admin.rebuild("data/interactions.csv", "data/items.csv")
    ...     done = admin.wait(op.name, on_progress=lambda m: print(m.progress_percent))
    ...     print(AdminClient.rebuild_response(done).snapshot_version)
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        tls: bool = False,
        root_certificates: bytes | None = None,
        keepalive_ms: int = 60_000,
        max_retries: int = 3,
        channel: grpc.Channel | None = None,
        client_certificate_chain: bytes | None = None,
        client_private_key: bytes | None = None,
    ) -> None:
        token = token if token is not None else admin_token_from_env()
        # Retries are configured per method: everything except RebuildIndex.
        retry_services = (
            OPERATIONS_SERVICE + "/GetOperation",
            OPERATIONS_SERVICE + "/ListOperations",
            ADMIN_SERVICE + "/GetIndexStatus",
            ADMIN_SERVICE + "/ListSnapshots",
            HEALTH_SERVICE,
        )
        owns = False
        if channel is None and (client_certificate_chain or client_private_key):
            if not (client_certificate_chain and client_private_key):
                raise ValueError("mutual TLS needs both a client certificate chain and key")
            resolved, multi = resolve_target(target)
            credentials = grpc.ssl_channel_credentials(
                root_certificates=root_certificates,
                private_key=client_private_key,
                certificate_chain=client_certificate_chain,
            )
            options = channel_options(
                retry_services=retry_services,
                max_retries=max_retries,
                round_robin=multi,
                keepalive_ms=keepalive_ms,
            )
            channel = grpc.secure_channel(resolved, credentials, options=options)
            owns = True
        super().__init__(
            target,
            timeout=timeout,
            token=token,
            tls=tls,
            root_certificates=root_certificates,
            keepalive_ms=keepalive_ms,
            max_retries=max_retries,
            retry_services=retry_services,
            channel=channel,
        )
        self._owns_channel = self._owns_channel or owns
        self._pb2, admin_grpc = _admin_modules()
        self._admin = admin_grpc.IndexAdminServiceStub(self.channel)
        self._operations = operations_pb2_grpc.OperationsStub(self.channel)

    def rebuild(
        self,
        interactions_path: str | os.PathLike[str] | None = None,
        items_path: str | os.PathLike[str] | None = None,
        skip_activation: bool = False,
        *,
        source: str | None = None,
        force: bool = False,
        timeout: float | None = None,
    ) -> operations_proto_pb2.Operation:
        """Start a rebuild of the index from tables the server can read.

        Parameters
        ----------
        interactions_path, items_path : str or path-like, optional
            Paths as seen by the server (inside its data roots).
        skip_activation : bool, default False
            Write the snapshot but keep the serving one active.
        source : str, optional
            A source name configured on the server, instead of the two paths.
        force : bool, default False
            Activate the new snapshot even if it fails the server's quality gate.

        Returns
        -------
        google.longrunning.Operation
            The running operation; pass its ``name`` to :meth:`wait`.

        Raises
        ------
        ValueError
            Unless exactly one of ``source`` or both paths is given (nothing is sent).
        """
        if (source is None) == (interactions_path is None or items_path is None):
            raise ValueError("give either source or both interactions_path and items_path")
        request = self._pb2.RebuildIndexRequest(
            interactions_path=os.fspath(interactions_path) if interactions_path else "",
            items_path=os.fspath(items_path) if items_path else "",
            skip_activation=skip_activation,
            source=source or "",
            force=force,
        )
        response: operations_proto_pb2.Operation = self._call(
            self._admin.RebuildIndex, request, timeout
        )
        return response

    def get_operation(
        self, name: str, *, timeout: float | None = None
    ) -> operations_proto_pb2.Operation:
        """Fetch the current state of a long-running operation."""
        response: operations_proto_pb2.Operation = self._call(
            self._operations.GetOperation,
            operations_proto_pb2.GetOperationRequest(name=name),
            timeout,
        )
        return response

    def wait(
        self,
        name: str,
        poll_s: float = 0.5,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> operations_proto_pb2.Operation:
        """Poll an operation until it is done.

        Parameters
        ----------
        name : str
            Operation name returned by :meth:`rebuild`.
        poll_s : float, default 0.5
            Seconds between polls.
        timeout : float, optional
            Give up after this many seconds (default: wait for ever).
        on_progress : callable, optional
            Called with the unpacked :class:`RebuildIndexMetadata` after every poll.

        Returns
        -------
        google.longrunning.Operation
            The finished operation; see :meth:`rebuild_response`.

        Raises
        ------
        ReelrankError
            When the operation finished with an error (its code and message), when polling
            fails, or ``DEADLINE_EXCEEDED`` when ``timeout`` passes first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            op = self.get_operation(name)
            if on_progress is not None:
                metadata = self.rebuild_metadata(op)
                if metadata is not None:
                    on_progress(metadata)
            if op.done:
                if op.HasField("error"):
                    raise from_status_proto(op.error)
                return op
            if deadline is not None and time.monotonic() + poll_s > deadline:
                raise ReelrankError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"operation {name} not done after {timeout:g}s",
                )
            time.sleep(poll_s)

    @staticmethod
    def rebuild_metadata(
        op: operations_proto_pb2.Operation,
    ) -> index_admin_service_pb2.RebuildIndexMetadata | None:
        """Unpack the operation's progress metadata, or ``None`` when absent."""
        metadata: index_admin_service_pb2.RebuildIndexMetadata = _admin_modules()[
            0
        ].RebuildIndexMetadata()
        if op.HasField("metadata") and op.metadata.Unpack(metadata):
            return metadata
        return None

    @staticmethod
    def rebuild_response(
        op: operations_proto_pb2.Operation,
    ) -> index_admin_service_pb2.RebuildIndexResponse:
        """Unpack the result of a finished rebuild.

        Raises
        ------
        ReelrankError
            If the operation failed, or finished without a ``RebuildIndexResponse``.
        """
        if op.HasField("error"):
            raise from_status_proto(op.error)
        response: index_admin_service_pb2.RebuildIndexResponse = _admin_modules()[
            0
        ].RebuildIndexResponse()
        if not (op.done and op.HasField("response") and op.response.Unpack(response)):
            raise ReelrankError(
                grpc.StatusCode.INTERNAL,
                f"operation {op.name} has no RebuildIndexResponse (done={op.done})",
            )
        return response

    def status(
        self, *, timeout: float | None = None
    ) -> index_admin_service_pb2.GetIndexStatusResponse:
        """Describe the serving snapshot."""
        response: index_admin_service_pb2.GetIndexStatusResponse = self._call(
            self._admin.GetIndexStatus, self._pb2.GetIndexStatusRequest(), timeout
        )
        return response

    def list_snapshots(
        self, *, timeout: float | None = None
    ) -> index_admin_service_pb2.ListSnapshotsResponse:
        """The snapshots kept on the server, newest first (which is active, quality, size)."""
        response: index_admin_service_pb2.ListSnapshotsResponse = self._call(
            self._admin.ListSnapshots, self._pb2.ListSnapshotsRequest(), timeout
        )
        return response

    def activate(
        self, version: str, force: bool = False, *, timeout: float | None = None
    ) -> index_admin_service_pb2.ActivateSnapshotResponse:
        """Serve a kept snapshot: roll back to an older version or forward to a newer one.

        Parameters
        ----------
        version : str
            A version listed by :meth:`list_snapshots`.
        force : bool, default False
            Activate even if the snapshot fails the server's quality gate.

        Raises
        ------
        ReelrankError
            ``NOT_FOUND`` for an unknown version, ``FAILED_PRECONDITION`` when the quality
            gate refuses it, ``DATA_LOSS`` when its files are corrupt.
        """
        response: index_admin_service_pb2.ActivateSnapshotResponse = self._call(
            self._admin.ActivateSnapshot,
            self._pb2.ActivateSnapshotRequest(version=version, force=force),
            timeout,
        )
        return response

    def cancel(self, name: str, *, timeout: float | None = None) -> None:
        """Cancel a running operation (a no-op when it is already done)."""
        self._call(
            self._operations.CancelOperation,
            operations_proto_pb2.CancelOperationRequest(name=name),
            timeout,
        )

    def list_operations(
        self, *, only_running: bool = False, timeout: float | None = None
    ) -> list[operations_proto_pb2.Operation]:
        """Operations the server remembers (since its start), newest first."""
        request = operations_proto_pb2.ListOperationsRequest(
            filter="done=false" if only_running else ""
        )
        out: list[operations_proto_pb2.Operation] = []
        while True:
            response = self._call(self._operations.ListOperations, request, timeout)
            out.extend(response.operations)
            if not response.next_page_token:
                return out
            request.page_token = response.next_page_token
