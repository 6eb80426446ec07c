//! Datasets in `.npz` files: `x` (inputs, batch first, uint8, int8 or float32) and `y` (labels
//! or targets), as the fixtures and `examples/` use them.
//!
//! Every array is read through [`read_npy_bounded`]: the `.npy` header is checked against the
//! size its container declares and against [`MAX_ARRAY_BYTES`] before anything is allocated, and
//! the data are read through a reader that fails as soon as the entry yields more than it declared
//! (a zip bomb cannot run away). Fortran-order arrays (`np.asfortranarray`, `x.T`, many pandas
//! exports) are converted to standard (C) order on loading.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ndarray::{ArrayD, Axis};
use ndarray_npy::ReadNpyExt;

use crate::ir::InputTransform;

/// The most bytes one array of a data file may hold once loaded. The largest real dataset the
/// project uses (the autoencoder's evaluation set) holds 21 MB; the loaded data are also copied to
/// f32 per sample for calibration, so this bounds what a data file can make the compiler allocate.
pub const MAX_ARRAY_BYTES: u64 = 2 << 30;

/// Largest `.npy` header accepted (NumPy itself refuses headers above 10,000 bytes by default).
const MAX_HEADER_BYTES: usize = 1 << 16;

/// The raw input values as stored, which is what a compiled model takes.
#[derive(Debug, Clone)]
pub enum RawData {
    U8(ArrayD<u8>),
    I8(ArrayD<i8>),
    F32(ArrayD<f32>),
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: PathBuf,
    pub x: RawData,
    pub y: Vec<f64>,
}

/// An array of one of the element types datasets use, in standard (C) layout.
#[derive(Debug, Clone)]
pub enum NpyArray {
    U8(ArrayD<u8>),
    I8(ArrayD<i8>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
}

impl NpyArray {
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NpyArray::U8(_) => "uint8",
            NpyArray::I8(_) => "int8",
            NpyArray::I32(_) => "int32",
            NpyArray::I64(_) => "int64",
            NpyArray::F32(_) => "float32",
            NpyArray::F64(_) => "float64",
        }
    }
}

/// What a `.npy` header says: element type, order and shape.
#[derive(Debug, Clone, PartialEq)]
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl NpyHeader {
    /// Bytes per element from the type descriptor (`'<f4'`, `'|u1'`, ...).
    fn element_bytes(&self) -> Option<u64> {
        let digits = self.descr.trim_start_matches(['<', '>', '|', '=']).get(1..)?;
        digits.parse().ok()
    }

    /// A readable name for errors: `float64 ('<f8')`.
    fn dtype_label(&self) -> String {
        let name = match self.descr.trim_start_matches(['<', '>', '|', '=']) {
            "u1" => "uint8",
            "i1" => "int8",
            "u2" => "uint16",
            "i2" => "int16",
            "u4" => "uint32",
            "i4" => "int32",
            "u8" => "uint64",
            "i8" => "int64",
            "f2" => "float16",
            "f4" => "float32",
            "f8" => "float64",
            "b1" => "bool",
            _ => return format!("'{}'", self.descr),
        };
        format!("{name} ('{}')", self.descr)
    }
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Reads and parses a `.npy` header, returning it with the bytes it occupied.
fn read_header(r: &mut impl Read) -> Result<(NpyHeader, Vec<u8>)> {
    let mut head = vec![0u8; 8];
    r.read_exact(&mut head).map_err(|_| anyhow!("not a .npy array (shorter than its header)"))?;
    if &head[..6] != NPY_MAGIC {
        bail!("not a .npy array (no NUMPY magic)");
    }
    let len_bytes = match head[6] {
        1 => 2,
        2 | 3 => 4,
        v => bail!("unsupported .npy format version {v}"),
    };
    let mut len = vec![0u8; len_bytes];
    r.read_exact(&mut len).map_err(|_| anyhow!("truncated .npy header"))?;
    let dict_len = len.iter().rev().fold(0usize, |acc, &b| (acc << 8) | b as usize);
    if dict_len > MAX_HEADER_BYTES {
        bail!(".npy header of {dict_len} bytes (more than {MAX_HEADER_BYTES})");
    }
    head.extend_from_slice(&len);
    let mut dict = vec![0u8; dict_len];
    r.read_exact(&mut dict).map_err(|_| anyhow!("truncated .npy header"))?;
    head.extend_from_slice(&dict);
    let text = std::str::from_utf8(&dict).map_err(|_| anyhow!("the .npy header is not text"))?;
    // A header is a flat dict with one tuple of integers: anything nested deeper is no array this
    // reader takes (structured dtypes use lists), and the Python-literal parser backtracks
    // exponentially on deep nesting (a fuzzed 170-byte header took over 10 s).
    if text.contains('[') || text.matches('(').count() > 1 || text.matches('{').count() > 1 {
        bail!("unsupported .npy header {:?} (only plain dtypes: a dict with one shape tuple)", text.trim_end());
    }
    let value: py_literal::Value =
        text.trim_end().parse().map_err(|e| anyhow!("unreadable .npy header {:?} ({e})", text.trim_end()))?;
    let bad = || anyhow!("unreadable .npy header {:?}", text.trim_end());
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    for (k, v) in value.as_dict().ok_or_else(bad)? {
        match k.as_string().map(String::as_str) {
            Some("descr") => descr = v.as_string().cloned(),
            Some("fortran_order") => fortran_order = v.as_boolean(),
            Some("shape") => {
                let dims: Option<Vec<usize>> = v
                    .as_tuple()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|d| d.as_integer().and_then(|i| i.to_string().parse().ok()))
                    .collect();
                shape = dims;
            }
            _ => {}
        }
    }
    match (descr, fortran_order, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok((NpyHeader { descr, fortran_order, shape }, head)),
        _ => Err(bad()),
    }
}

/// Passes at most `limit` bytes through and fails if the source has more: the size a container
/// declares for an entry is a promise the compressed stream need not keep.
struct LimitedReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(io::ErrorKind::InvalidData, "the data run past their declared size")),
            };
        }
        let n = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..n])?;
        self.remaining -= got as u64;
        Ok(got)
    }
}

/// Reads one `.npy` array of `declared_bytes` (the file's length, or the zip entry's declared
/// uncompressed size) from `r`. The header's shape × element size must fit both the declared size
/// and [`MAX_ARRAY_BYTES`] before the array is allocated. Errors do not name the file (the
/// caller does).
pub fn read_npy_bounded(mut r: impl Read, declared_bytes: u64) -> Result<NpyArray> {
    let (header, head_bytes) = read_header(&mut r)?;
    let dtype = header.dtype_label();
    let element = header.element_bytes().ok_or_else(|| anyhow!("unsupported element type {dtype}"))?;
    let data_bytes = header
        .shape
        .iter()
        .try_fold(element, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&b| b <= MAX_ARRAY_BYTES)
        .ok_or_else(|| {
            anyhow!(
                "shape {:?} of {dtype} is more than the {} GiB an array may hold",
                header.shape,
                MAX_ARRAY_BYTES >> 30
            )
        })?;
    let expected = head_bytes.len() as u64 + data_bytes;
    if expected > declared_bytes {
        bail!(
            "the header claims shape {:?} of {dtype} ({data_bytes} bytes) but the file holds {declared_bytes} bytes",
            header.shape
        );
    }
    let rest = LimitedReader { inner: r, remaining: declared_bytes - head_bytes.len() as u64 };
    let reader = io::Cursor::new(head_bytes).chain(rest);
    fn standard<T: Clone>(a: ArrayD<T>) -> ArrayD<T> {
        if a.is_standard_layout() {
            a
        } else {
            a.as_standard_layout().into_owned()
        }
    }
    let read_err = |e: ndarray_npy::ReadNpyError| anyhow!("{e}");
    let descr = header.descr.trim_start_matches(['<', '>', '|', '=']);
    Ok(match descr {
        "u1" => NpyArray::U8(standard(ArrayD::read_npy(reader).map_err(read_err)?)),
        "i1" => NpyArray::I8(standard(ArrayD::read_npy(reader).map_err(read_err)?)),
        "i4" => NpyArray::I32(standard(ArrayD::read_npy(reader).map_err(read_err)?)),
        "i8" => NpyArray::I64(standard(ArrayD::read_npy(reader).map_err(read_err)?)),
        "f4" => NpyArray::F32(standard(ArrayD::read_npy(reader).map_err(read_err)?)),
        "f8" => NpyArray::F64(standard(ArrayD::read_npy(reader).map_err(read_err)?)),
        _ => bail!("unsupported element type {dtype}"),
    })
}

/// Reads a `.npy` file; errors start with its path.
pub fn read_npy_file(path: &Path) -> Result<NpyArray> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let len = file.metadata().with_context(|| format!("{}: cannot read", path.display()))?.len();
    read_npy_bounded(io::BufReader::new(file), len).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Reads every array of an `.npz` file, by name (a `.npy` suffix stripped, as NumPy does).
fn read_npz(path: &Path, keys: &[&str]) -> Result<Vec<NpyArray>> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file))
        .map_err(|e| anyhow!("{}: not a valid .npz file ({e})", path.display()))?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let mut arrays = Vec::new();
    for &key in keys {
        let npy = format!("{key}.npy");
        let Some(entry) = names.iter().find(|n| **n == npy).or_else(|| names.iter().find(|n| *n == key)) else {
            let stripped: Vec<&str> = names.iter().map(|n| n.strip_suffix(".npy").unwrap_or(n)).collect();
            bail!("{}: has no array '{key}' (it has {stripped:?}; expected keys 'x' and 'y')", path.display());
        };
        let file = zip.by_name(entry).map_err(|e| anyhow!("{}: array '{key}': {e}", path.display()))?;
        let declared = file.size();
        arrays.push(read_npy_bounded(file, declared).map_err(|e| anyhow!("{}: array '{key}': {e}", path.display()))?);
    }
    Ok(arrays)
}

/// The first sample (index along the first axis) holding a NaN or an infinity.
fn first_non_finite<T: Copy + Into<f64>>(a: &ArrayD<T>) -> Option<usize> {
    if a.ndim() == 0 {
        return None;
    }
    a.axis_iter(Axis(0)).position(|s| s.iter().any(|&v| !v.into().is_finite()))
}

impl Dataset {
    pub fn load(path: &Path) -> Result<Dataset> {
        let mut arrays = read_npz(path, &["x", "y"])?.into_iter();
        let (x, y) = match (arrays.next(), arrays.next()) {
            (Some(x), Some(y)) => (x, y),
            _ => bail!("{}: internal error: arrays 'x' and 'y' were not read", path.display()),
        };
        let x = match x {
            NpyArray::U8(a) => RawData::U8(a),
            NpyArray::I8(a) => RawData::I8(a),
            NpyArray::F32(a) => {
                if let Some(i) = first_non_finite(&a) {
                    bail!("{}: sample {i} of 'x' holds NaN or infinity; inputs must be finite", path.display());
                }
                RawData::F32(a)
            }
            other => {
                bail!("{}: array 'x' is {}; it must be uint8, int8 or float32", path.display(), other.dtype_name())
            }
        };
        let y: Vec<f64> = match y {
            NpyArray::U8(a) => a.iter().map(|&v| v as f64).collect(),
            NpyArray::I8(a) => a.iter().map(|&v| v as f64).collect(),
            NpyArray::I32(a) => a.iter().map(|&v| v as f64).collect(),
            NpyArray::I64(a) => a.iter().map(|&v| v as f64).collect(),
            NpyArray::F32(a) => a.iter().map(|&v| v as f64).collect(),
            NpyArray::F64(a) => a.iter().copied().collect(),
        };
        let d = Dataset { path: path.to_path_buf(), x, y };
        if d.shape().is_empty() || d.is_empty() {
            bail!("{}: array 'x' has no samples", path.display());
        }
        if d.y.len() != d.len() {
            bail!("{}: 'x' has {} samples but 'y' has {} values", path.display(), d.len(), d.y.len());
        }
        Ok(d)
    }

    pub fn len(&self) -> usize {
        self.shape().first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn shape(&self) -> &[usize] {
        match &self.x {
            RawData::U8(a) => a.shape(),
            RawData::I8(a) => a.shape(),
            RawData::F32(a) => a.shape(),
        }
    }

    /// Elements per sample.
    pub fn sample_len(&self) -> usize {
        self.shape()[1..].iter().product()
    }

    pub fn dtype_name(&self) -> &'static str {
        match self.x {
            RawData::U8(_) => "uint8",
            RawData::I8(_) => "int8",
            RawData::F32(_) => "float32",
        }
    }

    /// Sample `i` as real values, `x · scale + offset`, in the file's element order.
    pub fn real(&self, i: usize, t: InputTransform) -> Vec<f32> {
        // Indexing the sample (not slicing the buffer) is right for any memory layout.
        let f = |v: f32| v * t.scale + t.offset;
        match &self.x {
            RawData::U8(a) => a.index_axis(Axis(0), i).iter().map(|&v| f(v as f32)).collect(),
            RawData::I8(a) => a.index_axis(Axis(0), i).iter().map(|&v| f(v as f32)).collect(),
            RawData::F32(a) => a.index_axis(Axis(0), i).iter().map(|&v| f(v)).collect(),
        }
    }

    /// Sample `i`'s raw values as f32 (exact for uint8 and int8), in the file's element order.
    pub fn raw_f32(&self, i: usize) -> Vec<f32> {
        self.real(i, InputTransform::default())
    }

    /// Sample `i` as the raw bytes a compiled model takes (f32 little-endian for float data).
    pub fn raw(&self, i: usize) -> Vec<u8> {
        match &self.x {
            RawData::U8(a) => a.index_axis(Axis(0), i).iter().copied().collect(),
            RawData::I8(a) => a.index_axis(Axis(0), i).iter().map(|&v| v as u8).collect(),
            RawData::F32(a) => a.index_axis(Axis(0), i).iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// Checks that each sample has the model's input size.
    pub fn check_sample_len(&self, expected: usize) -> Result<()> {
        if self.sample_len() != expected {
            bail!(
                "{}: samples of 'x' have shape {:?} ({} values), the model's input takes {expected}",
                self.path.display(),
                &self.shape()[1..],
                self.sample_len()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy_bytes(header: &str, data: &[u8]) -> Vec<u8> {
        let mut dict = header.to_string();
        while !(10 + dict.len() + 1).is_multiple_of(64) {
            dict.push(' ');
        }
        dict.push('\n');
        let mut out = NPY_MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn fortran_order_arrays_are_read_in_logical_order() {
        // Column-major [[1, 2, 3], [4, 5, 6]]: the bytes hold the columns.
        let bytes = npy_bytes("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3), }", &[1, 4, 2, 5, 3, 6]);
        let NpyArray::U8(a) = read_npy_bounded(&bytes[..], bytes.len() as u64).unwrap() else { panic!("not u8") };
        assert!(a.is_standard_layout());
        assert_eq!(a.as_slice().unwrap(), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn sizes_are_checked_before_allocating() {
        // 10^12 float32 samples claimed by a 128-byte file.
        let bytes = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 8), }", &[]);
        let e = read_npy_bounded(&bytes[..], bytes.len() as u64).unwrap_err().to_string();
        assert!(e.contains("2 GiB"), "{e}");
        // Within the cap but more than the container declares.
        let bytes = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 8), }", &[0; 16]);
        let e = read_npy_bounded(&bytes[..], bytes.len() as u64).unwrap_err().to_string();
        assert!(e.contains("32000 bytes") && e.contains(&format!("holds {} bytes", bytes.len())), "{e}");
        // A stream longer than it declared stops at the declared size.
        let bytes = npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", &[7; 4096]);
        let e = read_npy_bounded(&bytes[..], bytes.len() as u64 - 4092).unwrap_err().to_string();
        assert!(e.contains("past their declared size"), "{e}");
    }

    #[test]
    fn nested_headers_are_refused_without_parsing() {
        // libFuzzer's npz timeout (compiler/fuzz): deep brackets in the shape made the parser
        // backtrack for seconds.
        let deep = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': (2, {}2) }}", "[".repeat(120));
        let mut npy = NPY_MAGIC.to_vec();
        npy.extend_from_slice(&[1, 0]);
        npy.extend_from_slice(&(deep.len() as u16).to_le_bytes());
        npy.extend_from_slice(deep.as_bytes());
        // The pre-check's message, not the parser's ("unreadable"): the parser never ran.
        let err = read_header(&mut npy.as_slice()).expect_err("nested header");
        assert!(err.to_string().contains("unsupported .npy header"), "{err}");
    }

    #[test]
    fn unsupported_dtypes_are_named() {
        let bytes = npy_bytes("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", &[0; 16]);
        let e = read_npy_bounded(&bytes[..], bytes.len() as u64).unwrap_err().to_string();
        assert!(e.contains("'<c16'"), "{e}");
        let bytes = npy_bytes("{'descr': '<u2', 'fortran_order': False, 'shape': (1,), }", &[0; 2]);
        let e = read_npy_bounded(&bytes[..], bytes.len() as u64).unwrap_err().to_string();
        assert!(e.contains("uint16"), "{e}");
    }
}
