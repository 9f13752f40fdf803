//! Owned arrays backed by transparent huge pages where the OS allows it.
//!
//! The keyword matrix is read at random (candidate rows, rescoring) and streamed (postings).
//! With 4 KiB pages every random row costs several TLB misses (two-level page walks in a VM),
//! and streaming reads run ~25 % slower than from 2 MiB pages. `HugeBuf` copies data into an
//! anonymous map aligned to 2 MiB and advised `MADV_HUGEPAGE` (Linux; THP mode `madvise` or
//! `always`), falling back to a plain `Vec` elsewhere or when the map cannot be created.
//! Pure Rust, no PyO3.

use std::marker::PhantomData;
use std::ops::Deref;

use memmap2::MmapMut;

/// Huge page size the buffers align to.
const HUGE: usize = 2 << 20;
/// Arrays smaller than this stay in a `Vec` (a huge page would be mostly empty).
const MIN_BYTES: usize = 1 << 20;

mod sealed {
    pub trait Sealed {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
    impl Sealed for f32 {}
}

/// Plain-old-data element types for which all-zero bytes are a valid value.
pub trait Pod: sealed::Sealed + Copy + Send + Sync + 'static {}
impl<T: sealed::Sealed + Copy + Send + Sync + 'static> Pod for T {}

/// A read-only owned array, in huge pages when possible.
pub struct HugeBuf<T: Pod> {
    inner: Inner<T>,
}

enum Inner<T: Pod> {
    Vec(Vec<T>),
    Map {
        map: MmapMut,
        offset: usize,
        len: usize,
        _t: PhantomData<T>,
    },
}

impl<T: Pod> HugeBuf<T> {
    /// Copies `src` into a new buffer.
    pub fn from_slice(src: &[T]) -> Self {
        Self::from_fn(src.len(), |dst| dst.copy_from_slice(src))
    }

    /// A buffer of `len` elements, zeroed, then filled by `fill`.
    pub fn from_fn(len: usize, fill: impl FnOnce(&mut [T])) -> Self {
        let bytes = len * std::mem::size_of::<T>();
        if bytes >= MIN_BYTES {
            if let Ok(mut map) = MmapMut::map_anon(bytes + HUGE) {
                #[cfg(target_os = "linux")]
                let _ = map.advise(memmap2::Advice::HugePage);
                let addr = map.as_ptr() as usize;
                let offset = addr.next_multiple_of(HUGE) - addr;
                // SAFETY: `offset + bytes <= len(map)`; the map is page-aligned, so the start is
                // aligned for `T` (size <= 8); anonymous maps are zero-filled and all-zero bytes
                // are a valid `T` (sealed `Pod`); the slice borrows `map` mutably only here.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(map.as_mut_ptr().add(offset).cast::<T>(), len)
                };
                fill(dst);
                return Self {
                    inner: Inner::Map {
                        map,
                        offset,
                        len,
                        _t: PhantomData,
                    },
                };
            }
        }
        let mut v = Vec::with_capacity(len);
        // Zero-initialised like the map (all-zero bytes are a valid `T`).
        v.resize_with(len, || {
            // SAFETY: `T` is a sealed plain-old-data type valid for all-zero bytes.
            unsafe { std::mem::zeroed() }
        });
        fill(&mut v);
        Self {
            inner: Inner::Vec(v),
        }
    }

    /// True when the data lives in an anonymous (huge-page advised) map.
    pub fn is_huge_map(&self) -> bool {
        matches!(self.inner, Inner::Map { .. })
    }
}

impl<T: Pod> Deref for HugeBuf<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        match &self.inner {
            Inner::Vec(v) => v,
            Inner::Map {
                map, offset, len, ..
            } => {
                // SAFETY: as in `from_fn`: in bounds, aligned, initialised, owned by `self`.
                unsafe { std::slice::from_raw_parts(map.as_ptr().add(*offset).cast::<T>(), *len) }
            }
        }
    }
}

impl<T: Pod> From<Vec<T>> for HugeBuf<T> {
    fn from(v: Vec<T>) -> Self {
        if v.len() * std::mem::size_of::<T>() >= MIN_BYTES {
            Self::from_slice(&v)
        } else {
            Self {
                inner: Inner::Vec(v),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_roundtrip() {
        let small: Vec<i32> = (0..100).collect();
        let b = HugeBuf::from(small.clone());
        assert!(!b.is_huge_map());
        assert_eq!(&b[..], &small[..]);
        let large: Vec<f32> = (0..(1 << 19)).map(|i| i as f32).collect();
        let b = HugeBuf::from(large.clone());
        assert!(b.is_huge_map());
        assert_eq!(b.as_ptr() as usize % HUGE, 0);
        assert_eq!(&b[..], &large[..]);
        let z = HugeBuf::<u16>::from_fn(3 << 20, |_| {});
        assert!(z.iter().all(|&x| x == 0));
        let e = HugeBuf::<i64>::from_slice(&[]);
        assert!(e.is_empty());
    }
}
