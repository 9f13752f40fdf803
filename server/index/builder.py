"""Offline index build: input tables in, a complete versioned snapshot out.

Stages: load + validate the tables, aggregate interactions into a decayed users × items
matrix, TF-IDF keyword vectors, SVD embeddings, the FAISS index (recall measured), popularity,
freshness and candidate pools, user keyword profiles and seen lists. Everything lands in one
snapshot directory through `snapshot.writing`, so a failure at any point publishes nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from server import _core
from server.data import loaders
from server.index import ann, blas, blend, collab, snapshot, text, user_candidates

log = logging.getLogger(__name__)

DAY = 86_400.0
ProgressFn = Callable[[str, float], None]


@dataclass(frozen=True)
class BuildConfig:
    """Knobs of the offline build; every field is recorded in the snapshot manifest."""

    # Weight per event type over server.data.schema.DEFAULT_EVENT_WEIGHTS (e.g. {"like": 5.0});
    # an explicit `weight` column still wins. Views are also scaled by 0.5 + watch ratio.
    event_weights: dict[str, float] | None = None
    embedding_dim: int = 64
    interaction_half_life_days: float = 30.0
    popularity_half_life_days: float = 7.0
    freshness_days: float = 7.0
    fresh_window_days: float = 3.0
    pool_size: int = 2000
    profile_terms: int = 64
    ann_exact_threshold: int = 50_000
    ann_recall_queries: int = 200
    small_creator_max_items: int = 5
    protected_groups: tuple[str, ...] = ("new_creator",)
    # Collaborative models (server/index/collab.py): EASE up to `ease_max_items` items (dense
    # items x items: ~0.8 GB per float64 copy at 10,000), truncated SVD above.
    ease_max_items: int = 10_000
    # None: chosen from `ease_lambda_grid` by validation NDCG@10 (see `_fit_ease_lambda`).
    ease_lambda: float | None = None
    ease_lambda_grid: tuple[float, ...] = (50.0, 150.0, 400.0, 1000.0)
    ease_dim: int = 128
    knn_neighbors: int = 50
    knn_shrink: float = 0.0
    knn_max_items_per_user: int = 500
    # Blend weights: fitted on a validation split (server/index/blend.py) unless given here.
    blend_weights: dict[str, float] | None = None
    blend_val_users: int = 1000
    blend_holdout: float = 0.2
    blend_min_user_items: int = 5
    # Candidates per validation user, as the server's retrieval quotas for 500 candidates.
    blend_ann_candidates: int = 250
    blend_keyword_candidates: int = 125
    blend_popular_candidates: int = 50
    # Per-user lists precomputed for requests without recent events (user_candidates.py):
    # a little over the default quotas for 500 candidates (225 ANN, 100 keyword); 0 disables.
    # Each list saves an online search per request (at 1M items: ~1.3 ms of exact keyword
    # top-k, ~0.7 ms of FAISS search) for under a millisecond of build per user.
    precompute_ann: int = 300
    precompute_keyword: int = 150
    # BLAS threads during the build (server/index/blas.py); 0 leaves OpenBLAS' default pool.
    blas_threads: int = 1
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


def item_groups(
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


@dataclass(frozen=True)
class _Collab:
    factors: collab.FactorModel
    knn: sp.csr_matrix


def _pop_norm(popularity: NDArray[np.float64]) -> NDArray[np.float32]:
    top = max(float(np.log1p(popularity.max(initial=0.0))), 1e-9)
    out: NDArray[np.float32] = (np.log1p(popularity) / top).astype(np.float32)
    return out


def _profiles(signed_rows: sp.csr_matrix, kw: sp.csr_matrix, cfg: BuildConfig) -> sp.csr_matrix:
    """Users' keyword profiles: signed history x TF-IDF, top terms kept, L2-normalised."""
    prof_raw = signed_rows @ kw
    profiles = text.l2_normalize_rows(
        text.prune_rows_topk(sp.csr_matrix(prof_raw), cfg.profile_terms)
    )
    profiles = sp.csr_matrix(profiles, dtype=np.float32)
    profiles.sort_indices()
    return profiles


def _positive(signed: sp.csr_matrix) -> sp.csr_matrix:
    """The SVD input: log(1 + positive decayed weight)."""
    positive = sp.csr_matrix(signed, copy=True)
    positive.data = np.log1p(np.maximum(positive.data, 0.0))
    positive.eliminate_zeros()
    return positive


DEFAULT_EASE_LAMBDA = 400.0


def _fit_collab(
    signed: sp.csr_matrix,
    cfg: BuildConfig,
    timings: dict[str, float],
    prefix: str = "",
    ease_lambda: float = DEFAULT_EASE_LAMBDA,
) -> _Collab:
    """Collaborative factors (EASE or SVD by catalogue size) and ItemKNN neighbours."""
    t = time.perf_counter()
    binary = collab.binary_matrix(signed)
    factors = collab.fit_factors(
        binary,
        _positive(signed),
        dim=cfg.embedding_dim,
        ease_dim=cfg.ease_dim,
        ease_lambda=ease_lambda,
        ease_max_items=cfg.ease_max_items,
        seed=cfg.seed,
    )
    timings[prefix + "embeddings"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    knn = collab.item_knn(
        binary,
        cfg.knn_neighbors,
        shrink=cfg.knn_shrink,
        max_items_per_user=cfg.knn_max_items_per_user,
        seed=cfg.seed,
    )
    timings[prefix + "item_knn"] = round(time.perf_counter() - t, 3)
    return _Collab(factors, knn)


def _fit_ease_lambda(
    train_signed: sp.csr_matrix,
    seen: sp.csr_matrix,
    hold: sp.csr_matrix,
    users: NDArray[np.int64],
    grid: tuple[float, ...],
) -> tuple[float, dict[str, float]]:
    """The EASE regularisation with the best validation NDCG@10 (full ranking of exact scores)."""
    x = collab.binary_matrix(train_signed)
    xu = x[users].toarray().astype(np.float64)
    excluded = seen[users].toarray() > 0
    relevant = hold[users].toarray() > 0
    n_rel = relevant.sum(axis=1).astype(np.int64)
    scores: dict[str, float] = {}
    for lam in grid:
        s = (xu @ collab.ease_weights(x, lam)).astype(np.float32)
        scores[str(lam)] = round(blend.ndcg_at_k(s, relevant, ~excluded, n_rel), 5)
    best = max(grid, key=lambda lam: (scores[str(lam)], -lam))
    return float(best), scores


def _keyword_matrix(kw: sp.csr_matrix) -> _core.KeywordMatrix:
    """The items' TF-IDF rows as the core's scoring structure (CSR copy, postings, tiles)."""
    return _core.KeywordMatrix.from_csr(
        kw.indptr.astype(np.int64), kw.indices.astype(np.int32), kw.data, kw.shape[1]
    )


def _fit_blend(
    signed: sp.csr_matrix,
    popw: sp.csr_matrix,
    seen: sp.csr_matrix,
    kw: sp.csr_matrix,
    keywords: Callable[[], _core.KeywordMatrix],
    freshness: NDArray[np.float32],
    cfg: BuildConfig,
    timings: dict[str, float],
) -> tuple[dict[str, float], dict[str, Any], _Collab | None, float]:
    """Blend weights fitted on held-out interactions of a sample of users (see blend.py).

    Small catalogues (EASE) refit the collaborative models on all data afterwards. Large ones
    (SVD) serve the validation fit itself: the held-out pairs are a tiny share of the data
    (at most `blend_val_users` users), and the validation users' factor rows are recomputed
    from their full history by fold-in, which is exact for these models. The third value is
    that reusable fit, or None; the fourth the EASE regularisation (fitted when
    `cfg.ease_lambda` is None and the catalogue gets EASE).
    """
    lam = cfg.ease_lambda if cfg.ease_lambda is not None else DEFAULT_EASE_LAMBDA
    if cfg.blend_weights is not None:
        return dict(cfg.blend_weights), {"fitted": False}, None, lam
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed + 1)
    binary = collab.binary_matrix(signed)
    n_pos = np.diff(binary.indptr)
    eligible = np.flatnonzero(n_pos >= cfg.blend_min_user_items)
    if eligible.size == 0:
        reason = {"fitted": False, "reason": "no user with enough items"}
        return {"embedding": 1.0}, reason, None, lam
    users = np.sort(
        rng.choice(eligible, size=min(eligible.size, cfg.blend_val_users), replace=False)
    )
    sub = binary[users]
    row = np.repeat(np.arange(users.size), np.diff(sub.indptr))
    n_hold = np.maximum(1, np.round(cfg.blend_holdout * np.diff(sub.indptr))).astype(np.int64)
    order = np.lexsort((rng.random(sub.nnz), row))
    rank = np.empty(sub.nnz, np.int64)
    rank[order] = np.arange(sub.nnz) - sub.indptr[row[order]]
    held = rank < n_hold[row]
    hold = sp.csr_matrix(
        (np.ones(int(held.sum()), np.float32), (users[row[held]], sub.indices[held])),
        shape=signed.shape,
    )
    del binary, sub

    def without(m: sp.csr_matrix) -> sp.csr_matrix:
        out = sp.csr_matrix(m - m.multiply(hold))
        out.eliminate_zeros()
        return out

    train_signed = without(signed)
    lambda_report: dict[str, Any] = {}
    ease = collab.choose_model(signed.shape[1], cfg.ease_max_items) == "ease"
    if ease and cfg.ease_lambda is None and cfg.ease_lambda_grid:
        t = time.perf_counter()
        lam, by_lambda = _fit_ease_lambda(
            train_signed, without(seen), hold, users, cfg.ease_lambda_grid
        )
        lambda_report = {"ease_lambda": lam, "val_ndcg_at_10_by_ease_lambda": by_lambda}
        timings["val_ease_lambda"] = round(time.perf_counter() - t, 3)
    fit = _fit_collab(train_signed, cfg, timings, prefix="val_", ease_lambda=lam)
    t = time.perf_counter()
    val_profiles = _profiles(train_signed[users], kw, cfg)
    del train_signed
    val_pop = np.asarray(without(popw).sum(axis=0), dtype=np.float64).ravel()
    val = _validation_features(
        fit, val_profiles, val_pop, keywords(), freshness, without(seen), hold, users, cfg
    )
    weights, report = blend.fit_weights(val)
    timings["val_fit"] = round(time.perf_counter() - t, 3)
    report["fitted"] = True
    report["seconds"] = round(time.perf_counter() - t0, 3)
    report["holdout"] = cfg.blend_holdout
    report.update(lambda_report)
    reuse = fit.factors.kind == "svd"
    report["models_refit"] = not reuse
    if not reuse:
        return weights, report, None, lam
    # Serve the validation fit: put back the held-out history of the validation users.
    rows = _positive(signed[users])
    fit.factors.users[users] = np.asarray(rows @ fit.factors.item_query, dtype=np.float32)
    return weights, report, fit, lam


def _validation_features(
    models: _Collab,
    profiles: sp.csr_matrix,
    popularity: NDArray[np.float64],
    kwm: _core.KeywordMatrix,
    freshness: NDArray[np.float32],
    seen: sp.csr_matrix,
    hold: sp.csr_matrix,
    users: NDArray[np.int64],
    cfg: BuildConfig,
) -> blend.ValidationSet:
    """Features of each validation user's candidates, computed as `ranking.score` does."""
    n_items = kwm.n_items
    f = models.factors
    emb_scale = float(np.linalg.norm(f.items, axis=1).max(initial=0.0)) or 1.0
    pop_norm = _pop_norm(popularity)
    popular = np.lexsort((np.arange(n_items), -popularity))[: cfg.pool_size]
    knn = models.knn
    knnm = _core.KeywordMatrix.from_csr(
        knn.indptr.astype(np.int64), knn.indices.astype(np.int32), knn.data, n_items
    )
    prof = profiles
    ex = seen[users]
    kw_ids, _ = kwm.topk_batch(
        prof.indptr.astype(np.int64),
        prof.indices.astype(np.int32),
        prof.data.astype(np.float32),
        cfg.blend_keyword_candidates,
        ex.indptr.astype(np.int64),
        ex.indices.astype(np.int32),
    )
    held = hold[users]
    cands: list[NDArray[np.int64]] = []
    feats: list[NDArray[np.float32]] = []
    rels: list[NDArray[np.bool_]] = []
    chunk = max(1, 50_000_000 // max(n_items, 1))
    for a in range(0, users.size, chunk):
        b = min(users.size, a + chunk)
        uv = f.users[users[a:b]]
        sc = uv @ f.items.T
        for j in range(b - a):
            r = a + j
            s_row = sc[j]
            seen_r = ex.indices[ex.indptr[r] : ex.indptr[r + 1]]
            s_row[seen_r] = -np.inf
            k = min(cfg.blend_ann_candidates, n_items - 1)
            ann_ids = np.argpartition(-s_row, k)[:k] if k > 0 else np.zeros(0, np.int64)
            ann_ids = ann_ids[np.isfinite(s_row[ann_ids])]
            pop_ids = popular[~np.isin(popular, seen_r)][: cfg.blend_popular_candidates]
            kwr = kw_ids[r][kw_ids[r] >= 0]
            c = np.unique(np.concatenate([ann_ids, kwr.astype(np.int64), pop_ids]))
            c32 = c.astype(np.int32)
            norm = float(np.linalg.norm(uv[j])) or 1.0
            e = (f.items[c] @ uv[j]) / (norm * emb_scale)
            hist = ex.indices[ex.indptr[r] : ex.indptr[r + 1]].astype(np.int32)
            raw = knnm.score(hist, np.ones(hist.size, np.float32), c32)
            pr = prof[r]
            kws = kwm.score(pr.indices.astype(np.int32), pr.data.astype(np.float32), c32)
            feats.append(
                np.stack([e, blend.normalise_by_max(raw), kws, pop_norm[c], freshness[c]]).astype(
                    np.float32
                )
            )
            cands.append(c)
            h = held.indices[held.indptr[r] : held.indptr[r + 1]]
            rels.append(np.isin(c, h))
    width = max((c.size for c in cands), default=1)
    nu = users.size
    features = np.zeros((len(blend.SIGNALS), nu, width), np.float32)
    relevant = np.zeros((nu, width), bool)
    valid = np.zeros((nu, width), bool)
    for r in range(nu):
        m = cands[r].size
        features[:, r, :m] = feats[r]
        relevant[r, :m] = rels[r]
        valid[r, :m] = True
    n_rel = np.diff(held.indptr).astype(np.int64)
    return blend.ValidationSet(features, relevant, valid, n_rel)


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
    with blas.limit(cfg.blas_threads):
        return _build(interactions_path, items_path, out_dir, cfg, progress, version)


def _build(
    interactions_path: Path,
    items_path: Path,
    out_dir: Path,
    cfg: BuildConfig,
    progress: ProgressFn | None,
    version: str | None,
) -> dict[str, Any]:
    t_all = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, t0: float) -> float:
        timings[name] = round(time.perf_counter() - t0, 3)
        return time.perf_counter()

    _stage(progress, "loading", 2)
    t = time.perf_counter()
    items = loaders.load_items(Path(items_path))
    inter = loaders.load_interactions(Path(interactions_path), event_weights=cfg.event_weights)
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
    age_s = (now - ts).astype(np.float64)
    decay = 0.5 ** (age_s / (cfg.interaction_half_life_days * DAY))
    shape = (n_users, n_items)
    signed = sp.csr_matrix((weight * decay, (user_idx, item_idx)), shape=shape)
    signed.sum_duplicates()
    pos_w = np.maximum(weight, 0.0) * 0.5 ** (age_s / (cfg.popularity_half_life_days * DAY))
    popw = sp.csr_matrix((pos_w, (user_idx, item_idx)), shape=shape)
    popw.sum_duplicates()
    seen = sp.csr_matrix((np.ones(user_idx.size, dtype=np.int8), (user_idx, item_idx)), shape=shape)
    seen.sum_duplicates()
    seen.data[:] = 1
    seen.sort_indices()
    del weight, wr, decay, pos_w, age_s
    t = timed("aggregate", t)

    _stage(progress, "keywords", 10)
    feats = text.build_tfidf(list(items.keywords), list(items.title))
    kw = feats.matrix
    t = timed("tfidf", t)

    publish = np.asarray(items.publish_ts, dtype=np.int64)
    age_days = np.maximum(now - publish, 0) / DAY
    freshness = np.exp(-age_days / cfg.freshness_days).astype(np.float32)

    _stage(progress, "validation", 20)
    # Blend validation and the per-user keyword lists both score against the items' keyword
    # rows: one `KeywordMatrix` (~2 s to make at 1M items), made at first use and dropped after
    # the last.
    keywords = functools.cache(lambda: _keyword_matrix(kw))
    blend_weights, blend_report, fit, ease_lambda = _fit_blend(
        signed, popw, seen, kw, keywords, freshness, cfg, timings
    )
    if cfg.precompute_keyword == 0:
        keywords.cache_clear()
    popularity = np.asarray(popw.sum(axis=0), dtype=np.float64).ravel()
    del popw
    t = time.perf_counter()

    _stage(progress, "profiles", 40)
    profiles = _profiles(signed, kw, cfg)
    t = timed("profiles", t)

    _stage(progress, "models", 45)
    if fit is None:
        fit = _fit_collab(signed, cfg, timings, ease_lambda=ease_lambda)
    emb, knn = fit.factors, fit.knn
    positive_pairs = int(np.count_nonzero(signed.data > 0))
    del fit, signed
    t = time.perf_counter()

    # The keyword lists come before the ANN stage so that the matrix is gone during its recall
    # check (200 queries x all items, several float32 copies: 0.8 GB each at 1M items). The
    # lists that stay are smaller than what is no longer held there: `popw`, `signed` and the
    # postings (now made at write time).
    _stage(progress, "keyword candidates", 50)
    ucand: dict[str, user_candidates.Csr] = {}
    if cfg.precompute_keyword > 0:
        ucand["keyword"] = user_candidates.keyword_lists(
            keywords(), profiles, seen, cfg.precompute_keyword
        )
        keywords.cache_clear()
        t = timed("user_candidates_keyword", t)

    _stage(progress, "ann", 60)
    index = ann.build_ann(emb.items, exact_threshold=cfg.ann_exact_threshold, seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sample = emb.users[
        rng.choice(n_users, size=min(n_users, cfg.ann_recall_queries), replace=False)
    ]
    recall = ann.recall_at_k(index, emb.items, sample, k=100)
    t = timed("ann", t)

    _stage(progress, "user candidates", 70)
    if cfg.precompute_ann > 0:
        ucand["ann"] = user_candidates.ann_lists(index, emb.users, seen, cfg.precompute_ann)
        t = timed("user_candidates_ann", t)

    _stage(progress, "pools", 75)
    pop_norm = _pop_norm(popularity)
    creator_names, creator_codes = np.unique(
        np.asarray(items.creator_id, dtype=str), return_inverse=True
    )
    group_codes, group_names = item_groups(items, cfg, creator_codes)
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
        post = kw.tocsc()
        post.sort_indices()
        out.array("kw_post_indptr", post.indptr.astype(np.int64))
        out.array("kw_post_items", post.indices.astype(np.int32))
        out.array("kw_post_weights", post.data.astype(np.float32))
        out.array("idf", feats.idf)
        out.array("item_emb", emb.items)
        out.array("user_emb", emb.users)
        out.array("item_query", emb.item_query)
        out.array("singular_values", emb.singular_values)
        # ItemKNN as a second keyword-style index (CSR + postings) in its own directory, so
        # serving processes memory-map it with KeywordMatrix.open instead of each copying it.
        knn = sp.csr_matrix(knn)
        knn.sort_indices()
        knn_post = knn.tocsc()
        knn_post.sort_indices()
        out.array("knn/kw_indptr", knn.indptr.astype(np.int64))
        out.array("knn/kw_indices", knn.indices.astype(np.int32))
        out.array("knn/kw_data", knn.data.astype(np.float32))
        out.array("knn/kw_post_indptr", knn_post.indptr.astype(np.int64))
        out.array("knn/kw_post_items", knn_post.indices.astype(np.int32))
        out.array("knn/kw_post_weights", knn_post.data.astype(np.float32))
        # The scoring structures derived from both indexes (tiled postings, packed rows), so
        # that every serving process memory-maps one shared copy instead of building its own.
        # Listed and checksummed in the manifest like every other file.
        _core.KeywordMatrix.write_derived(str(out.tmp))
        _core.KeywordMatrix.write_derived(str(out.path("knn")))
        out.array("uprof_indptr", profiles.indptr.astype(np.int64))
        out.array("uprof_terms", profiles.indices.astype(np.int32))
        out.array("uprof_weights", profiles.data.astype(np.float32))
        out.array("useen_indptr", seen.indptr.astype(np.int64))
        out.array("useen_items", seen.indices.astype(np.int32))
        out.array("pool_popular", popular_pool.astype(np.int32))
        out.array("pool_fresh", fresh_pool.astype(np.int32))
        out.array("pool_cold_start", cold_pool.astype(np.int32))
        for source, (c_indptr, c_ids, c_scores) in ucand.items():
            out.array(f"ucand/{source}_indptr", c_indptr)
            out.array(f"ucand/{source}_items", c_ids)
            out.array(f"ucand/{source}_scores", c_scores)
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
                "positive_pairs": positive_pairs,
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
            "blend_weights": blend_weights,
            "blend_fit": blend_report,
            "collaborative": {
                "model": emb.kind,
                "ease_lambda": ease_lambda if emb.kind == "ease" else None,
                "dim": int(emb.items.shape[1]),
                "item_knn_nnz": int(knn.nnz),
            },
            "groups": group_names,
            "group_catalogue_share": group_share,
            "protected_groups": [g for g in cfg.protected_groups if g in group_names],
            "ann": {
                "factory": index.factory,
                "nprobe": index.nprobe,
                "refine": index.refine,
                "recall_at_100": round(recall, 4),
                "dim": int(emb.items.shape[1]),
                "max_item_norm": float(np.linalg.norm(emb.items, axis=1).max(initial=0.0)) or 1.0,
            },
            "user_candidates": user_candidates.manifest_entry(
                ucand, {"ann": cfg.precompute_ann, "keyword": cfg.precompute_keyword}
            ),
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
