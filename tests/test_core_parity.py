"""Parity of the Rust core (``server._core``) with scipy references, plus error messages.

The references use scipy's CSR ``X @ q`` in float32, which sums each row in stored order exactly
as the core does, so scores (and therefore tie order) are expected to match bit for bit; scores
are still compared with a 1e-5 tolerance and the order check is tie-aware.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from server import _core
from server._core import KeywordMatrix

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A few distinct values so that exact ties are common.
WEIGHTS = [0.0, 0.125, 0.25, 0.5, 1.0, 0.3]
# KeywordMatrix.score strategies ("auto" picks one of the other two).
STRATEGIES: tuple[Literal["auto", "rows", "postings"], ...] = ("auto", "rows", "postings")


# ----------------------------------------------------------------------------- helpers


def to_kw(x: sp.csr_matrix) -> KeywordMatrix:
    return KeywordMatrix.from_csr(
        x.indptr.astype(np.int64),
        x.indices.astype(np.int32),
        x.data.astype(np.float32),
        x.shape[1],
    )


def dense_query(n_terms: int, t: NDArray[np.int32], w: NDArray[np.float32]) -> NDArray[np.float32]:
    q = np.zeros(n_terms, dtype=np.float32)
    q[t] = w
    return q


def ref_topk(
    x: sp.csr_matrix, t: NDArray[np.int32], w: NDArray[np.float32], k: int, exclude: list[int]
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    s = np.asarray(x @ dense_query(x.shape[1], t, w), dtype=np.float32)
    ids = np.arange(x.shape[0])
    keep = s > 0
    keep[np.asarray(exclude, dtype=np.int64)] = False
    ids, s = ids[keep], s[keep]
    order = np.lexsort((ids, -s))[:k]
    return ids[order].astype(np.int32), s[order]


def check_topk(
    got: tuple[NDArray[np.int32], NDArray[np.float32]],
    want: tuple[NDArray[np.int32], NDArray[np.float32]],
    all_scores: NDArray[np.float32],
) -> None:
    gi, gs = got
    wi, ws = want
    assert gi.dtype == np.int32 and gs.dtype == np.float32
    assert len(gi) == len(wi)
    np.testing.assert_allclose(gs, ws, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gs, all_scores[gi], rtol=1e-5, atol=1e-7)
    assert len(set(gi.tolist())) == len(gi)
    # sorted by score desc, then id asc among exact ties
    for a in range(len(gi) - 1):
        assert gs[a] >= gs[a + 1]
        if gs[a] == gs[a + 1]:
            assert gi[a] < gi[a + 1]
    # with bit-identical sums the ids match exactly
    np.testing.assert_array_equal(gi, wi)


@st.composite
def matrices(draw: st.DrawFn, max_items: int = 60, max_terms: int = 30) -> sp.csr_matrix:
    n_terms = draw(st.integers(1, max_terms))
    n_items = draw(st.integers(0, max_items))
    rows: list[tuple[list[int], list[float]]] = []
    for r in range(n_items):
        if r > 0 and draw(st.integers(0, 5)) == 0:
            rows.append(rows[draw(st.integers(0, r - 1))])  # duplicate row: exact ties
            continue
        terms = sorted(draw(st.sets(st.integers(0, n_terms - 1), max_size=min(n_terms, 8))))
        vals = [draw(st.sampled_from(WEIGHTS)) for _ in terms]
        rows.append((terms, vals))
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(t) for t, _ in rows]) if rows else []
    indices = np.array([i for t, _ in rows for i in t], dtype=np.int32)
    data = np.array([v for _, d in rows for v in d], dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n_items, n_terms))


@st.composite
def queries(draw: st.DrawFn, n_terms: int) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    t = sorted(draw(st.sets(st.integers(0, n_terms - 1), max_size=n_terms)))
    w = [draw(st.sampled_from([*WEIGHTS, 2.0, 0.7])) for _ in t]
    return np.array(t, dtype=np.int32), np.array(w, dtype=np.float32)


# ----------------------------------------------------------------------------- parity


@SETTINGS
@given(data=st.data())
def test_score_matches_scipy(data: st.DataObject) -> None:
    x = data.draw(matrices())
    m = to_kw(x)
    assert (m.n_items, m.n_terms, m.nnz) == (x.shape[0], x.shape[1], x.nnz)
    t, w = data.draw(queries(x.shape[1]))
    n_cand = data.draw(st.integers(0, 40)) if x.shape[0] else 0
    cands = np.array(
        [data.draw(st.integers(0, x.shape[0] - 1)) for _ in range(n_cand)], dtype=np.int32
    )
    got = m.score(t, w, cands)
    assert got.dtype == np.float32 and got.shape == (n_cand,)
    want = np.asarray(x[cands] @ dense_query(x.shape[1], t, w), dtype=np.float32).reshape(-1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # every strategy: the same sums bit for bit
    for strategy in STRATEGIES:
        np.testing.assert_array_equal(m.score(t, w, cands, strategy=strategy), got)


@SETTINGS
@given(data=st.data())
def test_topk_matches_scipy(data: st.DataObject) -> None:
    x = data.draw(matrices())
    m = to_kw(x)
    t, w = data.draw(queries(x.shape[1]))
    k = data.draw(st.integers(0, 80))  # often larger than the catalogue
    exclude = data.draw(st.lists(st.integers(0, x.shape[0] - 1), max_size=10)) if x.shape[0] else []
    all_scores = np.asarray(x @ dense_query(x.shape[1], t, w), dtype=np.float32)
    got = m.topk(t, w, k, np.array(exclude, dtype=np.int32))
    check_topk(got, ref_topk(x, t, w, k, exclude), all_scores)
    if not exclude:
        check_topk(m.topk(t, w, k), ref_topk(x, t, w, k, []), all_scores)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_topk_batch_matches_topk(data: st.DataObject) -> None:
    x = data.draw(matrices())
    m = to_kw(x)
    n_q = data.draw(st.integers(0, 6))
    qs = [data.draw(queries(x.shape[1])) for _ in range(n_q)]
    exs = [
        data.draw(st.lists(st.integers(0, x.shape[0] - 1), max_size=5)) if x.shape[0] else []
        for _ in range(n_q)
    ]
    k = data.draw(st.integers(0, 20))
    q_indptr = np.cumsum([0] + [len(t) for t, _ in qs]).astype(np.int64)
    q_terms = np.concatenate([t for t, _ in qs] + [np.zeros(0, np.int32)]).astype(np.int32)
    q_weights = np.concatenate([w for _, w in qs] + [np.zeros(0, np.float32)]).astype(np.float32)
    e_indptr = np.cumsum([0] + [len(e) for e in exs]).astype(np.int64)
    e_flat = np.array([i for e in exs for i in e], dtype=np.int32)
    for threads in (0, 1, 2):
        ids, scores = m.topk_batch(
            q_indptr, q_terms, q_weights, k, e_indptr, e_flat, n_threads=threads
        )
        assert ids.shape == (n_q, k) and scores.shape == (n_q, k)
        assert ids.dtype == np.int32 and scores.dtype == np.float32
        for qi, ((t, w), e) in enumerate(zip(qs, exs, strict=True)):
            wi, ws = ref_topk(x, t, w, k, e)
            np.testing.assert_array_equal(ids[qi, : len(wi)], wi)
            np.testing.assert_allclose(scores[qi, : len(wi)], ws, rtol=1e-5, atol=1e-7)
            assert (ids[qi, len(wi) :] == -1).all() and (scores[qi, len(wi) :] == 0).all()
    ids, _ = m.topk_batch(q_indptr, q_terms, q_weights, k)
    for qi, (t, w) in enumerate(qs):
        wi, _ = ref_topk(x, t, w, k, [])
        np.testing.assert_array_equal(ids[qi, : len(wi)], wi)


def ref_profile(
    x: sp.csr_matrix,
    items: NDArray[np.int32],
    weights: NDArray[np.float32],
    ages: NDArray[np.float64],
    half_life: float,
    max_terms: int,
) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
    if len(items) == 0 or max_terms == 0:
        return np.zeros(0, np.int32), np.zeros(0)
    coef = weights.astype(np.float64) * 0.5 ** (ages / half_life)
    total = np.asarray(x[items].astype(np.float64).T @ coef).reshape(-1)
    terms = np.flatnonzero(total > 0)
    order = np.lexsort((terms, -total[terms]))[:max_terms]
    keep = np.sort(terms[order])
    vals = total[keep]
    return keep.astype(np.int32), vals / np.linalg.norm(vals)


@SETTINGS
@given(data=st.data())
def test_build_profile_matches_scipy(data: st.DataObject) -> None:
    x = data.draw(matrices())
    if x.shape[0] == 0:
        return
    m = to_kw(x)
    n = data.draw(st.integers(0, 30))
    items = np.array([data.draw(st.integers(0, x.shape[0] - 1)) for _ in range(n)], np.int32)
    weights = np.array(
        [data.draw(st.sampled_from([1.0, 0.5, 2.0, -1.0, -0.25])) for _ in range(n)], np.float32
    )
    ages = np.array(
        [data.draw(st.sampled_from([0.0, 10.0, 3600.0, 86400.0])) for _ in range(n)], np.float64
    )
    half_life = data.draw(st.sampled_from([60.0, 3600.0, 1e9]))
    max_terms = data.draw(st.integers(0, 12))
    got_t, got_w = m.build_profile(items, weights, ages, half_life, max_terms)
    want_t, want_w = ref_profile(x, items, weights, ages, half_life, max_terms)
    assert got_t.dtype == np.int32 and got_w.dtype == np.float32
    # near-ties between the kept and dropped terms are resolved within float noise: compare
    # where the reference has a clear margin, else only check the contract.
    np.testing.assert_allclose(np.linalg.norm(got_w) if len(got_w) else 1.0, 1.0, rtol=1e-5)
    if len(want_t) == len(got_t) and (got_t == want_t).all():
        np.testing.assert_allclose(got_w, want_w, rtol=1e-5, atol=1e-6)
    else:
        # only allowed when a near-tie sits at the max_terms boundary
        assert len(got_t) == len(want_t)
        np.testing.assert_allclose(np.sort(got_w), np.sort(want_w), rtol=1e-4, atol=1e-6)


def zipf_matrix(n_items: int, n_terms: int, nnz_per_row: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_terms + 1)
    p /= p.sum()
    rows = np.repeat(np.arange(n_items), nnz_per_row)
    cols = rng.choice(n_terms, size=n_items * nnz_per_row, p=p)
    vals = rng.integers(1, 4, size=len(cols)).astype(np.float32)
    x = sp.csr_matrix((vals, (rows, cols)), shape=(n_items, n_terms), dtype=np.float32)
    x.sum_duplicates()
    df = np.bincount(x.indices, minlength=n_terms)
    x.data *= np.log((1 + n_items) / (1 + df[x.indices])).astype(np.float32) + 1
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).reshape(-1))
    x = sp.csr_matrix(sp.diags(1 / np.maximum(norms, 1e-12)) @ x, dtype=np.float32)
    x.sort_indices()
    return x


def test_topk_realistic_zipf_catalogue() -> None:
    """Skewed catalogue over several 16,384-item tiles: exercises the dense path, MaxScore
    pruning with row rescoring, and the sparse path (rare-term queries)."""
    n_items, n_terms = 150_000, 2000
    x = zipf_matrix(n_items, n_terms, 12, seed=5)
    m = to_kw(x)
    rng = np.random.default_rng(9)
    p = 1.0 / np.arange(1, n_terms + 1)
    p /= p.sum()
    for qlen, k in [(1, 10), (5, 100), (50, 10), (200, 100), (200, 1)]:
        t = np.unique(rng.choice(n_terms, size=qlen, p=p)).astype(np.int32)
        w = rng.random(len(t)).astype(np.float32)
        exclude = rng.integers(0, n_items, size=50).astype(np.int32)
        all_scores = np.asarray(x @ dense_query(n_terms, t, w), dtype=np.float32)
        want = ref_topk(x, t, w, k, exclude.tolist())
        check_topk(m.topk(t, w, k, exclude), want, all_scores)
    rare = np.array([n_terms - 1], dtype=np.int32)
    one = np.ones(1, dtype=np.float32)
    all_scores = np.asarray(x @ dense_query(n_terms, rare, one), dtype=np.float32)
    check_topk(m.topk(rare, one, 10), ref_topk(x, rare, one, 10, []), all_scores)


@pytest.mark.parametrize("n_terms", [3000, 70_000])
def test_row_kernels_are_bit_identical_to_scipy(n_terms: int) -> None:
    """Candidate scoring and top-k rescoring walk several rows side by side; rows are read
    from the packed copy (16-bit term ids, ``n_terms <= 65,536``) or from the CSR arrays
    (larger vocabularies). Either way each row is summed in stored order, like scipy."""
    n_items = 40_000
    x = zipf_matrix(n_items, n_terms, 20, seed=11)
    # rows of very different lengths, empty rows and exact duplicates
    x = sp.vstack([x, sp.csr_matrix((3, n_terms), dtype=np.float32), x[:500]]).tocsr()
    x = sp.csr_matrix(x, dtype=np.float32)
    m = to_kw(x)
    rng = np.random.default_rng(3)
    p = 1.0 / np.arange(1, n_terms + 1)
    p /= p.sum()
    t = np.unique(rng.choice(n_terms, size=300, p=p)).astype(np.int32)
    w = rng.random(len(t)).astype(np.float32)
    q = dense_query(n_terms, t, w)
    # a long query (the rows strategy when automatic) and short ones (postings, for the large
    # vocabulary): each strategy bit-identical to scipy
    short = [(t[:k], w[:k]) for k in (1, 5)] + [(t[-3:], w[-3:])]
    for qt, qw in [(t, w), *short]:
        qd = dense_query(n_terms, qt, qw)
        for n_cand in (0, 1, 3, 4, 5, 37, 1000, 5000):
            c = rng.integers(0, x.shape[0], size=n_cand).astype(np.int32)
            want = np.asarray(x[c] @ qd, dtype=np.float32)
            for strategy in STRATEGIES:
                np.testing.assert_array_equal(m.score(qt, qw, c, strategy=strategy), want)
    all_scores = np.asarray(x @ q, dtype=np.float32)
    for k in (1, 10, 100):
        want = ref_topk(x, t, w, k, [5, 17])
        got = m.topk(t, w, k, np.array([5, 17], dtype=np.int32))
        check_topk(got, want, all_scores)
        np.testing.assert_array_equal(got[1], want[1])


def test_noncontiguous_inputs_are_accepted() -> None:
    x = zipf_matrix(200, 50, 5, seed=1)
    m = to_kw(x)
    t = np.arange(0, 40, dtype=np.int32)[::2]
    w = np.ones(40, dtype=np.float32)[::2]
    c = np.arange(200, dtype=np.int32)[::-3]
    want = np.asarray(x[c] @ dense_query(50, t, w), dtype=np.float32)
    np.testing.assert_allclose(m.score(t, w, c), want, rtol=1e-5)


def test_concurrent_threads_agree() -> None:
    x = zipf_matrix(5000, 500, 10, seed=2)
    m = to_kw(x)
    t = np.arange(0, 500, 7, dtype=np.int32)
    w = np.linspace(0.1, 1, len(t)).astype(np.float32)
    want = m.topk(t, w, 50)
    results: list[tuple[NDArray[np.int32], NDArray[np.float32]]] = []

    def work() -> None:
        for _ in range(20):
            results.append(m.topk(t, w, 50))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results) == 80
    for ids, scores in results:
        np.testing.assert_array_equal(ids, want[0])
        np.testing.assert_array_equal(scores, want[1])


# ----------------------------------------------------------------------------- gather_dot


def check_gather(m: NDArray[np.float32], rows: NDArray[np.int32], q: NDArray[np.float32]) -> None:
    """`gather_dot` against numpy's `m[rows] @ q` (BLAS) and an exact float64 product.

    The kernel sums each row in 8 partial sums, BLAS in its own order: neither is the exact
    sum. Each is within `dim * eps * sum_i |m[r, i] * q[i]|` of the exact dot product (the
    standard bound for float32 summation), so they differ by at most twice that.
    """
    got = _core.gather_dot(m, rows, q)
    assert got.dtype == np.float32 and got.shape == rows.shape
    if rows.size == 0:
        return
    sub = np.asarray(m[rows], dtype=np.float64)
    exact = sub @ q.astype(np.float64)
    bound = m.shape[1] * np.finfo(np.float32).eps * (np.abs(sub) @ np.abs(q.astype(np.float64)))
    assert np.all(np.abs(got - exact) <= bound + 1e-30)
    blas = m[rows] @ q
    assert np.all(np.abs(got - blas) <= 2 * bound + 1e-30)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_gather_dot_matches_numpy(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 50))
    dim = data.draw(st.sampled_from([1, 3, 7, 8, 9, 16, 33, 64, 100]))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # cancellation-heavy values: mixed signs and magnitudes
    m = (rng.standard_normal((n, dim)) * 10.0 ** rng.integers(-3, 3, (n, dim))).astype(np.float32)
    q = rng.standard_normal(dim).astype(np.float32)
    rows = rng.integers(0, n, data.draw(st.integers(0, 80))).astype(np.int32)
    check_gather(m, rows, q)


def test_gather_dot_on_a_mapped_matrix(tmp_path: Any) -> None:
    rng = np.random.default_rng(5)
    m = rng.standard_normal((20_000, 64)).astype(np.float32)
    np.save(tmp_path / "emb.npy", m)
    mapped = np.load(tmp_path / "emb.npy", mmap_mode="r")
    q = rng.standard_normal(64).astype(np.float32)
    rows = rng.integers(0, 20_000, 700).astype(np.int32)
    check_gather(np.asarray(mapped), rows, q)
    check_gather(mapped, rows, q)  # the np.memmap subclass itself
    np.testing.assert_array_equal(_core.gather_dot(mapped, rows, q), _core.gather_dot(m, rows, q))


def test_gather_dot_errors() -> None:
    m = np.ones((4, 3), np.float32)
    r, q = np.array([0], np.int32), np.ones(3, np.float32)
    with pytest.raises(TypeError, match="matrix must be a 2-D numpy array of dtype float32"):
        _core.gather_dot(m.astype(np.float64), r, q)
    with pytest.raises(TypeError, match="matrix must be a 2-D"):
        _core.gather_dot(m.ravel(), r, q)
    with pytest.raises(ValueError, match="matrix must be C-contiguous"):
        _core.gather_dot(np.asfortranarray(np.ones((4, 3), np.float32)), r, q)
    with pytest.raises(ValueError, match=r"rows must be in \[0, n_rows=4\): position 1 has 4"):
        _core.gather_dot(m, np.array([0, 4], np.int32), q)
    with pytest.raises(ValueError, match="the vector has 2 elements, the matrix rows 3"):
        _core.gather_dot(m, r, q[:2])
    with pytest.raises(TypeError, match="rows must be a 1-D numpy array of dtype int32"):
        _core.gather_dot(m, r.astype(np.int64), q)
    assert _core.gather_dot(m, np.zeros(0, np.int32), q).shape == (0,)


# ----------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def km() -> KeywordMatrix:
    return to_kw(zipf_matrix(10, 6, 3, seed=3))


I32 = np.int32
F32 = np.float32


def arr(v: Sequence[float], dt: type) -> NDArray[Any]:
    return np.array(v, dtype=dt)


@pytest.mark.parametrize(
    ("indptr", "indices", "data", "n_terms", "match"),
    [
        ([1, 2], [0], [1.0], 3, "indptr must start at 0, got 1"),
        ([0, 2, 1], [0, 1], [1.0, 1.0], 3, "indptr must be non-decreasing: position 2 has 1"),
        ([0, 2], [0], [1.0], 3, r"indptr\[-1\] must equal nnz"),
        ([], [], [], 3, "indptr must have at least one element"),
        ([0, 1], [0], [1.0, 2.0], 3, "indices and data must have the same length: 1 vs 2"),
        ([0, 2], [1, 1], [1.0, 1.0], 3, "strictly increasing within each row: row 0, position 1"),
        ([0, 2], [2, 1], [1.0, 1.0], 3, "has 1 after 2"),
        ([0, 1], [3], [1.0], 3, r"indices must be in \[0, n_terms=3\): position 0 has 3"),
        ([0, 1], [-1], [1.0], 3, "position 0 has -1"),
        ([0, 1], [0], [float("nan")], 3, "data must be finite and >= 0: position 0 has NaN"),
        ([0, 1], [0], [-0.5], 3, "data must be finite and >= 0: position 0 has -0.5"),
        ([0, 1], [0], [float("inf")], 3, "data must be finite"),
        ([0, 1], [0], [1.0], -1, "n_terms must be >= 0, got -1"),
    ],
)
def test_from_csr_errors(
    indptr: list[int], indices: list[int], data: list[float], n_terms: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        KeywordMatrix.from_csr(arr(indptr, np.int64), arr(indices, I32), arr(data, F32), n_terms)


def test_wrong_dtypes_raise_type_error(km: KeywordMatrix) -> None:
    with pytest.raises(
        TypeError,
        match="indptr must be a 1-D numpy array of dtype int64, got a 1-D array of dtype int32",
    ):
        KeywordMatrix.from_csr(arr([0], I32), arr([], I32), arr([], F32), 1)
    with pytest.raises(
        TypeError,
        match="q_weights must be a 1-D numpy array of dtype float32, got a 1-D array of dtype "
        "float64",
    ):
        km.score(arr([0], I32), np.array([1.0]), arr([0], I32))
    with pytest.raises(TypeError, match=r"candidates must be .* got list"):
        km.score(arr([0], I32), arr([1.0], F32), [0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got a 2-D array"):
        km.topk(np.zeros((1, 1), I32), arr([1.0], F32), 3)
    with pytest.raises(TypeError, match="ages_s must be a 1-D numpy array of dtype float64"):
        km.build_profile(arr([0], I32), arr([1.0], F32), arr([0.0], F32), 10.0, 5)


@pytest.mark.parametrize(
    ("t", "w", "match"),
    [
        (
            [1, 3, 3],
            [1.0, 1.0, 1.0],
            "q_terms must be strictly increasing: position 2 has 3 after 3",
        ),
        ([3, 1], [1.0, 1.0], "q_terms must be strictly increasing: position 1 has 1 after 3"),
        ([6], [1.0], r"q_terms must be in \[0, n_terms=6\): position 0 has 6"),
        ([-1], [1.0], r"q_terms must be in \[0, n_terms=6\): position 0 has -1"),
        ([1], [float("nan")], "q_weights must be finite and >= 0: position 0 has NaN"),
        ([1, 2], [1.0, -1.0], "q_weights must be finite and >= 0: position 1 has -1"),
        ([1, 2], [1.0], "q_terms and q_weights must have the same length: 2 vs 1"),
    ],
)
def test_bad_query_errors(km: KeywordMatrix, t: list[int], w: list[float], match: str) -> None:
    ti, wf = arr(t, I32), arr(w, F32)
    with pytest.raises(ValueError, match=match):
        km.score(ti, wf, arr([0], I32))
    with pytest.raises(ValueError, match=match):
        km.topk(ti, wf, 3)
    # lengths are checked for the whole batch, everything else per query
    prefix = "" if "same length" in match else "query 0: "
    with pytest.raises(ValueError, match=prefix + match):
        km.topk_batch(arr([0, len(t)], np.int64), ti, wf, 3)


def test_other_errors(km: KeywordMatrix) -> None:
    t, w = arr([1], I32), arr([1.0], F32)
    with pytest.raises(ValueError, match="strategy must be 'auto', 'rows' or 'postings'"):
        km.score(t, w, arr([0], I32), strategy="dense")  # type: ignore[arg-type]
    for strategy in STRATEGIES:
        with pytest.raises(ValueError, match=r"candidates must be in \[0, n_items=10\)"):
            km.score(t, w, arr([0, 10], I32), strategy=strategy)
    with pytest.raises(
        ValueError, match=r"candidates must be in \[0, n_items=10\): position 1 has 10"
    ):
        km.score(t, w, arr([0, 10], I32))
    with pytest.raises(ValueError, match="k must be >= 0, got -1"):
        km.topk(t, w, -1)
    with pytest.raises(ValueError, match=r"exclude must be in \[0, n_items=10\)"):
        km.topk(t, w, 3, arr([-1], I32))
    with pytest.raises(ValueError, match="k must be >= 0"):
        km.topk_batch(arr([0, 1], np.int64), t, w, -5)
    with pytest.raises(ValueError, match="n_threads must be >= 0"):
        km.topk_batch(arr([0, 1], np.int64), t, w, 5, n_threads=-1)
    with pytest.raises(ValueError, match="n_threads must be in"):
        km.topk_batch(arr([0, 1], np.int64), t, w, 5, n_threads=10**6)
    with pytest.raises(ValueError, match=r"q_indptr\[-1\] must equal len\(q_terms\) = 1, got 2"):
        km.topk_batch(arr([0, 2], np.int64), t, w, 5)
    with pytest.raises(ValueError, match="q_indptr must start at 0"):
        km.topk_batch(arr([1, 1], np.int64), t, w, 5)
    with pytest.raises(ValueError, match="exclude_indptr and exclude must be given together"):
        km.topk_batch(arr([0, 1], np.int64), t, w, 5, exclude=arr([1], I32))
    with pytest.raises(ValueError, match="exclude_indptr must have n_queries \\+ 1 = 2 elements"):
        km.topk_batch(arr([0, 1], np.int64), t, w, 5, arr([0], np.int64), arr([], I32))
    with pytest.raises(ValueError, match=r"exclude_indptr\[-1\] must equal len\(exclude\)"):
        km.topk_batch(arr([0, 1], np.int64), t, w, 5, arr([0, 2], np.int64), arr([1], I32))
    with pytest.raises(ValueError, match=r"exclude must be in \[0, n_items=10\)"):
        km.topk_batch(arr([0, 1], np.int64), t, w, 5, arr([0, 1], np.int64), arr([10], I32))


def test_profile_errors(km: KeywordMatrix) -> None:
    i, w, a = arr([0, 1], I32), arr([1.0, -1.0], F32), arr([0.0, 5.0], np.float64)
    cases: list[tuple[tuple[object, ...], str]] = [
        ((arr([0], I32), w, a, 10.0, 5), "items, weights and ages_s must have the same length"),
        ((arr([0, 10], I32), w, a, 10.0, 5), r"items must be in \[0, n_items=10\): position 1"),
        ((i, arr([1.0, np.nan], F32), a, 10.0, 5), "weights must be finite: position 1 has NaN"),
        (
            (i, w, arr([0.0, -1.0], np.float64), 10.0, 5),
            "ages_s must be finite and >= 0: position 1",
        ),
        ((i, w, arr([np.inf, 1.0], np.float64), 10.0, 5), "ages_s must be finite"),
        ((i, w, a, 0.0, 5), "half_life_s must be finite and > 0, got 0"),
        ((i, w, a, float("nan"), 5), "half_life_s must be finite and > 0"),
        ((i, w, a, 10.0, -1), "max_terms must be >= 0, got -1"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            km.build_profile(*args)  # type: ignore[arg-type]


def test_empty_inputs(km: KeywordMatrix) -> None:
    e_i, e_f = arr([], I32), arr([], F32)
    assert km.score(e_i, e_f, e_i).shape == (0,)
    ids, scores = km.topk(e_i, e_f, 10)
    assert ids.shape == (0,) and scores.shape == (0,)
    ids, scores = km.topk_batch(arr([0], np.int64), e_i, e_f, 4)
    assert ids.shape == (0, 4)
    ids, scores = km.topk_batch(arr([0, 0, 0], np.int64), e_i, e_f, 0)
    assert ids.shape == (2, 0)
    t, w = km.build_profile(e_i, e_f, arr([], np.float64), 10.0, 5)
    assert t.shape == (0,) and w.shape == (0,)
    empty = KeywordMatrix.from_csr(arr([0], np.int64), e_i, e_f, 0)
    assert (empty.n_items, empty.n_terms, empty.nnz) == (0, 0, 0)
    assert empty.topk(e_i, e_f, 3)[0].shape == (0,)
