"""Collaborative item and user embeddings from the implicit-feedback matrix (truncated SVD).

With A ≈ U S Vᵀ we store users as U·S^½ and items as V·S^½, so their inner product is the
rank-k reconstruction of A. A user known only by a few events is folded in as
r·V·S^-½ = Σ r_i · item_i / S, which needs nothing beyond the stored item vectors and S.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray


@dataclass(frozen=True)
class Embeddings:
    users: NDArray[np.float32]
    items: NDArray[np.float32]
    singular_values: NDArray[np.float32]


def _orthonormalize(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Orthonormal basis of a tall matrix's columns by CholeskyQR2.

    Two rounds of Gram/Cholesky are as accurate as Householder QR for the well-conditioned
    blocks a randomized SVD produces, and they run as matrix products (several times faster
    than LAPACK's tall-skinny QR here). Falls back to QR if the Gram matrix is singular.
    """
    try:
        for _ in range(2):
            g = x.T @ x
            chol = np.linalg.cholesky(g + 1e-12 * np.trace(g) * np.eye(g.shape[0]))
            x = np.asarray(np.linalg.solve(chol, x.T).T, dtype=np.float64)
        return x
    except np.linalg.LinAlgError:
        q, _ = np.linalg.qr(x)
        return q


def randomized_svd(
    matrix: sp.csr_matrix, k: int, *, oversample: int = 10, power_iters: int = 4, seed: int = 0
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Halko-Martinsson-Tropp randomized SVD: a few sparse mat-mats, no ARPACK restarts.

    Power iterations (with re-orthonormalisation) sharpen the spectrum so the top `k` factors
    come out accurate even when singular values decay slowly, as they do for click matrices.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = matrix.shape
    a = matrix.astype(np.float64)
    at = a.T.tocsr()
    width = min(k + oversample, n_users, n_items)
    q = _orthonormalize(a @ rng.standard_normal((n_items, width)))
    for _ in range(power_iters):
        z = _orthonormalize(at @ q)
        q = _orthonormalize(a @ z)
    b = (at @ q).T  # width x n_items
    ub, s, vt = np.linalg.svd(b, full_matrices=False)
    u = q @ ub
    return u[:, :k], s[:k], vt[:k]


def fit_svd(matrix: sp.csr_matrix, dim: int, seed: int = 0) -> Embeddings:
    """Truncated SVD of a users × items matrix into `dim` factors (fewer if the matrix is tiny)."""
    n_users, n_items = matrix.shape
    k = max(1, min(dim, n_users, n_items))
    u, s, vt = randomized_svd(matrix, k, seed=seed)
    # SVD signs are arbitrary; fix them so the same input gives the same snapshot.
    signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1
    u, vt = u * signs, vt * signs[:, None]
    root = np.sqrt(np.maximum(s, 1e-12))
    return Embeddings(
        users=(u * root).astype(np.float32),
        items=(vt.T * root).astype(np.float32),
        singular_values=s.astype(np.float32),
    )


def fold_in(
    item_vectors: NDArray[np.float32],
    singular_values: NDArray[np.float32],
    items: NDArray[np.int64],
    weights: NDArray[np.float32],
) -> NDArray[np.float32]:
    """User vector for a sparse row of interactions (item indices and weights), see module doc."""
    if items.size == 0:
        return np.zeros(item_vectors.shape[1], np.float32)
    acc = weights.astype(np.float32) @ item_vectors[items]
    out: NDArray[np.float32] = (acc / np.maximum(singular_values, 1e-6)).astype(np.float32)
    return out
