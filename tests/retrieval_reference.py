"""The retrieval merge as numpy ran it before ``_core.merge_sources``: the parity oracle of
tests/test_retrieval_merge.py and the numpy baseline of bench/bench_core.py's merge case."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from server.index.sorted_sets import in_sorted

Part = tuple[int, NDArray[Any], NDArray[np.float32], int]


def reference_merge(
    parts: list[Part], excluded: NDArray[np.int32], num_candidates: int
) -> tuple[NDArray[np.int32], NDArray[np.uint8], NDArray[np.float32], list[int]]:
    """The numpy merge `retrieve` used before `_core.merge_sources` (parts: bit, ids, scores,
    limit; ids not yet filtered)."""
    kept: list[tuple[int, NDArray[np.int64], NDArray[np.float32]]] = []
    for bit, ids, scores, limit in parts:
        ids = ids.astype(np.int64)
        keep = ~in_sorted(ids, excluded) if excluded.size and ids.size else np.ones(ids.size, bool)
        kept.append((bit, ids[keep][:limit], scores[keep][:limit]))
    counts = [int(k[1].size) for k in kept]
    if not kept or sum(counts) == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.uint8), np.zeros(0, np.float32), counts
    all_ids = np.concatenate([k[1] for k in kept])
    all_bits = np.concatenate([np.full(k[1].size, k[0], np.uint8) for k in kept])
    all_scores = np.concatenate([k[2] for k in kept])
    uniq, first, inv = np.unique(all_ids, return_index=True, return_inverse=True)
    bits = np.zeros(uniq.size, np.uint8)
    np.bitwise_or.at(bits, inv, all_bits)
    best = np.full(uniq.size, -np.inf, np.float32)
    with np.errstate(invalid="ignore"):
        np.maximum.at(best, inv, all_scores)
    order = np.argsort(first, kind="stable")[:num_candidates]
    return uniq[order].astype(np.int32), bits[order], best[order], counts
