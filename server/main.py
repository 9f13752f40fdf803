"""`reelrank-server`: serve the newest snapshot in a directory over gRPC."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from server.app import create_server
from server.config import ServerConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = ServerConfig.from_env()
    p = argparse.ArgumentParser(
        prog="reelrank-server",
        description="Serve reelrank's RankingService and IndexAdminService from the newest "
        "snapshot in --snapshots.",
        epilog="Admin RPCs need REELRANK_ADMIN_TOKEN set in the server's environment; clients "
        "send it as a bearer token.",
    )
    p.add_argument(
        "--snapshots",
        type=Path,
        default=env.snapshot_dir,
        help="snapshot root directory (default: %(default)s)",
    )
    p.add_argument("--host", default=env.host, help="address to bind (default: %(default)s)")
    p.add_argument(
        "--port",
        type=int,
        default=env.port,
        help="port to bind, 0 for any free port (default: %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=env.max_workers,
        help="RPC handler threads (default: %(default)s)",
    )
    p.add_argument(
        "--data-root",
        action="append",
        type=Path,
        default=None,
        help="directory RebuildIndex may read input from (repeatable; "
        "default: the snapshot root's parent)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = ServerConfig.from_env()
    cfg.snapshot_dir, cfg.host, cfg.port, cfg.max_workers = (
        args.snapshots,
        args.host,
        args.port,
        args.workers,
    )
    if args.data_root:
        cfg.data_roots = tuple(args.data_root)
    app = create_server(cfg)
    app.server.start()
    logging.getLogger("reelrank").info(
        "listening on %s:%d (snapshot %s)",
        cfg.host,
        app.port,
        getattr(app.store.current_or_none(), "version", "none"),
    )
    print(f"reelrank-server listening on {cfg.host}:{app.port}", flush=True)
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logging.getLogger("reelrank").info(
            "signal %d: draining for up to %.0fs", signum, cfg.grace_seconds
        )

        def drain() -> None:
            app.stop()
            done.set()

        threading.Thread(target=drain, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
