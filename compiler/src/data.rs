//! Datasets in `.npz` files: `x` (inputs, batch first, uint8, int8 or float32) and `y` (labels
//! or targets), as the fixtures and `examples/` use them.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ndarray::ArrayD;
use ndarray_npy::NpzReader;

use crate::ir::InputTransform;

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

fn read_array<T: ndarray_npy::ReadableElement>(path: &Path, key: &str) -> Result<Option<ArrayD<T>>> {
    let mut npz =
        NpzReader::new(File::open(path)?).map_err(|e| anyhow!("{}: not a valid .npz file ({e})", path.display()))?;
    let names = npz.names().map_err(|e| anyhow!("{}: cannot list arrays ({e})", path.display()))?;
    let entry = names.iter().find(|n| n.as_str() == key || n.as_str() == format!("{key}.npy")).cloned();
    let Some(entry) = entry else {
        bail!("{}: has no array '{key}' (it has {:?}; expected keys 'x' and 'y')", path.display(), names);
    };
    Ok(npz.by_name::<ndarray::OwnedRepr<T>, ndarray::IxDyn>(&entry).ok())
}

impl Dataset {
    pub fn load(path: &Path) -> Result<Dataset> {
        File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let x = if let Some(a) = read_array::<u8>(path, "x")? {
            RawData::U8(a)
        } else if let Some(a) = read_array::<i8>(path, "x")? {
            RawData::I8(a)
        } else if let Some(a) = read_array::<f32>(path, "x")? {
            RawData::F32(a)
        } else {
            bail!("{}: array 'x' must be uint8, int8 or float32", path.display());
        };
        let y: Vec<f64> = if let Some(a) = read_array::<i64>(path, "y")? {
            a.iter().map(|&v| v as f64).collect()
        } else if let Some(a) = read_array::<f32>(path, "y")? {
            a.iter().map(|&v| v as f64).collect()
        } else if let Some(a) = read_array::<f64>(path, "y")? {
            a.iter().copied().collect()
        } else if let Some(a) = read_array::<i32>(path, "y")? {
            a.iter().map(|&v| v as f64).collect()
        } else {
            bail!("{}: array 'y' must be int64, int32, float32 or float64", path.display());
        };
        let d = Dataset { path: path.to_path_buf(), x, y };
        if d.is_empty() {
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
        let n = self.sample_len();
        let r = i * n..(i + 1) * n;
        let f = |v: f32| v * t.scale + t.offset;
        match &self.x {
            RawData::U8(a) => a.as_slice().map(|s| s[r].iter().map(|&v| f(v as f32)).collect()),
            RawData::I8(a) => a.as_slice().map(|s| s[r].iter().map(|&v| f(v as f32)).collect()),
            RawData::F32(a) => a.as_slice().map(|s| s[r].iter().map(|&v| f(v)).collect()),
        }
        .unwrap_or_default()
    }

    /// Sample `i`'s raw values as f32 (exact for uint8 and int8), in the file's element order.
    pub fn raw_f32(&self, i: usize) -> Vec<f32> {
        self.real(i, InputTransform::default())
    }

    /// Sample `i` as the raw bytes a compiled model takes (f32 little-endian for float data).
    pub fn raw(&self, i: usize) -> Vec<u8> {
        let n = self.sample_len();
        let r = i * n..(i + 1) * n;
        match &self.x {
            RawData::U8(a) => a.as_slice().map(|s| s[r].to_vec()),
            RawData::I8(a) => a.as_slice().map(|s| s[r].iter().map(|&v| v as u8).collect()),
            RawData::F32(a) => a.as_slice().map(|s| s[r].iter().flat_map(|v| v.to_le_bytes()).collect()),
        }
        .unwrap_or_default()
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
