"""Benchmark of the Rust core (``server._core``) against scipy and sparse_dot_topn.

Run: ``.venv/bin/python bench/bench_core.py`` (``make bench-core``). Writes
``bench/results/core.json`` and prints a Markdown table for BENCHMARKS.md.

Data: 1,000,000 items over a 50,000-term vocabulary with Zipf(1) term frequencies, ~24 distinct
terms per item, TF-IDF weights, rows L2-normalised (float32). Queries: 200 distinct terms drawn
from the same Zipf distribution, TF-IDF weighted and normalised (like a user profile).

The ranking kernels (``--only kernels`` runs just these, without the keyword catalogue): the
retrieval merge (``merge_sources``) against the numpy merge it replaced, the embedding
gather-dot (``gather_dot``) against ``M[rows] @ q`` on a 1,000,000 x 64 float32 matrix, and
ItemKNN scoring of a short history (1,000,000 items x 1,000,000 neighbour "terms", 28
neighbours per item) against scipy and against the rows strategy it replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server import _core  # noqa: E402
from server._core import KeywordMatrix  # noqa: E402
from tests.retrieval_reference import reference_merge  # noqa: E402

try:
    import sparse_dot_topn
    from sparse_dot_topn import sp_matmul_topn
except ImportError:  # pragma: no cover - optional bench dependency
    sparse_dot_topn = None
    sp_matmul_topn = None

K = 100


# ----------------------------------------------------------------------------- data


def zipf_p(n_terms: int, s: float = 1.0) -> NDArray[np.float64]:
    p = 1.0 / np.arange(1, n_terms + 1, dtype=np.float64) ** s
    out: NDArray[np.float64] = np.asarray(p / p.sum(), dtype=np.float64)
    return out


def draws_for_unique(p: NDArray[np.float64], target: float) -> int:
    """Smallest number of i.i.d. draws whose expected count of distinct terms reaches target."""
    m = int(target)
    while (1 - (1 - p) ** m).sum() < target:
        m += 1
    return m


def build_catalogue(
    n_items: int, n_terms: int, nnz_per_item: float, seed: int
) -> tuple[sp.csr_matrix, NDArray[np.float64], NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    p = zipf_p(n_terms)
    cdf = np.cumsum(p)
    m = draws_for_unique(p, nnz_per_item)
    cols = np.searchsorted(cdf, rng.random(n_items * m) * cdf[-1]).astype(np.int32)
    np.minimum(cols, n_terms - 1, out=cols)
    indptr = np.arange(0, n_items * m + 1, m, dtype=np.int64)
    x = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.float32), cols, indptr), shape=(n_items, n_terms)
    )
    x.sum_duplicates()  # tf counts, sorted term ids
    df = np.bincount(x.indices, minlength=n_terms)
    idf = (np.log((1 + n_items) / (1 + df)) + 1).astype(np.float32)
    x.data = (1 + np.log(x.data)) * idf[x.indices]
    norms = np.sqrt(np.add.reduceat(x.data.astype(np.float64) ** 2, x.indptr[:-1]))
    x.data /= np.repeat(norms, np.diff(x.indptr)).astype(np.float32)
    return x, p, idf


def make_query(
    rng: np.random.Generator, p: NDArray[np.float64], idf: NDArray[np.float32], nnz: int
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """``nnz`` distinct terms drawn from the Zipf distribution, weights (1+log tf) * idf."""
    cdf = np.cumsum(p)
    counts: dict[int, int] = {}
    while len(counts) < nnz:
        for t in np.searchsorted(cdf, rng.random(64) * cdf[-1]):
            t = min(int(t), len(p) - 1)
            if t in counts or len(counts) < nnz:
                counts[t] = counts.get(t, 0) + 1
    terms = np.array(sorted(counts), dtype=np.int32)
    w = (1 + np.log([counts[int(t)] for t in terms])) * idf[terms]
    return terms, (w / np.linalg.norm(w)).astype(np.float32)


# ----------------------------------------------------------------------------- timing


def timeit(fn: Callable[[], object], repeat: int, min_time: float = 0.0) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs (after one warm-up run)."""
    fn()
    times: list[float] = []
    t_end = time.perf_counter() + min_time
    while len(times) < repeat or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def memory_bandwidth() -> float:
    """Bytes/s moved by a numpy copy of 1 GiB (read + write counted), median of 5."""
    a = np.ones(1 << 27, dtype=np.float64)  # 1 GiB
    b = np.empty_like(a)
    t = timeit(lambda: np.copyto(b, a), 5)
    return 2 * a.nbytes / t


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sparse_dot_topn": getattr(sparse_dot_topn, "__version__", None),
    }


def topk_from_dense(s: NDArray[np.float32], k: int) -> tuple[NDArray[np.int64], NDArray[Any]]:
    """scipy-style exact top-k of a dense score vector: argpartition, then (score desc, id asc)."""
    cand = np.argpartition(-s, k)[: k + 1] if k < len(s) else np.arange(len(s))
    # include every item tied with the k-th score so that the id tie-break is exact
    kth = np.sort(s[cand])[::-1][min(k, len(cand)) - 1]
    cand = np.flatnonzero(s >= kth) if kth > 0 else np.flatnonzero(s > 0)
    order = np.lexsort((cand, -s[cand]))[:k]
    ids = cand[order]
    ids = ids[s[ids] > 0]
    return ids, s[ids]


def case(
    name: str,
    ours: float,
    baselines: dict[str, float],
    agree: bool,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "reelrank_s": ours,
        "baselines": baselines,
        "speedup": {k: v / ours for k, v in baselines.items()},
        "agree": bool(agree),
        **extra,
    }


# ----------------------------------------------------------------------------- ranking kernels


def merge_case(rep: int) -> dict[str, Any]:
    """Six sources shaped like a stored user's request on the 1M snapshot: ANN 225 and keyword
    100 hits (overlapping), three pool heads of quota + 20 (the excluded count) ids."""
    rng = np.random.default_rng(11)
    n_items = 1_000_000
    excluded = np.unique(rng.integers(0, n_items, 20)).astype(np.int32)
    ann = rng.choice(n_items, 225, replace=False).astype(np.int64)
    kw = np.concatenate([ann[::7][:30], rng.choice(n_items, 70, replace=False)]).astype(np.int64)
    pools = [
        np.concatenate([excluded[:5], rng.choice(n_items, q + 15)]).astype(np.int32)
        for q in (50, 38, 38)
    ]
    # The reference takes (bit, ids, scores, limit); merge_sources (ids, scores, bit, limit).
    ref_parts = [
        (1, ann, rng.random(ann.size).astype(np.float32), ann.size),
        (16, kw, rng.random(kw.size).astype(np.float32), kw.size),
        (32, np.zeros(0, np.int64), np.zeros(0, np.float32), 0),
    ]
    for head, bit, quota in zip(pools, (2, 4, 8), (50, 38, 38), strict=True):
        ref_parts.append((bit, head, rng.random(head.size).astype(np.float32), quota))
    parts = [(ids, scores, bit, limit) for bit, ids, scores, limit in ref_parts]
    n = 500
    got = _core.merge_sources(parts, excluded, n)
    want = reference_merge(ref_parts, excluded, n)
    agree = all(np.array_equal(a, b) for a, b in zip(got[:3], want[:3], strict=True))
    agree = agree and got[3].tolist() == want[3]
    ours = timeit(lambda: _core.merge_sources(parts, excluded, n), rep, 0.5)
    base = {
        "numpy in_sorted + unique/ufunc.at merge": timeit(
            lambda: reference_merge(ref_parts, excluded, n), rep, 0.5
        )
    }
    return case("merge_6_sources_511_ids", ours, base, agree)


def gather_case(rep: int) -> dict[str, Any]:
    """500 random rows of a 1M x 64 float32 matrix dotted with one vector; 64 row sets in turn,
    so that most rows are cache misses, as in a request."""
    rng = np.random.default_rng(12)
    m = rng.standard_normal((1_000_000, 64), dtype=np.float32)
    q = rng.standard_normal(64, dtype=np.float32)
    sets = [rng.integers(0, m.shape[0], 500).astype(np.int32) for _ in range(64)]
    agree = True
    for rows in sets[:8]:
        got = _core.gather_dot(m, rows, q)
        sub = m[rows].astype(np.float64)
        bound = 64 * np.finfo(np.float32).eps * (np.abs(sub) @ np.abs(q.astype(np.float64)))
        agree = agree and bool(np.all(np.abs(got - m[rows] @ q) <= 2 * bound))
    it = iter(range(1 << 62))
    ours = timeit(lambda: _core.gather_dot(m, sets[next(it) % 64], q), rep, 0.5)
    base = {"numpy M[rows] @ q": timeit(lambda: m[sets[next(it) % 64]] @ q, rep, 0.5)}
    return case("gather_dot_500x64", ours, base, agree)


def knn_case(rep: int) -> dict[str, Any]:
    """ItemKNN-shaped scoring: 1M items x 1M terms (neighbour items), 28 per row; a history of
    21 items against 500 candidates (100 of them neighbours of the history)."""
    rng = np.random.default_rng(13)
    n, per_row = 1_000_000, 28
    cols = rng.integers(0, n, n * per_row).astype(np.int32)
    indptr = np.arange(0, n * per_row + 1, per_row, dtype=np.int64)
    x = sp.csr_matrix((rng.random(cols.size, dtype=np.float32), cols, indptr), shape=(n, n))
    x.sum_duplicates()
    km = KeywordMatrix.from_csr(x.indptr.astype(np.int64), x.indices, x.data, n)
    xt = x.T.tocsr()
    queries = []
    for _ in range(32):
        hist = np.unique(rng.choice(n, 21, replace=False)).astype(np.int32)
        near = np.concatenate([xt.indices[xt.indptr[h] : xt.indptr[h + 1]] for h in hist])
        cands = np.concatenate([rng.choice(near, 100), rng.integers(0, n, 400)]).astype(np.int32)
        queries.append((hist, np.ones(hist.size, np.float32), cands))
    agree = True
    for h, w, c in queries:
        qd = np.zeros(n, np.float32)
        qd[h] = w
        want = np.asarray(x[c] @ qd, dtype=np.float32)
        for strategy in ("auto", "rows", "postings"):
            agree = agree and np.array_equal(km.score(h, w, c, strategy=strategy), want)
    it = iter(range(1 << 62))

    def run(strategy: Any) -> Callable[[], object]:
        def f() -> object:
            h, w, c = queries[next(it) % 32]
            return km.score(h, w, c, strategy=strategy)

        return f

    def scipy_dense() -> object:
        h, w, c = queries[next(it) % 32]
        qd = np.zeros(n, np.float32)
        qd[h] = w
        return x[c] @ qd

    ours = timeit(run("auto"), rep, 0.5)
    base = {
        "scipy X[c] @ q_dense": timeit(scipy_dense, rep, 0.5),
        "reelrank rows strategy (before)": timeit(run("rows"), rep, 0.5),
    }
    return case("score_knn_21_history_500_candidates", ours, base, agree)


def kernel_cases(rep: int) -> list[dict[str, Any]]:
    out = []
    for make in (merge_case, gather_case, knn_case):
        out.append(make(rep))
        print("\n".join(markdown({"cases": out[-1:]}).splitlines()[2:]), flush=True)
    return out


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--terms", type=int, default=50_000)
    ap.add_argument("--nnz-per-item", type=float, default=24.0)
    ap.add_argument("--query-nnz", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "core.json")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument(
        "--only",
        choices=["kernels"],
        help="run only the ranking-kernel cases and print them (nothing is written)",
    )
    args = ap.parse_args()
    rep = 5 if args.quick else 15
    load_start = os.getloadavg()
    if args.only == "kernels":
        print(markdown({"cases": kernel_cases(rep)}))
        return

    t0 = time.perf_counter()
    x, p, idf = build_catalogue(args.items, args.terms, args.nnz_per_item, seed=42)
    xt = x.T.tocsr()  # postings (terms x items), for sparse_dot_topn
    xt.sort_indices()
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    km = KeywordMatrix.from_csr(
        x.indptr.astype(np.int64), x.indices.astype(np.int32), x.data, args.terms
    )
    from_csr_s = time.perf_counter() - t0
    print(
        f"data: {x.shape[0]:,} items, {x.shape[1]:,} terms, nnz {x.nnz:,} "
        f"({x.nnz / x.shape[0]:.1f}/item); built in {build_s:.1f}s, from_csr {from_csr_s:.2f}s",
        flush=True,
    )
    rng = np.random.default_rng(7)
    queries = [make_query(rng, p, idf, args.query_nnz) for _ in range(64)]
    qt, qw = queries[0]

    def qdense(t: NDArray[np.int32], w: NDArray[np.float32]) -> NDArray[np.float32]:
        q = np.zeros(x.shape[1], dtype=np.float32)
        q[t] = w
        return q

    q_vec = qdense(qt, qw)
    q_csr = sp.csr_matrix((qw, qt, np.array([0, len(qt)])), shape=(1, x.shape[1]))
    cases: list[dict[str, Any]] = []
    bw = memory_bandwidth()
    print(f"memory bandwidth (numpy copy): {bw / 1e9:.1f} GB/s", flush=True)

    # --- score 1000 candidates
    cands = rng.choice(x.shape[0], size=1000, replace=False).astype(np.int32)
    ours = timeit(lambda: km.score(qt, qw, cands), rep, 0.5)
    base = {
        "scipy X[c] @ q_dense": timeit(lambda: x[cands] @ q_vec, rep, 0.5),
        "scipy X[c] @ q_sparse.T": timeit(lambda: (x[cands] @ q_csr.T).toarray(), rep, 0.5),
    }
    agree = np.allclose(km.score(qt, qw, cands), x[cands] @ q_vec, rtol=1e-5, atol=1e-7)
    cases.append(case("score_1000_candidates", ours, base, agree))

    # --- exact top-100, one query, one thread
    ours_ids, ours_sc = km.topk(qt, qw, K)
    ref_ids, ref_sc = topk_from_dense(np.asarray(x @ q_vec), K)
    agree = bool(np.array_equal(ours_ids, ref_ids) and np.allclose(ours_sc, ref_sc, rtol=1e-5))
    ours = timeit(lambda: km.topk(qt, qw, K), rep, 1.0)
    base = {"scipy X @ q + argpartition": timeit(lambda: topk_from_dense(x @ q_vec, K), rep, 1.0)}
    if sp_matmul_topn is not None:
        base["sparse_dot_topn 1 thread"] = timeit(
            lambda: sp_matmul_topn(q_csr, xt, top_n=K, sort=True), rep, 1.0
        )
        c = sp_matmul_topn(q_csr, xt, top_n=K, sort=True)
        agree = agree and np.allclose(np.sort(c.data)[::-1], ref_sc, rtol=1e-5)
    lens = np.diff(x.tocsc().indptr)  # posting-list lengths
    post_bytes = int(lens[qt].sum()) * 8  # int32 item id + float32 weight per posting
    cases.append(
        case(
            "topk100_full_1thread",
            ours,
            base,
            agree,
            postings_bytes_of_query_terms=post_bytes,
            memory_bandwidth_bytes_per_s=bw,
            time_over_bandwidth_bound=ours / (post_bytes / bw),
        )
    )

    # --- 64 queries, top-100, 2 threads
    q_indptr = np.cumsum([0] + [len(t) for t, _ in queries]).astype(np.int64)
    q_terms = np.concatenate([t for t, _ in queries]).astype(np.int32)
    q_weights = np.concatenate([w for _, w in queries]).astype(np.float32)
    q64 = sp.csr_matrix((q_weights, q_terms, q_indptr), shape=(64, x.shape[1]))
    ids64, sc64 = km.topk_batch(q_indptr, q_terms, q_weights, K, n_threads=2)
    ours = timeit(lambda: km.topk_batch(q_indptr, q_terms, q_weights, K, n_threads=2), 3, 2.0)
    ours1 = timeit(lambda: km.topk_batch(q_indptr, q_terms, q_weights, K, n_threads=1), 3, 2.0)
    base = {}
    agree = True
    if sp_matmul_topn is not None:
        for nt in (1, 2):

            def sdtn(nt: int = nt) -> object:
                return sp_matmul_topn(q64, xt, top_n=K, sort=True, n_threads=nt)

            base[f"sparse_dot_topn {nt} threads"] = timeit(sdtn, 3, 2.0)
        c = sp_matmul_topn(q64, xt, top_n=K, sort=True, n_threads=2)
        for qi in range(64):
            row = np.sort(c.data[c.indptr[qi] : c.indptr[qi + 1]])[::-1]
            agree = agree and np.allclose(row, sc64[qi, : len(row)], rtol=1e-5)
    for qi in (0, 17, 63):
        t, w = queries[qi]
        r_ids, _ = topk_from_dense(np.asarray(x @ qdense(t, w)), K)
        agree = agree and np.array_equal(ids64[qi, : len(r_ids)], r_ids)
    cases.append(case("topk100_batch64_2threads", ours, base, agree, reelrank_1thread_s=ours1))

    # --- profile from 200 events
    ev_items = rng.choice(x.shape[0], size=200, replace=False).astype(np.int32)
    ev_w = rng.choice(np.array([1.0, 1.0, 1.0, 0.5, 2.0, -0.5], dtype=np.float32), size=200)
    ev_age = rng.random(200) * 7 * 86400.0
    ours = timeit(lambda: km.build_profile(ev_items, ev_w, ev_age, 86400.0, 200), rep, 0.5)

    def scipy_profile() -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        coef = ev_w.astype(np.float64) * 0.5 ** (ev_age / 86400.0)
        total = np.asarray(x[ev_items].T @ coef).reshape(-1)
        terms = np.flatnonzero(total > 0)
        keep = np.sort(terms[np.lexsort((terms, -total[terms]))[:200]])
        vals = total[keep]
        return keep, vals / np.linalg.norm(vals)

    pt, pw = km.build_profile(ev_items, ev_w, ev_age, 86400.0, 200)
    rt, rw = scipy_profile()
    agree = bool(np.array_equal(pt, rt) and np.allclose(pw, rw, rtol=1e-5, atol=1e-6))
    base = {"scipy/numpy": timeit(scipy_profile, rep, 0.5)}
    cases.append(case("profile_200_events", ours, base, agree))

    # --- two Python threads calling topk at once vs one thread (persistent threads; the
    # one- and two-thread runs alternate so that background load hits both alike)
    n_calls = 30

    def run_calls(n: int) -> None:
        for i in range(n):
            t, w = queries[i % 64]
            km.topk(t, w, K)

    pool = ThreadPoolExecutor(2)
    list(pool.map(run_calls, [4, 4]))  # warm both threads' scratch buffers
    t1s, t2s = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        pool.submit(run_calls, n_calls).result()
        t1s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        list(pool.map(run_calls, [n_calls, n_calls]))
        t2s.append(time.perf_counter() - t0)
    pool.shutdown()
    t1, t2 = statistics.median(t1s), statistics.median(t2s)
    thr1, thr2 = n_calls / t1, 2 * n_calls / t2
    cases.append(
        {
            "name": "two_threads_scaling",
            "reelrank_s": t2 / (2 * n_calls),
            "baselines": {"one thread, s per call": t1 / n_calls},
            "speedup": {"throughput 2 threads / 1 thread": thr2 / thr1},
            "agree": True,
            "calls_per_s_1thread": thr1,
            "calls_per_s_2threads": thr2,
            "ratios_per_round": [(2 * a) / b for a, b in zip(t1s, t2s, strict=True)],
        }
    )

    cases += kernel_cases(rep)

    result = {
        "machine": machine(),
        "command": ".venv/bin/python bench/bench_core.py" + (" --quick" if args.quick else ""),
        # 1/5/15-minute load averages: the machine is shared, ratios are only comparable at
        # similar load.
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "data": {
            "n_items": x.shape[0],
            "n_terms": x.shape[1],
            "nnz": int(x.nnz),
            "query_nnz": args.query_nnz,
            "build_s": build_s,
            "from_csr_s": from_csr_s,
        },
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


def fmt_s(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "| case | reelrank | baseline | baseline time | speedup | agree |",
        "|---|---|---|---|---|---|",
    ]
    for c in res["cases"]:
        for i, (b, t) in enumerate(c["baselines"].items()):
            sp_key = list(c["speedup"])[i] if c["name"] == "two_threads_scaling" else b
            lines.append(
                f"| {c['name'] if i == 0 else ''} | {fmt_s(c['reelrank_s']) if i == 0 else ''} "
                f"| {b} | {fmt_s(t)} | {c['speedup'][sp_key]:.2f}x "
                f"| {c['agree'] if i == 0 else ''} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
