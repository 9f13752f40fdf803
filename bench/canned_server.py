"""reelrank's own server with the Rank pipeline cut out: the cost of everything around it.

`python bench/canned_server.py --response FILE [reelrank-server options]` starts the real
server (`server.main`: grpc.aio, its interceptors, admission, metrics, the loaded snapshot),
except that `RankingService.Rank` answers the parsed `RankResponse` in FILE instead of running
the pipeline. `make bench-serve` drives it beside the real server and the bare empty handler
(bench/empty_server.py): the difference between this server and the empty handler is the
serving framework's cost, the difference between it and the real server the pipeline's.
Single process only (`--processes 1`): the replacement is made in this process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--response", type=Path, required=True, help="serialised RankResponse bytes")
    args, rest = p.parse_known_args()

    from server import main as server_main
    from server.api.reelrank.v1 import ranking_service_pb2 as pb
    from server.services import ranking_service

    payload = args.response.read_bytes()

    def canned(self: ranking_service.RankingService, request: Any, context: Any) -> Any:
        # Parsed per call, as the real handler builds its message per call.
        return pb.RankResponse.FromString(payload)

    # `_admitted` as the real Rank: the admission slot is part of the framework's cost.
    ranking_service.RankingService.Rank = ranking_service._admitted(canned)  # type: ignore[method-assign]
    return server_main.main(rest)


if __name__ == "__main__":
    sys.exit(main())
