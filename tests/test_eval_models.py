"""Collaborative models and the blend fit against plain references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from server import _core
from server.index import blend, collab


def _random_binary(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    return sp.csr_matrix(dense)


def test_ease_weights_solve_the_constrained_ridge_regression() -> None:
    x = _random_binary(60, 12, 0.3, 1)
    lam = 5.0
    b = collab.ease_weights(x, lam)
    xd = x.toarray().astype(np.float64)
    assert np.allclose(np.diag(b), 0.0)
    for j in range(12):
        others = [c for c in range(12) if c != j]
        a = xd[:, others]
        ref = np.linalg.solve(a.T @ a + lam * np.eye(11), a.T @ xd[:, j])
        assert np.allclose(b[others, j], ref, atol=1e-8)


def test_ease_factors_reproduce_scores_and_fold_in() -> None:
    x = _random_binary(40, 15, 0.3, 2)
    m = collab.fit_ease(x, dim=15, lam=3.0)
    scores = x.toarray() @ collab.ease_weights(x, 3.0)
    assert np.allclose(m.users @ m.items.T, scores, atol=1e-4)
    # A user known only by their items gets the same vector by fold-in.
    for u in (0, 7, 31):
        row = x[u]
        v = collab.fold_in(m.item_query, row.indices.astype(np.int64), row.data)
        assert np.allclose(v, m.users[u], atol=1e-4)


def test_svd_factors_fold_in_matches_stored_users() -> None:
    rng = np.random.default_rng(3)
    w = sp.csr_matrix(rng.random((50, 30)) * (rng.random((50, 30)) < 0.3))
    m = collab.fit_svd(w, dim=30)
    assert m.kind == "svd"
    for u in (1, 20):
        row = w[u]
        v = collab.fold_in(m.item_query, row.indices.astype(np.int64), row.data.astype(np.float32))
        assert np.allclose(v, m.users[u], atol=1e-3)


def test_choose_model_by_catalogue_size() -> None:
    assert collab.choose_model(1_682, 10_000) == "ease"
    assert collab.choose_model(1_000_000, 10_000) == "svd"


def test_item_knn_matches_dense_cosine_and_rust_scores() -> None:
    x = _random_binary(80, 25, 0.25, 4)
    n = 5
    knn = collab.item_knn(x, n, block_items=7, fast=False)
    xd = x.toarray()
    co = xd.T @ xd
    norms = np.sqrt(np.diag(co))
    cos = co / (np.outer(norms, norms) + 1e-12)
    np.fill_diagonal(cos, 0.0)
    dense = knn.toarray()
    for j in range(25):
        keep = np.flatnonzero(dense[j])
        assert len(keep) <= n
        assert np.allclose(dense[j, keep], cos[j, keep], atol=1e-5)
        # What is kept is the top n (ties aside).
        if len(keep):
            assert dense[j, keep].min() >= np.sort(cos[j])[-n] - 1e-5
    # Scored by the Rust core: Σ over the user's items of sim(candidate, item).
    m = _core.KeywordMatrix.from_csr(
        knn.indptr.astype(np.int64), knn.indices.astype(np.int32), knn.data, 25
    )
    hist = x[3].indices.astype(np.int32)
    cands = np.arange(25, dtype=np.int32)
    got = m.score(hist, np.ones(hist.size, np.float32), cands)
    assert np.allclose(got, dense[:, hist].sum(axis=1), atol=1e-5)


def test_item_knn_fast_path_matches_the_block_path() -> None:
    x = _random_binary(300, 120, 0.08, 7)
    fast = collab.item_knn(x, 8).toarray()
    slow = collab.item_knn(x, 8, fast=False, block_items=50).toarray()
    assert np.allclose(np.sort(fast, axis=1), np.sort(slow, axis=1), atol=1e-5)
    assert np.mean(np.all((fast > 0) == (slow > 0), axis=1)) > 0.9  # ties at the n-th may differ


def test_item_knn_caps_heavy_users() -> None:
    x = _random_binary(30, 40, 0.9, 5)
    capped = collab.item_knn(x, 10, max_items_per_user=5)
    full = collab.item_knn(x, 10)
    assert capped.nnz > 0 and not np.allclose(capped.toarray(), full.toarray())


def test_fit_weights_recovers_the_informative_signal() -> None:
    rng = np.random.default_rng(6)
    n_users, n_cands = 200, 50
    relevant = rng.random((n_users, n_cands)) < 0.1
    feats = rng.random((len(blend.SIGNALS), n_users, n_cands)).astype(np.float32)
    kw = blend.SIGNALS.index("keyword")
    feats[kw] += 0.8 * relevant  # keyword tells the truth, the anchor is noise
    val = blend.ValidationSet(
        feats, relevant, np.ones_like(relevant), relevant.sum(axis=1).astype(np.int64)
    )
    weights, report = blend.fit_weights(val)
    assert report["val_ndcg_at_10_fitted"] > report["val_ndcg_at_10_anchor_only"] + 0.2
    assert weights["keyword"] > 2 * abs(weights["embedding"])
    assert sum(abs(v) for v in weights.values()) == pytest.approx(1.0, abs=1e-5)


def test_normalise_by_max() -> None:
    assert np.allclose(blend.normalise_by_max(np.array([1.0, 4.0, 0.0], np.float32)), [0.25, 1, 0])
    assert np.allclose(blend.normalise_by_max(np.zeros(3, np.float32)), 0.0)
