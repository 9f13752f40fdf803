"""Item vectors the diversity policy compares: embeddings, or hashed keyword vectors."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from server.index.loaded import LoadedSnapshot
from server.pipeline.types import FairnessParams, Similarity

HASH_DIM = 128
_csr: dict[Path, tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float32]]] = {}
_lock = threading.Lock()


def _keyword_csr(
    snap: LoadedSnapshot,
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float32]]:
    with _lock:
        if snap.path not in _csr:
            if len(_csr) > 4:
                _csr.clear()
            _csr[snap.path] = tuple(
                np.load(snap.path / f"kw_{n}.npy", mmap_mode="r")
                for n in ("indptr", "indices", "data")
            )
        return _csr[snap.path]


def keyword_vectors(snap: LoadedSnapshot, items: NDArray[np.int32]) -> NDArray[np.float32]:
    """TF-IDF rows of `items` feature-hashed (signed) to HASH_DIM dimensions.

    Inner products of the hashed vectors are unbiased estimates of the keyword cosine; with
    ~24 terms per item and 128 buckets, collisions are rare.
    """
    indptr, indices, data = _keyword_csr(snap)
    starts = np.asarray(indptr[items], np.int64)
    ends = np.asarray(indptr[items.astype(np.int64) + 1], np.int64)
    lengths = ends - starts
    rows = np.repeat(np.arange(items.size), lengths)
    pos = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    pos += np.arange(rows.size)
    terms = np.asarray(indices[pos], np.int64)
    h = (terms * 2654435761) & 0xFFFFFFFF
    sign = np.where((h >> 16) & 1, 1.0, -1.0).astype(np.float32)
    out = np.zeros((items.size, HASH_DIM), np.float32)
    np.add.at(out, (rows, h % HASH_DIM), sign * np.asarray(data[pos], np.float32))
    return out


def vectors(
    snap: LoadedSnapshot, items: NDArray[np.int32], params: FairnessParams
) -> NDArray[np.float32]:
    if params.similarity is Similarity.KEYWORD:
        return keyword_vectors(snap, items)
    out: NDArray[np.float32] = np.asarray(snap.item_emb[items], np.float32)
    return out
