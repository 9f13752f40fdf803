//! User keyword profiles: a time-decayed, weighted sum of item keyword rows.

use crate::csr::KeywordMatrix;
use crate::error::{CoreError, Result};
use crate::scratch::with_scratch;

/// A sparse profile: term ids ascending, L2-normalised weights.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Profile {
    /// Term ids, strictly increasing.
    pub terms: Vec<i32>,
    /// Weights, L2 norm 1 (unless empty).
    pub weights: Vec<f32>,
}

/// `sum_i weights[i] * 0.5 ** (ages_s[i] / half_life_s) * row(items[i])`, accumulated in f64;
/// keeps the terms with positive totals, the `max_terms` largest (ties: lower term id), and
/// L2-normalises them.
pub fn build_profile(
    m: &KeywordMatrix,
    items: &[i32],
    weights: &[f32],
    ages_s: &[f64],
    half_life_s: f64,
    max_terms: usize,
) -> Result<Profile> {
    if items.len() != weights.len() || items.len() != ages_s.len() {
        return Err(CoreError::invalid(format!(
            "items, weights and ages_s must have the same length: {}, {}, {}",
            items.len(),
            weights.len(),
            ages_s.len()
        )));
    }
    m.check_items(items, "items")?;
    if let Some(p) = weights.iter().position(|w| !w.is_finite()) {
        return Err(CoreError::invalid(format!(
            "weights must be finite: position {p} has {}",
            weights[p]
        )));
    }
    if let Some(p) = ages_s.iter().position(|a| !(a.is_finite() && *a >= 0.0)) {
        return Err(CoreError::invalid(format!(
            "ages_s must be finite and >= 0: position {p} has {}",
            ages_s[p]
        )));
    }
    if !(half_life_s.is_finite() && half_life_s > 0.0) {
        return Err(CoreError::invalid(format!(
            "half_life_s must be finite and > 0, got {half_life_s}"
        )));
    }
    if items.is_empty() || max_terms == 0 {
        return Ok(Profile::default());
    }
    Ok(with_scratch(m.n_items(), m.n_terms(), |s| {
        let acc = &mut s.pacc[..m.n_terms()];
        let mark = &mut s.pmark[..m.n_terms()];
        let list = &mut s.pterms;
        list.clear();
        for ((&it, &w), &age) in items.iter().zip(weights).zip(ages_s) {
            let f = f64::from(w) * (-age / half_life_s).exp2();
            if f == 0.0 {
                continue;
            }
            let (ts, xs) = m.row(it as usize);
            for (&t, &x) in ts.iter().zip(xs) {
                let t = t as usize;
                if !mark[t] {
                    mark[t] = true;
                    list.push(t as u32);
                }
                acc[t] += f * f64::from(x);
            }
        }
        let mut kept: Vec<(f64, u32)> = list
            .iter()
            .map(|&t| (acc[t as usize], t))
            .filter(|&(v, _)| v > 0.0)
            .collect();
        for &t in list.iter() {
            acc[t as usize] = 0.0;
            mark[t as usize] = false;
        }
        let better = |a: &(f64, u32), b: &(f64, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if kept.len() > max_terms {
            kept.select_nth_unstable_by(max_terms - 1, better);
            kept.truncate(max_terms);
        }
        kept.sort_unstable_by_key(|&(_, t)| t);
        let norm = kept.iter().map(|&(v, _)| v * v).sum::<f64>().sqrt();
        Profile {
            terms: kept.iter().map(|&(_, t)| t as i32).collect(),
            weights: kept.iter().map(|&(v, _)| (v / norm) as f32).collect(),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::tests::small;

    #[test]
    fn decays_sums_and_normalises() {
        let m = small();
        // item 0: t0 .6, t3 .8 ; item 1: t1 .5, t2 .5, t3 .7071 ; item 3: t0 1.0, t4 0.0
        let p = build_profile(&m, &[0, 1], &[1.0, 2.0], &[0.0, 10.0], 10.0, 10).unwrap();
        let raw = [(0, 0.6), (1, 0.5), (2, 0.5), (3, 0.8 + 0.7f32 as f64)];
        let norm = raw.iter().map(|x| x.1 * x.1).sum::<f64>().sqrt();
        assert_eq!(p.terms, vec![0, 1, 2, 3]);
        for (w, (_, r)) in p.weights.iter().zip(raw) {
            assert!((f64::from(*w) - r / norm).abs() < 1e-6);
        }
    }

    #[test]
    fn negative_weights_and_truncation() {
        let m = small();
        // item 1 skipped (negative) cancels part of t3; t1/t2 become negative and are dropped.
        let p = build_profile(&m, &[0, 1], &[1.0, -1.0], &[0.0, 0.0], 5.0, 10).unwrap();
        assert_eq!(p.terms, vec![0, 3]);
        // ties: t1 and t2 equal, max_terms=1 keeps t3 (largest); with only t1/t2, keeps t1.
        let p = build_profile(&m, &[1], &[1.0], &[0.0], 5.0, 2).unwrap();
        assert_eq!(p.terms, vec![1, 3]);
        let p = build_profile(&m, &[1], &[1.0], &[0.0], 5.0, 1).unwrap();
        assert_eq!(p.terms, vec![3]);
        assert_eq!(p.weights, vec![1.0]);
        assert_eq!(
            build_profile(&m, &[], &[], &[], 5.0, 3).unwrap(),
            Profile::default()
        );
    }

    #[test]
    fn rejects_bad_input() {
        let m = small();
        let e = |r: Result<Profile>| r.unwrap_err().to_string();
        assert!(e(build_profile(&m, &[0], &[1.0], &[-1.0], 5.0, 3)).contains("ages_s"));
        assert!(e(build_profile(&m, &[0], &[f32::NAN], &[0.0], 5.0, 3)).contains("weights"));
        assert!(e(build_profile(&m, &[9], &[1.0], &[0.0], 5.0, 3)).contains("items must be"));
        assert!(e(build_profile(&m, &[0], &[1.0], &[0.0], 0.0, 3)).contains("half_life_s"));
        assert!(e(build_profile(&m, &[0], &[1.0], &[], 5.0, 3)).contains("same length"));
    }
}
