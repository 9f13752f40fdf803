//! The ranking order of a candidate pool: positions by score, best first, ties by a tie-break
//! key, then by position.
//!
//! The same permutation as numpy's `np.lexsort((tiebreak, -scores.astype(np.float64)))`:
//! `-0.0` ties with `+0.0`, NaN scores come last (tied with each other), and equal keys keep
//! their input order. Pure Rust, no PyO3.

use crate::error::{CoreError, Result};

/// The score's sort key: ascending key = descending score, zeros equal, NaN last.
#[inline(always)]
fn score_key(s: f32) -> u32 {
    if s.is_nan() {
        return u32::MAX; // above every number's key (+inf's is 0xFF80_0000)
    }
    let v = if s == 0.0 { 0.0f32 } else { -s }; // -0.0 and +0.0 -> +0.0
    let b = v.to_bits();
    // IEEE order as unsigned order: flip negatives entirely, set the sign bit of positives.
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Positions of `scores` in ranking order (see the module documentation).
pub fn ranking_order(scores: &[f32], tiebreak: &[i64]) -> Result<Vec<i64>> {
    let n = scores.len();
    if tiebreak.len() != n {
        return Err(CoreError::invalid(format!(
            "tiebreak has {} entries for {n} scores",
            tiebreak.len()
        )));
    }
    if u32::try_from(n).is_err() {
        return Err(CoreError::invalid("more than 2^32 scores"));
    }
    let small = tiebreak.iter().all(|&t| (0..1i64 << 32).contains(&t));
    let order: Vec<i64> = if small {
        // One 128-bit key per position: score key, tie-break, position; all distinct, so an
        // unstable sort gives the stable order.
        let mut keys: Vec<u128> = scores
            .iter()
            .zip(tiebreak)
            .enumerate()
            .map(|(i, (&s, &t))| (u128::from(score_key(s)) << 96) | ((t as u128) << 32) | i as u128)
            .collect();
        keys.sort_unstable();
        keys.iter().map(|&k| (k as u32) as i64).collect()
    } else {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_unstable_by(|&a, &b| {
            (score_key(scores[a]), tiebreak[a], a).cmp(&(score_key(scores[b]), tiebreak[b], b))
        });
        idx.into_iter().map(|i| i as i64).collect()
    };
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, spelled out: a stable sort by (descending score with NaN last and
    /// zeros equal, then tie-break).
    fn reference(scores: &[f32], tiebreak: &[i64]) -> Vec<i64> {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| {
            let (x, y) = (scores[a], scores[b]);
            let primary = match (x.is_nan(), y.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ => y.partial_cmp(&x).unwrap(),
            };
            primary.then(tiebreak[a].cmp(&tiebreak[b]))
        });
        idx.into_iter().map(|i| i as i64).collect()
    }

    #[test]
    fn orders_by_score_then_tiebreak_then_position() {
        let scores = [
            0.5,
            1.0,
            0.5,
            f32::NAN,
            -0.0,
            0.0,
            0.5,
            f32::INFINITY,
            f32::NAN,
        ];
        let tie = [3, 9, 1, 0, 5, 4, 1, 2, 0];
        let got = ranking_order(&scores, &tie).unwrap();
        assert_eq!(got, vec![7, 1, 2, 6, 0, 5, 4, 3, 8]);
        assert_eq!(got, reference(&scores, &tie));
    }

    #[test]
    fn large_and_negative_tiebreaks_take_the_general_path() {
        let scores = [1.0, 1.0, 1.0, 2.0];
        let tie = [1i64 << 40, -7, 0, 5];
        let got = ranking_order(&scores, &tie).unwrap();
        assert_eq!(got, vec![3, 1, 2, 0]);
        assert_eq!(got, reference(&scores, &tie));
    }

    #[test]
    fn matches_the_reference_on_random_pools_with_ties() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..300 {
            let n = (next() % 64) as usize;
            let scores: Vec<f32> = (0..n)
                .map(|_| match next() % 10 {
                    0 => f32::NAN,
                    1 => -0.0,
                    2 => 0.0,
                    3 => f32::NEG_INFINITY,
                    _ => ((next() % 7) as f32 - 3.0) * 0.25,
                })
                .collect();
            let tie: Vec<i64> = (0..n)
                .map(|_| {
                    if round % 3 == 0 {
                        (next() % 5) as i64 - 2
                    } else {
                        (next() % 4) as i64
                    }
                })
                .collect();
            assert_eq!(
                ranking_order(&scores, &tie).unwrap(),
                reference(&scores, &tie)
            );
        }
    }

    #[test]
    fn refuses_mismatched_lengths() {
        assert!(ranking_order(&[1.0, 2.0], &[0]).is_err());
    }
}
