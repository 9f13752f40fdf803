"""MovieLens 100K adapter: a tiny hand-made sample always, the real data set when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.data import load_interactions, load_items
from server.data.movielens import ENV_VAR, convert_movielens_100k, movielens_path, title_words
from server.data.schema import event_code

_FLAGS_ACTION_SCIFI = "|".join("1" if i in (1, 15) else "0" for i in range(19))
_FLAGS_UNKNOWN = "|".join("1" if i == 0 else "0" for i in range(19))


def _fake_ml(root: Path) -> Path:
    """Three items and four ratings in the exact MovieLens 100K layout (no real data)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "u.item").write_bytes(
        (
            f"1|Star Voyage, The (1979)|01-Jan-1979||http://x|{_FLAGS_ACTION_SCIFI}\n"
            f"2|Café de l'Amour (1996)|15-Mar-1996||http://x|{_FLAGS_ACTION_SCIFI}\n"
            f"3|unknown||||{_FLAGS_UNKNOWN}\n"
        ).encode("latin-1")
    )
    (root / "u.data").write_text(
        "7\t2\t5\t881250949\n3\t1\t1\t881250000\n7\t1\t3\t881250000\n3\t3\t4\t881250001\n"
    )
    return root


def test_title_words() -> None:
    assert title_words("Shawshank Redemption, The (1994)") == ["shawshank", "redemption"]
    assert title_words("Schindler's List (1993)") == ["schindler", "list"]
    assert title_words("Cité des enfants perdus, La (1995)") == ["cité", "enfants", "perdus"]
    assert title_words("2001: A Space Odyssey (1968)") == ["2001", "space", "odyssey"]


def test_movielens_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    assert movielens_path() is None
    fake = _fake_ml(tmp_path / "ml")
    monkeypatch.setenv(ENV_VAR, str(fake))
    assert movielens_path() == fake


def test_convert_small_sample(tmp_path: Path) -> None:
    src = _fake_ml(tmp_path / "ml")
    summary = convert_movielens_100k(src, tmp_path / "out")
    assert (summary["n_items"], summary["n_users"], summary["n_interactions"]) == (3, 2, 4)
    items = load_items(tmp_path / "out" / "items.csv")
    assert items.item_id.tolist() == ["1", "2", "3"]
    assert items.keyword_lists() == [
        ["action", "sci-fi", "star", "voyage"],
        ["action", "sci-fi", "café", "amour"],
        [],
    ]
    assert items.creator_id.tolist() == ["year:1979", "year:1996", "year:unknown"]
    assert items.group.tolist() == ["classic", "recent", ""]
    assert items.publish_ts.tolist() == [283_996_800, 826_848_000, 0]
    assert items.title.tolist()[1] == "Café de l'Amour (1996)"
    inter = load_interactions(tmp_path / "out" / "interactions.csv", skip_unknown_items=items)
    assert inter.rejected == {"unknown_item": 0}
    assert inter.timestamp.tolist() == sorted(inter.timestamp.tolist())
    assert inter.user_id.tolist() == ["3", "7", "3", "7"]
    assert np.all(inter.weight == 1.0) and np.all(inter.event == event_code("like"))


def test_convert_full_movielens_100k(tmp_path: Path) -> None:
    src = movielens_path()
    if src is None:
        pytest.skip(
            f"MovieLens 100K not found: set ${ENV_VAR} to a directory with u.data and "
            "u.item (default <repo>/../shared/data/ml-100k)"
        )
    summary = convert_movielens_100k(src, tmp_path)
    assert (summary["n_interactions"], summary["n_users"], summary["n_items"]) == (
        100_000,
        943,
        1682,
    )
    items = load_items(tmp_path / "items.csv")
    inter = load_interactions(tmp_path / "interactions.csv", skip_unknown_items=items)
    assert (inter.n_rows, len(inter.user_vocab), len(inter.item_vocab)) == (100_000, 943, 1682)
    assert inter.rejected == {"unknown_item": 0}
    toy = int(np.flatnonzero(items.item_id == "1")[0])
    assert items.keyword_lists()[toy] == ["animation", "children's", "comedy", "toy", "story"]
    assert items.creator_id[toy] == "year:1995" and items.group[toy] == "recent"
    assert set(items.group.tolist()) == {"classic", "recent", ""}
    assert (items.group == "classic").sum() > 200
