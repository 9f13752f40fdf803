"""Deadline budget: stages that cannot finish in time do less, and say what they dropped.

Each optional step keeps a running estimate (EWMA) of what it costs; before running it the
pipeline asks the budget whether the estimate fits in the time left, keeping a reserve for the
stages after it and for serialising the response. A request without a deadline never degrades.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

# Kept for ranking, re-ranking and writing the response after retrieval decisions.
RESERVE_S = 0.002
_ALPHA = 0.1


class CostModel:
    """Per-step cost estimates shared by all requests of a process (thread-safe enough:
    a lost update only delays the estimate by one sample)."""

    def __init__(self) -> None:
        self._est: dict[str, float] = {}
        self._lock = threading.Lock()

    def estimate(self, step: str, default: float = 0.0005) -> float:
        return self._est.get(step, default)

    def observe(self, step: str, seconds: float) -> None:
        with self._lock:
            old = self._est.get(step)
            self._est[step] = seconds if old is None else old + _ALPHA * (seconds - old)


COSTS = CostModel()


@dataclass
class Budget:
    """Time left for one request. `deadline` is a `time.monotonic()` value or None."""

    deadline: float | None = None
    degradations: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def from_timeout(cls, seconds: float | None) -> Budget:
        return cls(None if seconds is None else time.monotonic() + seconds)

    def left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def allows(self, step: str, stage: str, scale: float = 1.0) -> bool:
        """True if `step` (its estimated cost times `scale`) fits before the reserve."""
        if self.deadline is None:
            return True
        need = COSTS.estimate(step) * scale
        left = self.left()
        if left - RESERVE_S >= need:
            return True
        self.degradations.append(
            (stage, f"skipped {step}: {max(left, 0) * 1e3:.1f} ms left, needs ~{need * 1e3:.1f} ms")
        )
        return False

    def note(self, stage: str, reason: str) -> None:
        self.degradations.append((stage, reason))

    @property
    def degraded(self) -> bool:
        return bool(self.degradations)


class timed:
    """Measure a step and feed the shared cost model."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.t0 = 0.0

    def __enter__(self) -> timed:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        COSTS.observe(self.step, time.perf_counter() - self.t0)
