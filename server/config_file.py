"""Server configuration from a TOML file, with environment and flags on top.

Precedence, lowest first: built-in defaults, the file, `REELRANK_*` environment variables,
command-line flags. Keys in the file are `ServerConfig` field names; an unknown key or a value of
the wrong type is an error naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from server.config import DataSource, ServerConfig
from server.pipeline.types import FairnessParams, Policy


class ConfigError(ValueError):
    """A configuration file problem, naming the file and the key."""


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        inner = next(a for a in args if a is not type(None))
        return _coerce(key, value, inner)
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
        try:
            return {
                n: DataSource(Path(v["interactions"]), Path(v["items"])) for n, v in value.items()
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{key}: expected tables with interactions and items paths ({exc})"
            ) from exc
    raise ConfigError(f"{key}: this setting cannot be read from a file")


def _fairness(key: str, value: Any) -> FairnessParams:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table")
    base = FairnessParams()
    hints = typing.get_type_hints(FairnessParams)
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k not in hints:
            raise ConfigError(f"{key}.{k}: unknown setting; known: {sorted(hints)}")
        if k == "policy":
            try:
                out[k] = Policy(v)
            except ValueError:
                raise ConfigError(
                    f"{key}.policy: {v!r} is not one of {[p.value for p in Policy]}"
                ) from None
        elif typing.get_origin(hints[k]) is tuple:
            if not isinstance(v, list):
                raise ConfigError(f"{key}.{k}: expected a list")
            out[k] = tuple(v)
        else:
            out[k] = _coerce(f"{key}.{k}", v, hints[k])
    return dataclasses.replace(base, **out)


def from_file(path: Path) -> ServerConfig:
    """Defaults overridden by the TOML file at `path`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    hints = typing.get_type_hints(ServerConfig)
    cfg = ServerConfig()
    for key, value in data.items():
        if key not in hints:
            raise ConfigError(f"{path}: unknown setting {key!r}; known: {sorted(hints)}")
        try:
            setattr(cfg, key, _coerce(key, value, hints[key]))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return cfg


def load(path: Path | None, env: dict[str, str] | None = None) -> ServerConfig:
    """Defaults, then the file (if any), then the environment."""
    if path is None:
        return ServerConfig.from_env(env)
    cfg = from_file(path)
    with_env = ServerConfig.from_env(env)
    defaults = ServerConfig()
    for f in dataclasses.fields(ServerConfig):
        if getattr(with_env, f.name) != getattr(defaults, f.name):
            setattr(cfg, f.name, getattr(with_env, f.name))
    return cfg
