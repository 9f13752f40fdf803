"""``KeywordMatrix.open`` (memory-mapped .npy files) against ``from_csr`` on the same data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.typing import NDArray

from server._core import KeywordMatrix

FILES = [
    "kw_indptr.npy",
    "kw_indices.npy",
    "kw_data.npy",
    "kw_post_indptr.npy",
    "kw_post_items.npy",
    "kw_post_weights.npy",
]


def make_matrix(seed: int = 0, n_items: int = 3000, n_terms: int = 400) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_terms + 1)
    p /= p.sum()
    rows = np.repeat(np.arange(n_items), 8)
    cols = rng.choice(n_terms, size=len(rows), p=p)
    x = sp.csr_matrix(
        (rng.random(len(rows)).astype(np.float32), (rows, cols)),
        shape=(n_items, n_terms),
        dtype=np.float32,
    )
    x.sum_duplicates()
    x.data[x.indptr[5] : x.indptr[6]] = 0  # an empty row
    x.eliminate_zeros()
    x.sort_indices()
    return x


def write_index(x: sp.csr_matrix, d: Path, version: tuple[int, int] | None = None) -> None:
    """Writes the six files the way the Python index build does (postings via ``tocsc``)."""
    c = x.tocsc()
    c.sort_indices()
    arrays = {
        "kw_indptr.npy": x.indptr.astype(np.int64),
        "kw_indices.npy": x.indices.astype(np.int32),
        "kw_data.npy": x.data.astype(np.float32),
        "kw_post_indptr.npy": c.indptr.astype(np.int64),
        "kw_post_items.npy": c.indices.astype(np.int32),
        "kw_post_weights.npy": c.data.astype(np.float32),
    }
    for name, a in arrays.items():
        if version is None:
            np.save(d / name, a)
        else:
            with open(d / name, "wb") as f:
                np.lib.format.write_array(f, a, version=version)


def from_csr(x: sp.csr_matrix) -> KeywordMatrix:
    return KeywordMatrix.from_csr(
        x.indptr.astype(np.int64), x.indices.astype(np.int32), x.data.astype(np.float32), x.shape[1]
    )


@pytest.fixture(scope="module")
def matrix() -> sp.csr_matrix:
    return make_matrix()


@pytest.mark.parametrize("version", [None, (1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("validate", [False, True])
def test_open_matches_from_csr(
    matrix: sp.csr_matrix, tmp_path: Path, version: tuple[int, int] | None, validate: bool
) -> None:
    write_index(matrix, tmp_path, version)
    a = KeywordMatrix.open(str(tmp_path), validate=validate)
    b = from_csr(matrix)
    assert (a.n_items, a.n_terms, a.nnz) == (b.n_items, b.n_terms, b.nnz)
    assert "mapped=true" in repr(a)
    rng = np.random.default_rng(1)
    for _ in range(5):
        t = np.unique(rng.integers(0, matrix.shape[1], size=30)).astype(np.int32)
        w = rng.random(len(t)).astype(np.float32)
        c = rng.integers(0, matrix.shape[0], size=200).astype(np.int32)
        np.testing.assert_array_equal(a.score(t, w, c), b.score(t, w, c))
        ex = rng.integers(0, matrix.shape[0], size=20).astype(np.int32)
        for k in (1, 10, 100):
            ga, gb = a.topk(t, w, k, ex), b.topk(t, w, k, ex)
            np.testing.assert_array_equal(ga[0], gb[0])
            np.testing.assert_array_equal(ga[1], gb[1])
        items = rng.integers(0, matrix.shape[0], size=50).astype(np.int32)
        ww = rng.standard_normal(50).astype(np.float32)
        ages = rng.random(50) * 1e5
        pa = a.build_profile(items, ww, ages, 3600.0, 40)
        pb = b.build_profile(items, ww, ages, 3600.0, 40)
        np.testing.assert_array_equal(pa[0], pb[0])
        np.testing.assert_array_equal(pa[1], pb[1])
    q_indptr = np.array([0, 3, 3, 5], dtype=np.int64)
    qt = np.array([1, 2, 7, 0, 399], dtype=np.int32)
    qw = np.ones(5, dtype=np.float32)
    ba, bb = a.topk_batch(q_indptr, qt, qw, 7), b.topk_batch(q_indptr, qt, qw, 7)
    np.testing.assert_array_equal(ba[0], bb[0])


def test_open_accepts_pathlike(matrix: sp.csr_matrix, tmp_path: Path) -> None:
    write_index(matrix, tmp_path)
    assert KeywordMatrix.open(tmp_path).n_items == matrix.shape[0]


def test_write_postings_matches_scipy(matrix: sp.csr_matrix, tmp_path: Path) -> None:
    write_index(matrix, tmp_path)
    want = {n: np.load(tmp_path / n) for n in FILES[3:]}
    for n in FILES[3:]:
        (tmp_path / n).unlink()
    KeywordMatrix.write_postings(str(tmp_path))
    for n in FILES[3:]:
        got = np.load(tmp_path / n)
        assert got.dtype == want[n].dtype
        # n_terms is inferred from the largest term id present
        np.testing.assert_array_equal(got, want[n][: len(got)])


def test_missing_file_is_oserror(matrix: sp.csr_matrix, tmp_path: Path) -> None:
    write_index(matrix, tmp_path)
    (tmp_path / "kw_post_items.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"kw_post_items\.npy"):
        KeywordMatrix.open(str(tmp_path))


def corrupt_cases(x: sp.csr_matrix) -> list[tuple[str, NDArray[Any] | bytes, str]]:
    nnz = x.nnz
    bad_post = x.tocsc()
    items = bad_post.indices.astype(np.int32).copy()
    items[3] = x.shape[0]  # item id out of range
    shuffled = bad_post.indices.astype(np.int32).copy()
    shuffled[[0, 1]] = shuffled[[1, 0]]
    return [
        ("kw_data.npy", np.zeros(nnz, dtype=np.float64), "dtype is <f8, expected <f4"),
        ("kw_indices.npy", np.zeros(nnz, dtype=np.int64), "dtype is <i8, expected <i4"),
        ("kw_indptr.npy", np.zeros((2, 2), dtype=np.int64), "expected a 1-D array"),
        ("kw_data.npy", np.zeros(nnz - 1, dtype=np.float32), "elements but kw_indices.npy has"),
        ("kw_post_weights.npy", np.zeros(nnz + 1, dtype=np.float32), "elements but"),
        ("kw_indptr.npy", x.indptr[:-1].astype(np.int64), "offsets must run from 0 to nnz"),
        ("kw_post_items.npy", items, r"item ids must be in \[0, n_items=3000\)"),
        ("kw_post_weights.npy", np.full(nnz, np.nan, dtype=np.float32), "must be finite"),
        ("kw_post_indptr.npy", np.zeros(1, dtype=np.int64), "offsets must run from 0 to nnz"),
        ("kw_data.npy", b"not an npy file at all", "magic"),
    ]


@pytest.mark.parametrize("case", range(10))
def test_corrupt_file_names_the_file(matrix: sp.csr_matrix, tmp_path: Path, case: int) -> None:
    write_index(matrix, tmp_path)
    name, payload, match = corrupt_cases(matrix)[case]
    if isinstance(payload, bytes):
        (tmp_path / name).write_bytes(payload)
    else:
        np.save(tmp_path / name, payload)
    with pytest.raises(ValueError, match=match) as info:
        KeywordMatrix.open(str(tmp_path))
    assert name in str(info.value)


def test_truncated_file(matrix: sp.csr_matrix, tmp_path: Path) -> None:
    write_index(matrix, tmp_path)
    p = tmp_path / "kw_post_weights.npy"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"kw_post_weights\.npy: file is truncated"):
        KeywordMatrix.open(str(tmp_path))


def test_validate_catches_inconsistent_postings(matrix: sp.csr_matrix, tmp_path: Path) -> None:
    write_index(matrix, tmp_path)
    # unsorted posting list: the cheap checks already refuse it (the tiled top-k needs order)
    post = np.load(tmp_path / "kw_post_items.npy")
    ip = np.load(tmp_path / "kw_post_indptr.npy")
    t = int(np.argmax(np.diff(ip)))
    a = int(ip[t])
    post[[a, a + 1]] = post[[a + 1, a]]
    np.save(tmp_path / "kw_post_items.npy", post)
    with pytest.raises(ValueError, match=r"kw_post_items\.npy.*strictly increasing"):
        KeywordMatrix.open(str(tmp_path))
    # a posting weight that disagrees with the CSR value: only validate=True compares them
    write_index(matrix, tmp_path)
    pw = np.load(tmp_path / "kw_post_weights.npy")
    pw[0] += 0.5
    np.save(tmp_path / "kw_post_weights.npy", pw)
    KeywordMatrix.open(str(tmp_path))  # cheap checks pass
    with pytest.raises(ValueError, match=r"kw_post_weights\.npy: posting weights differ"):
        KeywordMatrix.open(str(tmp_path), validate=True)
    # term ids unsorted within a row
    write_index(matrix, tmp_path)
    ind = np.load(tmp_path / "kw_indices.npy")
    ind[[0, 1]] = ind[[1, 0]]
    np.save(tmp_path / "kw_indices.npy", ind)
    with pytest.raises(ValueError, match=r"kw_indices\.npy.*strictly increasing"):
        KeywordMatrix.open(str(tmp_path), validate=True)


# ----------------------------------------------------------------------------- derived files

DERIVED = ["kw_tile14_seg.npy", "kw_tile14_max.npy", "kw_tile14_lo.npy"]
PACKED = ["kw_packed_start.npy", "kw_packed_words.npy"]


@pytest.fixture(scope="module")
def multi_tile() -> sp.csr_matrix:
    """More items than one 16,384-item tile, so the tile boundaries are exercised."""
    return make_matrix(seed=3, n_items=40_000, n_terms=500)


def assert_same_results(a: KeywordMatrix, b: KeywordMatrix, x: sp.csr_matrix) -> None:
    rng = np.random.default_rng(5)
    for _ in range(5):
        t = np.unique(rng.integers(0, x.shape[1], size=60)).astype(np.int32)
        w = rng.random(len(t)).astype(np.float32)
        c = rng.integers(0, x.shape[0], size=500).astype(np.int32)
        np.testing.assert_array_equal(a.score(t, w, c), b.score(t, w, c))
        for k in (1, 10, 200):
            ga, gb = a.topk(t, w, k), b.topk(t, w, k)
            np.testing.assert_array_equal(ga[0], gb[0])
            np.testing.assert_array_equal(ga[1], gb[1])


@pytest.mark.parametrize("validate", [False, True])
def test_derived_files_are_mapped_and_score_identically(
    multi_tile: sp.csr_matrix, tmp_path: Path, validate: bool
) -> None:
    write_index(multi_tile, tmp_path)
    built_here = KeywordMatrix.open(tmp_path, validate=validate)
    assert not built_here.derived_mapped
    KeywordMatrix.write_derived(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
    dtypes = {n: np.load(tmp_path / n, mmap_mode="r").dtype for n in DERIVED + PACKED}
    assert dtypes == {
        "kw_tile14_seg.npy": np.uint32,
        "kw_tile14_max.npy": np.float32,
        "kw_tile14_lo.npy": np.uint16,
        "kw_packed_start.npy": np.uint32,
        "kw_packed_words.npy": np.uint32,
    }
    mapped = KeywordMatrix.open(tmp_path, validate=validate)
    assert mapped.derived_mapped
    assert "derived_mapped=true" in repr(mapped)
    assert_same_results(mapped, built_here, multi_tile)
    assert_same_results(mapped, from_csr(multi_tile), multi_tile)
    # writing again replaces the files with identical ones
    before = {n: (tmp_path / n).read_bytes() for n in DERIVED + PACKED}
    KeywordMatrix.write_derived(str(tmp_path))
    assert before == {n: (tmp_path / n).read_bytes() for n in DERIVED + PACKED}


def test_derived_files_without_packed_rows(tmp_path: Path) -> None:
    # > 65,536 terms: no packed rows, only the tiled postings are written and mapped
    x = make_matrix(seed=4, n_items=2000, n_terms=70_000)
    write_index(x, tmp_path)
    KeywordMatrix.write_derived(tmp_path)
    assert all((tmp_path / n).exists() for n in DERIVED)
    assert not any((tmp_path / n).exists() for n in PACKED)
    m = KeywordMatrix.open(tmp_path)
    assert m.derived_mapped
    assert_same_results(m, from_csr(x), x)


def derived_corruptions(d: Path) -> list[tuple[str, NDArray[Any], str]]:
    words = np.load(d / "kw_packed_words.npy")
    flipped = words.copy()
    flipped[len(words) // 2] ^= 1
    lo = np.load(d / "kw_tile14_lo.npy")
    bad_lo = lo.copy()
    bad_lo[7] ^= 1
    seg = np.load(d / "kw_tile14_seg.npy")
    bad_seg = seg.copy()
    bad_seg[1] += 1
    bmax = np.load(d / "kw_tile14_max.npy")
    bad_max = bmax.copy()
    bad_max[np.flatnonzero(bmax)[0]] *= 2
    start = np.load(d / "kw_packed_start.npy")
    return [
        ("kw_packed_words.npy", flipped, "differ from the CSR rows"),
        ("kw_packed_words.npy", words[:-1], "number of words"),
        ("kw_packed_start.npy", start[:-1], "offsets for 40000 rows"),
        ("kw_tile14_lo.npy", bad_lo, "posting 7 differs"),
        ("kw_tile14_lo.npy", lo.astype(np.int32), "dtype is <i4, expected <u2"),
        ("kw_tile14_seg.npy", bad_seg, "boundary differs"),
        ("kw_tile14_max.npy", bad_max, "maximum differs"),
        ("kw_tile14_max.npy", bmax[:-1], "elements, expected"),
    ]


@pytest.mark.parametrize("case", range(8))
def test_corrupt_derived_file_names_the_file(
    multi_tile: sp.csr_matrix, tmp_path: Path, case: int
) -> None:
    write_index(multi_tile, tmp_path)
    KeywordMatrix.write_derived(tmp_path)
    name, payload, match = derived_corruptions(tmp_path)[case]
    np.save(tmp_path / name, payload)
    with pytest.raises(ValueError, match=match) as info:
        KeywordMatrix.open(tmp_path)
    assert name in str(info.value)
    assert "does not match" in str(info.value) or "dtype" in str(info.value)


@pytest.mark.parametrize("missing", DERIVED + PACKED)
def test_incomplete_derived_files_are_an_error(
    matrix: sp.csr_matrix, tmp_path: Path, missing: str
) -> None:
    write_index(matrix, tmp_path)
    KeywordMatrix.write_derived(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(ValueError, match="incomplete") as info:
        KeywordMatrix.open(tmp_path)
    assert missing in str(info.value) or "kw_tile14_seg.npy" in str(info.value)
    # with none of them, the structures are built in memory again
    for n in DERIVED + PACKED:
        (tmp_path / n).unlink(missing_ok=True)
    m = KeywordMatrix.open(tmp_path)
    assert not m.derived_mapped
    assert_same_results(m, from_csr(matrix), matrix)
