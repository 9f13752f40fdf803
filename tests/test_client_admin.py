"""AdminClient and `reelrank admin` against the fake admin + operations services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from client.cli import main
from client.errors import ReelrankError
from client.fake_server import FakeServer, start_fake_server
from client.rank_client import AdminClient

try:
    from client.fake_admin import FakeAdminService
except (ImportError, TypeError) as exc:  # generated admin code not loadable in this checkout
    pytest.skip(f"admin API unavailable: {exc}", allow_module_level=True)

TOKEN = "test-token"


@pytest.fixture()
def server() -> Iterator[FakeServer]:
    srv = start_fake_server(admin=FakeAdminService(token=TOKEN, polls_to_finish=3))
    yield srv
    srv.stop()


def test_status_and_auth(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with AdminClient(server.target, token=TOKEN) as admin:
        status = admin.status()
    assert status.serving and status.snapshot_version == "v1"
    with AdminClient(server.target, token="wrong") as admin, pytest.raises(ReelrankError) as info:
        admin.status()
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    monkeypatch.setenv("REELRANK_ADMIN_TOKEN", TOKEN)
    with AdminClient(server.target) as admin:
        assert admin.status().num_items == 1000


def test_rebuild_wait_reports_progress(server: FakeServer) -> None:
    seen: list[float] = []
    with AdminClient(server.target, token=TOKEN) as admin:
        op = admin.rebuild("data/interactions.csv", "data/items.csv", skip_activation=True)
        assert op.name == "operations/rebuild-1" and not op.done
        done = admin.wait(
            op.name, poll_s=0.01, on_progress=lambda m: seen.append(m.progress_percent)
        )
        result = AdminClient.rebuild_response(done)
    assert seen == pytest.approx([100 / 3, 200 / 3, 100.0])
    assert result.snapshot_version == "v2" and not result.activated
    assert AdminClient.rebuild_metadata(done) is not None


def test_failed_rebuild_raises(server: FakeServer) -> None:
    with AdminClient(server.target, token=TOKEN) as admin:
        op = admin.rebuild("bad.csv", "items.csv")
        with pytest.raises(ReelrankError) as info:
            admin.wait(op.name, poll_s=0.01)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details == "interactions table has no user_id"


def test_wait_timeout(server: FakeServer) -> None:
    assert server.admin is not None
    server.admin.polls_to_finish = 1000
    with AdminClient(server.target, token=TOKEN) as admin:
        op = admin.rebuild("a.csv", "b.csv")
        with pytest.raises(ReelrankError) as info:
            admin.wait(op.name, poll_s=0.02, timeout=0.1)
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_cli_admin(
    server: FakeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("REELRANK_ADMIN_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    target = ["--target", server.target, "--token-file", str(token_file)]
    assert main(["admin", "status", *target]) == 0
    assert "snapshot version:   v1" in capsys.readouterr().out

    monkeypatch.setenv("REELRANK_ADMIN_TOKEN", TOKEN)
    argv = ["admin", "rebuild", "--interactions", "i.csv", "--items", "t.csv", "--wait",
            "--poll", "0.01", "--target", server.target]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "snapshot version: v2" in captured.out and "activated:        yes" in captured.out
    assert "100.0%" in captured.err and "loading" in captured.err

    assert main(["admin", "rebuild", "--interactions", "bad.csv", "--items", "t.csv",
                 "--wait", "--poll", "0.01", "--target", server.target]) == 1  # fmt: skip
    assert "error: INVALID_ARGUMENT: interactions table has no user_id" in capsys.readouterr().err

    monkeypatch.setenv("REELRANK_ADMIN_TOKEN", "wrong")
    assert main(["admin", "status", "--target", server.target]) == 1
    assert capsys.readouterr().err.startswith("error: UNAUTHENTICATED: ")
