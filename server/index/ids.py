"""Compact string-id tables: int → id and id → int without a Python dict.

A dict of a million ids costs ~100 MB per serving process and is rebuilt by every process;
a sorted fixed-width byte array costs ~8 bytes per id and answers look-ups by binary search,
which is plenty for the handful of ids a request names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import cast, overload

import numpy as np
from numpy.typing import NDArray


class IdTable(Sequence[str]):
    """Row number ⇄ string id for one id space (items, users or creators)."""

    def __init__(self, ids: Iterable[str]) -> None:
        encoded = [s.encode("utf-8") for s in ids]
        width = max((len(b) for b in encoded), default=1) or 1
        self._ids: NDArray[np.bytes_] = np.array(encoded, dtype=f"S{width}")
        self._order: NDArray[np.int64] = np.argsort(self._ids, kind="stable")
        self._sorted: NDArray[np.bytes_] = self._ids[self._order]
        # Rank of each id in byte order: the deterministic "ties by id" key, one gather away.
        self.rank: NDArray[np.int64] = np.empty(len(encoded), np.int64)
        self.rank[self._order] = np.arange(len(encoded))
        self.rows = IdIndex(self)

    @classmethod
    def from_lines(cls, path: Path) -> IdTable:
        return cls(path.read_text(encoding="utf-8").split("\n")[:-1])

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [b.decode("utf-8") for b in self._ids[i].tolist()]
        return bytes(self._ids[int(i)]).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        return (b.decode("utf-8") for b in self._ids.tolist())

    def row(self, key: str) -> int:
        """Row of one id, -1 when unknown: `lookup` for a single id without building arrays
        (the per-request user look-up, a few microseconds instead of ~15)."""
        raw = _encode(key)
        n = len(self)
        if raw is None or not 0 < len(raw) <= self._ids.dtype.itemsize or n == 0:
            return -1
        pos = int(self._sorted.searchsorted(raw))
        if pos < n and self._sorted[pos] == raw:
            return int(self._order[pos])
        return -1

    def encoded(self, rows: NDArray[np.integer]) -> list[bytes]:
        """The UTF-8 bytes of the ids at `rows`, without decoding them (for native encoders)."""
        return cast(list[bytes], self._ids[rows].tolist())

    def lookup(self, ids: Sequence[str]) -> NDArray[np.int64]:
        """Row of each id, -1 where unknown (vectorised binary search)."""
        if len(ids) == 0 or len(self) == 0:
            return np.full(len(ids), -1, np.int64)
        raw = [_encode(s) for s in ids]
        q = np.array([b or b"" for b in raw], dtype=self._ids.dtype)
        pos = np.minimum(np.searchsorted(self._sorted, q), len(self) - 1)
        found = self._sorted[pos] == q
        # Unencodable ids, and ids longer than the table's width (truncated by the dtype),
        # can never be in the table.
        width = self._ids.dtype.itemsize
        # A trailing NUL would be stripped by the dtype too: such an id is never stored.
        valid = np.array(
            [b is not None and 0 < len(b) <= width and not b.endswith(b"\0") for b in raw]
        )
        return np.where(found & valid, self._order[pos], -1).astype(np.int64)


class IdIndex:
    """The id → row direction of an `IdTable`, with the mapping methods callers use."""

    def __init__(self, table: IdTable) -> None:
        self._t = table

    def get(self, key: str, default: int | None = None) -> int | None:
        if not isinstance(key, str):
            return default
        row = self._t.row(key)
        return default if row < 0 else row

    def __getitem__(self, key: str) -> int:
        row = self.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        return len(self._t)


def _encode(s: str) -> bytes | None:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        return None
