"""Versioned snapshot directories: atomic write, checksum-verified, memory-mapped load.

Layout of `<root>/<version>/`: one `.npy` file per array (loaded with mmap so several server
processes share the page cache), a few small text files, `faiss.index`, and `manifest.json`
written last. A directory without a valid manifest is never loaded, so a build killed half-way
leaves nothing a restart would pick up. Builds happen in `<root>/.tmp-<version>` and are
renamed into place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_VERSION_RE = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


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
        self.tmp = root / f".tmp-{version}"
        self.tmp.mkdir(parents=True)

    def array(self, name: str, arr: NDArray[Any]) -> None:
        np.save(self.tmp / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)

    def text(self, name: str, content: str) -> None:
        (self.tmp / name).write_text(content, encoding="utf-8")

    def path(self, name: str) -> Path:
        return self.tmp / name

    def commit(self, manifest: dict[str, Any]) -> Path:
        files = sorted(p for p in self.tmp.iterdir() if p.is_file())
        manifest = dict(manifest)
        manifest["format_version"] = FORMAT_VERSION
        manifest["version"] = self.version
        manifest["files"] = {
            p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files
        }
        for p in files:
            with p.open("rb") as f:
                os.fsync(f.fileno())
        tmp_manifest = self.tmp / f"{MANIFEST}.tmp"
        tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        with tmp_manifest.open("rb") as f:
            os.fsync(f.fileno())
        tmp_manifest.rename(self.tmp / MANIFEST)
        _fsync_dir(self.tmp)
        final = self.root / self.version
        self.tmp.rename(final)
        _fsync_dir(self.root)
        return final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


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
        if p.is_dir() and _VERSION_RE.match(p.name) and (p / MANIFEST).is_file()
    ]
    return sorted(found, key=_version_key, reverse=True)


def _version_key(v: str) -> tuple[str, int]:
    stamp, _, n = v.partition("-")
    return stamp, int(n or 0)


def load_array(directory: Path, name: str, *, mmap: bool = True) -> NDArray[Any]:
    arr: NDArray[Any] = np.load(
        directory / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False
    )
    return arr


def clean_stale_temporaries(root: Path) -> list[str]:
    """Remove `.tmp-*` build directories left by a crashed build; returns what was removed."""
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
    return removed
