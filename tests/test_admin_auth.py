"""Auth for both planes, secrets kept out of logs, TLS and mutual TLS."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from client.cli import main as cli_main
from server.api.reelrank.admin.v1 import index_admin_service_pb2 as pb
from server.api.reelrank.admin.v1 import index_admin_service_pb2_grpc as pb_grpc
from server.api.reelrank.v1 import ranking_service_pb2, ranking_service_pb2_grpc
from server.app import App, create_server
from server.config import ServerConfig

ADMIN = "admin-secret-7f3a9c"
RANKING = "ranking-secret-51d2e8"


def _config(built: dict[str, Any], **kw: Any) -> ServerConfig:
    return ServerConfig(
        port=0,
        snapshot_dir=Path(built["path"]).parent,
        admin_token=ADMIN,
        max_workers=2,
        **kw,
    )


@pytest.fixture()
def guarded(built: dict[str, Any]) -> Iterator[App]:
    app = create_server(_config(built, ranking_token=RANKING))
    app.start()
    yield app
    app.stop(grace=0)


def _rank(ch: grpc.Channel, token: str | None) -> Any:
    md = (("authorization", f"Bearer {token}"),) if token else None
    stub = ranking_service_pb2_grpc.RankingServiceStub(ch)
    return stub.Rank(ranking_service_pb2.RankRequest(user_id="x"), metadata=md, timeout=10)


def test_ranking_token_is_separate_from_admin_token(guarded: App) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{guarded.port}") as ch:
        assert _rank(ch, RANKING).items
        for token, code in (
            (None, grpc.StatusCode.UNAUTHENTICATED),
            ("wrong", grpc.StatusCode.PERMISSION_DENIED),
            (ADMIN, grpc.StatusCode.PERMISSION_DENIED),
        ):
            with pytest.raises(grpc.RpcError) as err:
                _rank(ch, token)
            assert err.value.code() == code
        admin = pb_grpc.IndexAdminServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            admin.GetIndexStatus(
                pb.GetIndexStatusRequest(), metadata=(("authorization", f"Bearer {RANKING}"),)
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as err:
            admin.GetIndexStatus(pb.GetIndexStatusRequest(), metadata=(("authorization", ADMIN),))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_ranking_is_open_without_a_ranking_token(app: App) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        assert _rank(ch, None).items


def test_admin_disabled_without_admin_token(built: dict[str, Any]) -> None:
    cfg = _config(built)
    cfg.admin_token = None
    app = create_server(cfg)
    app.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            with pytest.raises(grpc.RpcError) as err:
                pb_grpc.IndexAdminServiceStub(ch).GetIndexStatus(
                    pb.GetIndexStatusRequest(), metadata=(("authorization", "Bearer x"),)
                )
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "REELRANK_ADMIN_TOKEN" in err.value.details()
    finally:
        app.stop(grace=0)


def test_secrets_never_logged(guarded: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    near_miss = ADMIN + "x"
    with grpc.insecure_channel(f"127.0.0.1:{guarded.port}") as ch:
        for token in (near_miss, RANKING):
            with pytest.raises(grpc.RpcError):
                pb_grpc.IndexAdminServiceStub(ch).GetIndexStatus(
                    pb.GetIndexStatusRequest(), metadata=(("authorization", f"Bearer {token}"),)
                )
        with pytest.raises(grpc.RpcError):
            _rank(ch, ADMIN)
    logged = caplog.text + repr(guarded.config)
    assert "refused /reelrank.admin.v1.IndexAdminService/GetIndexStatus" in caplog.text
    for secret in (ADMIN, RANKING):
        assert secret not in logged


# ------------------------------------------------------------------ TLS


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    subj = "-subj"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        subj,
        "/CN=reelrank test CA",
        cwd=d,
    )
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ext in (("server", ["-extfile", "server.ext"]), ("client", [])):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            subj,
            f"/CN=reelrank {name}",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            *ext,
            cwd=d,
        )
    return d


def _tls_app(built: dict[str, Any], pki: Path, *, mutual: bool) -> App:
    cfg = _config(
        built,
        tls_cert=pki / "server.pem",
        tls_key=pki / "server.key",
        tls_client_ca=(pki / "ca.pem") if mutual else None,
    )
    app = create_server(cfg)
    app.start()
    return app


def _status(app: App, creds: grpc.ChannelCredentials) -> Any:
    with grpc.secure_channel(f"127.0.0.1:{app.port}", creds) as ch:
        return pb_grpc.IndexAdminServiceStub(ch).GetIndexStatus(
            pb.GetIndexStatusRequest(), metadata=(("authorization", f"Bearer {ADMIN}"),), timeout=5
        )


def test_tls(built: dict[str, Any], pki: Path) -> None:
    app = _tls_app(built, pki, mutual=False)
    try:
        ca = (pki / "ca.pem").read_bytes()
        assert _status(app, grpc.ssl_channel_credentials(root_certificates=ca)).serving
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as ch, pytest.raises(grpc.RpcError):
            _rank(ch, None)
    finally:
        app.stop(grace=0)


def test_mutual_tls_requires_client_certificate(
    built: dict[str, Any], pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(ADMIN)
    app = _tls_app(built, pki, mutual=True)
    try:
        ca = (pki / "ca.pem").read_bytes()
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=(pki / "client.key").read_bytes(),
            certificate_chain=(pki / "client.pem").read_bytes(),
        )
        assert _status(app, with_cert).serving
        with pytest.raises(grpc.RpcError) as err:
            _status(app, grpc.ssl_channel_credentials(root_certificates=ca))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        base = ["admin", "status", "--target", f"localhost:{app.port}", "--ca-file"]
        base += [str(pki / "ca.pem"), "--token-file", str(token_file)]
        client = ["--client-cert", str(pki / "client.pem"), "--client-key", str(pki / "client.key")]
        assert cli_main([*base, *client]) == 0
        assert "snapshot version:" in capsys.readouterr().out
        assert cli_main(base) == 1
        assert "UNAVAILABLE" in capsys.readouterr().err
    finally:
        app.stop(grace=0)


def test_tls_settings_must_be_complete(built: dict[str, Any], pki: Path) -> None:
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        create_server(_config(built, tls_cert=pki / "server.pem"))
