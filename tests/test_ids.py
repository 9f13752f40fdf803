"""IdTable against a plain dict, including unicode, prefixes and over-long ids."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.index.ids import IdTable

# Ids come from UTF-8 files: no lone surrogates. NUL is excluded too: fixed-width byte
# arrays cannot hold a trailing NUL.
TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


@given(
    st.lists(st.text(TEXT, min_size=1, max_size=8), unique=True, max_size=60),
    st.lists(st.text(TEXT, max_size=12), max_size=20),
)
def test_lookup_matches_dict(ids: list[str], queries: list[str]) -> None:
    t = IdTable(ids)
    ref = {s: i for i, s in enumerate(ids)}
    assert list(t) == ids
    assert [t[i] for i in range(len(ids))] == ids
    probe = queries + ids[:5]
    assert t.lookup(probe).tolist() == [ref.get(q, -1) for q in probe]
    for q in probe:
        assert t.rows.get(q) == ref.get(q)
        assert (q in t.rows) == (q in ref)
    order = sorted(range(len(ids)), key=lambda i: ids[i].encode())
    assert [int(r) for r in t.rank[order]] == list(range(len(ids)))


def test_prefix_and_overlong_ids_do_not_match() -> None:
    t = IdTable(["v1", "v10", "视频"])
    assert t.lookup(["v", "v1", "v100", "视频", "视频x"]).tolist() == [-1, 0, -1, 2, -1]
    assert t[1:] == ["v10", "视频"]


def test_trailing_nul_is_not_the_id_without_it() -> None:
    # The fixed-width dtype strips trailing NULs: "v1\0" must not find "v1".
    t = IdTable(["v1", "v10"])
    assert t.lookup(["v1\0", "v1\0\0", "v1"]).tolist() == [-1, -1, 0]
    assert t.rows.get("v1\0") is None and t.row("v1\0") == -1 and t.row("v1") == 0
    assert t.row("") == -1 and t.row("\udc80") == -1 and IdTable([]).row("v1") == -1
