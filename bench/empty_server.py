"""A RankingService whose Rank returns a fixed, pre-serialised response: the gRPC floor.

`make bench-serve` runs it beside the real server and drives both with the same load, so the
real server's throughput is reported as a share of what Python gRPC can do at all on this
machine with a response of the same size.
"""

from __future__ import annotations

import argparse
import signal
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--response", type=Path, required=True, help="serialised RankResponse bytes")
    p.add_argument("--workers", type=int, default=8)
    args = p.parse_args()
    payload = args.response.read_bytes()

    def rank(request: bytes, context: grpc.ServicerContext) -> bytes:
        return payload

    handler = grpc.method_handlers_generic_handler(
        "reelrank.v1.RankingService",
        {"Rank": grpc.unary_unary_rpc_method_handler(rank)},  # bytes in, bytes out
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    server.add_generic_rpc_handlers((handler,))
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"empty server on {args.port} ({len(payload)} byte responses)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(0)


if __name__ == "__main__":
    main()
