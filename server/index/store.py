"""The serving snapshot, swapped atomically.

A request takes one reference to the current `LoadedSnapshot` at its start and uses only that
for its whole life, so a swap never mixes two versions inside one request and in-flight
requests finish on the snapshot they started with; the old one is freed when the last of them
drops its reference.

Activations are serialised (one load at a time) but never block requests: the new snapshot is
opened, checksum-verified and warmed while the old one keeps serving, and the swap itself is a
single reference assignment.
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
        self._activate_lock = threading.Lock()
        self._warmup = warmup
        self.loads = 0
        self.load_failures = 0
        self.started_at = time.time()
        self.previous_version: str | None = None
        self.last_load_seconds = 0.0
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

    def load_startup(self) -> LoadedSnapshot | None:
        """What a starting server serves: clean crashed builds, then the pinned or newest version.

        Stale `.tmp-*` build directories (dead writer, or older than this store) are removed
        first. If an operator pinned a version (`ACTIVE`, written by admin activations) and it
        loads, it serves; otherwise the newest valid snapshot does.
        """
        removed = snapshot.clean_stale_temporaries(self.root, older_than=self.started_at)
        if removed:
            log.warning("removed %d stale build directories: %s", len(removed), removed)
        pinned = snapshot.read_active(self.root)
        if pinned is not None:
            try:
                loaded = self.activate(pinned)
            except (snapshot.SnapshotError, NotFound) as exc:
                log.error(
                    "pinned snapshot %s cannot be served (%s); trying the newest", pinned, exc
                )
            else:
                newest = self.versions()[:1]
                if newest and newest[0] != pinned:
                    log.warning(
                        "serving pinned snapshot %s; newer %s exists (activate it with "
                        "`reelrank admin activate %s`)",
                        pinned,
                        newest[0],
                        newest[0],
                    )
                return loaded
        return self.load_newest()

    def follow_active(self, interval: float = 1.0) -> threading.Event:
        """Serve whatever `ACTIVE` names, checking every `interval` seconds; returns a stop event.

        Several serving processes share one snapshot root (`--processes`): an admin call
        reaches one of them, which activates and pins the version; the others follow the pin
        here within `interval`. A version that fails to load is logged once, not retried.
        """
        stop = threading.Event()

        def loop() -> None:
            tried: str | None = None
            while not stop.wait(interval):
                pinned = snapshot.read_active(self.root)
                current = self._current
                if pinned is None or pinned == tried or (current and current.version == pinned):
                    continue
                tried = pinned
                try:
                    self.activate(pinned)
                except Exception as exc:
                    log.error("cannot follow pinned snapshot %s: %s", pinned, exc)

        threading.Thread(target=loop, daemon=True, name="follow-active").start()
        return stop

    def pin(self, version: str) -> None:
        """Record `version` in `ACTIVE` so a restart serves it (not necessarily the newest)."""
        snapshot.write_active(self.root, version)

    def load_newest(self) -> LoadedSnapshot | None:
        """Activate the newest valid snapshot, skipping corrupt ones (they are logged)."""
        for version in self.versions():
            try:
                return self.activate(version)
            except snapshot.SnapshotError as exc:
                log.error("skipping snapshot %s: %s", version, exc)
        return None

    def activate(self, version: str, *, persist: bool = False) -> LoadedSnapshot:
        """Load `version`, warm it, then make it current. The old one keeps serving until then.

        With `persist` the choice is also written to `ACTIVE`, so a restart serves it too.
        Raises `NotFound` for an unknown version and `snapshot.SnapshotError` for a corrupt
        one (the serving snapshot is unchanged either way).
        """
        if not snapshot.VERSION_RE.match(version):
            raise NotFound(f"snapshot {version!r} not found under {self.root}", version=version)
        directory = self.root / version
        if not (directory / snapshot.MANIFEST).is_file():
            raise NotFound(f"snapshot {version!r} not found under {self.root}", version=version)
        with self._activate_lock:
            t0 = time.perf_counter()
            try:
                loaded = open_snapshot(directory)
                if self._warmup is not None:
                    self._warmup(loaded)
            except Exception:
                self.load_failures += 1
                raise
            if persist:
                self.pin(version)
            with self._lock:
                old = self._current
                self._current = loaded
                self.loads += 1
                if old is not None and old.version != version:
                    self.previous_version = old.version
                self.last_load_seconds = time.perf_counter() - t0
        log.info("serving snapshot %s (load + warm-up %.2fs)", version, self.last_load_seconds)
        for listener in self.listeners:
            listener(loaded)
        return loaded
