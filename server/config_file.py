"""Server configuration from a TOML file, with environment and flags on top.

Precedence, lowest first: built-in defaults, the file, `REELRANK_*` environment variables,
command-line flags. Keys in the file are `ServerConfig` field names; an unknown key or a value of
the wrong type is an error naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path

from server.config import ConfigError, ServerConfig, coerce_setting

__all__ = ["ConfigError", "from_file", "load"]


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
            setattr(cfg, key, coerce_setting(key, value, hints[key]))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return cfg


def load(path: Path | None, env: dict[str, str] | None = None) -> ServerConfig:
    """Defaults, then the file (if any), then the environment."""
    # Every variable that is set wins over the file, even one equal to the default.
    return ServerConfig.from_env(env, base=None if path is None else from_file(path))
