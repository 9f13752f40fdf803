"""Per-user candidate lists computed at build time for the two personal retrieval searches.

A stored user's ANN query (their embedding) and keyword query (their TF-IDF profile) are fixed
for the life of a snapshot until the request brings recent events. So the build runs both
searches once per user, in batches, with the user's seen items removed, and keeps a few more
hits than the default quotas ask for. At serving time a request without recent events reads
its lists instead of searching: the keyword list is exactly what the online top-k would return
(same exact search, same tie order), and the ANN list is the same refined FAISS search. A
request that excludes more items drops them from the list, and falls back to the online search
when too few remain or its quota is larger than the list; recent events always search online,
because they change the query. The lists are CSR arrays memory-mapped like the rest of the
snapshot, shared by every serving process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from server import _core
from server.index.ann import AnnIndex
from server.index.sorted_sets import in_sorted

# Queries per ANN batch: the refine step gathers batch x 4k x dim floats at once.
ANN_BATCH = 256
# Most seen items skipped over per user in the ANN search; heavier users may keep fewer hits.
MAX_SEEN_SKIP = 2000

Csr = tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float32]]


@dataclass(frozen=True)
class UserCandidates:
    """Best-first candidate ids and scores per user, per source (`ann`, `keyword`)."""

    lists: dict[str, Csr]
    # Hits kept per user and source at build time (a shorter list ran out of matches).
    k: dict[str, int]

    def get(self, source: str, user: int) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        indptr, ids, scores = self.lists[source]
        a, b = int(indptr[user]), int(indptr[user + 1])
        return np.asarray(ids[a:b]), np.asarray(scores[a:b])

    def has(self, source: str) -> bool:
        return source in self.lists


def _to_csr(ids: NDArray[np.int32], scores: NDArray[np.float32]) -> Csr:
    """Padded `[n, k]` rows (id -1 past the end) as CSR arrays."""
    keep = ids >= 0
    indptr = np.zeros(ids.shape[0] + 1, np.int64)
    np.cumsum(keep.sum(axis=1), out=indptr[1:])
    return indptr, ids[keep].astype(np.int32), scores[keep].astype(np.float32)


def keyword_lists(
    keywords: _core.KeywordMatrix, profiles: sp.csr_matrix, seen: sp.csr_matrix, k: int
) -> Csr:
    """Exact keyword top-`k` per user profile, seen items excluded, on all cores."""
    ids, scores = keywords.topk_batch(
        profiles.indptr.astype(np.int64),
        profiles.indices.astype(np.int32),
        profiles.data.astype(np.float32),
        k,
        seen.indptr.astype(np.int64),
        seen.indices.astype(np.int32),
        0,
    )
    return _to_csr(ids, scores)


def ann_lists(index: AnnIndex, user_emb: NDArray[np.float32], seen: sp.csr_matrix, k: int) -> Csr:
    """ANN top-`k` per user embedding with seen items removed (users with a zero embedding
    get an empty list, as the online search returns nothing for them)."""
    user_emb = np.ascontiguousarray(user_emb, dtype=np.float32)  # row gathers below
    n_users = user_emb.shape[0]
    out_ids = np.full((n_users, k), -1, np.int32)
    out_scores = np.zeros((n_users, k), np.float32)
    n_seen = np.diff(seen.indptr)
    active = np.flatnonzero(np.any(np.asarray(user_emb) != 0, axis=1))
    # Users with similar history lengths batch together, so one k fits the whole batch.
    active = active[np.argsort(n_seen[active], kind="stable")]
    for start in range(0, active.size, ANN_BATCH):
        users = active[start : start + ANN_BATCH]
        extra = int(min(n_seen[users].max(initial=0), MAX_SEEN_SKIP))
        scores, ids = index.search(np.asarray(user_emb[users], dtype=np.float32), k + extra)
        for row, u in enumerate(users):
            found = ids[row]
            sc = scores[row]
            keep = (found >= 0) & ~in_sorted(
                found, seen.indices[seen.indptr[u] : seen.indptr[u + 1]]
            )
            hits = np.flatnonzero(keep)[:k]
            out_ids[u, : hits.size] = found[hits]
            out_scores[u, : hits.size] = sc[hits]
    return _to_csr(out_ids, out_scores)


def manifest_entry(lists: dict[str, Csr], k: dict[str, int]) -> dict[str, Any]:
    return {
        name: {
            "k": k[name],
            "users": int(indptr.size - 1),
            "mean_length": round(float(ids.size / max(1, indptr.size - 1)), 2),
        }
        for name, (indptr, ids, _) in lists.items()
    }
