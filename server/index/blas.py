"""Limit the BLAS thread pools (numpy's and scipy's OpenBLAS) around a heavy build stage.

A build often runs beside serving threads (RebuildIndex) or other jobs on a small machine.
OpenBLAS threads busy-wait, and when cores are oversubscribed they collapse: on a loaded 2-core
machine a 1,682-item EASE fit took 5.5 s with the default pool and 1.1 s with one thread, a
943 x 1,682 SVD 57 s against 3.8 s. `limit(n)` sets every OpenBLAS pool loaded in this process
to `n` threads and restores the previous sizes afterwards; where no OpenBLAS is found (another
BLAS, a static build) it does nothing.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


def _pools() -> list[tuple[ctypes.CDLL, str, str]]:
    found: list[tuple[ctypes.CDLL, str, str]] = []
    dirs = set()
    for mod in ("numpy", "scipy"):
        m = sys.modules.get(mod)
        if m is not None and getattr(m, "__file__", None):
            base = os.path.dirname(os.path.dirname(str(m.__file__)))
            dirs.add(os.path.join(base, f"{mod}.libs"))
    for d in sorted(dirs):
        for path in sorted(glob.glob(os.path.join(d, "*openblas*.so*"))):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for set_name, get_name in _SYMBOLS:
                if hasattr(lib, set_name) and hasattr(lib, get_name):
                    found.append((lib, set_name, get_name))
                    break
    return found


@contextmanager
def limit(n_threads: int) -> Iterator[None]:
    """Run the body with at most `n_threads` BLAS threads (0: leave the pools alone)."""
    if n_threads <= 0:
        yield
        return
    pools = _pools()
    before = []
    for lib, set_name, get_name in pools:
        before.append(int(getattr(lib, get_name)()))
        getattr(lib, set_name)(ctypes.c_int(n_threads))
    try:
        yield
    finally:
        for (lib, set_name, _), n in zip(pools, before, strict=True):
            getattr(lib, set_name)(ctypes.c_int(n))
