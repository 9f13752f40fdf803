"""FAISS retrieval against exact search (numpy), for the flat and the IVF index."""

from __future__ import annotations

import numpy as np
import pytest

from server.index import ann


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((40, 32))
    x = centers[rng.integers(0, 40, 20_000)] + 0.3 * rng.standard_normal((20_000, 32))
    return x.astype(np.float32)


def test_flat_index_is_exact(vectors: np.ndarray) -> None:
    idx = ann.build_ann(vectors, exact_threshold=100_000)
    assert idx.factory == "Flat"
    q = vectors[:25] + 0.01
    _, ids = idx.index.search(q, 50)
    exact = np.argsort(-(q @ vectors.T), axis=1, kind="stable")[:, :50]
    sims = q @ vectors.T
    for r in range(25):
        # Equal as sets of scores (ties may swap ids).
        assert np.allclose(np.sort(sims[r, ids[r]]), np.sort(sims[r, exact[r]]), atol=1e-4)
    assert ann.recall_at_k(idx.index, vectors, q, 50) == pytest.approx(1.0)


def test_ivf_index_recall_is_measured_honestly(vectors: np.ndarray) -> None:
    idx = ann.build_ann(vectors, exact_threshold=1000)
    assert idx.factory.startswith("IVF")
    q = vectors[100:150] + 0.05
    r = ann.recall_at_k(idx.index, vectors, q, 100)
    assert 0.9 <= r <= 1.0
    # With one probe the same index must do measurably worse: the measure is not a constant.
    ann_ivf = __import__("faiss").extract_index_ivf(idx.index)
    ann_ivf.nprobe = 1
    assert ann.recall_at_k(idx.index, vectors, q, 100) < r
