"""Server configuration: defaults, overridden by environment variables, then by flags."""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.pipeline.types import FairnessParams

MAX_RESULTS = 1000
MAX_CANDIDATES = 10_000
MAX_EVENTS = 1000
MAX_EXCLUDED = 10_000


@dataclass(frozen=True)
class DataSource:
    """A named rebuild input (`sources` setting): trusted paths, exempt from the data roots."""

    interactions: Path
    items: Path


def parse_sources(raw: str) -> dict[str, DataSource]:
    """`{"name": {"interactions": PATH, "items": PATH}}` JSON into `DataSource`s."""
    try:
        data = json.loads(raw)
        return {
            str(name): DataSource(Path(v["interactions"]), Path(v["items"]))
            for name, v in data.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f'sources must be JSON {{"name": {{"interactions": PATH, "items": PATH}}}}: {exc}'
        ) from exc


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    snapshot_dir: Path = Path("var/snapshots")
    # Threads of the grpc.aio server's pool: the sync admin plane runs there, and the ranking
    # RPCs too when pipeline_concurrency > 1.
    max_workers: int = 8
    # Ranking RPCs handled at once per process. 1: inline on the event loop, one at a time;
    # N > 1: in the thread pool, N at a time, the rest waiting for a slot (see server/app.py).
    pipeline_concurrency: int = 1
    default_num_results: int = 20
    default_num_candidates: int = 500
    fairness: FairnessParams = field(
        # The default composition (Policy.DEFAULT; docs/FAIRNESS.md).
        default_factory=FairnessParams
    )
    # Secrets are kept out of repr() so a logged config never shows them.
    admin_token: str | None = field(default=None, repr=False)
    ranking_token: str | None = field(default=None, repr=False)
    data_roots: tuple[Path, ...] = ()
    sources: dict[str, DataSource] = field(default_factory=dict)
    # TLS: certificate chain + key (PEM) to serve TLS; a client CA as well for mutual TLS.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # Snapshots kept after a rebuild (the serving and previous one are always kept too).
    keep_snapshots: int = 5
    # Quality gate: activation refused below these floors unless forced (None = no floor).
    min_ann_recall: float | None = 0.9
    min_ndcg_at_10: float | None = None
    # Niceness of the rebuild child process, so serving threads win the CPU.
    rebuild_nice: int = 19
    grace_seconds: float = 10.0
    # Prometheus /metrics port (0 = off); worker i of a multi-process server uses port + i.
    metrics_port: int = 0
    # Serving processes sharing the port through SO_REUSEPORT (1 = this process only).
    processes: int = 1
    reuse_port: bool = False
    log_format: str = "text"
    verify_checksums: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerConfig:
        """Defaults overridden by `REELRANK_*` variables (the `ENV_VARS` table; documented in
        docs/OPERATIONS.md). An empty value resets an optional setting to None and leaves any
        other setting at its default."""
        e = os.environ if env is None else env
        cfg = cls()
        hints = typing.get_type_hints(cls)
        for var, name in ENV_VARS.items():
            if var in e:
                try:
                    _set_from_text(cfg, name, hints[name], e[var])
                except ValueError as exc:
                    raise ValueError(f"{var}={e[var]!r}: {exc}") from exc
        return cfg


# Environment variable -> ServerConfig field. Values are parsed by the field's type: paths,
# numbers, `os.pathsep`-separated path lists, and JSON for `sources`.
ENV_VARS = {
    "REELRANK_HOST": "host",
    "REELRANK_PORT": "port",
    "REELRANK_SNAPSHOTS": "snapshot_dir",
    "REELRANK_WORKERS": "max_workers",
    "REELRANK_PIPELINE_CONCURRENCY": "pipeline_concurrency",
    "REELRANK_ADMIN_TOKEN": "admin_token",
    "REELRANK_RANKING_TOKEN": "ranking_token",
    "REELRANK_DATA_ROOTS": "data_roots",
    "REELRANK_SOURCES": "sources",
    "REELRANK_TLS_CERT": "tls_cert",
    "REELRANK_TLS_KEY": "tls_key",
    "REELRANK_TLS_CLIENT_CA": "tls_client_ca",
    "REELRANK_KEEP_SNAPSHOTS": "keep_snapshots",
    "REELRANK_MIN_ANN_RECALL": "min_ann_recall",
    "REELRANK_MIN_NDCG_AT_10": "min_ndcg_at_10",
}


def _set_from_text(cfg: ServerConfig, name: str, hint: Any, raw: str) -> None:
    optional = type(None) in typing.get_args(hint)
    if not raw:
        if optional:
            setattr(cfg, name, None)
        return
    if optional:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    value: Any
    if hint is Path:
        value = Path(raw)
    elif typing.get_origin(hint) is tuple:
        value = tuple(Path(p) for p in raw.split(os.pathsep) if p)
    elif typing.get_origin(hint) is dict:
        value = parse_sources(raw)
    else:
        value = hint(raw)
    setattr(cfg, name, value)
