//! Dot products of many CSR rows with one dense query (candidate scoring, top-k rescoring).
//!
//! A row's sum is a serial chain of float additions (kept in stored order, so that scores are
//! bit-identical to scipy's `X @ q`), and a loop over one row at a time also mispredicts its
//! exit branch at every row end: ~24 non-zeros cost ~100 cycles. [`dot_rows`] instead walks
//! [`LANES`] rows side by side, one independent chain per row, so the additions overlap. Each
//! lane still adds its row's products in stored order; lanes past the end of their row add
//! `+0.0`, which leaves a sum (always `>= +0.0`) unchanged, so results are bit-identical to the
//! one-row-at-a-time loop. Rows are random accesses: a software pipeline prefetches the row
//! offsets [`OFFSETS_AHEAD`] candidates ahead and every cache line of the rows [`ROWS_AHEAD`]
//! candidates ahead. Pure Rust, no PyO3.

use crate::csr::prefetch;

/// Rows scored side by side.
pub const LANES: usize = 4;
/// How many candidates ahead the row offsets are prefetched.
pub const OFFSETS_AHEAD: usize = 24;
/// How many candidates ahead the rows' cache lines are prefetched.
pub const ROWS_AHEAD: usize = 12;

/// A CSR matrix with term ids `< n_terms` (an invariant the kernels' unchecked reads rely on).
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

impl Rows<'_> {
    #[inline(always)]
    pub(crate) fn span(&self, c: usize) -> (usize, usize) {
        (self.indptr[c] as usize, self.indptr[c + 1] as usize)
    }

    #[inline(always)]
    fn prefetch_offsets(&self, c: usize) {
        prefetch(self.indptr.as_ptr().wrapping_add(c));
    }

    #[inline(always)]
    fn prefetch_row(&self, c: usize) {
        let (a, b) = self.span(c);
        let mut p = a;
        while p < b {
            prefetch(self.indices.as_ptr().wrapping_add(p));
            prefetch(self.data.as_ptr().wrapping_add(p));
            p += 16;
        }
        if b > a {
            prefetch(self.indices.as_ptr().wrapping_add(b - 1));
            prefetch(self.data.as_ptr().wrapping_add(b - 1));
        }
    }

    /// Dot product of row `c` with `qd`, in stored order.
    #[inline]
    pub fn dot(&self, c: usize, qd: &[f32]) -> f32 {
        let (a, b) = self.span(c);
        let mut s = 0f32;
        for (&t, &v) in self.indices[a..b].iter().zip(&self.data[a..b]) {
            s += qd[t as usize] * v;
        }
        s
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

/// Which group kernel [`dot_rows`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Portable: [`LANES`] rows side by side in scalar (or compiler-vectorised) code.
    Scalar,
    /// AVX-512: 16 rows side by side, one vector lane per row, gathers for the reads.
    Avx512,
}

impl Kernel {
    /// The fastest kernel this CPU runs for `rows`.
    pub fn best(rows: Rows<'_>) -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") && avx512::fits(rows) {
            return Self::Avx512;
        }
        let _ = rows;
        Self::Scalar
    }
}

/// `out[j] = rows.row(cands[j]) . qd` for all `j` (bit-identical to [`Rows::dot`]).
///
/// Every candidate must be a row id (`< n_rows`); `qd` finite, at least `n_terms` long.
pub fn dot_rows<C: RowId>(rows: Rows<'_>, qd: &[f32], cands: &[C], out: &mut [f32]) {
    dot_rows_with(Kernel::best(rows), rows, qd, cands, out);
}

/// [`dot_rows`] with a chosen kernel (`Avx512` falls back to `Scalar` where unsupported).
pub fn dot_rows_with<C: RowId>(
    kernel: Kernel,
    rows: Rows<'_>,
    qd: &[f32],
    cands: &[C],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Avx512
        && std::arch::is_x86_feature_detected!("avx512f")
        && avx512::fits(rows)
    {
        return pipeline::<C, { avx512::L }>(rows, qd, cands, out, |g| {
            // SAFETY: AVX-512F is available and `rows` fits 32-bit gather offsets (both checked
            // just above); candidates are row ids and `qd` covers all term ids (caller's
            // contract, checked again inside).
            unsafe { avx512::dot_group(rows, qd, g) }
        });
    }
    let _ = kernel;
    pipeline::<C, LANES>(rows, qd, cands, out, |g| dot_group::<C, LANES>(rows, qd, g));
}

/// Runs `group` over the candidates `L` at a time with the prefetch pipeline; the last
/// `< L` candidates use the one-row loop.
#[inline(always)]
fn pipeline<C: RowId, const L: usize>(
    rows: Rows<'_>,
    qd: &[f32],
    cands: &[C],
    out: &mut [f32],
    group: impl Fn(&[C; L]) -> [f32; L],
) {
    assert_eq!(cands.len(), out.len(), "one output per candidate");
    assert!(qd.len() >= rows.n_terms, "dense query shorter than n_terms");
    let n = cands.len();
    for &c in cands.iter().take(OFFSETS_AHEAD) {
        rows.prefetch_offsets(c.idx());
    }
    for &c in cands.iter().take(ROWS_AHEAD) {
        rows.prefetch_row(c.idx());
    }
    let mut j = 0;
    while j + L <= n {
        for &c in cands.iter().skip(j + OFFSETS_AHEAD).take(L) {
            rows.prefetch_offsets(c.idx());
        }
        for &c in cands.iter().skip(j + ROWS_AHEAD).take(L) {
            rows.prefetch_row(c.idx());
        }
        let g: &[C; L] = cands[j..j + L].try_into().expect("L candidates");
        out[j..j + L].copy_from_slice(&group(g));
        j += L;
    }
    for (o, &c) in out[j..].iter_mut().zip(&cands[j..]) {
        *o = rows.dot(c.idx(), qd);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{RowId, Rows};

    /// Rows per group: one 32-bit lane each.
    pub const L: usize = 16;

    /// Whether all positions and term ids fit the gathers' signed 32-bit offsets.
    pub fn fits(rows: Rows<'_>) -> bool {
        rows.indices.len() <= i32::MAX as usize && rows.n_terms <= i32::MAX as usize
    }

    /// The dot products of 16 rows; lane `r` adds row `r`'s products in stored order, and
    /// lanes past their row's end add `0.0 * 0.0 = +0.0` (masked gathers return 0).
    ///
    /// # Safety
    /// The CPU must support AVX-512F and `fits(rows)` must hold.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_group<C: RowId>(rows: Rows<'_>, qd: &[f32], group: &[C; L]) -> [f32; L] {
        let mut start = [0i32; L];
        let mut len = [0i32; L];
        let mut long = 0usize;
        for r in 0..L {
            let (a, b) = rows.span(group[r].idx());
            // `span` bounds-checked the offsets; `b <= nnz <= i32::MAX` by `fits`.
            assert!(b <= rows.indices.len() && b <= rows.data.len());
            start[r] = a as i32;
            len[r] = (b - a) as i32;
            long = long.max(b - a);
        }
        assert!(qd.len() >= rows.n_terms);
        // SAFETY (all intrinsics below): AVX-512F is enabled by the caller's contract. Gathers
        // only read lanes whose mask bit is set: positions `start[r] + p < start[r] + len[r]
        // <= len(indices) == len(data)`, and term ids `< n_terms <= len(qd)` (CSR invariant).
        unsafe {
            let vstart = _mm512_loadu_si512(start.as_ptr().cast());
            let vlen = _mm512_loadu_si512(len.as_ptr().cast());
            let zi = _mm512_setzero_si512();
            let zf = _mm512_setzero_ps();
            let mut s = _mm512_setzero_ps();
            for p in 0..long as i32 {
                let vp = _mm512_set1_epi32(p);
                let m = _mm512_cmplt_epi32_mask(vp, vlen);
                let pos = _mm512_add_epi32(vstart, vp);
                let t = _mm512_mask_i32gather_epi32::<4>(zi, m, pos, rows.indices.as_ptr());
                let x = _mm512_mask_i32gather_ps::<4>(zf, m, pos, rows.data.as_ptr());
                let q = _mm512_mask_i32gather_ps::<4>(zf, m, t, qd.as_ptr());
                s = _mm512_add_ps(s, _mm512_mul_ps(q, x));
            }
            let mut out = [0f32; L];
            _mm512_storeu_ps(out.as_mut_ptr(), s);
            out
        }
    }
}

/// The dot products of `L` rows, walked side by side.
#[inline(always)]
fn dot_group<C: RowId, const L: usize>(rows: Rows<'_>, qd: &[f32], group: &[C; L]) -> [f32; L] {
    let mut idx: [&[i32]; L] = [&[]; L];
    let mut val: [&[f32]; L] = [&[]; L];
    for r in 0..L {
        let (a, b) = rows.span(group[r].idx());
        idx[r] = &rows.indices[a..b];
        val[r] = &rows.data[a..b];
    }
    let short = idx.iter().map(|x| x.len()).min().unwrap_or(0);
    let long = idx.iter().map(|x| x.len()).max().unwrap_or(0);
    // Term ids are `< n_terms <= qd.len()` (checked when the matrix was built or opened).
    let q = &qd[..rows.n_terms];
    let mut s = [0f32; L];
    for p in 0..short {
        for r in 0..L {
            // SAFETY: `p < short <= idx[r].len() == val[r].len()`; term ids are `< q.len()`.
            unsafe {
                let t = *idx[r].get_unchecked(p) as usize;
                s[r] += *q.get_unchecked(t) * *val[r].get_unchecked(p);
            }
        }
    }
    // Unequal lengths: lanes past their end read their row's first entry (or a dummy for an
    // empty row) and add `qd[t] * 0.0 = +0.0`.
    for p in short..long {
        for r in 0..L {
            let live = p < idx[r].len();
            let k = if live { p } else { 0 };
            let (t, x) = match (idx[r].get(k), val[r].get(k)) {
                (Some(&t), Some(&x)) => (t as usize, x),
                _ => (0, 0.0),
            };
            let v = if live { x } else { 0.0 };
            s[r] += q[t] * v;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
            for kernel in [Kernel::Scalar, Kernel::Avx512, Kernel::best(rows)] {
                let mut out = vec![f32::NAN; n];
                dot_rows_with(kernel, rows, &qd, &cands[..n], &mut out);
                for (o, &c) in out.iter().zip(&cands) {
                    let want = rows.dot(c as usize, &qd);
                    assert_eq!(o.to_bits(), want.to_bits(), "{kernel:?} row {c}");
                }
            }
        }
    }
}
