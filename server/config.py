"""Server configuration: defaults, overridden by environment variables, then by flags."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

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
    max_workers: int = 8
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
    def from_env(cls, env: dict[str, str] | None = None) -> ServerConfig:
        """Defaults overridden by `REELRANK_*` variables (documented in docs/OPERATIONS.md)."""
        e = os.environ if env is None else env
        cfg = cls()
        if "REELRANK_HOST" in e:
            cfg.host = e["REELRANK_HOST"]
        if "REELRANK_PORT" in e:
            cfg.port = int(e["REELRANK_PORT"])
        if "REELRANK_SNAPSHOTS" in e:
            cfg.snapshot_dir = Path(e["REELRANK_SNAPSHOTS"])
        if "REELRANK_WORKERS" in e:
            cfg.max_workers = int(e["REELRANK_WORKERS"])
        token = e.get("REELRANK_ADMIN_TOKEN")
        cfg.admin_token = token or None
        if e.get("REELRANK_DATA_ROOTS"):
            cfg.data_roots = tuple(Path(p) for p in e["REELRANK_DATA_ROOTS"].split(os.pathsep) if p)
        cfg.ranking_token = e.get("REELRANK_RANKING_TOKEN") or None
        if e.get("REELRANK_SOURCES"):
            cfg.sources = parse_sources(e["REELRANK_SOURCES"])
        for key, attr in (
            ("REELRANK_TLS_CERT", "tls_cert"),
            ("REELRANK_TLS_KEY", "tls_key"),
            ("REELRANK_TLS_CLIENT_CA", "tls_client_ca"),
        ):
            if e.get(key):
                setattr(cfg, attr, Path(e[key]))
        if e.get("REELRANK_KEEP_SNAPSHOTS"):
            cfg.keep_snapshots = int(e["REELRANK_KEEP_SNAPSHOTS"])
        if "REELRANK_MIN_ANN_RECALL" in e:
            raw = e["REELRANK_MIN_ANN_RECALL"]
            cfg.min_ann_recall = float(raw) if raw else None
        if e.get("REELRANK_MIN_NDCG_AT_10"):
            cfg.min_ndcg_at_10 = float(e["REELRANK_MIN_NDCG_AT_10"])
        return cfg
