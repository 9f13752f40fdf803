//! Minimal `.npy` reader (memory-mapped) and writer for 1-D little-endian arrays.
//!
//! Supports format versions 1.0, 2.0 and 3.0. Only what the keyword index needs: a 1-D,
//! C-ordered array of `<i4`, `<i8`, `<f4`, `<u2` or `<u4`. Every error names the file.

use std::fs::File;
use std::io::Write;
use std::marker::PhantomData;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{CoreError, Result};
use crate::huge::HugeBuf;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

mod sealed {
    pub trait Sealed {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
    impl Sealed for f32 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
}

/// A plain-old-data element type that can be stored in a `.npy` file.
///
/// Sealed: implemented only for `i32`, `i64`, `f32`, `u16` and `u32`, for which every bit pattern is a valid
/// value, so reinterpreting mapped bytes as `[T]` is sound once size and alignment are checked.
pub trait NpyElem: sealed::Sealed + crate::huge::Pod {
    /// The numpy `descr` string (little-endian).
    const DESCR: &'static str;
    /// Appends the little-endian bytes of `self` to `out`.
    fn put_le(self, out: &mut Vec<u8>);
}

impl NpyElem for i32 {
    const DESCR: &'static str = "<i4";
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl NpyElem for i64 {
    const DESCR: &'static str = "<i8";
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl NpyElem for f32 {
    const DESCR: &'static str = "<f4";
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl NpyElem for u16 {
    const DESCR: &'static str = "<u2";
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl NpyElem for u32 {
    const DESCR: &'static str = "<u4";
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// A read-only 1-D buffer: either owned or a window into a shared memory map.
pub enum Buf<T: NpyElem> {
    /// Heap memory owned by the buffer.
    Owned(Vec<T>),
    /// Owned memory in (transparent) huge pages, see [`HugeBuf`].
    Huge(HugeBuf<T>),
    /// `len` elements starting `offset` bytes into `map` (offset checked to be aligned).
    Mapped {
        map: Arc<Mmap>,
        offset: usize,
        len: usize,
        _t: PhantomData<T>,
    },
}

impl<T: NpyElem> Buf<T> {
    /// True when the data lives in a memory map.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Self::Mapped { .. })
    }
}

impl<T: NpyElem> Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Self::Owned(v) => v,
            Self::Huge(h) => h,
            Self::Mapped {
                map, offset, len, ..
            } => {
                let bytes = &map[*offset..*offset + *len * std::mem::size_of::<T>()];
                // SAFETY: `map_npy` checked that the byte range lies inside the map and that its
                // start is aligned for `T`; `T` is sealed to types valid for any bit pattern; the
                // map is read-only and lives as long as `self` (held by the Arc).
                unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), *len) }
            }
        }
    }
}

impl<T: NpyElem> From<Vec<T>> for Buf<T> {
    /// Owned arrays move to huge pages (large ones are read at random by the kernels).
    fn from(v: Vec<T>) -> Self {
        Self::Huge(HugeBuf::from(v))
    }
}

/// The parsed header of a `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// numpy dtype string, e.g. `<i8`.
    pub descr: String,
    /// Whether the array is stored in Fortran order.
    pub fortran_order: bool,
    /// Array shape.
    pub shape: Vec<usize>,
    /// Byte offset of the first element.
    pub data_offset: usize,
}

/// Parses the header at the start of `bytes` (the whole file or at least its header).
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header> {
    let bad = |msg: &str| CoreError::format(path, format!("not a valid .npy file: {msg}"));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("missing \\x93NUMPY magic"));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header"));
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    let end = start + header_len;
    if bytes.len() < end {
        return Err(bad("truncated header"));
    }
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text"))?;
    let descr = dict_value(text, "descr")
        .and_then(|v| {
            let v = v.trim();
            v.strip_prefix('\'')
                .and_then(|s| s.split('\'').next())
                .or_else(|| v.strip_prefix('"').and_then(|s| s.split('"').next()))
        })
        .ok_or_else(|| bad("header has no 'descr'"))?
        .to_string();
    let fortran_order = match dict_value(text, "fortran_order").map(str::trim) {
        Some(v) if v.starts_with("True") => true,
        Some(v) if v.starts_with("False") => false,
        _ => return Err(bad("header has no 'fortran_order'")),
    };
    let shape_txt = dict_value(text, "shape")
        .and_then(|v| {
            let v = v.trim().strip_prefix('(')?;
            Some(&v[..v.find(')')?])
        })
        .ok_or_else(|| bad("header has no 'shape'"))?;
    let mut shape = Vec::new();
    for part in shape_txt
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let p = part.trim_end_matches('L');
        shape.push(p.parse::<usize>().map_err(|_| bad("bad 'shape'"))?);
    }
    Ok(Header {
        descr,
        fortran_order,
        shape,
        data_offset: end,
    })
}

/// The text after `'key':` in a Python dict literal.
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    for quote in ['\'', '"'] {
        let pat = format!("{quote}{key}{quote}");
        if let Some(i) = text.find(&pat) {
            let rest = text[i + pat.len()..].trim_start();
            return rest.strip_prefix(':');
        }
    }
    None
}

/// Memory-maps `path` as a 1-D array of `T`, checking magic, dtype, order, shape and size.
pub fn map_npy<T: NpyElem>(path: &Path) -> Result<Buf<T>> {
    let io = |source| CoreError::Io {
        file: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only. Like every mmap-based reader we rely on the index files not
    // being truncated or rewritten in place while mapped (snapshots are written to new files and
    // swapped atomically).
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
    let header = parse_header(path, &map)?;
    if header.descr != T::DESCR {
        return Err(CoreError::format(
            path,
            format!("dtype is {}, expected {}", header.descr, T::DESCR),
        ));
    }
    if header.shape.len() != 1 {
        return Err(CoreError::format(
            path,
            format!("expected a 1-D array, got shape {:?}", header.shape),
        ));
    }
    let len = header.shape[0];
    let size = std::mem::size_of::<T>();
    let need = len
        .checked_mul(size)
        .and_then(|b| b.checked_add(header.data_offset))
        .ok_or_else(|| CoreError::format(path, "shape is too large"))?;
    if map.len() < need {
        return Err(CoreError::format(
            path,
            format!(
                "file is truncated: shape ({len},) needs {need} bytes, file has {}",
                map.len()
            ),
        ));
    }
    if map.len() > need {
        return Err(CoreError::format(
            path,
            format!(
                "file has {} trailing bytes after shape ({len},) of {}",
                map.len() - need,
                T::DESCR
            ),
        ));
    }
    let offset = header.data_offset;
    if !(map.as_ptr() as usize + offset).is_multiple_of(std::mem::align_of::<T>()) {
        // Never happens for files numpy wrote (headers are padded to 64 bytes); copy to be safe.
        let bytes = &map[offset..need];
        let v = bytes
            .chunks_exact(size)
            .map(|c| {
                let mut a = [0u8; 8];
                a[..size].copy_from_slice(c);
                // SAFETY: T is a sealed plain-old-data type valid for any bit pattern (i32, i64,
                // f32, u16, u32), `size <= 8` bytes read.
                unsafe { std::ptr::read_unaligned(a.as_ptr().cast::<T>()) }
            })
            .collect();
        return Ok(Buf::Owned(v));
    }
    Ok(Buf::Mapped {
        map: Arc::new(map),
        offset,
        len,
        _t: PhantomData,
    })
}

/// Writes `data` as a version 1.0 `.npy` file (header padded to 64 bytes, as numpy does).
pub fn write_npy<T: NpyElem>(path: &Path, data: &[T]) -> Result<()> {
    let io = |source| CoreError::Io {
        file: path.to_path_buf(),
        source,
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({},), }}",
        T::DESCR,
        data.len()
    );
    let total = 10 + header.len() + 1;
    let pad = (64 - total % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| CoreError::format(path, "header too long for format 1.0"))?;
    let mut out = Vec::with_capacity(10 + header.len() + std::mem::size_of_val(data));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &x in data {
        x.put_le(&mut out);
    }
    let mut f = File::create(path).map_err(io)?;
    f.write_all(&out).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Like [`write_npy`], but atomically: writes `<path>.tmp`, syncs it, then renames it over
/// `path`, so a reader (or a crash) never sees a half-written file.
pub fn write_npy_atomic<T: NpyElem>(path: &Path, data: &[T]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    write_npy(&tmp, data)?;
    std::fs::rename(&tmp, path).map_err(|source| CoreError::Io {
        file: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("reelrank_npy_{name}_{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn roundtrip_and_alignment() {
        let d = tmpdir("rt");
        let p = d.join("a.npy");
        write_npy(&p, &[1i64, -2, 3]).unwrap();
        let b = map_npy::<i64>(&p).unwrap();
        assert!(b.is_mapped());
        assert_eq!(&*b, &[1, -2, 3]);
        let p2 = d.join("e.npy");
        write_npy::<f32>(&p2, &[]).unwrap();
        assert!(map_npy::<f32>(&p2).unwrap().is_empty());
        let p3 = d.join("u.npy");
        write_npy_atomic(&p3, &[1u16, 65535]).unwrap();
        assert_eq!(&*map_npy::<u16>(&p3).unwrap(), &[1, 65535]);
        assert!(!d.join("u.npy.tmp").exists());
        write_npy_atomic(&p3, &[7u32, u32::MAX]).unwrap();
        assert_eq!(&*map_npy::<u32>(&p3).unwrap(), &[7, u32::MAX]);
        assert!(map_npy::<u16>(&p3).is_err());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn wrong_dtype_names_file() {
        let d = tmpdir("dt");
        let p = d.join("kw_data.npy");
        write_npy(&p, &[1i32, 2]).unwrap();
        let e = map_npy::<f32>(&p).err().unwrap().to_string();
        assert!(e.contains("kw_data.npy") && e.contains("<i4"), "{e}");
        std::fs::write(&p, b"garbage").unwrap();
        let e = map_npy::<f32>(&p).err().unwrap().to_string();
        assert!(e.contains("kw_data.npy") && e.contains("magic"), "{e}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn parses_v2_and_v3_headers() {
        for major in [2u8, 3] {
            let hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&[major, 0]);
            bytes.extend_from_slice(&u32::try_from(hdr.len()).unwrap().to_le_bytes());
            bytes.extend_from_slice(hdr.as_bytes());
            let h = parse_header(Path::new("x.npy"), &bytes).unwrap();
            assert_eq!(h.descr, "<f4");
            assert_eq!(h.shape, vec![2]);
            assert!(!h.fortran_order);
            assert_eq!(h.data_offset, 12 + hdr.len());
        }
    }
}
