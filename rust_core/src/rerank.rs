//! Fairness re-ranking: the constrained greedy fill behind every fairness policy.
//!
//! Pure Rust (no PyO3). The same algorithm as `server/pipeline/fairness/select.py`'s
//! `select_py`, which documents it and is the parity oracle in the Python tests. At each page
//! position the fill takes, among the candidates the hard constraints allow, the one with the best
//!
//! ```text
//! value(i) = lam * rel[i] * mult[j] - (1 - lam) * max_sim[i]
//! ```
//!
//! where `j` is how often the candidate's creator is already on the page (creator repeat decay)
//! and `max_sim` its largest dot product with an item already placed (MMR); ties go to the lower
//! `rank`. Hard constraints, in precedence: group floors (earliest-deadline-first over floor
//! classes, forced only when the outstanding demand fills every slot up to some horizon), the
//! creator cap (at most `cap` items of a creator in any `window` consecutive positions; it wins
//! over the floors unless `floor_over_cap`), and the cold-start slot.

use crate::error::{CoreError, Result};

/// Flag bit in [`Selection::flags`]: the cold-start slot lifted an item.
pub const LIFTED: u32 = 1;

/// Added to the DPP kernel's diagonal, and the floor of its pivots and of `1 - s' S^-1 s`.
pub const DPP_JITTER: f64 = 1e-6;

/// Settings of one fill; slices are borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// Page length wanted (clipped to the number of candidates).
    pub k: usize,
    /// At most `cap` items of one creator in any `window` consecutive positions (`cap >= 1`).
    pub cap: usize,
    /// Window length of the cap (`>= 1`).
    pub window: usize,
    /// Repeat-decay multiplier by how often the creator is already on the page; `len >= k + 1`.
    pub mult: &'a [f64],
    /// MMR trade-off in `[0, 1]`: 1 ignores similarity.
    pub lam: f64,
    /// `need[t * n_classes + f]`: least items of floor class `f` in the top `t`, `t = 0..=k`.
    pub need: &'a [i32],
    /// Number of floor classes.
    pub n_classes: usize,
    /// `class_groups[f * n_groups + g] != 0`: group `g` belongs to floor class `f`.
    pub class_groups: &'a [u8],
    /// 0-based position of the cold-start slot; negative: no slot.
    pub cold_pos: i64,
    /// A floor wins over the creator cap when both cannot hold.
    pub floor_over_cap: bool,
    /// `> 0`: windowed greedy DPP instead of MMR. The diversity term becomes
    /// `log(1 - s' S^-1 s)`, the log-determinant gain of adding the item to the last
    /// `dpp_window` placed items (`S` their cosine kernel, `s` their cosines to the item).
    pub dpp_window: usize,
}

/// Candidates of one fill: parallel arrays of length `n`.
#[derive(Debug, Clone, Copy)]
pub struct Candidates<'a> {
    /// Relevance (already price-adjusted); finite.
    pub rel: &'a [f64],
    /// Creator code per candidate (any integers; equal codes = same creator).
    pub creator: &'a [i64],
    /// Group code per candidate.
    pub group: &'a [i64],
    /// Tie-break rank (lower wins).
    pub rank: &'a [i64],
    /// Row-major `n x dim` vectors for MMR (empty when `dim == 0`); compared by cosine
    /// (zero rows are similar to nothing).
    pub emb: &'a [f32],
    /// Vector dimension.
    pub dim: usize,
    /// Eligible for the cold-start slot (`!= 0`).
    pub cold: &'a [u8],
}

/// The chosen candidates (indices, best first) and flags ([`LIFTED`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub chosen: Vec<i64>,
    pub flags: u32,
}

fn check(c: &Candidates<'_>, s: &Settings<'_>) -> Result<(usize, usize)> {
    let n = c.rel.len();
    for (name, len) in [
        ("creator", c.creator.len()),
        ("group", c.group.len()),
        ("rank", c.rank.len()),
        ("cold", c.cold.len()),
    ] {
        if len != n {
            return Err(CoreError::invalid(format!(
                "{name} has {len} entries for {n} candidates"
            )));
        }
    }
    if c.emb.len() != n * c.dim {
        return Err(CoreError::invalid(format!(
            "emb has {} values for {n} candidates of dimension {}",
            c.emb.len(),
            c.dim
        )));
    }
    if c.rel.iter().any(|v| !v.is_finite()) {
        return Err(CoreError::invalid("rel must be finite"));
    }
    if s.cap == 0 || s.window == 0 {
        return Err(CoreError::invalid("cap and window must be >= 1"));
    }
    if !(0.0..=1.0).contains(&s.lam) {
        return Err(CoreError::invalid(format!(
            "lam must be in [0, 1], got {}",
            s.lam
        )));
    }
    let k = s.k.min(n);
    if s.mult.len() < k + 1 {
        return Err(CoreError::invalid(format!(
            "mult has {} entries, need {}",
            s.mult.len(),
            k + 1
        )));
    }
    let n_groups = if s.n_classes == 0 {
        0
    } else {
        if !s.class_groups.len().is_multiple_of(s.n_classes) {
            return Err(CoreError::invalid(
                "class_groups is not n_classes x n_groups",
            ));
        }
        s.class_groups.len() / s.n_classes
    };
    if s.n_classes > 0 {
        if s.need.len() < (k + 1) * s.n_classes {
            return Err(CoreError::invalid(format!(
                "need has {} entries, need (k + 1) x n_classes = {}",
                s.need.len(),
                (k + 1) * s.n_classes
            )));
        }
        if c.group.iter().any(|&g| g < 0 || g as usize >= n_groups) {
            return Err(CoreError::invalid(format!(
                "group codes must be in [0, {n_groups})"
            )));
        }
    }
    Ok((k, n_groups))
}

/// Which candidates a scan may take.
#[derive(Clone, Copy)]
enum Filter {
    ForcedFits,
    Forced,
    ColdFits,
    Fits,
    Any,
}

/// Mutable state of one fill.
struct Fill<'a> {
    c: &'a Candidates<'a>,
    s: &'a Settings<'a>,
    /// Candidates by upper bound of their value, best first (ties: lower rank).
    by_bound: Vec<usize>,
    bound: Vec<f64>,
    taken: Vec<bool>,
    /// Compact creator code per candidate.
    creator: Vec<usize>,
    /// Per group: whether it belongs to a floor class that must take this position.
    group_forced: Vec<bool>,
    /// 1 / L2 norm of each vector (0 for zero rows).
    inv_norm: Vec<f64>,
    pos: usize,
    placed: Vec<Vec<usize>>,
    /// `max_sim[i]` covers the first `folded[i]` chosen items (lazy MMR).
    max_sim: Vec<f64>,
    folded: Vec<usize>,
    chosen: Vec<usize>,
    use_sim: bool,
    /// Windowed DPP: the window's items and the Cholesky factor of their kernel (row-major).
    dpp_items: Vec<usize>,
    dpp_chol: Vec<f64>,
}

impl Fill<'_> {
    fn cos(&self, a: usize, b: usize) -> f64 {
        let d = self.c.dim;
        f64::from(dot(
            &self.c.emb[a * d..(a + 1) * d],
            &self.c.emb[b * d..(b + 1) * d],
        )) * self.inv_norm[a]
            * self.inv_norm[b]
    }

    /// Rebuilds the DPP window (the last `dpp_window` placed items) and its factor.
    fn refresh_window(&mut self) {
        let w = self.s.dpp_window.min(self.chosen.len());
        self.dpp_items = self.chosen[self.chosen.len() - w..].to_vec();
        let mut l = vec![0.0f64; w * w];
        for a in 0..w {
            for b in 0..=a {
                let mut v = if a == b {
                    1.0 + DPP_JITTER
                } else {
                    self.cos(self.dpp_items[a], self.dpp_items[b])
                };
                for (x, y) in l[a * w..a * w + b].iter().zip(&l[b * w..b * w + b]) {
                    v -= x * y;
                }
                l[a * w + b] = if a == b {
                    v.max(DPP_JITTER).sqrt()
                } else {
                    v / l[b * w + b]
                };
            }
        }
        self.dpp_chol = l;
    }

    /// `log(1 - s' S^-1 s)` for candidate `i` against the window (0 for an empty window).
    fn dpp_term(&self, i: usize) -> f64 {
        let w = self.dpp_items.len();
        let mut y = vec![0.0f64; w];
        let mut norm = 0.0f64;
        for a in 0..w {
            let mut v = self.cos(i, self.dpp_items[a]);
            for (x, yt) in self.dpp_chol[a * w..a * w + a].iter().zip(&y[..a]) {
                v -= x * yt;
            }
            y[a] = v / self.dpp_chol[a * w + a];
            norm += y[a] * y[a];
        }
        (1.0 - norm).max(DPP_JITTER).ln()
    }

    fn value(&mut self, i: usize) -> f64 {
        if self.s.dpp_window > 0 {
            let reps = self.placed[self.creator[i]].len();
            let term = if self.use_sim { self.dpp_term(i) } else { 0.0 };
            return self.s.lam * self.c.rel[i] * self.s.mult[reps] + (1.0 - self.s.lam) * term;
        }
        if self.use_sim && self.folded[i] < self.chosen.len() {
            let d = self.c.dim;
            let row = &self.c.emb[i * d..(i + 1) * d];
            for &p in &self.chosen[self.folded[i]..] {
                let sim = f64::from(dot(row, &self.c.emb[p * d..(p + 1) * d]))
                    * self.inv_norm[i]
                    * self.inv_norm[p];
                if sim > self.max_sim[i] {
                    self.max_sim[i] = sim;
                }
            }
            self.folded[i] = self.chosen.len();
        }
        let reps = self.placed[self.creator[i]].len();
        self.s.lam * self.c.rel[i] * self.s.mult[reps] - (1.0 - self.s.lam) * self.max_sim[i]
    }

    /// An upper bound of `value(i)`: the similarity penalty of the items folded so far.
    fn stale_value(&self, i: usize) -> f64 {
        let reps = self.placed[self.creator[i]].len();
        self.s.lam * self.c.rel[i] * self.s.mult[reps] - (1.0 - self.s.lam) * self.max_sim[i]
    }

    fn allowed(&self, f: Filter, i: usize) -> bool {
        let placed = &self.placed[self.creator[i]];
        let m = placed.len();
        let fits = m < self.s.cap || placed[m - self.s.cap] + self.s.window <= self.pos;
        let forced = || self.group_forced[self.c.group[i] as usize];
        match f {
            Filter::ForcedFits => fits && forced(),
            Filter::Forced => forced(),
            Filter::ColdFits => fits && self.c.cold[i] != 0,
            Filter::Fits => fits,
            Filter::Any => true,
        }
    }

    /// Best allowed candidate: scans by upper bound and stops once no later one can win.
    fn best(&mut self, f: Filter) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for j in 0..self.by_bound.len() {
            let i = self.by_bound[j];
            if self.taken[i] || !self.allowed(f, i) {
                continue;
            }
            if let Some((b, bv)) = best {
                if self.bound[i] < bv {
                    break;
                }
                // The similarity folded so far only grows: skip the dot products when even
                // the stale value cannot win (MMR only: a DPP window also forgets items).
                let stale = self.stale_value(i);
                if self.s.dpp_window == 0
                    && (stale < bv || (stale == bv && self.c.rank[i] > self.c.rank[b]))
                {
                    continue;
                }
            }
            let v = self.value(i);
            best = match best {
                Some((b, bv)) if !(v > bv || (v == bv && self.c.rank[i] < self.c.rank[b])) => {
                    Some((b, bv))
                }
                _ => Some((i, v)),
            };
        }
        best.map(|(i, _)| i)
    }
}

/// Runs the fill; see the module documentation.
pub fn select(c: &Candidates<'_>, s: &Settings<'_>) -> Result<Selection> {
    let (k, n_groups) = check(c, s)?;
    let n = c.rel.len();
    let nf = s.n_classes;
    let member =
        |f: usize, i: usize| -> bool { s.class_groups[f * n_groups + c.group[i] as usize] != 0 };
    let mut remaining = vec![0i64; nf];
    for (f, r) in remaining.iter_mut().enumerate() {
        *r = (0..n).filter(|&i| member(f, i)).count() as i64;
    }
    let mut counts = vec![0i64; nf];
    let mut forced = vec![false; nf];
    // Upper bound of a value: the best repeat multiplier and no similarity penalty (>= 0).
    let (m_lo, m_hi) = s.mult[..=k]
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &m| {
            (a.min(m), b.max(m))
        });
    let bound: Vec<f64> = c
        .rel
        .iter()
        .map(|&r| (s.lam * r * m_hi).max(s.lam * r * m_lo))
        .collect();
    let mut by_bound: Vec<usize> = (0..n).collect();
    by_bound.sort_unstable_by(|&a, &b| {
        bound[b]
            .total_cmp(&bound[a])
            .then(c.rank[a].cmp(&c.rank[b]))
    });
    let mut ids: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let creator: Vec<usize> = c
        .creator
        .iter()
        .map(|&x| {
            let next = ids.len();
            *ids.entry(x).or_insert(next)
        })
        .collect();
    let d = c.dim;
    let inv_norm: Vec<f64> = if d > 0 && s.lam < 1.0 {
        c.emb
            .chunks_exact(d)
            .map(|r| {
                let sq: f64 = r.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
                if sq > 0.0 {
                    1.0 / sq.sqrt()
                } else {
                    0.0
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut st = Fill {
        c,
        s,
        by_bound,
        bound,
        taken: vec![false; n],
        creator,
        group_forced: vec![false; n_groups],
        inv_norm,
        pos: 0,
        placed: vec![Vec::new(); ids.len()],
        max_sim: vec![0.0; n],
        folded: vec![0; n],
        chosen: Vec::with_capacity(k),
        use_sim: c.dim > 0 && s.lam < 1.0,
        dpp_items: Vec::new(),
        dpp_chol: Vec::new(),
    };
    let mut cold_done = false;
    let mut flags = 0u32;

    for pos in 0..k {
        // Floors: is some horizon tight? Then this slot goes to a class with demand there.
        let mut any_forced = false;
        if nf > 0 {
            for t in pos + 1..=k {
                let mut demand = 0i64;
                for f in 0..nf {
                    let out = (i64::from(s.need[t * nf + f]) - counts[f])
                        .max(0)
                        .min(remaining[f]);
                    forced[f] = out > 0;
                    demand += out;
                }
                if demand >= (t - pos) as i64 {
                    any_forced = true;
                    break;
                }
            }
        }
        if any_forced {
            for g in 0..n_groups {
                st.group_forced[g] =
                    (0..nf).any(|f| forced[f] && s.class_groups[f * n_groups + g] != 0);
            }
        }
        st.pos = pos;
        if s.dpp_window > 0 && st.use_sim {
            st.refresh_window();
        }
        let mut pick = None;
        if any_forced {
            pick = st.best(Filter::ForcedFits);
            if pick.is_none() && s.floor_over_cap {
                pick = st.best(Filter::Forced);
            }
        } else if pos as i64 == s.cold_pos && !cold_done {
            pick = st.best(Filter::ColdFits);
            if pick.is_some() {
                flags |= LIFTED;
            }
        }
        let pick = match pick.or_else(|| st.best(Filter::Fits)) {
            Some(p) => p,
            None => st
                .best(Filter::Any)
                .expect("k <= n leaves an untaken candidate"),
        };
        st.taken[pick] = true;
        st.chosen.push(pick);
        let cr = st.creator[pick];
        st.placed[cr].push(pos);
        for f in 0..nf {
            if member(f, pick) {
                counts[f] += 1;
                remaining[f] -= 1;
            }
        }
        if c.cold[pick] != 0 && pos as i64 <= s.cold_pos.max(0) {
            cold_done = true;
        }
    }
    Ok(Selection {
        chosen: st.chosen.iter().map(|&i| i as i64).collect(),
        flags,
    })
}

/// f32 dot product with 8 independent accumulators (vectorises).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        rel: Vec<f64>,
        creator: Vec<i64>,
        group: Vec<i64>,
        rank: Vec<i64>,
        cold: Vec<u8>,
    }

    impl Case {
        fn new(rel: &[f64], creator: &[i64], group: &[i64]) -> Self {
            let n = rel.len();
            Self {
                rel: rel.to_vec(),
                creator: creator.to_vec(),
                group: group.to_vec(),
                rank: (0..n as i64).collect(),
                cold: vec![0; n],
            }
        }

        fn cands(&self) -> Candidates<'_> {
            Candidates {
                rel: &self.rel,
                creator: &self.creator,
                group: &self.group,
                rank: &self.rank,
                emb: &[],
                dim: 0,
                cold: &self.cold,
            }
        }
    }

    fn settings<'a>(k: usize, mult: &'a [f64]) -> Settings<'a> {
        Settings {
            k,
            cap: k.max(1),
            window: k.max(1),
            mult,
            lam: 1.0,
            need: &[],
            n_classes: 0,
            class_groups: &[],
            cold_pos: -1,
            floor_over_cap: false,
            dpp_window: 0,
        }
    }

    #[test]
    fn unconstrained_is_top_k_with_rank_ties() {
        let c = Case::new(&[1.0, 3.0, 3.0, 2.0], &[0, 1, 2, 3], &[0; 4]);
        let mult = [1.0; 4];
        let s = settings(3, &mult);
        assert_eq!(select(&c.cands(), &s).unwrap().chosen, vec![1, 2, 3]);
    }

    #[test]
    fn cap_in_a_window() {
        let c = Case::new(&[5.0, 4.0, 3.0, 2.0, 1.0], &[0, 0, 0, 1, 2], &[0; 5]);
        let mult = [1.0; 6];
        let s = Settings {
            cap: 1,
            window: 2,
            ..settings(5, &mult)
        };
        // Creator 0 may not take two positions in a row.
        assert_eq!(select(&c.cands(), &s).unwrap().chosen, vec![0, 3, 1, 4, 2]);
    }

    #[test]
    fn repeat_decay_lets_another_creator_in() {
        let c = Case::new(&[1.0, 0.9, 0.8], &[0, 0, 1], &[0; 3]);
        let mult = [1.0, 0.5, 0.25, 0.125];
        let s = settings(2, &mult);
        assert_eq!(select(&c.cands(), &s).unwrap().chosen, vec![0, 2]);
    }

    #[test]
    fn floor_is_met_at_every_prefix() {
        // Group 1 needs floor(0.5 t) items in the top t; its items score lowest.
        let c = Case::new(
            &[6.0, 5.0, 4.0, 3.0, 2.0, 1.0],
            &[0, 1, 2, 3, 4, 5],
            &[0, 0, 0, 1, 1, 1],
        );
        let mult = [1.0; 7];
        let need: Vec<i32> = (0..=4).map(|t| t / 2).collect();
        let s = Settings {
            need: &need,
            n_classes: 1,
            class_groups: &[0, 1],
            ..settings(4, &mult)
        };
        let out = select(&c.cands(), &s).unwrap().chosen;
        assert_eq!(out, vec![0, 3, 1, 4]);
    }

    #[test]
    fn cold_start_slot_lifts_one_item() {
        let mut c = Case::new(&[4.0, 3.0, 2.0, 1.0, 0.5], &[0, 1, 2, 3, 4], &[0; 5]);
        c.cold = vec![0, 0, 0, 1, 1];
        let mult = [1.0; 6];
        let s = Settings {
            cold_pos: 1,
            ..settings(4, &mult)
        };
        let out = select(&c.cands(), &s).unwrap();
        assert_eq!(out.chosen, vec![0, 3, 1, 2]);
        assert_eq!(out.flags, LIFTED);
    }

    #[test]
    fn mmr_prefers_a_dissimilar_item() {
        let c = Case::new(&[1.0, 0.95, 0.9], &[0, 1, 2], &[0; 3]);
        let emb = [1.0f32, 0.0, 1.0, 0.0, 0.0, 1.0];
        let cands = Candidates {
            emb: &emb,
            dim: 2,
            ..c.cands()
        };
        let mult = [1.0; 4];
        let s = Settings {
            lam: 0.5,
            ..settings(2, &mult)
        };
        assert_eq!(select(&cands, &s).unwrap().chosen, vec![0, 2]);
    }

    #[test]
    fn windowed_dpp_prefers_a_new_direction_and_forgets_old_items() {
        // Items 0 and 1 point the same way; 2 and 3 are orthogonal to them and to each other.
        let c = Case::new(&[1.0, 0.95, 0.9, 0.1], &[0, 1, 2, 3], &[0; 4]);
        let emb = [
            1.0f32, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0,
        ];
        let cands = Candidates {
            emb: &emb,
            dim: 3,
            ..c.cands()
        };
        let mult = [1.0; 5];
        // A window of 1: after [0, 2] item 1 is compared with 2 only, as welcome as a new one.
        let s = Settings {
            lam: 0.5,
            dpp_window: 1,
            ..settings(3, &mult)
        };
        assert_eq!(select(&cands, &s).unwrap().chosen, vec![0, 2, 1]);
        // A window of 3 remembers item 0: item 1 is redundant, the orthogonal item 3 wins.
        let s = Settings {
            lam: 0.5,
            dpp_window: 3,
            ..settings(3, &mult)
        };
        assert_eq!(select(&cands, &s).unwrap().chosen, vec![0, 2, 3]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let c = Case::new(&[1.0, 2.0], &[0], &[0, 0]);
        let mult = [1.0; 3];
        assert!(select(&c.cands(), &settings(2, &mult)).is_err());
    }
}
