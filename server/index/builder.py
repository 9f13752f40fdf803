"""Offline index build: input tables in, a complete versioned snapshot out.

Stages: load + validate the tables, aggregate interactions into a decayed users × items
matrix, TF-IDF keyword vectors, SVD embeddings, the FAISS index (recall measured), popularity,
freshness and candidate pools, user keyword profiles and seen lists. Everything lands in one
snapshot directory through `snapshot.writing`, so a failure at any point publishes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from server.data import loaders
from server.index import ann, embeddings, snapshot, text

log = logging.getLogger(__name__)

DAY = 86_400.0
ProgressFn = Callable[[str, float], None]


@dataclass(frozen=True)
class BuildConfig:
    """Knobs of the offline build; every field is recorded in the snapshot manifest."""

    embedding_dim: int = 64
    interaction_half_life_days: float = 30.0
    popularity_half_life_days: float = 7.0
    freshness_days: float = 7.0
    fresh_window_days: float = 3.0
    pool_size: int = 2000
    profile_terms: int = 64
    ann_exact_threshold: int = 200_000
    ann_recall_queries: int = 200
    small_creator_max_items: int = 5
    protected_groups: tuple[str, ...] = ("new_creator",)
    blend_weights: dict[str, float] = field(
        default_factory=lambda: {
            "keyword": 0.35,
            "embedding": 0.45,
            "popularity": 0.15,
            "freshness": 0.05,
        }
    )
    seed: int = 0


def _stage(progress: ProgressFn | None, name: str, pct: float) -> None:
    log.info("build: %s (%.0f%%)", name, pct)
    if progress is not None:
        progress(name, pct)


def _index_items(
    items: loaders.Items, inter: loaders.Interactions
) -> tuple[NDArray[np.int64], NDArray[np.int64], list[str]]:
    """Item and user row numbers for every interaction (items keep the items-table order)."""
    vocab_pos = items.positions(inter.item_vocab)
    if np.any(vocab_pos < 0):
        raise ValueError("internal: interactions reference items missing from the items table")
    item_idx = vocab_pos[inter.item_index]
    user_ids = [str(u) for u in inter.user_vocab]
    return item_idx.astype(np.int64), inter.user_index.astype(np.int64), user_ids


def _groups(
    items: loaders.Items, cfg: BuildConfig, creator_codes: NDArray[np.int64]
) -> tuple[NDArray[np.int8], list[str]]:
    """Fairness group per item: the table's label, else derived from the creator's size."""
    labels = np.asarray(items.group, dtype=object)
    creator_size = np.bincount(creator_codes)[creator_codes]
    derived = np.where(creator_size <= cfg.small_creator_max_items, "small_creator", "established")
    labels = np.where(labels == "", derived, labels).astype(str)
    names, codes = np.unique(labels, return_inverse=True)
    if len(names) > 127:
        raise ValueError(f"{len(names)} distinct item groups; at most 127 are supported")
    return codes.astype(np.int8), [str(n) for n in names]


def build_snapshot(
    interactions_path: Path,
    items_path: Path,
    out_dir: Path,
    config: BuildConfig | None = None,
    *,
    progress: ProgressFn | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """Build a snapshot under `out_dir` and return its manifest (with `path` added).

    Raises `loaders.InputError` (a ValueError naming file, row and column) on bad input;
    in that case nothing is written.
    """
    cfg = config or BuildConfig()
    t_all = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, t0: float) -> float:
        timings[name] = round(time.perf_counter() - t0, 3)
        return time.perf_counter()

    _stage(progress, "loading", 2)
    t = time.perf_counter()
    items = loaders.load_items(Path(items_path))
    inter = loaders.load_interactions(Path(interactions_path))
    inter = loaders.filter_unknown_items(inter, items)
    t = timed("load", t)
    if inter.n_rows == 0:
        raise loaders.InputError(
            str(interactions_path), None, None, "no interactions reference a known item"
        )

    n_items = items.n_rows
    item_idx, user_idx, user_ids = _index_items(items, inter)
    n_users = len(user_ids)
    ts = np.asarray(inter.timestamp, dtype=np.int64)
    now = int(max(int(ts.max()), int(np.max(items.publish_ts))))

    weight = np.asarray(inter.weight, dtype=np.float64)
    wr = np.asarray(inter.watch_ratio, dtype=np.float64)
    # Watching most of a video is a stronger signal than a bare start: scale by watch ratio.
    weight = np.where(np.isfinite(wr), weight * (0.5 + np.clip(wr, 0.0, 1.5)), weight)
    decay = 0.5 ** ((now - ts) / (cfg.interaction_half_life_days * DAY))
    w = weight * decay
    signed = sp.csr_matrix((w, (user_idx, item_idx)), shape=(n_users, n_items))
    signed.sum_duplicates()
    positive = signed.copy()
    positive.data = np.log1p(np.maximum(positive.data, 0.0))
    positive.eliminate_zeros()
    seen = sp.csr_matrix(
        (np.ones_like(w, dtype=np.int8), (user_idx, item_idx)), shape=(n_users, n_items)
    )
    seen.sum_duplicates()
    seen.sort_indices()
    t = timed("aggregate", t)

    _stage(progress, "keywords", 15)
    feats = text.build_tfidf(list(items.keywords), list(items.title))
    kw = feats.matrix
    post = kw.tocsc()
    post.sort_indices()
    t = timed("tfidf", t)

    _stage(progress, "profiles", 30)
    prof_raw = signed @ kw
    profiles = text.l2_normalize_rows(
        text.prune_rows_topk(sp.csr_matrix(prof_raw), cfg.profile_terms)
    )
    profiles = sp.csr_matrix(profiles, dtype=np.float32)
    profiles.sort_indices()
    t = timed("profiles", t)

    _stage(progress, "embeddings", 40)
    emb = embeddings.fit_svd(positive, cfg.embedding_dim, seed=cfg.seed)
    t = timed("embeddings", t)

    _stage(progress, "ann", 60)
    index = ann.build_ann(emb.items, exact_threshold=cfg.ann_exact_threshold, seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sample = emb.users[
        rng.choice(n_users, size=min(n_users, cfg.ann_recall_queries), replace=False)
    ]
    recall = ann.recall_at_k(index.index, emb.items, sample, k=100)
    t = timed("ann", t)

    _stage(progress, "pools", 75)
    pos_w = np.maximum(weight, 0.0) * 0.5 ** ((now - ts) / (cfg.popularity_half_life_days * DAY))
    popularity = np.bincount(item_idx, weights=pos_w, minlength=n_items)
    pop_norm = (np.log1p(popularity) / max(np.log1p(popularity.max()), 1e-9)).astype(np.float32)
    publish = np.asarray(items.publish_ts, dtype=np.int64)
    age_days = np.maximum(now - publish, 0) / DAY
    freshness = np.exp(-age_days / cfg.freshness_days).astype(np.float32)
    creator_names, creator_codes = np.unique(
        np.asarray(items.creator_id, dtype=str), return_inverse=True
    )
    group_codes, group_names = _groups(items, cfg, creator_codes)
    ids = np.arange(n_items)
    by_pop = np.lexsort((ids, -popularity))
    popular_pool = by_pop[: cfg.pool_size]
    recent = np.flatnonzero(age_days <= cfg.fresh_window_days)
    fresh_pool = recent[np.lexsort((recent, -pop_norm[recent], -publish[recent]))][: cfg.pool_size]
    protected_codes = [group_names.index(g) for g in cfg.protected_groups if g in group_names]
    prot = np.flatnonzero(np.isin(group_codes, protected_codes))
    cold_pool = prot[np.lexsort((prot, -(pop_norm[prot] + freshness[prot])))][: cfg.pool_size]
    group_share = {g: float(np.mean(group_codes == i)) for i, g in enumerate(group_names)}
    t = timed("pools", t)

    _stage(progress, "writing", 85)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    version = version or snapshot.new_version(root)
    with snapshot.writing(root, version) as out:
        out.text("item_ids.txt", text.join_terms(np.asarray(items.item_id, dtype=str)))
        out.text("user_ids.txt", text.join_terms(user_ids))
        out.text("creator_ids.txt", text.join_terms(creator_names.astype(str)))
        out.text("vocabulary.txt", text.join_terms(feats.vocabulary))
        out.array("item_creator", creator_codes.astype(np.int32))
        out.array("item_group", group_codes)
        out.array("item_publish_ts", publish)
        out.array("item_popularity", pop_norm)
        out.array("item_freshness", freshness)
        out.array("kw_indptr", kw.indptr.astype(np.int64))
        out.array("kw_indices", kw.indices.astype(np.int32))
        out.array("kw_data", kw.data.astype(np.float32))
        out.array("kw_post_indptr", post.indptr.astype(np.int64))
        out.array("kw_post_items", post.indices.astype(np.int32))
        out.array("kw_post_weights", post.data.astype(np.float32))
        out.array("idf", feats.idf)
        out.array("item_emb", emb.items)
        out.array("user_emb", emb.users)
        out.array("singular_values", emb.singular_values)
        out.array("uprof_indptr", profiles.indptr.astype(np.int64))
        out.array("uprof_terms", profiles.indices.astype(np.int32))
        out.array("uprof_weights", profiles.data.astype(np.float32))
        out.array("useen_indptr", seen.indptr.astype(np.int64))
        out.array("useen_items", seen.indices.astype(np.int32))
        out.array("pool_popular", popular_pool.astype(np.int32))
        out.array("pool_fresh", fresh_pool.astype(np.int32))
        out.array("pool_cold_start", cold_pool.astype(np.int32))
        ann.save(index.index, out.path("faiss.index"))
        timed("write", t)
        manifest: dict[str, Any] = {
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "reference_ts": now,
            "counts": {
                "items": n_items,
                "users": n_users,
                "interactions": int(inter.n_rows),
                "creators": len(creator_names),
                "terms": len(feats.vocabulary),
                "keyword_nnz": int(kw.nnz),
            },
            "rejected_rows": dict(inter.rejected),
            "inputs": {
                "interactions": {
                    "path": str(interactions_path),
                    "sha256": snapshot.sha256_file(Path(interactions_path)),
                },
                "items": {
                    "path": str(items_path),
                    "sha256": snapshot.sha256_file(Path(items_path)),
                },
            },
            "config": _jsonable(dataclasses.asdict(cfg)),
            "blend_weights": dict(cfg.blend_weights),
            "groups": group_names,
            "group_catalogue_share": group_share,
            "protected_groups": [g for g in cfg.protected_groups if g in group_names],
            "ann": {
                "factory": index.factory,
                "nprobe": index.nprobe,
                "recall_at_100": round(recall, 4),
                "dim": int(emb.items.shape[1]),
                "max_item_norm": float(np.linalg.norm(emb.items, axis=1).max(initial=0.0)) or 1.0,
            },
            "timings_s": timings,
        }
        manifest["build_seconds"] = round(time.perf_counter() - t_all, 3)
        final = out.commit(manifest)
    _stage(progress, "done", 100)
    manifest["path"] = str(final)
    manifest["version"] = version
    return manifest


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj
