"""`reelrank-server --processes 2`: two workers share one port and one snapshot copy."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.api.reelrank.v1 import ranking_service_pb2 as pb
from server.api.reelrank.v1 import ranking_service_pb2_grpc as pb_grpc
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def _workers(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def test_two_processes_share_the_port(built: dict[str, Any]) -> None:
    port = free_port()
    root = Path(built["path"]).parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.main", "--snapshots", str(root), "--port", str(port),
         "--processes", "2", "--workers", "2", "--log-level", "WARNING"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and not ready:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                try:
                    r = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    ready = r.status == health_pb2.HealthCheckResponse.SERVING
                except grpc.RpcError:
                    time.sleep(0.3)
        assert ready, "server did not become ready"
        time.sleep(1)  # both workers bound
        assert len(_workers(proc.pid)) == 2
        versions = set()
        for k in range(20):
            # A fresh connection each time: SO_REUSEPORT spreads connections, not calls.
            with grpc.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
            ) as ch:
                resp = pb_grpc.RankingServiceStub(ch).Rank(
                    pb.RankRequest(user_id=f"anyone-{k}", num_results=5), timeout=10
                )
                assert len(resp.items) == 5
                versions.add(resp.snapshot_version)
        assert versions == {built["version"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, proc.stderr.read() if proc.stderr else ""


def test_processes_need_a_fixed_port() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "server.main", "--port", "0", "--processes", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "needs a fixed --port" in run.stderr
