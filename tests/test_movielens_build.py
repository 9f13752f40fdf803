"""Build and serve from MovieLens 100k (real ratings), skipped when the data is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.data.movielens import convert_movielens_100k, movielens_path
from server.index import builder
from server.index.loaded import open_snapshot
from server.pipeline import rank
from server.pipeline.types import FairnessParams, Policy

ML = movielens_path()
pytestmark = pytest.mark.skipif(
    ML is None,
    reason="MovieLens 100k not found: set REELRANK_ML100K (default ../shared/data/ml-100k)",
)


def test_build_from_movielens_and_rank(tmp_path: Path) -> None:
    assert ML is not None
    convert_movielens_100k(ML, tmp_path / "ml")
    m = builder.build_snapshot(
        tmp_path / "ml/interactions.csv", tmp_path / "ml/items.csv", tmp_path / "snaps"
    )
    assert m["counts"]["items"] == 1682
    assert m["counts"]["users"] == 943
    assert m["counts"]["interactions"] == 100_000
    assert m["ann"]["recall_at_100"] == pytest.approx(1.0)
    snap = open_snapshot(Path(m["path"]))
    params = FairnessParams(policy=Policy.NONE)
    # Personalised pages differ between users and never repeat a rated movie.
    pages = []
    for u in range(0, 900, 150):
        r = rank.rank(snap, snap.user_ids[u], [], [], 10, 300, params)
        items = r.items
        assert len(set(items.tolist())) == 10
        assert not set(items.tolist()) & set(snap.user_seen(u).tolist())
        pages.append(set(items.tolist()))
    assert len(set.union(*pages)) > 20


def test_movielens_holdout_beats_popularity(tmp_path: Path) -> None:
    """Hide each user's last 5 ratings: the engine finds more of them than most-popular."""
    assert ML is not None
    import csv

    convert_movielens_100k(ML, tmp_path / "ml")
    with (tmp_path / "ml/interactions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    by_user: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_user.setdefault(r["user_id"], []).append(r)
    train, test = [], {}
    for u, rs in by_user.items():
        rs.sort(key=lambda r: int(r["timestamp"]))
        train += rs[:-5]
        test[u] = {r["item_id"] for r in rs[-5:]}
    with (tmp_path / "train.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(train)
    m = builder.build_snapshot(
        tmp_path / "train.csv", tmp_path / "ml/items.csv", tmp_path / "snaps"
    )
    snap = open_snapshot(Path(m["path"]))
    params = FairnessParams(policy=Policy.NONE)
    hits = pop_hits = 0
    popular = [snap.item_ids[i] for i in np.asarray(snap.pools["popular"]).tolist()]
    for u, held in test.items():
        ui = snap.user_index[u]
        r = rank.rank(snap, u, [], [], 10, 300, params)
        hits += len(held & {snap.item_ids[i] for i in r.items.tolist()})
        seen = {snap.item_ids[i] for i in snap.user_seen(ui).tolist()}
        pop_page = [i for i in popular if i not in seen][:10]
        pop_hits += len(held & set(pop_page))
    print(f"leave-last-5-out hits@10: engine {hits}, most-popular {pop_hits}")
    assert hits > 1.3 * pop_hits, (hits, pop_hits)


def test_reelrank_eval_beats_baselines_on_movielens(tmp_path: Path) -> None:
    """`reelrank eval` end to end on one random 80/20 split (a user sample, to stay fast)."""
    assert ML is not None
    from server.eval.runner import evaluate

    convert_movielens_100k(ML, tmp_path / "ml")
    r = evaluate(
        tmp_path / "ml/interactions.csv",
        tmp_path / "ml/items.csv",
        tmp_path / "eval",
        seed=0,
        max_users=400,
        with_default_policy=False,
    )
    m = r["methods"]
    print({k: (v["ndcg@10"], v["recall@10"]) for k, v in m.items()})
    assert r["users"] == 400 and r["snapshot"]["collaborative"]["model"] == "ease"
    assert m["reelrank"]["ndcg@10"] > m["item_knn"]["ndcg@10"] + 0.02
    assert m["item_knn"]["ndcg@10"] > m["most_popular"]["ndcg@10"] + 0.1
    assert m["reelrank"]["ndcg@10"] > 0.42 and m["reelrank"]["recall@10"] > 0.22
    assert m["reelrank_creator_cap"]["ndcg@10"] > m["item_knn"]["ndcg@10"]
    for key in ("precision@20", "map@20", "hit_rate@10", "coverage@10", "creator_gini@10"):
        assert 0.0 <= m["reelrank"][key] <= 1.0
