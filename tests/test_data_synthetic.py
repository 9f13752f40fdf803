"""Synthetic catalogue: determinism, schema validity, realism, and a hidden-truth ranking check."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from server.data import load_interactions, load_items
from server.data.loaders import Interactions, Items
from server.data.schema import DEFAULT_EVENT_WEIGHTS, EVENT_TYPES, event_code
from server.data.synthetic import (
    DEFAULT_NOW_TS,
    GENERIC_EN,
    GENERIC_ZH,
    TOPICS,
    generate,
    simulate,
)

N_ITEMS, N_USERS, SEED = 4000, 800, 3
DAY = 86_400


def _is_zh(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    out = tmp_path_factory.mktemp("synthetic")
    return generate(N_ITEMS, N_USERS, SEED, out), out


@pytest.fixture(scope="module")
def loaded(generated: tuple[dict[str, object], Path]) -> tuple[Items, Interactions]:
    _, out = generated
    items = load_items(out / "items.csv")
    return items, load_interactions(out / "interactions.csv", skip_unknown_items=items)


def test_topic_tables_are_well_formed() -> None:
    assert 40 <= len(TOPICS) <= 60
    tags = [tag for t in TOPICS for tag in (*t.en, *t.zh)] + list(GENERIC_EN + GENERIC_ZH)
    assert len(tags) == len(set(tags)), "a tag shared by two topics would blur topic truth"
    for t in TOPICS:
        assert not any(_is_zh(tag) for tag in t.en) and all(_is_zh(tag) for tag in t.zh)
        assert t.title_en.count("{t}") == 1 and t.title_zh.count("{t}") == 1
        assert all("|" not in tag and tag == tag.lower().strip() for tag in (*t.en, *t.zh))


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    a = generate(300, 60, 11, tmp_path / "a")
    b = generate(300, 60, 11, tmp_path / "b")
    generate(300, 60, 12, tmp_path / "c")
    for name in ("items.csv", "interactions.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    assert {
        k: v for k, v in a.items() if k not in ("seconds", "items_path", "interactions_path")
    } == {k: v for k, v in b.items() if k not in ("seconds", "items_path", "interactions_path")}
    assert not list((tmp_path / "a").glob(".*tmp*")), "temporary files left behind"


def test_summary_matches_files(
    generated: tuple[dict[str, object], Path], loaded: tuple[Items, Interactions]
) -> None:
    summary, _ = generated
    items, inter = loaded
    assert summary["n_items"] == items.n_rows == N_ITEMS
    assert summary["n_interactions"] == inter.n_rows
    assert summary["n_users"] == N_USERS
    assert summary["now_ts"] == DEFAULT_NOW_TS
    assert isinstance(summary["seconds"], float)
    # ~50 interaction rows per user on average.
    assert 35 <= inter.n_rows / N_USERS <= 65


def test_every_interaction_is_valid_against_items(loaded: tuple[Items, Interactions]) -> None:
    items, inter = loaded
    assert inter.rejected == {"unknown_item": 0}
    pos = items.positions(inter.item_id)
    assert (pos >= 0).all()
    assert (inter.timestamp >= items.publish_ts[pos]).all()
    assert (inter.timestamp <= DEFAULT_NOW_TS).all()
    assert (inter.timestamp >= DEFAULT_NOW_TS - 30 * DAY).all()
    assert np.all(np.diff(inter.timestamp) >= 0), "log is in time order"
    # Only views carry a watch ratio; every view has one.
    is_view = inter.event == event_code("view")
    assert not np.isnan(inter.watch_ratio[is_view]).any()
    assert np.isnan(inter.watch_ratio[~is_view]).all()
    assert set(np.unique(inter.event).tolist()) <= set(range(len(EVENT_TYPES)))
    assert np.allclose(inter.weight[is_view], DEFAULT_EVENT_WEIGHTS["view"])


def test_groups_creators_and_publish_times(loaded: tuple[Items, Interactions]) -> None:
    items, _ = loaded
    new = items.group == "new_creator"
    assert set(items.group.tolist()) == {"new_creator", "established"}
    assert 0.15 <= new.mean() <= 0.25
    # New creators: recent items, few items each.
    assert (items.publish_ts[new] >= DEFAULT_NOW_TS - 15 * DAY).all()
    span = DEFAULT_NOW_TS - items.publish_ts[~new]
    assert span.max() > 80 * DAY and span.min() >= 0
    _, new_sizes = np.unique(items.creator_id[new], return_counts=True)
    _, est_sizes = np.unique(items.creator_id[~new], return_counts=True)
    assert new_sizes.max() <= 5 and new_sizes.mean() < np.median(est_sizes)
    # Heavy tail: the biggest creators dwarf the typical one.
    assert est_sizes.max() >= 10 * np.median(est_sizes)
    top = np.sort(est_sizes)[::-1][: max(1, est_sizes.size // 10)]
    assert top.sum() / est_sizes.sum() >= 0.35


def test_bilingual_tags_and_titles(loaded: tuple[Items, Interactions]) -> None:
    items, _ = loaded
    lists = items.keyword_lists()
    sizes = np.array([len(tags) for tags in lists])
    assert sizes.min() >= 3 and sizes.max() <= 8
    assert all(len(set(tags)) == len(tags) for tags in lists)
    all_tags = [tag for tags in lists for tag in tags]
    zh_share = np.mean([_is_zh(tag) for tag in all_tags])
    assert 0.25 < zh_share < 0.75
    zh_titles = np.mean([_is_zh(title) for title in items.title])
    assert 0.3 < zh_titles < 0.9
    assert all(title for title in items.title)


def test_popularity_bias_and_engagement_follow_match() -> None:
    cat = simulate(N_ITEMS, N_USERS, SEED)
    inter = cat.interactions
    views = inter.filter(inter.column("event").to_numpy(zero_copy_only=False) == "view")
    item_row = np.searchsorted(
        cat.items.column("item_id").to_numpy(zero_copy_only=False),
        views.column("item_id").to_numpy(zero_copy_only=False),
    )
    user_row = np.searchsorted(cat.user_ids, views.column("user_id").to_numpy(zero_copy_only=False))
    counts = np.bincount(item_row, minlength=N_ITEMS)
    # A feed's popularity skew: the top 5% of items take a large share of views.
    top = np.sort(counts)[::-1][: N_ITEMS // 20]
    assert top.sum() / counts.sum() > 0.2
    preferred = (cat.user_topics[user_row] == cat.item_topic[item_row][:, None]).any(axis=1)
    watch = views.column("watch_ratio").to_numpy()
    assert watch[preferred].mean() > watch[~preferred].mean() + 0.2


def _chronological_split(views: Interactions, frac: float) -> np.ndarray:
    """True for each user's last ``frac`` of views (rows are already in time order)."""
    user = views.user_index
    order = np.argsort(user, kind="stable")
    counts = np.bincount(user, minlength=len(views.user_vocab))
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.empty(user.size, np.int64)
    rank[order] = np.arange(user.size) - starts
    result: np.ndarray = rank >= np.ceil((1.0 - frac) * counts[user])
    return result


def test_hidden_truth_held_out_interactions_follow_preferred_topics() -> None:
    cat = simulate(N_ITEMS, N_USERS, SEED)
    inter = cat.interactions
    views = inter.filter(inter.column("event").to_numpy(zero_copy_only=False) == "view")
    item_row = np.searchsorted(
        cat.items.column("item_id").to_numpy(zero_copy_only=False),
        views.column("item_id").to_numpy(zero_copy_only=False),
    )
    user_row = np.searchsorted(cat.user_ids, views.column("user_id").to_numpy(zero_copy_only=False))
    as_inter = Interactions.from_ids(
        cat.user_ids[user_row],
        views.column("item_id"),
        np.ones(views.num_rows),
        timestamp=views.column("timestamp"),
    )
    test = _chronological_split(as_inter, 0.2)
    topic = cat.item_topic[item_row]
    in_pref = (cat.user_topics[user_row] == topic[:, None]).any(axis=1)
    share = np.bincount(topic, minlength=len(TOPICS)) / topic.size
    padded = np.where(cat.user_topics >= 0, share[cat.user_topics], 0.0)
    base = padded.sum(axis=1)[user_row]
    # Held-out views stay on the users' topics far more than topic popularity alone predicts.
    assert in_pref[test].mean() > 0.7
    assert in_pref[test].mean() > 3 * base[test].mean()


def test_keyword_ranker_beats_popularity(loaded: tuple[Items, Interactions]) -> None:
    """Ranking is worth doing: a tag-profile ranker out-recalls most-popular on held-out."""
    items, inter = loaded
    views = inter.select(inter.event == event_code("view"))
    test = _chronological_split(views, 0.2)
    users, rows = views.user_index, items.positions(views.item_id)
    shape = (len(views.user_vocab), items.n_rows)
    train = sp.csr_matrix((np.ones(int((~test).sum())), (users[~test], rows[~test])), shape)
    held = sp.csr_matrix((np.ones(int(test.sum())), (users[test], rows[test])), shape)
    train.data[:] = 1.0
    held.data[:] = 1.0
    indptr, tags = items.keyword_csr()
    tag_vocab, tag_idx = np.unique(tags, return_inverse=True)
    item_tags = sp.csr_matrix(
        (np.ones(tag_idx.size), tag_idx, indptr), shape=(items.n_rows, tag_vocab.size)
    )
    norm = 1.0 / np.sqrt(np.maximum(np.asarray(item_tags.sum(axis=1)).ravel(), 1.0))
    item_tags = sp.diags(norm) @ item_tags
    keyword_scores = ((train @ item_tags) @ item_tags.T).toarray()
    popularity = np.asarray(train.sum(axis=0)).ravel().astype(np.float64)
    pop_scores = np.broadcast_to(popularity, shape).copy()

    def recall_at(scores: np.ndarray, k: int = 50) -> float:
        scores = scores.copy()
        scores[train.nonzero()] = -np.inf  # never recommend what the user already saw
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        hits = np.zeros(shape, np.bool_)
        np.put_along_axis(hits, top, True, axis=1)
        found = np.asarray(held.multiply(hits).sum(axis=1)).ravel()
        total = np.asarray(held.sum(axis=1)).ravel()
        return float((found[total > 0] / total[total > 0]).mean())

    kw, pop = recall_at(keyword_scores), recall_at(pop_scores)
    assert kw > 2 * pop, (kw, pop)


@pytest.mark.slow
def test_demo_size_generates_within_budget(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    summary = generate(100_000, 20_000, 1, tmp_path)
    assert time.perf_counter() - t0 < 30
    assert 700_000 <= int(str(summary["n_interactions"])) <= 1_300_000
    assert summary["n_new_creator_items"] == 20_000
