//! Protobuf wire-format encoding of a page of `reelrank.v1.RankedItem`s.
//!
//! Pure Rust (no PyO3). [`encode_ranked_items`] writes the bytes of `repeated RankedItem items = 1`
//! of `RankResponse` (proto/reelrank/v1/ranking_service.proto), so that the Python service can
//! append a whole page to its response with one `MergeFromString` instead of building one
//! message per item. The output is byte-identical to what the Python (upb) serializer writes
//! for the same items: fields in field-number order, proto3 implicit presence (empty strings,
//! floats whose bits are all zero and empty packed lists are omitted; `-0.0` is written), and
//! `stage_scores` always present, even when all its floats are zero, as the service always
//! sets it. `explanation` (field 8) is not written.

use crate::error::{CoreError, Result};

/// Wire type of strings, bytes, submessages and packed repeated fields.
const LEN: u32 = 2;
/// Wire type of `float` and `fixed32`.
const I32: u32 = 5;

/// Appends `v` as a base-128 varint (1 to 10 bytes).
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Length of `v` as a varint.
pub fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends the key of field `field` with wire type `wire`.
pub fn put_tag(buf: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(buf, u64::from((field << 3) | wire));
}

/// Length of the key of field `field`.
pub fn tag_len(field: u32) -> usize {
    varint_len(u64::from(field << 3))
}

/// Appends a length-delimited field (key, length, bytes), even when `data` is empty.
pub fn put_len_field(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    put_tag(buf, field, LEN);
    put_varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// Appends a `fixed32` field (key, 4 little-endian bytes), whatever its value.
pub fn put_fixed32_field(buf: &mut Vec<u8>, field: u32, v: u32) {
    put_tag(buf, field, I32);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// The varint of an `int32` or enum value: negative values are sign-extended to 64 bits.
fn enum_varint(v: i32) -> u64 {
    i64::from(v) as u64
}

/// Size of a length-delimited field with a `len`-byte payload.
fn len_field_len(field: u32, len: usize) -> usize {
    tag_len(field) + varint_len(len as u64) + len
}

/// Size of a proto3 `string` field: nothing when empty (implicit presence).
fn string_len(field: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        len_field_len(field, s.len())
    }
}

/// Appends a proto3 `string` field, omitted when empty.
fn put_string(buf: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        put_len_field(buf, field, s.as_bytes());
    }
}

/// Size of a proto3 `float` field: nothing when its bits are all zero (so `-0.0` is written).
fn float_len(field: u32, v: f32) -> usize {
    if v.to_bits() == 0 {
        0
    } else {
        tag_len(field) + 4
    }
}

/// Appends a proto3 `float` field, omitted when its bits are all zero.
fn put_float(buf: &mut Vec<u8>, field: u32, v: f32) {
    if v.to_bits() != 0 {
        put_fixed32_field(buf, field, v.to_bits());
    }
}

/// A page of ranked items as parallel columns of length `n` (borrowed from the caller).
#[derive(Debug, Clone, Copy)]
pub struct RankedItems<'a> {
    /// `RankedItem.item_id` (1).
    pub item_ids: &'a [&'a str],
    /// `RankedItem.creator_id` (2).
    pub creator_ids: &'a [&'a str],
    /// `RankedItem.group` (5).
    pub groups: &'a [&'a str],
    /// `RankedItem.snapshot_version` (4), the same for every item.
    pub snapshot_version: &'a str,
    /// `RankedItem.score` (3).
    pub score: &'a [f32],
    /// `StageScores` fields 1..=6 in field order: keyword, embedding, popularity, freshness,
    /// ranking, item_knn.
    pub stage: [&'a [f32]; 6],
    /// Source bit flags of each item (`RankedItem.sources`, 7).
    pub sources: &'a [u8],
    /// `(bit flag, CandidateSource enum number)` pairs: an item lists the enum numbers of the
    /// flags it has, in this order. Bits not listed are ignored.
    pub source_map: &'a [(u8, i32)],
}

/// Names of the stage-score columns, for error messages.
pub const STAGE_NAMES: [&str; 6] = [
    "keyword",
    "embedding",
    "popularity",
    "freshness",
    "ranking",
    "item_knn",
];

impl RankedItems<'_> {
    /// Number of items; errors naming the first column whose length differs from `item_ids`.
    pub fn checked_len(&self) -> Result<usize> {
        let n = self.item_ids.len();
        let lens = [
            ("creator_ids", self.creator_ids.len()),
            ("groups", self.groups.len()),
            ("score", self.score.len()),
            ("sources", self.sources.len()),
        ]
        .into_iter()
        .chain(
            STAGE_NAMES
                .iter()
                .copied()
                .zip(self.stage.map(<[f32]>::len)),
        );
        for (name, len) in lens {
            if len != n {
                return Err(CoreError::invalid(format!(
                    "{name} has {len} entries, expected {n} (one per item_ids entry)"
                )));
            }
        }
        Ok(n)
    }

    /// Size of item `i`'s `StageScores` message.
    fn stage_len(&self, i: usize) -> usize {
        (0..6)
            .map(|f| float_len(f as u32 + 1, self.stage[f][i]))
            .sum()
    }

    /// Size of item `i`'s packed `sources` payload.
    fn sources_len(&self, i: usize) -> usize {
        let bits = self.sources[i];
        self.source_map
            .iter()
            .filter(|(flag, _)| bits & flag != 0)
            .map(|&(_, v)| varint_len(enum_varint(v)))
            .sum()
    }

    /// Size of item `i`'s `RankedItem` message; `stage` and `sources` are its parts' sizes.
    fn item_len(&self, i: usize, stage: usize, sources: usize) -> usize {
        string_len(1, self.item_ids[i])
            + string_len(2, self.creator_ids[i])
            + float_len(3, self.score[i])
            + string_len(4, self.snapshot_version)
            + string_len(5, self.groups[i])
            + len_field_len(6, stage)
            + if sources == 0 {
                0
            } else {
                len_field_len(7, sources)
            }
    }

    /// Appends item `i` as one element of `repeated RankedItem items = 1`.
    fn put_item(&self, buf: &mut Vec<u8>, i: usize) {
        let stage = self.stage_len(i);
        let sources = self.sources_len(i);
        put_tag(buf, 1, LEN);
        put_varint(buf, self.item_len(i, stage, sources) as u64);
        put_string(buf, 1, self.item_ids[i]);
        put_string(buf, 2, self.creator_ids[i]);
        put_float(buf, 3, self.score[i]);
        put_string(buf, 4, self.snapshot_version);
        put_string(buf, 5, self.groups[i]);
        // A message field has explicit presence: written even when all its floats are zero.
        put_tag(buf, 6, LEN);
        put_varint(buf, stage as u64);
        for (f, col) in self.stage.iter().enumerate() {
            put_float(buf, f as u32 + 1, col[i]);
        }
        if sources > 0 {
            put_tag(buf, 7, LEN);
            put_varint(buf, sources as u64);
            let bits = self.sources[i];
            for &(flag, v) in self.source_map {
                if bits & flag != 0 {
                    put_varint(buf, enum_varint(v));
                }
            }
        }
    }
}

/// The wire bytes of `repeated RankedItem items = 1` for `items`, in order (empty for no items).
/// Errors when the columns' lengths differ.
pub fn encode_ranked_items(items: &RankedItems<'_>) -> Result<Vec<u8>> {
    let n = items.checked_len()?;
    let mut buf = Vec::with_capacity(n * (96 + items.snapshot_version.len()));
    for i in 0..n {
        items.put_item(&mut buf, i);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(v: u64) -> Vec<u8> {
        let mut b = Vec::new();
        put_varint(&mut b, v);
        assert_eq!(b.len(), varint_len(v), "varint_len({v})");
        b
    }

    #[test]
    fn varints_at_group_boundaries() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(127), [0x7f]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(16_383), [0xff, 0x7f]);
        assert_eq!(varint(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(varint(u64::from(u32::MAX)), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(varint(u64::MAX), max);
        for k in 1..64 {
            // 2^k - 1 fits in ceil(k / 7) bytes, 2^k needs ceil((k + 1) / 7).
            assert_eq!(varint_len((1u64 << k) - 1), (k as usize).div_ceil(7));
            assert_eq!(varint_len(1u64 << k), (k as usize + 1).div_ceil(7));
        }
    }

    #[test]
    fn negative_enums_take_ten_bytes() {
        assert_eq!(
            varint(enum_varint(-1)),
            [0xff; 9].iter().copied().chain([0x01]).collect::<Vec<_>>()
        );
        assert_eq!(varint(enum_varint(5)), [0x05]);
    }

    #[test]
    fn tags_and_length_delimited_fields() {
        let mut b = Vec::new();
        put_len_field(&mut b, 1, b"");
        assert_eq!(b, [0x0a, 0x00]);
        b.clear();
        put_len_field(&mut b, 16, &[7; 200]);
        // Field 16 needs a two-byte key; length 200 a two-byte varint.
        assert_eq!(&b[..4], [0x82, 0x01, 0xc8, 0x01]);
        assert_eq!(b.len(), 4 + 200);
        assert_eq!(tag_len(15), 1);
        assert_eq!(tag_len(16), 2);
    }

    #[test]
    fn floats_keep_their_bits_and_only_positive_zero_is_omitted() {
        let enc = |v: f32| {
            let mut b = Vec::new();
            put_float(&mut b, 3, v);
            assert_eq!(b.len(), float_len(3, v));
            b
        };
        assert!(enc(0.0).is_empty());
        assert_eq!(enc(-0.0), [0x1d, 0x00, 0x00, 0x00, 0x80]);
        assert_eq!(enc(1.0), [0x1d, 0x00, 0x00, 0x80, 0x3f]);
        assert_eq!(enc(f32::NAN), [0x1d, 0x00, 0x00, 0xc0, 0x7f]);
        // A signalling NaN and a negative NaN are written bit for bit, not canonicalised.
        assert_eq!(
            enc(f32::from_bits(0x7f80_0001)),
            [0x1d, 0x01, 0x00, 0x80, 0x7f]
        );
        assert_eq!(
            enc(f32::from_bits(0xffc0_0000)),
            [0x1d, 0x00, 0x00, 0xc0, 0xff]
        );
        assert_eq!(enc(f32::from_bits(1)), [0x1d, 0x01, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn strings_are_utf8_bytes_and_empty_ones_are_omitted() {
        let mut b = Vec::new();
        put_string(&mut b, 5, "");
        assert!(b.is_empty());
        put_string(&mut b, 5, "é✓");
        assert_eq!(b, [0x2a, 0x05, 0xc3, 0xa9, 0xe2, 0x9c, 0x93]);
        assert_eq!(string_len(5, "é✓"), b.len());
    }

    const MAP: [(u8, i32); 6] = [(1, 1), (2, 2), (4, 3), (8, 4), (16, 5), (32, 6)];

    fn page<'a>(ids: &'a [&'a str], cols: &'a [Vec<f32>; 7], sources: &'a [u8]) -> RankedItems<'a> {
        RankedItems {
            item_ids: ids,
            creator_ids: ids,
            groups: ids,
            snapshot_version: "v1",
            score: &cols[0],
            stage: [&cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6]],
            sources,
            source_map: &MAP,
        }
    }

    #[test]
    fn one_item_matches_the_protobuf_encoding() {
        let cols: [Vec<f32>; 7] = [
            vec![1.0],
            vec![0.0],
            vec![-0.0],
            vec![0.0],
            vec![0.0],
            vec![0.0],
            vec![0.0],
        ];
        let out = encode_ranked_items(&page(&["a"], &cols, &[0b10_0101])).unwrap();
        // What upb writes for RankedItem(item_id="a", creator_id="a", score=1.0,
        // snapshot_version="v1", group="a", stage_scores=StageScores(embedding=-0.0),
        // sources=[ANN, FRESH, ITEM_NEIGHBOR]) inside RankResponse.items.
        let item: Vec<u8> = [
            &[0x0a, 0x01, b'a'][..],
            &[0x12, 0x01, b'a'],
            &[0x1d, 0x00, 0x00, 0x80, 0x3f],
            &[0x22, 0x02, b'v', b'1'],
            &[0x2a, 0x01, b'a'],
            &[0x32, 0x05, 0x15, 0x00, 0x00, 0x00, 0x80],
            &[0x3a, 0x03, 0x01, 0x03, 0x06],
        ]
        .concat();
        let mut want = vec![0x0a, item.len() as u8];
        want.extend(item);
        assert_eq!(out, want);
    }

    #[test]
    fn empty_fields_leave_only_the_stage_scores_message() {
        let cols: [Vec<f32>; 7] = Default::default();
        let cols = cols.map(|_| vec![0.0]);
        let it = RankedItems {
            snapshot_version: "",
            ..page(&[""], &cols, &[0b1100_0000])
        };
        // Unmapped source bits are ignored; an empty packed list is omitted.
        assert_eq!(encode_ranked_items(&it).unwrap(), [0x0a, 0x02, 0x32, 0x00]);
        assert!(encode_ranked_items(&page(&[], &Default::default(), &[]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn long_items_get_multi_byte_lengths() {
        let long = "x".repeat(300);
        let ids = [long.as_str(), "b"];
        let cols: [Vec<f32>; 7] = Default::default();
        let cols = cols.map(|_| vec![0.5, 0.25]);
        let out = encode_ranked_items(&page(&ids, &cols, &[63, 1])).unwrap();
        let first = 3 * (3 + 300) + 5 + 4 + 2 + 6 * 5 + 2 + 6;
        assert_eq!(
            &out[..3],
            [0x0a, (first & 0x7f) as u8 | 0x80, (first >> 7) as u8]
        );
        let second = 3 * 3 + 5 + 4 + 2 + 6 * 5 + 2 + 1;
        assert_eq!(&out[3 + first..3 + first + 2], [0x0a, second as u8]);
        assert_eq!(out.len(), 3 + first + 2 + second);
    }

    #[test]
    fn length_mismatch_names_the_column() {
        let mut cols: [Vec<f32>; 7] = Default::default();
        cols = cols.map(|_| vec![0.0]);
        cols[4] = vec![];
        let e = encode_ranked_items(&page(&["a"], &cols, &[0])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "freshness has 0 entries, expected 1 (one per item_ids entry)"
        );
        let cols = cols.map(|_| vec![0.0]);
        let e = encode_ranked_items(&page(&["a"], &cols, &[])).unwrap_err();
        assert!(e.to_string().starts_with("sources has 0 entries"), "{e}");
    }
}
