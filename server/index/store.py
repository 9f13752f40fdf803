"""The serving snapshot, swapped atomically.

A request takes one reference to the current `LoadedSnapshot` at its start and uses only that
for its whole life, so a swap never mixes two versions inside one request and in-flight
requests finish on the snapshot they started with; the old one is freed when the last of them
drops its reference.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from server.errors import NoSnapshot, NotFound
from server.index import snapshot
from server.index.loaded import LoadedSnapshot, open_snapshot

log = logging.getLogger(__name__)


class SnapshotStore:
    """Holds the active snapshot for a snapshot root directory."""

    def __init__(
        self, root: Path, *, warmup: Callable[[LoadedSnapshot], None] | None = None
    ) -> None:
        self.root = Path(root)
        self._current: LoadedSnapshot | None = None
        self._lock = threading.Lock()
        self._warmup = warmup
        self.loads = 0
        self.load_failures = 0
        self.listeners: list[Callable[[LoadedSnapshot], None]] = []

    def current(self) -> LoadedSnapshot:
        snap = self._current
        if snap is None:
            raise NoSnapshot(str(self.root))
        return snap

    def current_or_none(self) -> LoadedSnapshot | None:
        return self._current

    def versions(self) -> list[str]:
        return snapshot.list_versions(self.root)

    def load_newest(self) -> LoadedSnapshot | None:
        """Activate the newest valid snapshot, skipping corrupt ones (they are logged)."""
        for version in self.versions():
            try:
                return self.activate(version)
            except snapshot.SnapshotError as exc:
                log.error("skipping snapshot %s: %s", version, exc)
        return None

    def activate(self, version: str) -> LoadedSnapshot:
        """Load `version`, warm it, then make it current. The old one keeps serving until then."""
        directory = self.root / version
        if not (directory / snapshot.MANIFEST).is_file():
            raise NotFound(f"snapshot {version!r} not found under {self.root}", version=version)
        t0 = time.perf_counter()
        try:
            loaded = open_snapshot(directory)
            if self._warmup is not None:
                self._warmup(loaded)
        except Exception:
            self.load_failures += 1
            raise
        with self._lock:
            self._current = loaded
            self.loads += 1
        log.info("serving snapshot %s (load + warm-up %.2fs)", version, time.perf_counter() - t0)
        for listener in self.listeners:
            listener(loaded)
        return loaded
