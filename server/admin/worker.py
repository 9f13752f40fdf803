"""Entry point of the rebuild child process: ``python -m server.admin.worker``.

The serving process starts one of these per rebuild so that the build's CPU time and GIL stay
out of the serving threads, and so that cancelling is as simple as killing it. It speaks JSON
lines on stdout, each prefixed with `MARK` (anything else on stdout is ignored):

``{"progress": [step, percent]}`` while building, then exactly one of
``{"manifest": {...}}`` (the snapshot was committed) or
``{"error": message, "kind": "input" | "internal"}``.

The child asks the kernel to SIGKILL it when the server dies (`PR_SET_PDEATHSIG`), so a
crashed server never leaves a build running that would publish behind its back; what it
leaves is a `.tmp-*` directory whose build lock is free, which the next startup removes.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

MARK = "@@reelrank-rebuild "
_PR_SET_PDEATHSIG = 1


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died before prctl took effect.
    if parent_pid and os.getppid() != parent_pid:
        os._exit(3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server.admin.worker")
    p.add_argument("--interactions", type=Path, required=True)
    p.add_argument("--items", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--parent-pid", type=int, default=0)
    p.add_argument("--nice", type=int, default=0)
    args = p.parse_args(argv)
    _die_with_parent(args.parent_pid)
    if args.nice:
        os.nice(args.nice)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s rebuild[{os.getpid()}] %(name)s: %(message)s",
    )
    from server.index import builder  # heavy imports after the process is set up

    def progress(step: str, pct: float) -> None:
        emit({"progress": [step, pct]})

    try:
        manifest = builder.build_snapshot(
            args.interactions, args.items, args.out, progress=progress, version=args.version
        )
    except ValueError as exc:  # loaders.InputError and other bad-input errors
        emit({"error": str(exc), "kind": "input"})
        return 2
    except Exception as exc:
        logging.getLogger(__name__).exception("rebuild failed")
        emit({"error": f"{type(exc).__name__}: {exc}", "kind": "internal"})
        return 1
    emit({"manifest": manifest})
    return 0


if __name__ == "__main__":
    sys.exit(main())
