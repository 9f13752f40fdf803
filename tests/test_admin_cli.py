"""`reelrank admin` against a real server: status, snapshots, activate, cancel, rebuild."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.cli import main
from server.app import App
from tests.conftest import ADMIN_TOKEN, make_app
from tests.test_admin import clone_snapshot

V2 = "29991231T000000Z"


@pytest.fixture()
def served(
    built: dict[str, Any], demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[App, list[str], Path]]:
    root = tmp_path / "snapshots"
    root.mkdir()
    shutil.copytree(built["path"], root / built["version"])
    clone_snapshot(root, built["version"], V2)
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    app = make_app(root, (data,))
    app.config.rebuild_nice = 0
    monkeypatch.setenv("REELRANK_ADMIN_TOKEN", ADMIN_TOKEN)
    yield app, ["--target", f"127.0.0.1:{app.port}"], data
    app.stop(grace=0)


def test_snapshots_activate_status(served: Any, capsys: pytest.CaptureFixture[str]) -> None:
    app, target, _ = served
    assert app.store.current().version == V2  # the newest is served at startup
    old = app.store.versions()[1]
    assert main(["admin", "snapshots", *target]) == 0
    out = capsys.readouterr().out
    assert f"* {V2}" in out and f"\n  {old}" in out and "pass" in out
    assert main(["admin", "activate", old, *target]) == 0
    assert f"serving {old} (was {V2}" in capsys.readouterr().out
    assert main(["admin", "status", *target]) == 0
    out = capsys.readouterr().out
    assert f"snapshot version:   {old}" in out and f"previous version:   {V2}" in out


def test_errors_have_codes_and_exit_1(served: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, target, _ = served
    assert main(["admin", "activate", "20000101T000000Z", *target]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    assert main(["admin", "cancel", "operations/nope", *target]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    assert main(["admin", "rebuild", "--source", "nope", *target]) == 1
    assert "unknown source 'nope'" in capsys.readouterr().err
    assert main(["admin", "rebuild", "--items", "x.csv", *target]) == 2
    capsys.readouterr()


def test_wrong_token_is_refused_and_not_echoed(
    served: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, target, _ = served
    monkeypatch.setenv("REELRANK_ADMIN_TOKEN", "not-the-token-1234")
    assert main(["admin", "status", *target]) == 1
    captured = capsys.readouterr()
    assert "PERMISSION_DENIED" in captured.err
    assert "not-the-token-1234" not in captured.out + captured.err


def test_rebuild_wait_shows_progress_and_failure(
    served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    app, target, data = served
    bad = data / "bad_items.csv"
    bad.write_text("item_id,creator_id,keywords,publish_ts\ni1,c1,a|b,not-a-time\n")
    args = ["admin", "rebuild", "--interactions", str(data / "interactions.csv")]
    rc = main([*args, "--items", str(bad), "--wait", "--poll", "0.1", *target])
    captured = capsys.readouterr()
    assert rc == 1
    assert "operations/rebuild-" in captured.err and "[" in captured.err
    assert "bad_items.csv row 2, column publish_ts" in captured.err
    assert app.store.current().version == V2
