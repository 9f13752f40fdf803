"""One index rebuild as a long-running operation: child-process build, gate, swap, retention.

Life of a rebuild (the operation's metadata follows it):

1. QUEUED → the child `python -m server.admin.worker` starts (niced, few BLAS threads) and
   builds into `<root>/.tmp-<version>`, reporting LOADING / BUILDING / WRITING progress.
2. The child commits the snapshot (manifest last, directory renamed into place) and exits.
3. ACTIVATING: the quality gate is checked; the snapshot is opened, verified and warmed beside
   the serving one and swapped in (`SnapshotStore.activate`), and recorded in `ACTIVE`.
4. Retention deletes all but the newest `keep_snapshots` (never the serving or previous one).

Cancel (before step 3) kills the child, removes its `.tmp-*` directory and, if the child had
already published, the new snapshot too: nothing half-written or unexpected is left behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from google.longrunning import operations_proto_pb2 as ops_pb
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import code_pb2, status_pb2

from server.admin import quality
from server.admin.operations import Operations
from server.admin.worker import MARK
from server.api.reelrank.admin.v1 import index_admin_service_pb2 as pb
from server.config import ServerConfig
from server.errors import FailedPrecondition
from server.index import snapshot
from server.index.store import SnapshotStore

log = logging.getLogger(__name__)

STAGES = {
    "loading": pb.REBUILD_STAGE_LOADING,
    "keywords": pb.REBUILD_STAGE_BUILDING,
    "validation": pb.REBUILD_STAGE_BUILDING,
    "models": pb.REBUILD_STAGE_BUILDING,
    "profiles": pb.REBUILD_STAGE_BUILDING,
    "embeddings": pb.REBUILD_STAGE_BUILDING,
    "ann": pb.REBUILD_STAGE_BUILDING,
    "pools": pb.REBUILD_STAGE_BUILDING,
    "writing": pb.REBUILD_STAGE_WRITING,
    "done": pb.REBUILD_STAGE_WRITING,
}
# Seconds a cancelled child gets after SIGTERM before SIGKILL.
KILL_AFTER_S = 5.0
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def ts(t: float) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromNanoseconds(int(t * 1e9))
    return out


def pack(msg: Any) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(msg)
    return out


class _Failed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The child imports `server` from the same tree as this process.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p
    )
    # Leave at least half the cores to the serving threads.
    threads = str(max(1, (os.cpu_count() or 2) // 2))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, threads)
    return env


class RebuildJob:
    """Runs one rebuild on a background thread and publishes it through `Operations`."""

    def __init__(
        self,
        name: str,
        ops: Operations,
        store: SnapshotStore,
        config: ServerConfig,
        interactions: Path,
        items: Path,
        *,
        activate: bool,
        force: bool,
        source: str = "",
        lock_fd: int | None = None,
    ) -> None:
        self.name = name
        self.ops = ops
        self.store = store
        self.config = config
        self.interactions = interactions
        self.items = items
        self.activate = activate
        self.force = force
        self._lock = threading.Lock()
        self._lock_fd = lock_fd  # cross-process rebuild lock, released when the job ends
        self._proc: subprocess.Popen[str] | None = None
        self._cancelled = False
        self._activating = False
        self._t0 = time.monotonic()
        self.meta = pb.RebuildIndexMetadata(
            stage=pb.REBUILD_STAGE_QUEUED,
            progress_percent=0.0,
            start_time=ts(time.time()),
            source=source,
        )
        # Chosen here so the job knows its temporary directory (`.tmp-<version>`).
        self.version = snapshot.new_version(store.root)
        self.meta.snapshot_version = self.version
        self._publish()

    # ------------------------------------------------------------ publishing

    def _publish(self, **done: Any) -> None:
        self.ops.put(ops_pb.Operation(name=self.name, metadata=pack(self.meta), **done))

    def _finish_error(self, code: int, message: str) -> None:
        self.meta.stage = pb.REBUILD_STAGE_DONE
        self.meta.end_time.CopyFrom(ts(time.time()))
        self._publish(done=True, error=status_pb2.Status(code=code, message=message))

    # ------------------------------------------------------------ control

    def start(self) -> None:
        self.ops.on_cancel(self.name, self.cancel)
        threading.Thread(target=self._run, daemon=True, name=self.name).start()

    def cancel(self) -> None:
        """Stop the build; refused once the new snapshot is being swapped in."""
        with self._lock:
            if self._activating:
                raise FailedPrecondition(
                    f"{self.name} is already activating snapshot {self.version}; too late to "
                    "cancel (roll back with ActivateSnapshot)",
                    operation=self.name,
                )
            if self._cancelled:
                return
            self._cancelled = True
            self.meta.cancel_requested = True
            proc = self._proc
        log.info("rebuild %s: cancel requested", self.name)
        self._publish()
        if proc is not None and proc.poll() is None:
            proc.terminate()

    # ------------------------------------------------------------ the work

    def _run(self) -> None:
        try:
            self._run_locked()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)

    def _run_locked(self) -> None:
        try:
            manifest = self._build()
            response = self._complete(manifest)
        except _Failed as exc:
            self._finish_error(exc.code, exc.message)
            return
        except Exception as exc:
            log.exception("rebuild %s failed", self.name)
            self._finish_error(
                code_pb2.INTERNAL, f"rebuild failed, serving snapshot unchanged: {exc}"
            )
            return
        self.meta.stage, self.meta.progress_percent = pb.REBUILD_STAGE_DONE, 100.0
        self.meta.end_time.CopyFrom(ts(time.time()))
        self._publish(done=True, response=pack(response))

    def _build(self) -> dict[str, Any]:
        """Run the child to completion; returns the committed snapshot's manifest."""
        root = self.store.root
        cmd = [
            sys.executable,
            "-m",
            "server.admin.worker",
            "--interactions",
            str(self.interactions),
            "--items",
            str(self.items),
            "--out",
            str(root),
            "--version",
            self.version,
            "--parent-pid",
            str(os.getpid()),
            "--nice",
            str(self.config.rebuild_nice),
        ]
        with self._lock:
            if self._cancelled:
                raise _Failed(code_pb2.CANCELLED, f"{self.name} cancelled before it started")
            self._proc = proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=_child_env(), text=True
            )
        log.info("rebuild %s: child pid %d building %s", self.name, proc.pid, self.version)
        manifest: dict[str, Any] | None = None
        error: tuple[str, str] | None = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith(MARK):
                continue
            try:
                msg = json.loads(line[len(MARK) :])
            except ValueError:
                log.warning("rebuild %s: unreadable line from the build: %r", self.name, line)
                continue
            if "progress" in msg:
                step, pct = msg["progress"]
                self.meta.stage = STAGES.get(step, pb.REBUILD_STAGE_BUILDING)
                self.meta.step = step
                self.meta.progress_percent = float(pct) * 0.9
                if not self._cancelled:
                    self._publish()
            elif "manifest" in msg:
                manifest = msg["manifest"]
            elif "error" in msg:
                error = (str(msg["error"]), str(msg.get("kind", "internal")))
        try:
            rc = proc.wait(timeout=KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        with self._lock:
            cancelled = self._cancelled
            if not cancelled and manifest is not None:
                self._activating = True
        # The child is gone: whatever it left in its temporary directory is garbage.
        shutil.rmtree(root / f"{snapshot.TMP_PREFIX}{self.version}", ignore_errors=True)
        if cancelled:
            if manifest is not None:
                self._remove_unserved(self.version)
            log.info("rebuild %s cancelled; nothing published", self.name)
            raise _Failed(code_pb2.CANCELLED, f"{self.name} cancelled; nothing was published")
        if error is not None:
            message, kind = error
            code = code_pb2.INVALID_ARGUMENT if kind == "input" else code_pb2.INTERNAL
            log.warning("rebuild %s failed: %s", self.name, message)
            raise _Failed(code, f"rebuild failed, serving snapshot unchanged: {message}")
        if manifest is None or rc != 0:
            how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
            raise _Failed(
                code_pb2.INTERNAL,
                f"rebuild failed, serving snapshot unchanged: build process ended with {how}",
            )
        return manifest

    def _remove_unserved(self, version: str) -> None:
        current = self.store.current_or_none()
        if current is None or current.version != version:
            shutil.rmtree(self.store.root / version, ignore_errors=True)

    def _complete(self, manifest: dict[str, Any]) -> pb.RebuildIndexResponse:
        """Gate, activate and prune; returns the operation's response."""
        counts = manifest["counts"]
        response = pb.RebuildIndexResponse(
            snapshot_version=self.version,
            num_items=counts["items"],
            num_users=counts["users"],
            num_interactions=counts["interactions"],
        )
        current = self.store.current_or_none()
        if self.activate:
            reasons = quality.failures(manifest, self.config)
            if reasons and not self.force:
                self._keep_serving(current)
                raise _Failed(
                    code_pb2.FAILED_PRECONDITION,
                    f"snapshot {self.version} was built but not activated: it fails the quality "
                    f"gate ({'; '.join(reasons)}); activate it anyway with "
                    f"`reelrank admin activate {self.version} --force`",
                )
            self.meta.stage, self.meta.progress_percent = pb.REBUILD_STAGE_ACTIVATING, 92.0
            self._publish()
            t0 = time.perf_counter()
            try:
                self.store.activate(self.version, persist=True)
            except Exception as exc:
                raise _Failed(
                    code_pb2.INTERNAL,
                    f"snapshot {self.version} was built but failed to load, serving snapshot "
                    f"unchanged: {exc}",
                ) from exc
            response.activated = True
            response.activation_seconds = time.perf_counter() - t0
        else:
            self._keep_serving(current)
        protect = {self.version}
        for v in (self.store.previous_version, snapshot.read_active(self.store.root)):
            if v:
                protect.add(v)
        serving = self.store.current_or_none()
        if serving is not None:
            protect.add(serving.version)
        response.pruned_versions.extend(
            snapshot.prune(self.store.root, self.config.keep_snapshots, protect)
        )
        response.build_seconds = time.monotonic() - self._t0
        log.info(
            "rebuild %s finished: snapshot %s (%s)%s",
            self.name,
            self.version,
            "activated" if response.activated else "not activated",
            f", pruned {list(response.pruned_versions)}" if response.pruned_versions else "",
        )
        return response

    def _keep_serving(self, current: Any) -> None:
        """The new snapshot is newer but not serving: pin the serving one for restarts."""
        if current is not None:
            self.store.pin(current.version)
