"""Offline build: snapshot contents against plain references, atomicity, corruption checks."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from server import _core
from server.data.loaders import InputError
from server.index import builder, snapshot, text
from server.index.loaded import open_snapshot


def test_manifest_and_arrays_are_consistent(built: dict[str, Any]) -> None:
    d = Path(built["path"])
    m = snapshot.read_manifest(d)
    assert m["version"] == d.name
    snapshot.verify_files(d, m)
    n = m["counts"]["items"]
    kw = sp.csr_matrix(
        (np.load(d / "kw_data.npy"), np.load(d / "kw_indices.npy"), np.load(d / "kw_indptr.npy")),
        shape=(n, m["counts"]["terms"]),
    )
    norms = np.sqrt(np.asarray(kw.multiply(kw).sum(axis=1)).ravel())
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    post = sp.csc_matrix(
        (
            np.load(d / "kw_post_weights.npy"),
            np.load(d / "kw_post_items.npy"),
            np.load(d / "kw_post_indptr.npy"),
        ),
        shape=kw.shape,
    )
    assert (post != kw).nnz == 0
    assert 0.0 < m["ann"]["recall_at_100"] <= 1.0
    assert m["ann"]["factory"] == "Flat"
    assert set(m["group_catalogue_share"]) == set(m["groups"])
    assert sum(m["group_catalogue_share"].values()) == pytest.approx(1.0)


def test_user_profiles_match_a_dense_reference(built: dict[str, Any]) -> None:
    snap = open_snapshot(Path(built["path"]))
    for u in (0, 5, 17):
        terms, weights = snap.user_profile(u)
        assert np.all(np.diff(terms) > 0)
        assert np.linalg.norm(weights) == pytest.approx(1.0, abs=1e-5)
        assert len(terms) <= builder.BuildConfig().profile_terms


def test_tfidf_tokenises_chinese_and_english() -> None:
    assert text.tokenize_title("Easy 家常菜 recipe") == ["easy", "recipe", "家常", "常菜"]
    assert text.tokenize_tags("Cooking| 美食 |") == ["#cooking", "#美食"]
    f = text.build_tfidf(["a|b", "a|c", "d"], ["", "", "hello world"], max_df_ratio=1.0)
    dense = f.matrix.toarray()
    assert np.allclose(np.linalg.norm(dense, axis=1), 1.0)
    # '#a' is in two docs, '#b' in one: the rarer tag weighs more in doc 0.
    va, vb = f.vocabulary.index("#a"), f.vocabulary.index("#b")
    assert dense[0, vb] > dense[0, va] > 0


def test_prune_rows_topk_matches_dense() -> None:
    rng = np.random.default_rng(1)
    m = sp.random(30, 50, density=0.3, random_state=2, format="csr") - 0.2 * sp.random(
        30, 50, density=0.1, random_state=3
    )
    out = text.prune_rows_topk(sp.csr_matrix(m), 4).toarray()
    dense = sp.csr_matrix(m).toarray()
    for r in range(30):
        pos = np.flatnonzero(dense[r] > 0)
        best = pos[np.lexsort((pos, -dense[r, pos]))][:4]
        assert set(np.flatnonzero(out[r])) == set(best)
    del rng


def test_bad_input_publishes_nothing(demo_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "interactions.csv"
    with (demo_dir / "interactions.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    rows[5][rows[0].index("timestamp")] = "yesterday"  # line 6 of the file
    with bad.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    root = tmp_path / "snaps"
    with pytest.raises(InputError) as err:
        builder.build_snapshot(bad, demo_dir / "items.csv", root)
    assert "row 6" in str(err.value) and "timestamp" in str(err.value)
    assert not root.exists() or list(root.iterdir()) == []


def test_corrupt_or_incomplete_snapshots_are_rejected(
    built: dict[str, Any], tmp_path: Path
) -> None:
    d = tmp_path / built["version"]
    shutil.copytree(built["path"], d)
    open_snapshot(d)
    with (d / "kw_data.npy").open("r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x7f\x7f\x7f\x7f")
    with pytest.raises(snapshot.SnapshotError, match="checksum"):
        open_snapshot(d)
    (d / "manifest.json").unlink()
    with pytest.raises(snapshot.SnapshotError, match="incomplete"):
        open_snapshot(d)
    assert built["version"] not in snapshot.list_versions(tmp_path)


def test_manifest_records_inputs_and_timings(built: dict[str, Any]) -> None:
    m = json.loads((Path(built["path"]) / "manifest.json").read_text())
    assert len(m["inputs"]["items"]["sha256"]) == 64
    assert {"load", "tfidf", "embeddings", "ann"} <= set(m["timings_s"])
    assert m["counts"]["interactions"] > 0 and m["counts"]["users"] > 0


def test_randomized_svd_matches_exact_top_singular_values() -> None:
    from server.index.embeddings import fit_svd, randomized_svd

    rng = np.random.default_rng(4)
    low = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 500))
    m = sp.csr_matrix(low + 0.01 * rng.standard_normal((300, 500)))
    _, s, _ = randomized_svd(m, 8, seed=1)
    exact = np.linalg.svd(m.toarray(), compute_uv=False)[:8]
    assert np.allclose(s, exact, rtol=1e-6)
    emb = fit_svd(m, 8)
    recon = emb.users @ emb.items.T
    best = np.linalg.svd(m.toarray())
    rank8 = (best.U[:, :8] * best.S[:8]) @ best.Vh[:8]
    assert np.allclose(recon, rank8, atol=1e-3)


ITEMS_CSV = (
    "item_id,creator_id,keywords,title,publish_ts\n"
    "v1,c1,a|b,hello,1700000000\nv2,c2,b,world,1700000000\n"
)
INTER_CSV = "user_id,item_id,event,timestamp\nu1,v1,view,1700000100\nu1,v2,like,1700000200\n"


@pytest.mark.parametrize(
    ("which", "content", "row", "column", "detail"),
    [
        ("interactions", "user_id,item_id,event\nu1,v1,view\n", None, "timestamp", "missing"),
        ("interactions", INTER_CSV.replace("like", "upvote"), 3, "event", "upvote"),
        (
            "interactions",
            "user_id,item_id,weight,timestamp\nu1,v1,1.0,1700000100\nu1,v2,lots,1700000200\n",
            3,
            "weight",
            "lots",
        ),
        ("interactions", INTER_CSV.replace("1700000200", "soon"), 3, "timestamp", "soon"),
        ("items", ITEMS_CSV + "v1,c3,c,again,1700000000\n", 4, "item_id", "duplicate"),
        ("items", "", None, None, "empty"),
        ("interactions", "user_id,item_id,event,timestamp\n", None, None, ""),
    ],
)
def test_bad_input_names_file_row_and_column(
    tmp_path: Path, which: str, content: str, row: int | None, column: str | None, detail: str
) -> None:
    files = {"items": ITEMS_CSV, "interactions": INTER_CSV, which: content}
    for name, text_ in files.items():
        (tmp_path / f"{name}.csv").write_text(text_, encoding="utf-8")
    root = tmp_path / "snaps"
    with pytest.raises(InputError) as err:
        builder.build_snapshot(tmp_path / "interactions.csv", tmp_path / "items.csv", root)
    e = err.value
    assert e.file.endswith(f"{which}.csv")
    assert e.row == row and e.column == column
    assert detail.lower() in str(e).lower()
    assert not root.exists() or list(root.iterdir()) == []


def test_fitted_blend_and_collaborative_arrays(built: dict[str, Any]) -> None:
    from server.index import blend
    from server.pipeline import rank
    from server.pipeline.types import FairnessParams, Policy

    m = built
    assert m["blend_fit"]["fitted"] is True
    assert set(m["blend_weights"]) == set(blend.SIGNALS)
    assert sum(abs(v) for v in m["blend_weights"].values()) == pytest.approx(1.0, abs=1e-4)
    assert m["blend_fit"]["val_ndcg_at_10_fitted"] >= m["blend_fit"]["val_ndcg_at_10_anchor_only"]
    assert m["collaborative"]["model"] == "ease"  # 3,000 items: below ease_max_items
    snap = open_snapshot(Path(m["path"]))
    assert snap.item_query.shape == snap.item_emb.shape
    assert snap.item_knn is not None and snap.item_knn.nnz == m["collaborative"]["item_knn_nnz"]
    r = rank.rank(snap, snap.user_ids[3], [], [], 10, 300, FairnessParams(policy=Policy.NONE))
    s = r.scores
    assert s.item_knn.shape == s.items.shape and float(s.item_knn.max()) == pytest.approx(1.0)
    w = snap.blend_weights
    total = sum(w[k] * getattr(s, k) for k in blend.SIGNALS)
    assert np.allclose(total, s.total, atol=1e-5)


def test_large_catalogues_use_svd_and_reuse_the_validation_fit(
    demo_dir: Path, tmp_path: Path
) -> None:
    cfg = builder.BuildConfig(ease_max_items=100, blend_val_users=100, embedding_dim=16)
    m = builder.build_snapshot(demo_dir / "interactions.csv", demo_dir / "items.csv", tmp_path, cfg)
    assert m["collaborative"]["model"] == "svd"
    assert m["blend_fit"]["models_refit"] is False
    snap = open_snapshot(Path(m["path"]))
    assert snap.item_emb.shape[1] == 16


@pytest.mark.parametrize(
    ("blend_weights", "precompute_keyword", "builds"),
    [(None, 150, 1), (None, 0, 1), ({"embedding": 1.0}, 150, 1), ({"embedding": 1.0}, 0, 0)],
)
def test_item_keyword_matrix_is_built_at_most_once(
    demo_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    blend_weights: dict[str, float] | None,
    precompute_keyword: int,
    builds: int,
) -> None:
    """Blend validation and the per-user keyword lists share one `KeywordMatrix` of the items'
    TF-IDF rows; a build that needs neither makes none."""
    shapes: list[tuple[int, int]] = []

    def from_csr(indptr: Any, indices: Any, data: Any, n_terms: int) -> _core.KeywordMatrix:
        shapes.append((len(indptr) - 1, n_terms))
        return _core.KeywordMatrix.from_csr(indptr, indices, data, n_terms)

    counting = SimpleNamespace(from_csr=from_csr, write_derived=_core.KeywordMatrix.write_derived)
    monkeypatch.setattr(builder, "_core", SimpleNamespace(KeywordMatrix=counting))
    cfg = builder.BuildConfig(
        ease_max_items=100,
        blend_val_users=100,
        embedding_dim=16,
        blend_weights=blend_weights,
        precompute_keyword=precompute_keyword,
    )
    m = builder.build_snapshot(demo_dir / "interactions.csv", demo_dir / "items.csv", tmp_path, cfg)
    n_items, n_terms = m["counts"]["items"], m["counts"]["terms"]
    assert n_terms != n_items  # else the ItemKNN matrix (items x items) would count too
    assert m["blend_fit"]["fitted"] is (blend_weights is None)
    assert ("keyword" in m["user_candidates"]) is (precompute_keyword > 0)
    assert shapes.count((n_items, n_terms)) == builds


def test_event_weights_are_configurable(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text(ITEMS_CSV, encoding="utf-8")
    rows = "user_id,item_id,event,timestamp\n"
    rows += "u1,v1,view,1700000100\nu2,v1,view,1700000100\nu3,v2,like,1700000200\n"
    (tmp_path / "interactions.csv").write_text(rows, encoding="utf-8")
    firsts = []
    for like in (10.0, 0.1):
        cfg = builder.BuildConfig(event_weights={"like": like})
        m = builder.build_snapshot(
            tmp_path / "interactions.csv", tmp_path / "items.csv", tmp_path / f"s{like}", cfg
        )
        assert m["config"]["event_weights"] == {"like": like}
        pool = np.load(Path(m["path"]) / "pool_popular.npy")
        firsts.append(int(pool[0]))
    assert firsts == [1, 0]  # one like outweighs two views only when likes weigh 10


KW_DERIVED = [
    "kw_tile14_seg.npy",
    "kw_tile14_max.npy",
    "kw_tile14_lo.npy",
    "kw_packed_start.npy",
    "kw_packed_words.npy",
]


def _same_scores(a: _core.KeywordMatrix, b: _core.KeywordMatrix) -> None:
    rng = np.random.default_rng(2)
    for _ in range(3):
        t = np.unique(rng.integers(0, a.n_terms, size=40)).astype(np.int32)
        w = rng.random(len(t)).astype(np.float32)
        c = rng.integers(0, a.n_items, size=300).astype(np.int32)
        np.testing.assert_array_equal(a.score(t, w, c), b.score(t, w, c))
        ta, tb = a.topk(t, w, 50), b.topk(t, w, 50)
        np.testing.assert_array_equal(ta[0], tb[0])
        np.testing.assert_array_equal(ta[1], tb[1])


def _in_memory(d: Path, n_terms: int) -> _core.KeywordMatrix:
    return _core.KeywordMatrix.from_csr(
        np.load(d / "kw_indptr.npy"),
        np.load(d / "kw_indices.npy"),
        np.load(d / "kw_data.npy"),
        n_terms,
    )


def test_snapshot_maps_precomputed_keyword_arrays(built: dict[str, Any]) -> None:
    d = Path(built["path"])
    m = snapshot.read_manifest(d)
    for name in [*KW_DERIVED, "knn/kw_tile14_seg.npy", "knn/kw_tile14_lo.npy"]:
        assert len(m["files"][name]["sha256"]) == 64, name
    loaded = open_snapshot(d)
    assert loaded.keywords.derived_mapped
    assert loaded.item_knn is not None and loaded.item_knn.derived_mapped
    _same_scores(loaded.keywords, _in_memory(d, loaded.keywords.n_terms))
    _same_scores(loaded.item_knn, _in_memory(d / "knn", loaded.item_knn.n_terms))


def test_snapshot_without_precomputed_arrays_still_loads(
    built: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot from before the derived files: built in memory, with a warning."""
    d = tmp_path / built["version"]
    shutil.copytree(built["path"], d)
    manifest = json.loads((d / "manifest.json").read_text())
    for name in list(manifest["files"]):
        if "kw_tile" in name or "kw_packed" in name:
            (d / name).unlink()
            del manifest["files"][name]
    (d / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="server.index.loaded"):
        loaded = open_snapshot(d)
    assert not loaded.keywords.derived_mapped
    assert "no precomputed keyword scoring arrays" in caplog.text
    _same_scores(loaded.keywords, open_snapshot(Path(built["path"])).keywords)


def test_corrupt_precomputed_array_is_rejected(built: dict[str, Any], tmp_path: Path) -> None:
    d = tmp_path / built["version"]
    shutil.copytree(built["path"], d)
    p = d / "kw_packed_words.npy"
    words = np.load(p)
    words[3] ^= 1 << 20
    np.save(p, words)
    with pytest.raises(snapshot.SnapshotError, match="checksum"):
        open_snapshot(d)
    # without checksums the core's own comparison with the CSR rows catches it
    with pytest.raises(snapshot.SnapshotError, match=r"kw_packed_words\.npy.*does not match"):
        open_snapshot(d, verify_checksums=False)


def _corrupt_seen(d: Path, kind: str) -> str:
    """Break the seen list of the first user with at least 3 items; returns that user's id."""
    indptr, items = np.load(d / "useen_indptr.npy"), np.load(d / "useen_items.npy")
    u = int(np.flatnonzero(np.diff(indptr) >= 3)[0])
    a, b = int(indptr[u]), int(indptr[u + 1])
    if kind == "unsorted":
        items[a], items[a + 1] = items[a + 1], items[a]
    elif kind == "repeated":
        items[a + 1] = items[a]
    elif kind == "too large":
        items[b - 1] = len((d / "item_ids.txt").read_text().splitlines())
    elif kind == "negative":
        items[a] = -1
    elif kind == "offsets":
        indptr[u + 1] = indptr[u + 2] + 1
    # Same dtype and length: the files keep their size, only the checksums change.
    np.save(d / "useen_items.npy", items)
    np.save(d / "useen_indptr.npy", indptr)
    return (d / "user_ids.txt").read_text().splitlines()[u]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("unsorted", r"useen_items\.npy: the row of user '{user}' .* not strictly increasing"),
        ("repeated", r"useen_items\.npy: the row of user '{user}' .* not strictly increasing"),
        ("too large", r"useen_items\.npy: item ids outside \[0, {n_items}\)"),
        ("negative", r"useen_items\.npy: item ids outside \[0, {n_items}\)"),
        ("offsets", r"useen_indptr\.npy: offsets must not decrease"),
    ],
    ids=["unsorted", "repeated", "too-large", "negative", "offsets"],
)
def test_snapshot_with_bad_seen_lists_is_refused(
    built: dict[str, Any], tmp_path: Path, kind: str, message: str
) -> None:
    """Requests use a stored user's seen row as is: open_snapshot checks every row once."""
    d = tmp_path / built["version"]
    shutil.copytree(built["path"], d)
    open_snapshot(d)
    user = _corrupt_seen(d, kind)
    match = message.format(user=re.escape(user), n_items=built["counts"]["items"])
    with pytest.raises(snapshot.SnapshotError, match=match) as err:
        open_snapshot(d, verify_checksums=False)
    assert "rebuild the snapshot" in str(err.value)
