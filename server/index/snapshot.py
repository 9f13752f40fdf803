"""Versioned snapshot directories: atomic write, checksum-verified, memory-mapped load.

Layout of `<root>/<version>/`: one `.npy` file per array (loaded with mmap so several server
processes share the page cache), a few small text files, `faiss.index`, and `manifest.json`
written last. A directory without a valid manifest is never loaded, so a build killed half-way
leaves nothing a restart would pick up. Builds happen in `<root>/.tmp-<version>` and are
renamed into place; the writer holds an exclusive `flock` on `.tmp-<version>/.lock` for its whole
life, so a cleanup can tell a crashed build (lock free) from a running one (lock held), even
when the running one is a `reelrank build` in another process.

`<root>/ACTIVE` (optional) names the version an operator last activated through the admin
plane; a restarting server prefers it over the newest version, so a rollback survives a restart.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MANIFEST = "manifest.json"
ACTIVE = "ACTIVE"
LOCK = ".lock"
TMP_PREFIX = ".tmp-"
FORMAT_VERSION = 1
VERSION_RE = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


class SnapshotError(ValueError):
    """A snapshot directory is missing, incomplete or corrupt."""


def new_version(root: Path, now: dt.datetime | None = None) -> str:
    """A sortable, unique version name such as `20261128T041500Z` (suffixed on collision)."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    version, n = stamp, 1
    while (root / version).exists() or (root / f".tmp-{version}").exists():
        version = f"{stamp}-{n}"
        n += 1
    return version


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class SnapshotWriter:
    """Collects a snapshot's files in a temporary directory; `commit` publishes it atomically."""

    def __init__(self, root: Path, version: str) -> None:
        self.root = root
        self.version = version
        self.tmp = root / f"{TMP_PREFIX}{version}"
        self.tmp.mkdir(parents=True)
        # Held until commit or abort; released by the kernel if this process dies.
        self._lock_fd: int | None = os.open(self.tmp / LOCK, os.O_WRONLY | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self._lock_fd, f"{os.getpid()}\n".encode())

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def array(self, name: str, arr: NDArray[Any]) -> None:
        """Write `name`.npy; a name like `knn/kw_data` lands in a subdirectory."""
        path = self.tmp / f"{name}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.ascontiguousarray(arr), allow_pickle=False)

    def text(self, name: str, content: str) -> None:
        (self.tmp / name).write_text(content, encoding="utf-8")

    def path(self, name: str) -> Path:
        return self.tmp / name

    def commit(self, manifest: dict[str, Any]) -> Path:
        files = sorted(p for p in self.tmp.rglob("*") if p.is_file() and p.name != LOCK)
        manifest = dict(manifest)
        manifest["format_version"] = FORMAT_VERSION
        manifest["version"] = self.version
        manifest["files"] = {
            p.relative_to(self.tmp).as_posix(): {
                "sha256": sha256_file(p),
                "bytes": p.stat().st_size,
            }
            for p in files
        }
        for p in files:
            with p.open("rb") as f:
                os.fsync(f.fileno())
        tmp_manifest = self.tmp / f"{MANIFEST}.tmp"
        tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        with tmp_manifest.open("rb") as f:
            os.fsync(f.fileno())
        tmp_manifest.rename(self.tmp / MANIFEST)
        for sub_dir in {p.parent for p in files if p.parent != self.tmp}:
            _fsync_dir(sub_dir)
        # Unlinking the lock file touches the directory's mtime, so a concurrent cleanup that
        # finds no lock file also finds a directory too fresh to be stale.
        (self.tmp / LOCK).unlink()
        _fsync_dir(self.tmp)
        final = self.root / self.version
        self.tmp.rename(final)
        _fsync_dir(self.root)
        self._release()
        return final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._release()


@contextmanager
def writing(root: Path, version: str) -> Iterator[SnapshotWriter]:
    """Context manager: the temporary directory is removed if the body raises."""
    root.mkdir(parents=True, exist_ok=True)
    writer = SnapshotWriter(root, version)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SnapshotError(f"{directory}: no {MANIFEST} (incomplete snapshot)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{path}: unreadable manifest: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise SnapshotError(
            f"{path}: format_version {manifest.get('format_version')!r}, "
            f"this server reads {FORMAT_VERSION}"
        )
    return manifest


def verify_files(directory: Path, manifest: dict[str, Any], *, checksums: bool = True) -> None:
    """Check every file the manifest lists exists with the recorded size (and checksum)."""
    for name, meta in manifest["files"].items():
        p = directory / name
        if not p.is_file():
            raise SnapshotError(f"{p}: listed in the manifest but missing")
        if p.stat().st_size != meta["bytes"]:
            raise SnapshotError(f"{p}: {p.stat().st_size} bytes, manifest says {meta['bytes']}")
        if checksums and sha256_file(p) != meta["sha256"]:
            raise SnapshotError(f"{p}: checksum mismatch (file corrupt or modified)")


def list_versions(root: Path) -> list[str]:
    """Complete snapshot versions under `root`, newest first (temporary dirs are ignored)."""
    if not root.is_dir():
        return []
    found = [
        p.name
        for p in root.iterdir()
        if p.is_dir() and VERSION_RE.match(p.name) and (p / MANIFEST).is_file()
    ]
    return sorted(found, key=_version_key, reverse=True)


def _version_key(v: str) -> tuple[str, int]:
    stamp, _, n = v.partition("-")
    return stamp, int(n or 0)


def load_array(directory: Path, name: str, *, mmap: bool = True) -> NDArray[Any]:
    loaded = np.load(directory / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
    # A plain ndarray view of the mapping (kept alive through `.base`): np.memmap's Python
    # __getitem__/__array_finalize__ cost ~4 us per slice, ~70 times per request.
    arr: NDArray[Any] = np.asarray(loaded)
    return arr


def _lock_is_free(lock: Path) -> bool:
    """True when nobody holds the build lock `lock` (its writer finished or died)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def try_lock(path: Path) -> int | None:
    """Take an exclusive `flock` on `path` without waiting: the open fd, or None if held.

    The lock lasts until the fd is closed or the process dies. The holder's pid is written
    into the file for operators.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def clean_stale_temporaries(root: Path, *, older_than: float | None = None) -> list[str]:
    """Remove `.tmp-*` directories left by crashed builds; returns the names removed.

    A directory with a `.lock` file is removed only when no process holds the lock (its
    writer is dead; the kernel drops `flock` locks with their process). A directory without
    one (a writer between `mkdir` and taking the lock, a snapshot being renamed into place, or
    a leftover of an older release) is removed only when it was last modified before
    `older_than` (seconds since the epoch; default: never), typically the server's start time.
    """
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        if not (p.is_dir() and p.name.startswith(TMP_PREFIX)):
            continue
        lock = p / LOCK
        if lock.exists():
            stale = _lock_is_free(lock)
        else:
            try:
                stale = older_than is not None and p.stat().st_mtime < older_than
            except FileNotFoundError:
                continue
        if stale:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


def read_active(root: Path) -> str | None:
    """The version pinned in `<root>/ACTIVE`, or None when there is no (readable) pin."""
    try:
        version = (root / ACTIVE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return version if VERSION_RE.match(version) else None


def write_active(root: Path, version: str) -> None:
    """Atomically record `version` as the operator's choice (tmp file, fsync, rename)."""
    tmp = root / f".{ACTIVE}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        f.write(version + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(root / ACTIVE)
    _fsync_dir(root)


def directory_bytes(directory: Path) -> int:
    """Total size of the regular files directly inside `directory`."""
    with contextlib.suppress(OSError):
        return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    return 0


def prune(root: Path, keep: int, protect: set[str]) -> list[str]:
    """Delete all but the newest `keep` complete snapshots, never one named in `protect`.

    A snapshot is first renamed to `.tmp-deleting-<version>` (atomic: it stops being listed or
    loadable at once) and then removed; a crash in between leaves a lock-less `.tmp-*`
    directory that the next startup cleans. Returns the versions deleted, oldest last.
    """
    if keep < 1:
        raise ValueError("keep must be >= 1")
    doomed = [v for v in list_versions(root)[keep:] if v not in protect]
    for version in doomed:
        trash = root / f"{TMP_PREFIX}deleting-{version}-{int(time.time() * 1e3)}"
        (root / version).rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    if doomed:
        _fsync_dir(root)
    return doomed
