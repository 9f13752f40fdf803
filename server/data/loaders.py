"""Load and validate interactions and items tables (CSV, CSV.gz or Parquet).

Design notes
------------
* Every column is read as text (CSV) or as stored (Parquet) and converted with vectorised
  pyarrow/numpy kernels. A conversion that fails is retried on halves of the column to find
  the first offending row (``_first_failure``), so error reporting costs O(n) too and never
  loops over rows in Python.
* All checks run before anything is raised, and the problem with the smallest row wins, so
  the error names the first bad row of the file, not the first bad row of the first column
  that happened to be checked.
* User and item ids of interactions are kept factorised (a vocabulary of distinct ids plus an
  int32 index per row). 10M rows then cost ~40 MB per id column instead of several hundred
  MB of fixed-width strings, and rankers need integer ids anyway.

Row numbers in errors
---------------------
``InputError.row`` is the row as a user finds it in the file: for CSV it is the 1-based line
number (the header is line 1, the first data row line 2; newlines inside quoted values are
counted, blank lines are not, because the CSV reader drops them). For Parquet it is the
1-based data row (the first row is row 1).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from numpy.typing import ArrayLike, NDArray

from server.data import schema as S

PathLike = str | os.PathLike[str]

_INT_RE = r"^\s*[+-]?[0-9]+\s*$"
# A zone suffix only counts after a time part, so the "-01" of "2024-05-01" is not an offset.
_ZONED_RE = r"[Tt ][0-9:.,]+(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)$"
_TS_EXPECTED = "is not a timestamp (expected integer seconds or ISO-8601)"
_NS_PER_S = 1_000_000_000
_UNIT_PER_S = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


class InputError(ValueError):
    """A problem in an input file, located as precisely as it can be.

    ``str(e)`` reads e.g. ``"items.csv row 17, column publish_ts: 'abc' is not a timestamp
    (expected integer seconds or ISO-8601)"``.

    Attributes
    ----------
    file
        The path as the caller gave it.
    row
        CSV: 1-based line number in the file (header = line 1). Parquet: 1-based data row.
        ``None`` for whole-file problems (missing column, empty file, unparseable CSV).
    column
        Offending column, or ``None``.
    detail
        What is wrong, without the location prefix.
    """

    def __init__(self, file: str, row: int | None, column: str | None, detail: str) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.detail = detail
        where = file
        if row is not None:
            where += f" row {row}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {detail}")

    def __reduce__(self) -> tuple[type[InputError], tuple[str, int | None, str | None, str]]:
        # Keeps the error picklable (multiprocessing, pytest-xdist) despite the custom init.
        return (type(self), (self.file, self.row, self.column, self.detail))


# --------------------------------------------------------------------------- data classes


def _factorize(values: pa.Array | pa.ChunkedArray) -> tuple[NDArray[np.str_], NDArray[np.int32]]:
    """Split string values into (distinct values, int32 index per row) in one hash pass."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    enc = pc.dictionary_encode(values)
    vocab = np.array(enc.dictionary.to_pylist(), dtype=np.str_)
    if vocab.size == 0:
        vocab = np.zeros(0, dtype="<U1")
    index = enc.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return vocab, index


def _compact(
    vocab: NDArray[np.str_], index: NDArray[np.int32]
) -> tuple[NDArray[np.str_], NDArray[np.int32]]:
    """Drop vocabulary entries no row uses, so ``len(vocab)`` is the number of distinct ids."""
    used = np.bincount(index, minlength=vocab.size) > 0
    if used.all():
        return vocab, index
    remap = (np.cumsum(used) - 1).astype(np.int32)
    return vocab[used], remap[index]


@dataclass(frozen=True, eq=False)
class Interactions:
    """Validated interaction log, one entry per input row (input order kept).

    Attributes
    ----------
    user_vocab, item_vocab
        Distinct user / item ids (each used by at least one row; order unspecified).
    user_index, item_index
        int32 per row: position of the row's id in ``user_vocab`` / ``item_vocab``.
    weight
        float32 per row: the explicit ``weight`` where given, else the weight of the event.
        Raw: not multiplied by ``watch_ratio``; combining signals is the ranker's job.
    event
        int8 per row: index into :data:`schema.EVENT_TYPES`, ``-1`` where only a weight was given.
    timestamp
        int64 seconds since the Unix epoch (UTC).
    watch_ratio
        float32 per row, NaN where absent.
    rejected
        Reason -> number of input rows skipped for it (e.g. ``{"unknown_item": 12}``).
    """

    user_vocab: NDArray[np.str_]
    user_index: NDArray[np.int32]
    item_vocab: NDArray[np.str_]
    item_index: NDArray[np.int32]
    weight: NDArray[np.float32]
    event: NDArray[np.int8]
    timestamp: NDArray[np.int64]
    watch_ratio: NDArray[np.float32]
    rejected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.user_index)
        for name in ("item_index", "weight", "event", "timestamp", "watch_ratio"):
            if len(getattr(self, name)) != n:
                got = len(getattr(self, name))
                raise ValueError(f"Interactions.{name} has {got} rows, not {n}")

    @property
    def n_rows(self) -> int:
        """Number of rows kept."""
        return len(self.user_index)

    @property
    def user_id(self) -> NDArray[np.str_]:
        """User id per row. Builds a new fixed-width array on every access: prefer the index."""
        return self.user_vocab[self.user_index]

    @property
    def item_id(self) -> NDArray[np.str_]:
        """Item id per row. Builds a new fixed-width array on every access: prefer the index."""
        return self.item_vocab[self.item_index]

    @classmethod
    def from_ids(
        cls,
        user_id: ArrayLike,
        item_id: ArrayLike,
        weight: ArrayLike,
        event: ArrayLike | None = None,
        timestamp: ArrayLike | None = None,
        watch_ratio: ArrayLike | None = None,
        rejected: Mapping[str, int] | None = None,
    ) -> Interactions:
        """Build from per-row id arrays (tests, in-memory pipelines). No validation of values.

        Parameters
        ----------
        user_id, item_id
            Per-row ids (anything ``pyarrow.array`` accepts as strings).
        weight
            Per-row weights.
        event
            Per-row event codes; ``-1`` everywhere when omitted.
        timestamp
            Per-row seconds; ``0`` everywhere when omitted.
        watch_ratio
            Per-row watch ratios; NaN everywhere when omitted.
        rejected
            Initial rejected-row counts.

        Returns
        -------
        Interactions
        """
        uv, ui = _factorize(pa.array(np.asarray(user_id, dtype=np.str_)))
        iv, ii = _factorize(pa.array(np.asarray(item_id, dtype=np.str_)))
        n = len(ui)
        return cls(
            user_vocab=uv,
            user_index=ui,
            item_vocab=iv,
            item_index=ii,
            weight=np.asarray(weight, dtype=np.float32),
            event=(
                np.full(n, S.NO_EVENT, np.int8)
                if event is None
                else np.asarray(event, dtype=np.int8)
            ),
            timestamp=(
                np.zeros(n, np.int64)
                if timestamp is None
                else np.asarray(timestamp, dtype=np.int64)
            ),
            watch_ratio=(
                np.full(n, np.nan, np.float32)
                if watch_ratio is None
                else np.asarray(watch_ratio, dtype=np.float32)
            ),
            rejected=dict(rejected or {}),
        )

    def select(self, rows: NDArray[np.bool_] | NDArray[np.integer]) -> Interactions:
        """Subset of rows (boolean mask or integer positions); vocabularies are compacted.

        ``rejected`` is copied unchanged: callers that drop rows for a reason add it themselves.
        """
        uv, ui = _compact(self.user_vocab, self.user_index[rows])
        iv, ii = _compact(self.item_vocab, self.item_index[rows])
        return Interactions(
            user_vocab=uv,
            user_index=ui,
            item_vocab=iv,
            item_index=ii,
            weight=self.weight[rows],
            event=self.event[rows],
            timestamp=self.timestamp[rows],
            watch_ratio=self.watch_ratio[rows],
            rejected=dict(self.rejected),
        )


@dataclass(frozen=True, eq=False)
class Items:
    """Validated items table, one entry per input row (input order kept).

    Attributes
    ----------
    item_id, creator_id
        Ids (unique for ``item_id``), whitespace-trimmed.
    keywords
        object array of str: tags lower-cased, trimmed, empties dropped, joined by ``|``
        (``""`` for no tags). Object arrays because free text has long tails and a fixed-width
        array would pay for the longest value on every row.
    title
        object array of str, ``""`` where absent.
    publish_ts
        int64 seconds since the Unix epoch (UTC).
    group
        Fairness group label, ``""`` where absent (to be derived downstream).
    """

    item_id: NDArray[np.str_]
    creator_id: NDArray[np.str_]
    keywords: NDArray[np.object_]
    title: NDArray[np.object_]
    publish_ts: NDArray[np.int64]
    group: NDArray[np.str_]

    @property
    def n_rows(self) -> int:
        """Number of items."""
        return len(self.item_id)

    def keyword_lists(self) -> list[list[str]]:
        """Tags of each item as Python lists (convenient, not for millions of items)."""
        return [kw.split(S.KEYWORD_SEP) if kw else [] for kw in self.keywords]

    def keyword_csr(self) -> tuple[NDArray[np.int64], NDArray[np.str_]]:
        """Tags in CSR form: tags of item ``i`` are ``tags[indptr[i]:indptr[i + 1]]``.

        Returns
        -------
        indptr : NDArray[np.int64]
            Length ``n_rows + 1``.
        tags : NDArray[np.str_]
            All tags, item after item.
        """
        kw = pa.array(self.keywords, type=pa.string())
        lists = pc.split_pattern(kw, S.KEYWORD_SEP)
        flat = lists.flatten()
        keep = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
        parent = lists.value_parent_indices().to_numpy()[keep]
        indptr = np.zeros(self.n_rows + 1, np.int64)
        np.cumsum(np.bincount(parent, minlength=self.n_rows), out=indptr[1:])
        tags = np.array(flat.filter(pa.array(keep)).to_pylist(), dtype=np.str_)
        return indptr, tags

    def positions(self, ids: ArrayLike) -> NDArray[np.int64]:
        """Row of each id in this table, ``-1`` where the id is not an item (hash join)."""
        found = pc.index_in(
            pa.array(np.asarray(ids, dtype=np.str_)), value_set=pa.array(self.item_id)
        )
        out: NDArray[np.int64] = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return out


# --------------------------------------------------------------------------- reading files


@dataclass
class _Source:
    """A table read from disk plus what is needed to turn row positions into row numbers."""

    file: str
    table: pa.Table
    is_csv: bool

    def row(self, idx: int) -> int:
        """User-facing row number of 0-based data row ``idx`` (see module docstring)."""
        if not self.is_csv:
            return idx + 1
        # Quoted values may span lines; count their newlines so the number matches an editor.
        extra = 0
        if idx > 0:
            for col in self.table.columns:
                if pa.types.is_string(col.type) or pa.types.is_binary(col.type):
                    counts = pc.count_substring(col.slice(0, idx), "\n")
                    extra += int(pc.sum(counts).as_py() or 0)
        return idx + 2 + extra

    def column(self, name: str) -> pa.Array:
        col = self.table.column(name)
        return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _suffix_format(path: Path, file: str) -> str:
    name = path.name.lower()
    for suffix, fmt in sorted(S.SUFFIX_FORMATS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return fmt
    raise InputError(
        file,
        None,
        None,
        f"unsupported file type; expected one of {', '.join(S.SUFFIX_FORMATS)}",
    )


def _read(path: PathLike, known: Sequence[str]) -> _Source:
    """Read the ``known`` columns that exist in the file; other columns are ignored."""
    file = os.fspath(path)
    p = Path(file)
    fmt = _suffix_format(p, file)
    if not p.exists():
        raise FileNotFoundError(file)
    if fmt == "parquet":
        try:
            names = pq.read_schema(p).names
            present = [c for c in known if c in names]
            return _Source(file, pq.read_table(p, columns=present), is_csv=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(file, None, None, f"cannot read Parquet: {exc}") from exc
    try:
        with pcsv.open_csv(p) as probe:  # reads one block: just the header is needed
            names = probe.schema.names
    except pa.ArrowInvalid as exc:
        if "Empty CSV" in str(exc):
            raise InputError(file, None, None, "file is empty (no header, no data rows)") from exc
        raise InputError(file, None, None, f"cannot parse CSV: {exc}") from exc
    present = [c for c in known if c in names]
    convert = pcsv.ConvertOptions(
        # Binary first, UTF-8 checked afterwards, so a bad byte can be pinned to a row.
        column_types={c: pa.binary() for c in present},
        include_columns=present,
        strings_can_be_null=True,
        null_values=[""],
    )
    parse = pcsv.ParseOptions(newlines_in_values=True)
    try:
        table = pcsv.read_csv(p, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise InputError(file, None, None, f"cannot parse CSV: {exc}") from exc
    src = _Source(file, table, is_csv=True)
    for name in present:
        col = src.column(name)
        try:
            text = col.cast(pa.string())
        except pa.ArrowInvalid:
            bad = _first_failure(col, lambda a: a.cast(pa.string()))
            raise InputError(file, src.row(bad), name, "value is not valid UTF-8") from None
        src.table = src.table.set_column(src.table.schema.get_field_index(name), name, text)
    return src


def _check_columns(src: _Source, required: Sequence[str], one_of: Sequence[str]) -> None:
    names = src.table.column_names
    for name in required:
        if name not in names:
            raise InputError(src.file, None, name, "required column is missing")
    if not any(c in names for c in one_of):
        raise InputError(
            src.file,
            None,
            None,
            f"needs at least one of the columns {', '.join(one_of)}",
        )
    if src.table.num_rows == 0:
        raise InputError(src.file, None, None, "no data rows")


# --------------------------------------------------------------------------- validation


class _Problems:
    """Collects problems and keeps the one earliest in the file (ties: first recorded)."""

    def __init__(self, src: _Source) -> None:
        self.src = src
        self.best: tuple[int, int, str, str] | None = None
        self.seq = 0

    def add(self, idx: int, column: str, detail: str) -> None:
        key = (idx, self.seq, column, detail)
        self.seq += 1
        if self.best is None or key[:2] < self.best[:2]:
            self.best = key

    def add_mask(self, mask: NDArray[np.bool_], column: str, detail: Callable[[int], str]) -> None:
        if mask.any():
            idx = int(np.argmax(mask))
            self.add(idx, column, detail(idx))

    def raise_first(self) -> None:
        if self.best is not None:
            idx, _, column, detail = self.best
            raise InputError(self.src.file, self.src.row(idx), column, detail)


def _show(col: pa.Array, idx: int) -> str:
    value = col[idx].as_py()
    text = str(value) if value is not None else ""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _first_failure(arr: pa.Array, convert: Callable[[pa.Array], object]) -> int:
    """Index of the first element ``convert`` rejects, given that it rejects ``arr``.

    Bisection on zero-copy slices: about 2n elements converted in total, no Python row loop.
    Valid because the conversions used here are element-wise.
    """
    lo, hi = 0, len(arr)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(arr.slice(lo, mid - lo))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
        else:
            lo = mid
    return lo


def _cast(arr: pa.Array, to: pa.DataType) -> tuple[pa.Array, int | None]:
    """Cast, or on failure return the index of the first bad element and the cast prefix."""
    try:
        return arr.cast(to), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = _first_failure(arr, lambda a: a.cast(to))
        return arr.slice(0, bad).cast(to), bad


def _np_bool(arr: pa.Array | pa.ChunkedArray) -> NDArray[np.bool_]:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _blank(col: pa.Array) -> NDArray[np.bool_]:
    """Null, empty or whitespace-only."""
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        empty = pc.equal(pc.utf8_trim_whitespace(col), "").fill_null(True)
        return _np_bool(empty)
    return _np_bool(col.is_null())


def _as_text(col: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_large_string(col.type) or not pa.types.is_string(col.type):
        col = col.cast(pa.string())
    return col


def _ids(src: _Source, name: str, problems: _Problems) -> pa.Array:
    """Trimmed string ids; empty ones are recorded as problems."""
    col = _as_text(src.column(name))
    col = pc.utf8_trim_whitespace(col)
    blank = _np_bool(pc.equal(col, "").fill_null(True))
    problems.add_mask(blank, name, lambda i: f"empty {name}")
    return col.fill_null("")


def _floats(
    src: _Source, name: str, problems: _Problems
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Parse a numeric column; returns (values with NaN where blank, blank mask)."""
    col = src.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    n = len(col)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        blank = _np_bool(col.is_null())
    else:
        text = pc.utf8_trim_whitespace(_as_text(col))
        blank = _np_bool(pc.equal(text, "").fill_null(True))
        text = pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), text)
        parsed, bad = _cast(text, pa.float64())
        values = np.full(n, np.nan)
        values[: len(parsed)] = parsed.to_numpy(zero_copy_only=False)
        if bad is not None:
            problems.add(bad, name, f"{_show(text, bad)} is not a number")
            blank = blank.copy()
            blank[bad:] = True  # unknown past the failure; keep later checks quiet there
    values = np.asarray(values, dtype=np.float64)
    nonfinite = ~blank & ~np.isfinite(values)
    problems.add_mask(nonfinite, name, lambda i: f"{_show(col, i)} is not a finite number")
    return values, blank


def _timestamps(src: _Source, name: str, problems: _Problems) -> NDArray[np.int64]:
    """Parse integer seconds and/or ISO-8601 text (naive = UTC) into int64 seconds."""
    col = src.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    problems.add_mask(_blank(col), name, lambda i: f"empty {name}")
    typ = col.type
    if pa.types.is_integer(typ):
        return np.asarray(col.cast(pa.int64()).fill_null(0).to_numpy(), dtype=np.int64)
    if pa.types.is_floating(typ):
        f = col.cast(pa.float64()).fill_null(0.0).to_numpy()
        bad = ~np.isfinite(f) | (f != np.floor(f))
        problems.add_mask(bad, name, lambda i: f"{_show(col, i)} {_TS_EXPECTED}")
        return np.where(bad, 0, f).astype(np.int64)
    if pa.types.is_timestamp(typ):
        raw = col.cast(pa.int64()).fill_null(0).to_numpy()
        return np.asarray(raw // _UNIT_PER_S[typ.unit], dtype=np.int64)
    if pa.types.is_date(typ):
        secs = col.cast(pa.timestamp("s")).cast(pa.int64()).fill_null(0).to_numpy()
        return np.asarray(secs, dtype=np.int64)
    text = pc.utf8_trim_whitespace(_as_text(col)).fill_null("")
    return _parse_ts_text(text, name, problems)


def _parse_ts_text(text: pa.Array, name: str, problems: _Problems) -> NDArray[np.int64]:
    n = len(text)
    out = np.zeros(n, np.int64)
    is_int = _np_bool(pc.match_substring_regex(text, _INT_RE))
    blank = _np_bool(pc.equal(text, ""))
    if is_int.all():
        try:  # fast path: a clean integer column, one cast
            out[:] = text.cast(pa.int64()).to_numpy()
            return out
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    int_rows = np.flatnonzero(is_int)
    iso_rows = np.flatnonzero(~is_int & ~blank)
    if int_rows.size:
        sub = pc.replace_substring_regex(text.take(pa.array(int_rows)), r"^\+", "")
        parsed, bad = _cast(sub, pa.int64())
        out[int_rows[: len(parsed)]] = parsed.to_numpy()
        if bad is not None:
            i = int(int_rows[bad])
            problems.add(i, name, f"{_show(text, i)} is out of range for int64 seconds")
    if iso_rows.size:
        sub = text.take(pa.array(iso_rows))
        zoned = _np_bool(pc.match_substring_regex(sub, _ZONED_RE))
        for mask, typ in ((zoned, pa.timestamp("ns", tz="UTC")), (~zoned, pa.timestamp("ns"))):
            rows = iso_rows[mask]
            if not rows.size:
                continue
            parsed, bad = _cast(sub.filter(pa.array(mask)), typ)
            ns = parsed.cast(pa.int64()).to_numpy()
            out[rows[: len(ns)]] = np.floor_divide(ns, _NS_PER_S)
            if bad is not None:
                i = int(rows[bad])
                problems.add(i, name, f"{_show(text, i)} {_TS_EXPECTED}")
    return out


def _events(src: _Source, problems: _Problems) -> tuple[NDArray[np.int8], NDArray[np.bool_]]:
    """Event codes (``-1`` where blank) and the blank mask."""
    col = _as_text(src.column(S.EVENT))
    names = pa.array(S.EVENT_TYPES)
    codes = pc.index_in(col, value_set=names)
    blank = _np_bool(col.is_null())
    unmatched = _np_bool(codes.is_null()) & ~blank
    if unmatched.any():
        # Slow path only when needed: tolerate case and surrounding spaces ("Like ").
        col = pc.utf8_lower(pc.utf8_trim_whitespace(col))
        codes = pc.index_in(col, value_set=names)
        blank = _np_bool(pc.equal(col, "").fill_null(True))
        unmatched = _np_bool(codes.is_null()) & ~blank
        problems.add_mask(
            unmatched,
            S.EVENT,
            lambda i: (
                f"unknown event type {_show(col, i)} (expected one of {', '.join(S.EVENT_TYPES)})"
            ),
        )
    out = codes.fill_null(S.NO_EVENT).to_numpy(zero_copy_only=False).astype(np.int8)
    return out, blank


# --------------------------------------------------------------------------- public loaders


def load_interactions(
    path: PathLike,
    *,
    event_weights: Mapping[str, float] | None = None,
    skip_unknown_items: Items | None = None,
) -> Interactions:
    """Load and validate an interactions table.

    Parameters
    ----------
    path
        ``.csv``, ``.csv.gz`` or ``.parquet`` file with the columns of docs/DATA.md.
    event_weights
        Overrides of :data:`schema.DEFAULT_EVENT_WEIGHTS` (partial mappings allowed).
    skip_unknown_items
        When given, rows whose ``item_id`` is not in this items table are dropped and counted
        in ``rejected["unknown_item"]`` (see :func:`filter_unknown_items`).

    Returns
    -------
    Interactions

    Raises
    ------
    InputError
        On the first (in file order) malformed row, or a missing column / empty file.
    ValueError
        If ``event_weights`` names an unknown event.
    FileNotFoundError
        If ``path`` does not exist.
    """
    table = np.asarray(S.event_weight_table(event_weights), dtype=np.float32)
    src = _read(path, (S.USER_ID, S.ITEM_ID, S.EVENT, S.WEIGHT, S.TIMESTAMP, S.WATCH_RATIO))
    _check_columns(src, S.INTERACTION_REQUIRED, S.INTERACTION_SIGNAL_COLUMNS)
    names = src.table.column_names
    n = src.table.num_rows
    problems = _Problems(src)

    users = _ids(src, S.USER_ID, problems)
    items = _ids(src, S.ITEM_ID, problems)
    if S.EVENT in names:
        event, event_blank = _events(src, problems)
    else:
        event, event_blank = np.full(n, S.NO_EVENT, np.int8), np.ones(n, np.bool_)
    if S.WEIGHT in names:
        explicit, weight_blank = _floats(src, S.WEIGHT, problems)
    else:
        explicit, weight_blank = np.full(n, np.nan), np.ones(n, np.bool_)
    neither = event_blank & weight_blank
    problems.add_mask(
        neither,
        S.EVENT if S.EVENT in names else S.WEIGHT,
        lambda i: "row has neither an event nor a weight",
    )
    timestamp = _timestamps(src, S.TIMESTAMP, problems)
    if S.WATCH_RATIO in names:
        ratio, ratio_blank = _floats(src, S.WATCH_RATIO, problems)
        with np.errstate(invalid="ignore"):
            too_low, too_high = ratio < S.WATCH_RATIO_MIN, ratio > S.WATCH_RATIO_MAX
            out_of_range = ~ratio_blank & (too_low | too_high)
        problems.add_mask(
            out_of_range,
            S.WATCH_RATIO,
            lambda i: f"{ratio[i]:g} is outside [{S.WATCH_RATIO_MIN:g}, {S.WATCH_RATIO_MAX:g}]",
        )
        ratio = np.where(ratio_blank, np.nan, ratio)
    else:
        ratio = np.full(n, np.nan)
    problems.raise_first()

    event_weight = table[np.maximum(event, 0)]  # -1 rows are overwritten by explicit weights
    weight = np.where(weight_blank, event_weight, explicit).astype(np.float32)
    uv, ui = _factorize(users)
    iv, ii = _factorize(items)
    result = Interactions(
        user_vocab=uv,
        user_index=ui,
        item_vocab=iv,
        item_index=ii,
        weight=weight,
        event=event,
        timestamp=timestamp,
        watch_ratio=ratio.astype(np.float32),
        rejected={},
    )
    if skip_unknown_items is not None:
        result = filter_unknown_items(result, skip_unknown_items)
    return result


def _normalise_keywords(col: pa.Array) -> pa.Array:
    """Lower-case and trim every tag, drop empty tags, re-join with ``|`` (vectorised)."""
    col = col.fill_null("")
    lists = pc.split_pattern(col, S.KEYWORD_SEP)
    flat = pc.utf8_lower(pc.utf8_trim_whitespace(lists.flatten()))
    keep = pc.not_equal(flat, "")
    parent = lists.value_parent_indices().filter(keep).to_numpy()
    offsets = np.zeros(len(col) + 1, np.int32)
    np.cumsum(np.bincount(parent, minlength=len(col)), out=offsets[1:])
    rebuilt = pa.ListArray.from_arrays(pa.array(offsets), flat.filter(keep))
    return pc.binary_join(rebuilt, S.KEYWORD_SEP)


def load_items(path: PathLike) -> Items:
    """Load and validate an items table.

    Parameters
    ----------
    path
        ``.csv``, ``.csv.gz`` or ``.parquet`` file with the columns of docs/DATA.md.

    Returns
    -------
    Items

    Raises
    ------
    InputError
        On the first (in file order) malformed row, a duplicate ``item_id``, or a missing
        column / empty file.
    FileNotFoundError
        If ``path`` does not exist.
    """
    src = _read(path, (S.ITEM_ID, S.CREATOR_ID, S.KEYWORDS, S.TITLE, S.PUBLISH_TS, S.GROUP))
    _check_columns(src, S.ITEM_REQUIRED, S.ITEM_TEXT_COLUMNS)
    names = src.table.column_names
    n = src.table.num_rows
    problems = _Problems(src)

    item_id = _ids(src, S.ITEM_ID, problems)
    # dictionary_encode numbers ids by first appearance, so a row repeats an earlier id exactly
    # when its code is not larger than every code before it.
    codes = pc.dictionary_encode(item_id).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    prev_max = np.concatenate(([-1], np.maximum.accumulate(codes)[:-1]))
    dup = codes <= prev_max
    problems.add_mask(
        dup,
        S.ITEM_ID,
        lambda i: (
            f"duplicate item_id {_show(item_id, i)} "
            f"(first at row {src.row(int(np.argmax(codes == codes[i])))})"
        ),
    )
    creator_id = _ids(src, S.CREATOR_ID, problems)
    publish_ts = _timestamps(src, S.PUBLISH_TS, problems)
    problems.raise_first()

    empty = pa.array([""] * n, pa.string())
    keywords = (
        _normalise_keywords(_as_text(src.column(S.KEYWORDS))) if S.KEYWORDS in names else empty
    )
    title = _as_text(src.column(S.TITLE)).fill_null("") if S.TITLE in names else empty
    group = (
        pc.utf8_trim_whitespace(_as_text(src.column(S.GROUP))).fill_null("")
        if S.GROUP in names
        else empty
    )
    return Items(
        item_id=_to_str_array(item_id),
        creator_id=_to_str_array(creator_id),
        keywords=np.asarray(keywords.to_numpy(zero_copy_only=False), dtype=object),
        title=np.asarray(title.to_numpy(zero_copy_only=False), dtype=object),
        publish_ts=publish_ts,
        group=_to_str_array(group),
    )


def _to_str_array(col: pa.Array) -> NDArray[np.str_]:
    vocab, index = _factorize(col)
    return vocab[index] if vocab.size else np.full(len(col), "", dtype="<U1")


def filter_unknown_items(interactions: Interactions, items: Items) -> Interactions:
    """Drop interactions whose item is not in ``items``; count them in ``rejected``.

    Parameters
    ----------
    interactions
        Loaded interactions.
    items
        Items table the interactions must refer to.

    Returns
    -------
    Interactions
        Rows kept, with ``rejected["unknown_item"]`` increased by the number dropped.
    """
    known = pc.is_in(pa.array(interactions.item_vocab), value_set=pa.array(items.item_id))
    known_vocab = _np_bool(known)
    keep = known_vocab[interactions.item_index]
    dropped = int(keep.size - np.count_nonzero(keep))
    result = interactions.select(keep) if dropped else interactions
    rejected = dict(interactions.rejected)
    rejected["unknown_item"] = rejected.get("unknown_item", 0) + dropped
    return Interactions(
        user_vocab=result.user_vocab,
        user_index=result.user_index,
        item_vocab=result.item_vocab,
        item_index=result.item_index,
        weight=result.weight,
        event=result.event,
        timestamp=result.timestamp,
        watch_ratio=result.watch_ratio,
        rejected=rejected,
    )


# --------------------------------------------------------------------------- writing


def write_table(table: pa.Table, path: PathLike) -> None:
    """Write ``table`` as CSV/CSV.gz/Parquet (by suffix), atomically.

    The data goes to a hidden temporary file in the same directory, then ``os.replace``
    moves it into place, so readers never see a half-written file.

    Parameters
    ----------
    table
        Table to write; column order is kept.
    path
        Destination; parent directories are created.
    """
    file = os.fspath(path)
    p = Path(file)
    fmt = _suffix_format(p, file)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        if fmt == "parquet":
            pq.write_table(table, tmp)
        else:
            options = pcsv.WriteOptions(quoting_style="needed")
            if p.name.lower().endswith(".gz"):
                with pa.CompressedOutputStream(str(tmp), "gzip") as out:
                    pcsv.write_csv(table, out, write_options=options)
            else:
                pcsv.write_csv(table, tmp, write_options=options)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
