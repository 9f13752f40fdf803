"""FA*IR's ranked group fairness test (Zehlike et al., CIKM 2017).

A ranking of length k passes when, for every prefix i <= k, the number of protected items is at
least ``m(i)``, the smallest count whose binomial CDF ``F(m; i, p)`` exceeds the significance
``alpha``: a ranking drawn by picking a protected item with probability ``p`` at every position
would have fewer only with probability <= alpha. Testing k prefixes at once inflates the type I
error, so ``adjusted_alpha`` searches the corrected alpha_c whose table fails such a fair random
ranking with overall probability ``alpha`` (the paper's Algorithm 3, here by bisection on an exact
dynamic programme instead of Monte Carlo).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray
from scipy import stats


def _table(k: int, p: float, alpha: float) -> NDArray[np.int64]:
    """``m[i]`` for i = 0..k: min protected count in the top i (``m[0] = 0``)."""
    i = np.arange(k + 1)
    m = np.arange(k + 1)
    cdf = stats.binom.cdf(m[None, :], i[:, None], p)  # cdf[i, m]; 1 for m >= i
    out: NDArray[np.int64] = np.argmax(cdf > alpha, axis=1).astype(np.int64)
    return out


def fail_probability(table: NDArray[np.int64], p: float) -> float:
    """Probability that a fair random ranking (Bernoulli(p) per position) fails any prefix."""
    k = table.size - 1
    dist = np.zeros(k + 1)
    dist[0] = 1.0
    for i in range(1, k + 1):
        nxt = dist * (1.0 - p)
        nxt[1:] += dist[:-1] * p
        nxt[: int(table[i])] = 0.0
        dist = nxt
    return float(max(0.0, 1.0 - dist.sum()))


@functools.lru_cache(maxsize=512)
def _mtable_cached(k: int, p: float, alpha: float, adjust: bool) -> tuple[NDArray[np.int64], float]:
    if p <= 0.0 or k == 0:
        return np.zeros(k + 1, np.int64), alpha
    if not adjust:
        return _table(k, p, alpha), alpha
    if fail_probability(_table(k, p, alpha), p) <= alpha:
        return _table(k, p, alpha), alpha
    lo, hi = 0.0, alpha  # fail(lo) = 0 <= alpha < fail(hi)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if fail_probability(_table(k, p, mid), p) <= alpha:
            lo = mid
        else:
            hi = mid
    return _table(k, p, lo), lo


def mtable(
    k: int, p: float, alpha: float, *, adjust: bool = True
) -> tuple[NDArray[np.int64], float]:
    """(``m[0..k]``, alpha used): FA*IR's minimum protected counts per prefix.

    With ``adjust`` the table is built at the corrected alpha_c (returned) so that the whole
    k-prefix test has type I error <= ``alpha``. Cached: p is rounded to 1e-4.
    """
    table, a = _mtable_cached(int(k), round(float(p), 4), float(alpha), adjust)
    return table.copy(), a


def passes(protected: NDArray[np.bool_], p: float, alpha: float) -> tuple[bool, float]:
    """Whether the ranking (protected flag per position) passes the adjusted FA*IR test."""
    return passes_flags(protected.tolist(), p, alpha)


def passes_flags(protected: list[bool], p: float, alpha: float) -> tuple[bool, float]:
    """`passes` for a list of flags (a page's 20 positions: no numpy round trips)."""
    table, a = _mtable_list(len(protected), round(float(p), 4), float(alpha))
    # Prefix 0 holds no protected item; prefix i holds the flags of positions 1..i.
    if table[0] > 0:
        return False, a
    count = 0
    for flag, m in zip(protected, table[1:], strict=True):
        count += flag
        if count < m:
            return False, a
    return True, a


@functools.lru_cache(maxsize=512)
def _mtable_list(k: int, p: float, alpha: float) -> tuple[tuple[int, ...], float]:
    """`mtable(k, p, alpha)` as a tuple of ints (p already rounded as `mtable` rounds it)."""
    table, a = _mtable_cached(k, p, alpha, True)
    return tuple(table.tolist()), a
