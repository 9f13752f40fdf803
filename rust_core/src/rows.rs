//! Dot products of many rows with one dense query (candidate scoring, top-k rescoring).
//!
//! A row's sum is a serial chain of float additions (kept in stored order, so that scores are
//! bit-identical to scipy's `X @ q`), and a loop over one row at a time also mispredicts its
//! exit branch at every row end: ~24 non-zeros cost ~100 cycles. [`dot_rows`] instead walks
//! [`LANES`] rows side by side, one independent chain per row, so the additions overlap. Each
//! lane still adds its row's products in stored order; lanes past the end of their row add
//! `+0.0`, which leaves a sum (always `>= +0.0`) unchanged, so results are bit-identical to the
//! one-row-at-a-time loop. Rows are random accesses: a software pipeline prefetches the row
//! offsets [`OFFSETS_AHEAD`] candidates ahead and the rows' cache lines [`ROWS_AHEAD`]
//! candidates ahead.
//!
//! Rows come from a [`RowSource`]: the CSR arrays ([`Rows`]), or [`Packed`], a copy of the rows
//! with 16-bit term ids stored next to their weights (6 bytes per non-zero in one contiguous
//! block per row instead of 8 bytes in two arrays: ~4 cache lines per random row instead of
//! ~6). Pure Rust, no PyO3.

use crate::csr::prefetch;
use crate::huge::HugeBuf;
use crate::npy::Buf;

/// Rows scored side by side (3 to 6 measured within noise of each other; 8 and 16 slower).
pub const LANES: usize = 4;
/// How many candidates ahead the row offsets are prefetched.
pub const OFFSETS_AHEAD: usize = 24;
/// How many candidates ahead the rows' cache lines are prefetched.
pub const ROWS_AHEAD: usize = 12;

/// A term id type (`u16`, or `i32` already checked to be `>= 0`).
pub trait TermId: Copy {
    /// The id as an index.
    fn t(self) -> usize;
}

impl TermId for u16 {
    #[inline(always)]
    fn t(self) -> usize {
        usize::from(self)
    }
}

impl TermId for i32 {
    #[inline(always)]
    fn t(self) -> usize {
        self as usize
    }
}

/// A row id type (`u32`, or `i32` already checked to be `>= 0`).
pub trait RowId: Copy {
    /// The id as an index.
    fn idx(self) -> usize;
}

impl RowId for u32 {
    #[inline(always)]
    fn idx(self) -> usize {
        self as usize
    }
}

impl RowId for i32 {
    #[inline(always)]
    fn idx(self) -> usize {
        self as usize
    }
}

/// Where rows come from. Invariant the kernels' unchecked reads rely on: every term id of
/// every row is `< n_terms()`.
pub trait RowSource: Copy {
    /// The stored term id type.
    type Term: TermId;
    /// Term ids and weights of row `c` (same length, term ids ascending).
    fn row(&self, c: usize) -> (&[Self::Term], &[f32]);
    /// Hints the CPU to fetch the offsets of row `c`.
    fn prefetch_offsets(&self, c: usize);
    /// Hints the CPU to fetch row `c` (reads its offsets).
    fn prefetch_row(&self, c: usize);
    /// Upper bound of the term ids.
    fn n_terms(&self) -> usize;

    /// Runs [`dot_rows`] with a kernel specialised for this source and the CPU, if there is
    /// one (same results bit for bit); false when there is none. Arguments as [`dot_rows`],
    /// already checked.
    #[inline(always)]
    fn dot_rows_fast<C: RowId>(&self, _qd: &[f32], _cands: &[C], _out: &mut [f32]) -> bool {
        false
    }

    /// Dot product of row `c` with `qd`, in stored order.
    #[inline]
    fn dot(&self, c: usize, qd: &[f32]) -> f32 {
        let (idx, val) = self.row(c);
        let mut s = 0f32;
        for (&t, &v) in idx.iter().zip(val) {
            s += qd[t.t()] * v;
        }
        s
    }
}

/// A CSR matrix with term ids `< n_terms`.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    /// Row offsets, `n_rows + 1`, non-decreasing, ending at `indices.len()`.
    pub indptr: &'a [i64],
    /// Term ids.
    pub indices: &'a [i32],
    /// Values, same length as `indices`.
    pub data: &'a [f32],
    /// Number of terms: every term id is `< n_terms`.
    pub n_terms: usize,
}

impl RowSource for Rows<'_> {
    type Term = i32;

    #[inline(always)]
    fn row(&self, c: usize) -> (&[i32], &[f32]) {
        let (a, b) = (self.indptr[c] as usize, self.indptr[c + 1] as usize);
        (&self.indices[a..b], &self.data[a..b])
    }

    #[inline(always)]
    fn prefetch_offsets(&self, c: usize) {
        prefetch(self.indptr.as_ptr().wrapping_add(c));
    }

    /// Rows of up to ~32 non-zeros (the common case) are covered completely, longer ones partly.
    #[inline(always)]
    fn prefetch_row(&self, c: usize) {
        let (a, b) = (self.indptr[c] as usize, self.indptr[c + 1] as usize);
        if b > a {
            for p in [a, (a + 16).min(b - 1), b - 1] {
                prefetch(self.indices.as_ptr().wrapping_add(p));
                prefetch(self.data.as_ptr().wrapping_add(p));
            }
        }
    }

    #[inline(always)]
    fn n_terms(&self) -> usize {
        self.n_terms
    }
}

/// The rows re-laid out for random access: row `c` is the words `words[start[c]..start[c+1]]`,
/// first its term ids as `u16` pairs (`ceil(len / 2)` words), then its weights as `f32` bits
/// (`len` words). `len` follows from the word count (`w = len + ceil(len / 2)` is increasing).
/// Needs `n_terms <= 65,536` and fewer than 2^32 words.
///
/// Built in memory ([`Packed::build`], huge pages) or memory-mapped from an index directory
/// ([`Packed::from_parts`], checked against the CSR rows).
pub struct Packed {
    start: Buf<u32>,
    words: Buf<u32>,
    n_terms: usize,
}

impl Packed {
    /// Packs a (validated) CSR matrix, or `None` when its ids or size do not fit.
    pub fn build(rows: Rows<'_>) -> Option<Self> {
        let n = rows.indptr.len().checked_sub(1)?;
        if rows.n_terms > 1 << 16 {
            return None;
        }
        let nnz = rows.indices.len();
        let total = nnz
            + rows
                .indptr
                .windows(2)
                .map(|w| (w[1] - w[0]) as usize)
                .map(|l| l.div_ceil(2))
                .sum::<usize>();
        if total > u32::MAX as usize {
            return None;
        }
        let start = HugeBuf::from_fn(n + 1, |st| {
            let mut w = 0usize;
            for (c, s) in st.iter_mut().enumerate() {
                *s = w as u32;
                if c < n {
                    let l = (rows.indptr[c + 1] - rows.indptr[c]) as usize;
                    w += l + l.div_ceil(2);
                }
            }
        });
        let words = HugeBuf::from_fn(total, |out| {
            let mut w = 0usize;
            for c in 0..n {
                let (idx, val) = rows.row(c);
                for pair in idx.chunks(2) {
                    let lo = pair[0] as u32;
                    let hi = pair.get(1).map_or(0, |&t| t as u32);
                    out[w] = lo | (hi << 16);
                    w += 1;
                }
                for &v in val {
                    out[w] = v.to_bits();
                    w += 1;
                }
            }
        });
        Some(Self {
            start: Buf::Huge(start),
            words: Buf::Huge(words),
            n_terms: rows.n_terms,
        })
    }

    /// True when [`Packed::build`] can pack these rows (`n_terms <= 65,536`; the word count is
    /// checked by `build` itself).
    pub fn fits(rows: Rows<'_>) -> bool {
        rows.n_terms <= 1 << 16
    }

    /// Wraps existing `start` / `words` arrays (e.g. memory-mapped files) after checking that
    /// they hold exactly the packed form of `rows` (same lengths, term ids and weight bits), so
    /// that the kernels' unchecked reads stay in bounds and scores equal [`Packed::build`]'s.
    /// The error says which array (`start` or `words`) and what differs.
    pub fn from_parts(
        start: Buf<u32>,
        words: Buf<u32>,
        rows: Rows<'_>,
    ) -> std::result::Result<Self, (PackedPart, String)> {
        use PackedPart::{Start, Words};
        if !Self::fits(rows) {
            return Err((
                Words,
                format!(
                    "packed rows need n_terms <= 65,536, the matrix has {}",
                    rows.n_terms
                ),
            ));
        }
        let n = rows.indptr.len().saturating_sub(1);
        if start.len() != n + 1 {
            return Err((
                Start,
                format!("{} offsets for {n} rows (expected {})", start.len(), n + 1),
            ));
        }
        if start[0] != 0 || start[n] as usize != words.len() {
            return Err((
                Words,
                format!(
                    "offsets must run from 0 to the number of words ({}), got {} .. {}",
                    words.len(),
                    start[0],
                    start[n]
                ),
            ));
        }
        for c in 0..n {
            let (idx, val) = rows.row(c);
            let l = idx.len();
            let (a, b) = (start[c] as usize, start[c + 1] as usize);
            if b < a || b - a != l + l.div_ceil(2) {
                return Err((
                    Start,
                    format!(
                        "row {c}: {} words, expected {} for {l} non-zeros",
                        b.wrapping_sub(a),
                        l + l.div_ceil(2)
                    ),
                ));
            }
            let block = &words[a..b];
            let (tw, vw) = block.split_at(l.div_ceil(2));
            let ids_ok = idx.iter().enumerate().all(|(p, &t)| {
                let w = tw[p / 2];
                (if p % 2 == 0 { w & 0xFFFF } else { w >> 16 }) == t as u32
            }) && (l % 2 == 0 || tw[l / 2] >> 16 == 0);
            if !ids_ok {
                return Err((Words, format!("row {c}: term ids differ from the CSR rows")));
            }
            if vw.iter().zip(val).any(|(&w, v)| w != v.to_bits()) {
                return Err((Words, format!("row {c}: weights differ from the CSR rows")));
            }
        }
        Ok(Self {
            start,
            words,
            n_terms: rows.n_terms,
        })
    }

    /// Row start offsets in words (`n_rows + 1`), for writing the packed rows to a file.
    pub fn start(&self) -> &[u32] {
        &self.start
    }

    /// The packed words, for writing the packed rows to a file.
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// True when the arrays are memory-mapped files.
    pub fn is_mapped(&self) -> bool {
        self.words.is_mapped()
    }

    /// A copyable view for the kernels.
    pub fn view(&self) -> PackedRows<'_> {
        PackedRows {
            start: &self.start,
            words: &self.words,
            n_terms: self.n_terms,
        }
    }
}

/// Which array of [`Packed`] an error of [`Packed::from_parts`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackedPart {
    /// The row offsets.
    Start,
    /// The packed words.
    Words,
}

/// A borrowed [`Packed`].
#[derive(Clone, Copy)]
pub struct PackedRows<'a> {
    start: &'a [u32],
    words: &'a [u32],
    n_terms: usize,
}

impl RowSource for PackedRows<'_> {
    type Term = u16;

    #[inline(always)]
    fn row(&self, c: usize) -> (&[u16], &[f32]) {
        let (a, b) = (self.start[c] as usize, self.start[c + 1] as usize);
        let block = &self.words[a..b];
        let len = 2 * block.len() / 3;
        let (tw, vw) = block.split_at(len.div_ceil(2));
        // SAFETY: `tw` holds `ceil(len / 2)` u32 words = at least `len` u16 values, and u32
        // alignment satisfies u16; `vw` holds `len` words, and f32 has the size and alignment
        // of u32 with every bit pattern valid. Both borrow `self.words`.
        unsafe {
            (
                std::slice::from_raw_parts(tw.as_ptr().cast::<u16>(), len),
                std::slice::from_raw_parts(vw.as_ptr().cast::<f32>(), len),
            )
        }
    }

    #[inline(always)]
    fn prefetch_offsets(&self, c: usize) {
        prefetch(self.start.as_ptr().wrapping_add(c));
    }

    /// Blocks of up to 48 words (rows of up to 32 non-zeros) are covered completely.
    #[inline(always)]
    fn prefetch_row(&self, c: usize) {
        let (a, b) = (self.start[c] as usize, self.start[c + 1] as usize);
        if b > a {
            for p in [a, (a + 16).min(b - 1), (a + 32).min(b - 1), b - 1] {
                prefetch(self.words.as_ptr().wrapping_add(p));
            }
        }
    }

    #[inline(always)]
    fn n_terms(&self) -> usize {
        self.n_terms
    }

    #[inline(always)]
    fn dot_rows_fast<C: RowId>(&self, qd: &[f32], cands: &[C], out: &mut [f32]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available; the arguments are checked by `dot_rows`.
            unsafe { avx2::dot_rows(*self, qd, cands, out) };
            return true;
        }
        let _ = (qd, cands, out);
        false
    }
}

/// `out[j] = row(cands[j]) . qd` for all `j` (bit-identical to [`RowSource::dot`]).
///
/// Every candidate must be a row id (`< n_rows`); `qd` finite, at least `n_terms` long.
///
/// Packed rows on CPUs with AVX2 take the vector kernel of the `avx2` module (four lanes, four
/// non-zeros per lane and step; same sums bit for bit). (An AVX-512 variant with one vector lane
/// per row and gathers for the reads was measured ~10-15 % slower than the scalar kernel on the
/// benchmark machine, and was dropped.)
pub fn dot_rows<S: RowSource, C: RowId>(rows: S, qd: &[f32], cands: &[C], out: &mut [f32]) {
    assert_eq!(cands.len(), out.len(), "one output per candidate");
    assert!(
        qd.len() >= rows.n_terms(),
        "dense query shorter than n_terms"
    );
    if rows.dot_rows_fast(qd, cands, out) {
        return;
    }
    pipelined(
        &rows,
        cands,
        out,
        |g: &[C; LANES]| dot_group(&rows, qd, g),
        |c| rows.dot(c, qd),
    );
}

/// The software pipeline both kernels share: row offsets are prefetched `OFFSETS_AHEAD`
/// candidates ahead and the rows' lines `ROWS_AHEAD` ahead, while `group` sums `W` rows side by
/// side; candidates past the last full group go through `single`. Inlined into each caller, so
/// the AVX2 kernel's `group` keeps its target feature.
#[inline(always)]
pub(crate) fn pipelined<S: RowSource, C: RowId, const W: usize>(
    rows: &S,
    cands: &[C],
    out: &mut [f32],
    mut group: impl FnMut(&[C; W]) -> [f32; W],
    mut single: impl FnMut(usize) -> f32,
) {
    let n = cands.len();
    for &c in cands.iter().take(OFFSETS_AHEAD) {
        rows.prefetch_offsets(c.idx());
    }
    for &c in cands.iter().take(ROWS_AHEAD) {
        rows.prefetch_row(c.idx());
    }
    let mut j = 0;
    while j + W <= n {
        for &c in cands.iter().skip(j + OFFSETS_AHEAD).take(W) {
            rows.prefetch_offsets(c.idx());
        }
        for &c in cands.iter().skip(j + ROWS_AHEAD).take(W) {
            rows.prefetch_row(c.idx());
        }
        let g: &[C; W] = cands[j..j + W].try_into().expect("W candidates");
        out[j..j + W].copy_from_slice(&group(g));
        j += W;
    }
    for (o, &c) in out[j..].iter_mut().zip(&cands[j..]) {
        *o = single(c.idx());
    }
}

/// The dot products of [`LANES`] rows, walked side by side.
#[inline(always)]
fn dot_group<S: RowSource, C: RowId>(rows: &S, qd: &[f32], group: &[C; LANES]) -> [f32; LANES] {
    let mut idx: [&[S::Term]; LANES] = [&[]; LANES];
    let mut val: [&[f32]; LANES] = [&[]; LANES];
    for r in 0..LANES {
        (idx[r], val[r]) = rows.row(group[r].idx());
    }
    let short = idx.iter().map(|x| x.len()).min().unwrap_or(0);
    let long = idx.iter().map(|x| x.len()).max().unwrap_or(0);
    // Term ids are `< n_terms <= qd.len()` (the `RowSource` invariant, asserted by the caller).
    let q = &qd[..rows.n_terms()];
    let mut s = [0f32; LANES];
    for p in 0..short {
        for r in 0..LANES {
            // SAFETY: `p < short <= idx[r].len() == val[r].len()`; term ids are `< q.len()`.
            unsafe {
                let t = idx[r].get_unchecked(p).t();
                s[r] += *q.get_unchecked(t) * *val[r].get_unchecked(p);
            }
        }
    }
    if long == short {
        return s;
    }
    // Unequal lengths: a lane past its row's end re-reads the row's last entry (or entry 0 of
    // a non-empty row of the group, for an empty row) and adds `qd[t] * 0.0 = +0.0`, which
    // leaves its sum unchanged.
    let mut len = [0usize; LANES];
    let full = idx.iter().position(|x| !x.is_empty()).unwrap_or(0);
    for r in 0..LANES {
        len[r] = idx[r].len();
        if len[r] == 0 {
            (idx[r], val[r]) = (&idx[full][..1], &val[full][..1]);
        }
    }
    for p in short..long {
        for r in 0..LANES {
            let k = p.min(idx[r].len() - 1);
            // SAFETY: `k < idx[r].len() == val[r].len()` (all non-empty now); term ids are
            // `< q.len()`.
            unsafe {
                let t = idx[r].get_unchecked(k).t();
                let x = *val[r].get_unchecked(k);
                let v = if p < len[r] { x } else { 0.0 };
                s[r] += *q.get_unchecked(t) * v;
            }
        }
    }
    s
}

/// The kernel of [`dot_rows`] for [`PackedRows`] on CPUs with AVX2.
///
/// Per lane (row) and step it reads four non-zeros with three loads (four ids, one gather of
/// the four query values, four weights) instead of twelve, multiplies them with one vector
/// multiply (each product rounded as in the scalar loop; no FMA), transposes the products of
/// four lanes and adds them to the lanes' sums position by position: every lane still adds its
/// row's products one at a time in stored order, so the sums are bit-identical to
/// [`RowSource::dot`]. Row tails (past the shortest row of the group, in steps of four) use
/// masked loads and gathers: masked-out positions read nothing and add `0.0 * 0.0 = +0.0`,
/// which leaves a sum unchanged (sums are never `-0.0`: they start at `+0.0`, and a sum of two
/// floats is only `-0.0` when both are).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{PackedRows, RowId, RowSource};
    use std::arch::x86_64::*;

    /// Groups of four lanes walked side by side (1 measured 12 % faster than 2 or 3: more lanes
    /// mean longer masked tails).
    const G: usize = 1;
    /// Rows walked side by side.
    const L: usize = 4 * G;

    /// [`super::dot_rows`] for packed rows.
    ///
    /// # Safety
    /// The CPU must support AVX2; arguments as [`super::dot_rows`] (checked by it).
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_rows<C: RowId>(
        rows: PackedRows<'_>,
        qd: &[f32],
        cands: &[C],
        out: &mut [f32],
    ) {
        super::pipelined(
            &rows,
            cands,
            out,
            |g: &[C; L]| {
                // SAFETY: AVX2 is enabled here; term ids are `< n_terms <= qd.len()` (checked
                // by `dot_rows`).
                let s = unsafe { group(&rows, qd.as_ptr(), g) };
                let mut o = [0f32; L];
                for (k, v) in s.iter().enumerate() {
                    // SAFETY: `4 * k + 4 <= L`.
                    unsafe { _mm_storeu_ps(o.as_mut_ptr().add(4 * k), *v) };
                }
                o
            },
            |c| rows.dot(c, qd),
        );
    }

    /// The sums of the rows of `g`, four lanes per vector.
    ///
    /// # Safety
    /// Every term id of the rows must index `q`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn group<C: RowId>(rows: &PackedRows<'_>, q: *const f32, g: &[C; L]) -> [__m128; G] {
        let mut ids = [std::ptr::null::<u16>(); L];
        let mut ws = [std::ptr::null::<f32>(); L];
        let mut lens = [0usize; L];
        for r in 0..L {
            let (i, w) = rows.row(g[r].idx());
            (ids[r], ws[r], lens[r]) = (i.as_ptr(), w.as_ptr(), i.len());
        }
        let short = lens.iter().copied().min().unwrap_or(0);
        let long = lens.iter().copied().max().unwrap_or(0);
        let mut s = [_mm_setzero_ps(); G];
        let mut p = 0;
        while p + 4 <= short {
            for (k, sk) in s.iter_mut().enumerate() {
                let mut m = [_mm_setzero_ps(); 4];
                for (r, mr) in m.iter_mut().enumerate() {
                    let l = 4 * k + r;
                    // SAFETY: `p + 4 <= lens[l]`: four ids and weights of row `l`; the ids
                    // index `q`.
                    unsafe {
                        let i = _mm_cvtepu16_epi32(_mm_loadl_epi64(ids[l].add(p).cast()));
                        let qv = _mm_i32gather_ps::<4>(q, i);
                        *mr = _mm_mul_ps(qv, _mm_loadu_ps(ws[l].add(p)));
                    }
                }
                *sk = add_in_order(*sk, m);
            }
            p += 4;
        }
        while p < long {
            for (k, sk) in s.iter_mut().enumerate() {
                let mut m = [_mm_setzero_ps(); 4];
                for (r, mr) in m.iter_mut().enumerate() {
                    let l = 4 * k + r;
                    let left = _mm_set1_epi32(lens[l].saturating_sub(p).min(4) as i32);
                    // positions `p + e < lens[l]`, and the id words (two ids each) holding them
                    let mw = _mm_cmpgt_epi32(left, _mm_setr_epi32(0, 1, 2, 3));
                    let mi = _mm_cmpgt_epi32(left, _mm_setr_epi32(0, 2, 4, 6));
                    // SAFETY: masked-out elements are not read (and cannot fault); the others
                    // are ids and weights of row `l`, and its ids index `q`.
                    unsafe {
                        let raw = _mm_maskload_epi32(ids[l].wrapping_add(p).cast::<i32>(), mi);
                        let i = _mm_cvtepu16_epi32(raw);
                        let qv = _mm_mask_i32gather_ps::<4>(
                            _mm_setzero_ps(),
                            q,
                            i,
                            _mm_castsi128_ps(mw),
                        );
                        let w = _mm_maskload_ps(ws[l].wrapping_add(p), mw);
                        *mr = _mm_mul_ps(qv, w);
                    }
                }
                *sk = add_in_order(*sk, m);
            }
            p += 4;
        }
        s
    }

    /// Lane `r` of the result is `((((s[r] + m[r][0]) + m[r][1]) + m[r][2]) + m[r][3])`: the
    /// products of four lanes (four positions each) transposed and added position by position,
    /// so each lane's products are added in order.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn add_in_order(s: __m128, m: [__m128; 4]) -> __m128 {
        let a = _mm_unpacklo_ps(m[0], m[1]);
        let b = _mm_unpacklo_ps(m[2], m[3]);
        let c = _mm_unpackhi_ps(m[0], m[1]);
        let d = _mm_unpackhi_ps(m[2], m[3]);
        let s = _mm_add_ps(s, _mm_movelh_ps(a, b));
        let s = _mm_add_ps(s, _mm_movehl_ps(b, a));
        let s = _mm_add_ps(s, _mm_movelh_ps(c, d));
        _mm_add_ps(s, _mm_movehl_ps(d, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_csr<S: RowSource>(rows: S, qd: &[f32], cands: &[u32]) -> Vec<f32> {
        let mut out = vec![f32::NAN; cands.len()];
        dot_rows(rows, qd, cands, &mut out);
        out
    }

    #[test]
    fn lanes_match_the_serial_loop_bit_for_bit() {
        // rows of lengths 0..=40 with awkward values (sums that round differently by order)
        let mut indptr = vec![0i64];
        let mut indices = Vec::new();
        let mut data = Vec::new();
        let n_terms = 64usize;
        let mut x = 12345u64;
        for r in 0..41usize {
            let len = (r * 7) % 41;
            let mut terms: Vec<i32> = (0..n_terms as i32).collect();
            for i in 0..len {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                terms.swap(i, i + (x >> 33) as usize % (n_terms - i));
            }
            let mut row = terms[..len].to_vec();
            row.sort_unstable();
            for t in row {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                indices.push(t);
                data.push(((x >> 40) as f32) / 16_777_216.0 * 3.7 + 1e-3);
            }
            indptr.push(indices.len() as i64);
        }
        let rows = Rows {
            indptr: &indptr,
            indices: &indices,
            data: &data,
            n_terms,
        };
        let qd: Vec<f32> = (0..n_terms)
            .map(|i| 0.1 + (i as f32).sqrt() * 0.77)
            .collect();
        let cands: Vec<u32> = (0..200u32).map(|i| (i * 17 + 3) % 41).collect();
        for n in [0usize, 1, 7, 8, 9, 16, 63, 200] {
            let packed = Packed::build(rows).unwrap();
            for (o, &c) in out_csr(rows, &qd, &cands[..n]).iter().zip(&cands) {
                assert_eq!(o.to_bits(), rows.dot(c as usize, &qd).to_bits(), "row {c}");
            }
            for (o, &c) in out_csr(packed.view(), &qd, &cands[..n]).iter().zip(&cands) {
                assert_eq!(
                    o.to_bits(),
                    rows.dot(c as usize, &qd).to_bits(),
                    "packed row {c}"
                );
                assert_eq!(packed.view().row(c as usize).1, rows.row(c as usize).1);
            }
        }
    }
}
