"""A snapshot opened for serving: big arrays memory-mapped, small look-up tables in memory."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from server import _core
from server.index import ann, snapshot

log = logging.getLogger(__name__)


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


@dataclass
class LoadedSnapshot:
    """Everything the pipeline reads. Immutable once loaded; swapped as a whole."""

    version: str
    path: Path
    manifest: dict[str, Any]
    loaded_at: float
    item_ids: list[str]
    item_index: dict[str, int]
    user_ids: list[str]
    user_index: dict[str, int]
    creator_ids: list[str]
    item_creator: NDArray[np.int32]
    item_group: NDArray[np.int8]
    groups: list[str]
    group_target_share: NDArray[np.float64]
    protected_groups: list[str]
    item_popularity: NDArray[np.float32]
    item_freshness: NDArray[np.float32]
    keywords: _core.KeywordMatrix
    vocabulary: list[str] | None
    item_emb: NDArray[np.float32]
    user_emb: NDArray[np.float32]
    singular_values: NDArray[np.float32]
    emb_scale: float
    uprof_indptr: NDArray[np.int64]
    uprof_terms: NDArray[np.int32]
    uprof_weights: NDArray[np.float32]
    useen_indptr: NDArray[np.int64]
    useen_items: NDArray[np.int32]
    pools: dict[str, NDArray[np.int32]]
    ann_index: faiss.Index
    blend_weights: dict[str, float]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def user_profile(self, u: int) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        a, b = int(self.uprof_indptr[u]), int(self.uprof_indptr[u + 1])
        return np.asarray(self.uprof_terms[a:b]), np.asarray(self.uprof_weights[a:b])

    def user_seen(self, u: int) -> NDArray[np.int32]:
        a, b = int(self.useen_indptr[u]), int(self.useen_indptr[u + 1])
        return np.asarray(self.useen_items[a:b])

    def term(self, t: int) -> str:
        if self.vocabulary is None:
            self.vocabulary = _read_lines(self.path / "vocabulary.txt")
        return self.vocabulary[t]


def open_snapshot(directory: Path, *, verify_checksums: bool = True) -> LoadedSnapshot:
    """Open a complete snapshot directory; raises `snapshot.SnapshotError` if it is not valid."""
    t0 = time.perf_counter()
    manifest = snapshot.read_manifest(directory)
    if manifest.get("version") != directory.name:
        raise snapshot.SnapshotError(
            f"{directory}: manifest says version {manifest.get('version')!r}, "
            "but the directory name differs"
        )
    snapshot.verify_files(directory, manifest, checksums=verify_checksums)

    def arr(name: str) -> NDArray[Any]:
        return snapshot.load_array(directory, name)

    try:
        item_ids = _read_lines(directory / "item_ids.txt")
        user_ids = _read_lines(directory / "user_ids.txt")
        groups = list(manifest["groups"])
        share = manifest["group_catalogue_share"]
        item_emb = arr("item_emb")
        loaded = LoadedSnapshot(
            version=str(manifest["version"]),
            path=directory,
            manifest=manifest,
            loaded_at=time.time(),
            item_ids=item_ids,
            item_index={s: i for i, s in enumerate(item_ids)},
            user_ids=user_ids,
            user_index={s: i for i, s in enumerate(user_ids)},
            creator_ids=_read_lines(directory / "creator_ids.txt"),
            item_creator=arr("item_creator"),
            item_group=arr("item_group"),
            groups=groups,
            group_target_share=np.array([share[g] for g in groups], dtype=np.float64),
            protected_groups=list(manifest.get("protected_groups", [])),
            item_popularity=arr("item_popularity"),
            item_freshness=arr("item_freshness"),
            keywords=_core.KeywordMatrix.open(str(directory)),
            vocabulary=None,
            item_emb=item_emb,
            user_emb=arr("user_emb"),
            singular_values=np.asarray(arr("singular_values")),
            emb_scale=float(manifest["ann"].get("max_item_norm", 1.0)) or 1.0,
            uprof_indptr=arr("uprof_indptr"),
            uprof_terms=arr("uprof_terms"),
            uprof_weights=arr("uprof_weights"),
            useen_indptr=arr("useen_indptr"),
            useen_items=arr("useen_items"),
            pools={
                name: np.asarray(arr(f"pool_{name}")) for name in ("popular", "fresh", "cold_start")
            },
            ann_index=ann.load(directory / "faiss.index", int(manifest["ann"]["nprobe"])),
            blend_weights={k: float(v) for k, v in manifest["blend_weights"].items()},
        )
    except (KeyError, OSError, ValueError) as exc:
        raise snapshot.SnapshotError(f"{directory}: cannot open snapshot: {exc}") from exc
    n = len(item_ids)
    for name, a in (
        ("item_creator", loaded.item_creator),
        ("item_emb", loaded.item_emb),
        ("item_group", loaded.item_group),
    ):
        if a.shape[0] != n:
            raise snapshot.SnapshotError(f"{directory}: {name} has {a.shape[0]} rows for {n} items")
    if loaded.keywords.n_items != n or loaded.user_emb.shape[0] != len(user_ids):
        raise snapshot.SnapshotError(
            f"{directory}: keyword or user arrays do not match the id lists"
        )
    log.info(
        "opened snapshot %s (%d items, %d users) in %.2fs",
        loaded.version,
        n,
        len(user_ids),
        time.perf_counter() - t0,
    )
    return loaded
