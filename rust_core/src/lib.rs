//! `server._core`: Python bindings over reelrank's pure Rust keyword math.
//!
//! This file only converts and exports: numpy arrays in, numpy arrays out, the GIL released
//! around every heavy call, and the single place where [`error::CoreError`] becomes a Python
//! exception. The math lives in the modules below, which do not depend on PyO3.

pub mod csr;
pub mod encode;
pub mod error;
pub mod gather;
pub mod huge;
pub mod merge;
pub mod npy;
pub mod order;
pub mod profile;
pub mod rerank;
pub mod rows;
mod scratch;
pub mod topk;

#[cfg(feature = "python")]
mod py {
    use std::panic::AssertUnwindSafe;
    use std::path::PathBuf;

    use numpy::{
        Element, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyUntypedArray,
        PyUntypedArrayMethods,
    };
    use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
    use pyo3::prelude::*;
    use pyo3::types::{PyBytes, PyString, PyTuple};

    use crate::csr::{KeywordMatrix as Core, ScoreStrategy};
    use crate::error::CoreError;
    use crate::{encode, gather, merge, order, profile, rerank, topk};

    /// The one mapping from core errors to Python exceptions.
    fn to_py_err(e: CoreError) -> PyErr {
        match e {
            CoreError::Invalid(_) | CoreError::Format { .. } => {
                PyValueError::new_err(e.to_string())
            }
            CoreError::Io { file, source } => {
                let msg = source.to_string();
                match source.raw_os_error() {
                    // OSError(errno, strerror, filename) picks the subclass (FileNotFoundError...)
                    Some(errno) => PyOSError::new_err((errno, msg, file.display().to_string())),
                    None => PyOSError::new_err(format!("{}: {msg}", file.display())),
                }
            }
        }
    }

    /// Runs `f` without the GIL; maps core errors, and turns a (never expected) panic into a
    /// `RuntimeError` instead of letting it cross the boundary.
    fn heavy<T: Send>(
        py: Python<'_>,
        f: impl FnOnce() -> Result<T, CoreError> + Send,
    ) -> PyResult<T> {
        py.detach(|| std::panic::catch_unwind(AssertUnwindSafe(f)))
            .map_err(|p| {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                PyRuntimeError::new_err(format!("internal error in reelrank core: {msg}"))
            })?
            .map_err(to_py_err)
    }

    /// A 1-D numpy argument: borrowed when contiguous, else copied.
    enum Arr<'py, T: Element + Copy> {
        Borrowed(PyReadonlyArray1<'py, T>),
        Copied(Vec<T>),
    }

    impl<T: Element + Copy> Arr<'_, T> {
        fn slice(&self) -> &[T] {
            match self {
                Self::Borrowed(a) => a.as_slice().unwrap_or(&[]),
                Self::Copied(v) => v,
            }
        }
    }

    /// Extracts a 1-D array of exactly dtype `T`, with a clear `TypeError` otherwise.
    fn arr<'py, T: Element + Copy>(
        obj: &Bound<'py, PyAny>,
        name: &str,
        dtype: &str,
    ) -> PyResult<Arr<'py, T>> {
        if let Ok(a) = obj.cast::<PyArray1<T>>() {
            let ro = a.try_readonly().map_err(|e| {
                PyValueError::new_err(format!("{name}: cannot read the array: {e}"))
            })?;
            return Ok(if ro.as_slice().is_ok() {
                Arr::Borrowed(ro)
            } else {
                Arr::Copied(ro.as_array().iter().copied().collect())
            });
        }
        let got = match obj.cast::<PyUntypedArray>() {
            Ok(a) => format!("a {}-D array of dtype {}", a.ndim(), a.dtype()),
            Err(_) => format!("{}", obj.get_type().name()?),
        };
        Err(PyTypeError::new_err(format!(
            "{name} must be a 1-D numpy array of dtype {dtype}, got {got}"
        )))
    }

    /// The elements of a list or tuple, for [`strs`] to borrow from.
    fn elements<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
        if obj.is_instance_of::<pyo3::types::PyList>() || obj.is_instance_of::<PyTuple>() {
            return obj.try_iter()?.collect();
        }
        Err(PyTypeError::new_err(format!(
            "{name} must be a list of bytes or str, got {}",
            obj.get_type().name()?
        )))
    }

    /// Borrows each element as UTF-8 text: `bytes` (checked to be UTF-8) or `str`, with a clear
    /// `TypeError`/`ValueError` naming the element otherwise.
    fn strs<'a>(items: &'a [Bound<'_, PyAny>], name: &str) -> PyResult<Vec<&'a str>> {
        items
            .iter()
            .enumerate()
            .map(|(j, x)| {
                if let Ok(b) = x.cast::<PyBytes>() {
                    std::str::from_utf8(b.as_bytes()).map_err(|e| {
                        PyValueError::new_err(format!("{name}[{j}] is not valid UTF-8: {e}"))
                    })
                } else if let Ok(s) = x.cast::<PyString>() {
                    s.to_str()
                } else {
                    Err(PyTypeError::new_err(format!(
                        "{name}[{j}] must be bytes or str, got {}",
                        x.get_type().name()?
                    )))
                }
            })
            .collect()
    }

    fn non_negative(v: i64, name: &str) -> PyResult<usize> {
        usize::try_from(v)
            .map_err(|_| PyValueError::new_err(format!("{name} must be >= 0, got {v}")))
    }

    fn pair<'py>(py: Python<'py>, ids: Vec<i32>, vals: Vec<f32>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                PyArray1::from_vec(py, ids).into_any(),
                PyArray1::from_vec(py, vals).into_any(),
            ],
        )
    }

    /// Item keyword vectors: CSR (rows = items, L2-normalised TF-IDF, f32) plus an inverted
    /// index (postings per term).
    #[pyclass(name = "KeywordMatrix", module = "server._core", frozen)]
    struct KeywordMatrix {
        inner: Core,
    }

    #[pymethods]
    impl KeywordMatrix {
        /// Validates and copies a CSR matrix (items x terms) and builds its postings.
        #[staticmethod]
        fn from_csr(
            py: Python<'_>,
            indptr: &Bound<'_, PyAny>,
            indices: &Bound<'_, PyAny>,
            data: &Bound<'_, PyAny>,
            n_terms: i64,
        ) -> PyResult<Self> {
            let n_terms = non_negative(n_terms, "n_terms")?;
            let a = arr::<i64>(indptr, "indptr", "int64")?;
            let b = arr::<i32>(indices, "indices", "int32")?;
            let c = arr::<f32>(data, "data", "float32")?;
            let (a, b, c) = (a.slice(), b.slice(), c.slice());
            let inner = heavy(py, || Core::from_csr(a, b, c, n_terms))?;
            Ok(Self { inner })
        }

        /// Memory-maps the six kw_*.npy files of `directory`.
        #[staticmethod]
        #[pyo3(signature = (directory, validate = false))]
        fn open(py: Python<'_>, directory: PathBuf, validate: bool) -> PyResult<Self> {
            let inner = heavy(py, || Core::open(&directory, validate))?;
            Ok(Self { inner })
        }

        /// Reads kw_indptr/kw_indices/kw_data.npy in `directory` and writes the postings files.
        #[staticmethod]
        fn write_postings(py: Python<'_>, directory: PathBuf) -> PyResult<()> {
            heavy(py, || Core::write_postings(&directory))
        }

        /// Builds the scoring structures of the index in `directory` and writes them next to
        /// it (each file atomically), so that `open` memory-maps them.
        #[staticmethod]
        fn write_derived(py: Python<'_>, directory: PathBuf) -> PyResult<()> {
            heavy(py, || Core::write_derived(&directory))
        }

        /// True when the derived scoring structures are memory-mapped files.
        #[getter]
        fn derived_mapped(&self) -> bool {
            self.inner.derived_mapped()
        }

        /// Number of items (rows).
        #[getter]
        fn n_items(&self) -> usize {
            self.inner.n_items()
        }

        /// Number of terms (columns).
        #[getter]
        fn n_terms(&self) -> usize {
            self.inner.n_terms()
        }

        /// Number of stored non-zeros.
        #[getter]
        fn nnz(&self) -> usize {
            self.inner.nnz()
        }

        fn __repr__(&self) -> String {
            format!(
                "KeywordMatrix(n_items={}, n_terms={}, nnz={}, mapped={}, derived_mapped={})",
                self.inner.n_items(),
                self.inner.n_terms(),
                self.inner.nnz(),
                self.inner.is_mapped(),
                self.inner.derived_mapped()
            )
        }

        /// Dot product of the sparse query with each candidate row, in candidate order;
        /// `strategy` "auto" (the cost model), "rows" or "postings" (same scores).
        #[pyo3(signature = (q_terms, q_weights, candidates, *, strategy = "auto"))]
        fn score<'py>(
            &self,
            py: Python<'py>,
            q_terms: &Bound<'py, PyAny>,
            q_weights: &Bound<'py, PyAny>,
            candidates: &Bound<'py, PyAny>,
            strategy: &str,
        ) -> PyResult<Bound<'py, PyArray1<f32>>> {
            let strategy = match strategy {
                "auto" => None,
                "rows" => Some(ScoreStrategy::Rows),
                "postings" => Some(ScoreStrategy::Postings),
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "strategy must be 'auto', 'rows' or 'postings', got {strategy:?}"
                    )))
                }
            };
            let t = arr::<i32>(q_terms, "q_terms", "int32")?;
            let w = arr::<f32>(q_weights, "q_weights", "float32")?;
            let c = arr::<i32>(candidates, "candidates", "int32")?;
            let (t, w, c) = (t.slice(), w.slice(), c.slice());
            let out = heavy(py, || self.inner.score_with(strategy, t, w, c))?;
            Ok(PyArray1::from_vec(py, out))
        }

        /// Exact top-k over the catalogue (scores > 0 only), best first, ties by item id.
        #[pyo3(signature = (q_terms, q_weights, k, exclude = None))]
        fn topk<'py>(
            &self,
            py: Python<'py>,
            q_terms: &Bound<'py, PyAny>,
            q_weights: &Bound<'py, PyAny>,
            k: i64,
            exclude: Option<&Bound<'py, PyAny>>,
        ) -> PyResult<Bound<'py, PyTuple>> {
            let k = non_negative(k, "k")?;
            let t = arr::<i32>(q_terms, "q_terms", "int32")?;
            let w = arr::<f32>(q_weights, "q_weights", "float32")?;
            let e = exclude
                .map(|e| arr::<i32>(e, "exclude", "int32"))
                .transpose()?;
            let (t, w) = (t.slice(), w.slice());
            let e = e.as_ref().map_or(&[][..], Arr::slice);
            let r = heavy(py, || topk::topk(&self.inner, t, w, k, e))?;
            pair(py, r.ids, r.scores)
        }

        /// Exact top-k for CSR-form queries, in parallel; `[n_queries, k]` arrays padded with
        /// id -1 and score 0.
        #[pyo3(signature = (q_indptr, q_terms, q_weights, k, exclude_indptr = None, exclude = None, n_threads = 0))]
        #[allow(clippy::too_many_arguments)]
        fn topk_batch<'py>(
            &self,
            py: Python<'py>,
            q_indptr: &Bound<'py, PyAny>,
            q_terms: &Bound<'py, PyAny>,
            q_weights: &Bound<'py, PyAny>,
            k: i64,
            exclude_indptr: Option<&Bound<'py, PyAny>>,
            exclude: Option<&Bound<'py, PyAny>>,
            n_threads: i64,
        ) -> PyResult<Bound<'py, PyTuple>> {
            let k = non_negative(k, "k")?;
            let n_threads = non_negative(n_threads, "n_threads")?;
            let p = arr::<i64>(q_indptr, "q_indptr", "int64")?;
            let t = arr::<i32>(q_terms, "q_terms", "int32")?;
            let w = arr::<f32>(q_weights, "q_weights", "float32")?;
            let ep = exclude_indptr
                .map(|e| arr::<i64>(e, "exclude_indptr", "int64"))
                .transpose()?;
            let e = exclude
                .map(|e| arr::<i32>(e, "exclude", "int32"))
                .transpose()?;
            let ex = match (&ep, &e) {
                (Some(ep), Some(e)) => Some((ep.slice(), e.slice())),
                (None, None) => None,
                _ => {
                    return Err(PyValueError::new_err(
                        "exclude_indptr and exclude must be given together",
                    ))
                }
            };
            let (p, t, w) = (p.slice(), t.slice(), w.slice());
            let r = heavy(py, || {
                topk::topk_batch(&self.inner, p, t, w, k, ex, n_threads)
            })?;
            let ids = PyArray1::from_vec(py, r.ids).reshape([r.n_queries, k])?;
            let scores = PyArray1::from_vec(py, r.scores).reshape([r.n_queries, k])?;
            PyTuple::new(py, [ids.into_any(), scores.into_any()])
        }

        /// User keyword profile from weighted, time-decayed item events.
        fn build_profile<'py>(
            &self,
            py: Python<'py>,
            items: &Bound<'py, PyAny>,
            weights: &Bound<'py, PyAny>,
            ages_s: &Bound<'py, PyAny>,
            half_life_s: f64,
            max_terms: i64,
        ) -> PyResult<Bound<'py, PyTuple>> {
            let max_terms = non_negative(max_terms, "max_terms")?;
            let i = arr::<i32>(items, "items", "int32")?;
            let w = arr::<f32>(weights, "weights", "float32")?;
            let a = arr::<f64>(ages_s, "ages_s", "float64")?;
            let (i, w, a) = (i.slice(), w.slice(), a.slice());
            let p = heavy(py, || {
                profile::build_profile(&self.inner, i, w, a, half_life_s, max_terms)
            })?;
            pair(py, p.terms, p.weights)
        }
    }

    /// Fairness re-ranking fill (`crate::rerank::select`): returns (chosen int64 array, flags).
    #[pyfunction]
    #[allow(clippy::too_many_arguments)]
    fn rerank_select<'py>(
        py: Python<'py>,
        rel: &Bound<'py, PyAny>,
        creator: &Bound<'py, PyAny>,
        group: &Bound<'py, PyAny>,
        rank: &Bound<'py, PyAny>,
        emb: &Bound<'py, PyAny>,
        dim: i64,
        k: i64,
        cap: i64,
        window: i64,
        mult: &Bound<'py, PyAny>,
        lam: f64,
        need: &Bound<'py, PyAny>,
        n_classes: i64,
        class_groups: &Bound<'py, PyAny>,
        cold: &Bound<'py, PyAny>,
        cold_pos: i64,
        floor_over_cap: bool,
        dpp_window: i64,
    ) -> PyResult<(Bound<'py, PyArray1<i64>>, u32)> {
        let r = arr::<f64>(rel, "rel", "float64")?;
        let c = arr::<i64>(creator, "creator", "int64")?;
        let g = arr::<i64>(group, "group", "int64")?;
        let rk = arr::<i64>(rank, "rank", "int64")?;
        let e = arr::<f32>(emb, "emb", "float32")?;
        let m = arr::<f64>(mult, "mult", "float64")?;
        let nd = arr::<i32>(need, "need", "int32")?;
        let cg = arr::<u8>(class_groups, "class_groups", "uint8")?;
        let cd = arr::<u8>(cold, "cold", "uint8")?;
        let cands = rerank::Candidates {
            rel: r.slice(),
            creator: c.slice(),
            group: g.slice(),
            rank: rk.slice(),
            emb: e.slice(),
            dim: non_negative(dim, "dim")?,
            cold: cd.slice(),
        };
        let settings = rerank::Settings {
            k: non_negative(k, "k")?,
            cap: non_negative(cap, "cap")?,
            window: non_negative(window, "window")?,
            mult: m.slice(),
            lam,
            need: nd.slice(),
            n_classes: non_negative(n_classes, "n_classes")?,
            class_groups: cg.slice(),
            cold_pos,
            floor_over_cap,
            dpp_window: non_negative(dpp_window, "dpp_window")?,
        };
        // Small and fast (tens of microseconds): not worth releasing the GIL.
        let out = rerank::select(&cands, &settings).map_err(to_py_err)?;
        Ok((PyArray1::from_vec(py, out.chosen), out.flags))
    }

    /// The wire bytes of `RankResponse.items` for one page (`crate::encode`), for
    /// `RankResponse.MergeFromString`.
    #[pyfunction]
    #[allow(clippy::too_many_arguments)]
    fn encode_ranked_items<'py>(
        py: Python<'py>,
        item_ids: &Bound<'py, PyAny>,
        creator_ids: &Bound<'py, PyAny>,
        groups: &Bound<'py, PyAny>,
        snapshot_version: &str,
        score: &Bound<'py, PyAny>,
        keyword: &Bound<'py, PyAny>,
        embedding: &Bound<'py, PyAny>,
        popularity: &Bound<'py, PyAny>,
        freshness: &Bound<'py, PyAny>,
        ranking: &Bound<'py, PyAny>,
        item_knn: &Bound<'py, PyAny>,
        sources: &Bound<'py, PyAny>,
        source_flags: &Bound<'py, PyAny>,
        source_values: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (ids, creators, grps) = (
            elements(item_ids, "item_ids")?,
            elements(creator_ids, "creator_ids")?,
            elements(groups, "groups")?,
        );
        let (ids, creators, grps) = (
            strs(&ids, "item_ids")?,
            strs(&creators, "creator_ids")?,
            strs(&grps, "groups")?,
        );
        let sc = arr::<f32>(score, "score", "float32")?;
        let stage = [
            arr::<f32>(keyword, "keyword", "float32")?,
            arr::<f32>(embedding, "embedding", "float32")?,
            arr::<f32>(popularity, "popularity", "float32")?,
            arr::<f32>(freshness, "freshness", "float32")?,
            arr::<f32>(ranking, "ranking", "float32")?,
            arr::<f32>(item_knn, "item_knn", "float32")?,
        ];
        let src = arr::<u8>(sources, "sources", "uint8")?;
        let flags = arr::<u8>(source_flags, "source_flags", "uint8")?;
        let values = arr::<i32>(source_values, "source_values", "int32")?;
        if flags.slice().len() != values.slice().len() {
            return Err(PyValueError::new_err(format!(
                "source_values has {} entries, expected {} (one per source_flags entry)",
                values.slice().len(),
                flags.slice().len()
            )));
        }
        let source_map: Vec<(u8, i32)> = flags
            .slice()
            .iter()
            .copied()
            .zip(values.slice().iter().copied())
            .collect();
        let items = encode::RankedItems {
            item_ids: &ids,
            creator_ids: &creators,
            groups: &grps,
            snapshot_version,
            score: sc.slice(),
            stage: stage.each_ref().map(Arr::slice),
            sources: src.slice(),
            source_map: &source_map,
        };
        // A page is tens of items (about a microsecond): not worth releasing the GIL.
        let out = encode::encode_ranked_items(&items).map_err(to_py_err)?;
        Ok(PyBytes::new(py, &out))
    }

    /// A source's ids for [`merge_sources`]: int32 or int64.
    enum Ids<'py> {
        I32(Arr<'py, i32>),
        I64(Arr<'py, i64>),
    }

    /// Retrieval merge (`crate::merge::merge`) of `(ids, scores, bit, limit)` sources: returns
    /// (items int32, bits uint8, scores float32, counts int64 per source).
    #[pyfunction]
    fn merge_sources<'py>(
        py: Python<'py>,
        sources: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>, u8, i64)>,
        excluded: &Bound<'py, PyAny>,
        num_candidates: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let num_candidates = non_negative(num_candidates, "num_candidates")?;
        let e = arr::<i32>(excluded, "excluded", "int32")?;
        let mut held = Vec::with_capacity(sources.len());
        for (s, (ids, scores, _, limit)) in sources.iter().enumerate() {
            let ids = if ids.cast::<PyArray1<i32>>().is_ok() {
                Ids::I32(arr::<i32>(ids, "ids", "int32")?)
            } else {
                Ids::I64(arr::<i64>(
                    ids,
                    &format!("source {s}: ids"),
                    "int32 or int64",
                )?)
            };
            let scores = arr::<f32>(scores, &format!("source {s}: scores"), "float32")?;
            held.push((ids, scores, non_negative(*limit, "limit")?));
        }
        let srcs: Vec<merge::Source<'_>> = held
            .iter()
            .zip(&sources)
            .map(|((ids, scores, limit), s)| merge::Source {
                ids: match ids {
                    Ids::I32(a) => merge::Ids::I32(a.slice()),
                    Ids::I64(a) => merge::Ids::I64(a.slice()),
                },
                scores: scores.slice(),
                bit: s.2,
                limit: *limit,
            })
            .collect();
        // A few microseconds for a few hundred ids: not worth releasing the GIL.
        let m = merge::merge(&srcs, e.slice(), num_candidates).map_err(to_py_err)?;
        let counts: Vec<i64> = m.counts.iter().map(|&c| c as i64).collect();
        PyTuple::new(
            py,
            [
                PyArray1::from_vec(py, m.items).into_any(),
                PyArray1::from_vec(py, m.bits).into_any(),
                PyArray1::from_vec(py, m.scores).into_any(),
                PyArray1::from_vec(py, counts).into_any(),
            ],
        )
    }

    /// `matrix[rows] @ q` without the gathered copy (`crate::gather::gather_dot`).
    #[pyfunction]
    fn gather_dot<'py>(
        py: Python<'py>,
        matrix: &Bound<'py, PyAny>,
        rows: &Bound<'py, PyAny>,
        q: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let Ok(m) = matrix.cast::<PyArray2<f32>>() else {
            return Err(PyTypeError::new_err(
                "matrix must be a 2-D numpy array of dtype float32",
            ));
        };
        let m = m
            .try_readonly()
            .map_err(|e| PyValueError::new_err(format!("matrix: cannot read the array: {e}")))?;
        let dim = m.shape()[1];
        // (`as_slice` also accepts Fortran order, which would read columns as rows.)
        let data = match m.as_slice() {
            Ok(d) if m.is_c_contiguous() => d,
            _ => return Err(PyValueError::new_err("matrix must be C-contiguous")),
        };
        let r = arr::<i32>(rows, "rows", "int32")?;
        let q = arr::<f32>(q, "q", "float32")?;
        let (r, q) = (r.slice(), q.slice());
        let out = heavy(py, || {
            gather::gather_dot(gather::Matrix { data, dim }, r, q)
        })?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// Positions by score, best first, ties by `tiebreak` then position (`crate::order`).
    #[pyfunction]
    fn ranking_order<'py>(
        py: Python<'py>,
        scores: &Bound<'py, PyAny>,
        tiebreak: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let s = arr::<f32>(scores, "scores", "float32")?;
        let t = arr::<i64>(tiebreak, "tiebreak", "int64")?;
        // A few hundred keys (microseconds): not worth releasing the GIL.
        let out = order::ranking_order(s.slice(), t.slice()).map_err(to_py_err)?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// reelrank's Rust core: sparse scoring, exact top-k, user profiles, the retrieval merge,
    /// the fairness fill and the response encoder.
    #[pymodule]
    fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_class::<KeywordMatrix>()?;
        m.add_function(wrap_pyfunction!(rerank_select, m)?)?;
        m.add_function(wrap_pyfunction!(encode_ranked_items, m)?)?;
        m.add_function(wrap_pyfunction!(merge_sources, m)?)?;
        m.add_function(wrap_pyfunction!(gather_dot, m)?)?;
        m.add_function(wrap_pyfunction!(ranking_order, m)?)?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }
}
