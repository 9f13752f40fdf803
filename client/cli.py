"""The ``reelrank`` command line.

Subcommands
-----------
``rank``       ask the ranking service for a user's page (table or JSON)
``demo-data``  write a synthetic data set (``server.data.synthetic``)
``build``      build an index snapshot offline (``server.index.builder``)
``admin``      index status and rebuilds through the admin API
``loadtest``   closed- or open-loop load test of ``Rank`` (and ``--compare`` of two reports)

Exit status: 0 on success, 1 when the operation failed (``error: ...`` on stderr), 2 on a
usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from client.errors import ReelrankError
from client.rank_client import (
    DEFAULT_TARGET,
    POLICY_NAMES,
    AdminClient,
    Event,
    RankingClient,
    event_type_from_str,
    event_type_names,
)

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class _UsageError(Exception):
    """A usage problem found after parsing (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of exiting, so ``main`` returns the status."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: error: {message}")


# ============================================================================================
# Argument types
# ============================================================================================


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1]: {text!r}")
    return value


def _event(text: str) -> Event:
    """``ITEM:TYPE`` or ``ITEM:TYPE:WATCH_RATIO`` (timestamped now)."""
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        try:
            ratio = float(parts[2])
        except ValueError:
            parts, ratio = [text.rsplit(":", 1)[0], parts[2]], 0.0
        else:
            parts = parts[:2]
    else:
        ratio = 0.0
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError(f"expected ITEM:TYPE, got {text!r}")
    item, kind = parts
    try:
        event_type_from_str(kind)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return Event(item_id=item, event_type=kind, timestamp=time.time(), watch_ratio=ratio)


# ============================================================================================
# Parser
# ============================================================================================


def _connection_options(parser: argparse.ArgumentParser, *, timeout: float) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--target",
        default=os.environ.get("REELRANK_TARGET", DEFAULT_TARGET),
        metavar="HOST:PORT",
        help="server address, or a comma list of HOST:PORT balanced round robin "
        "(default: $REELRANK_TARGET or %(default)s)",
    )
    group.add_argument(
        "--timeout",
        type=_positive_float,
        default=timeout,
        metavar="S",
        help="per-call deadline in seconds (default: %(default)s)",
    )
    group.add_argument("--tls", action="store_true", help="connect with TLS (system roots)")
    group.add_argument(
        "--ca-file", type=Path, metavar="PEM", help="PEM root certificates for TLS (implies --tls)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``reelrank`` argument parser (exposed for documentation and tests)."""
    parser = _Parser(
        prog="reelrank",
        description="Client tools for the reelrank short-video ranking service.",
        epilog="Exit status: 0 success, 1 failure (message on stderr), 2 usage error.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    # ---------------------------------------------------------------- rank
    p = sub.add_parser(
        "rank",
        help="rank one page for a user",
        description="Ask RankingService.Rank for a user's page and print it as a table "
        "(position, item, creator, group, score) or as JSON.",
    )
    p.add_argument(
        "--user", required=True, metavar="U", help="user id (unknown ids get a cold-start page)"
    )
    p.add_argument(
        "--num",
        type=_non_negative_int,
        default=20,
        metavar="N",
        help="page size, 1..1000; 0 uses the server default (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the RankResponse as JSON")
    p.add_argument(
        "--explain",
        action="store_true",
        help="request debug output and show stage scores, sources and stage timings",
    )
    p.add_argument(
        "--policy",
        choices=POLICY_NAMES,
        help="fairness policy for this request (default: the server's)",
    )
    p.add_argument(
        "--event",
        type=_event,
        action="append",
        default=[],
        metavar="ITEM:TYPE[:RATIO]",
        help="a recent event of the session, timestamped now; repeatable, oldest first. "
        f"TYPE is one of {', '.join(event_type_names())}; RATIO is the watch ratio",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="ITEM",
        help="item id that must not appear; repeatable",
    )
    p.add_argument(
        "--candidates",
        type=_non_negative_int,
        default=0,
        metavar="K",
        help="candidates to retrieve before ranking; 0 uses the server default",
    )
    _connection_options(p, timeout=2.0)
    p.set_defaults(func=_cmd_rank)

    # ---------------------------------------------------------------- demo-data
    p = sub.add_parser(
        "demo-data",
        help="write a synthetic data set",
        description="Generate synthetic items, users and interactions with "
        "server.data.synthetic.generate and print its summary.",
    )
    p.add_argument(
        "--items",
        type=_positive_int,
        default=10_000,
        metavar="N",
        help="number of items (default: %(default)s)",
    )
    p.add_argument(
        "--users",
        type=_positive_int,
        default=2_000,
        metavar="M",
        help="number of users (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random seed (default: %(default)s)"
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.set_defaults(func=_cmd_demo_data)

    # ---------------------------------------------------------------- build
    p = sub.add_parser(
        "build",
        help="build an index snapshot offline",
        description="Build a serving snapshot from the interactions and items tables with "
        "server.index.builder.build_snapshot and print its version and path.",
    )
    p.add_argument(
        "--interactions",
        type=Path,
        required=True,
        metavar="F",
        help="interactions table (CSV or Parquet)",
    )
    p.add_argument(
        "--items", type=Path, required=True, metavar="F", help="items table (CSV or Parquet)"
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="snapshot directory to write into"
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="JSON (or .toml) file of BuildConfig fields to override, for example "
        '{"embedding_dim": 32, "pool_size": 1000}',
    )
    p.set_defaults(func=_cmd_build)

    # ---------------------------------------------------------------- eval
    p = sub.add_parser(
        "eval",
        help="offline evaluation on a held-out split (engine vs baselines)",
        description="Split the interactions (random per-user 80/20 with a seed, or "
        "leave-last-out by time), build a snapshot from the training part (or query a live "
        "server with --target), rank every test user through Rank with fairness off, the "
        "creator cap, and the server default, and print precision, recall, NDCG, MAP and hit "
        "rate at 10 and 20, catalogue coverage, creator-exposure Gini and each fairness group's "
        "exposure share next to most-popular and ItemKNN baselines computed on the same split "
        "(server.eval).",
    )
    p.add_argument("--interactions", type=Path, required=True, metavar="F", help="interactions")
    p.add_argument("--items", type=Path, required=True, metavar="F", help="items table")
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="where the split and snapshot go"
    )
    p.add_argument(
        "--split",
        choices=("random", "last"),
        default="random",
        help="random per-user 80/20, or each user's last positive item (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="split seed (default: 0)")
    p.add_argument(
        "--target",
        metavar="HOST:PORT",
        help="evaluate a live server instead of an in-process snapshot; it must serve a "
        "snapshot built from DIR/train.csv of this split (run once without --target, or "
        "build it with `reelrank build`)",
    )
    p.add_argument(
        "--max-users",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="evaluate a seeded sample of N test users; 0 = all (default: 0)",
    )
    p.add_argument(
        "--candidates",
        type=_positive_int,
        default=500,
        metavar="K",
        help="candidates per request (default: %(default)s)",
    )
    p.add_argument(
        "--fairness-ablation",
        action="store_true",
        help="also rank with the default fairness composition without each of its policies "
        "and with each optional one (in-process only), to show what each policy costs and buys",
    )
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=_cmd_eval)

    # ---------------------------------------------------------------- admin
    p = sub.add_parser(
        "admin",
        help="index status and rebuilds (admin API)",
        description="Operator commands over IndexAdminService. The bearer token comes from "
        "--token-file or the REELRANK_ADMIN_TOKEN environment variable.",
    )
    admin_sub = p.add_subparsers(dest="admin_command", metavar="ACTION", parser_class=_Parser)
    admin_sub.required = True

    def admin_common(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--token-file",
            type=Path,
            metavar="FILE",
            help="file holding the admin token (default: $REELRANK_ADMIN_TOKEN)",
        )
        q.add_argument("--json", action="store_true", help="print the response as JSON")
        _connection_options(q, timeout=10.0)
        mtls = q.add_argument_group("mutual TLS")
        mtls.add_argument(
            "--client-cert", type=Path, metavar="PEM", help="client certificate chain (implies TLS)"
        )
        mtls.add_argument("--client-key", type=Path, metavar="PEM", help="client private key")

    q = admin_sub.add_parser(
        "status",
        help="describe the serving snapshot",
        description="Print GetIndexStatus: the serving snapshot.",
    )
    admin_common(q)
    q.set_defaults(func=_cmd_admin_status)

    q = admin_sub.add_parser(
        "rebuild",
        help="rebuild the index from tables the server can read",
        description="Start RebuildIndex (a long-running operation) and print the operation "
        "name, or with --wait poll it to the end, showing progress on stderr.",
    )
    q.add_argument(
        "--source",
        metavar="NAME",
        help="an input source configured on the server (instead of --interactions/--items)",
    )
    q.add_argument(
        "--interactions",
        metavar="F",
        help="interactions table path, as seen by the server (inside its data roots)",
    )
    q.add_argument(
        "--items",
        metavar="F",
        help="items table path, as seen by the server (inside its data roots)",
    )
    q.add_argument(
        "--force",
        action="store_true",
        help="activate the new snapshot even if it fails the server's quality gate",
    )
    q.add_argument(
        "--wait", action="store_true", help="poll until the rebuild finishes; progress on stderr"
    )
    q.add_argument(
        "--no-activate",
        action="store_true",
        help="write the snapshot but keep the serving one active",
    )
    q.add_argument(
        "--poll",
        type=_positive_float,
        default=0.5,
        metavar="S",
        help="seconds between polls with --wait (default: %(default)s)",
    )
    q.add_argument(
        "--wait-timeout",
        type=_positive_float,
        metavar="S",
        help="give up waiting after S seconds (default: wait for ever)",
    )
    admin_common(q)
    q.set_defaults(func=_cmd_admin_rebuild)

    q = admin_sub.add_parser(
        "snapshots",
        help="list the kept snapshots",
        description="Print ListSnapshots: kept snapshots, newest first, the serving one marked "
        "with '*', with their quality-gate verdict.",
    )
    admin_common(q)
    q.set_defaults(func=_cmd_admin_snapshots)

    q = admin_sub.add_parser(
        "activate",
        help="serve a kept snapshot (roll back or forward)",
        description="ActivateSnapshot: load, verify and warm VERSION beside the serving snapshot, "
        "then swap. The choice is recorded, so a restarted server serves it too.",
    )
    q.add_argument("version", metavar="VERSION", help="a version listed by `admin snapshots`")
    q.add_argument(
        "--force", action="store_true", help="activate even if it fails the quality gate"
    )
    admin_common(q)
    q.set_defaults(func=_cmd_admin_activate)

    q = admin_sub.add_parser(
        "cancel",
        help="cancel a running rebuild",
        description="CancelOperation: stop the build and remove what it wrote. A no-op for a "
        "finished operation; refused once the new snapshot is being swapped in.",
    )
    q.add_argument("operation", metavar="OP", help="operation name, e.g. operations/rebuild-…")
    admin_common(q)
    q.set_defaults(func=_cmd_admin_cancel)

    # ---------------------------------------------------------------- loadtest
    _add_loadtest_parser(sub)
    return parser


def _add_loadtest_parser(sub: Any) -> None:
    p = sub.add_parser(
        "loadtest",
        help="load test Rank (closed or open loop), or compare two reports",
        description="Load test RankingService.Rank. Closed loop (--concurrency): C callers "
        "each send the next request when the last one answered; it measures service time and "
        "peak throughput. Open loop (--rate): requests are scheduled at R per second whatever "
        "happens, and latency counts from the scheduled send time, so queueing shows. "
        "With --compare A B, print the differences between two --json reports instead.",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A.json", "B.json"),
        help="compare two reports written with --json and exit",
    )
    load = p.add_argument_group("load")
    mode = load.add_mutually_exclusive_group()
    mode.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="C",
        help="closed loop with C concurrent callers in total (the default mode, with C=8)",
    )
    mode.add_argument(
        "--rate",
        type=_positive_float,
        metavar="R",
        help="open loop at R requests per second in total",
    )
    load.add_argument(
        "--arrival",
        choices=("poisson", "constant"),
        default="poisson",
        help="open-loop inter-arrival times (default: %(default)s)",
    )
    load.add_argument(
        "--duration",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="measured seconds (default: %(default)s)",
    )
    load.add_argument(
        "--warmup",
        type=_non_negative_float,
        default=2.0,
        metavar="S",
        help="seconds of load before measuring (not reported) (default: %(default)s)",
    )
    load.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        metavar="P",
        help="worker processes, each with its own grpc.aio event loop (default: %(default)s)",
    )
    load.add_argument(
        "--channels",
        type=_positive_int,
        default=1,
        metavar="N",
        help="gRPC channels (connections) per worker process (default: %(default)s)",
    )
    load.add_argument(
        "--deadline",
        type=_positive_float,
        default=2.0,
        metavar="S",
        help="per-request deadline in seconds (default: %(default)s)",
    )
    load.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=20_000,
        metavar="N",
        help="open loop: outstanding requests per process beyond which scheduled "
        "requests are skipped and counted (default: %(default)s)",
    )
    load.add_argument(
        "--target",
        default=os.environ.get("REELRANK_TARGET", DEFAULT_TARGET),
        metavar="HOST:PORT",
        help="server address or comma list (round robin) (default: %(default)s)",
    )
    load.add_argument("--tls", action="store_true", help="connect with TLS (system roots)")
    load.add_argument(
        "--ca-file", type=Path, metavar="PEM", help="PEM root certificates for TLS (implies --tls)"
    )
    wl = p.add_argument_group("workload")
    wl.add_argument(
        "--users-file",
        type=Path,
        metavar="F",
        help="user ids, one per line (or CSV with a user_id column), most popular "
        "first; overrides --user-prefix/--num-users",
    )
    wl.add_argument(
        "--user-prefix",
        default="u",
        metavar="P",
        help="synthetic user ids are P0, P1, ... (default: %(default)s)",
    )
    wl.add_argument(
        "--num-users",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="number of synthetic user ids (default: %(default)s)",
    )
    wl.add_argument(
        "--zipf-s",
        type=_non_negative_float,
        default=1.1,
        metavar="S",
        help="Zipf exponent of user popularity (0 = uniform) (default: %(default)s)",
    )
    wl.add_argument(
        "--cold-fraction",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="share of requests for unknown users (default: %(default)s)",
    )
    wl.add_argument(
        "--events-per-request",
        type=_non_negative_int,
        default=0,
        metavar="K",
        help="random recent events per request (needs --items-file) (default: %(default)s)",
    )
    wl.add_argument(
        "--items-file",
        type=Path,
        metavar="F",
        help="item ids for the events, one per line (or CSV with item_id)",
    )
    wl.add_argument(
        "--num-results",
        type=_non_negative_int,
        default=20,
        metavar="N",
        help="page size asked for; 0 = server default, then page fullness is not checked "
        "(default: %(default)s)",
    )
    wl.add_argument("--policy", choices=POLICY_NAMES, help="fairness policy (default: server's)")
    wl.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the request stream (default: %(default)s)",
    )
    wl.add_argument(
        "--check-every",
        type=_positive_int,
        default=10,
        metavar="K",
        help="deserialise and check every K-th answer (page fullness, duplicates, cold "
        "start, fairness report); 1 checks all (default: %(default)s)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    out.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="also write a PNG: per-second p50/p99 and rate over time, and the latency "
        "histogram (needs matplotlib)",
    )
    out.add_argument(
        "--no-progress", action="store_true", help="no progress line on stderr every second"
    )
    p.set_defaults(func=_cmd_loadtest)


# ============================================================================================
# Commands
# ============================================================================================


def _read_ca(args: argparse.Namespace) -> bytes | None:
    path: Path | None = getattr(args, "ca_file", None)
    return path.read_bytes() if path is not None else None


def _fmt_sources(sources: Sequence[int]) -> str:
    from server.api.reelrank.v1 import types_pb2

    return ",".join(
        types_pb2.CandidateSource.Name(s).removeprefix("CANDIDATE_SOURCE_").lower() for s in sources
    )


def _table(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _message_to_dict(message: Any) -> dict[str, Any]:
    from google.protobuf import json_format

    result: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return result


def _cmd_rank(args: argparse.Namespace) -> int:
    with RankingClient(
        args.target, timeout=args.timeout, tls=args.tls, root_certificates=_read_ca(args)
    ) as client:
        response = client.rank(
            args.user,
            args.num,
            recent_events=args.event,
            exclude_item_ids=args.exclude,
            fairness_policy=args.policy,
            debug=args.explain,
            num_candidates=args.candidates,
        )
    if args.json:
        print(json.dumps(_message_to_dict(response), indent=2))
        return EXIT_OK
    from server.api.reelrank.v1 import types_pb2

    header = ["#", "item", "creator", "group", "score"]
    if args.explain:
        header += ["keyword", "embedding", "popularity", "freshness", "ranking", "sources"]
    rows = [header]
    for position, item in enumerate(response.items, start=1):
        row = [str(position), item.item_id, item.creator_id, item.group, f"{item.score:.4f}"]
        if args.explain:
            s = item.stage_scores
            row += [
                f"{s.keyword:.4f}",
                f"{s.embedding:.4f}",
                f"{s.popularity:.4f}",
                f"{s.freshness:.4f}",
                f"{s.ranking:.4f}",
                _fmt_sources(item.sources),
            ]
        rows.append(row)
    right = {0, 4} | ({5, 6, 7, 8, 9} if args.explain else set())
    flags = " (cold start)" if response.cold_start else ""
    print(
        f"user {args.user}: {len(response.items)} items from snapshot "
        f"{response.snapshot_version or '-'}{flags}"
    )
    if len(rows) > 1:
        print(_table(rows, right))
    if response.HasField("fairness_report"):
        fr = response.fairness_report
        policy = types_pb2.FairnessPolicy.Name(fr.policy).removeprefix("FAIRNESS_POLICY_").lower()
        if fr.policy == types_pb2.FAIRNESS_POLICY_UNSPECIFIED:
            # UNSPECIFIED in a report means the server's default composition.
            names = [
                types_pb2.FairnessPolicy.Name(p).removeprefix("FAIRNESS_POLICY_").lower()
                for p in fr.policies
            ]
            policy = f"server default ({', '.join(names)})" if names else "server default"
        print(
            f"fairness: policy {policy}, max items/creator {fr.max_items_per_creator}, "
            f"distinct creators {fr.distinct_creators}, min exposure ratio "
            f"{fr.min_exposure_ratio:.3f}, DCG retained {fr.dcg_retained:.3f}, constraints "
            f"{'held' if fr.constraints_satisfied else 'NOT held'}"
        )
    if args.explain:
        if response.timings:
            print(
                "timings: "
                + ", ".join(f"{t.stage} {t.micros / 1000:.2f} ms" for t in response.timings)
            )
        if response.source_counts:
            print(
                "candidates: "
                + ", ".join(f"{_fmt_sources([c.source])} {c.count}" for c in response.source_counts)
            )
    return EXIT_OK


def _print_summary(summary: Any) -> None:
    if isinstance(summary, dict):
        print(json.dumps(summary, indent=2, default=str))
    elif summary is not None:
        print(summary)


def _lazy(module: str, name: str) -> Any:
    """Import ``module.name`` at call time (server-side code the client does not need)."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise _Failure(f"{module}.{name} is not available: {exc}") from exc


def _cmd_demo_data(args: argparse.Namespace) -> int:
    generate = _lazy("server.data.synthetic", "generate")
    try:
        summary = generate(args.items, args.users, args.seed, Path(args.out))
    except ValueError as exc:
        raise _Failure(str(exc)) from exc
    _print_summary(summary)
    return EXIT_OK


def _build_config(path: Path) -> Any:
    """``server.index.builder.BuildConfig`` from a JSON or TOML file of its fields."""
    config_cls = _lazy("server.index.builder", "BuildConfig")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise _UsageError(f"cannot read --config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise _UsageError(f"--config {path} must hold a table/object of BuildConfig fields")
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise _UsageError(
            f"--config {path}: unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(fields))}"
        )
    defaults = config_cls()
    values = {
        k: tuple(v) if isinstance(getattr(defaults, k), tuple) and isinstance(v, list) else v
        for k, v in data.items()
    }
    return config_cls(**values)


def _cmd_build(args: argparse.Namespace) -> int:
    build_snapshot = _lazy("server.index.builder", "build_snapshot")
    kwargs: dict[str, Any] = {}
    if args.config is not None:
        if "config" not in inspect.signature(build_snapshot).parameters:
            raise _UsageError("--config is not supported by this server.index.builder")
        kwargs["config"] = _build_config(args.config)
    try:
        result = build_snapshot(args.interactions, args.items, args.out, **kwargs)
    except ValueError as exc:
        raise _Failure(str(exc)) from exc
    info = dict(result) if isinstance(result, dict) else {"result": result}
    version = next((info[k] for k in ("snapshot_version", "version") if k in info), None)
    path = next(
        (info[k] for k in ("path", "snapshot_path", "snapshot_dir", "dir") if k in info), None
    )
    if version is not None:
        print(f"snapshot version: {version}")
    if path is not None:
        print(f"snapshot path: {path}")
    if version is None and path is None:
        _print_summary(info)
    return EXIT_OK


def _cmd_eval(args: argparse.Namespace) -> int:
    evaluate = _lazy("server.eval.runner", "evaluate")
    try:
        result = evaluate(
            args.interactions,
            args.items,
            args.out,
            kind=args.split,
            seed=args.seed,
            target=args.target,
            num_candidates=args.candidates,
            max_users=args.max_users,
            fairness_ablation=args.fairness_ablation,
        )
    except ValueError as exc:
        raise _Failure(str(exc)) from exc
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return EXIT_OK
    cols = ["ndcg@10", "recall@10", "precision@10", "map@10", "hit_rate@10", "ndcg@20"]
    cols += ["recall@20", "coverage@10", "creator_gini@10"]
    print(
        f"split {result['split']} seed {result['seed']}: {result['users']} test users, "
        f"served by {result['served_by']}"
    )
    width = max(26, *(len(n) + 2 for n in result["methods"]))
    print(f"{'method':<{width}}" + "".join(f"{c:>16}" for c in cols))
    for name, m in result["methods"].items():
        print(f"{name:<{width}}" + "".join(f"{m[c]:>16.4f}" for c in cols))
    # The price of fairness: position-discounted exposure share of each group in the top 10
    # (target: its catalogue share) beside NDCG@10 against fairness off.
    shares = result["group_catalogue_share"]
    base = result["methods"].get("reelrank", {}).get("ndcg@10")
    print(f"\n{'top-10 exposure share':<{width}}" + "".join(f"{g:>16}" for g in shares)
          + f"{'NDCG@10 change':>16}")  # fmt: skip
    print(f"{'(catalogue share)':<{width}}" + "".join(f"{v:>16.4f}" for v in shares.values()))
    for name, m in result["methods"].items():
        change = f"{m['ndcg@10'] / base - 1:>+16.1%}" if base else f"{'-':>16}"
        row = "".join(f"{m[f'exposure_share@10:{g}']:>16.4f}" for g in shares)
        print(f"{name:<{width}}{row}{change}")
    return EXIT_OK


def _admin_token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            token: str = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise _UsageError(f"cannot read --token-file: {exc}") from exc
    else:
        token = os.environ.get("REELRANK_ADMIN_TOKEN", "").strip()
    if not token:
        raise _UsageError("no admin token: set REELRANK_ADMIN_TOKEN or pass --token-file")
    return token


def _admin_client(args: argparse.Namespace) -> AdminClient:
    if (args.client_cert is None) != (args.client_key is None):
        raise _UsageError("--client-cert and --client-key go together")
    try:
        chain = args.client_cert.read_bytes() if args.client_cert else None
        key = args.client_key.read_bytes() if args.client_key else None
    except OSError as exc:
        raise _UsageError(f"cannot read the client certificate: {exc}") from exc
    return AdminClient(
        args.target,
        _admin_token(args),
        timeout=args.timeout,
        tls=args.tls,
        root_certificates=_read_ca(args),
        client_certificate_chain=chain,
        client_private_key=key,
    )


def _ts(value: Any) -> str:
    if not value.seconds and not value.nanos:
        return "-"
    return str(value.ToDatetime().isoformat(timespec="seconds")) + "Z"


def _cmd_admin_status(args: argparse.Namespace) -> int:
    with _admin_client(args) as admin:
        status = admin.status()
    if args.json:
        print(json.dumps(_message_to_dict(status), indent=2))
        return EXIT_OK
    print(f"serving:            {'yes' if status.serving else 'no'}")
    print(f"snapshot version:   {status.snapshot_version or '-'}")
    print(f"items:              {status.num_items}")
    print(f"users:              {status.num_users}")
    print(f"created:            {_ts(status.created_time)}")
    print(f"loaded:             {_ts(status.loaded_time)}")
    print(f"ANN index:          {status.ann_index or '-'}")
    print(f"ANN recall@100:     {status.ann_recall_at_100:.3f}")
    if status.HasField("ndcg_at_10"):
        print(f"offline NDCG@10:    {status.ndcg_at_10:.4f}")
    print(f"interactions:       {status.num_interactions}")
    print(f"build seconds:      {status.build_seconds:.1f}")
    print(f"load seconds:       {status.load_seconds:.2f}")
    print(f"loads / failures:   {status.loads} / {status.load_failures}")
    print(f"previous version:   {status.previous_version or '-'}")
    print(f"running rebuild:    {status.running_operation or '-'}")
    print(f"available versions: {', '.join(status.available_versions) or '-'}")
    return EXIT_OK


def _cmd_admin_snapshots(args: argparse.Namespace) -> int:
    with _admin_client(args) as admin:
        listed = admin.list_snapshots()
    if args.json:
        print(json.dumps(_message_to_dict(listed), indent=2))
        return EXIT_OK
    print(f"  {'version':<20} {'created':<20} {'items':>9} {'users':>9} {'recall':>7} "
          f"{'MiB':>8}  quality gate")  # fmt: skip
    for snap in listed.snapshots:
        gate = snap.error or "; ".join(snap.quality_gate_failures) or "pass"
        print(
            f"{'*' if snap.active else ' '} {snap.version:<20} {_ts(snap.created_time):<20} "
            f"{snap.num_items:>9} {snap.num_users:>9} {snap.ann_recall_at_100:>7.3f} "
            f"{snap.size_bytes / 2**20:>8.1f}  {gate}"
        )
    return EXIT_OK


def _cmd_admin_activate(args: argparse.Namespace) -> int:
    with _admin_client(args) as admin:
        resp = admin.activate(args.version, force=args.force)
    if args.json:
        print(json.dumps(_message_to_dict(resp), indent=2))
        return EXIT_OK
    print(
        f"serving {resp.snapshot_version} (was {resp.previous_version or 'none'}; "
        f"swapped in {resp.activation_seconds:.2f}s)"
    )
    return EXIT_OK


def _cmd_admin_cancel(args: argparse.Namespace) -> int:
    with _admin_client(args) as admin:
        admin.cancel(args.operation)
        op = admin.get_operation(args.operation)
    if args.json:
        print(json.dumps(_message_to_dict(op), indent=2))
    elif op.done:
        print(f"{op.name}: done ({op.error.message or 'finished before the cancel'})")
    else:
        print(f"{op.name}: cancel requested")
    return EXIT_OK


def _cmd_admin_rebuild(args: argparse.Namespace) -> int:
    if (args.source is None) == (args.interactions is None or args.items is None):
        raise _UsageError("give either --source NAME or both --interactions and --items")
    with _admin_client(args) as admin:
        op = admin.rebuild(
            args.interactions,
            args.items,
            skip_activation=args.no_activate,
            source=args.source,
            force=args.force,
        )
        if not args.wait:
            if args.json:
                print(json.dumps(_message_to_dict(op), indent=2))
            else:
                print(op.name)
            return EXIT_OK
        tty = sys.stderr.isatty()
        last = [""]

        def progress(meta: Any) -> None:
            stage_enum = meta.DESCRIPTOR.fields_by_name["stage"].enum_type
            stage_value = stage_enum.values_by_number.get(meta.stage)
            stage = stage_value.name if stage_value is not None else str(meta.stage)
            stage = stage.removeprefix("REBUILD_STAGE_").lower()
            if meta.step and meta.step != stage:
                stage = f"{stage}/{meta.step}"
            filled = int(max(0.0, min(100.0, meta.progress_percent)) * 30 / 100)
            bar = "#" * filled + "." * (30 - filled)
            line = f"{op.name}: [{bar}] {meta.progress_percent:5.1f}% {stage:<22}"
            if line == last[0]:
                return
            last[0] = line
            print(
                ("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True
            )

        try:
            done = admin.wait(
                op.name, poll_s=args.poll, timeout=args.wait_timeout, on_progress=progress
            )
        finally:
            if tty:
                print(file=sys.stderr)
        result = AdminClient.rebuild_response(done)
    if args.json:
        print(json.dumps(_message_to_dict(result), indent=2))
        return EXIT_OK
    print(f"snapshot version: {result.snapshot_version}")
    print(f"activated:        {'yes' if result.activated else 'no'}")
    print(f"items:            {result.num_items}")
    print(f"users:            {result.num_users}")
    print(f"interactions:     {result.num_interactions}")
    print(f"build seconds:    {result.build_seconds:.1f}")
    return EXIT_OK


def _cmd_loadtest(args: argparse.Namespace) -> int:
    from client import loadtest

    if args.compare is not None:
        try:
            a, b = (loadtest.LoadReport.load(path) for path in args.compare)
        except (OSError, ValueError, KeyError) as exc:
            raise _Failure(f"cannot read report: {exc}") from exc
        print(loadtest.compare_reports(a, b))
        return EXIT_OK
    try:
        users = loadtest.load_ids(args.users_file, "user_id") if args.users_file else None
        items = loadtest.load_ids(args.items_file, "item_id") if args.items_file else []
    except OSError as exc:
        raise _UsageError(f"cannot read ids: {exc}") from exc
    workload = loadtest.Workload(
        users=users,
        user_prefix=args.user_prefix,
        num_users=args.num_users,
        zipf_s=args.zipf_s,
        cold_fraction=args.cold_fraction,
        events_per_request=args.events_per_request,
        items=items,
        num_results=args.num_results,
        fairness_policy=args.policy,
        seed=args.seed,
    )
    cfg = loadtest.LoadConfig(
        target=args.target,
        concurrency=args.concurrency or 8,
        rate=args.rate,
        arrival=args.arrival,
        duration=args.duration,
        warmup=args.warmup,
        processes=args.processes,
        deadline=args.deadline,
        channels=args.channels,
        max_in_flight=args.max_in_flight,
        workload=workload,
        tls=args.tls,
        root_certificates=_read_ca(args),
        progress=not args.no_progress,
        check_every=args.check_every,
    )
    try:
        cfg.validate()
    except ValueError as exc:
        raise _UsageError(str(exc)) from exc
    if args.plot is not None:
        try:
            loadtest.plot_backend()  # fail before the run, not after it
        except ImportError as exc:
            raise _UsageError(str(exc)) from exc
    try:
        report = loadtest.run_load(cfg)
    except (ConnectionError, RuntimeError) as exc:
        raise _Failure(str(exc)) from exc
    print(loadtest.format_report(report))
    if args.json is not None:
        report.save(args.json)
        print(f"report written to {args.json}", file=sys.stderr)
    if args.plot is not None:
        try:
            loadtest.plot_report(report, args.plot)
        except OSError as exc:
            raise _Failure(f"cannot write plot: {exc}") from exc
        print(f"plot written to {args.plot}", file=sys.stderr)
    return EXIT_OK


class _Failure(Exception):
    """An operation failed (exit status 1)."""


# ============================================================================================
# Entry point
# ============================================================================================


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``reelrank`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when the operation failed, 2 on a usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        status: int = args.func(args)
        return status
    except SystemExit as exc:  # --help and friends
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except _UsageError as exc:
        print(f"error: {exc}" if not str(exc).startswith("reelrank") else str(exc), file=sys.stderr)
        return EXIT_USAGE
    except ReelrankError as exc:
        print(f"error: {exc.code.name}: {exc.details}", file=sys.stderr)
        return EXIT_FAILURE
    except _Failure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
