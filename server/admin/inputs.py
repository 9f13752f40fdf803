"""What a rebuild may read: paths inside the configured data roots, or a named source."""

from __future__ import annotations

from pathlib import Path

from server.config import ServerConfig
from server.errors import InvalidArgument, NotFound


def checked_path(config: ServerConfig, field: str, raw: str) -> Path:
    """`raw` resolved (symlinks followed, `..` collapsed), if it lies inside a data root.

    Raises `InvalidArgument` (reason `PATH_OUTSIDE_DATA_ROOTS`) when it does not, and
    `NotFound` when it is not an existing file.
    """
    if not raw:
        raise InvalidArgument(f"{field} is required (or name a configured source)")
    path = Path(raw).resolve()
    roots = [r.resolve() for r in config.data_roots]
    if not any(path.is_relative_to(r) for r in roots):
        raise InvalidArgument(
            f"{field} {raw!r} is outside the configured data roots {[str(r) for r in roots]}",
            reason="PATH_OUTSIDE_DATA_ROOTS",
            field=field,
        )
    if not path.is_file():
        raise NotFound(f"{field} {raw!r} does not exist or is not a file", field=field)
    return path


def resolve(config: ServerConfig, source: str, interactions: str, items: str) -> tuple[Path, Path]:
    """The (interactions, items) files of a rebuild request."""
    if source:
        if interactions or items:
            raise InvalidArgument("give either source or interactions_path + items_path, not both")
        src = config.sources.get(source)
        if src is None:
            known = ", ".join(sorted(config.sources)) or "none configured"
            raise InvalidArgument(
                f"unknown source {source!r} (known: {known})", reason="UNKNOWN_SOURCE"
            )
        for field, path in (("interactions", src.interactions), ("items", src.items)):
            if not path.is_file():
                raise NotFound(f"source {source!r}: {field} file {str(path)!r} does not exist")
        return src.interactions.resolve(), src.items.resolve()
    return (
        checked_path(config, "interactions_path", interactions),
        checked_path(config, "items_path", items),
    )
