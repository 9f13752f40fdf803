//! The retrieval stage's merge: several sources' best-first id lists into one de-duplicated
//! candidate list.
//!
//! Each source drops the excluded ids from its list and keeps the first `limit` that remain;
//! the kept ids of all sources are then merged in order of first appearance (source order,
//! then list order), each unique id carrying the OR of the bit flags of the sources that
//! proposed it and the largest of their scores. This is the numpy sequence
//! `np.unique(return_index, return_inverse)`, `np.bitwise_or.at`, `np.maximum.at` and a stable
//! argsort of the first positions, in one pass over a few hundred ids with a small
//! open-addressing hash table (no sorting). Pure Rust, no PyO3.

use crate::error::{CoreError, Result};

/// A source's item ids (numpy hands over either width).
#[derive(Clone, Copy)]
pub enum Ids<'a> {
    /// 32-bit ids.
    I32(&'a [i32]),
    /// 64-bit ids.
    I64(&'a [i64]),
}

impl Ids<'_> {
    fn len(&self) -> usize {
        match self {
            Self::I32(v) => v.len(),
            Self::I64(v) => v.len(),
        }
    }
}

/// One source: its ids best first, a score per id, its bit flag (or flags), and how many ids
/// it keeps once the excluded ones are dropped.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// Item ids, best first.
    pub ids: Ids<'a>,
    /// A score per id.
    pub scores: &'a [f32],
    /// Bit flag (or flags) of the source.
    pub bit: u8,
    /// Most ids kept after dropping the excluded ones.
    pub limit: usize,
}

/// The merged candidates, in order of first appearance.
#[derive(Debug, Default, PartialEq)]
pub struct Merged {
    /// Unique item ids (cast to `i32`, as numpy's `astype(np.int32)`).
    pub items: Vec<i32>,
    /// OR of the flags of every source that kept the item.
    pub bits: Vec<u8>,
    /// Largest score the item got from any source (NaN if any was NaN).
    pub scores: Vec<f32>,
    /// Ids each source kept (after exclusion and its limit, before de-duplication).
    pub counts: Vec<usize>,
}

/// numpy's `maximum` as `np.maximum.at` applies it (`acc` the running value, `v` the new
/// one): NaN propagates, and of two equal values (`-0.0` and `+0.0`) the new one wins.
#[inline(always)]
fn np_maximum(acc: f32, v: f32) -> f32 {
    if acc > v || acc.is_nan() {
        acc
    } else {
        v
    }
}

/// Fibonacci hashing: the top bits of the product spread nearby ids.
#[inline(always)]
fn hash(id: i64) -> u64 {
    (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The excluded ids (sorted, unique) behind a one-hash bit filter (~64 bits per id, at most
/// 2^18): most ids are answered "not excluded" by one L1 read and a predictable branch, the
/// rest by a branch-free binary search.
struct Excluded<'a> {
    set: &'a [i32],
    filter: Vec<u64>,
    /// `log2(filter bits)`.
    bits: u32,
}

impl<'a> Excluded<'a> {
    fn new(set: &'a [i32]) -> Self {
        let bits = (64 * set.len())
            .next_power_of_two()
            .clamp(1 << 6, 1 << 18)
            .trailing_zeros();
        let mut filter = vec![0u64; 1 << (bits - 6)];
        for &e in set {
            let b = (hash(i64::from(e)) >> (64 - bits)) as usize;
            filter[b >> 6] |= 1 << (b & 63);
        }
        Self { set, filter, bits }
    }

    #[inline(always)]
    fn contains(&self, id: i64) -> bool {
        let b = (hash(id) >> (64 - self.bits)) as usize;
        if self.filter[b >> 6] >> (b & 63) & 1 == 0 {
            return false;
        }
        let Ok(id) = i32::try_from(id) else {
            return false;
        };
        in_sorted(self.set, id)
    }
}

/// True when `id` is in `set` (sorted, unique): a branch-free binary search.
#[inline(always)]
fn in_sorted(set: &[i32], id: i32) -> bool {
    if set.is_empty() {
        return false;
    }
    let mut base = 0usize;
    let mut n = set.len();
    while n > 1 {
        let half = n / 2;
        // SAFETY: `base + half < base + n <= set.len()`.
        if unsafe { *set.get_unchecked(base + half) } <= id {
            base += half;
        }
        n -= half;
    }
    set[base] == id
}

/// Slot value of an empty hash-table entry.
const EMPTY: u32 = u32::MAX;

/// Merged ids so far: id -> position, an open-addressing table at most half full.
struct Table {
    slots: Vec<u32>,
    shift: u32,
    keys: Vec<i64>,
    want: usize,
    out: Merged,
}

impl Table {
    /// Adds one kept id of a source.
    #[inline(always)]
    fn add(&mut self, id: i64, score: f32, flag: u8) {
        let mask = self.slots.len() - 1;
        let mut h = (hash(id) >> self.shift) as usize;
        loop {
            let slot = self.slots[h];
            if slot == EMPTY {
                // A new id; past `num_candidates` it can never be returned.
                if self.keys.len() < self.want {
                    self.slots[h] = self.keys.len() as u32;
                    self.keys.push(id);
                    self.out.bits.push(flag);
                    self.out.scores.push(score);
                }
                return;
            }
            let k = slot as usize;
            if self.keys[k] == id {
                self.out.bits[k] |= flag;
                self.out.scores[k] = np_maximum(self.out.scores[k], score);
                return;
            }
            h = (h + 1) & mask;
        }
    }

    /// Walks one source's list: drops excluded ids, keeps up to `limit`; returns the count.
    fn walk<T: Copy + Into<i64>>(&mut self, ids: &[T], src: &Source<'_>, ex: &Excluded) -> usize {
        let mut kept = 0usize;
        for (&id, &score) in ids.iter().zip(src.scores) {
            if kept == src.limit {
                break;
            }
            let id: i64 = id.into();
            if ex.contains(id) {
                continue;
            }
            kept += 1;
            self.add(id, score, src.bit);
        }
        kept
    }
}

/// Checks the arguments of [`merge`].
fn check(sources: &[Source<'_>], excluded: &[i32]) -> Result<()> {
    for (s, src) in sources.iter().enumerate() {
        if src.scores.len() != src.ids.len() {
            return Err(CoreError::invalid(format!(
                "source {s}: ids and scores must have the same length: {} vs {}",
                src.ids.len(),
                src.scores.len()
            )));
        }
    }
    if let Some(p) = excluded.windows(2).position(|w| w[1] <= w[0]) {
        return Err(CoreError::invalid(format!(
            "excluded must be strictly increasing: position {} has {} after {}",
            p + 1,
            excluded[p + 1],
            excluded[p]
        )));
    }
    Ok(())
}

/// Merges the sources' lists (see the module documentation), keeping the first
/// `num_candidates` unique ids; `excluded` is sorted and unique.
pub fn merge(sources: &[Source<'_>], excluded: &[i32], num_candidates: usize) -> Result<Merged> {
    check(sources, excluded)?;
    let total: usize = sources.iter().map(|s| s.ids.len().min(s.limit)).sum();
    // At most half full: a few hundred ids probe ~1.5 slots on average.
    let cap = (2 * total).next_power_of_two().max(16);
    let want = num_candidates.min(total);
    let mut t = Table {
        slots: vec![EMPTY; cap],
        shift: 64 - cap.trailing_zeros(),
        keys: Vec::with_capacity(want),
        want,
        out: Merged {
            items: Vec::new(),
            bits: Vec::with_capacity(want),
            scores: Vec::with_capacity(want),
            counts: Vec::with_capacity(sources.len()),
        },
    };
    let ex = Excluded::new(excluded);
    for src in sources {
        let kept = match src.ids {
            Ids::I32(ids) => t.walk(ids, src, &ex),
            Ids::I64(ids) => t.walk(ids, src, &ex),
        };
        t.out.counts.push(kept);
    }
    t.out.items = t.keys.iter().map(|&k| k as i32).collect();
    Ok(t.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    type List<'a> = (&'a [i64], &'a [f32], u8, usize);

    fn run(lists: &[List<'_>], excluded: &[i32], n: usize) -> Merged {
        let sources: Vec<Source<'_>> = lists
            .iter()
            .map(|&(ids, scores, bit, limit)| Source {
                ids: Ids::I64(ids),
                scores,
                bit,
                limit,
            })
            .collect();
        merge(&sources, excluded, n).unwrap()
    }

    #[test]
    fn first_appearance_order_bits_and_max() {
        let m = run(
            &[
                (&[5, 3, 9], &[0.5, 0.3, 0.9], 1, 10),
                (&[9, 7, 5], &[0.1, 0.7, 0.8], 2, 10),
                (&[3], &[0.2], 4, 10),
            ],
            &[],
            10,
        );
        assert_eq!(m.items, vec![5, 3, 9, 7]);
        assert_eq!(m.bits, vec![3, 5, 3, 2]);
        assert_eq!(m.scores, vec![0.8, 0.3, 0.9, 0.7]);
        assert_eq!(m.counts, vec![3, 3, 1]);
    }

    #[test]
    fn exclusion_limits_and_truncation() {
        let m = run(
            &[
                (&[1, 2, 3, 4], &[1.0; 4], 1, 2),
                (&[4, 2, 6, 8, 10], &[2.0; 5], 2, 3),
            ],
            &[2, 8],
            3,
        );
        // source 0 keeps 1, 3 (2 excluded, limit 2); source 1 keeps 4, 6, 10
        assert_eq!(m.counts, vec![2, 3]);
        assert_eq!(m.items, vec![1, 3, 4]);
        assert_eq!(m.bits, vec![1, 1, 2]);
        assert_eq!(m.scores, vec![1.0, 1.0, 2.0]);
        let none = run(&[(&[1, 2], &[1.0; 2], 1, 0)], &[], 5);
        assert_eq!((none.items.len(), none.counts), (0, vec![0]));
        assert_eq!(run(&[], &[], 5), Merged::default());
        // 32-bit ids, and ids beyond 32 bits (never excluded; cast like numpy)
        let wide = [(1i64 << 32) + 7, 7];
        let sources = [
            Source {
                ids: Ids::I32(&[7, 8]),
                scores: &[1.0, 1.0],
                bit: 1,
                limit: 9,
            },
            Source {
                ids: Ids::I64(&wide),
                scores: &[3.0, 2.0],
                bit: 2,
                limit: 9,
            },
        ];
        let m = merge(&sources, &[8], 9).unwrap();
        assert_eq!(
            (m.items, m.bits, m.scores),
            (vec![7, 7], vec![3, 2], vec![2.0, 3.0])
        );
    }

    #[test]
    fn many_exclusions() {
        let excluded: Vec<i32> = (0..5000).map(|i| i * 3).collect();
        let ids: Vec<i64> = (0..20_000).collect();
        let scores = vec![1f32; ids.len()];
        let m = run(&[(&ids, &scores, 1, 100_000)], &excluded, 100_000);
        let want: Vec<i32> = (0..20_000).filter(|&i| i % 3 != 0 || i >= 15_000).collect();
        assert_eq!(m.items, want);
    }

    #[test]
    fn maximum_follows_numpy() {
        let m = run(
            &[
                (&[1, 2, 3], &[-0.0, 0.0, f32::NAN], 1, 9),
                (&[1, 2, 3], &[0.0, -0.0, 1.0], 1, 9),
            ],
            &[],
            9,
        );
        assert!(m.scores[0] == 0.0 && m.scores[0].is_sign_positive());
        assert!(m.scores[1] == 0.0 && m.scores[1].is_sign_negative());
        assert!(m.scores[2].is_nan());
    }

    #[test]
    fn in_sorted_matches_a_linear_scan() {
        let set: Vec<i32> = (0..37).map(|i| i * 3 - 20).collect();
        for n in 0..set.len() {
            let ex = Excluded::new(&set[..n]);
            for id in -30i32..100 {
                assert_eq!(in_sorted(&set[..n], id), set[..n].contains(&id));
                assert_eq!(ex.contains(i64::from(id)), set[..n].contains(&id));
            }
        }
    }

    #[test]
    fn rejects_bad_arguments() {
        let src = |scores: &'static [f32]| Source {
            ids: Ids::I64(&[1, 2]),
            scores,
            bit: 1,
            limit: 2,
        };
        let e = |s: Source<'_>, ex: &[i32]| merge(&[s], ex, 5).err().unwrap().to_string();
        assert!(merge(&[src(&[1.0, 2.0])], &[1, 3], 5).is_ok());
        assert!(e(src(&[1.0, 2.0]), &[3, 1]).contains("excluded must be strictly increasing"));
        assert!(e(src(&[1.0]), &[]).contains("source 0: ids and scores must have the same"));
    }
}
