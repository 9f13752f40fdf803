"""Collaborative models fitted on the implicit-feedback matrix: EASE or SVD factors, ItemKNN.

Which factor model depends on the catalogue size (`choose_model`):

* **EASE** (Steck 2019) for catalogues up to `ease_max_items` (default 10,000): the closed-form
  item-item model ``B = I - P / diag(P)`` with ``P = (XᵀX + λI)⁻¹``, diagonal zeroed. It is the
  strongest simple model on MovieLens-sized data, but ``B`` is a dense items × items matrix
  (O(n²) memory, O(n³) time), so it cannot serve a million items. We do not serve ``B``
  itself: the user score matrix ``S = X·B`` is factored by a (randomized) truncated SVD,
  ``S ≈ U Σ Vᵀ``, and we store users ``U·Σ^½`` and items ``V·Σ^½``: the inner product is the
  EASE score (rank-k), so the FAISS index over the item vectors retrieves EASE's top items and
  the ranker scores them with one matrix-vector product. A user known only by recent events
  is folded in through the stored ``item_query = B·V·Σ^-½`` rows: ``x·B·V·Σ^-½ = U·Σ^½`` for
  any row ``x``, so a fold-in is a weighted sum of a few stored rows, like the SVD fold-in.
* **SVD** of the (log-scaled, time-decayed) matrix itself above that size: a few sparse
  mat-mats, linear in the number of interactions; ``item_query = V·Σ^-½``.

ItemKNN is the classic sparse item-item cosine, ``sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i| |U_j|)
+ shrink)``, each target item keeping its `n` most similar source items; it is stored as CSR
(rows = target items, columns = source items) so the Rust core scores a user's history
against any candidate set in one call, exactly like a keyword profile against TF-IDF rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from numpy.typing import NDArray

from server.index import embeddings, text

try:  # optional fast path for ItemKNN (a pinned dependency of the bench extra)
    from sparse_dot_topn import sp_matmul_topn as _sp_matmul_topn
except ImportError:  # pragma: no cover - depends on the environment
    _sp_matmul_topn = None


@dataclass(frozen=True)
class FactorModel:
    """User and item factors whose inner product is the collaborative score."""

    kind: str  # "ease" or "svd"
    users: NDArray[np.float32]
    items: NDArray[np.float32]
    item_query: NDArray[np.float32]  # fold-in rows: user vector = Σ w_i · item_query[i]
    singular_values: NDArray[np.float32]


def choose_model(n_items: int, ease_max_items: int) -> str:
    """``"ease"`` for catalogues up to `ease_max_items`, else ``"svd"`` (see module doc)."""
    return "ease" if n_items <= ease_max_items else "svd"


def binary_matrix(signed: sp.csr_matrix) -> sp.csr_matrix:
    """1 where the aggregated signed weight of a (user, item) pair is positive, as float32."""
    m = sp.csr_matrix(signed, copy=True)
    m.data = (m.data > 0).astype(np.float32)
    m.eliminate_zeros()
    out = sp.csr_matrix(m, dtype=np.float32)
    out.sort_indices()
    return out


def ease_weights(x: sp.csr_matrix, lam: float) -> NDArray[np.float64]:
    """Dense EASE item-item matrix ``B`` (zero diagonal) for a users × items matrix.

    ``P = (XᵀX + λI)⁻¹`` comes from a Cholesky factorisation (the matrix is symmetric positive
    definite), about twice as fast as a general inverse.
    """
    g = np.asarray((x.T @ x).toarray(), dtype=np.float64)
    g[np.diag_indices_from(g)] += lam
    c, info = scipy.linalg.lapack.dpotrf(g, lower=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE Gram matrix is not positive definite (info {info})")
    p, info = scipy.linalg.lapack.dpotri(c, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE inverse failed (info {info})")
    p = np.tril(p) + np.tril(p, -1).T
    b: NDArray[np.float64] = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b


def _top_svd(
    a: NDArray[np.float64], k: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Top-`k` SVD of a small dense matrix from the eigendecomposition of its smaller Gram.

    Only the leading factors are kept, and those are well conditioned, so squaring the
    condition number costs nothing that matters; it is several times faster than a full SVD.
    """
    if a.shape[0] <= a.shape[1]:
        w, u = np.linalg.eigh(a @ a.T)
        order = np.argsort(-w)[:k]
        s = np.sqrt(np.maximum(w[order], 0.0))
        u = u[:, order]
        vt = (a.T @ u / np.maximum(s, 1e-12)).T
    else:
        w, v = np.linalg.eigh(a.T @ a)
        order = np.argsort(-w)[:k]
        s = np.sqrt(np.maximum(w[order], 0.0))
        v = v[:, order]
        u = a @ v / np.maximum(s, 1e-12)
        vt = v.T
    return u, s, vt


def _randomized_svd_op(
    apply: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    apply_t: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    shape: tuple[int, int],
    k: int,
    *,
    oversample: int = 10,
    power_iters: int = 4,
    seed: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Randomized SVD of an operator ``A`` given ``A @ M`` and ``Aᵀ @ M`` (never formed)."""
    rng = np.random.default_rng(seed)
    n_rows, n_cols = shape
    width = min(k + oversample, n_rows, n_cols)
    orth = embeddings._orthonormalize
    q = orth(apply(rng.standard_normal((n_cols, width))))
    for _ in range(power_iters):
        z = orth(apply_t(q))
        q = orth(apply(z))
    b = apply_t(q).T
    ub, s, vt = np.linalg.svd(b, full_matrices=False)
    return (q @ ub)[:, :k], s[:k], vt[:k]


def fit_ease(x: sp.csr_matrix, dim: int, lam: float, seed: int = 0) -> FactorModel:
    """EASE, served as a rank-`dim` factorisation of its score matrix ``X·B``."""
    n_users, n_items = x.shape
    b = ease_weights(x, lam)
    k = max(1, min(dim, n_users, n_items))
    xd = x.astype(np.float64)
    if n_users * n_items <= 20_000_000:
        u, s, vt = _top_svd(np.asarray(xd @ b), k)
    else:
        xt = xd.T.tocsr()
        u, s, vt = _randomized_svd_op(
            lambda m: np.asarray(xd @ (b @ m)),
            lambda m: np.asarray(b.T @ (xt @ m)),
            (n_users, n_items),
            k,
            seed=seed,
        )
    signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1
    u, vt = u * signs, vt * signs[:, None]
    root = np.sqrt(np.maximum(s, 1e-12))
    query = (b @ vt.T) / root
    return FactorModel(
        kind="ease",
        users=(u * root).astype(np.float32),
        items=(vt.T * root).astype(np.float32),
        item_query=query.astype(np.float32),
        singular_values=s.astype(np.float32),
    )


def fit_svd(matrix: sp.csr_matrix, dim: int, seed: int = 0) -> FactorModel:
    """Truncated SVD factors of the (weighted) interaction matrix itself."""
    emb = embeddings.fit_svd(matrix, dim, seed=seed)
    query = emb.items / np.maximum(emb.singular_values, 1e-6)
    return FactorModel(
        kind="svd",
        users=emb.users,
        items=emb.items,
        item_query=query.astype(np.float32),
        singular_values=emb.singular_values,
    )


def fit_factors(
    binary: sp.csr_matrix,
    weighted: sp.csr_matrix,
    *,
    dim: int,
    ease_dim: int,
    ease_lambda: float,
    ease_max_items: int,
    seed: int = 0,
) -> FactorModel:
    """The factor model `choose_model` picks for this catalogue."""
    if choose_model(binary.shape[1], ease_max_items) == "ease":
        return fit_ease(binary, ease_dim, ease_lambda, seed=seed)
    return fit_svd(weighted, dim, seed=seed)


def item_knn(
    binary: sp.csr_matrix,
    n_neighbors: int,
    *,
    shrink: float = 0.0,
    max_items_per_user: int = 500,
    block_items: int = 20_000,
    seed: int = 0,
    fast: bool = True,
) -> sp.csr_matrix:
    """Sparse cosine item-item neighbours: rows = target items, columns = source items.

    Each row keeps its `n_neighbors` largest similarities (ties: lower item id). A user with
    more than `max_items_per_user` items contributes a seeded random sample of that many: the
    cap bounds the O(n²) co-occurrence count of very heavy users. The item-item product is
    computed in blocks of target items so peak memory stays at one block's co-occurrences,
    or, when sparse_dot_topn is installed, `fast` is set and there is no shrink, by its fused
    multi-threaded top-n product (`_item_knn_topn`).
    """
    x = sp.csr_matrix(binary, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    n_items = x.shape[1]
    counts = np.diff(x.indptr)
    if counts.size and counts.max() > max_items_per_user:
        # Keep a random `max_items_per_user` of each heavy user's entries, vectorised.
        row = np.repeat(np.arange(x.shape[0]), counts)
        order = np.lexsort((np.random.default_rng(seed).random(x.nnz), row))
        rank = np.empty(x.nnz, np.int64)
        rank[order] = np.arange(x.nnz) - x.indptr[row[order]]
        keep = rank < max_items_per_user
        x = sp.csr_matrix((x.data[keep], (row[keep], x.indices[keep])), shape=x.shape)
    norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel()).astype(np.float32)
    if fast and shrink == 0.0 and _sp_matmul_topn is not None and n_items > 0:
        return _item_knn_topn(x, norms, n_neighbors)
    xt = x.T.tocsr()
    parts = []
    for a in range(0, n_items, block_items):
        b = min(n_items, a + block_items)
        co = sp.csr_matrix(xt[a:b] @ x)
        rows = np.repeat(np.arange(b - a), np.diff(co.indptr))
        co.data = co.data / (norms[rows + a] * norms[co.indices] + shrink + 1e-12)
        co.data[co.indices == rows + a] = 0.0  # no self-similarity
        co.eliminate_zeros()
        parts.append(text.prune_rows_topk(co, n_neighbors))
    if not parts:
        return sp.csr_matrix((0, n_items), dtype=np.float32)
    out = sp.csr_matrix(sp.vstack(parts, format="csr"), dtype=np.float32)
    out.sort_indices()
    return out


def _item_knn_topn(x: sp.csr_matrix, norms: NDArray[np.float32], n_neighbors: int) -> sp.csr_matrix:
    """The same neighbours through sparse_dot_topn's fused top-n product (multi-threaded).

    Cosine is a plain product after scaling the columns by 1/norm; every item is its own
    most similar item (cosine 1), so n + 1 are kept and the diagonal dropped. Ties at the n-th
    similarity may keep a different item than the block path.
    """
    assert _sp_matmul_topn is not None
    inv = np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    xs = sp.csr_matrix(x @ sp.diags(inv), dtype=np.float32)
    xst = xs.T.tocsr()
    out = _sp_matmul_topn(xst, xs, top_n=n_neighbors + 1, sort=True, n_threads=os.cpu_count() or 1)
    out = sp.csr_matrix(out, dtype=np.float32)
    rows = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
    out.data[out.indices == rows] = 0.0
    out.eliminate_zeros()
    if np.diff(out.indptr).max(initial=0) > n_neighbors:
        out = text.prune_rows_topk(out, n_neighbors)
    out.sort_indices()
    return sp.csr_matrix(out, dtype=np.float32)


def fold_in(
    item_query: NDArray[np.float32], items: NDArray[np.int64], weights: NDArray[np.float32]
) -> NDArray[np.float32]:
    """User vector for a sparse row of interactions: ``Σ weights[j] · item_query[items[j]]``."""
    if items.size == 0:
        return np.zeros(item_query.shape[1], np.float32)
    out: NDArray[np.float32] = (weights.astype(np.float32) @ item_query[items]).astype(np.float32)
    return out
