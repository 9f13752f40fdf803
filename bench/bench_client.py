"""`make bench-client`: the load tester against a plain ``grpc.aio`` client, in one run.

Starts bench/empty_server.py (a RankingService whose Rank returns a fixed, pre-serialised
~2 KB RankResponse) in its own process, then alternates, for ``--rounds`` rounds:

(a) a plain ``grpc.aio`` closed-loop client: one process, one channel, ``--concurrency``
    coroutines each awaiting ``Rank`` with one pre-built request in a loop;
(b) ``reelrank loadtest --concurrency N`` with the same N, warm-up and duration, one process.

Each client runs in its own process and reports its achieved rate (completions in the measured
window / duration) and its CPU time per request (``time.process_time`` over warm-up and
measured window, divided by every completed request), so both are measured the same way.
Reported: the means over rounds, the ratio rate(loadtest) / rate(plain) (target >= 0.95) and
CPU(loadtest) / CPU(plain) (target <= 1). Then the load tester's p50/p90/p99 are checked
against latencies injected by client.fake_server, with the zero-latency floor calibrated in
the same run. Writes bench/results/client.json and the "## Client and load tester" section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _support import free_port, wait_ready  # noqa: E402  (bench/ is on sys.path)

SECTION = "## Client and load tester (make bench-client)"


def realistic_response() -> bytes:
    """A serialised RankResponse shaped like the real server's: 20 items, fairness report."""
    from server.api.reelrank.v1 import ranking_service_pb2 as pb
    from server.api.reelrank.v1 import types_pb2

    version = "20261128T052300Z-5f3a9c1e"
    items = [
        pb.RankedItem(
            item_id=f"v{1_000_000 + 7919 * i:08d}",
            creator_id=f"c{40_000 + 131 * (i % 7):06d}",
            group="new_creator" if i % 5 == 0 else "established",
            score=1.0 - i / 40.0,
            snapshot_version=version,
            stage_scores=types_pb2.StageScores(
                keyword=0.31, embedding=0.52, popularity=0.18, freshness=0.77, ranking=0.64
            ),
            sources=[types_pb2.CANDIDATE_SOURCE_ANN],
        )
        for i in range(20)
    ]
    creators = {it.creator_id for it in items}
    response = pb.RankResponse(
        items=items,
        snapshot_version=version,
        fairness_report=types_pb2.FairnessReport(
            policy=types_pb2.FAIRNESS_POLICY_CREATOR_CAP,
            max_items_per_creator=3,
            distinct_creators=len(creators),
            min_exposure_ratio=0.8,
            dcg_retained=0.97,
            constraints_satisfied=True,
            groups=[
                types_pb2.GroupExposure(
                    group="new_creator", item_count=4, exposure_share=0.21, target_share=0.2
                ),
                types_pb2.GroupExposure(
                    group="established", item_count=16, exposure_share=0.79, target_share=0.8
                ),
            ],
        ),
    )
    return bytes(response.SerializeToString())


# ============================================================================================
# (a) the plain grpc.aio client (run as `bench_client.py --plain TARGET`, in its own process)
# ============================================================================================


async def _plain(target: str, concurrency: int, warmup: float, duration: float) -> dict[str, Any]:
    import grpc.aio

    from server.api.reelrank.v1 import ranking_service_pb2 as pb
    from server.api.reelrank.v1 import ranking_service_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
        stub = pb_grpc.RankingServiceStub(channel)  # type: ignore[no-untyped-call]
        request = pb.RankRequest(user_id="u1", num_results=20)
        t_measure = time.perf_counter() + warmup
        t_end = t_measure + duration
        measured = total = 0

        async def caller() -> None:
            nonlocal measured, total
            while True:
                now = time.perf_counter()
                if now >= t_end:
                    return
                await stub.Rank(request, timeout=2.0)
                total += 1
                if now >= t_measure:
                    measured += 1

        cpu0 = time.process_time()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        cpu = time.process_time() - cpu0
    return {
        "achieved_rate": measured / duration,
        "requests": total,
        "cpu_seconds": cpu,
        "cpu_us_per_request": cpu / total * 1e6,
    }


def run_plain(port: int, concurrency: int, warmup: float, duration: float) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--plain", f"127.0.0.1:{port}", "--concurrency",
        str(concurrency), "--warmup", str(warmup), "--duration", str(duration),
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


# ============================================================================================
# (b) reelrank loadtest
# ============================================================================================


def run_loadtest(
    port: int, concurrency: int, warmup: float, duration: float, out: Path, *extra: str
) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "client.cli", "loadtest", "--target", f"127.0.0.1:{port}",
        "--concurrency", str(concurrency), "--warmup", str(warmup), "--duration", str(duration),
        "--num-results", "20", "--json", str(out), *extra,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    report = json.loads(out.read_text())
    s = report["summary"]
    return {
        "achieved_rate": s["achieved_rate"],
        "requests": report["stats"]["ok"]
        + report["stats"]["failed"]
        + report["stats"]["warmup_completed"],
        "cpu_seconds": report["stats"]["cpu_seconds"],
        "cpu_us_per_request": s["client_cpu_us_per_request"],
        "errors": s["errors"],
        "full_page_share": s["full_page_share"],
        "latency_p50_ms": s["latency_p50_ms"],
        "latency_p99_ms": s["latency_p99_ms"],
    }


# ============================================================================================
# p99 agreement with injected latencies
# ============================================================================================


def latency_agreement(concurrency: int, duration: float) -> dict[str, Any]:
    """The tester's percentiles vs latencies injected by the fake server (log-normal, 40 ms).

    Compared twice: with the injected latencies as such, and with what a perfect client
    would see on this machine: the latencies the server really slept (a busy machine
    oversleeps) plus the client-side floor, measured by a zero-latency run at the same
    request rate (open loop), the two taken as independent
    (:func:`client.fake_server.expected_percentiles`).
    """
    from statistics import NormalDist

    import numpy as np

    from client.fake_server import FakeRankingService, expected_percentiles, start_fake_server
    from client.loadtest import LoadConfig, run_load

    z = np.array([NormalDist().inv_cdf((i + 0.5) / 1000) for i in range(1000)])
    injected = np.exp(np.log(0.04) + 0.5 * z)
    np.random.default_rng(3).shuffle(injected)
    fake = FakeRankingService(latencies=injected.tolist())
    with start_fake_server(fake, max_workers=32) as srv:
        report = run_load(
            LoadConfig(
                target=srv.target, concurrency=concurrency, duration=duration, warmup=0.0,
                progress=False,
            )
        )  # fmt: skip
    with start_fake_server(FakeRankingService(), max_workers=32) as srv:
        floor = run_load(
            LoadConfig(
                target=srv.target, rate=report.achieved_rate, duration=duration, warmup=0.0,
                progress=False,
            )
        ).stats.latency  # fmt: skip
    applied = np.array(fake.applied_latencies)
    expected = expected_percentiles(fake.served_latencies, floor, (50, 90, 99))
    out: dict[str, Any] = {
        "concurrency": concurrency,
        "requests": report.stats.ok,
        "achieved_rate": report.achieved_rate,
        "floor_p50_ms": floor.percentile(50) * 1e3,
        "floor_p99_ms": floor.percentile(99) * 1e3,
    }
    for q in (50, 90, 99):
        measured = report.stats.latency.percentile(q)
        inj = float(np.percentile(applied, q))
        out[f"p{q}"] = {
            "measured_ms": measured * 1e3,
            "injected_ms": inj * 1e3,
            "expected_ms": expected[q] * 1e3,
            "error_vs_injected": measured / inj - 1,
            "error_vs_expected": measured / expected[q] - 1,
        }
    return out


def python_work(n: int = 100_000) -> dict[str, float]:
    """CPU µs per request of each client's own Python work besides the gRPC call itself.

    Deterministic where the end-to-end CPU figures are noisy: the plain client serialises
    its request and deserialises every answer (the stub does); the load tester takes a
    cached serialised request, records one histogram bucket and parses and checks one answer
    in ``check_every`` (the default 10).
    """
    from client.loadtest import LoadConfig, RequestFactory, Workload, _new_hist, _Plan, _Worker
    from server.api.reelrank.v1 import ranking_service_pb2 as pb

    payload = realistic_response()
    request = pb.RankRequest(user_id="u1", num_results=20)
    factory = RequestFactory(Workload(), 0)
    cfg = LoadConfig()
    worker = _Worker(cfg, _Plan(0, 1, None, 0.0), None)
    hist = _new_hist()
    parse = pb.RankResponse.FromString

    def timed(fn: Any) -> float:
        cpu = time.process_time()
        fn()
        return (time.process_time() - cpu) / n * 1e6

    def plain() -> None:
        for _ in range(n):
            request.SerializeToString()
            parse(payload)

    def tester() -> None:
        every = cfg.check_every
        for i in range(n):
            factory.request_bytes()
            hist.record(0.004)
            if i % every == 0:
                worker._check(payload)

    def check_all() -> None:
        for _ in range(n):
            worker._check(payload)

    return {
        "plain_us": min(timed(plain) for _ in range(3)),
        "loadtest_us": min(timed(tester) for _ in range(3)),
        "check_one_answer_us": min(timed(check_all) for _ in range(3)),
        "check_every": cfg.check_every,
    }


# ============================================================================================
# Driver
# ============================================================================================


def machine() -> dict[str, Any]:
    out: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    with contextlib.suppress(OSError, StopIteration):
        out["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--server-workers", type=int, default=8)
    p.add_argument("--no-markdown", action="store_true", help="only write the JSON results")
    p.add_argument("--plain", metavar="TARGET", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.plain:
        result = asyncio.run(_plain(args.plain, args.concurrency, args.warmup, args.duration))
        print(json.dumps(result))
        return

    results: dict[str, Any] = {
        "command": "make bench-client",
        "machine": machine(),
        "load_average_start": list(os.getloadavg()),
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "server_workers": args.server_workers,
    }
    payload = realistic_response()
    results["response_bytes"] = len(payload)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "response.bin").write_bytes(payload)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "bench/empty_server.py"), "--port", str(port),
             "--response", str(tmp / "response.bin"), "--workers", str(args.server_workers)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready(port, timeout=60)
            for k in range(args.rounds):
                # Alternate which client goes first so drifting background load evens out.
                order = ("plain", "loadtest") if k % 2 == 0 else ("loadtest", "plain")
                row: dict[str, Any] = {"load_average_1m": os.getloadavg()[0]}
                for which in order:
                    if which == "plain":
                        row["plain"] = run_plain(port, args.concurrency, args.warmup, args.duration)
                    else:
                        row["loadtest"] = run_loadtest(
                            port, args.concurrency, args.warmup, args.duration,
                            tmp / f"lt{k}.json",
                        )  # fmt: skip
                    print(which, k, json.dumps(row[which]), flush=True)
                rounds.append(row)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    results["rounds_detail"] = rounds

    def mean(which: str, key: str) -> float:
        return statistics.fmean(float(r[which][key]) for r in rounds)

    def spread(which: str, key: str) -> list[float]:
        values = [float(r[which][key]) for r in rounds]
        return [min(values), max(values)]

    for which in ("plain", "loadtest"):
        results[which] = {
            "achieved_rate": mean(which, "achieved_rate"),
            "achieved_rate_range": spread(which, "achieved_rate"),
            "cpu_us_per_request": mean(which, "cpu_us_per_request"),
            "cpu_us_per_request_range": spread(which, "cpu_us_per_request"),
        }
    # Headline: the ratio of the means over rounds; per round (each pair ran back to back)
    # to show the noise.
    rate_ratios = [r["loadtest"]["achieved_rate"] / r["plain"]["achieved_rate"] for r in rounds]
    cpu_ratios = [
        r["loadtest"]["cpu_us_per_request"] / r["plain"]["cpu_us_per_request"] for r in rounds
    ]
    results["rate_ratio"] = results["loadtest"]["achieved_rate"] / results["plain"]["achieved_rate"]
    results["rate_ratio_per_round"] = rate_ratios
    results["cpu_ratio"] = (
        results["loadtest"]["cpu_us_per_request"] / results["plain"]["cpu_us_per_request"]
    )
    results["cpu_ratio_per_round"] = cpu_ratios
    results["targets"] = {
        "rate_ratio_ge_0_95": results["rate_ratio"] >= 0.95,
        "cpu_ratio_le_1": results["cpu_ratio"] <= 1.0,
    }
    results["python_work"] = python_work()
    print("python work", results["python_work"], flush=True)
    print("latency agreement ...", flush=True)
    results["latency_agreement"] = latency_agreement(8, 3.0)
    results["load_average_end"] = list(os.getloadavg())
    out = ROOT / "bench" / "results" / "client.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: results[k] for k in ("plain", "loadtest", "rate_ratio", "cpu_ratio")}))
    if not args.no_markdown:
        write_markdown(results)


def write_markdown(r: dict[str, Any]) -> None:
    pl, lt, la, pw = r["plain"], r["loadtest"], r["latency_agreement"], r["python_work"]
    c = r["concurrency"]

    def rng(v: list[float], fmt: str) -> str:
        return f"{v[0]:{fmt}} – {v[1]:{fmt}}"

    rate_rounds = ", ".join(f"{x:.2f}" for x in r["rate_ratio_per_round"])
    cpu_rounds = ", ".join(f"{x:.2f}" for x in r["cpu_ratio_per_round"])
    lines = [
        SECTION,
        "",
        f"Command: `make bench-client` (`bench/bench_client.py`). Machine: {r['machine']['cpu']}, "
        f"{r['machine']['cores']} cores, shared with other jobs: 1/5/15-minute load average "
        + "/".join(f"{x:.1f}" for x in r["load_average_start"])
        + " at start, "
        + "/".join(f"{x:.1f}" for x in r["load_average_end"])
        + " at end. Server: `bench/empty_server.py` (Python sync gRPC, "
        f"{r['server_workers']} threads) returning a fixed {r['response_bytes']} B RankResponse, "
        "in its own process on the same machine. Each client runs in its own single process, "
        f"concurrency {c}, {r['warmup_s']:g} s warm-up + {r['duration_s']:g} s measured, "
        f"{r['rounds']} alternating rounds; CPU per request is `time.process_time` of the client "
        "process over warm-up and measured window divided by every request it completed.",
        "",
        "| client | rate, req/s (mean; range) | client CPU per request, µs (mean; range) |",
        "|---|---|---|",
        f"| plain `grpc.aio` loop, {c} coroutines, one pre-built request | "
        f"{pl['achieved_rate']:.0f}; {rng(pl['achieved_rate_range'], '.0f')} | "
        f"{pl['cpu_us_per_request']:.0f}; {rng(pl['cpu_us_per_request_range'], '.0f')} |",
        f"| `reelrank loadtest --concurrency {c}` (Zipf users, answer checks, histograms, "
        f"progress line) | {lt['achieved_rate']:.0f}; {rng(lt['achieved_rate_range'], '.0f')} | "
        f"{lt['cpu_us_per_request']:.0f}; {rng(lt['cpu_us_per_request_range'], '.0f')} |",
        "",
        "| target | ratio of the means | per round | met |",
        "|---|---|---|---|",
        f"| rate(loadtest) / rate(plain) >= 0.95 | {r['rate_ratio']:.3f} | {rate_rounds} | "
        f"{'yes' if r['targets']['rate_ratio_ge_0_95'] else 'no'} |",
        f"| CPU(loadtest) / CPU(plain) <= 1 | {r['cpu_ratio']:.3f} | {cpu_rounds} | "
        f"{'yes' if r['targets']['cpu_ratio_le_1'] else 'no'} |",
        "",
        "Both clients spend nearly all their CPU inside gRPC (the same calls). The rate (the "
        "Python server is the bottleneck) and the CPU per request move with the other jobs on "
        f"the machine: the per-round ratios range over {min(r['rate_ratio_per_round']):.2f} – "
        f"{max(r['rate_ratio_per_round']):.2f} (rate) and {min(r['cpu_ratio_per_round']):.2f} – "
        f"{max(r['cpu_ratio_per_round']):.2f} (CPU), so a difference of a few per cent between "
        "the means is within the noise, and a single round can miss either target. The part "
        "that really differs, each client's own Python work per request besides the call, "
        "measured in-process in the same run (best of 3 x 100,000), is not noisy:",
        "",
        "| client | own work per request | what it is |",
        "|---|---|---|",
        f"| plain `grpc.aio` | {pw['plain_us']:.2f} µs | serialise the request, deserialise "
        "every answer (the stub does both) |",
        f"| `reelrank loadtest` | {pw['loadtest_us']:.2f} µs | cached serialised request, one "
        f"histogram record, parse and check 1 answer in {pw['check_every']} |",
        f"| `reelrank loadtest --check-every 1` | +{pw['check_one_answer_us']:.2f} µs per "
        "checked answer | parse + fullness, duplicates, cold start, fairness figures |",
        "",
        "Latency agreement (`client.fake_server` injecting 1,000 log-normal latencies, median "
        f"40 ms, sigma 0.5; closed loop, concurrency {la['concurrency']}, {la['requests']} "
        f"requests at {la['achieved_rate']:.0f} req/s). *Expected* is what a perfect client "
        "would see here: the latencies the server really slept (a busy machine oversleeps) "
        "plus the client-side floor of a zero-latency run at the same rate (p50 "
        f"{la['floor_p50_ms']:.2f} ms, p99 {la['floor_p99_ms']:.2f} ms), taken as independent "
        "(`client.fake_server.expected_percentiles`); `tests/test_loadtest_run.py` asserts "
        "the same within 10 %.",
        "",
        "| percentile | measured ms | injected ms | error vs injected | expected ms | "
        "error vs expected |",
        "|---|---|---|---|---|---|",
    ]
    for q in (50, 90, 99):
        a = la[f"p{q}"]
        lines.append(
            f"| p{q} | {a['measured_ms']:.2f} | {a['injected_ms']:.2f} | "
            f"{a['error_vs_injected']:+.1%} | {a['expected_ms']:.2f} | "
            f"{a['error_vs_expected']:+.1%} |"
        )
    lines.append("")
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    section = "\n".join(lines)
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    main()
