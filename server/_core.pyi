"""Type stubs for ``server._core``, reelrank's Rust core (checked by ``mypy.stubtest``).

All array arguments are 1-D numpy arrays of exactly the dtype shown (non-contiguous arrays are
copied); a wrong dtype raises ``TypeError``. Invalid values (lengths, ordering, ranges,
non-finite or negative weights, ``k < 0``) raise ``ValueError`` naming the problem. Every heavy
call releases the GIL.
"""

import os
from collections.abc import Sequence
from typing import Literal, final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "KeywordMatrix",
    "__version__",
    "encode_ranked_items",
    "gather_dot",
    "merge_sources",
    "ranking_order",
    "rerank_select",
]

__version__: str

@final
class KeywordMatrix:
    """Item keyword vectors: CSR (rows = items, L2-normalised TF-IDF, f32) plus an inverted
    index (postings per term)."""

    @staticmethod
    def from_csr(
        indptr: NDArray[np.int64],
        indices: NDArray[np.int32],
        data: NDArray[np.float32],
        n_terms: int,
    ) -> KeywordMatrix:
        """Validate and copy a CSR matrix (items x terms), then build its postings.

        ``indptr`` starts at 0, is non-decreasing and ends at ``nnz``; term ids are in
        ``[0, n_terms)`` and strictly increasing within each row; ``data`` is finite and >= 0.
        """

    @staticmethod
    def open(directory: str | os.PathLike[str], validate: bool = False) -> KeywordMatrix:
        """Memory-map ``kw_{indptr,indices,data,post_indptr,post_items,post_weights}.npy``.

        Always checks dtypes, shapes, lengths, offsets, id ranges and weights (so no later call
        can read out of bounds); ``validate=True`` also checks id ordering and that the postings
        are exactly the transpose of the CSR rows. Raises ``ValueError`` naming the bad file,
        ``OSError`` (e.g. ``FileNotFoundError``) when a file cannot be read.

        The mapped files are shared between processes. So are the scoring structures derived
        from them when ``directory`` holds them (written by ``write_derived``): the postings'
        in-tile ids (2 bytes per non-zero), per-tile list offsets and maxima (8 bytes per term
        per 16,384 items), and, when ``n_terms <= 65,536``, a packed copy of the rows (16-bit
        term id + float32 weight, about 6 bytes per non-zero) that candidate scoring reads.
        They are checked to match the source files exactly (``ValueError`` naming the file if
        not, or if only some of them exist). Without them, each process builds them in memory
        (in huge pages where the OS allows); ``derived_mapped`` tells which happened.
        """

    @staticmethod
    def write_derived(directory: str | os.PathLike[str]) -> None:
        """Build the derived scoring structures of the index in ``directory`` and write them
        next to it (``kw_tile14_{seg,max,lo}.npy``, ``kw_packed_{start,words}.npy`` when the
        rows can be packed), each file atomically (temporary file, fsync, rename)."""

    @staticmethod
    def write_postings(directory: str | os.PathLike[str]) -> None:
        """Write the three ``kw_post_*.npy`` files from the CSR files of ``directory``.

        ``n_terms`` is inferred as the largest term id + 1.
        """

    @property
    def derived_mapped(self) -> bool:
        """True when the derived scoring structures are memory-mapped files (shared between
        processes), False when this process built them in memory."""

    @property
    def n_items(self) -> int:
        """Number of items (rows)."""

    @property
    def n_terms(self) -> int:
        """Number of terms (columns)."""

    @property
    def nnz(self) -> int:
        """Number of stored non-zeros."""

    def score(
        self,
        q_terms: NDArray[np.int32],
        q_weights: NDArray[np.float32],
        candidates: NDArray[np.int32],
        *,
        strategy: Literal["auto", "rows", "postings"] = "auto",
    ) -> NDArray[np.float32]:
        """Dot product of the sparse query with each candidate row, in candidate order.

        Query term ids strictly increasing, weights finite and >= 0; candidates may repeat.
        Each row is summed in stored (term id) order in float32, so scores are bit-identical
        to scipy's ``X[candidates] @ q`` and to the scores ``topk`` returns.

        ``strategy``: ``"rows"`` reads every candidate's row against a dense copy of the query;
        ``"postings"`` walks the query terms' posting lists and picks out the candidates (fast
        for a short query over a huge term space, e.g. ItemKNN scoring a user's history);
        ``"auto"`` (the default) picks the cheaper by a cost model of the query's posting-list
        lengths against the candidates' non-zeros. All give the same scores bit for bit.
        """

    def topk(
        self,
        q_terms: NDArray[np.int32],
        q_weights: NDArray[np.float32],
        k: int,
        exclude: NDArray[np.int32] | None = None,
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """Exact top-k over the catalogue: items with score > 0 only (so ``len <= k``), not in
        ``exclude``, sorted by score descending then item id ascending."""

    def topk_batch(
        self,
        q_indptr: NDArray[np.int64],
        q_terms: NDArray[np.int32],
        q_weights: NDArray[np.float32],
        k: int,
        exclude_indptr: NDArray[np.int64] | None = None,
        exclude: NDArray[np.int32] | None = None,
        n_threads: int = 0,
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """``topk`` for CSR-form queries, in parallel (``n_threads=0``: all cores).

        Returns ``[n_queries, k]`` arrays padded with id -1 and score 0.0. ``exclude_indptr``
        and ``exclude`` (CSR form, one list per query) must be given together.
        """

    def build_profile(
        self,
        items: NDArray[np.int32],
        weights: NDArray[np.float32],
        ages_s: NDArray[np.float64],
        half_life_s: float,
        max_terms: int,
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """User keyword profile ``sum_i weights[i] * 0.5**(ages_s[i]/half_life_s) * row(items[i])``.

        Keeps terms with positive totals, the ``max_terms`` largest (ties: lower term id),
        L2-normalised; term ids ascending. Empty input gives empty arrays.
        """

def rerank_select(
    rel: NDArray[np.float64],
    creator: NDArray[np.int64],
    group: NDArray[np.int64],
    rank: NDArray[np.int64],
    emb: NDArray[np.float32],
    dim: int,
    k: int,
    cap: int,
    window: int,
    mult: NDArray[np.float64],
    lam: float,
    need: NDArray[np.int32],
    n_classes: int,
    class_groups: NDArray[np.uint8],
    cold: NDArray[np.uint8],
    cold_pos: int,
    floor_over_cap: bool,
    dpp_window: int,
) -> tuple[NDArray[np.int64], int]:
    """The fairness re-ranking fill (``rust_core/src/rerank.rs``; reference:
    ``server/pipeline/fairness/select.py``). ``emb`` is ``n x dim`` row-major (``dim = 0``: no
    MMR), ``need`` is ``(k + 1) x n_classes`` and ``class_groups`` ``n_classes x n_groups``, both
    row-major; ``dpp_window > 0`` uses a windowed greedy DPP instead of MMR. Returns (chosen
    candidate indices best first, flags: bit 1 = cold-start lift)."""

def encode_ranked_items(
    item_ids: Sequence[bytes | str],
    creator_ids: Sequence[bytes | str],
    groups: Sequence[bytes | str],
    snapshot_version: str,
    score: NDArray[np.float32],
    keyword: NDArray[np.float32],
    embedding: NDArray[np.float32],
    popularity: NDArray[np.float32],
    freshness: NDArray[np.float32],
    ranking: NDArray[np.float32],
    item_knn: NDArray[np.float32],
    sources: NDArray[np.uint8],
    source_flags: NDArray[np.uint8],
    source_values: NDArray[np.int32],
) -> bytes:
    """The protobuf wire bytes of ``RankResponse.items`` (``repeated RankedItem items = 1``) for
    one page, to append with ``RankResponse.MergeFromString`` (``rust_core/src/encode.rs``).

    One item per ``item_ids`` entry; every other column has the same length (``ValueError``
    naming the column otherwise). The id lists are lists or tuples of UTF-8 ``bytes`` or ``str``.
    The six stage-score columns fill ``stage_scores``, always present; ``sources`` holds each
    item's source bit flags, listed as the ``source_values[j]`` of every ``source_flags[j]`` it
    has, in that order (``source_flags`` and ``source_values`` have equal lengths; other bits are
    ignored). ``explanation`` is not written. The bytes equal ``SerializeToString()`` of the same
    items built with the protobuf API (proto3 implicit presence; floats bit for bit, so ``-0.0``
    and NaN payloads are kept). Small work: does not release the GIL.
    """

def merge_sources(
    sources: list[tuple[NDArray[np.int32] | NDArray[np.int64], NDArray[np.float32], int, int]],
    excluded: NDArray[np.int32],
    num_candidates: int,
) -> tuple[NDArray[np.int32], NDArray[np.uint8], NDArray[np.float32], NDArray[np.int64]]:
    """The retrieval merge (``rust_core/src/merge.rs``) of ``(ids, scores, bit, limit)``
    sources: each drops the ids in ``excluded`` (sorted, unique) from its best-first list and
    keeps the first ``limit`` left. Returns the unique kept ids in order of first appearance
    (source order, then list order), at most ``num_candidates``, with the OR of the ``bit``
    of the sources that kept each, the largest score each got (``np.maximum.at`` semantics:
    NaN propagates), and the number of ids each source kept."""

def gather_dot(
    matrix: NDArray[np.float32], rows: NDArray[np.int32], q: NDArray[np.float32]
) -> NDArray[np.float32]:
    """``matrix[rows] @ q`` for a 2-D C-contiguous float32 ``matrix`` (e.g. memory-mapped),
    reading the rows in place with software prefetch, without the gathered copy. Rows are
    summed in a fixed order (8 partial sums), so results differ from BLAS's by float32
    rounding only."""

def ranking_order(scores: NDArray[np.float32], tiebreak: NDArray[np.int64]) -> NDArray[np.int64]:
    """Positions of the 1-D ``scores`` by score, best first, ties by ``tiebreak`` (same length),
    then by position: ``np.lexsort((tiebreak, -scores.astype(np.float64)))`` (``-0.0`` ties
    with ``0.0``; NaN scores last). Small work: does not release the GIL."""
