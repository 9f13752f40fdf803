"""Tokenisation and TF-IDF keyword vectors for item tags and titles.

Tags (`keywords`, `|`-separated) become whole-tag tokens; titles are split into lowercase
Latin words and, for CJK runs, overlapping character bigrams (plus the single character of a
one-character run). Bigrams need no dictionary and match how Chinese tags and titles overlap;
tags get a higher weight than title tokens because creators choose them deliberately.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

TAG_WEIGHT = 2.0
TITLE_WEIGHT = 1.0
_LATIN = re.compile(r"[a-z0-9][a-z0-9'+#-]*")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_STOP = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "my",
        "of",
        "on",
        "or",
        "the",
        "this",
        "to",
        "vs",
        "with",
        "you",
        "your",
    )
)


def tokenize_title(title: str) -> list[str]:
    """Latin words (stop words dropped) and CJK character bigrams of a title."""
    text = title.lower()
    tokens = [w for w in _LATIN.findall(text) if w not in _STOP and len(w) > 1]
    for run in _CJK.findall(text):
        if len(run) == 1:
            tokens.append(run)
        else:
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    return tokens


def tokenize_tags(keywords: str) -> list[str]:
    """Whole tags, lowercased and stripped; the tag namespace is kept apart from title words."""
    return [f"#{t}" for t in (s.strip().lower() for s in keywords.split("|")) if t]


@dataclass(frozen=True)
class KeywordFeatures:
    """TF-IDF item vectors (CSR, rows L2-normalised, float32) with their vocabulary."""

    matrix: sp.csr_matrix
    vocabulary: list[str]
    idf: NDArray[np.float32]


def build_tfidf(
    keywords: Sequence[str], titles: Sequence[str], *, min_df: int = 1, max_df_ratio: float = 0.5
) -> KeywordFeatures:
    """Build sublinear-TF, smoothed-IDF keyword vectors for every item.

    Terms in more than `max_df_ratio` of the items carry almost no signal and cost the most
    postings traffic at serving time, so they are dropped, as are terms rarer than `min_df`.
    """
    n = len(keywords)
    if len(titles) != n:
        raise ValueError(f"{len(keywords)} keyword rows but {len(titles)} titles")
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, (kw, title) in enumerate(zip(keywords, titles, strict=True)):
        counts: dict[int, float] = {}
        for tokens, weight in (
            (tokenize_tags(kw or ""), TAG_WEIGHT),
            (tokenize_title(title or ""), TITLE_WEIGHT),
        ):
            for tok in tokens:
                j = vocab.setdefault(tok, len(vocab))
                counts[j] = counts.get(j, 0.0) + weight
        rows.extend([i] * len(counts))
        cols.extend(counts.keys())
        vals.extend(counts.values())
    tf = sp.csr_matrix(
        (np.asarray(vals, np.float64), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
        shape=(n, len(vocab)),
    )
    df = np.bincount(tf.indices, minlength=len(vocab))
    keep = (df >= min_df) & (df <= max(1, int(max_df_ratio * n)))
    kept = np.flatnonzero(keep)
    tf = tf[:, kept].tocsr()
    df = df[kept]
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    tf.data = (1.0 + np.log(tf.data)) * idf[tf.indices]
    norms = np.sqrt(np.asarray(tf.multiply(tf).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    tf = sp.diags(1.0 / norms) @ tf
    matrix = sp.csr_matrix(tf, dtype=np.float32)
    matrix.sort_indices()
    matrix.indptr = matrix.indptr.astype(np.int64)
    matrix.indices = matrix.indices.astype(np.int32)
    inv = {j: t for t, j in vocab.items()}
    return KeywordFeatures(matrix, [inv[int(j)] for j in kept], idf.astype(np.float32))


def l2_normalize_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each row to unit L2 norm (empty rows stay empty)."""
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ m)


def prune_rows_topk(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep each row's `k` largest positive entries (ties: lower column), vectorised."""
    m = sp.csr_matrix(m)
    m.data[m.data < 0] = 0
    m.eliminate_zeros()
    row = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, row))
    start = m.indptr[row[order]]
    rank = np.arange(order.size) - start
    keep = order[rank < k]
    out = sp.csr_matrix((m.data[keep], (row[keep], m.indices[keep])), shape=m.shape)
    out.sort_indices()
    return out


def join_terms(vocabulary: Iterable[str]) -> str:
    """Serialise a vocabulary one term per line (terms never contain newlines)."""
    return "".join(f"{t}\n" for t in vocabulary)
