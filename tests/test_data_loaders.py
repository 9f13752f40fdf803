"""Loaders: round trips, value parsing, exact error locations, skipped-row accounting."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.data import (
    DEFAULT_EVENT_WEIGHTS,
    EVENT_TYPES,
    InputError,
    Interactions,
    filter_unknown_items,
    load_interactions,
    load_items,
    write_table,
)
from server.data.schema import event_code, event_weight_table


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _interactions_table() -> pa.Table:
    return pa.table(
        {
            "user_id": ["u1", "u2", "u1", "u3", "u2"],
            "item_id": ["a", "b", "b", "c", "a"],
            "event": ["view", "like", None, "share", "skip"],
            "weight": [None, None, 2.5, 10.0, None],
            "timestamp": [1_700_000_000, 1_700_000_100, 1_700_000_200, 1_700_000_300, 5],
            "watch_ratio": [0.5, None, None, 1.25, 0.0],
        }
    )


def _items_table() -> pa.Table:
    return pa.table(
        {
            "item_id": ["a", "b", "c"],
            "creator_id": ["c1", "c1", "c2"],
            "keywords": ["cooking|美食|家常菜", "Fitness | 健身 ||", None],
            "title": ["Easy dinner, fast", "每天十分钟", 'multi\nline "quoted"'],
            "publish_ts": [1_600_000_000, 1_600_000_001, 1_600_000_002],
            "group": ["new_creator", None, "established"],
        }
    )


# ----------------------------------------------------------------------------- schema


def test_event_codes_and_default_weights() -> None:
    assert EVENT_TYPES[event_code("like")] == "like"
    assert set(DEFAULT_EVENT_WEIGHTS) == set(EVENT_TYPES)
    table = event_weight_table({"like": 9.0})
    assert table[event_code("like")] == 9.0
    assert table[event_code("view")] == DEFAULT_EVENT_WEIGHTS["view"]
    with pytest.raises(ValueError, match="lik"):
        event_weight_table({"lik": 1.0})
    with pytest.raises(KeyError):
        event_code("jump")


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_interactions_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"interactions{suffix}"
    write_table(_interactions_table(), path)
    got = load_interactions(path)
    assert got.n_rows == 5
    assert got.user_id.tolist() == ["u1", "u2", "u1", "u3", "u2"]
    assert got.item_id.tolist() == ["a", "b", "b", "c", "a"]
    assert got.event.tolist() == [0, 1, -1, 3, 6]
    # Explicit weight wins; otherwise the event's default weight.
    assert got.weight.tolist() == [1.0, 4.0, 2.5, 10.0, -1.0]
    assert got.weight.dtype == np.float32 and got.event.dtype == np.int8
    assert got.timestamp.tolist() == [1_700_000_000, 1_700_000_100, 1_700_000_200, 1_700_000_300, 5]
    np.testing.assert_array_equal(
        got.watch_ratio, np.array([0.5, np.nan, np.nan, 1.25, 0.0], dtype=np.float32)
    )
    assert got.rejected == {}
    assert sorted(got.user_vocab.tolist()) == ["u1", "u2", "u3"]
    assert got.user_index.dtype == np.int32


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_items_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"items{suffix}"
    write_table(_items_table(), path)
    items = load_items(path)
    assert items.n_rows == 3
    assert items.item_id.tolist() == ["a", "b", "c"]
    assert items.creator_id.tolist() == ["c1", "c1", "c2"]
    # Tags are trimmed and lower-cased; empty tags and missing keywords become nothing.
    assert items.keywords.tolist() == ["cooking|美食|家常菜", "fitness|健身", ""]
    assert items.title.tolist() == ["Easy dinner, fast", "每天十分钟", 'multi\nline "quoted"']
    assert items.publish_ts.tolist() == [1_600_000_000, 1_600_000_001, 1_600_000_002]
    assert items.group.tolist() == ["new_creator", "", "established"]
    assert items.keyword_lists() == [["cooking", "美食", "家常菜"], ["fitness", "健身"], []]
    indptr, tags = items.keyword_csr()
    assert indptr.tolist() == [0, 3, 5, 5]
    assert tags.tolist() == ["cooking", "美食", "家常菜", "fitness", "健身"]
    assert items.positions(["c", "zz", "a"]).tolist() == [2, -1, 0]


def test_items_with_only_title_or_only_keywords(tmp_path: Path) -> None:
    only_title = load_items(
        _write(tmp_path / "t.csv", "item_id,creator_id,title,publish_ts\na,c,Hello,1\n")
    )
    assert only_title.keywords.tolist() == [""] and only_title.group.tolist() == [""]
    only_kw = load_items(
        _write(tmp_path / "k.csv", "item_id,creator_id,keywords,publish_ts\na,c,x|y,1\n")
    )
    assert only_kw.title.tolist() == [""] and only_kw.keywords.tolist() == ["x|y"]


def test_weight_only_and_event_weight_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path / "w.csv", "user_id,item_id,weight,timestamp\nu,a,0.25,1\n")
    got = load_interactions(path)
    assert got.event.tolist() == [-1] and got.weight.tolist() == [0.25]
    path = _write(tmp_path / "e.csv", "user_id,item_id,event,timestamp\nu,a,like,1\nu,b,view,2\n")
    got = load_interactions(path, event_weights={"like": 7.0})
    assert got.weight.tolist() == [7.0, 1.0]
    with pytest.raises(ValueError):
        load_interactions(path, event_weights={"likes": 1.0})


def test_timestamp_formats(tmp_path: Path) -> None:
    rows = [
        ("1700000000", 1_700_000_000),
        (" +42 ", 42),
        ("-5", -5),
        ("2024-05-01", 1_714_521_600),
        ("2024-05-01T12:34:56", 1_714_566_896),
        ("2024-05-01 12:34:56", 1_714_566_896),
        ("2024-05-01T12:34:56Z", 1_714_566_896),
        ("2024-05-01T20:34:56+08:00", 1_714_566_896),
        ("2024-05-01T12:34:56.900", 1_714_566_896),
    ]
    body = "".join(f"u,a,view,{text}\n" for text, _ in rows)
    got = load_interactions(_write(tmp_path / "ts.csv", "user_id,item_id,event,timestamp\n" + body))
    assert got.timestamp.tolist() == [secs for _, secs in rows]


def test_parquet_native_types(tmp_path: Path) -> None:
    table = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),  # numeric ids are fine: ids are text
            "item_id": pa.array(["a", "b"]).dictionary_encode(),
            "event": ["view", "like"],
            "timestamp": pa.array([1_700_000_000_000, 1_700_000_001_500], pa.timestamp("ms")),
            "watch_ratio": pa.array([0.5, None], pa.float32()),
        }
    )
    path = tmp_path / "i.parquet"
    write_table(table, path)
    got = load_interactions(path)
    assert got.user_id.tolist() == ["1", "2"]
    assert got.item_id.tolist() == ["a", "b"]
    assert got.timestamp.tolist() == [1_700_000_000, 1_700_000_001]


def test_case_and_space_tolerant_events_and_ignored_extra_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "i.csv", "user_id,item_id,event,timestamp,extra\n u1 ,a, Like ,1,whatever\n"
    )
    got = load_interactions(path)
    assert got.event.tolist() == [event_code("like")]
    assert got.user_id.tolist() == ["u1"]


# ----------------------------------------------------------------------------- errors

_HEAD = "user_id,item_id,event,weight,timestamp,watch_ratio\n"
_OK = "u1,a,view,,1700000000,0.5\n"


@pytest.mark.parametrize(
    ("body", "row", "column", "detail"),
    [
        (_OK + "u1,a,view,abc,1,\n", 3, "weight", "'abc' is not a number"),
        (_OK + "u1,a,view,inf,1,\n", 3, "weight", "'inf' is not a finite number"),
        (
            _OK + _OK + "u1,a,view,,yesterday,\n",
            4,
            "timestamp",
            "'yesterday' is not a timestamp (expected integer seconds or ISO-8601)",
        ),
        (_OK + "u1,a,view,,,\n", 3, "timestamp", "empty timestamp"),
        (_OK + "u1,a,view,,1,lots\n", 3, "watch_ratio", "'lots' is not a number"),
        (_OK + "u1,a,view,,1,1.6\n", 3, "watch_ratio", "1.6 is outside [0, 1.5]"),
        (_OK + "u1,a,view,,1,-0.1\n", 3, "watch_ratio", "-0.1 is outside [0, 1.5]"),
        (
            _OK + "u1,a,jump,,1,\n",
            3,
            "event",
            "unknown event type 'jump' (expected one of view, like, comment, share, favorite, "
            "complete, skip, dislike)",
        ),
        (_OK + ",a,view,,1,\n", 3, "user_id", "empty user_id"),
        (_OK + "u1, ,view,,1,\n", 3, "item_id", "empty item_id"),
        (_OK + "u1,a,,,1,\n", 3, "event", "row has neither an event nor a weight"),
        # The earliest bad row wins even when it is in a column checked later.
        (
            _OK + "u1,a,view,,1,9\n" + "u1,a,view,bad,1,\n",
            3,
            "watch_ratio",
            "9 is outside [0, 1.5]",
        ),
        # A quoted newline in an earlier row shifts line numbers; the error follows the file.
        (
            '"u\n1",a,view,,1,\n' + "u1,a,view,,oops,\n",
            4,
            "timestamp",
            "'oops' is not a timestamp (expected integer seconds or ISO-8601)",
        ),
    ],
)
def test_interaction_errors_name_file_row_column(
    tmp_path: Path, body: str, row: int, column: str, detail: str
) -> None:
    path = _write(tmp_path / "interactions.csv", _HEAD + body)
    with pytest.raises(InputError) as info:
        load_interactions(path)
    err = info.value
    assert (err.file, err.row, err.column, err.detail) == (str(path), row, column, detail)
    assert str(err) == f"{path} row {row}, column {column}: {detail}"


def test_items_error_message_matches_documented_example(tmp_path: Path) -> None:
    lines = ["item_id,creator_id,title,publish_ts"]
    lines += [f"i{k},c,t,{1_600_000_000 + k}" for k in range(15)]  # lines 2..16
    lines.append("i99,c,t,abc")  # line 17
    lines.append("i15,c,t,also-bad")  # later errors do not matter
    path = _write(tmp_path / "items.csv", "\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        load_items(path)
    assert str(info.value) == (
        f"{path} row 17, column publish_ts: "
        "'abc' is not a timestamp (expected integer seconds or ISO-8601)"
    )


@pytest.mark.parametrize(
    ("body", "row", "column", "detail"),
    [
        ("a,c,t,1\nb,c,t,2\na,c,t,3\n", 4, "item_id", "duplicate item_id 'a' (first at row 2)"),
        ("a,c,t,1\n,c,t,2\n", 3, "item_id", "empty item_id"),
        ("a,,t,1\n", 2, "creator_id", "empty creator_id"),
        ("a,c,t,\n", 2, "publish_ts", "empty publish_ts"),
    ],
)
def test_item_errors(tmp_path: Path, body: str, row: int, column: str, detail: str) -> None:
    path = _write(tmp_path / "items.csv", "item_id,creator_id,title,publish_ts\n" + body)
    with pytest.raises(InputError) as info:
        load_items(path)
    assert (info.value.row, info.value.column, info.value.detail) == (row, column, detail)


@pytest.mark.parametrize(
    ("text", "column", "detail"),
    [
        ("item_id,event,timestamp\na,view,1\n", "user_id", "required column is missing"),
        (
            "user_id,item_id,timestamp\nu,a,1\n",
            None,
            "needs at least one of the columns event, weight",
        ),
        ("user_id,item_id,event,timestamp\n", None, "no data rows"),
        ("", None, "file is empty (no header, no data rows)"),
    ],
)
def test_whole_file_errors(tmp_path: Path, text: str, column: str | None, detail: str) -> None:
    path = _write(tmp_path / "i.csv", text)
    with pytest.raises(InputError) as info:
        load_interactions(path)
    assert (info.value.row, info.value.column, info.value.detail) == (None, column, detail)


def test_items_missing_columns(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="column publish_ts: required column is missing"):
        load_items(_write(tmp_path / "items.csv", "item_id,creator_id,title\na,c,t\n"))
    with pytest.raises(InputError, match="needs at least one of the columns keywords, title"):
        load_items(_write(tmp_path / "items.csv", "item_id,creator_id,publish_ts\na,c,1\n"))


def test_parquet_rows_are_one_based_data_rows(tmp_path: Path) -> None:
    table = pa.table(
        {
            "user_id": ["u", "u", "u"],
            "item_id": ["a", "b", "c"],
            "event": ["view", "view", "view"],
            "timestamp": ["1", "2", "soon"],
        }
    )
    path = tmp_path / "i.parquet"
    write_table(table, path)
    with pytest.raises(InputError) as info:
        load_interactions(path)
    assert (info.value.row, info.value.column) == (3, "timestamp")


def test_invalid_utf8_and_bad_structure(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_bytes(b"user_id,item_id,event,timestamp\nu,a,view,1\nu,\xff,view,2\n")
    with pytest.raises(InputError) as info:
        load_interactions(path)
    assert (info.value.row, info.value.column) == (3, "item_id")
    assert "UTF-8" in info.value.detail
    with pytest.raises(InputError, match="cannot parse CSV"):
        load_interactions(_write(tmp_path / "j.csv", "user_id,item_id,event,timestamp\nu,a\n"))
    with pytest.raises(InputError, match="unsupported file type"):
        load_interactions(_write(tmp_path / "i.tsv", "x"))
    with pytest.raises(FileNotFoundError):
        load_interactions(tmp_path / "missing.csv")


def test_first_bad_row_found_in_a_large_file(tmp_path: Path) -> None:
    n = 200_000
    ts = np.arange(n).astype(str).astype(object)
    ts[150_001] = "2024-13-45"  # not a date
    ts[190_000] = "nope"
    table = pa.table(
        {
            "user_id": pa.array(np.full(n, "u")),
            "item_id": pa.array(np.full(n, "a")),
            "event": pa.array(np.full(n, "view")),
            "timestamp": pa.array(ts, pa.string()),
        }
    )
    path = tmp_path / "big.csv"
    write_table(table, path)
    with pytest.raises(InputError) as info:
        load_interactions(path)
    assert info.value.row == 150_001 + 2
    assert info.value.detail.startswith("'2024-13-45' is not a timestamp")


def test_input_error_pickles() -> None:
    err = InputError("items.csv", 17, "publish_ts", "bad")
    back = pickle.loads(pickle.dumps(err))
    assert (back.file, back.row, back.column, str(back)) == (
        "items.csv",
        17,
        "publish_ts",
        "items.csv row 17, column publish_ts: bad",
    )
    assert str(InputError("f.csv", None, None, "x")) == "f.csv: x"
    assert isinstance(err, ValueError)


# ----------------------------------------------------------------------------- skipped rows


def test_unknown_items_are_skipped_and_counted(tmp_path: Path) -> None:
    write_table(_items_table(), tmp_path / "items.csv")
    table = _interactions_table().append_column("x", pa.array([0] * 5))
    table = pa.concat_tables(
        [table, table.slice(0, 2).set_column(1, "item_id", pa.array(["gone", "gone2"]))]
    )
    write_table(table.drop_columns(["x"]), tmp_path / "interactions.csv")
    items = load_items(tmp_path / "items.csv")
    raw = load_interactions(tmp_path / "interactions.csv")
    assert raw.n_rows == 7
    kept = filter_unknown_items(raw, items)
    assert kept.n_rows == 5 and kept.rejected == {"unknown_item": 2}
    assert set(kept.item_vocab.tolist()) == {"a", "b", "c"}  # vocabulary compacted
    assert kept.item_id.tolist() == ["a", "b", "b", "c", "a"]
    again = filter_unknown_items(kept, items)
    assert again.rejected == {"unknown_item": 2}
    direct = load_interactions(tmp_path / "interactions.csv", skip_unknown_items=items)
    assert direct.rejected == {"unknown_item": 2}
    assert direct.weight.tolist() == kept.weight.tolist()


def test_from_ids_and_select() -> None:
    inter = Interactions.from_ids(["u1", "u2", "u1"], ["a", "a", "b"], [1.0, 2.0, 3.0])
    assert inter.n_rows == 3 and inter.event.tolist() == [-1, -1, -1]
    sub = inter.select(np.array([False, True, False]))
    assert sub.user_vocab.tolist() == ["u2"] and sub.item_id.tolist() == ["a"]
    with pytest.raises(ValueError):
        Interactions(
            inter.user_vocab,
            inter.user_index,
            inter.item_vocab,
            inter.item_index,
            inter.weight[:1],
            inter.event,
            inter.timestamp,
            inter.watch_ratio,
        )


# ----------------------------------------------------------------------------- property test

_id_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=8,
).filter(lambda s: s.strip() == s)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(
        st.tuples(
            _id_text,
            _id_text,
            st.sampled_from(EVENT_TYPES),
            st.integers(-(2**40), 2**40),
            st.one_of(st.none(), st.floats(0.0, 1.5, allow_nan=False)),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_csv_round_trip_property(
    tmp_path: Path, rows: list[tuple[str, str, str, int, float | None]]
) -> None:
    users, items, events, ts, ratios = (list(c) for c in zip(*rows, strict=True))
    path = tmp_path / "p.csv"
    write_table(
        pa.table(
            {
                "user_id": users,
                "item_id": items,
                "event": events,
                "timestamp": ts,
                "watch_ratio": pa.array(ratios, pa.float64()),
            }
        ),
        path,
    )
    got = load_interactions(path)
    assert got.user_id.tolist() == users
    assert got.item_id.tolist() == items
    assert [EVENT_TYPES[c] for c in got.event] == events
    assert got.timestamp.tolist() == ts
    expected = np.array([np.nan if r is None else r for r in ratios], dtype=np.float32)
    np.testing.assert_array_equal(got.watch_ratio, expected)
