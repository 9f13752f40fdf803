//! Per-thread scratch buffers reused across calls (no allocation on the hot path).
//!
//! Invariant between calls: `acc` and `qdense` are all zeros, `pmark` all false. A call that
//! unwinds half-way leaves `dirty` set and the next call zero-fills everything first.

use std::cell::RefCell;

/// Reusable working memory of one thread.
#[derive(Default)]
pub struct Scratch {
    /// Dense score accumulator over items (top-k).
    pub acc: Vec<f32>,
    /// Items whose accumulator became non-zero, `n_items + 1` long (branch-free appends).
    pub touched: Vec<u32>,
    /// Dense query over terms (score / rescoring).
    pub qdense: Vec<f32>,
    /// Dense profile accumulator over terms.
    pub pacc: Vec<f64>,
    /// Terms touched by the profile accumulator.
    pub pmark: Vec<bool>,
    /// List of touched profile terms.
    pub pterms: Vec<u32>,
    dirty: bool,
}

impl Scratch {
    /// Makes every buffer at least as large as the matrix needs (new space is zeroed).
    fn ensure(&mut self, n_items: usize, n_terms: usize) {
        if self.dirty {
            self.acc.fill(0.0);
            self.qdense.fill(0.0);
            self.pacc.fill(0.0);
            self.pmark.fill(false);
            self.dirty = false;
        }
        let acc_len = n_items.max(crate::csr::TILE);
        if self.acc.len() < acc_len {
            self.acc.resize(acc_len, 0.0);
        }
        if self.touched.len() < n_items + 1 {
            self.touched.resize(n_items + 1, 0);
        }
        if self.qdense.len() < n_terms {
            self.qdense.resize(n_terms, 0.0);
        }
        if self.pacc.len() < n_terms {
            self.pacc.resize(n_terms, 0.0);
            self.pmark.resize(n_terms, false);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch, sized for `n_items` x `n_terms`.
pub fn with_scratch<R>(n_items: usize, n_terms: usize, f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut s = cell.borrow_mut();
        s.ensure(n_items, n_terms);
        s.dirty = true;
        let r = f(&mut s);
        s.dirty = false;
        r
    })
}
