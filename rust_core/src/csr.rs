//! The item keyword matrix: CSR rows (items x terms) plus postings (the same matrix in CSC form).
//!
//! Pure Rust, no PyO3. Construction validates caller data; the scoring kernels live here
//! (`score`) and in `topk.rs` / `profile.rs`.

use std::path::Path;

use crate::error::{CoreError, Result};
use crate::huge::HugeBuf;
use crate::npy::{map_npy, write_npy, write_npy_atomic, Buf};
use crate::rows::{dot_rows, Packed, PackedPart, RowSource, Rows};
use crate::scratch::with_scratch;

/// File names inside an index directory.
pub const KW_INDPTR: &str = "kw_indptr.npy";
/// CSR column (term) ids.
pub const KW_INDICES: &str = "kw_indices.npy";
/// CSR values.
pub const KW_DATA: &str = "kw_data.npy";
/// Postings offsets per term.
pub const KW_POST_INDPTR: &str = "kw_post_indptr.npy";
/// Postings item ids.
pub const KW_POST_ITEMS: &str = "kw_post_items.npy";
/// Postings weights.
pub const KW_POST_WEIGHTS: &str = "kw_post_weights.npy";

// Scoring structures derived from the six files above (see [`KeywordMatrix::write_derived`]).
// The tile files name the tile size (`TILE_SHIFT`), so that an index written for another size
// is not picked up (it is rebuilt in memory instead).
/// [`Tiles::seg`].
pub const KW_TILE_SEG: &str = "kw_tile14_seg.npy";
/// [`Tiles::bmax`].
pub const KW_TILE_MAX: &str = "kw_tile14_max.npy";
/// [`Tiles::lo`].
pub const KW_TILE_LO: &str = "kw_tile14_lo.npy";
/// Row offsets of the packed rows ([`Packed`]).
pub const KW_PACKED_START: &str = "kw_packed_start.npy";
/// Words of the packed rows ([`Packed`]).
pub const KW_PACKED_WORDS: &str = "kw_packed_words.npy";

/// Item keyword vectors in CSR form plus an inverted index.
pub struct KeywordMatrix {
    n_items: usize,
    n_terms: usize,
    indptr: Buf<i64>,
    indices: Buf<i32>,
    data: Buf<f32>,
    post_indptr: Buf<i64>,
    post_items: Buf<i32>,
    post_weights: Buf<f32>,
    /// Largest weight in each posting list (0 for empty lists).
    term_max: Vec<f32>,
    /// Tiled view of the postings used by the dense top-k path (see [`Tiles`]).
    tiles: Tiles,
    /// The rows re-laid out for random access (candidate scoring, rescoring), when they fit.
    packed: Option<Packed>,
}

/// log2 of the number of items per tile (16,384 ids: a 64 KiB accumulator, mostly L1-resident;
/// measured faster than 2^13, 2^15 and 2^16 on the benchmark).
pub const TILE_SHIFT: u32 = 14;
/// Items per tile (item ids within a tile fit in `u16`; `TILE_SHIFT <= 16`).
pub const TILE: usize = 1 << TILE_SHIFT;

/// The postings cut at tile boundaries (item ranges of [`TILE`] ids).
///
/// For term `t` and tile `b`, postings `seg[t * (n_tiles + 1) + b] ..
/// seg[t * (n_tiles + 1) + b + 1]` (relative to the start of `t`'s list) have item ids in
/// `[b * TILE, (b + 1) * TILE)`; `lo` holds their offsets within the tile and `bmax` their largest
/// weight.
pub struct Tiles {
    /// Number of tiles, `ceil(n_items / TILE)`.
    pub n_tiles: usize,
    /// Tile boundaries per term, `n_terms * (n_tiles + 1)` offsets.
    pub seg: Buf<u32>,
    /// Largest weight per (term, tile), `n_terms * n_tiles`.
    pub bmax: Buf<f32>,
    /// Every posting's item id within its tile (parallel to the postings arrays).
    pub lo: Buf<u16>,
}

impl Tiles {
    /// Builds the tiled view of (sorted) posting lists.
    fn build(post_indptr: &[i64], items: &[i32], weights: &[f32], n_items: usize) -> Self {
        let n_terms = post_indptr.len() - 1;
        let n_tiles = n_items.div_ceil(TILE);
        let mut seg = vec![0u32; n_terms * (n_tiles + 1)];
        let mut bmax = vec![0f32; n_terms * n_tiles];
        for t in 0..n_terms {
            let (a, b) = (post_indptr[t] as usize, post_indptr[t + 1] as usize);
            let segs = &mut seg[t * (n_tiles + 1)..(t + 1) * (n_tiles + 1)];
            let maxes = &mut bmax[t * n_tiles..(t + 1) * n_tiles];
            let mut tile = 0usize;
            for (p, (&it, &w)) in items[a..b].iter().zip(&weights[a..b]).enumerate() {
                let it_tile = (it as usize) >> TILE_SHIFT;
                while tile < it_tile {
                    tile += 1;
                    segs[tile] = p as u32;
                }
                maxes[tile] = maxes[tile].max(w);
            }
            for s in &mut segs[tile + 1..] {
                *s = (b - a) as u32;
            }
        }
        let lo = HugeBuf::from_fn(items.len(), |lo| {
            for (l, &i) in lo.iter_mut().zip(items) {
                *l = (i as usize & (TILE - 1)) as u16;
            }
        });
        Self {
            n_tiles,
            seg: Buf::Owned(seg),
            bmax: Buf::Owned(bmax),
            lo: Buf::Huge(lo),
        }
    }

    /// Wraps existing arrays (e.g. memory-mapped files) after checking that they are exactly
    /// what [`Tiles::build`] makes from these (sorted, in-range) posting lists; the error names
    /// the file that differs.
    fn from_parts(
        seg: Buf<u32>,
        bmax: Buf<f32>,
        lo: Buf<u16>,
        post_indptr: &[i64],
        items: &[i32],
        weights: &[f32],
        n_items: usize,
    ) -> std::result::Result<Self, (&'static str, String)> {
        let n_terms = post_indptr.len() - 1;
        let n_tiles = n_items.div_ceil(TILE);
        let expect = |name: &'static str, got: usize, want: usize| {
            if got == want {
                Ok(())
            } else {
                Err((
                    name,
                    format!(
                        "has {got} elements, expected {want} ({n_terms} terms, {n_tiles} tiles)"
                    ),
                ))
            }
        };
        expect(KW_TILE_SEG, seg.len(), n_terms * (n_tiles + 1))?;
        expect(KW_TILE_MAX, bmax.len(), n_terms * n_tiles)?;
        expect(KW_TILE_LO, lo.len(), items.len())?;
        for t in 0..n_terms {
            let (a, b) = (post_indptr[t] as usize, post_indptr[t + 1] as usize);
            let segs = &seg[t * (n_tiles + 1)..(t + 1) * (n_tiles + 1)];
            let maxes = &bmax[t * n_tiles..(t + 1) * n_tiles];
            // Walk the list tile by tile: tile `k` holds positions `segs[k] .. segs[k + 1]`.
            let mut p = 0usize;
            for k in 0..n_tiles {
                if segs[k] as usize != p {
                    return Err((KW_TILE_SEG, format!("term {t}: tile {k} boundary differs")));
                }
                let mut m = 0f32;
                while p < b - a && (items[a + p] as usize) >> TILE_SHIFT == k {
                    m = m.max(weights[a + p]);
                    if lo[a + p] as usize != items[a + p] as usize & (TILE - 1) {
                        return Err((KW_TILE_LO, format!("posting {} differs", a + p)));
                    }
                    p += 1;
                }
                if maxes[k].to_bits() != m.to_bits() {
                    return Err((KW_TILE_MAX, format!("term {t}: tile {k} maximum differs")));
                }
            }
            if segs[n_tiles] as usize != b - a || p != b - a {
                return Err((KW_TILE_SEG, format!("term {t}: last boundary differs")));
            }
        }
        Ok(Self {
            n_tiles,
            seg,
            bmax,
            lo,
        })
    }
}

/// Names used in error messages when validating one CSR-shaped triple.
struct CsrNames<'a> {
    indptr: &'a str,
    indices: &'a str,
    data: &'a str,
    row: &'a str,
    n_cols: &'a str,
}

const CSR_NAMES: CsrNames<'static> = CsrNames {
    indptr: "indptr",
    indices: "indices",
    data: "data",
    row: "row",
    n_cols: "n_terms",
};

/// Checks an offsets array: starts at 0, non-decreasing, ends at `nnz`.
pub fn check_indptr(indptr: &[i64], nnz: usize, name: &str, nnz_name: &str) -> Result<()> {
    let Some(&first) = indptr.first() else {
        return Err(CoreError::invalid(format!(
            "{name} must have at least one element (n + 1 offsets)"
        )));
    };
    if first != 0 {
        return Err(CoreError::invalid(format!(
            "{name} must start at 0, got {first}"
        )));
    }
    for (i, w) in indptr.windows(2).enumerate() {
        if w[1] < w[0] {
            return Err(CoreError::invalid(format!(
                "{name} must be non-decreasing: position {} has {} after {}",
                i + 1,
                w[1],
                w[0]
            )));
        }
    }
    let last = indptr[indptr.len() - 1];
    if usize::try_from(last).ok() != Some(nnz) {
        return Err(CoreError::invalid(format!(
            "{name}[-1] must equal {nnz_name} = {nnz}, got {last}"
        )));
    }
    Ok(())
}

/// Full validation of a CSR triple with `n_cols` columns.
fn check_csr(
    indptr: &[i64],
    indices: &[i32],
    data: &[f32],
    n_cols: usize,
    names: &CsrNames<'_>,
) -> Result<()> {
    if indices.len() != data.len() {
        return Err(CoreError::invalid(format!(
            "{} and {} must have the same length: {} vs {}",
            names.indices,
            names.data,
            indices.len(),
            data.len()
        )));
    }
    let nnz_name = format!("nnz = len({})", names.indices);
    check_indptr(indptr, indices.len(), names.indptr, &nnz_name)?;
    for (r, w) in indptr.windows(2).enumerate() {
        let (a, b) = (w[0] as usize, w[1] as usize);
        let mut prev: i64 = -1;
        for (p, &c) in indices[a..b].iter().enumerate() {
            if c < 0 || c as usize >= n_cols {
                return Err(CoreError::invalid(format!(
                    "{} must be in [0, {}={n_cols}): position {} has {c}",
                    names.indices,
                    names.n_cols,
                    a + p
                )));
            }
            if i64::from(c) <= prev {
                return Err(CoreError::invalid(format!(
                    "{} must be strictly increasing within each {}: {} {r}, position {} has {c} after {prev}",
                    names.indices, names.row, names.row, a + p
                )));
            }
            prev = i64::from(c);
        }
    }
    check_weights(data, names.data)
}

/// Checks that all weights are finite and `>= 0`.
pub fn check_weights(w: &[f32], name: &str) -> Result<()> {
    match w.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
        Some(p) => Err(CoreError::invalid(format!(
            "{name} must be finite and >= 0: position {p} has {}",
            w[p]
        ))),
        None => Ok(()),
    }
}

/// Transposes a (validated) CSR matrix with `n_cols` columns into CSC (rows ascending per column).
pub fn transpose(
    indptr: &[i64],
    indices: &[i32],
    data: &[f32],
    n_cols: usize,
) -> (Vec<i64>, Vec<i32>, Vec<f32>) {
    let nnz = indices.len();
    let mut counts = vec![0i64; n_cols + 1];
    for &c in indices {
        counts[c as usize + 1] += 1;
    }
    for i in 0..n_cols {
        counts[i + 1] += counts[i];
    }
    let t_indptr = counts.clone();
    let mut next = counts;
    let mut t_rows = vec![0i32; nnz];
    let mut t_data = vec![0f32; nnz];
    for (r, w) in indptr.windows(2).enumerate() {
        for p in w[0] as usize..w[1] as usize {
            let c = indices[p] as usize;
            let dst = next[c] as usize;
            t_rows[dst] = r as i32;
            t_data[dst] = data[p];
            next[c] += 1;
        }
    }
    (t_indptr, t_rows, t_data)
}

fn term_max(post_indptr: &[i64], post_weights: &[f32]) -> Vec<f32> {
    post_indptr
        .windows(2)
        .map(|w| {
            post_weights[w[0] as usize..w[1] as usize]
                .iter()
                .fold(0f32, |m, &x| m.max(x))
        })
        .collect()
}

impl KeywordMatrix {
    /// Validates and copies a CSR matrix, then builds its postings.
    pub fn from_csr(indptr: &[i64], indices: &[i32], data: &[f32], n_terms: usize) -> Result<Self> {
        if n_terms > i32::MAX as usize {
            return Err(CoreError::invalid(format!(
                "n_terms must be <= {}, got {n_terms}",
                i32::MAX
            )));
        }
        check_csr(indptr, indices, data, n_terms, &CSR_NAMES)?;
        let n_items = indptr.len() - 1;
        if n_items > i32::MAX as usize {
            return Err(CoreError::invalid("too many items for int32 ids"));
        }
        let (pi, pr, pw) = transpose(indptr, indices, data, n_terms);
        let tm = term_max(&pi, &pw);
        let tiles = Tiles::build(&pi, &pr, &pw, n_items);
        let packed = Packed::build(Rows {
            indptr,
            indices,
            data,
            n_terms,
        });
        Ok(Self {
            tiles,
            packed,
            n_items,
            n_terms,
            indptr: indptr.to_vec().into(),
            indices: indices.to_vec().into(),
            data: data.to_vec().into(),
            post_indptr: pi.into(),
            post_items: pr.into(),
            post_weights: pw.into(),
            term_max: tm,
        })
    }

    /// Memory-maps the six `.npy` files of an index directory.
    ///
    /// Always checks dtypes, shapes, lengths and the offsets arrays' ends, and that posting
    /// weights are finite and `>= 0` (their maxima are needed anyway). With `validate`, also
    /// checks every offset, id and ordering, and that the postings are exactly the transpose of
    /// the CSR rows.
    ///
    /// The scoring structures derived from these files (tiled postings, packed rows) are
    /// memory-mapped too when the directory holds them ([`Self::write_derived`]), after a check
    /// that they match the source arrays exactly; otherwise they are built in memory (see
    /// [`Self::derived_mapped`]). A partial set of derived files is an error.
    pub fn open(dir: &Path, validate: bool) -> Result<Self> {
        Self::open_with(dir, validate, true)
    }

    /// [`Self::open`], optionally ignoring derived files (`use_derived = false`: always build).
    fn open_with(dir: &Path, validate: bool, use_derived: bool) -> Result<Self> {
        let indptr = map_npy::<i64>(&dir.join(KW_INDPTR))?;
        let indices = map_npy::<i32>(&dir.join(KW_INDICES))?;
        let data = map_npy::<f32>(&dir.join(KW_DATA))?;
        let post_indptr = map_npy::<i64>(&dir.join(KW_POST_INDPTR))?;
        let post_items = map_npy::<i32>(&dir.join(KW_POST_ITEMS))?;
        let post_weights = map_npy::<f32>(&dir.join(KW_POST_WEIGHTS))?;
        let file_err = |name: &str, e: CoreError| CoreError::format(dir.join(name), e.to_string());

        if indptr.is_empty() {
            return Err(CoreError::format(
                dir.join(KW_INDPTR),
                "must have n_items + 1 >= 1 elements",
            ));
        }
        if post_indptr.is_empty() {
            return Err(CoreError::format(
                dir.join(KW_POST_INDPTR),
                "must have n_terms + 1 >= 1 elements",
            ));
        }
        let n_items = indptr.len() - 1;
        let n_terms = post_indptr.len() - 1;
        if n_items > i32::MAX as usize || n_terms > i32::MAX as usize {
            return Err(CoreError::format(dir.join(KW_INDPTR), "too many rows"));
        }
        let nnz = indices.len();
        if data.len() != nnz {
            return Err(CoreError::format(
                dir.join(KW_DATA),
                format!("has {} elements but {KW_INDICES} has {nnz}", data.len()),
            ));
        }
        if post_items.len() != nnz {
            return Err(CoreError::format(
                dir.join(KW_POST_ITEMS),
                format!(
                    "has {} elements but {KW_INDICES} has {nnz}",
                    post_items.len()
                ),
            ));
        }
        if post_weights.len() != nnz {
            return Err(CoreError::format(
                dir.join(KW_POST_WEIGHTS),
                format!(
                    "has {} elements but {KW_INDICES} has {nnz}",
                    post_weights.len()
                ),
            ));
        }
        let ends = |b: &[i64], name: &str| -> Result<()> {
            let (f, l) = (b[0], b[b.len() - 1]);
            if f != 0 || usize::try_from(l).ok() != Some(nnz) {
                return Err(CoreError::format(
                    dir.join(name),
                    format!("offsets must run from 0 to nnz = {nnz}, got {f} .. {l}"),
                ));
            }
            Ok(())
        };
        ends(&indptr, KW_INDPTR)?;
        ends(&post_indptr, KW_POST_INDPTR)?;
        if validate {
            check_csr(&indptr, &indices, &data, n_terms, &CSR_NAMES)
                .map_err(|e| file_err("kw_indptr.npy/kw_indices.npy/kw_data.npy", e))?;
            let post_names = CsrNames {
                indptr: "post_indptr",
                indices: "post_items",
                data: "post_weights",
                row: "term",
                n_cols: "n_items",
            };
            check_csr(
                &post_indptr,
                &post_items,
                &post_weights,
                n_items,
                &post_names,
            )
            .map_err(|e| {
                file_err(
                    "kw_post_indptr.npy/kw_post_items.npy/kw_post_weights.npy",
                    e,
                )
            })?;
            let (pi, pr, pw) = transpose(&indptr, &indices, &data, n_terms);
            if pi[..] != post_indptr[..] || pr[..] != post_items[..] {
                return Err(CoreError::format(
                    dir.join(KW_POST_ITEMS),
                    "postings are not the transpose of the CSR rows",
                ));
            }
            if pw
                .iter()
                .zip(post_weights.iter())
                .any(|(a, b)| a.to_bits() != b.to_bits())
            {
                return Err(CoreError::format(
                    dir.join(KW_POST_WEIGHTS),
                    "posting weights differ from the CSR values",
                ));
            }
        } else {
            // Enough that no later call can index out of bounds or see non-finite weights.
            check_indptr(&indptr, nnz, "offsets", "nnz").map_err(|e| file_err(KW_INDPTR, e))?;
            check_indptr(&post_indptr, nnz, "offsets", "nnz")
                .map_err(|e| file_err(KW_POST_INDPTR, e))?;
            check_ids(&indices, n_terms, "term ids", "n_terms")
                .map_err(|e| file_err(KW_INDICES, e))?;
            check_ids(&post_items, n_items, "item ids", "n_items")
                .map_err(|e| file_err(KW_POST_ITEMS, e))?;
            check_sorted_lists(&post_indptr, &post_items)
                .map_err(|e| file_err(KW_POST_ITEMS, e))?;
            check_weights(&data, "weights").map_err(|e| file_err(KW_DATA, e))?;
            check_weights(&post_weights, "weights").map_err(|e| file_err(KW_POST_WEIGHTS, e))?;
        }
        let tm = term_max(&post_indptr, &post_weights);
        let rows = Rows {
            indptr: &indptr,
            indices: &indices,
            data: &data,
            n_terms,
        };
        let mapped = if use_derived {
            map_derived(dir, rows, &post_indptr, &post_items, &post_weights, n_items)?
        } else {
            None
        };
        let (tiles, packed) = match mapped {
            Some(d) => d,
            None => (
                Tiles::build(&post_indptr, &post_items, &post_weights, n_items),
                Packed::build(rows),
            ),
        };
        Ok(Self {
            tiles,
            packed,
            n_items,
            n_terms,
            indptr,
            indices,
            data,
            post_indptr,
            post_items,
            post_weights,
            term_max: tm,
        })
    }

    /// Builds the scoring structures of the index in `dir` (the six `kw_*` files) and writes
    /// them next to it ([`KW_TILE_SEG`], [`KW_TILE_MAX`], [`KW_TILE_LO`], and, when the rows can
    /// be packed, [`KW_PACKED_START`] and [`KW_PACKED_WORDS`]), each file atomically (temporary
    /// file, sync, rename), so that [`Self::open`] memory-maps them instead of building a copy
    /// per process. Existing derived files are replaced.
    pub fn write_derived(dir: &Path) -> Result<()> {
        let m = Self::open_with(dir, false, false)?;
        match &m.packed {
            Some(p) => {
                write_npy_atomic(&dir.join(KW_PACKED_START), p.start())?;
                write_npy_atomic(&dir.join(KW_PACKED_WORDS), p.words())?;
            }
            None => {
                for name in [KW_PACKED_START, KW_PACKED_WORDS] {
                    match std::fs::remove_file(dir.join(name)) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(CoreError::Io {
                                file: dir.join(name),
                                source: e,
                            })
                        }
                        _ => {}
                    }
                }
            }
        }
        write_npy_atomic(&dir.join(KW_TILE_SEG), &m.tiles.seg)?;
        write_npy_atomic(&dir.join(KW_TILE_MAX), &m.tiles.bmax)?;
        write_npy_atomic(&dir.join(KW_TILE_LO), &m.tiles.lo)
    }

    /// True when the derived scoring structures are memory-mapped files (shared between
    /// processes), false when this process built them in memory.
    pub fn derived_mapped(&self) -> bool {
        self.tiles.lo.is_mapped() && self.packed.as_ref().is_none_or(Packed::is_mapped)
    }

    /// Reads the CSR files of `dir` and writes the three postings files next to them.
    pub fn write_postings(dir: &Path) -> Result<()> {
        let indptr = map_npy::<i64>(&dir.join(KW_INDPTR))?;
        let indices = map_npy::<i32>(&dir.join(KW_INDICES))?;
        let data = map_npy::<f32>(&dir.join(KW_DATA))?;
        let n_terms = indices.iter().map(|&t| t as usize + 1).max().unwrap_or(0);
        check_csr(&indptr, &indices, &data, n_terms.max(1), &CSR_NAMES).map_err(|e| {
            CoreError::format(
                dir.join("kw_indptr.npy/kw_indices.npy/kw_data.npy"),
                e.to_string(),
            )
        })?;
        let (pi, pr, pw) = transpose(&indptr, &indices, &data, n_terms);
        write_npy(&dir.join(KW_POST_INDPTR), &pi)?;
        write_npy(&dir.join(KW_POST_ITEMS), &pr)?;
        write_npy(&dir.join(KW_POST_WEIGHTS), &pw)
    }

    /// Number of items (rows).
    pub fn n_items(&self) -> usize {
        self.n_items
    }
    /// Number of terms (columns).
    pub fn n_terms(&self) -> usize {
        self.n_terms
    }
    /// Number of stored non-zeros.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }
    /// True when the arrays are memory-mapped files.
    pub fn is_mapped(&self) -> bool {
        self.indices.is_mapped()
    }

    /// Term ids and weights of item `i`.
    #[inline]
    pub fn row(&self, i: usize) -> (&[i32], &[f32]) {
        let (a, b) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Item ids (ascending) and weights of term `t`'s posting list.
    #[inline]
    pub fn postings(&self, t: usize) -> (&[i32], &[f32]) {
        let (a, b) = (
            self.post_indptr[t] as usize,
            self.post_indptr[t + 1] as usize,
        );
        (&self.post_items[a..b], &self.post_weights[a..b])
    }

    /// Hints the CPU to fetch the offsets of term `t`'s posting list.
    #[inline(always)]
    pub fn prefetch_post_offsets(&self, t: usize) {
        prefetch(self.post_indptr.as_ptr().wrapping_add(t));
    }

    /// Hints the CPU to fetch the first cache lines of term `t`'s posting list (reads its
    /// offsets); longer lists are streamed by the hardware prefetcher once walked.
    #[inline(always)]
    pub fn prefetch_post_list(&self, t: usize) {
        let (a, b) = (
            self.post_indptr[t] as usize,
            self.post_indptr[t + 1] as usize,
        );
        let mut p = a;
        while p < b.min(a + 256) {
            prefetch(self.post_items.as_ptr().wrapping_add(p));
            prefetch(self.post_weights.as_ptr().wrapping_add(p));
            p += 16;
        }
    }

    /// The tiled view of the postings.
    #[inline]
    pub fn tiles(&self) -> &Tiles {
        &self.tiles
    }

    /// Offset of term `t`'s list in the postings arrays.
    #[inline]
    pub fn post_start(&self, t: usize) -> usize {
        self.post_indptr[t] as usize
    }

    /// Largest weight in term `t`'s posting list.
    #[inline]
    pub fn term_max(&self, t: usize) -> f32 {
        self.term_max[t]
    }

    /// Checks a sparse query: equal lengths, ids strictly increasing in `[0, n_terms)`,
    /// weights finite and `>= 0`.
    pub fn check_query(&self, terms: &[i32], weights: &[f32], tn: &str, wn: &str) -> Result<()> {
        if terms.len() != weights.len() {
            return Err(CoreError::invalid(format!(
                "{tn} and {wn} must have the same length: {} vs {}",
                terms.len(),
                weights.len()
            )));
        }
        let mut prev: i64 = -1;
        for (p, &t) in terms.iter().enumerate() {
            if t < 0 || t as usize >= self.n_terms {
                return Err(CoreError::invalid(format!(
                    "{tn} must be in [0, n_terms={}): position {p} has {t}",
                    self.n_terms
                )));
            }
            if i64::from(t) <= prev {
                return Err(CoreError::invalid(format!(
                    "{tn} must be strictly increasing: position {p} has {t} after {prev}"
                )));
            }
            prev = i64::from(t);
        }
        check_weights(weights, wn)
    }

    /// Checks that every id in `items` is a valid item id.
    pub fn check_items(&self, items: &[i32], name: &str) -> Result<()> {
        match items
            .iter()
            .position(|&i| i < 0 || i as usize >= self.n_items)
        {
            Some(p) => Err(CoreError::invalid(format!(
                "{name} must be in [0, n_items={}): position {p} has {}",
                self.n_items, items[p]
            ))),
            None => Ok(()),
        }
    }

    /// Dot product of the sparse query with each candidate row, in candidate order.
    ///
    /// The strategy is chosen per call ([`Self::score_strategy`]); every strategy returns the
    /// same scores bit for bit (scipy's `X[candidates] @ q` in float32).
    pub fn score(&self, terms: &[i32], weights: &[f32], candidates: &[i32]) -> Result<Vec<f32>> {
        self.score_with(None, terms, weights, candidates)
    }

    /// [`Self::score`] with a given strategy (`None`: [`Self::score_strategy`] chooses).
    pub fn score_with(
        &self,
        strategy: Option<ScoreStrategy>,
        terms: &[i32],
        weights: &[f32],
        candidates: &[i32],
    ) -> Result<Vec<f32>> {
        self.check_query(terms, weights, "q_terms", "q_weights")?;
        self.check_items(candidates, "candidates")?;
        let mut out = vec![0f32; candidates.len()];
        match strategy.unwrap_or_else(|| self.score_strategy(terms, candidates.len())) {
            ScoreStrategy::Rows => with_scratch(self.n_items, self.n_terms, |s| {
                let qd = &mut s.qdense[..self.n_terms];
                for (&t, &w) in terms.iter().zip(weights) {
                    qd[t as usize] = w;
                }
                self.dot_many(qd, candidates, &mut out);
                for &t in terms {
                    qd[t as usize] = 0.0;
                }
            }),
            ScoreStrategy::Postings => self.score_postings(terms, weights, candidates, &mut out),
        }
        Ok(out)
    }

    /// The cheaper [`ScoreStrategy`] for this query and number of candidates, by a cost model
    /// in units of one posting walked (~5 ns): a query term's list costs its length plus
    /// [`TERM_COST`] (its cache misses), a candidate's row [`ROW_COST`] plus its non-zeros.
    /// Calibrated inside the ranking stage on the 1M-item ItemKNN matrix (28 non-zeros per
    /// row, 1M terms; 500 candidates): rows ~90 us whatever the query, postings 5-15 us for
    /// histories of up to ~100 items, break-even near 300. Reads the query terms' list lengths
    /// and stops as soon as the postings are known to cost more.
    pub fn score_strategy(&self, terms: &[i32], n_candidates: usize) -> ScoreStrategy {
        let nnz_per_row = self.nnz() / self.n_items.max(1);
        let mut per_row = ROW_COST + nnz_per_row;
        if self.packed.is_some() {
            // 6-byte packed non-zeros, AVX2 kernel, a dense query that fits in cache.
            per_row /= 2;
        }
        let budget = n_candidates.saturating_mul(per_row);
        let mut cost = n_candidates + terms.len() * TERM_COST;
        if cost >= budget {
            return ScoreStrategy::Rows;
        }
        for &t in terms {
            cost += self.post_len(t as usize);
            if cost >= budget {
                return ScoreStrategy::Rows;
            }
        }
        ScoreStrategy::Postings
    }

    /// Length of term `t`'s posting list.
    #[inline]
    fn post_len(&self, t: usize) -> usize {
        (self.post_indptr[t + 1] - self.post_indptr[t]) as usize
    }

    /// [`ScoreStrategy::Postings`]: walks the query terms' posting lists in term order and adds
    /// `weight * value` to the candidates found in them. A candidate's products are thus added
    /// in ascending term order, its row's stored order, starting from `+0.0`; the products the
    /// walk skips are those of terms absent from the query, `0.0 * value = +0.0`, which leave a
    /// sum of non-negative products unchanged: the scores equal the dense path's bit for bit
    /// (given postings that are the transpose of the rows, as `open` with `validate` checks and
    /// `topk` assumes too). Arguments checked; `out` zero-filled, one per candidate.
    fn score_postings(&self, terms: &[i32], weights: &[f32], candidates: &[i32], out: &mut [f32]) {
        let Some(table) = CandidateTable::new(candidates) else {
            return;
        };
        for &t in terms.iter().take(POST_OFFSETS_AHEAD) {
            self.prefetch_post_offsets(t as usize);
        }
        for &t in terms.iter().take(POST_LISTS_AHEAD) {
            self.prefetch_post_list(t as usize);
        }
        for (i, (&t, &w)) in terms.iter().zip(weights).enumerate() {
            if let Some(&next) = terms.get(i + POST_OFFSETS_AHEAD) {
                self.prefetch_post_offsets(next as usize);
            }
            if let Some(&next) = terms.get(i + POST_LISTS_AHEAD) {
                self.prefetch_post_list(next as usize);
            }
            let (items, vals) = self.postings(t as usize);
            for (&item, &v) in items.iter().zip(vals) {
                if let Some(j) = table.find(item) {
                    out[j] += w * v;
                }
            }
        }
        table.copy_duplicates(out);
    }

    /// The CSR arrays, for the row kernels of [`crate::rows`].
    #[inline]
    pub fn rows(&self) -> Rows<'_> {
        Rows {
            indptr: &self.indptr,
            indices: &self.indices,
            data: &self.data,
            n_terms: self.n_terms,
        }
    }

    /// `out[j] = row(cands[j]) . qd`, bit-identical to [`Self::dot_dense`] (ids must be valid,
    /// `qd` at least `n_terms` long), from the packed rows when there are.
    pub fn dot_many<C: crate::rows::RowId>(&self, qd: &[f32], cands: &[C], out: &mut [f32]) {
        match &self.packed {
            Some(p) => dot_rows(p.view(), qd, cands, out),
            None => dot_rows(self.rows(), qd, cands, out),
        }
    }

    /// True when the packed row copy exists (`n_terms <= 65,536`).
    pub fn is_packed(&self) -> bool {
        self.packed.is_some()
    }

    /// Dot product of row `i` with a dense query.
    #[inline]
    pub fn dot_dense(&self, i: usize, qd: &[f32]) -> f32 {
        self.rows().dot(i, qd)
    }
}

/// The derived files of `dir`, mapped and checked against the source arrays: `None` when there
/// are none (build them), an error when the set is incomplete or a file does not match.
fn map_derived(
    dir: &Path,
    rows: Rows<'_>,
    post_indptr: &[i64],
    post_items: &[i32],
    post_weights: &[f32],
    n_items: usize,
) -> Result<Option<(Tiles, Option<Packed>)>> {
    let incomplete = |have: &str, missing: &str| {
        CoreError::format(
            dir.join(missing),
            format!(
                "missing while {have} exists: the precomputed arrays are incomplete (write them \
                 again, or delete the kw_tile*_*.npy and kw_packed_*.npy files to build them in \
                 memory)"
            ),
        )
    };
    let exists = |name: &str| dir.join(name).exists();
    let tile_files = [KW_TILE_SEG, KW_TILE_MAX, KW_TILE_LO];
    let Some(have) = tile_files.iter().find(|f| exists(f)) else {
        if let Some(p) = [KW_PACKED_START, KW_PACKED_WORDS]
            .iter()
            .find(|f| exists(f))
        {
            return Err(incomplete(p, KW_TILE_SEG));
        }
        return Ok(None);
    };
    if let Some(missing) = tile_files.iter().find(|f| !exists(f)) {
        return Err(incomplete(have, missing));
    }
    let mismatch = |name: &str, msg: String| {
        CoreError::format(
            dir.join(name),
            format!("{msg}: does not match the kw_* index files it was derived from"),
        )
    };
    let tiles = Tiles::from_parts(
        map_npy::<u32>(&dir.join(KW_TILE_SEG))?,
        map_npy::<f32>(&dir.join(KW_TILE_MAX))?,
        map_npy::<u16>(&dir.join(KW_TILE_LO))?,
        post_indptr,
        post_items,
        post_weights,
        n_items,
    )
    .map_err(|(name, msg)| mismatch(name, msg))?;
    let packed = match (exists(KW_PACKED_START), exists(KW_PACKED_WORDS)) {
        (true, true) => Some(
            Packed::from_parts(
                map_npy::<u32>(&dir.join(KW_PACKED_START))?,
                map_npy::<u32>(&dir.join(KW_PACKED_WORDS))?,
                rows,
            )
            .map_err(|(part, msg)| {
                let name = match part {
                    PackedPart::Start => KW_PACKED_START,
                    PackedPart::Words => KW_PACKED_WORDS,
                };
                mismatch(name, msg)
            })?,
        ),
        (true, false) => return Err(incomplete(KW_PACKED_START, KW_PACKED_WORDS)),
        (false, true) => return Err(incomplete(KW_PACKED_WORDS, KW_PACKED_START)),
        // Written without packed rows (they did not fit): build them if they fit now.
        (false, false) => Packed::build(rows),
    };
    Ok(Some((tiles, packed)))
}

/// Software prefetch of the cache line holding `p` (a no-op off x86-64; never faults).
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults or reads memory architecturally.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// How [`KeywordMatrix::score`] computes its dot products (same scores bit for bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreStrategy {
    /// The query as a dense vector over terms, each candidate's row read and multiplied with
    /// it ([`dot_rows`]). Cost grows with the candidates' non-zeros; with a huge term space
    /// (ItemKNN: one term per item) every non-zero is also a cache miss into the dense query.
    Rows,
    /// The query terms' posting lists walked, candidates looked up in a small hash table
    /// behind a bit filter. Cost grows with the query's postings: the fast path for a short
    /// query (a user's history) over a huge term space.
    Postings,
}

/// [`KeywordMatrix::score_strategy`]: cost of a query term's list beyond its postings.
const TERM_COST: usize = 16;
/// [`KeywordMatrix::score_strategy`]: cost of a CSR row beyond its non-zeros.
const ROW_COST: usize = 8;
/// How many query terms ahead [`ScoreStrategy::Postings`] prefetches list offsets.
const POST_OFFSETS_AHEAD: usize = 16;
/// How many query terms ahead [`ScoreStrategy::Postings`] prefetches the lists.
const POST_LISTS_AHEAD: usize = 6;

/// The candidates of a [`ScoreStrategy::Postings`] call: item id -> first position in the
/// candidate list, in an open-addressing table at most half full, behind a one-hash bit
/// filter (~64 bits per candidate: ~1.5 % false positives) that answers most lookups (a
/// posting list's items are rarely candidates) with one L1 read and a predictable branch.
struct CandidateTable {
    /// `(item, first position)`; position `u32::MAX` marks an empty slot.
    slots: Vec<(i32, u32)>,
    /// `log2(slots.len())`.
    slot_bits: u32,
    filter: Vec<u64>,
    /// `log2(filter bits)`.
    filter_bits: u32,
    /// Position of the first occurrence of each candidate's id.
    first: Vec<u32>,
}

impl CandidateTable {
    const EMPTY: u32 = u32::MAX;

    /// Indexes `candidates` (valid item ids); `None` when there are none.
    fn new(candidates: &[i32]) -> Option<Self> {
        let n = candidates.len();
        if n == 0 || n >= Self::EMPTY as usize {
            return None;
        }
        let slot_bits = (2 * n).next_power_of_two().max(16).trailing_zeros();
        let filter_bits = (64 * n)
            .next_power_of_two()
            .clamp(1 << 10, 1 << 18)
            .trailing_zeros();
        let mut t = Self {
            slots: vec![(0, Self::EMPTY); 1 << slot_bits],
            slot_bits,
            filter: vec![0u64; 1 << (filter_bits - 6)],
            filter_bits,
            first: vec![0; n],
        };
        let mask = t.slots.len() - 1;
        for (j, &c) in candidates.iter().enumerate() {
            let h = Self::hash(c);
            let b = (h >> (64 - filter_bits)) as usize;
            t.filter[b >> 6] |= 1 << (b & 63);
            let mut p = (h >> (64 - slot_bits)) as usize;
            loop {
                let (item, pos) = t.slots[p];
                if pos == Self::EMPTY {
                    t.slots[p] = (c, j as u32);
                    t.first[j] = j as u32;
                    break;
                }
                if item == c {
                    t.first[j] = pos;
                    break;
                }
                p = (p + 1) & mask;
            }
        }
        Some(t)
    }

    /// Fibonacci hashing: the top bits of the product spread nearby ids.
    #[inline(always)]
    fn hash(item: i32) -> u64 {
        u64::from(item as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Position of the first candidate equal to `item`, if any.
    #[inline(always)]
    fn find(&self, item: i32) -> Option<usize> {
        let h = Self::hash(item);
        let b = (h >> (64 - self.filter_bits)) as usize;
        if self.filter[b >> 6] >> (b & 63) & 1 == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut p = (h >> (64 - self.slot_bits)) as usize;
        loop {
            let (c, pos) = self.slots[p];
            if pos == Self::EMPTY {
                return None;
            }
            if c == item {
                return Some(pos as usize);
            }
            p = (p + 1) & mask;
        }
    }

    /// Gives every repeated candidate the score of its first occurrence.
    fn copy_duplicates(&self, out: &mut [f32]) {
        for (j, &f) in self.first.iter().enumerate() {
            if f as usize != j {
                out[j] = out[f as usize];
            }
        }
    }
}

/// Checks that each posting list's item ids are strictly increasing (the tiled view needs it).
fn check_sorted_lists(post_indptr: &[i64], items: &[i32]) -> Result<()> {
    for (t, w) in post_indptr.windows(2).enumerate() {
        let list = &items[w[0] as usize..w[1] as usize];
        if let Some(p) = list.windows(2).position(|v| v[1] <= v[0]) {
            return Err(CoreError::invalid(format!(
                "item ids must be strictly increasing within each term: term {t}, position {} \
                 has {} after {}",
                w[0] as usize + p + 1,
                list[p + 1],
                list[p]
            )));
        }
    }
    Ok(())
}

/// Checks that every id is in `[0, n)` (a branch-free min/max pass, then a search on failure).
fn check_ids(ids: &[i32], n: usize, name: &str, n_name: &str) -> Result<()> {
    let (lo, hi) = ids
        .iter()
        .fold((i32::MAX, i32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if ids.is_empty() || (lo >= 0 && (hi as usize) < n) {
        return Ok(());
    }
    let p = ids
        .iter()
        .position(|&x| x < 0 || x as usize >= n)
        .unwrap_or(0);
    Err(CoreError::invalid(format!(
        "{name} must be in [0, {n_name}={n}): position {p} has {}",
        ids[p]
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 4 items x 5 terms; item 2 is empty.
    pub(crate) fn small() -> KeywordMatrix {
        let indptr = [0i64, 2, 5, 5, 7];
        let indices = [0i32, 3, 1, 2, 3, 0, 4];
        let data = [0.6f32, 0.8, 0.5, 0.5, 0.7, 1.0, 0.0];
        KeywordMatrix::from_csr(&indptr, &indices, &data, 5).unwrap()
    }

    #[test]
    fn postings_are_the_transpose() {
        let m = small();
        assert_eq!((m.n_items(), m.n_terms(), m.nnz()), (4, 5, 7));
        assert_eq!(m.postings(0), (&[0, 3][..], &[0.6f32, 1.0][..]));
        assert_eq!(m.postings(3), (&[0, 1][..], &[0.8f32, 0.7][..]));
        assert_eq!(m.postings(4).0, &[3]);
        assert_eq!(m.term_max(3), 0.8);
        assert_eq!(m.row(2).0.len(), 0);
    }

    #[test]
    fn score_matches_hand_computation() {
        let m = small();
        let s = m.score(&[0, 3], &[1.0, 2.0], &[0, 2, 3, 0, 1]).unwrap();
        let expect = [0.6 + 1.6, 0.0, 1.0, 2.2, 2.0 * 0.7];
        for (a, b) in s.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{s:?}");
        }
        assert!(m.score(&[], &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn packed_rows_only_for_small_vocabularies() {
        let m = small();
        assert!(m.is_packed());
        let s = m.score(&[0, 3], &[1.0, 2.0], &[0, 2, 3, 0, 1]).unwrap();
        let mut csr = vec![0f32; 5];
        let mut qd = vec![0f32; 5];
        qd[0] = 1.0;
        qd[3] = 2.0;
        dot_rows(m.rows(), &qd, &[0, 2, 3, 0, 1], &mut csr);
        assert_eq!(s, csr);
        let big = KeywordMatrix::from_csr(&[0, 1, 1], &[70_000], &[0.5], 70_001).unwrap();
        assert!(!big.is_packed());
        assert_eq!(
            big.score(&[70_000], &[2.0], &[0, 1, 0, 0, 0]).unwrap(),
            vec![1.0, 0.0, 1.0, 1.0, 1.0]
        );
    }

    /// A pseudo-random matrix: `n_items` rows of up to `max_row` distinct terms.
    fn random_matrix(n_items: usize, n_terms: usize, max_row: usize, seed: u64) -> KeywordMatrix {
        let mut x = seed;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as usize
        };
        let mut indptr = vec![0i64];
        let mut indices = Vec::new();
        let mut data = Vec::new();
        for _ in 0..n_items {
            let mut row: Vec<i32> = (0..next() % (max_row + 1))
                .map(|_| (next() % n_terms) as i32)
                .collect();
            row.sort_unstable();
            row.dedup();
            for t in row {
                indices.push(t);
                // awkward values, so that a different summation order would show
                data.push(((next() % 1000) as f32 + 0.5) / 777.0);
            }
            indptr.push(indices.len() as i64);
        }
        KeywordMatrix::from_csr(&indptr, &indices, &data, n_terms).unwrap()
    }

    #[test]
    fn strategies_agree_bit_for_bit() {
        for (n_terms, seed) in [(50usize, 1u64), (3000, 2), (70_000, 3)] {
            let m = random_matrix(2000, n_terms, 40, seed);
            for q_len in [0usize, 1, 3, 20, 200] {
                let step = (n_terms / q_len.max(1)).max(1);
                let terms: Vec<i32> = (0..q_len.min(n_terms))
                    .map(|i| (i * step + i % 3) as i32)
                    .filter(|&t| (t as usize) < n_terms)
                    .collect();
                let mut terms = terms;
                terms.sort_unstable();
                terms.dedup();
                let weights: Vec<f32> =
                    terms.iter().map(|&t| 0.25 + (t % 7) as f32 / 3.0).collect();
                // repeats, and every item at least once
                let cands: Vec<i32> = (0..2500).map(|i| (i * 7919) % 2000).collect();
                let rows = m
                    .score_with(Some(ScoreStrategy::Rows), &terms, &weights, &cands)
                    .unwrap();
                let post = m
                    .score_with(Some(ScoreStrategy::Postings), &terms, &weights, &cands)
                    .unwrap();
                let auto = m.score(&terms, &weights, &cands).unwrap();
                for j in 0..cands.len() {
                    assert_eq!(rows[j].to_bits(), post[j].to_bits(), "candidate {j}");
                    assert_eq!(rows[j].to_bits(), auto[j].to_bits(), "candidate {j}");
                    let c = cands[j] as usize;
                    let mut qd = vec![0f32; n_terms];
                    for (&t, &w) in terms.iter().zip(&weights) {
                        qd[t as usize] = w;
                    }
                    assert_eq!(rows[j].to_bits(), m.dot_dense(c, &qd).to_bits());
                }
                assert!(m
                    .score_with(Some(ScoreStrategy::Postings), &terms, &weights, &[])
                    .unwrap()
                    .is_empty());
            }
        }
    }

    #[test]
    fn cost_model_picks_postings_for_short_queries_over_many_terms() {
        let m = random_matrix(5000, 200_000, 30, 4);
        let cands: Vec<i32> = (0..500).collect();
        let short: Vec<i32> = (0..20).map(|i| i * 9000).collect();
        assert_eq!(m.score_strategy(&short, 500), ScoreStrategy::Postings);
        assert_eq!(m.score_strategy(&short, 0), ScoreStrategy::Rows);
        let long: Vec<i32> = (0..20_000).map(|i| i * 10).collect();
        assert_eq!(m.score_strategy(&long, cands.len()), ScoreStrategy::Rows);
        // one popular term: its list alone outweighs the candidates' rows
        let dense = random_matrix(5000, 4, 4, 5);
        assert_eq!(dense.score_strategy(&[0], 10), ScoreStrategy::Rows);
    }

    #[test]
    fn rejects_bad_csr() {
        let e = |r: Result<KeywordMatrix>| r.err().unwrap().to_string();
        assert!(e(KeywordMatrix::from_csr(&[1, 2], &[0], &[1.0], 3)).contains("start at 0"));
        assert!(
            e(KeywordMatrix::from_csr(&[0, 2, 1], &[0, 1], &[1.0, 1.0], 3))
                .contains("non-decreasing")
        );
        assert!(e(KeywordMatrix::from_csr(&[0, 2], &[1, 1], &[1.0, 1.0], 3))
            .contains("position 1 has 1 after 1"));
        assert!(e(KeywordMatrix::from_csr(&[0, 1], &[3], &[1.0], 3)).contains("n_terms=3"));
        assert!(e(KeywordMatrix::from_csr(&[0, 1], &[0], &[f32::NAN], 3)).contains("finite"));
        assert!(e(KeywordMatrix::from_csr(&[0, 1], &[0], &[1.0, 2.0], 3)).contains("same length"));
        assert!(e(KeywordMatrix::from_csr(&[0, 2], &[0], &[1.0], 3)).contains("indptr[-1]"));
        assert!(e(KeywordMatrix::from_csr(&[], &[], &[], 3)).contains("at least one"));
    }

    #[test]
    fn rejects_bad_queries() {
        let m = small();
        let e = |r: Result<Vec<f32>>| r.err().unwrap().to_string();
        assert_eq!(
            e(m.score(&[1, 3, 3], &[1.0; 3], &[0])),
            "q_terms must be strictly increasing: position 2 has 3 after 3"
        );
        assert!(e(m.score(&[5], &[1.0], &[0])).contains("n_terms=5"));
        assert!(e(m.score(&[1], &[-1.0], &[0])).contains("q_weights must be finite"));
        assert!(e(m.score(&[1], &[1.0, 2.0], &[0])).contains("same length"));
        assert!(e(m.score(&[1], &[1.0], &[4])).contains("candidates must be in [0, n_items=4)"));
    }

    #[test]
    fn open_roundtrip() {
        let m = small();
        let d = std::env::temp_dir().join(format!("reelrank_csr_{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        write_npy(&d.join(KW_INDPTR), &m.indptr).unwrap();
        write_npy(&d.join(KW_INDICES), &m.indices).unwrap();
        write_npy(&d.join(KW_DATA), &m.data).unwrap();
        KeywordMatrix::write_postings(&d).unwrap();
        for validate in [false, true] {
            let o = KeywordMatrix::open(&d, validate).unwrap();
            assert!(o.is_mapped());
            assert_eq!(o.n_items(), 4);
            // write_postings infers n_terms from the largest id present (4 here)
            assert_eq!(o.n_terms(), 5);
            assert_eq!(o.postings(3), m.postings(3));
        }
        write_npy(&d.join(KW_POST_WEIGHTS), &[1f32; 6]).unwrap();
        let err = KeywordMatrix::open(&d, false).err().unwrap().to_string();
        assert!(err.contains(KW_POST_WEIGHTS), "{err}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn derived_files_are_mapped_and_checked() {
        assert!(KW_TILE_SEG.contains(&format!("tile{TILE_SHIFT}_")));
        let m = small();
        let d = std::env::temp_dir().join(format!("reelrank_derived_{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        write_npy(&d.join(KW_INDPTR), &m.indptr).unwrap();
        write_npy(&d.join(KW_INDICES), &m.indices).unwrap();
        write_npy(&d.join(KW_DATA), &m.data).unwrap();
        KeywordMatrix::write_postings(&d).unwrap();
        assert!(!KeywordMatrix::open(&d, false).unwrap().derived_mapped());
        KeywordMatrix::write_derived(&d).unwrap();
        let cands = [0, 2, 3, 0, 1, 1, 3];
        let want = m.score(&[0, 3, 4], &[1.0, 2.0, 0.5], &cands).unwrap();
        for validate in [false, true] {
            let o = KeywordMatrix::open(&d, validate).unwrap();
            assert!(o.derived_mapped() && o.is_packed());
            assert_eq!(o.score(&[0, 3, 4], &[1.0, 2.0, 0.5], &cands).unwrap(), want);
            let a = crate::topk::topk(&o, &[0, 3], &[1.0, 2.0], 3, &[]).unwrap();
            let b = crate::topk::topk(&m, &[0, 3], &[1.0, 2.0], 3, &[]).unwrap();
            assert_eq!((a.ids, a.scores), (b.ids, b.scores));
        }
        // a corrupt derived file is an error naming it
        let words = map_npy::<u32>(&d.join(KW_PACKED_WORDS)).unwrap().to_vec();
        let mut bad = words.clone();
        bad[1] ^= 1;
        write_npy(&d.join(KW_PACKED_WORDS), &bad).unwrap();
        let err = KeywordMatrix::open(&d, false).err().unwrap().to_string();
        assert!(
            err.contains(KW_PACKED_WORDS) && err.contains("row 0"),
            "{err}"
        );
        write_npy(&d.join(KW_PACKED_WORDS), &words).unwrap();
        let lo = map_npy::<u16>(&d.join(KW_TILE_LO)).unwrap().to_vec();
        write_npy(&d.join(KW_TILE_LO), &lo[1..]).unwrap();
        let err = KeywordMatrix::open(&d, false).err().unwrap().to_string();
        assert!(
            err.contains(KW_TILE_LO) && err.contains("elements"),
            "{err}"
        );
        let mut bad_lo = lo.clone();
        bad_lo[0] += 1;
        write_npy(&d.join(KW_TILE_LO), &bad_lo).unwrap();
        let err = KeywordMatrix::open(&d, false).err().unwrap().to_string();
        assert!(
            err.contains(KW_TILE_LO) && err.contains("posting 0"),
            "{err}"
        );
        // an incomplete set is an error; no derived files at all means building in memory
        std::fs::remove_file(d.join(KW_TILE_LO)).unwrap();
        let err = KeywordMatrix::open(&d, false).err().unwrap().to_string();
        assert!(
            err.contains(KW_TILE_LO) && err.contains("incomplete"),
            "{err}"
        );
        for f in [KW_TILE_SEG, KW_TILE_MAX] {
            std::fs::remove_file(d.join(f)).unwrap();
        }
        let err = KeywordMatrix::open(&d, false).err().unwrap().to_string();
        assert!(err.contains("incomplete"), "{err}");
        for f in [KW_PACKED_START, KW_PACKED_WORDS] {
            std::fs::remove_file(d.join(f)).unwrap();
        }
        let o = KeywordMatrix::open(&d, false).unwrap();
        assert!(!o.derived_mapped());
        assert_eq!(o.score(&[0, 3, 4], &[1.0, 2.0, 0.5], &cands).unwrap(), want);
        std::fs::remove_dir_all(d).unwrap();
    }
}
