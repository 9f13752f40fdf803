"""Ranking metrics against hand-computed values, and the split rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from server.eval import metrics
from server.eval.splits import held_out_pairs
from server.index import blend

RANKED = [7, 3, 9, 1, 5]  # hits at ranks 2 and 4 when relevant = {3, 1, 8}
REL = {3, 1, 8}


def test_precision_recall_hit_rate_by_hand() -> None:
    assert metrics.precision_at_k(RANKED, REL, 5) == pytest.approx(2 / 5)
    assert metrics.recall_at_k(RANKED, REL, 5) == pytest.approx(2 / 3)
    assert metrics.recall_at_k(RANKED, REL, 1) == 0.0
    assert metrics.hit_rate_at_k(RANKED, REL, 1) == 0.0
    assert metrics.hit_rate_at_k(RANKED, REL, 2) == 1.0
    # A short list counts as padded with misses: precision divides by k.
    assert metrics.precision_at_k([3], REL, 10) == pytest.approx(0.1)


def test_ndcg_by_hand() -> None:
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # 3 relevant, k = 5
    assert metrics.ndcg_at_k(RANKED, REL, 5) == pytest.approx(dcg / idcg)
    # k = 2: ideal has min(3, 2) = 2 hits.
    assert metrics.ndcg_at_k(RANKED, REL, 2) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    )
    assert metrics.ndcg_at_k([1, 3, 8], REL, 3) == pytest.approx(1.0)
    assert metrics.ndcg_at_k([2, 4], REL, 2) == 0.0


def test_map_by_hand() -> None:
    # Hits at ranks 2 and 4: precisions 1/2 and 2/4, divided by min(|rel|, k) = 3.
    assert metrics.average_precision_at_k(RANKED, REL, 5) == pytest.approx((0.5 + 0.5) / 3)
    # k = 2: one hit (1/2), divided by min(3, 2) = 2.
    assert metrics.average_precision_at_k(RANKED, REL, 2) == pytest.approx(0.25)
    assert metrics.average_precision_at_k([3, 1, 8], REL, 3) == pytest.approx(1.0)


def test_coverage_and_gini_by_hand() -> None:
    assert metrics.coverage([[0, 1], [1, 2]], 10, 2) == pytest.approx(0.3)
    assert metrics.coverage([[0, 1], [1, 2]], 10, 1) == pytest.approx(0.2)
    assert metrics.gini(np.array([1.0, 1.0, 1.0, 1.0])) == pytest.approx(0.0)
    # One of four holds everything: (n - 1) / n.
    assert metrics.gini(np.array([0.0, 0.0, 0.0, 5.0])) == pytest.approx(0.75)
    # [1, 2, 3]: sum |xi - xj| over ordered pairs = 8; G = 8 / (2 * 3^2 * 2) = 2/9.
    assert metrics.gini(np.array([3.0, 1.0, 2.0])) == pytest.approx(2 / 9)
    creators = np.array([0, 0, 1, 2])
    # Slots: creator 0 gets 3, creator 1 gets 1, creator 2 gets 0.
    g = metrics.creator_exposure_gini([[0, 1], [2, 0]], creators, 3, 2)
    assert g == pytest.approx(metrics.gini(np.array([3.0, 1.0, 0.0])))


def test_group_exposure_shares_by_hand() -> None:
    group = np.array([0, 1, 1, 0])  # items 0 and 3 in "a", 1 and 2 in "b"
    d1, d2 = 1.0, 1 / math.log2(3)  # exposure of ranks 1 and 2
    # Lists [1, 0] and [3, 2]: "a" gets d2 + d1, "b" gets d1 + d2; one list [1, 2]: all "b".
    shares = metrics.group_exposure_shares([[1, 0], [3, 2]], group, ["a", "b"], 2)
    assert shares == pytest.approx({"a": 0.5, "b": 0.5})
    shares = metrics.group_exposure_shares([[0, 1], [3]], group, ["a", "b"], 2)
    assert shares == pytest.approx({"a": (d1 + d1) / (2 * d1 + d2), "b": d2 / (2 * d1 + d2)})
    # Only the top k count, and nothing recommended is no exposure at all.
    assert metrics.group_exposure_shares([[0, 1]], group, ["a", "b"], 1) == {"a": 1.0, "b": 0.0}
    assert metrics.group_exposure_shares([[]], group, ["a", "b"], 2) == {"a": 0.0, "b": 0.0}
    out = metrics.summarise(
        {"u": [0, 1]}, {"u": {1}}, ks=(2,), n_items=4, item_creator=np.zeros(4, np.int64),
        n_creators=1, item_group=group, groups=["a", "b"],
    )  # fmt: skip
    assert out["exposure_share@2:a"] == pytest.approx(d1 / (d1 + d2))


def test_summarise_skips_users_without_relevant_items() -> None:
    out = metrics.summarise(
        {"a": [3, 1], "b": [5]},
        {"a": {3}, "b": set()},
        ks=(2,),
        n_items=10,
        item_creator=np.zeros(10, np.int64),
        n_creators=1,
    )
    assert out["users"] == 1
    assert out["recall@2"] == 1.0 and out["precision@2"] == 0.5
    assert out["ndcg@2"] == 1.0 and out["hit_rate@2"] == 1.0


def test_vectorised_ndcg_matches_the_reference() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((20, 30)).astype(np.float32)
    relevant = rng.random((20, 30)) < 0.2
    valid = np.ones((20, 30), bool)
    n_rel = relevant.sum(axis=1) + 1  # one relevant item outside the candidates
    got = blend.ndcg_at_k(scores, relevant, valid, n_rel, 10)
    ref = []
    for r in range(20):
        if n_rel[r] == 0:
            continue
        ranked = list(np.argsort(-scores[r], kind="stable"))
        rel = set(np.flatnonzero(relevant[r]).tolist()) | {1000 + r}
        ref.append(metrics.ndcg_at_k(ranked, rel, 10))
    assert got == pytest.approx(float(np.mean(ref)))


def test_random_split_holds_out_a_fifth_of_each_users_positive_pairs() -> None:
    user = np.repeat(np.arange(4), [10, 5, 1, 20])
    positive = np.ones(user.size, bool)
    positive[:2] = False  # user 0 has 8 positive pairs
    ts = np.arange(user.size)
    held = held_out_pairs(user, positive, ts, "random", seed=3)
    counts = np.bincount(user[held], minlength=4)
    assert counts.tolist() == [round(0.2 * 8), 1, 0, 4]
    assert not held[:2].any()  # negative pairs always stay in training
    again = held_out_pairs(user, positive, ts, "random", seed=3)
    assert np.array_equal(held, again)
    assert not np.array_equal(held, held_out_pairs(user, positive, ts, "random", seed=4))


def test_leave_last_out_holds_out_the_latest_positive_pair() -> None:
    user = np.array([0, 0, 0, 1, 2, 2])
    positive = np.array([True, True, False, True, True, True])
    ts = np.array([5, 9, 20, 1, 3, 3])
    held = held_out_pairs(user, positive, ts, "last", seed=0)
    # user 0: latest positive is index 1 (index 2 is negative); user 1 has a single pair;
    # user 2: a tie, broken by the seeded shuffle (both seeds below pick each side once).
    chosen = np.flatnonzero(held).tolist()
    assert chosen[0] == 1 and chosen[1] in (4, 5) and len(chosen) == 2
    picks = {
        int(np.flatnonzero(held_out_pairs(user, positive, ts, "last", seed=s))[1])
        for s in range(20)
    }
    assert picks == {4, 5}
    with pytest.raises(ValueError, match="split kind"):
        held_out_pairs(user, positive, ts, "weird", seed=0)
