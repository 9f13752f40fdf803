"""A certified lower bound on the creator-exposure Gini any re-ranker can reach at a DCG level.

Setting: N pages; page u re-ranks its candidates (gains ``g >= 0``, creator ids) into
``k_u = min(page_size, candidates)`` distinct slots with non-increasing discounts ``d``. A
creator's exposure ``x_c`` is the sum of the discounts of its items' slots over all pages; the
total ``S`` is fixed. Mean DCG retained ``D = mean_u DCG_u / I_u`` (``I_u`` the ideal DCG of
page u; a page with ``I_u = 0`` counts 1). The Gini over all ``n`` creators is
``G(x) = f(x) - (n + 1) / n`` with ``f(x) = sum_k w_k x_(k) / S``, ``w_k = 2k / n``, ``x``
sorted ascending.

What is certified (`GiniBound.bound`): every re-ranker of these candidates, deterministic or
randomised, with or without a creator cap, whose mean DCG retained is ``>= tau`` has a Gini of
(expected) exposure ``>= bound``; by convexity of ``G`` (Jensen) so does its expected Gini.

Why: ``f`` is the support function of the permutahedron ``P(w)`` (rearrangement inequality), so
``f(x) >= <v, x> / S`` for every ``v`` in ``P(w)``; for ``x >= 0`` it suffices that every sum of
the ``k`` largest entries of ``v`` is at most that of ``w`` (Abel summation), which a constant
shift of any ``v`` ensures (`_Pages.valid`). Then for any ``lambda >= 0`` and feasible ``z``::

    G(z) >= <v, x(z)> / S - lambda * (D(z) - tau) - (n + 1) / n
         >= sum_u min_page sum_p d_p (v_c(i_p) / S - lambda * g_i_p / (N I_u))
            - lambda * (N0 / N - tau) - (n + 1) / n            (N0: pages with I_u = 0)

and each page's minimum is exact by the rearrangement inequality (``d`` non-increasing and
``>= 0``): the ``k_u`` candidates with the smallest coefficient, smallest first. The true
subgradient of ``G`` at a point (average ranks within ties) is one such ``v``; here ``v`` is the
gradient of a smoothed ``f``, ``f_mu(x) = max over P(w) of <v, x> / S - mu |v - mean(w)|^2 / 2``
(the Euclidean projection of ``x / (S mu)`` onto ``P(w)``), and ``lambda`` maximises the bound.
Rounding aside (sums of ~1e4 terms), the bound is exact arithmetic on the inputs.

What is achievable (`GiniBound.achievable`): Frank-Wolfe on ``f_mu`` over the fractional page
sets with ``D >= tau`` (the linear step is the same page sort, with ``lambda`` bracketed and the
two neighbouring page sets mixed to ``D = tau``), exact line search, ``mu`` shrinking with the
gap. Its point is the expected exposure of a randomised re-ranker (a mixture of deterministic
page sets); one draw of that re-ranker has a Gini at least as high. The problem is a linear
programme, so the bound and the optimum meet; the iterations stop when they are within ``tol``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from server.eval.metrics import gini

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

# Mean DCG retained counts as >= tau within this (the sums are rounded).
_D_TOL = 1e-9
# Coefficient of padding candidates (never picked before a real one).
_PAD = 1e30


@dataclasses.dataclass(frozen=True)
class GiniBound:
    """Result of `gini_bound` at one DCG level."""

    tau: float
    #: No re-ranker of the candidates with mean DCG retained >= tau has a lower Gini.
    bound: float
    #: Gini of the best fractional point found (expected exposure of a randomised re-ranker).
    achievable: float
    #: Mean DCG retained of that point (>= tau - 1e-9).
    dcg_retained: float
    #: lambda of the best bound: Gini the bound gives up per unit of mean DCG retained.
    price: float
    #: Frank-Wolfe iterations run.
    iterations: int


class _Pages:
    """Candidates padded to a (pages x max candidates) matrix; gains scaled to ``g / (N I_u)``."""

    def __init__(
        self,
        gains: Sequence[ArrayLike],
        creators: Sequence[ArrayLike],
        n_creators: int,
        page_size: int,
        discounts: ArrayLike,
    ) -> None:
        if len(gains) != len(creators):
            raise ValueError(f"{len(gains)} gain arrays but {len(creators)} creator arrays")
        if not gains:
            raise ValueError("no pages")
        if n_creators < 1 or page_size < 1:
            raise ValueError(
                f"n_creators and page_size must be >= 1, got {n_creators}, {page_size}"
            )
        disc = np.asarray(discounts, np.float64)
        if disc.ndim != 1 or disc.size < page_size:
            raise ValueError(f"need {page_size} discounts, got shape {disc.shape}")
        disc = disc[:page_size]
        if not np.isfinite(disc).all() or (disc < 0).any() or (np.diff(disc) > 0).any():
            raise ValueError("discounts must be finite, non-negative and non-increasing")
        gs = [np.asarray(g, np.float64) for g in gains]
        cs = [np.asarray(c) for c in creators]
        for u, (g, c) in enumerate(zip(gs, cs, strict=True)):
            if g.ndim != 1 or g.shape != c.shape:
                raise ValueError(f"page {u}: {g.shape} gains but {c.shape} creator ids")
            if not np.isfinite(g).all() or (g < 0).any():
                raise ValueError(f"page {u}: gains must be finite and >= 0")
            if c.size and (
                not np.issubdtype(c.dtype, np.integer) or c.min() < 0 or c.max() >= n_creators
            ):
                raise ValueError(f"page {u}: creator ids must be integers in [0, {n_creators})")
        n_pages, width = len(gs), max(max(g.size for g in gs), page_size)
        k = np.minimum([g.size for g in gs], page_size)
        self.n, self.k = n_creators, page_size
        # Slot discounts per page; slots past a short page's candidates get 0.
        self.slot = np.where(np.arange(page_size) < k[:, None], disc, 0.0)
        self.total = float(self.slot.sum())
        if self.total <= 0:
            raise ValueError("the pages have no exposure to share (all discounts 0)")
        self.gain = np.zeros((n_pages, width))
        self.creator = np.full((n_pages, width), n_creators, np.int64)  # n_creators: padding
        zero_ideal = 0
        for u, (g, c) in enumerate(zip(gs, cs, strict=True)):
            ideal = float(np.sort(g)[::-1][: k[u]] @ disc[: k[u]])
            if ideal > 0:
                self.gain[u, : g.size] = g / (n_pages * ideal)
            else:
                zero_ideal += 1
            self.creator[u, : c.size] = c
        self.d_fixed = zero_ideal / n_pages
        # w_k = 2k / n: the Gini's weights of the ascending exposure shares.
        self.w = 2.0 * np.arange(1, n_creators + 1) / n_creators
        self.w_top = np.cumsum(self.w[::-1])
        self.offset = (n_creators + 1) / n_creators

    def prices(self, v: F64) -> F64:
        """Per-candidate ``v_c / S`` (padding: `_PAD`)."""
        out: F64 = np.append(v / self.total, _PAD)[self.creator]
        return out

    def valid(self, v: F64) -> F64:
        """``v`` shifted by the largest constant keeping every top-k sum within ``w``'s."""
        top = np.cumsum(np.sort(v)[::-1])
        shifted: F64 = v + float(np.min((self.w_top - top) / np.arange(1, v.size + 1)))
        return shifted

    def project(self, z: F64) -> F64:
        """Euclidean projection of ``z`` onto the permutahedron of ``w`` (sort + isotonic fit)."""
        order = np.argsort(-z, kind="stable")
        s = z[order]
        fit = _decreasing_fit(s - self.w[::-1])
        out = np.empty_like(z)
        out[order] = s - fit
        return out


def _decreasing_fit(y: F64) -> F64:
    """Least-squares non-increasing fit of ``y`` (pool adjacent violators)."""
    sums: list[float] = []
    counts: list[int] = []
    for value in y.tolist():
        s, c = value, 1
        while sums and sums[-1] * c < s * counts[-1]:
            s += sums.pop()
            c += counts.pop()
        sums.append(s)
        counts.append(c)
    return np.repeat(np.array(sums) / np.array(counts), counts)


@dataclasses.dataclass
class _Sub:
    """Candidates that can make a page at some price in a bracket (rows padded)."""

    price: F64
    gain: F64
    creator: I64


@dataclasses.dataclass
class _Point:
    """A page set (or a mixture of two): exposure shares, mean DCG retained, ``<v, x>``."""

    x: F64
    d: float
    vx: float


def _best_pages(pages: _Pages, sub: _Sub, lam: float) -> _Point:
    """Per page, the ``k`` candidates with the smallest ``price - lam * gain``, smallest first."""
    coef = sub.price - lam * sub.gain
    k = pages.k
    if coef.shape[1] > k:
        idx = np.argpartition(coef, k - 1, axis=1)[:, :k]
    else:
        idx = np.broadcast_to(np.arange(coef.shape[1]), coef.shape)
    order = np.argsort(np.take_along_axis(coef, idx, 1), axis=1, kind="stable")
    chosen = np.take_along_axis(idx, order, 1)
    slot = pages.slot[:, : chosen.shape[1]]
    creators = np.take_along_axis(sub.creator, chosen, 1)
    x = np.bincount(creators.ravel(), weights=slot.ravel(), minlength=pages.n + 1)[: pages.n]
    d = pages.d_fixed + float((np.take_along_axis(sub.gain, chosen, 1) * slot).sum())
    vx = float((np.take_along_axis(sub.price, chosen, 1) * slot).sum())
    return _Point(x / pages.total, d, vx)


def _prune(pages: _Pages, price: F64, lo: float, hi: float) -> _Sub:
    """Drop candidates beaten by ``k`` others at every price in ``[lo, hi]`` (exact)."""
    k = pages.k
    if price.shape[1] <= 2 * k:
        return _Sub(price, pages.gain, pages.creator)
    upper = price - lo * pages.gain  # a candidate's worst coefficient in the bracket
    lower = price - hi * pages.gain  # and its best
    thr = np.partition(upper, k - 1, axis=1)[:, k - 1 : k]
    real = pages.creator < pages.n  # padding fills short pages on its own
    m = max(int(((lower <= thr) & real).sum(axis=1).max()), k)
    if m * 2 > price.shape[1]:
        return _Sub(price, pages.gain, pages.creator)
    keep = np.argpartition(lower, m - 1, axis=1)[:, :m]
    return _Sub(
        np.take_along_axis(price, keep, 1),
        np.take_along_axis(pages.gain, keep, 1),
        np.take_along_axis(pages.creator, keep, 1),
    )


def _linear_step(
    pages: _Pages, v: F64, tau: float, lam: float, step: float, tol: float
) -> tuple[float, float, _Point]:
    """For prices ``v`` in ``P(w)``: (best certified bound over lambda, its lambda, and the
    mixture of page sets with ``D = tau`` minimising ``<v, x>`` up to ``tol``).

    The search for lambda starts in ``[lam / step, lam * step]``."""
    price = pages.prices(v)
    full = _Sub(price, pages.gain, pages.creator)

    def bound(p: _Point, at: float) -> float:
        return p.vx - at * (p.d - tau) - pages.offset

    # Bracket the price where D crosses tau, starting close to the last one (a narrow bracket
    # prunes most candidates); widen it geometrically while D does not cross.
    lo, hi = lam / step, lam * step
    sub = _prune(pages, price, lo, hi)
    p_lo, p_hi = _best_pages(pages, sub, lo), _best_pages(pages, sub, hi)
    widened = False
    while p_lo.d >= tau - _D_TOL:
        if lo < 1e-12:  # feasible at (almost) no price: try none at all
            p0 = _best_pages(pages, full, 0.0)
            if p0.d >= tau - _D_TOL:
                return bound(p0, 0.0), 0.0, p0
            lo, p_lo = 0.0, p0
            break
        step *= step
        hi, p_hi, lo, widened = lo, p_lo, lo / step, True
        p_lo = _best_pages(pages, full, lo)
    while p_hi.d < tau - _D_TOL:
        if hi > 1e12:
            raise RuntimeError(f"mean DCG retained {p_hi.d} < tau {tau} at price {hi}")
        step *= step
        lo, p_lo, hi, widened = hi, p_hi, hi * step, True
        p_hi = _best_pages(pages, full, hi)
    if widened:
        sub = _prune(pages, price, lo, hi)
    best, best_lam = max((bound(p_lo, lo), lo), (bound(p_hi, hi), hi))
    for _ in range(60):
        theta = (tau - p_lo.d) / (p_hi.d - p_lo.d) if p_hi.d > p_lo.d else 1.0
        theta = min(max(theta, 0.0), 1.0)
        mix_vx = theta * p_hi.vx + (1 - theta) * p_lo.vx
        if mix_vx - (best + pages.offset) <= tol or hi - lo <= 1e-9 * hi:
            break
        mid = (lo + hi) / 2
        p_mid = _best_pages(pages, sub, mid)
        best, best_lam = max((best, best_lam), (bound(p_mid, mid), mid))
        if p_mid.d >= tau - _D_TOL:
            hi, p_hi = mid, p_mid
        else:
            lo, p_lo = mid, p_mid
    x = theta * p_hi.x + (1 - theta) * p_lo.x
    d = theta * p_hi.d + (1 - theta) * p_lo.d
    return best, best_lam, _Point(x, d, mix_vx)


def _line_search(pages: _Pages, x: F64, s: F64, mu: float) -> float:
    """Step in [0, 1] from ``x`` toward ``s`` minimising the smoothed Gini (bisection on the
    sign of its derivative, ``<gradient, s - x>``, non-decreasing along the segment)."""
    direction = s - x

    def slope(t: float) -> float:
        return float(pages.project((x + t * direction) / mu) @ direction)

    if slope(1.0) <= 0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if slope(mid) <= 0:
            lo = mid
        else:
            hi = mid
    return lo


def _smoothing(pages: _Pages, x: F64, mu: float, err: float) -> tuple[float, F64]:
    """Halve ``mu`` until the smoothed gradient ``v`` at ``x`` has ``f(x) - <v, x> <= err``;
    (mu, v)."""
    exact = float(pages.w @ np.sort(x))
    while True:
        v = pages.project(x / mu)
        if exact - float(v @ x) <= err or mu < 1e-15:
            return mu, v
        mu /= 2


def gini_bound(
    gains: Sequence[ArrayLike],
    creators: Sequence[ArrayLike],
    n_creators: int,
    page_size: int,
    discounts: ArrayLike,
    tau: float,
    *,
    max_iter: int = 400,
    tol: float = 5e-4,
    smoothing: float = 0.5,
) -> GiniBound:
    """Certified lower bound and best achievable creator-exposure Gini at mean DCG >= ``tau``.

    Parameters
    ----------
    gains, creators
        Per page, the candidates' gains (``>= 0``, e.g. ranking scores clipped at 0) and creator
        ids in ``[0, n_creators)``; the candidates of a page are distinct items.
    n_creators
        Creators of the catalogue, those without candidates included (their exposure is 0).
    page_size, discounts
        Slots per page (fewer when a page has fewer candidates) and their position discounts
        (non-increasing, at least ``page_size`` of them).
    tau
        The level of mean DCG retained, in ``(0, 1]``.
    max_iter, tol
        Frank-Wolfe iterations at most; stop once ``achievable - bound <= tol``.
    smoothing
        Each iteration smooths the Gini by at most ``smoothing`` times the current gap at the
        current point (below 1). Affects convergence only, never the bound's validity.

    Raises
    ------
    ValueError
        On a ``tau`` outside ``(0, 1]``, mismatched or invalid arrays, or bad settings.
    """
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    if max_iter < 1 or tol < 0 or not 0 < smoothing < 1:
        raise ValueError(
            f"need max_iter >= 1, tol >= 0, 0 < smoothing < 1; got {max_iter}, {tol}, {smoothing}"
        )
    pages = _Pages(gains, creators, n_creators, page_size, discounts)
    # Start from the unconstrained pages (D = 1): every page sorted by gain alone.
    full = _Sub(pages.prices(np.zeros(pages.n)), pages.gain, pages.creator)
    start = _best_pages(pages, full, 1.0)
    x, d = start.x, start.d
    achievable, at_d = gini(x), d
    best, best_lam = 0.0, 0.0  # a Gini is >= 0: the trivial bound
    lam, step, mu = 1.0, 1.02, 1.0
    it = 0
    while it < max_iter:
        it += 1
        # The largest smoothing (within a factor 2 of the last) whose error at x is at most
        # `smoothing` times the gap: below 1, the iterations cannot stall at a gap.
        mu, v = _smoothing(pages, x, mu, smoothing * (achievable - best))
        b, lam_b, s = _linear_step(pages, pages.valid(v), tau, lam, step, tol / 10)
        if b > best:
            best, best_lam = b, lam_b
        if lam_b > 0:  # search next around it, as wide as twice its last move
            step = float(np.clip(max(lam_b / lam, lam / lam_b) ** 2, 1.002, 1.2))
            lam = lam_b
        t = _line_search(pages, x, s.x, mu)
        x, d = (1 - t) * x + t * s.x, (1 - t) * d + t * s.d
        g = gini(x)
        if g < achievable:
            achievable, at_d = g, d
        if achievable - best <= tol:
            break
    return GiniBound(tau, best, achievable, at_d, best_lam, it)
