"""Memory of server processes that open one keyword index (``KeywordMatrix.open``).

Run: ``.venv/bin/python bench/keyword_memory.py DIR [--processes N]``. Starts N processes that
each open ``DIR``, warm up with 20 random ``score`` + ``topk`` calls, wait until all are warm,
and print the growth of their ``/proc/self/smaps_rollup`` counters (MiB) as JSON lines.
``Anonymous`` is the private copy each process builds; ``Pss`` splits shared file pages
between the processes that map them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server._core import KeywordMatrix  # noqa: E402

KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Anonymous", "AnonHugePages")


def rollup() -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].isdigit():
            out[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return out


def child(directory: str, barrier: Path, n: int, seed: int) -> None:
    base = rollup()
    t0 = time.perf_counter()
    m = KeywordMatrix.open(directory)
    open_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    for _ in range(20):
        t = np.unique(rng.integers(0, m.n_terms, 200)).astype(np.int32)
        w = rng.random(len(t)).astype(np.float32)
        m.score(t, w, rng.integers(0, m.n_items, 1000).astype(np.int32))
        m.topk(t, w, 100)
    (barrier / str(seed)).touch()
    while len(list(barrier.iterdir())) < n:
        time.sleep(0.05)
    time.sleep(0.5)
    r = rollup()
    growth = {k: round(r.get(k, 0.0) - base.get(k, 0.0), 1) for k in KEYS}
    print(json.dumps({"derived_mapped": m.derived_mapped, "open_s": round(open_s, 2), **growth}))
    sys.stdout.flush()
    time.sleep(1.0)  # stay mapped while the others read their counters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("directory")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.directory, Path(args.child[0]), args.processes, int(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as barrier:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    args.directory,
                    "--processes",
                    str(args.processes),
                    "--child",
                    barrier,
                    str(i),
                ]
            )
            for i in range(args.processes)
        ]
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
