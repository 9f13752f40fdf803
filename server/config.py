"""Server configuration: defaults, overridden by environment variables, then by flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from server.pipeline.types import FairnessParams, Policy

MAX_RESULTS = 1000
MAX_CANDIDATES = 10_000
MAX_EVENTS = 1000
MAX_EXCLUDED = 10_000


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    snapshot_dir: Path = Path("var/snapshots")
    max_workers: int = 8
    default_num_results: int = 20
    default_num_candidates: int = 500
    fairness: FairnessParams = field(
        default_factory=lambda: FairnessParams(
            policy=Policy.CREATOR_CAP,
            max_per_creator=2,
            creator_window=0,
            protected_groups=(),
            min_protected_share=0.2,
        )
    )
    admin_token: str | None = None
    data_roots: tuple[Path, ...] = ()
    grace_seconds: float = 10.0
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
        return cfg
