"""Server configuration: defaults, then a config file (`server/config_file.py`), then environment
variables, then flags, each overriding the one before.

`coerce_setting` is the one reader of a setting's value for its field type, shared by the
environment (`ServerConfig.from_env`, text first turned into the TOML value it stands for) and
config files (`server/config_file.py`)."""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.pipeline.types import FairnessParams, Policy

MAX_RESULTS = 1000
MAX_CANDIDATES = 10_000
MAX_EVENTS = 1000
MAX_EXCLUDED = 10_000


class ConfigError(ValueError):
    """A setting that cannot be used: the message names it (config file key or environment
    variable) and says what was expected."""


@dataclass(frozen=True)
class DataSource:
    """A named rebuild input (`sources` setting): trusted paths, exempt from the data roots."""

    interactions: Path
    items: Path


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
    def from_env(
        cls, env: Mapping[str, str] | None = None, base: ServerConfig | None = None
    ) -> ServerConfig:
        """`base` (the defaults when None; a config file's settings) overridden by `REELRANK_*`
        variables (the `ENV_VARS` table; documented in docs/OPERATIONS.md). An empty value
        resets an optional setting to None and leaves any other setting as it was. A value that
        does not fit its setting is a `ConfigError` naming the variable."""
        e = os.environ if env is None else env
        cfg = cls() if base is None else dataclasses.replace(base)
        hints = typing.get_type_hints(cls)
        for var, name in ENV_VARS.items():
            raw, hint = e.get(var), hints[name]
            if raw is None or (raw == "" and not _optional(hint)[1]):
                continue  # unset, or empty for a setting that cannot be None: the default
            setattr(cfg, name, coerce_setting(var, _from_text(var, raw, hint), hint))
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


def _optional(hint: Any) -> tuple[Any, bool]:
    """`(T, True)` for `T | None`, else `(hint, False)`."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _from_text(var: str, raw: str, hint: Any) -> Any:
    """An environment variable's text as the TOML value it stands for, for `coerce_setting`:
    "" is None, numbers and `true`/`false` parsed, a path list split on `os.pathsep` (empty
    parts dropped), `sources` decoded from JSON. Text that is not the number or bool wanted is
    passed on unchanged, so `coerce_setting` rejects it with the type it expected."""
    if not raw:
        return None
    hint = _optional(hint)[0]
    if typing.get_origin(hint) is tuple:
        return [p for p in raw.split(os.pathsep) if p]
    if typing.get_origin(hint) is dict:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"{var}: expected JSON, got {raw!r} ({exc})") from None
    try:
        if hint is bool:
            return {"true": True, "false": False}[raw]
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
    except (KeyError, ValueError):
        pass
    return raw


def coerce_setting(key: str, value: Any, hint: Any) -> Any:
    """`value` as a TOML file gives it (or an environment variable's text after `_from_text`)
    made into the type `hint` of a `ServerConfig` field; a `ConfigError` naming `key` if it does
    not fit. The one place that knows how each field type is read."""
    hint, optional = _optional(hint)
    if optional and value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a path string, got {value!r}")
        return Path(value)
    if origin is tuple and args and args[0] is Path:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of path strings, got {value!r}")
        return tuple(Path(v) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if hint is FairnessParams:
        return _fairness(key, value)
    if origin is dict and args == (str, DataSource):
        paths = ("interactions", "items")
        if not isinstance(value, dict) or not all(
            isinstance(v, dict) and all(isinstance(v.get(p), str) for p in paths)
            for v in value.values()
        ):
            shape = '{"name": {"interactions": PATH, "items": PATH}}'
            raise ConfigError(f"{key}: expected {shape}, got {value!r}")
        return {n: DataSource(Path(v["interactions"]), Path(v["items"])) for n, v in value.items()}
    raise ConfigError(f"{key}: this setting cannot be read from a file")


def _policy(key: str, value: Any) -> Policy:
    try:
        return Policy(value)
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not one of {[p.value for p in Policy]}") from None


def _fairness(key: str, value: Any) -> FairnessParams:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table")
    hints = typing.get_type_hints(FairnessParams)
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k not in hints:
            raise ConfigError(f"{key}.{k}: unknown setting; known: {sorted(hints)}")
        if k == "policy":
            out[k] = _policy(f"{key}.policy", v)
        elif typing.get_origin(hints[k]) is tuple:
            if not isinstance(v, list):
                raise ConfigError(f"{key}.{k}: expected a list")
            out[k] = tuple(_policy(f"{key}.{k}", p) for p in v) if k == "policies" else tuple(v)
        else:
            out[k] = coerce_setting(f"{key}.{k}", v, hints[k])
    try:
        params = dataclasses.replace(FairnessParams(), **out)
    except (TypeError, ValueError) as exc:
        # Only group_targets can still fail here: FairnessParams makes its (group, share) pairs.
        got = value.get("group_targets")
        raise ConfigError(
            f"{key}.group_targets: expected [[group, share], ...], got {got!r} ({exc})"
        ) from None
    # The ranges a request's options must respect: a server default outside them would fail
    # every request that uses it, so refuse it at startup. (Group names wait for a snapshot.)
    from server.errors import InvalidArgument
    from server.pipeline.fairness.params import validate

    try:
        validate(params, None)
    except InvalidArgument as exc:
        raise ConfigError(f"{key}: {exc.message}") from None
    return params
