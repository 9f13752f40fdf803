//! Dot products of gathered matrix rows with one vector: `out[j] = M[rows[j]] . q`.
//!
//! The ranking stage's embedding signal scores a few hundred candidates against the user
//! vector; numpy's `M[rows] @ q` first copies the rows (random rows of a memory-mapped
//! `(n_items, dim)` matrix: a cache miss and often a TLB miss each) into a temporary, then
//! calls BLAS. Here each row is read in place, with a software prefetch of the rows
//! [`ROWS_AHEAD`] candidates ahead so that several misses are in flight at once.
//!
//! Summation order: each row's products go into [`LANES`] partial sums (element `i` into sum
//! `i % LANES`, in order), which are then added pairwise, then any remainder in order. No
//! fused multiply-add, so the result is the same on every CPU, but it differs from BLAS's
//! order (which depends on the BLAS build and CPU) by float32 rounding: at most about
//! `dim * eps * sum_i |M[r, i] * q[i]|` from the exact dot product for either. Pure Rust, no
//! PyO3.

use crate::csr::prefetch;
use crate::error::{CoreError, Result};

/// Partial sums per row (one 256-bit vector of f32).
pub const LANES: usize = 8;
/// How many rows ahead are prefetched (64-dim rows of a 1M-row mapped matrix: 8 to 32 measured
/// alike, ~2x faster than none).
pub const ROWS_AHEAD: usize = 16;

/// A row-major matrix: row `r` is `data[r * dim..(r + 1) * dim]`.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    /// `n_rows * dim` values.
    pub data: &'a [f32],
    /// Row length (> 0 unless the matrix is empty).
    pub dim: usize,
}

/// `M[rows[j]] . q` for every `j`. Errors when `q` is not `dim` long, `data` is not a whole
/// number of rows, or a row id is out of range.
pub fn gather_dot(m: Matrix<'_>, rows: &[i32], q: &[f32]) -> Result<Vec<f32>> {
    if q.len() != m.dim {
        return Err(CoreError::invalid(format!(
            "the vector has {} elements, the matrix rows {}",
            q.len(),
            m.dim
        )));
    }
    let n_rows = match m.dim {
        0 if m.data.is_empty() => 0,
        0 => return Err(CoreError::invalid("a matrix with data must have dim > 0")),
        d if m.data.len().is_multiple_of(d) => m.data.len() / d,
        d => {
            return Err(CoreError::invalid(format!(
                "matrix data of {} values is not a whole number of rows of {d}",
                m.data.len()
            )))
        }
    };
    let (lo, hi) = rows
        .iter()
        .fold((i32::MAX, i32::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    if !rows.is_empty() && (lo < 0 || hi as usize >= n_rows) {
        let p = rows
            .iter()
            .position(|&r| r < 0 || r as usize >= n_rows)
            .unwrap_or(0);
        return Err(CoreError::invalid(format!(
            "rows must be in [0, n_rows={n_rows}): position {p} has {}",
            rows[p]
        )));
    }
    let mut out = vec![0f32; rows.len()];
    if m.dim > 0 {
        kernel(m, rows, q, &mut out);
    }
    Ok(out)
}

/// Hints the CPU to fetch row `r` (every cache line it touches).
#[inline(always)]
fn prefetch_row(m: Matrix<'_>, r: usize) {
    let start = m.data.as_ptr().wrapping_add(r * m.dim);
    let bytes = m.dim * 4;
    let mut off = 0;
    while off < bytes {
        prefetch(start.cast::<u8>().wrapping_add(off));
        off += 64;
    }
    // the last line, when the row does not start on a line boundary
    prefetch(start.cast::<u8>().wrapping_add(bytes - 1));
}

/// Rows checked to be in range, `q.len() == dim > 0`.
fn kernel(m: Matrix<'_>, rows: &[i32], q: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available.
        unsafe { kernel_avx2(m, rows, q, out) };
        return;
    }
    kernel_generic(m, rows, q, out);
}

/// [`kernel_generic`] compiled for AVX2 (the lanes become one vector; same operations, same
/// results bit for bit).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn kernel_avx2(m: Matrix<'_>, rows: &[i32], q: &[f32], out: &mut [f32]) {
    kernel_generic(m, rows, q, out);
}

#[inline(always)]
fn kernel_generic(m: Matrix<'_>, rows: &[i32], q: &[f32], out: &mut [f32]) {
    for &r in rows.iter().take(ROWS_AHEAD) {
        prefetch_row(m, r as usize);
    }
    for (j, (o, &r)) in out.iter_mut().zip(rows).enumerate() {
        if let Some(&next) = rows.get(j + ROWS_AHEAD) {
            prefetch_row(m, next as usize);
        }
        let r = r as usize;
        *o = dot(&m.data[r * m.dim..(r + 1) * m.dim], q);
    }
}

/// The dot product in the order the module documentation describes.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = a.len() / LANES;
    for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += ca[l] * cb[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in a[chunks * LANES..].iter().zip(&b[chunks * LANES..]) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_double_precision_dot() {
        for dim in [1usize, 3, 8, 13, 64, 100] {
            let n = 50;
            let data: Vec<f32> = (0..n * dim)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let q: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
            let rows: Vec<i32> = (0..200).map(|i| (i * 7 % n) as i32).collect();
            let got = gather_dot(Matrix { data: &data, dim }, &rows, &q).unwrap();
            for (g, &r) in got.iter().zip(&rows) {
                let row = &data[r as usize * dim..(r as usize + 1) * dim];
                let exact: f64 = row.iter().zip(&q).map(|(&a, &b)| a as f64 * b as f64).sum();
                let mag: f64 = row
                    .iter()
                    .zip(&q)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum();
                let bound = dim as f64 * f32::EPSILON as f64 * mag + 1e-30;
                assert!((*g as f64 - exact).abs() <= bound, "dim {dim} row {r}");
                assert_eq!(g.to_bits(), dot(row, &q).to_bits());
            }
        }
    }

    #[test]
    fn rejects_bad_arguments() {
        let data = [1f32; 12];
        let m = Matrix {
            data: &data,
            dim: 4,
        };
        let e = |r: Result<Vec<f32>>| r.err().unwrap().to_string();
        assert!(e(gather_dot(m, &[0], &[1.0; 3])).contains("3 elements"));
        assert!(e(gather_dot(m, &[0, 3], &[1.0; 4])).contains("position 1 has 3"));
        assert!(e(gather_dot(m, &[-1], &[1.0; 4])).contains("n_rows=3"));
        let bad = Matrix {
            data: &data,
            dim: 5,
        };
        assert!(e(gather_dot(bad, &[], &[1.0; 5])).contains("whole number"));
        assert_eq!(gather_dot(m, &[2, 0], &[1.0; 4]).unwrap(), vec![4.0, 4.0]);
        let empty = Matrix { data: &[], dim: 0 };
        assert!(gather_dot(empty, &[], &[]).unwrap().is_empty());
    }
}
