"""Bearer tokens for the admin and ranking planes, and the server's TLS credentials.

Tokens are compared in constant time (`hmac.compare_digest`) and never logged: refusals log
the method, the reason and the peer, nothing of what was presented.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from server.config import ServerConfig

log = logging.getLogger(__name__)

ADMIN_PREFIXES = ("/reelrank.admin.v1.", "/google.longrunning.Operations/")
RANKING_PREFIXES = ("/reelrank.v1.",)


def _deny(code: grpc.StatusCode, message: str) -> Any:
    # A refusal does no work, so it is answered on the event loop, not in the thread pool.
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(handler)


class AdminAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Requires `authorization: Bearer <token>` on admin methods, and on ranking methods when a
    ranking token is configured. Health and reflection always pass.

    Admin methods without a configured admin token are refused (PERMISSION_DENIED); missing or
    malformed metadata is UNAUTHENTICATED; a wrong token is PERMISSION_DENIED. The two tokens
    are separate: the admin token does not open the ranking plane, nor the reverse.
    """

    def __init__(self, token: str | None, *, ranking_token: str | None = None) -> None:
        self._token = token.encode() if token else None
        self._ranking_token = ranking_token.encode() if ranking_token else None

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        method: str = details.method
        if method.startswith(ADMIN_PREFIXES):
            if self._token is None:
                return self._refuse(
                    details,
                    grpc.StatusCode.PERMISSION_DENIED,
                    "admin RPCs are disabled: start the server with REELRANK_ADMIN_TOKEN set",
                )
            expected, plane = self._token, "admin"
        elif self._ranking_token is not None and method.startswith(RANKING_PREFIXES):
            expected, plane = self._ranking_token, "ranking"
        else:
            return await continuation(details)
        header = dict(details.invocation_metadata or ()).get("authorization")
        if not header:
            return self._refuse(
                details,
                grpc.StatusCode.UNAUTHENTICATED,
                "missing 'authorization: Bearer <token>' metadata",
            )
        scheme, _, presented = str(header).partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return self._refuse(
                details,
                grpc.StatusCode.UNAUTHENTICATED,
                "authorization metadata must be 'Bearer <token>'",
            )
        if not hmac.compare_digest(presented.strip().encode(), expected):
            return self._refuse(
                details, grpc.StatusCode.PERMISSION_DENIED, f"{plane} token not accepted"
            )
        return await continuation(details)

    @staticmethod
    def _refuse(details: Any, code: grpc.StatusCode, message: str) -> Any:
        # Never log the metadata itself: it carries the presented token.
        log.warning("refused %s: %s (%s)", details.method, code.name, message)
        return _deny(code, message)


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from `tls_cert` + `tls_key` (PEM); mutual TLS with `tls_client_ca`.

    Returns None for plaintext. With a client CA every client must present a certificate it
    signed (the handshake fails otherwise, before any RPC).
    """
    if config.tls_cert is None and config.tls_key is None:
        if config.tls_client_ca is not None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key (mutual TLS is TLS)")
        return None
    if config.tls_cert is None or config.tls_key is None:
        raise ValueError("TLS needs both tls_cert and tls_key")
    chain = config.tls_cert.read_bytes()
    key = config.tls_key.read_bytes()
    client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
