"""The fairness stage against the code it replaced (tests/fairness_reference.py).

The report used to be computed with many small numpy calls on 20-item pages; `measure` now
works on Python lists where that is cheaper, `rerank` sorts with one argsort and the exposure
tracker skips numpy's Python wrappers. The old code is the oracle: every page, every field of
every report (floats bit for bit) and the tracker's state must be identical.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from server import _core
from server.pipeline import fairness
from server.pipeline.fairness import fair_stats
from server.pipeline.fairness.params import protected_share
from server.pipeline.fairness.report import (
    cap_violated,
    floor_need,
    floors_met,
    intra_list_diversity,
    measure,
)
from server.pipeline.types import FairnessParams, FairnessReport, Policy
from tests.fairness_reference import (
    ReferenceExposureTracker,
    ref_cap_violated,
    ref_floors_met,
    ref_intra_list_diversity,
    ref_passes,
    reference_measure,
    reference_rerank,
)

# ---- the comparison ----


def _bits(v: Any) -> Any:
    """A value with its floats as their bit patterns (so 0.0 != -0.0 and NaN == NaN)."""
    if isinstance(v, float):
        return struct.pack("<d", v)
    if isinstance(v, (list, tuple)):
        return type(v)(_bits(x) for x in v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return (type(v).__name__, *(_bits(getattr(v, f.name)) for f in dataclasses.fields(v)))
    return v


def assert_same_report(a: FairnessReport, b: FairnessReport) -> None:
    assert a == b
    assert _bits(a) == _bits(b)
    for f in dataclasses.fields(a):
        assert type(getattr(a, f.name)) is type(getattr(b, f.name)), f.name


GROUP_NAMES = ["established", "new_creator", "studio", "indie"]
POLICIES = [
    Policy.CREATOR_CAP,
    Policy.GROUP_FLOOR,
    Policy.GROUP_SHARES,
    Policy.CREATOR_DECAY,
    Policy.AMORTISED_EXPOSURE,
    Policy.DIVERSITY,
    Policy.COLD_START_SLOT,
]


@st.composite
def pages(draw: st.DrawFn) -> dict[str, Any]:
    n_groups = draw(st.integers(1, 4))
    names = GROUP_NAMES[:n_groups]
    n = draw(st.integers(1, 120))
    k = draw(st.integers(0, min(n, 40)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["normal", "ties", "nonpositive"]))
    if kind == "normal":
        scores = rng.normal(size=n).astype(np.float32)
    elif kind == "ties":
        scores = (rng.integers(0, 6, n) / 4.0).astype(np.float32)
    else:
        scores = -rng.random(n).astype(np.float32) * draw(st.sampled_from([0.0, 1.0]))
    creators = rng.integers(0, max(1, n // draw(st.integers(1, 6))), n).astype(np.int64)
    groups = rng.integers(0, n_groups, n).astype(np.int64)
    order = np.lexsort((np.arange(n), -scores.astype(np.float64)))
    ideal = order[:k].astype(np.int64)
    chosen = ideal.copy() if draw(st.booleans()) else rng.permutation(n)[:k].astype(np.int64)
    target = rng.dirichlet(np.ones(n_groups)) * draw(st.sampled_from([1.0, 0.5]))
    if draw(st.booleans()):
        target[rng.integers(0, n_groups)] = 0.0
    protected = tuple(draw(st.lists(st.sampled_from(names), max_size=n_groups, unique=True)))
    policies = tuple(draw(st.lists(st.sampled_from(POLICIES), max_size=5, unique=True)))
    params = FairnessParams(
        policy=draw(st.sampled_from([Policy.DEFAULT, Policy.NONE, Policy.CREATOR_CAP])),
        policies=policies,
        max_per_creator=draw(st.integers(1, 4)),
        creator_window=draw(st.integers(0, 8)),
        protected_groups=protected,
        min_protected_share=draw(st.sampled_from([0.0, 0.0, 0.1, 0.35])),
        fair_alpha=draw(st.sampled_from([0.1, 0.05, 0.3])),
    )
    d = draw(st.sampled_from([0, 1, 3, 16]))
    emb: NDArray[np.float32] | None = None
    if draw(st.booleans()):
        emb = rng.normal(size=(k, d)).astype(np.float32)
        if k and draw(st.booleans()):
            emb[rng.integers(0, k)] = 0.0  # a zero vector: no direction
    has_tracker = draw(st.booleans())
    active = params.active()
    floors = None
    if draw(st.booleans()):
        floors = floor_need(params, active, names, target, k)
    return {
        "args": (scores, creators, groups, chosen, ideal, params),
        "kwargs": {
            "group_names": names,
            "target_share": target,
            "page_embeddings": emb,
            "window_share": rng.random(n_groups) if has_tracker else None,
            "prices": rng.random(n_groups) if has_tracker else None,
            "floors": floors,
            "active": active if draw(st.booleans()) else None,
        },
    }


@settings(max_examples=400, deadline=None)
@given(page=pages())
def test_measure_matches_the_numpy_reference(page: dict[str, Any]) -> None:
    new = measure(*page["args"], **page["kwargs"])
    old = reference_measure(*page["args"], **page["kwargs"])
    assert_same_report(new, old)


@settings(max_examples=300, deadline=None)
@given(
    creators=st.lists(st.integers(0, 6), max_size=40),
    cap=st.integers(1, 4),
    window=st.integers(0, 10),
)
def test_cap_violated_matches_the_reference(creators: list[int], cap: int, window: int) -> None:
    c = np.asarray(creators, np.int64)
    assert cap_violated(c, cap, window) == ref_cap_violated(c, cap, window)


@settings(max_examples=200, deadline=None)
@given(
    k=st.integers(0, 30),
    n_groups=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    policies=st.lists(st.sampled_from([Policy.GROUP_FLOOR, Policy.GROUP_SHARES]), min_size=1),
)
def test_floors_met_matches_the_reference(
    k: int, n_groups: int, seed: int, policies: list[Policy]
) -> None:
    rng = np.random.default_rng(seed)
    names = GROUP_NAMES[:n_groups]
    params = FairnessParams(policies=tuple(policies), protected_groups=(names[-1],))
    target = rng.dirichlet(np.ones(n_groups))
    need, cls, _ = floor_need(params, params.active(), names, target, k)
    pool = rng.integers(0, n_groups, k + int(rng.integers(0, 30))).astype(np.int64)
    page = rng.permutation(pool)[:k]
    new = floors_met(page, pool, need, cls)
    old = ref_floors_met(page, pool, need, cls)
    assert new.dtype == old.dtype and new.tolist() == old.tolist()


@settings(max_examples=200, deadline=None)
@given(
    m=st.integers(0, 25),
    d=st.integers(0, 70),
    seed=st.integers(0, 2**32 - 1),
    zeros=st.integers(0, 3),
)
def test_intra_list_diversity_matches_the_reference(m: int, d: int, seed: int, zeros: int) -> None:
    rng = np.random.default_rng(seed)
    emb = (rng.normal(size=(m, d)) * rng.choice([1e-3, 1.0, 1e3])).astype(np.float32)
    emb[rng.integers(0, max(m, 1), zeros if m else 0)] = 0.0
    new, old = intra_list_diversity(emb), ref_intra_list_diversity(emb)
    assert struct.pack("<d", new) == struct.pack("<d", old)


@settings(max_examples=200, deadline=None)
@given(
    flags=st.lists(st.booleans(), max_size=60),
    p=st.floats(0.01, 0.9),
    alpha=st.sampled_from([0.05, 0.1, 0.2]),
)
def test_fair_test_on_flags_matches_the_array_version(
    flags: list[bool], p: float, alpha: float
) -> None:
    arr = np.asarray(flags, bool)
    assert fair_stats.passes_flags(flags, p, alpha) == ref_passes(arr, p, alpha)
    assert fair_stats.passes(arr, p, alpha) == ref_passes(arr, p, alpha)


def test_rerank_report_matches_the_reference_on_a_served_shape() -> None:
    """A 500-candidate pool, 20-item page, every policy: the report `rerank` attaches."""
    rng = np.random.default_rng(7)
    n, k = 500, 20
    scores = rng.normal(size=n).astype(np.float32)
    creators = rng.integers(0, 120, n).astype(np.int64)
    groups = (rng.random(n) < 0.2).astype(np.int64)
    emb = rng.normal(size=(n, 16)).astype(np.float32)
    params = FairnessParams(protected_groups=("new_creator",))
    names = ["established", "new_creator"]
    target = np.array([0.8, 0.2])
    tracker = fairness.ExposureTracker(50)
    for _ in range(30):
        page = fairness.rerank(
            scores, creators, groups, np.arange(n, dtype=np.int64), k, params,
            group_names=names, target_share=target, embeddings=emb, tracker=tracker,
            creator_key="v", n_creators=120,
        )  # fmt: skip
        ideal = np.lexsort((np.arange(n), -scores.astype(np.float64)))[:k]
        g = page.report.groups
        old = reference_measure(
            scores, creators, groups, page.positions, ideal, params,
            group_names=names, target_share=target, page_embeddings=emb[page.positions],
            window_share=np.array([x.window_exposure_share for x in g]),
            prices=np.array([x.price for x in g]),
        )  # fmt: skip
        old.cold_start_position = page.report.cold_start_position  # set by rerank, not measure
        assert_same_report(page.report, old)
        assert math.isfinite(page.report.intra_list_diversity)


@settings(max_examples=300, deadline=None)
@given(
    weights=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=12),
    picks=st.lists(st.integers(0, 11), max_size=12),
    floor=st.sampled_from([0.0, 0.0, 0.25]),
)
def test_protected_share_matches_the_numpy_sum(
    weights: list[float], picks: list[int], floor: float
) -> None:
    names = [f"g{i}" for i in range(len(weights))]
    target = np.asarray(weights) / max(sum(weights), 1.0) * 3  # sums past 1 get clipped
    protected = tuple(f"g{i}" for i in picks)
    params = FairnessParams(protected_groups=protected, min_protected_share=floor)
    codes = [names.index(g) for g in protected if g in names]
    want = floor if floor > 0 else (float(min(1.0, target[codes].sum())) if codes else 0.0)
    got = protected_share(params, names, target)
    assert struct.pack("<d", got) == struct.pack("<d", want)


# ---- rerank and the exposure tracker over a stream of pages ----

ALL_POLICIES = (*POLICIES, Policy.NONE)


@st.composite
def streams(draw: st.DrawFn) -> dict[str, Any]:
    n_groups = draw(st.integers(2, 3))
    names = GROUP_NAMES[:n_groups]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    order = draw(st.permutations(POLICIES))
    policies = tuple(order[: draw(st.integers(0, len(order)))])
    params = FairnessParams(
        policy=draw(st.sampled_from([Policy.DEFAULT, Policy.NONE])),
        policies=policies,
        max_per_creator=draw(st.integers(1, 3)),
        creator_window=draw(st.integers(0, 6)),
        protected_groups=(names[-1],),
        min_protected_share=draw(st.sampled_from([0.0, 0.3])),
        repeat_decay=draw(st.sampled_from([0.95, 0.7, 1.0])),
        diversity_lambda=draw(st.sampled_from([0.9, 1.0])),
        dpp_window=draw(st.sampled_from([0, 3])),
        creator_exposure_weight=draw(st.sampled_from([0.0, 0.03, 0.5])),
        cold_start_position=draw(st.integers(1, 6)),
        cold_start_min_relevance=draw(st.sampled_from([0.0, 0.5])),
        exposure_step=draw(st.sampled_from([0.005, 0.2])),
    )
    return {
        "rng": rng,
        "names": names,
        "params": params,
        "pages": draw(st.integers(1, 6)),
        "k": draw(st.integers(0, 25)),
        "n_creators": draw(st.integers(1, 40)),
        "backend": draw(st.sampled_from(["rust", "python"])),
        "window": draw(st.integers(1, 4)),
        "ties": draw(st.booleans()),
    }


@settings(max_examples=150, deadline=None)
@given(case=streams())
def test_rerank_and_tracker_match_the_reference(case: dict[str, Any]) -> None:
    rng, names, params = case["rng"], case["names"], case["params"]
    n_groups, n_creators = len(names), case["n_creators"]
    target = rng.dirichlet(np.ones(n_groups))
    new_tracker = fairness.ExposureTracker(case["window"])
    old_tracker = ReferenceExposureTracker(case["window"])
    for _ in range(case["pages"]):
        n = int(rng.integers(1, 80))
        if case["ties"]:
            scores = (rng.integers(-2, 6, n) / 4.0).astype(np.float32)
        else:
            scores = rng.normal(size=n).astype(np.float32)
        creators = rng.integers(0, n_creators, n).astype(np.int64)
        groups = rng.integers(0, n_groups, n).astype(np.int64)
        tiebreak = rng.permutation(n).astype(np.int64)
        emb = rng.normal(size=(n, 4)).astype(np.float32)
        pages = []
        for impl, tracker in ((fairness.rerank, new_tracker), (reference_rerank, old_tracker)):
            pages.append(
                impl(
                    scores,
                    creators,
                    groups,
                    tiebreak,
                    case["k"],
                    params,
                    group_names=names,
                    target_share=target,
                    embeddings=emb,
                    tracker=tracker,
                    creator_key="v1",
                    n_creators=n_creators,
                    backend=case["backend"],
                )
            )
        new, old = pages
        assert new.positions.tolist() == old.positions.tolist()
        assert new.scores.tobytes() == old.scores.tobytes()
        assert_same_report(new.report, old.report)
        assert new_tracker.pages == old_tracker.pages
        for f in ("prices", "window_shares"):
            a, b = getattr(new_tracker, f)(names), getattr(old_tracker, f)(names)
            assert a.tobytes() == b.tobytes(), f
        everyone = np.arange(n_creators + 3, dtype=np.int64)  # and 3 never recorded
        a = new_tracker.creator_price("v1", everyone, n_creators)
        b = old_tracker.creator_price("v1", everyone, n_creators)
        assert a.tobytes() == b.tobytes()


specials = st.sampled_from([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38])


@settings(max_examples=400, deadline=None)
@given(
    scores=st.lists(
        st.one_of(st.floats(width=32, allow_nan=False), specials, st.sampled_from([0.25, 0.5])),
        max_size=60,
    ),
    tiebreak=st.sampled_from(["permutation", "duplicates", "negative", "large"]),
    nan=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_ranking_order_is_lexsort(scores: list[float], tiebreak: str, nan: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = np.asarray(scores, np.float32)
    n = s.size
    if nan and n:
        s[rng.integers(0, n)] = np.nan
    tb = {
        "permutation": rng.permutation(n),
        "duplicates": rng.integers(0, max(1, n // 3), n),
        "negative": rng.integers(-5, 5, n),
        "large": rng.integers(0, 2**40, n),
    }[tiebreak].astype(np.int64)
    want = np.lexsort((tb, -s.astype(np.float64)))
    got = fairness.ranking_order(s, tb)
    assert got.dtype == want.dtype and got.tolist() == want.tolist()
    strided = np.repeat(s, 2)[::2]  # a non-contiguous view: copied, the same order
    assert fairness.ranking_order(strided, tb).tolist() == want.tolist()
    s64 = s.astype(np.float64)  # another dtype: lexsort itself
    assert fairness.ranking_order(s64, tb).tolist() == np.lexsort((tb, -s64)).tolist()


def test_native_ranking_order_refuses_bad_arrays_with_a_clear_error() -> None:
    scores = np.array([0.5, 1.0], np.float32)
    with pytest.raises(ValueError, match="tiebreak has 1 entries for 2 scores"):
        _core.ranking_order(scores, np.zeros(1, np.int64))
    with pytest.raises(TypeError, match="scores must be a 1-D numpy array of dtype float32"):
        _core.ranking_order(scores.astype(np.float64), np.zeros(2, np.int64))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tiebreak must be a 1-D numpy array of dtype int64"):
        _core.ranking_order(scores, [0, 1])  # type: ignore[arg-type]
