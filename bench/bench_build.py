"""Offline build at scale: 1,000,000 items, 200,000 users, ~10M interactions (synthetic).

Generates the catalogue once (`--data`, default /tmp/reelrank-bench-build/data; reused when
present), then builds a snapshot in a child process and reports wall time, CPU time, peak RSS
(the child's ru_maxrss) and the builder's per-stage timings from the manifest. Targets: under
10 minutes on 2 cores, peak RSS under 8 GiB.

Run: `.venv/bin/python bench/bench_build.py` (add `--items/--users` for other sizes).
Results: bench/results/build.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
from pathlib import Path
from server.index import builder
t = time.perf_counter()
m = builder.build_snapshot(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
print(json.dumps({k: m[k] for k in ("timings_s", "build_seconds", "counts", "ann",
                                    "collaborative", "blend_weights", "blend_fit")}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=Path, default=Path("/tmp/reelrank-bench-build/data"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/reelrank-bench-build/snapshots"))
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from server.data import synthetic

    data = args.data
    if not (data / "interactions.csv").exists():
        print(f"generating {args.items:,} items / {args.users:,} users into {data}", flush=True)
        s = synthetic.generate(args.items, args.users, args.seed, data)
        print(f"  {s['n_interactions']:,} interactions in {s['seconds']:.1f}s", flush=True)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(data / "interactions.csv"),
            str(data / "items.csv"),
            str(args.out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return 1
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {
        "command": ".venv/bin/python bench/bench_build.py",
        "items": args.items,
        "users": args.users,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),
        "cores": os.cpu_count(),
        "load_average_start": load0,
        "load_average_end": os.getloadavg(),
        "targets": {"wall_seconds": 600, "peak_rss_gib": 8},
        **info,
    }
    out = ROOT / "bench/results/build.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
