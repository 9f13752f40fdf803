"""Amortised exposure: per-group exposure over the server's recent pages and a dual price.

In the spirit of P-MMF (Xu et al., WWW 2023): each group has a dual variable (price) that rises
while the group's position-discounted exposure share falls short of its target and falls back
when it overshoots (projected online gradient steps, clipped to [0, max_price]). The re-ranker
adds the price to the relevance of the group's items, so under-exposed groups reach their target
share over traffic rather than within every page. The tracker also keeps the shares of the last
`window` pages for the report and metrics, and each creator's exposure over them: the
creator-level term (`creator_price`) lifts creators below the mean exposure per creator and
damps those above it, P-MMF's provider-level price in a closed form. Thread-safe; one per
server.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
from numpy.typing import NDArray


class ExposureTracker:
    """Sliding-window group exposure and per-group dual prices, keyed by group name."""

    def __init__(self, window: int = 1000) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._lock = threading.Lock()
        self._pages: deque[dict[str, float]] = deque()
        self._sum: dict[str, float] = {}
        self._price: dict[str, float] = {}
        self._creator_key = ""
        self._creator_sum: NDArray[np.float64] = np.zeros(0)
        self._creator_total = 0.0
        self._creator_seen = 0  # highest creator code recorded + 1
        # Per recorded page: its creators, their exposure and the exposure's sum.
        self._creator_pages: deque[tuple[NDArray[np.int64], NDArray[np.float64], float]] = deque()

    def creator_price(
        self, key: str, creators: NDArray[np.int64], n_creators: int = 0
    ) -> NDArray[np.float64]:
        """Creator-level exposure term of each given creator, in [-1, 1].

        `1 - e_c / m`, clipped to [-1, 1]: `e_c` is the creator's position-discounted exposure
        over the window's pages and `m` the mean over `n_creators` creators (the catalogue's;
        at least every creator code seen). +1 for a creator not shown in the window, 0 at the
        mean, -1 at twice the mean or more. Zeros before any page is recorded. `key` names the
        creator-code space (the snapshot version); a new key starts afresh.
        """
        with self._lock:
            if key != self._creator_key or self._creator_total <= 0:
                return np.zeros(creators.size)
            mean = self._creator_total / max(n_creators, self._creator_seen)
            size = self._creator_sum.size
            if creators.size and int(np.maximum.reduce(creators)) < size:
                load = self._creator_sum[creators]
            else:  # creators never recorded have no load
                load = np.zeros(creators.size)
                inside = creators < size
                load[inside] = self._creator_sum[creators[inside]]
        out: NDArray[np.float64] = 1.0 - load / mean
        # np.clip(out, -1, 1) without its Python wrapper (the same values, NaN kept).
        np.maximum(out, -1.0, out=out)
        np.minimum(out, 1.0, out=out)
        return out

    def record_creators(
        self, key: str, creators: NDArray[np.int64], exposure: NDArray[np.float64]
    ) -> None:
        """Add one page's per-position exposure of its creators (snapshot creator codes)."""
        with self._lock:
            if key != self._creator_key:
                self._creator_key = key
                self._creator_sum = np.zeros(0)
                self._creator_total = 0.0
                self._creator_seen = 0
                self._creator_pages.clear()
            top = int(np.maximum.reduce(creators)) + 1 if creators.size else 0
            self._creator_seen = max(self._creator_seen, top)
            if top > self._creator_sum.size:
                grown = np.zeros(max(top, 2 * self._creator_sum.size))
                grown[: self._creator_sum.size] = self._creator_sum
                self._creator_sum = grown
            np.add.at(self._creator_sum, creators, exposure)
            total = float(exposure.sum())
            self._creator_total += total
            self._creator_pages.append((creators.copy(), exposure.copy(), total))
            while len(self._creator_pages) > self.window:
                c, e, t = self._creator_pages.popleft()
                np.subtract.at(self._creator_sum, c, e)
                self._creator_total -= t

    def prices(self, group_names: list[str]) -> NDArray[np.float64]:
        with self._lock:
            return np.array([self._price.get(g, 0.0) for g in group_names])

    def window_shares(self, group_names: list[str]) -> NDArray[np.float64]:
        with self._lock:
            total = sum(self._sum.values())
            if total <= 0:
                return np.zeros(len(group_names))
            return np.array([self._sum.get(g, 0.0) / total for g in group_names])

    @property
    def pages(self) -> int:
        with self._lock:
            return len(self._pages)

    def record(
        self,
        group_names: list[str],
        exposure: NDArray[np.float64],
        target: NDArray[np.float64],
        *,
        step: float,
        max_price: float,
        update_prices: bool = True,
        aim: float = 1.0,
    ) -> None:
        """Add one page's exposure per group (unnormalised) and take a price step.

        The prices aim at `aim * target`: a group's price rises while its page share is below
        that and falls while above.
        """
        values = exposure.tolist()
        if exposure.dtype == np.float64 and exposure.ndim == 1 and len(values) < 8:
            total = 0.0  # numpy sums fewer than 8 terms in order: the same float
            for e in values:
                total += e
        else:
            total = float(exposure.sum())
        if total <= 0:
            return
        page = {g: float(e) for g, e in zip(group_names, values, strict=True)}
        with self._lock:
            self._pages.append(page)
            sums = self._sum
            for g, e in page.items():
                sums[g] = sums.get(g, 0.0) + e
            while len(self._pages) > self.window:
                for g, e in self._pages.popleft().items():
                    sums[g] -= e
            if update_prices:
                for g, e, t in zip(group_names, values, target.tolist(), strict=True):
                    a = aim * t
                    if a <= 0:
                        continue
                    gap = (a - e / total) / a  # relative shortfall of this page
                    p = self._price.get(g, 0.0) + step * gap
                    self._price[g] = min(max(p, 0.0), max_price)
