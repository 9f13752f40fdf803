"""LogHistogram: percentiles against numpy within the bucket precision, merging, JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.histogram import LogHistogram

QS = (1.0, 10.0, 50.0, 90.0, 99.0, 99.9)


def _reference(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q, method="inverted_cdf"))


@pytest.mark.parametrize(
    "sampler",
    [
        lambda rng: rng.lognormal(np.log(0.01), 0.8, 50_000),  # latency-like, seconds
        lambda rng: rng.exponential(0.002, 20_000) + 1e-4,
        lambda rng: rng.uniform(0.5, 30.0, 10_000),
    ],
)
def test_percentiles_match_numpy(sampler: object) -> None:
    rng = np.random.default_rng(7)
    values = sampler(rng)  # type: ignore[operator]
    hist = LogHistogram(precision=0.01)
    hist.record_many(values.tolist())
    assert hist.count == len(values)
    assert hist.min == values.min() and hist.max == values.max()
    assert hist.mean == pytest.approx(values.mean(), rel=1e-9)
    for q in QS:
        expected = _reference(values, q)
        # The geometric middle of a bucket of relative width 1% is within ~0.5% of any
        # value in it.
        assert hist.percentile(q) == pytest.approx(expected, rel=0.006), q
    assert hist.percentile(0) == values.min() and hist.percentile(100) == values.max()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-5, max_value=100.0), min_size=1, max_size=300),
    st.floats(min_value=0.1, max_value=99.9),
)
def test_percentile_property(values: list[float], q: float) -> None:
    hist = LogHistogram(precision=0.01, lowest=1e-6)
    hist.record_many(values)
    assert hist.percentile(q) == pytest.approx(_reference(np.array(values), q), rel=0.006)


def test_merge_equals_recording_everything() -> None:
    rng = np.random.default_rng(1)
    a_vals, b_vals = rng.lognormal(-4, 1, 3000), rng.lognormal(-3, 0.5, 2000)
    a, b, both = LogHistogram(), LogHistogram(), LogHistogram()
    a.record_many(a_vals.tolist())
    b.record_many(b_vals.tolist())
    both.record_many(np.concatenate([a_vals, b_vals]).tolist())
    a.merge(b)
    assert a.buckets() == both.buckets()
    assert (a.count, a.min, a.max) == (both.count, both.min, both.max)
    assert a.sum == pytest.approx(both.sum)
    with pytest.raises(ValueError):
        a.merge(LogHistogram(precision=0.02))


def test_json_round_trip_and_edge_cases() -> None:
    hist = LogHistogram()
    assert math.isnan(hist.percentile(50)) and math.isnan(hist.mean)
    for v in (0.0, 1e-9, 0.003, 0.003, 2.5):
        hist.record(v)
    again = LogHistogram.from_dict(json.loads(json.dumps(hist.to_dict())))
    assert again.buckets() == hist.buckets()
    assert (again.count, again.min, again.max, again.sum) == (5, 0.0, 2.5, hist.sum)
    assert again.percentile(50) == pytest.approx(0.003, rel=0.006)
    empty = LogHistogram.from_dict(LogHistogram().to_dict())
    assert empty.count == 0
    with pytest.raises(ValueError):
        LogHistogram(precision=0)
    bad = hist.to_dict()
    bad["count"] = 99
    with pytest.raises(ValueError):
        LogHistogram.from_dict(bad)


def test_since_is_the_difference() -> None:
    h = LogHistogram()
    h.record_many([0.001, 0.002, 0.003])
    before = h.copy()
    h.record_many([0.010, 0.020, 0.020])
    d = h.since(before)
    assert d.count == 3 and d.sum == pytest.approx(0.050)
    assert d.buckets() == {i: n for i, n in h.buckets().items() if i not in before.buckets()}
    assert d.percentile(50) == pytest.approx(0.020, rel=0.01)
    assert 0.0099 < d.min <= 0.010 and 0.020 <= d.max < 0.0202
    assert h.since(h).count == 0
    with pytest.raises(ValueError, match="prefix"):
        before.since(h)
