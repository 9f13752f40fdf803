"""Membership tests against sorted unique id arrays (seen items, exclusions)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def in_sorted(values: NDArray[np.int64], sorted_set: NDArray[np.int32]) -> NDArray[np.bool_]:
    """Membership of `values` in a sorted unique array: one binary search each.

    Several times faster than `np.isin` for the few hundred ids a request checks, which
    sorts both sides every call.
    """
    if sorted_set.size == 0:
        return np.zeros(values.shape, bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    out: NDArray[np.bool_] = sorted_set[pos] == values
    return out
