"""A mergeable log-bucket latency histogram (HdrHistogram-like).

Values are counted in buckets whose bounds grow geometrically by ``1 + precision``, as in the
gRPC qps client's ``Histogram``; count, sum, min and max are kept exactly. A percentile is
reported as the geometric middle of the bucket that holds it (clamped to the exact min/max),
so its relative error is at most about ``precision / 2``. Histograms with the same
parameters merge by adding bucket counts, which is how load-test workers' results combine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["LogHistogram"]


class LogHistogram:
    """Log-bucket histogram of positive values (seconds, by convention).

    Parameters
    ----------
    precision : float, default 0.01
        Relative width of a bucket: bucket ``i`` covers
        ``[lowest * (1+precision)**i, lowest * (1+precision)**(i+1))``.
    lowest : float, default 1e-6
        Smallest distinguishable value; smaller values (including 0) fall in bucket 0.

    Examples
    --------
    >>> h = LogHistogram()
    >>> for v in (0.010, 0.011, 0.012):
    ...     h.record(v)
    >>> h.count, round(h.percentile(50), 4)
    (3, 0.011)
    """

    __slots__ = ("_buckets", "_inv_log_base", "count", "lowest", "max", "min", "precision", "sum")

    def __init__(self, precision: float = 0.01, lowest: float = 1e-6) -> None:
        if not 0 < precision < 1:
            raise ValueError("precision must be in (0, 1)")
        if lowest <= 0:
            raise ValueError("lowest must be positive")
        self.precision = float(precision)
        self.lowest = float(lowest)
        self._inv_log_base = 1.0 / math.log1p(self.precision)
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    # ---------------------------------------------------------------- recording

    def bucket_index(self, value: float) -> int:
        """The bucket that ``value`` falls in."""
        if value <= self.lowest:
            return 0
        return int(math.log(value / self.lowest) * self._inv_log_base)

    def bucket_bounds(self, index: int) -> tuple[float, float]:
        """Lower and upper bound of bucket ``index``."""
        base = 1.0 + self.precision
        return self.lowest * base**index, self.lowest * base ** (index + 1)

    def record(self, value: float, count: int = 1) -> None:
        """Add ``count`` observations of ``value``."""
        index = self.bucket_index(value)
        self._buckets[index] = self._buckets.get(index, 0) + count
        self.count += count
        self.sum += value * count
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def record_many(self, values: Iterable[float]) -> None:
        """Add every value of ``values``."""
        for value in values:
            self.record(value)

    def merge(self, other: LogHistogram) -> None:
        """Add ``other``'s observations into this histogram (same parameters required)."""
        if (other.precision, other.lowest) != (self.precision, self.lowest):
            raise ValueError("cannot merge histograms with different precision or lowest")
        for index, n in other._buckets.items():
            self._buckets[index] = self._buckets.get(index, 0) + n
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def since(self, earlier: LogHistogram) -> LogHistogram:
        """The observations added after ``earlier``, a :meth:`copy` of this histogram.

        Count, sum and buckets are exact; min and max are the bounds of the lowest and
        highest non-empty bucket of the difference (clamped to this histogram's min/max).
        """
        if (earlier.precision, earlier.lowest) != (self.precision, self.lowest):
            raise ValueError("cannot subtract histograms with different precision or lowest")
        out = LogHistogram(self.precision, self.lowest)
        old = earlier._buckets
        if earlier.count > self.count or any(n > self._buckets.get(i, 0) for i, n in old.items()):
            raise ValueError("earlier is not a prefix of this histogram")
        buckets = {i: n - old.get(i, 0) for i, n in self._buckets.items() if n != old.get(i, 0)}
        out._buckets = buckets
        out.count = self.count - earlier.count
        out.sum = self.sum - earlier.sum
        if buckets:
            out.min = max(self.bucket_bounds(min(buckets))[0], self.min)
            out.max = min(self.bucket_bounds(max(buckets))[1], self.max)
        return out

    def copy(self) -> LogHistogram:
        """An independent copy."""
        twin = LogHistogram(self.precision, self.lowest)
        twin.merge(self)
        return twin

    # ---------------------------------------------------------------- reading

    @property
    def mean(self) -> float:
        """Exact mean (NaN when empty)."""
        return self.sum / self.count if self.count else math.nan

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile, ``q`` in [0, 100] (NaN when empty).

        The value at rank ``ceil(q/100 * count)`` (the "inverted CDF" definition), reported
        as its bucket's geometric middle and clamped to the exact min and max.
        """
        if not 0 <= q <= 100:
            raise ValueError("q must be in [0, 100]")
        if self.count == 0:
            return math.nan
        if q == 0:
            return self.min
        if q == 100:
            return self.max
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                low, high = self.bucket_bounds(index)
                middle = math.sqrt(low * high) if index > 0 else high / 2
                return min(max(middle, self.min), self.max)
        return self.max  # pragma: no cover - unreachable when counts are consistent

    def percentiles(self, qs: Iterable[float]) -> dict[str, float]:
        """Several percentiles keyed ``"p50"``, ``"p99.9"``, ..."""
        return {f"p{q:g}": self.percentile(q) for q in qs}

    def buckets(self) -> dict[int, int]:
        """A copy of the non-empty buckets (index to count)."""
        return dict(self._buckets)

    # ---------------------------------------------------------------- (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict that :meth:`from_dict` restores exactly."""
        return {
            "precision": self.precision,
            "lowest": self.lowest,
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "buckets": {str(k): v for k, v in sorted(self._buckets.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogHistogram:
        """Rebuild a histogram written by :meth:`to_dict`."""
        hist = cls(float(data["precision"]), float(data["lowest"]))
        hist._buckets = {int(k): int(v) for k, v in dict(data["buckets"]).items()}
        hist.count = int(data["count"])
        hist.sum = float(data["sum"])
        if hist.count:
            hist.min = float(data["min"])
            hist.max = float(data["max"])
        if sum(hist._buckets.values()) != hist.count:
            raise ValueError("histogram bucket counts do not add up to its count")
        return hist

    def __repr__(self) -> str:
        return (
            f"LogHistogram(count={self.count}, min={self.min:.6g}, "
            f"p50={self.percentile(50):.6g}, max={self.max:.6g})"
        )
