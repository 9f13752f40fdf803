"""Crash safety: SIGKILL of a serving process mid-rebuild, stale build directories, retention."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from client.rank_client import AdminClient
from server.index import snapshot
from tests.conftest import ADMIN_TOKEN, free_port

ROOT = Path(__file__).resolve().parents[1]


def _fake_version(root: Path, version: str) -> None:
    d = root / version
    d.mkdir()
    (d / snapshot.MANIFEST).write_text(json.dumps({"format_version": 1, "version": version}))


def _tmp_dir(root: Path, name: str, *, hold: bool) -> int | None:
    """A `.tmp-*` build directory whose lock is held (returns the fd) or free."""
    d = root / f".tmp-{name}"
    d.mkdir()
    (d / "item_emb.npy").write_bytes(b"half-written")
    fd = os.open(d / snapshot.LOCK, os.O_WRONLY | os.O_CREAT)
    if hold:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd
    os.close(fd)
    return None


def test_clean_stale_temporaries_respects_live_builds(tmp_path: Path) -> None:
    dead = _tmp_dir(tmp_path, "dead", hold=False)
    live = _tmp_dir(tmp_path, "live", hold=True)
    (tmp_path / ".tmp-nolock-old").mkdir()
    os.utime(tmp_path / ".tmp-nolock-old", (0, 0))
    (tmp_path / ".tmp-nolock-new").mkdir()
    try:
        removed = snapshot.clean_stale_temporaries(tmp_path, older_than=time.time() - 60)
        assert sorted(removed) == [".tmp-dead", ".tmp-nolock-old"]
        assert (tmp_path / ".tmp-live").is_dir() and (tmp_path / ".tmp-nolock-new").is_dir()
    finally:
        assert dead is None and live is not None
        os.close(live)
    # Once its writer is gone, the lock is free and the directory goes.
    assert snapshot.clean_stale_temporaries(tmp_path) == [".tmp-live"]


def test_writer_holds_lock_until_commit(tmp_path: Path) -> None:
    with snapshot.writing(tmp_path, "20260101T000000Z") as w:
        w.text("a.txt", "x")
        assert snapshot.clean_stale_temporaries(tmp_path, older_than=time.time() + 60) == []
        final = w.commit({"created_at": "2026-01-01T00:00:00Z"})
    assert sorted(p.name for p in final.iterdir()) == ["a.txt", "manifest.json"]
    assert "a.txt" in snapshot.read_manifest(final)["files"]


def test_prune_keeps_newest_and_protected(tmp_path: Path) -> None:
    versions = [f"2026010{i}T000000Z" for i in range(1, 7)]
    for v in versions:
        _fake_version(tmp_path, v)
    removed = snapshot.prune(tmp_path, 2, protect={versions[0]})
    assert removed == [versions[3], versions[2], versions[1]]
    assert snapshot.list_versions(tmp_path) == [versions[5], versions[4], versions[0]]
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    with pytest.raises(ValueError):
        snapshot.prune(tmp_path, 0, set())


def _start_server(root: Path, data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, REELRANK_ADMIN_TOKEN=ADMIN_TOKEN, PYTHONPATH=str(ROOT))
    with log.open("ab") as f:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.main",
                "--snapshots",
                str(root),
                "--data-root",
                str(data),
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            env=env,
            stdout=f,
            stderr=f,
            cwd=ROOT,
        )
    with AdminClient(f"127.0.0.1:{port}", token=ADMIN_TOKEN, timeout=2) as admin:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if admin.status().serving:
                    return proc
            except Exception:
                pass
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start:\n" + log.read_text()[-3000:])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_sigkill_during_rebuild_then_restart_serves_previous(
    built: dict[str, Any], demo_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "snapshots"
    root.mkdir()
    shutil.copytree(built["path"], root / built["version"])
    port = free_port()
    log = tmp_path / "server.log"
    server = _start_server(root, demo_dir, port, log)
    target = f"127.0.0.1:{port}"
    held: int | None = None
    try:
        with AdminClient(target, token=ADMIN_TOKEN, timeout=5) as admin:
            before = admin.status().snapshot_version
            op = admin.rebuild(demo_dir / "interactions.csv", demo_dir / "items.csv")
            deadline = time.monotonic() + 60
            workers: list[int] = []
            while time.monotonic() < deadline and not workers:
                workers = [
                    int(p.name)
                    for p in Path("/proc").iterdir()
                    if p.name.isdigit()
                    and _cmdline_has(p, b"server.admin.worker", str(root).encode())
                ]
                time.sleep(0.05)
            assert workers, "the rebuild child never started"
            assert not admin.get_operation(op.name).done
        server.send_signal(signal.SIGKILL)
        server.wait()
        # The build child dies with its server (PR_SET_PDEATHSIG), so it cannot publish later.
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers)
        # Leftovers of a build killed while writing, and a `reelrank build` still running.
        _tmp_dir(root, "20260101T000000Z", hold=False)
        held = _tmp_dir(root, "20260102T000000Z", hold=True)
        server = _start_server(root, demo_dir, port, log)
        with AdminClient(target, token=ADMIN_TOKEN, timeout=5) as admin:
            status = admin.status()
        assert status.snapshot_version == before
        assert list(status.available_versions) == [before]
        assert sorted(p.name for p in root.iterdir() if p.name.startswith(".tmp-")) == [
            ".tmp-20260102T000000Z"
        ]
        assert "removed 1 stale build directories" in log.read_text()
    finally:
        if held is not None:
            os.close(held)
        server.kill()
        server.wait()


def _cmdline_has(proc: Path, *needles: bytes) -> bool:
    try:
        cmd = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    return all(n in cmd for n in needles)
