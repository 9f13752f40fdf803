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
from server.index.ids import IdIndex, IdTable
from server.index.user_candidates import UserCandidates

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
    item_ids: IdTable
    item_index: IdIndex
    user_ids: IdTable
    user_index: IdIndex
    creator_ids: IdTable
    item_creator: NDArray[np.int32]
    item_group: NDArray[np.int8]
    groups: list[str]
    group_target_share: NDArray[np.float64]
    protected_groups: list[str]
    item_popularity: NDArray[np.float32]
    item_freshness: NDArray[np.float32]
    keywords: _core.KeywordMatrix
    # The same CSR rows, memory-mapped, for explanations (which terms matched).
    kw_indptr: NDArray[np.int64]
    kw_indices: NDArray[np.int32]
    kw_data: NDArray[np.float32]
    vocabulary: list[str] | None
    item_emb: NDArray[np.float32]
    user_emb: NDArray[np.float32]
    singular_values: NDArray[np.float32]
    emb_scale: float
    # Fold-in rows for recent events (user vector = Σ w·item_query[i]) and the ItemKNN
    # neighbours (rows = target items, terms = source items); both from server/index/collab.py.
    item_query: NDArray[np.float32]
    item_knn: _core.KeywordMatrix | None
    uprof_indptr: NDArray[np.int64]
    uprof_terms: NDArray[np.int32]
    uprof_weights: NDArray[np.float32]
    useen_indptr: NDArray[np.int64]
    useen_items: NDArray[np.int32]
    pools: dict[str, NDArray[np.int32]]
    ann_index: ann.AnnIndex
    # Precomputed ANN and keyword lists per stored user (absent in older snapshots).
    user_candidates: UserCandidates
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


def _item_query(directory: Path, manifest: dict[str, Any], item_emb: NDArray[Any]) -> NDArray[Any]:
    if "item_query.npy" in manifest["files"]:
        return snapshot.load_array(directory, "item_query")
    # Snapshots from before collab.py: SVD fold-in rows are item vectors / singular values.
    sv = np.asarray(snapshot.load_array(directory, "singular_values"))
    out: NDArray[Any] = (np.asarray(item_emb) / np.maximum(sv, 1e-6)).astype(np.float32)
    return out


def _open_keywords(directory: Path) -> _core.KeywordMatrix:
    """`KeywordMatrix.open`, warning when the snapshot lacks the precomputed scoring arrays."""
    m = _core.KeywordMatrix.open(str(directory))
    if not m.derived_mapped:
        log.warning(
            "%s has no precomputed keyword scoring arrays (kw_tile*/kw_packed* files, written by "
            "builds since they were added): built them in memory, a private copy in this "
            "process; rebuild the snapshot to share one mapped copy between processes",
            directory,
        )
    return m


def _item_knn(
    directory: Path, manifest: dict[str, Any], n_items: int
) -> _core.KeywordMatrix | None:
    if "knn/kw_indptr.npy" in manifest["files"]:
        return _open_keywords(directory / "knn")
    if "knn_indptr.npy" not in manifest["files"]:
        return None
    # Snapshots written before the knn/ directory: copied into memory.
    return _core.KeywordMatrix.from_csr(
        snapshot.load_array(directory, "knn_indptr"),
        snapshot.load_array(directory, "knn_indices"),
        snapshot.load_array(directory, "knn_data"),
        n_items,
    )


def _user_candidates(directory: Path, manifest: dict[str, Any]) -> UserCandidates:
    lists = {}
    for source in ("ann", "keyword"):
        if f"ucand/{source}_indptr.npy" in manifest["files"]:
            lists[source] = (
                snapshot.load_array(directory, f"ucand/{source}_indptr"),
                snapshot.load_array(directory, f"ucand/{source}_items"),
                snapshot.load_array(directory, f"ucand/{source}_scores"),
            )
    k = {s: int(manifest["user_candidates"][s]["k"]) for s in lists}
    return UserCandidates(lists, k)


def _check_seen(
    directory: Path,
    indptr: NDArray[Any],
    items: NDArray[Any],
    user_ids: IdTable,
    n_items: int,
) -> None:
    """Refuse seen lists other than the build writes: per user, item rows strictly increasing
    (sorted, distinct) and in `[0, n_items)`. Requests use each row as is (`user_state`), so a
    snapshot is checked once here instead of on every request. Vectorised: ~3 ms at 100k
    users and 3.5M seen pairs (~8 ms when it is the first read of the mapped files)."""

    def bad(name: str, problem: str) -> snapshot.SnapshotError:
        return snapshot.SnapshotError(
            f"{directory / name}: {problem}; the file is corrupt or not from this project's "
            "build: rebuild the snapshot (`reelrank build` or the admin RebuildIndex RPC)"
        )

    n_users = len(user_ids)
    if indptr.ndim != 1 or indptr.dtype.kind not in "iu" or indptr.shape[0] != n_users + 1:
        raise bad(
            "useen_indptr.npy",
            f"{indptr.dtype} array of shape {indptr.shape}, expected {n_users + 1} integer "
            "offsets (one per user in user_ids.txt, plus one)",
        )
    if items.ndim != 1 or items.dtype.kind not in "iu":
        raise bad(
            "useen_items.npy", f"{items.dtype} array of shape {items.shape}, expected 1-D ids"
        )
    n = items.shape[0]
    if int(indptr[0]) != 0 or int(indptr[-1]) != n or bool(np.any(indptr[1:] < indptr[:-1])):
        raise bad(
            "useen_indptr.npy",
            f"offsets must not decrease, from 0 to {n} (the length of useen_items.npy)",
        )
    if n and (int(items.min()) < 0 or int(items.max()) >= n_items):
        raise bad("useen_items.npy", f"item ids outside [0, {n_items})")
    rising = items[1:] > items[:-1]
    # Pairs that straddle two users' rows are not compared.
    starts = indptr[1:-1]
    rising[starts[(starts > 0) & (starts < n)] - 1] = True
    if not bool(rising.all()):
        u = int(np.searchsorted(indptr, int(np.argmin(rising)), side="right")) - 1
        raise bad(
            "useen_items.npy",
            f"the row of user {user_ids[u]!r} (row {u}) is not strictly increasing "
            "(unsorted or repeated item ids)",
        )


def open_snapshot(directory: Path, *, verify_checksums: bool = True) -> LoadedSnapshot:
    """Open a complete snapshot directory; raises `snapshot.SnapshotError` if it is not valid."""
    t0 = time.perf_counter()
    # Requests already run on a thread pool (or several processes); FAISS' OpenMP threads
    # would oversubscribe the cores and spin, multiplying search latency under load.
    faiss.omp_set_num_threads(1)
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
        item_ids = IdTable.from_lines(directory / "item_ids.txt")
        user_ids = IdTable.from_lines(directory / "user_ids.txt")
        groups = list(manifest["groups"])
        share = manifest["group_catalogue_share"]
        item_emb = arr("item_emb")
        loaded = LoadedSnapshot(
            version=str(manifest["version"]),
            path=directory,
            manifest=manifest,
            loaded_at=time.time(),
            item_ids=item_ids,
            item_index=item_ids.rows,
            user_ids=user_ids,
            user_index=user_ids.rows,
            creator_ids=IdTable.from_lines(directory / "creator_ids.txt"),
            item_creator=arr("item_creator"),
            item_group=arr("item_group"),
            groups=groups,
            group_target_share=np.array([share[g] for g in groups], dtype=np.float64),
            protected_groups=list(manifest.get("protected_groups", [])),
            item_popularity=arr("item_popularity"),
            item_freshness=arr("item_freshness"),
            keywords=_open_keywords(directory),
            kw_indptr=arr("kw_indptr"),
            kw_indices=arr("kw_indices"),
            kw_data=arr("kw_data"),
            vocabulary=None,
            item_emb=item_emb,
            user_emb=arr("user_emb"),
            singular_values=np.asarray(arr("singular_values")),
            emb_scale=float(manifest["ann"].get("max_item_norm", 1.0)) or 1.0,
            item_query=_item_query(directory, manifest, item_emb),
            item_knn=_item_knn(directory, manifest, len(item_ids)),
            uprof_indptr=arr("uprof_indptr"),
            uprof_terms=arr("uprof_terms"),
            uprof_weights=arr("uprof_weights"),
            useen_indptr=arr("useen_indptr"),
            useen_items=arr("useen_items"),
            pools={
                name: np.asarray(arr(f"pool_{name}")) for name in ("popular", "fresh", "cold_start")
            },
            ann_index=ann.load(
                directory / "faiss.index",
                factory=str(manifest["ann"]["factory"]),
                nprobe=int(manifest["ann"]["nprobe"]),
                refine=int(manifest["ann"].get("refine", 1)),
                vectors=item_emb,
            ),
            blend_weights={k: float(v) for k, v in manifest["blend_weights"].items()},
            user_candidates=_user_candidates(directory, manifest),
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
    _check_seen(directory, loaded.useen_indptr, loaded.useen_items, user_ids, n)
    log.info(
        "opened snapshot %s (%d items, %d users) in %.2fs",
        loaded.version,
        n,
        len(user_ids),
        time.perf_counter() - t0,
    )
    return loaded
