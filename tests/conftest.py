"""Shared fixtures: a small synthetic catalogue, a snapshot built from it, a live server."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from server.app import App, create_server
from server.config import ServerConfig
from server.data import synthetic
from server.index import builder

ADMIN_TOKEN = "test-admin-token"
SMALL_ITEMS = 3000
SMALL_USERS = 600


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers started as processes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    synthetic.generate(SMALL_ITEMS, SMALL_USERS, 11, out)
    return out


@pytest.fixture(scope="session")
def built(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Manifest (with `path`) of a snapshot built from the small demo catalogue."""
    root = tmp_path_factory.mktemp("snapshots")
    return builder.build_snapshot(demo_dir / "interactions.csv", demo_dir / "items.csv", root)


def make_app(snapshot_dir: Path, data_roots: tuple[Path, ...] = (), **settings: Any) -> App:
    cfg = ServerConfig(
        port=0,
        snapshot_dir=snapshot_dir,
        admin_token=ADMIN_TOKEN,
        data_roots=data_roots,
        max_workers=4,
        **settings,
    )
    app = create_server(cfg)
    app.start()
    return app


@pytest.fixture(scope="session")
def app(built: dict[str, Any], demo_dir: Path) -> Iterator[App]:
    server_app = make_app(Path(built["path"]).parent, (demo_dir,))
    yield server_app
    server_app.stop(grace=0)


@pytest.fixture(scope="session")
def channel(app: App) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


def ml100k_path() -> Path | None:
    raw = os.environ.get("REELRANK_ML100K") or str(
        Path(__file__).resolve().parents[2] / "shared/data/ml-100k"
    )
    p = Path(raw)
    return p if (p / "u.data").is_file() else None
