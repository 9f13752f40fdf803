//! Exact top-k over the whole catalogue from the postings.
//!
//! Term-at-a-time accumulation into a per-thread dense `f32` accumulator, with MaxScore-style
//! early termination: terms are processed by decreasing upper bound `w_t * max_i x_{i,t}`; once
//! the bound on what the remaining terms can add is below the k-th best partial score, no item
//! not yet seen can enter the top k, so the remaining posting lists are skipped and the surviving
//! candidates are rescored exactly from their CSR rows. Results are exact; ties are ordered by
//! item id ascending.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::csr::{check_indptr, prefetch, KeywordMatrix, TILE, TILE_SHIFT};
use crate::error::{CoreError, Result};
use crate::scratch::{with_scratch, Scratch};

/// Most threads a batch call may ask for.
pub const MAX_THREADS: usize = 1024;

/// Best-first result of one query: `ids[i]` has score `scores[i]`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TopK {
    /// Item ids, best first.
    pub ids: Vec<i32>,
    /// Scores, descending.
    pub scores: Vec<f32>,
}

/// Ranking key: greater is better (higher score, then lower id).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hit {
    score: f32,
    id: u32,
}

impl Eq for Hit {}

impl Ord for Hit {
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.id.cmp(&self.id))
    }
}

impl PartialOrd for Hit {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Streaming top-k: a min-heap of the k best hits seen so far.
struct Best {
    k: usize,
    heap: BinaryHeap<Reverse<Hit>>,
    /// Score of the worst kept hit once the heap is full (fast reject), else -inf.
    floor: f32,
}

impl Best {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
            floor: f32::NEG_INFINITY,
        }
    }

    #[inline]
    fn push(&mut self, score: f32, id: u32) {
        if score < self.floor {
            return;
        }
        let h = Hit { score, id };
        if self.heap.len() < self.k {
            self.heap.push(Reverse(h));
            if self.heap.len() == self.k {
                self.floor = self.heap.peek().map_or(f32::NEG_INFINITY, |r| r.0.score);
            }
        } else {
            let replaced = match self.heap.peek_mut() {
                Some(mut worst) if h > worst.0 => {
                    *worst = Reverse(h);
                    true
                }
                _ => false,
            };
            if replaced {
                self.floor = self.heap.peek().map_or(f32::NEG_INFINITY, |r| r.0.score);
            }
        }
    }

    /// The k-th best score once k items are kept, else 0.
    fn full_floor(&self) -> f32 {
        if self.heap.len() == self.k {
            self.floor.max(0.0)
        } else {
            0.0
        }
    }

    fn finish(self) -> TopK {
        let v = self.heap.into_sorted_vec();
        TopK {
            ids: v.iter().map(|r| r.0.id as i32).collect(),
            scores: v.iter().map(|r| r.0.score).collect(),
        }
    }
}

/// What one top-k query did (for benchmarks and tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TopkStats {
    /// Query terms with a positive weight and a non-empty posting list.
    pub terms: usize,
    /// True when the dense (tiled accumulator) path ran.
    pub dense: bool,
    /// Postings of all query terms.
    pub postings_total: usize,
    /// Postings actually scanned.
    pub postings_scanned: usize,
    /// Postings skipped by MaxScore pruning.
    pub postings_skipped: usize,
    /// Candidates rescored from their CSR rows after pruning.
    pub rescored: usize,
    /// Distinct items with a non-zero partial score.
    pub touched: usize,
}

/// Exact top-k of one query (validated here), excluding `exclude` (any order, repeats allowed).
pub fn topk(
    m: &KeywordMatrix,
    terms: &[i32],
    weights: &[f32],
    k: usize,
    exclude: &[i32],
) -> Result<TopK> {
    m.check_query(terms, weights, "q_terms", "q_weights")?;
    m.check_items(exclude, "exclude")?;
    Ok(topk_unchecked(m, terms, weights, k, exclude))
}

/// [`topk`] without validation (inputs must already be checked).
pub fn topk_unchecked(
    m: &KeywordMatrix,
    terms: &[i32],
    weights: &[f32],
    k: usize,
    exclude: &[i32],
) -> TopK {
    if k == 0 || terms.is_empty() || m.n_items() == 0 {
        return TopK::default();
    }
    with_scratch(m.n_items(), m.n_terms(), |s| {
        run(m, terms, weights, k, exclude, s, &mut TopkStats::default())
    })
}

/// [`topk`] that also reports what the search did.
pub fn topk_with_stats(
    m: &KeywordMatrix,
    terms: &[i32],
    weights: &[f32],
    k: usize,
    exclude: &[i32],
) -> Result<(TopK, TopkStats)> {
    m.check_query(terms, weights, "q_terms", "q_weights")?;
    m.check_items(exclude, "exclude")?;
    let mut st = TopkStats::default();
    if k == 0 || terms.is_empty() || m.n_items() == 0 {
        return Ok((TopK::default(), st));
    }
    let r = with_scratch(m.n_items(), m.n_terms(), |s| {
        run(m, terms, weights, k, exclude, s, &mut st)
    });
    Ok((r, st))
}

/// The dense path is used once the query's postings reach `n_items / DENSE_RATIO`.
const DENSE_RATIO: usize = 4;

fn run(
    m: &KeywordMatrix,
    terms: &[i32],
    weights: &[f32],
    k: usize,
    exclude: &[i32],
    s: &mut Scratch,
    st: &mut TopkStats,
) -> TopK {
    // Terms in ascending id order (as given): every item then sums its products in the same
    // order as its CSR row, so scores are bit-identical to `score` and to scipy's `X @ q`.
    // Zero-weight terms add +0.0 and empty lists nothing: both are skipped.
    let q: Vec<(u32, f32)> = terms
        .iter()
        .zip(weights)
        .filter(|&(&t, &w)| w > 0.0 && m.term_max(t as usize) > 0.0)
        .map(|(&t, &w)| (t as u32, w))
        .collect();
    let total: usize = q.iter().map(|&(t, _)| m.postings(t as usize).0.len()).sum();
    st.terms = q.len();
    st.postings_total = total;
    if total == 0 {
        return TopK::default();
    }
    if total.saturating_mul(DENSE_RATIO) >= m.n_items() {
        st.dense = true;
        dense(m, &q, k, exclude, s, st)
    } else {
        sparse(m, &q, k, exclude, s, st)
    }
}

/// Few postings: accumulate into the full-size accumulator and remember touched items.
fn sparse(
    m: &KeywordMatrix,
    q: &[(u32, f32)],
    k: usize,
    exclude: &[i32],
    s: &mut Scratch,
    st: &mut TopkStats,
) -> TopK {
    let n = m.n_items();
    let acc = &mut s.acc[..n];
    let touched = &mut s.touched[..n + 1];
    for &e in exclude {
        acc[e as usize] = f32::NEG_INFINITY;
    }
    let mut nt = 0usize;
    for &(t, w) in q {
        let (items, ws) = m.postings(t as usize);
        for (&it, &x) in items.iter().zip(ws) {
            let i = it as usize;
            let old = acc[i];
            let new = old + w * x;
            acc[i] = new;
            touched[nt] = it as u32;
            nt += usize::from(old == 0.0 && new != 0.0);
        }
    }
    st.touched = nt;
    st.postings_scanned = st.postings_total;
    let mut best = Best::new(k);
    for &i in &touched[..nt] {
        let sc = acc[i as usize];
        acc[i as usize] = 0.0;
        if sc > 0.0 {
            best.push(sc, i);
        }
    }
    for &e in exclude {
        acc[e as usize] = 0.0;
    }
    best.finish()
}

/// Relative safety margin on floating-point bounds in the pruning test (sums of a few hundred
/// f32 products are accurate to ~1e-6 relative), so pruning never drops a top-k item.
const SLACK: f32 = 1e-4;

/// Share of the current k-th best score that the skipped ("non-essential") lists of a tile may
/// add at most. Larger skips more postings but leaves more candidates to rescore from rows.
const BUDGET: f32 = 0.25;

/// One query term in the dense path.
struct DTerm<'a> {
    term: usize,
    w: f32,
    /// Tile boundaries of this term's list (`n_tiles + 1` offsets into `lo` / `ws`).
    seg: &'a [u32],
    lo: &'a [u16],
    ws: &'a [f32],
}

/// Many postings: walk the items tile by tile ([`TILE`] ids) with a dense, cache-resident
/// accumulator, using the tiled postings (16-bit ids, no bounds checks in the inner loop).
///
/// MaxScore per tile: once k items are known, the current k-th best score `floor` is a lower
/// bound of the final one. The lists whose tile maxima add up to at most `BUDGET * floor` are
/// "non-essential": an item that appears in none of the other lists cannot reach `floor`. The
/// essential lists are accumulated; the items whose partial score plus the non-essential bound
/// can still reach `floor` are rescored exactly from their CSR rows.
///
/// Scores are exact and bit-identical to `score`: a tile without pruning sums every item's
/// products in ascending term order, which is the CSR row order; rescored items use the rows.
fn dense(
    m: &KeywordMatrix,
    q: &[(u32, f32)],
    k: usize,
    exclude: &[i32],
    s: &mut Scratch,
    st: &mut TopkStats,
) -> TopK {
    let n = m.n_items();
    let tiles = m.tiles();
    let nt = tiles.n_tiles;
    let terms: Vec<DTerm<'_>> = q
        .iter()
        .map(|&(t, w)| {
            let t = t as usize;
            let (items, ws) = m.postings(t);
            let start = m.post_start(t);
            DTerm {
                term: t,
                w,
                seg: &tiles.seg[t * (nt + 1)..(t + 1) * (nt + 1)],
                lo: &tiles.lo[start..start + items.len()],
                ws,
            }
        })
        .collect();
    let mut ex: Vec<u32> = exclude.iter().map(|&e| e as u32).collect();
    ex.sort_unstable();
    let mut ex_pos = 0usize;

    let Scratch { acc, qdense, .. } = s;
    let acc: &mut [f32; TILE] = (&mut acc[..TILE]).try_into().expect("scratch holds a tile");
    let qd = &mut qdense[..m.n_terms()];
    for &(t, w) in q {
        qd[t as usize] = w;
    }
    let mut best = Best::new(k);
    // Candidates for skipping, most postings per unit of score bound first (whole lists; the
    // order is only a heuristic, the per-tile bounds decide).
    let mut order: Vec<usize> = (0..terms.len()).collect();
    let ratio =
        |d: &DTerm<'_>| d.ws.len() as f32 / (d.w * m.term_max(d.term)).max(f32::MIN_POSITIVE);
    order.sort_unstable_by(|&a, &b| ratio(&terms[b]).total_cmp(&ratio(&terms[a])));
    // Which lists are skipped in the current tile.
    let mut skip = vec![false; terms.len()];
    let mut cands: Vec<u32> = Vec::new();
    let mut work: Vec<Segment<'_>> = Vec::with_capacity(terms.len());
    let mut rescored: Vec<f32> = Vec::new();
    for b in 0..nt {
        let base = b << TILE_SHIFT;
        let len = TILE.min(n - base);
        // Choose the non-essential lists of this tile.
        let floor = best.full_floor();
        let theta = floor * (1.0 - SLACK);
        let mut ub_skip = 0f32;
        skip.fill(false);
        if theta > 0.0 {
            for &j in &order {
                let d = &terms[j];
                if d.seg[b + 1] == d.seg[b] {
                    continue;
                }
                let ub = d.w * tiles.bmax[d.term * nt + b];
                if ub_skip + ub > BUDGET * theta {
                    break;
                }
                ub_skip += ub;
                skip[j] = true;
            }
        }
        // Accumulate the essential lists, in ascending term order. The segments of one tile
        // are spread over ~200 lists and most are short, too short for the hardware
        // prefetcher: a software prefetch cursor runs `STREAM_AHEAD` postings ahead through
        // the same sequence of segments.
        work.clear();
        for (d, &sk) in terms.iter().zip(&skip) {
            let (a, e) = (d.seg[b] as usize, d.seg[b + 1] as usize);
            if !sk && e > a {
                work.push((&d.lo[a..e], &d.ws[a..e], d.w));
            }
        }
        let mut ahead = Ahead::new(&work);
        for _ in 0..STREAM_AHEAD / 16 {
            ahead.advance(16);
        }
        for &(lo, ws, w) in &work {
            st.postings_scanned += lo.len();
            let (mut lc, mut wc) = (lo.chunks_exact(16), ws.chunks_exact(16));
            for (l, x) in (&mut lc).zip(&mut wc) {
                scatter(acc, l, x, w);
                ahead.advance(16);
            }
            scatter(acc, lc.remainder(), wc.remainder(), w);
            ahead.advance(lc.remainder().len());
        }
        while ex_pos < ex.len() && (ex[ex_pos] as usize) < base + len {
            acc[ex[ex_pos] as usize - base] = f32::NEG_INFINITY;
            ex_pos += 1;
        }
        let tile = &mut acc[..len];
        if ub_skip == 0.0 {
            // Exact scores: keep the items that can enter the top k.
            collect_tile(tile, base, &mut best);
        } else {
            // Partial scores: rescore the items that may still reach `floor`, from their rows
            // (gathered first so that the rows can be prefetched: they are random accesses).
            let thr = theta - ub_skip * (1.0 + SLACK);
            cands.clear();
            for (c, chunk) in tile.chunks(CHUNK).enumerate() {
                let mut any = false;
                for &x in chunk {
                    any |= x >= thr;
                }
                if any {
                    for (j, &x) in chunk.iter().enumerate() {
                        if x >= thr {
                            cands.push((base + c * CHUNK + j) as u32);
                        }
                    }
                }
            }
            st.rescored += cands.len();
            rescored.resize(cands.len(), 0.0);
            m.dot_many(qd, &cands, &mut rescored);
            for (&i, &sc) in cands.iter().zip(&rescored) {
                if sc > 0.0 {
                    best.push(sc, i);
                }
            }
        }
        tile.fill(0.0);
    }
    for &(t, _) in q {
        qd[t as usize] = 0.0;
    }
    st.postings_skipped = st.postings_total - st.postings_scanned;
    st.touched = n;
    best.finish()
}

/// `tile[id] += w * x` over one list segment. Ids are masked to the tile's [`TILE`] entries, so
/// no bounds check is needed.
#[inline]
fn scatter(tile: &mut [f32; TILE], lo: &[u16], ws: &[f32], w: f32) {
    for (&i, &x) in lo.iter().zip(ws) {
        tile[usize::from(i) & (TILE - 1)] += w * x;
    }
}

/// One list segment to accumulate: low id bits, weights, query weight.
type Segment<'a> = (&'a [u16], &'a [f32], f32);

/// How many postings ahead of the scatter the prefetch cursor runs.
const STREAM_AHEAD: usize = 512;

/// A prefetch cursor over a sequence of segments (see `dense`).
struct Ahead<'s, 'a> {
    work: &'s [Segment<'a>],
    k: usize,
    p: usize,
}

impl<'s, 'a> Ahead<'s, 'a> {
    fn new(work: &'s [Segment<'a>]) -> Self {
        if let Some(&(lo, ws, _)) = work.first() {
            prefetch(lo.as_ptr());
            prefetch(ws.as_ptr());
        }
        Self { work, k: 0, p: 0 }
    }

    /// Moves `n` postings on and prefetches the lines there (or the next segment's start).
    /// Steps of 16 postings touch every line of the weights (64 bytes) and ids once.
    #[inline(always)]
    fn advance(&mut self, mut n: usize) {
        while let Some(&(lo, ws, _)) = self.work.get(self.k) {
            let rem = lo.len() - self.p;
            if n < rem {
                self.p += n;
                prefetch(ws.as_ptr().wrapping_add(self.p));
                prefetch(lo.as_ptr().wrapping_add(self.p));
                return;
            }
            n -= rem;
            self.k += 1;
            self.p = 0;
            if let Some(&(lo, ws, _)) = self.work.get(self.k) {
                prefetch(ws.as_ptr());
                prefetch(lo.as_ptr());
            }
        }
    }
}

const CHUNK: usize = 32;

/// Pushes the positive scores of one tile that can still enter the top k.
fn collect_tile(tile: &[f32], start: usize, best: &mut Best) {
    for (c, chunk) in tile.chunks(CHUNK).enumerate() {
        // Candidates are > 0 and >= the current floor (an equal score loses the id tie-break
        // to the kept item, whose id is smaller, but `push` decides that).
        let thr = best.floor;
        let mut any = false;
        for &x in chunk {
            any |= x > 0.0 && x >= thr;
        }
        if any {
            for (j, &x) in chunk.iter().enumerate() {
                if x > 0.0 && x >= best.floor {
                    best.push(x, (start + c * CHUNK + j) as u32);
                }
            }
        }
    }
}

/// A cached rayon pool per thread count (0 = all cores).
pub fn pool(n_threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    if n_threads > MAX_THREADS {
        return Err(CoreError::invalid(format!(
            "n_threads must be in [0, {MAX_THREADS}], got {n_threads}"
        )));
    }
    let n = if n_threads == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        n_threads
    };
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = pools.get(&n) {
        return Ok(Arc::clone(p));
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("reelrank-topk-{i}"))
        .build()
        .map_err(|e| CoreError::invalid(format!("cannot start {n} threads: {e}")))?;
    let p = Arc::new(p);
    pools.insert(n, Arc::clone(&p));
    Ok(p)
}

/// Row-major `[n_queries, k]` results of a batch, padded with id -1 and score 0.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchTopK {
    /// Number of queries (rows).
    pub n_queries: usize,
    /// Item ids, `n_queries * k`.
    pub ids: Vec<i32>,
    /// Scores, `n_queries * k`.
    pub scores: Vec<f32>,
}

/// Exact top-k for a batch of CSR-form queries, in parallel over queries.
#[allow(clippy::too_many_arguments)]
pub fn topk_batch(
    m: &KeywordMatrix,
    q_indptr: &[i64],
    terms: &[i32],
    weights: &[f32],
    k: usize,
    exclude: Option<(&[i64], &[i32])>,
    n_threads: usize,
) -> Result<BatchTopK> {
    if terms.len() != weights.len() {
        return Err(CoreError::invalid(format!(
            "q_terms and q_weights must have the same length: {} vs {}",
            terms.len(),
            weights.len()
        )));
    }
    check_indptr(q_indptr, terms.len(), "q_indptr", "len(q_terms)")?;
    let nq = q_indptr.len() - 1;
    let span = |p: &[i64], i: usize| p[i] as usize..p[i + 1] as usize;
    for qi in 0..nq {
        let r = span(q_indptr, qi);
        m.check_query(&terms[r.clone()], &weights[r], "q_terms", "q_weights")
            .map_err(|e| CoreError::invalid(format!("query {qi}: {e}")))?;
    }
    if let Some((ex_indptr, ex)) = exclude {
        if ex_indptr.len() != q_indptr.len() {
            return Err(CoreError::invalid(format!(
                "exclude_indptr must have n_queries + 1 = {} elements, got {}",
                q_indptr.len(),
                ex_indptr.len()
            )));
        }
        check_indptr(ex_indptr, ex.len(), "exclude_indptr", "len(exclude)")?;
        m.check_items(ex, "exclude")?;
    }
    let mut ids = vec![-1i32; nq * k];
    let mut scores = vec![0f32; nq * k];
    let one = |(qi, (out_ids, out_scores)): (usize, (&mut [i32], &mut [f32]))| {
        let r = span(q_indptr, qi);
        let ex = exclude.map_or(&[][..], |(p, e)| &e[span(p, qi)]);
        let res = topk_unchecked(m, &terms[r.clone()], &weights[r], k, ex);
        out_ids[..res.ids.len()].copy_from_slice(&res.ids);
        out_scores[..res.scores.len()].copy_from_slice(&res.scores);
    };
    if k > 0 && n_threads == 1 {
        // On the calling thread: concurrent single-threaded callers must not queue on one pool.
        ids.chunks_mut(k)
            .zip(scores.chunks_mut(k))
            .enumerate()
            .for_each(one);
    } else if k > 0 {
        pool(n_threads)?.install(|| {
            ids.par_chunks_mut(k)
                .zip(scores.par_chunks_mut(k))
                .enumerate()
                .for_each(one);
        });
    } else {
        pool(n_threads)?; // still validates n_threads
    }
    Ok(BatchTopK {
        n_queries: nq,
        ids,
        scores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force reference: all scores via `score`, then sort by (score desc, id asc).
    fn brute(m: &KeywordMatrix, t: &[i32], w: &[f32], k: usize, ex: &[i32]) -> TopK {
        let all: Vec<i32> = (0..m.n_items() as i32).collect();
        let s = m.score(t, w, &all).unwrap();
        let mut v: Vec<(f32, i32)> = s
            .into_iter()
            .zip(all)
            .filter(|&(x, i)| x > 0.0 && !ex.contains(&i))
            .collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        v.truncate(k);
        TopK {
            ids: v.iter().map(|x| x.1).collect(),
            scores: v.iter().map(|x| x.0).collect(),
        }
    }

    /// Deterministic pseudo-random matrix with skewed term frequencies and some duplicate rows.
    fn random_matrix(n_items: usize, n_terms: usize, seed: u64) -> KeywordMatrix {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut indptr = vec![0i64];
        let mut indices = Vec::new();
        let mut data = Vec::new();
        for r in 0..n_items {
            if r % 7 == 3 && r > 0 {
                // duplicate of the previous row: exact ties
                let a = indptr[r - 1] as usize;
                let b = indptr[r] as usize;
                let (ci, cd) = (indices[a..b].to_vec(), data[a..b].to_vec());
                indices.extend(ci);
                data.extend(cd);
            } else {
                let len = (next() % 9) as usize;
                let mut row: Vec<i32> = (0..len)
                    .map(|_| {
                        let u = (next() % 1_000_000) as f64 / 1e6;
                        ((u * u * u) * n_terms as f64) as i32
                    })
                    .collect();
                row.sort_unstable();
                row.dedup();
                for t in row {
                    indices.push(t);
                    data.push(((next() % 1000) as f32 + 1.0) / 1000.0);
                }
            }
            indptr.push(indices.len() as i64);
        }
        KeywordMatrix::from_csr(&indptr, &indices, &data, n_terms).unwrap()
    }

    #[test]
    fn matches_brute_force() {
        for seed in 1..6u64 {
            let m = random_matrix(500, 60, seed);
            for (qlen, k) in [(1usize, 5usize), (3, 10), (10, 50), (30, 7), (60, 1000)] {
                let t: Vec<i32> = (0..60).step_by(60 / qlen).take(qlen).collect();
                let w: Vec<f32> = t.iter().map(|&x| 0.1 + (x % 5) as f32 * 0.3).collect();
                let ex = [5, 3, 5, 499, 0];
                for e in [&[][..], &ex[..]] {
                    let got = topk(&m, &t, &w, k, e).unwrap();
                    let want = brute(&m, &t, &w, k, e);
                    assert_eq!(got.ids, want.ids, "seed {seed} qlen {qlen} k {k}");
                    assert_eq!(got.scores, want.scores);
                }
            }
        }
    }

    #[test]
    fn dense_path_with_pruning_is_exact() {
        // > 2 tiles so that MaxScore pruning kicks in after the first tile.
        let m = random_matrix(3 * TILE + 123, 300, 11);
        let t: Vec<i32> = (0..300).step_by(3).collect();
        let w: Vec<f32> = t.iter().map(|&x| 0.05 + (x % 7) as f32 * 0.1).collect();
        let n = m.n_items() as i32;
        let ex: Vec<i32> = (0..50).map(|i| i * (n / 50)).collect();
        let mut pruned = false;
        for k in [1usize, 10, 100] {
            let (got, st) = topk_with_stats(&m, &t, &w, k, &ex).unwrap();
            assert!(st.dense);
            pruned |= st.postings_skipped > 0;
            let want = brute(&m, &t, &w, k, &ex);
            assert_eq!(got, want, "k {k}");
        }
        assert!(pruned, "expected MaxScore to skip some postings");
        // a sparse query on the same matrix takes the sparse path
        let (got, st) = topk_with_stats(&m, &[299], &[1.0], 5, &[]).unwrap();
        assert!(!st.dense);
        assert_eq!(got, brute(&m, &[299], &[1.0], 5, &[]));
    }

    #[test]
    fn edge_cases() {
        let m = random_matrix(50, 10, 7);
        assert_eq!(topk(&m, &[], &[], 5, &[]).unwrap(), TopK::default());
        assert_eq!(topk(&m, &[1], &[1.0], 0, &[]).unwrap(), TopK::default());
        assert_eq!(topk(&m, &[1], &[0.0], 5, &[]).unwrap(), TopK::default());
        assert!(topk(&m, &[1], &[1.0], 5, &[50])
            .unwrap_err()
            .to_string()
            .contains("exclude must be in [0, n_items=50)"));
    }

    #[test]
    fn batch_matches_single() {
        let m = random_matrix(300, 40, 3);
        let qp = [0i64, 2, 2, 5];
        let t = [1i32, 7, 0, 3, 39];
        let w = [1.0f32, 0.5, 0.2, 0.9, 2.0];
        let ep = [0i64, 1, 1, 3];
        let e = [4i32, 10, 10];
        for threads in [0, 1, 2] {
            let b = topk_batch(&m, &qp, &t, &w, 4, Some((&ep, &e)), threads).unwrap();
            assert_eq!(b.n_queries, 3);
            for qi in 0..3 {
                let r = qp[qi] as usize..qp[qi + 1] as usize;
                let er = ep[qi] as usize..ep[qi + 1] as usize;
                let s = topk(&m, &t[r.clone()], &w[r], 4, &e[er]).unwrap();
                let row = &b.ids[qi * 4..qi * 4 + 4];
                assert_eq!(&row[..s.ids.len()], &s.ids[..]);
                assert!(row[s.ids.len()..].iter().all(|&x| x == -1));
            }
        }
        let err = topk_batch(&m, &[0, 2, 1], &t, &w, 4, None, 0).unwrap_err();
        assert!(err.to_string().contains("q_indptr must be non-decreasing"));
        let err = topk_batch(&m, &[0, 2], &[3, 1], &[1.0, 1.0], 4, None, 0).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("query 0: q_terms must be strictly increasing"));
        assert!(topk_batch(&m, &[0], &[], &[], 0, None, 2000).is_err());
    }
}
