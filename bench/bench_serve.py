"""`make bench-serve`: the Rank pipeline and server on a 1,000,000-item synthetic catalogue.

Measures, in one run on this machine:
1. in-process pipeline latency (retrieval + ranking + re-ranking, no gRPC), p50/p99;
2. an open-loop load of 300 requests/s for 60 s against the real server (p99, errors);
3. peak closed-loop throughput of the real server (one and two processes) vs an empty handler
   returning a response of the same size (bench/empty_server.py), in alternating rounds, the
   ratio being the figure that matters;
4. memory: RSS and PSS of one serving process vs two sharing the port (SO_REUSEPORT).
Writes bench/results/serve.json and the "## Serving" section of BENCHMARKS.md.
The catalogue and snapshot are cached under var/bench/ (delete it to rebuild).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _support import free_port, wait_ready  # noqa: E402  (bench/ is on sys.path)

CACHE = ROOT / "var" / "bench" / "serve"


def ensure_snapshot(n_items: int, n_users: int) -> Path:
    from server.data import synthetic
    from server.index import builder, snapshot

    data = CACHE / f"data-{n_items}-{n_users}"
    snaps = CACHE / f"snapshots-{n_items}-{n_users}"
    if not (data / "items.csv").exists():
        t = time.perf_counter()
        synthetic.generate(n_items, n_users, 5, data)
        print(f"generated catalogue in {time.perf_counter() - t:.0f}s", flush=True)
    versions = snapshot.list_versions(snaps)
    if not versions or _stale(snapshot.read_manifest(snaps / versions[0])):
        t = time.perf_counter()
        m = builder.build_snapshot(data / "interactions.csv", data / "items.csv", snaps)
        print(f"built snapshot in {time.perf_counter() - t:.0f}s", flush=True)
        for old in versions:  # a cached snapshot from an older build: 2 GB each
            shutil.rmtree(snaps / old, ignore_errors=True)
        (snaps / "ACTIVE").unlink(missing_ok=True)
        assert snapshot.list_versions(snaps) == [m["version"]]
    return snaps


def _stale(manifest: dict[str, Any]) -> bool:
    """A cached snapshot built before the current serving features (rebuild it)."""
    files = manifest.get("files", {})
    ucand = manifest.get("user_candidates")
    return ucand is None or set(ucand) != {"ann", "keyword"} or "kw_packed_words.npy" not in files


def pipeline_latency(snap_dir: Path, n: int, events_per_request: int = 0) -> dict[str, Any]:
    """In-process `rank` latency for random stored users; with `events_per_request`, each
    request carries that many recent likes (random items), which forces the online searches."""
    from server.index.loaded import open_snapshot
    from server.pipeline import rank
    from server.pipeline.types import Event, FairnessParams

    snap = open_snapshot(snap_dir, verify_checksums=False)
    rng = np.random.default_rng(0)
    users = rng.integers(0, snap.n_users, n)
    params = FairnessParams()
    now = time.time()

    def events() -> list[Event]:
        picks = rng.integers(0, snap.n_items, events_per_request)
        return [
            Event(snap.item_ids[int(i)], "like", now - 60.0 * j, 1.0) for j, i in enumerate(picks)
        ]

    for u in users[:200]:  # warm page cache and cost estimates
        rank.rank(snap, snap.user_ids[int(u)], events(), [], 20, 500, params)
    total, stages = [], {"retrieval": [], "ranking": [], "reranking": []}
    for u in users:
        ev = events()
        t = time.perf_counter()
        r = rank.rank(snap, snap.user_ids[int(u)], ev, [], 20, 500, params)
        total.append(time.perf_counter() - t)
        for k, v in r.timings_us.items():
            stages[k].append(v / 1e6)
    pct = lambda xs, q: float(np.percentile(np.asarray(xs), q)) * 1e3  # noqa: E731
    return {
        "requests": n,
        "recent_events_per_request": events_per_request,
        "p50_ms": pct(total, 50),
        "p99_ms": pct(total, 99),
        "stages_p50_ms": {k: pct(v, 50) for k, v in stages.items()},
        "stages_p99_ms": {k: pct(v, 99) for k, v in stages.items()},
    }


def memory_of(pid: int) -> dict[str, float]:
    """RSS and PSS (shared pages split between sharers) in MiB, from smaps_rollup."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    kb = {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}
    return {"rss_mib": kb["Rss"] / 1024, "pss_mib": kb["Pss"] / 1024}


def children(pid: int) -> list[int]:
    """Serving worker processes of a multi-process server (not multiprocessing's helpers)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    pids = [int(x) for x in out.split()]
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


class Server:
    def __init__(self, args: list[str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_ready(port, timeout=900)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def loadtest(port: int, users: Path, out: Path, *extra: str) -> dict[str, Any]:
    # SO_REUSEPORT spreads connections, not requests, over the serving processes: with 4
    # connections one process often got 3 (or all 4) of them. 16 spread like many clients do.
    cmd = [
        sys.executable, "-m", "client.cli", "loadtest", "--target", f"127.0.0.1:{port}",
        "--users-file", str(users), "--cold-fraction", "0.05", "--num-results", "20",
        "--no-progress", "--channels", "16", "--json", str(out), *extra,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of a load-test JSON report (client/loadtest.py format)."""
    sm = report["summary"]
    return {
        "achieved_rate": sm["achieved_rate"],
        "ok": sm["ok"],
        "errors": sm["errors"],
        "p50_ms": sm["latency_p50_ms"],
        "p90_ms": sm["latency_p90_ms"],
        "p99_ms": sm["latency_p99_ms"],
        "p999_ms": sm.get("latency_p99.9_ms"),
        "max_ms": sm["latency_max_ms"],
        "full_page_share": sm["full_page_share"],
        "client_cpu_us_per_request": sm["client_cpu_us_per_request"],
        "errors_by_code": report.get("errors_by_code", {}),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=300)
    p.add_argument("--open-seconds", type=float, default=60)
    p.add_argument("--closed-seconds", type=float, default=20)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument(
        "--rounds", type=int, default=3, help="alternating closed-loop rounds (median reported)"
    )
    p.add_argument("--pipeline-requests", type=int, default=3000)
    args = p.parse_args()

    out: dict[str, Any] = {
        "command": "make bench-serve",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "catalogue": {"items": args.items, "users": args.users},
    }
    with contextlib.suppress(OSError, StopIteration):
        out["machine"]["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    root = ensure_snapshot(args.items, args.users)
    from server.index import snapshot

    version = snapshot.list_versions(root)[0]
    snap_dir = root / version
    out["pipeline"] = pipeline_latency(snap_dir, args.pipeline_requests)
    print("pipeline", out["pipeline"], flush=True)
    out["pipeline_with_events"] = pipeline_latency(snap_dir, args.pipeline_requests // 3, 3)
    print("pipeline with 3 recent events", out["pipeline_with_events"], flush=True)

    tmp = CACHE / "run"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    users = tmp / "users.txt"
    ids = (snap_dir / "user_ids.txt").read_text().split("\n")[:-1]
    rng = np.random.default_rng(1)
    users.write_text("\n".join(rng.permutation(ids)[:50_000]) + "\n")
    server_cmd = [
        sys.executable,
        "-m",
        "server.main",
        "--snapshots",
        str(root),
        "--log-level",
        "WARNING",
        # Default settings: ranking RPCs run inline on the grpc.aio event loop; --workers
        # only sizes the admin plane's thread pool (docs/SERVING.md, 'Using both cores').
    ]

    closed = ("--concurrency", str(args.concurrency), "--duration", str(args.closed_seconds))

    warm = ("--concurrency", "8", "--duration", "5")
    one_cmd = [*server_cmd, "--port"]
    two_extra = ["--processes", "2"]

    # Memory, each configuration alone: PSS splits a page among every process that maps it, so
    # another server mapping the same snapshot would make the pair look cheaper than it is.
    port = free_port()
    one = Server([*one_cmd, str(port)], port)
    try:
        loadtest(port, users, tmp / "warm.json", *warm)
        out["memory_one_process"] = memory_of(one.proc.pid)
        sample = _one_response(port, ids[0])
    finally:
        one.stop()
    port = free_port()
    two = Server([*one_cmd, str(port), *two_extra], port)
    try:
        loadtest(port, users, tmp / "warm2.json", *warm)
        mems = [memory_of(w) for w in children(two.proc.pid)]
        out["memory_two_processes"] = {
            "per_process": mems,
            "pss_total_mib": sum(m["pss_mib"] for m in mems),
            "rss_total_mib": sum(m["rss_mib"] for m in mems),
        }
    finally:
        two.stop()

    # Peak throughput: the empty handler (same-size response), one and two serving processes,
    # all up at once and driven in alternating rounds, so that the machine's drift (other jobs,
    # the host) falls on all three alike; each figure is the median round.
    payload = tmp / "response.bin"
    payload.write_bytes(sample)
    out["response_bytes"] = len(sample)
    ports = {name: free_port() for name in ("empty", "one", "two")}
    empty_cmd = [sys.executable, str(ROOT / "bench/empty_server.py"), "--port"]
    servers: dict[str, Server] = {}
    try:
        servers["empty"] = Server(
            [*empty_cmd, str(ports["empty"]), "--response", str(payload)], ports["empty"]
        )
        servers["one"] = Server([*one_cmd, str(ports["one"])], ports["one"])
        servers["two"] = Server([*one_cmd, str(ports["two"]), *two_extra], ports["two"])
        for name in ("one", "two"):
            loadtest(ports[name], users, tmp / f"warm-{name}.json", *warm)
        rounds: list[dict[str, dict[str, Any]]] = []
        for r in range(args.rounds):
            rounds.append(
                {
                    name: summary(loadtest(ports[name], users, tmp / f"{name}-{r}.json", *closed))
                    for name in ("empty", "one", "two")
                }
            )
            print(f"round {r}", {k: v["achieved_rate"] for k, v in rounds[-1].items()}, flush=True)
        out["open_loop"] = summary(
            loadtest(ports["two"], users, tmp / "open.json", "--rate", str(args.rate),
                     "--duration", str(args.open_seconds), "--warmup", "3")
        )  # fmt: skip
        print("open loop (2 processes)", out["open_loop"], flush=True)
    finally:
        for server in servers.values():
            server.stop()

    def median_round(name: str) -> dict[str, Any]:
        ordered = sorted((rd[name] for rd in rounds), key=lambda x: float(x["achieved_rate"]))
        return ordered[len(ordered) // 2]

    out["closed_loop_real"] = median_round("one")
    out["closed_loop_empty"] = median_round("empty")
    out["closed_loop_two_processes"] = median_round("two")
    ratios = sorted(
        max(rd["one"]["achieved_rate"], rd["two"]["achieved_rate"]) / rd["empty"]["achieved_rate"]
        for rd in rounds
    )
    out["closed_loop_rounds"] = [{k: v["achieved_rate"] for k, v in rd.items()} for rd in rounds]
    # Per round the best real configuration over the empty handler; the median of the rounds.
    out["throughput_ratio_vs_empty"] = ratios[len(ratios) // 2]
    one_rss = out["memory_one_process"]["rss_mib"]
    out["memory_ratio_two_vs_one"] = out["memory_two_processes"]["pss_total_mib"] / one_rss

    res = ROOT / "bench" / "results" / "serve.json"
    res.parent.mkdir(parents=True, exist_ok=True)
    res.write_text(json.dumps(out, indent=2))
    write_markdown(out)
    print(json.dumps(out, indent=2))


def _one_response(port: int, user: str) -> bytes:
    import grpc

    from server.api.reelrank.v1 import ranking_service_pb2 as pb
    from server.api.reelrank.v1 import ranking_service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        resp = pb_grpc.RankingServiceStub(ch).Rank(
            pb.RankRequest(user_id=user, num_results=20), timeout=5
        )
    return bytes(resp.SerializeToString())


def write_markdown(r: dict[str, Any]) -> None:
    pl, ol, cr, ce = r["pipeline"], r["open_loop"], r["closed_loop_real"], r["closed_loop_empty"]
    pe = r["pipeline_with_events"]
    m1, m2 = r["memory_one_process"], r["memory_two_processes"]
    lines = [
        "## Serving (make bench-serve)",
        "",
        f"Command: `make bench-serve` (`bench/bench_serve.py`). Machine: {r['machine']['cpu']}, "
        f"{r['machine']['cores']} cores; client and server on the same machine. Catalogue: "
        f"{r['catalogue']['items']:,} items, {r['catalogue']['users']:,} users "
        "(synthetic, seed 5); "
        "500 candidates, 20 results, the default fairness policy (docs/FAIRNESS.md).",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| in-process pipeline p50 / p99 | {pl['p50_ms']:.2f} / {pl['p99_ms']:.2f} ms "
        "| < 2 / < 5 ms |",
        "| stage p50: retrieval / ranking / re-ranking | "
        + " / ".join(f"{pl['stages_p50_ms'][s]:.2f}" for s in ("retrieval", "ranking", "reranking"))
        + " ms | |",
        f"| same with 3 recent events per request (online searches) p50 / p99 | "
        f"{pe['p50_ms']:.2f} / {pe['p99_ms']:.2f} ms | |",
        f"| open loop {r['open_loop'].get('achieved_rate', 0):.0f} req/s for 60 s "
        "(2 processes): p50 / p99 | "
        f"{ol.get('p50_ms', float('nan')):.2f} / {ol.get('p99_ms', float('nan')):.2f} ms, "
        f"errors {ol.get('errors', 0)} | p99 < 15 ms, 0 errors |",
        f"| closed-loop peak, real server (1 process) | {cr['achieved_rate']:.0f} req/s | |",
        f"| closed-loop peak, empty handler, {r['response_bytes']} B response | "
        f"{ce['achieved_rate']:.0f} req/s | |",
        f"| best real / empty (median of {len(r['closed_loop_rounds'])} alternating rounds) | "
        f"{r['throughput_ratio_vs_empty']:.2f} | >= 0.60 |",
        f"| closed-loop peak, real server (2 processes) | "
        f"{r['closed_loop_two_processes']['achieved_rate']:.0f} req/s | |",
        f"| memory, 1 process: RSS | {m1['rss_mib']:.0f} MiB | |",
        f"| memory, 2 processes: PSS total (RSS each) | {m2['pss_total_mib']:.0f} MiB ("
        + ", ".join(f"{p['rss_mib']:.0f}" for p in m2["per_process"])
        + f") | < 1.3x one: {r['memory_ratio_two_vs_one']:.2f}x |",
        "",
        "Closed-loop rounds (req/s: empty / 1 process / 2 processes): "
        + "; ".join(
            f"{x['empty']:.0f} / {x['one']:.0f} / {x['two']:.0f}" for x in r["closed_loop_rounds"]
        )
        + ". Each closed-loop figure above is its median round.",
        "",
        "PSS counts each shared page once across the processes that map it, so the two-process",
        "total is the memory the pair really costs; RSS counts shared pages in every process.",
        "Where the time goes, and why the throughput target is missed: docs/SERVING.md,",
        "'Performance'. Servers run with the default settings: ranking RPCs inline on the",
        "`grpc.aio` event loop (docs/SERVING.md, 'Using both cores').",
        "",
    ]
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    section = "\n".join(lines)
    pattern = re.compile(r"## Serving \(make bench-serve\).*?(?=\n## |\Z)", re.S)
    text = (
        pattern.sub(lambda _: section.rstrip("\n") + "\n", text)
        if pattern.search(text)
        else text.rstrip("\n") + "\n\n" + section
    )
    path.write_text(text)


if __name__ == "__main__":
    main()
