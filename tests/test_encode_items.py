"""Parity of the native `RankedItem` encoder (``server._core.encode_ranked_items``) with the
protobuf Python API, its errors, and `Rank` responses against the per-item Python assembly it
replaced (kept below as the reference)."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from server import _core
from server.api.reelrank.v1 import ranking_service_pb2 as pb
from server.api.reelrank.v1 import ranking_service_pb2_grpc as pb_grpc
from server.api.reelrank.v1 import types_pb2
from server.app import App
from server.index.ids import IdTable
from server.pipeline import rank as pipeline
from server.pipeline.explain import explain
from server.pipeline.types import Source
from server.services import convert
from server.services.ranking_service import _SOURCE_FLAGS, _SOURCE_VALUES

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STAGES = ("keyword", "embedding", "popularity", "freshness", "ranking", "item_knn")
NAN_BITS = (0x7FC00000, 0xFFC00000, 0x7FC12345)  # quiet NaNs, one with a payload


def f32(bits: int) -> float:
    return float(struct.unpack("<f", struct.pack("<I", bits))[0])


# Finite floats plus the values implicit presence and the wire format care about. Signalling NaNs
# are left out: the protobuf API takes Python floats, and the float32 → float → float32 round trip
# quiets them, while the native encoder writes the array's bits unchanged.
FLOATS = st.floats(width=32, allow_nan=False) | st.sampled_from(
    [0.0, -0.0, math.inf, -math.inf, f32(1), f32(0x80000001), *map(f32, NAN_BITS)]
)
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)


class Page:
    """One page's columns, as the service passes them to the encoder."""

    def __init__(
        self,
        ids: Sequence[str],
        creators: Sequence[str],
        groups: Sequence[str],
        version: str,
        cols: NDArray[np.float32],
        sources: NDArray[np.uint8],
    ) -> None:
        self.ids, self.creators, self.groups, self.version = ids, creators, groups, version
        self.cols = cols  # 7 x n: score, then the six stage scores
        self.sources = sources

    def native(self, as_bytes: bool = True) -> bytes:
        def enc(xs: Sequence[str]) -> list[bytes] | list[str]:
            return [x.encode("utf-8") for x in xs] if as_bytes else list(xs)

        return _core.encode_ranked_items(
            enc(self.ids),
            enc(self.creators),
            enc(self.groups),
            self.version,
            *self.cols,
            self.sources,
            _SOURCE_FLAGS,
            _SOURCE_VALUES,
        )

    def reference(self) -> pb.RankResponse:
        resp = pb.RankResponse()
        rows = self.cols.T.tolist()
        for j, row in enumerate(rows):
            resp.items.add(
                item_id=self.ids[j],
                creator_id=self.creators[j],
                score=row[0],
                snapshot_version=self.version,
                group=self.groups[j],
                stage_scores=types_pb2.StageScores(**dict(zip(STAGES, row[1:], strict=True))),
                sources=convert.sources(int(self.sources[j])),
            )
        return resp


def page_of(n: int, fill: float = 0.5, version: str = "v1") -> Page:
    ids = [f"item{j}" for j in range(n)]
    return Page(
        ids,
        [f"creator{j}" for j in range(n)],
        ["g"] * n,
        version,
        np.full((7, n), fill, np.float32),
        np.full(n, int(Source.ANN), np.uint8),
    )


def check(page: Page) -> bytes:
    """Asserts the native bytes equal the protobuf API's and merge into the same response."""
    want = page.reference()
    got = page.native()
    assert got == want.SerializeToString()
    assert page.native(as_bytes=False) == got
    merged = pb.RankResponse(snapshot_version=page.version)
    merged.MergeFromString(got)
    assert len(merged.items) == len(page.ids)
    if not np.isnan(page.cols).any():  # NaN != NaN in message equality
        assert list(merged.items) == list(want.items)
    return got


@st.composite
def pages(draw: st.DrawFn) -> Page:
    n = draw(st.integers(0, 6))
    texts = st.lists(TEXT, min_size=n, max_size=n)
    cols = draw(st.lists(FLOATS, min_size=7 * n, max_size=7 * n))
    return Page(
        draw(texts),
        draw(texts),
        draw(texts),
        draw(TEXT),
        np.array(cols, np.float32).reshape(7, n),
        np.array(draw(st.lists(st.integers(0, 255), min_size=n, max_size=n)), np.uint8),
    )


@SETTINGS
@given(pages())
def test_native_bytes_equal_the_protobuf_api(page: Page) -> None:
    check(page)


def test_empty_page_is_no_bytes() -> None:
    assert check(page_of(0)) == b""


def test_zero_and_negative_zero_floats() -> None:
    # +0.0 is omitted (implicit presence), -0.0 is not; stage_scores is present even when empty.
    zero = page_of(2, fill=0.0, version="")
    zero.ids, zero.creators, zero.groups = ["", ""], ["", ""], ["", ""]
    zero.sources[:] = 0
    assert check(zero) == b"\x0a\x02\x32\x00" * 2
    neg = page_of(1, fill=-0.0)
    item = pb.RankResponse.FromString(check(neg)).items[0]
    assert math.copysign(1.0, item.score) == -1.0
    assert math.copysign(1.0, item.stage_scores.item_knn) == -1.0


@pytest.mark.parametrize("bits", [*NAN_BITS, 0x7F800000, 0xFF800000])
def test_nan_and_infinite_floats_keep_their_bits(bits: int) -> None:
    page = page_of(1)
    page.cols[:, 0] = np.array([bits], np.uint32).view(np.float32)[0]
    got = check(page)
    assert got.count(struct.pack("<I", bits)) == 7


def test_signalling_nan_is_written_as_given() -> None:
    page = page_of(1)
    page.cols[0, 0] = np.array([0x7F800001], np.uint32).view(np.float32)[0]
    assert b"\x1d\x01\x00\x80\x7f" in page.native()


def test_non_ascii_ids() -> None:
    page = page_of(3)
    page.ids = ["é", "日本語の動画", "🎬 clip"]
    page.creators = ["Ünïcødé", "créateur", "x" * 300]  # a two-byte length varint
    page.groups = ["grüppe", "", "🌍"]
    got = check(page)
    assert pb.RankResponse.FromString(got).items[1].item_id == "日本語の動画"


def test_every_source_bit_combination() -> None:
    page = page_of(256)
    page.sources = np.arange(256, dtype=np.uint8)
    got = pb.RankResponse.FromString(check(page))
    for bits, item in enumerate(got.items):
        want = [p for s, p in convert.SOURCE_TO_PROTO.items() if bits & int(s)]
        assert list(item.sources) == want


def test_large_page() -> None:
    rng = np.random.default_rng(3)
    page = page_of(500)
    page.cols = rng.standard_normal((7, 500)).astype(np.float32)
    page.sources = rng.integers(0, 64, 500).astype(np.uint8)
    check(page)


def test_non_contiguous_columns_are_read_correctly() -> None:
    page = page_of(4)
    wide = np.arange(7 * 8, dtype=np.float32).reshape(7, 8)
    page.cols = wide[:, ::2]
    check(page)


# ----------------------------------------------------------------------------- errors


def args(n: int = 2) -> dict[str, Any]:
    col = np.zeros(n, np.float32)
    ids = [b"a"] * n
    return {
        "item_ids": ids,
        "creator_ids": ids,
        "groups": ids,
        "snapshot_version": "v",
        "score": col,
        **{s: col for s in STAGES},
        "sources": np.zeros(n, np.uint8),
        "source_flags": _SOURCE_FLAGS,
        "source_values": _SOURCE_VALUES,
    }


@pytest.mark.parametrize("name", ["creator_ids", "groups", "score", *STAGES, "sources", "item_ids"])
def test_length_mismatch_names_the_argument(name: str) -> None:
    a = args()
    a[name] = a[name][:1]
    expected = "creator_ids" if name == "item_ids" else name
    with pytest.raises(ValueError, match=rf"^{expected} has \d entries, expected \d"):
        _core.encode_ranked_items(**a)


def test_source_table_lengths_must_match() -> None:
    a = args()
    a["source_values"] = _SOURCE_VALUES[:-1]
    with pytest.raises(ValueError, match="source_values has 5 entries, expected 6"):
        _core.encode_ranked_items(**a)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("score", np.zeros(2, np.float64), "score must be a 1-D numpy array of dtype float32"),
        ("sources", [0, 0], "sources must be a 1-D numpy array of dtype uint8"),
        ("item_ids", "ab", "item_ids must be a list of bytes or str, got str"),
        ("groups", [b"a", 3], r"groups\[1\] must be bytes or str, got int"),
        ("creator_ids", [b"a", b"\xff"], r"creator_ids\[1\] is not valid UTF-8"),
    ],
)
def test_bad_arguments_are_clear_errors(name: str, value: Any, message: str) -> None:
    a = args()
    a[name] = value
    with pytest.raises((TypeError, ValueError), match=message):
        _core.encode_ranked_items(**a)


def test_id_table_encoded_returns_the_utf8_bytes() -> None:
    t = IdTable(["a", "é", "日本", "zz"])
    assert t.encoded(np.array([2, 0, 1, 2], np.int32)) == [
        "日本".encode(),
        b"a",
        "é".encode(),
        "日本".encode(),
    ]
    assert t.encoded(np.zeros(0, np.int64)) == []


# ----------------------------------------------------------------------------- Rank end to end


def reference_items(result: pipeline.RankResult, debug: bool) -> pb.RankResponse:
    """The per-item Python assembly `Rank` used before the native encoder."""
    snap, scores, pos = result.snapshot, result.scores, result.page.positions
    items = scores.items[pos]
    resp = pb.RankResponse()
    bits = result.candidates.sources[pos].tolist()
    why = explain(snap, result.state, items) if debug else None
    knn = scores.item_knn[pos].tolist() if scores.item_knn.size else [0.0] * pos.size
    for j, i in enumerate(items.tolist()):
        item = resp.items.add(
            item_id=snap.item_ids[i],
            creator_id=snap.creator_ids[int(snap.item_creator[i])],
            score=float(result.page.scores[j]),
            snapshot_version=snap.version,
            group=snap.groups[int(snap.item_group[i])],
            stage_scores=types_pb2.StageScores(
                keyword=float(scores.keyword[pos[j]]),
                embedding=float(scores.embedding[pos[j]]),
                popularity=float(scores.popularity[pos[j]]),
                freshness=float(scores.freshness[pos[j]]),
                ranking=float(scores.total[pos[j]]),
                item_knn=knn[j],
            ),
            sources=convert.sources(bits[j]),
        )
        if why is not None:
            item.explanation.matched_keywords.extend(why[j].matched_keywords)
            item.explanation.similar_to_item_id = why[j].similar_to_item_id
            item.explanation.similarity = why[j].similarity
    return resp


@pytest.mark.parametrize("debug", [False, True])
def test_rank_over_grpc_equals_the_python_assembly(
    app: App, channel: grpc.Channel, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    snap = app.store.current()
    captured: list[pipeline.RankResult] = []
    real_rank = pipeline.rank

    def capture(*a: Any, **kw: Any) -> pipeline.RankResult:
        captured.append(real_rank(*a, **kw))
        return captured[-1]

    # The server runs in this process: capture each pipeline result it builds a response from.
    monkeypatch.setattr(pipeline, "rank", capture)
    stub = pb_grpc.RankingServiceStub(channel)
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    seed = types_pb2.UserEvent(
        item_id=snap.item_ids[7], event_type=types_pb2.EVENT_TYPE_LIKE, timestamp=ts
    )
    requests = [
        pb.RankRequest(user_id=snap.user_ids[k], num_results=20, debug=debug) for k in range(6)
    ] + [
        pb.RankRequest(user_id="no-such-user", num_results=15, debug=debug),  # cold start
        pb.RankRequest(user_id=snap.user_ids[1], recent_events=[seed], debug=debug),
    ]
    seen_sources: set[int] = set()
    for req in requests:
        captured.clear()
        resp = stub.Rank(req, timeout=10)
        assert len(captured) == 1
        want = reference_items(captured[0], debug)
        assert len(resp.items) > 0
        assert list(resp.items) == list(want.items)
        only_items = pb.RankResponse(items=resp.items)
        assert only_items.SerializeToString() == want.SerializeToString()
        assert resp.snapshot_version == snap.version
        assert all(it.HasField("explanation") == debug for it in resp.items)
        seen_sources.update(s for it in resp.items for s in it.sources)
    # The pages exercised more than one retrieval source.
    assert len(seen_sources) >= 2
