//! A writer for GGUF v3 files (the format [`super::GgufFile`] reads; GGUF spec, v3 layout).
//!
//! Build a [`GgufWriter`] from metadata KV pairs (every value type, arrays of arrays included)
//! and tensors (name, GGML-order dims, type, bytes), then [`GgufWriter::write`] it. Tensor data
//! may be given up front or produced lazily at write time ([`TensorData::Lazy`]), so a
//! converter can quantize one tensor at a time instead of holding the whole model in memory.
//!
//! Layout written: `"GGUF"`, `u32 3`, `u64 n_tensors`, `u64 n_kv`, the KV pairs, the tensor
//! infos (offsets relative to the data section, each a multiple of the alignment), zero
//! padding to the alignment, then each tensor's bytes followed by zero padding to the
//! alignment (as llama.cpp's `gguf_write_to_file` does). The alignment is
//! `general.alignment` (u32) when set, else 32.
//!
//! The file is written to a temporary file in the target directory, flushed and fsynced, then
//! renamed over the target: a crash or an error never leaves a truncated file at `path`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::parse::{DEFAULT_ALIGNMENT, GGUF_MAGIC};
use super::tensor::{GgmlType, GGML_MAX_DIMS};
use super::value::{GgufArray, GgufValue};
use crate::{Result, WhaleError};

/// A tensor's bytes: in memory now, or produced when the file is written.
pub enum TensorData {
    Bytes(Vec<u8>),
    /// Called once, while writing; must return exactly the tensor's byte size.
    Lazy(Box<dyn FnOnce() -> Result<Vec<u8>> + Send>),
}

impl std::fmt::Debug for TensorData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TensorData::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            TensorData::Lazy(_) => f.write_str("Lazy"),
        }
    }
}

#[derive(Debug)]
struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    n_bytes: u64,
    data: TensorData,
}

/// Metadata and tensors of a GGUF file to be written.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, GgufValue)>,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor>,
    names: HashSet<String>,
}

fn invalid(msg: String) -> WhaleError {
    WhaleError::InvalidInput(msg)
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata pair; a key given twice is an error (GGUF keys are unique).
    pub fn add_metadata(&mut self, key: impl Into<String>, value: GgufValue) -> Result<()> {
        let key = key.into();
        if key == "general.alignment" {
            match value {
                GgufValue::U32(a) if a.is_power_of_two() => {}
                ref v => {
                    return Err(invalid(format!(
                        "general.alignment must be a u32 power of two, found {v:?}"
                    )))
                }
            }
        }
        if !self.keys.insert(key.clone()) {
            return Err(invalid(format!("GGUF metadata key `{key}` added twice")));
        }
        self.metadata.push((key, value));
        Ok(())
    }

    /// Sets `general.alignment` (a power of two; 32 when never set).
    pub fn set_alignment(&mut self, alignment: u32) -> Result<()> {
        self.metadata.retain(|(k, _)| k != "general.alignment");
        self.keys.remove("general.alignment");
        self.add_metadata("general.alignment", GgufValue::U32(alignment))
    }

    /// The data alignment the file will use.
    pub fn alignment(&self) -> u64 {
        match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            Some((_, GgufValue::U32(a))) => *a as u64,
            _ => DEFAULT_ALIGNMENT,
        }
    }

    /// Adds a tensor. `dims` are in GGML order (`dims[0]` contiguous, i.e. the reverse of a
    /// row-major shape); its first dimension must be a whole number of `ty` blocks, and
    /// `Bytes` data must have exactly the size the shape and type imply.
    pub fn add_tensor(&mut self, name: impl Into<String>, dims: &[u64], ty: GgmlType, data: TensorData) -> Result<()> {
        let name = name.into();
        if dims.is_empty() || dims.len() > GGML_MAX_DIMS {
            return Err(invalid(format!(
                "tensor `{name}`: {} dimensions; GGUF allows 1 to {GGML_MAX_DIMS}",
                dims.len()
            )));
        }
        if dims[0] % ty.block_size() != 0 {
            return Err(invalid(format!(
                "tensor `{name}`: innermost dimension {} is not a multiple of the {ty} block size {}",
                dims[0],
                ty.block_size()
            )));
        }
        let n_bytes = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|n| (n / ty.block_size()).checked_mul(ty.type_size()))
            .ok_or_else(|| invalid(format!("tensor `{name}`: shape {dims:?} overflows")))?;
        if let TensorData::Bytes(b) = &data {
            if b.len() as u64 != n_bytes {
                return Err(invalid(format!(
                    "tensor `{name}` ({ty}, dims {dims:?}): expected {n_bytes} bytes, found {}",
                    b.len()
                )));
            }
        }
        if !self.names.insert(name.clone()) {
            return Err(invalid(format!("GGUF tensor `{name}` added twice")));
        }
        self.tensors.push(PendingTensor { name, dims: dims.to_vec(), ty, n_bytes, data });
        Ok(())
    }

    /// Writes the file atomically (temporary file, fsync, rename). Consumes the writer
    /// because lazy tensor data is produced once.
    pub fn write(self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let tmp = temp_path(path);
        let result = (|| {
            let file = File::create(&tmp).map_err(|e| WhaleError::io(&tmp, e))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            self.write_to(&mut w).map_err(|e| match e {
                WriteError::Io(e) => WhaleError::io(&tmp, e),
                WriteError::Data(e) => e,
            })?;
            let file = w.into_inner().map_err(|e| WhaleError::io(&tmp, e.into_error()))?;
            file.sync_all().map_err(|e| WhaleError::io(&tmp, e))?;
            drop(file);
            std::fs::rename(&tmp, path).map_err(|e| WhaleError::io(path, e))?;
            // Persist the rename itself (best effort: not every platform can open a directory).
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Writes the GGUF bytes to any writer (no atomicity; see [`GgufWriter::write`]).
    pub fn write_to(self, w: &mut impl Write) -> std::result::Result<(), WriteError> {
        let alignment = self.alignment();
        let mut pos = 0u64;
        fn put(w: &mut impl Write, pos: &mut u64, b: &[u8]) -> std::io::Result<()> {
            *pos += b.len() as u64;
            w.write_all(b)
        }
        let mut header = Vec::new();
        header.extend_from_slice(GGUF_MAGIC);
        header.extend_from_slice(&3u32.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_string(&mut header, k);
            header.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
            put_value(&mut header, v);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_string(&mut header, &t.name);
            header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&t.ty.id().to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            offset += t.n_bytes.next_multiple_of(alignment);
        }
        put(w, &mut pos, &header)?;
        let pad = pos.next_multiple_of(alignment) - pos;
        put(w, &mut pos, &zeros(pad))?;
        for t in self.tensors {
            let bytes = match t.data {
                TensorData::Bytes(b) => b,
                TensorData::Lazy(f) => f().map_err(WriteError::Data)?,
            };
            if bytes.len() as u64 != t.n_bytes {
                return Err(WriteError::Data(invalid(format!(
                    "tensor `{}` ({}, dims {:?}): expected {} bytes, found {}",
                    t.name,
                    t.ty,
                    t.dims,
                    t.n_bytes,
                    bytes.len()
                ))));
            }
            put(w, &mut pos, &bytes)?;
            let pad = pos.next_multiple_of(alignment) - pos;
        put(w, &mut pos, &zeros(pad))?;
        }
        w.flush()?;
        Ok(())
    }
}

/// Why [`GgufWriter::write_to`] failed: the output, or a tensor's data.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Data(WhaleError),
}

fn zeros(n: u64) -> Vec<u8> {
    vec![0u8; n as usize]
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    use GgufValue as V;
    match v {
        V::U8(x) => out.push(*x),
        V::I8(x) => out.push(*x as u8),
        V::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::Bool(x) => out.push(*x as u8),
        V::String(s) => put_string(out, s),
        V::Array(a) => put_array(out, a),
        V::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        V::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

fn put_array(out: &mut Vec<u8>, a: &GgufArray) {
    use GgufArray as A;
    out.extend_from_slice(&(a.elem_type() as u32).to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr, $f:expr) => {
            for x in $v {
                out.extend_from_slice(&$f(*x));
            }
        };
    }
    match a {
        A::U8(v) => out.extend_from_slice(v),
        A::I8(v) => each!(v, |x: i8| [x as u8]),
        A::U16(v) => each!(v, u16::to_le_bytes),
        A::I16(v) => each!(v, i16::to_le_bytes),
        A::U32(v) => each!(v, u32::to_le_bytes),
        A::I32(v) => each!(v, i32::to_le_bytes),
        A::F32(v) => each!(v, f32::to_le_bytes),
        A::Bool(v) => each!(v, |x: bool| [x as u8]),
        A::U64(v) => each!(v, u64::to_le_bytes),
        A::I64(v) => each!(v, i64::to_le_bytes),
        A::F64(v) => each!(v, f64::to_le_bytes),
        A::String(v) => v.iter().for_each(|s| put_string(out, s)),
        A::Array(v) => v.iter().for_each(|inner| put_array(out, inner)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;

    fn all_values() -> Vec<(&'static str, GgufValue)> {
        use GgufArray as A;
        use GgufValue as V;
        vec![
            ("t.u8", V::U8(200)),
            ("t.i8", V::I8(-100)),
            ("t.u16", V::U16(60000)),
            ("t.i16", V::I16(-30000)),
            ("t.u32", V::U32(4_000_000_000)),
            ("t.i32", V::I32(-2_000_000_000)),
            ("t.f32", V::F32(1.5e-7)),
            ("t.bool", V::Bool(true)),
            ("t.string", V::String("héllo <|im_start|>".into())),
            ("t.u64", V::U64(u64::MAX - 1)),
            ("t.i64", V::I64(i64::MIN + 1)),
            ("t.f64", V::F64(-2.5e300)),
            ("a.u8", V::Array(A::U8(vec![1, 2, 255]))),
            ("a.i8", V::Array(A::I8(vec![-1, 127]))),
            ("a.u16", V::Array(A::U16(vec![7, 65535]))),
            ("a.i16", V::Array(A::I16(vec![-7]))),
            ("a.u32", V::Array(A::U32(vec![]))),
            ("a.i32", V::Array(A::I32(vec![-5, 6, 151_643]))),
            ("a.f32", V::Array(A::F32(vec![0.5, -0.25, f32::MAX]))),
            ("a.bool", V::Array(A::Bool(vec![true, false, true]))),
            ("a.string", V::Array(A::String(vec!["a".into(), "".into(), "Ġthe".into()]))),
            ("a.u64", V::Array(A::U64(vec![u64::MAX]))),
            ("a.i64", V::Array(A::I64(vec![-1, 1]))),
            ("a.f64", V::Array(A::F64(vec![1e-300]))),
            (
                "a.nested",
                V::Array(A::Array(vec![A::U8(vec![1]), A::String(vec!["x".into()]), A::Array(vec![A::I32(vec![3])])])),
            ),
        ]
    }

    #[test]
    fn round_trip_through_the_reader() {
        let dir = tempfile_dir();
        let path = dir.join("rt.gguf");
        for alignment in [32u32, 64, 1] {
            let mut w = GgufWriter::new();
            for (k, v) in all_values() {
                w.add_metadata(k, v).unwrap();
            }
            if alignment != 32 {
                w.set_alignment(alignment).unwrap();
            }
            let a: Vec<u8> = (0..3 * 64 / 32 * 34).map(|i| i as u8).collect(); // Q8_0 [3, 64]
            let b: Vec<u8> = (0..5 * 4).map(|i| (i * 7) as u8).collect(); // F32 [5]
            let c: Vec<u8> = (0..144).map(|i| (255 - i) as u8).collect(); // Q4_K [256]
            w.add_tensor("blk.0.a", &[64, 3], GgmlType::Q8_0, TensorData::Bytes(a.clone())).unwrap();
            w.add_tensor("b", &[5], GgmlType::F32, TensorData::Bytes(b.clone())).unwrap();
            let c2 = c.clone();
            w.add_tensor("c", &[256, 1, 1, 1], GgmlType::Q4_K, TensorData::Lazy(Box::new(move || Ok(c2))))
                .unwrap();
            w.write(&path).unwrap();

            let f = GgufFile::open(&path).unwrap();
            assert_eq!(f.version(), 3);
            assert_eq!(f.alignment(), alignment as u64);
            assert_eq!(f.data_offset() % alignment as u64, 0);
            for (k, v) in all_values() {
                assert_eq!(f.get(k), Some(&v), "{k}");
            }
            let keys: Vec<&str> = f.metadata().map(|(k, _)| k).collect();
            assert_eq!(&keys[..3], &["t.u8", "t.i8", "t.u16"], "file order kept");
            for (name, dims, ty, bytes) in [
                ("blk.0.a", vec![64u64, 3], GgmlType::Q8_0, &a),
                ("b", vec![5], GgmlType::F32, &b),
                ("c", vec![256, 1, 1, 1], GgmlType::Q4_K, &c),
            ] {
                let t = f.tensor(name).unwrap();
                assert_eq!(t.dims, dims);
                assert_eq!(t.ggml_type, Some(ty));
                assert_eq!(t.offset % alignment as u64, 0);
                assert_eq!(f.tensor_data(t).unwrap(), bytes.as_slice(), "{name}");
            }
        }
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("rt.gguf")]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_inputs_are_errors_and_leave_no_file() {
        let mut w = GgufWriter::new();
        w.add_metadata("k", GgufValue::U8(1)).unwrap();
        let e = w.add_metadata("k", GgufValue::U8(2)).unwrap_err().to_string();
        assert!(e.contains("`k` added twice"), "{e}");
        let e = w.add_metadata("general.alignment", GgufValue::U32(48)).unwrap_err().to_string();
        assert!(e.contains("power of two"), "{e}");
        let e = w.add_tensor("t", &[100], GgmlType::Q8_0, TensorData::Bytes(vec![])).unwrap_err().to_string();
        assert!(e.contains("not a multiple of the Q8_0 block size 32"), "{e}");
        let e = w.add_tensor("t", &[32], GgmlType::Q8_0, TensorData::Bytes(vec![0; 33])).unwrap_err().to_string();
        assert!(e.contains("expected 34 bytes, found 33"), "{e}");
        w.add_tensor("t", &[32], GgmlType::Q8_0, TensorData::Bytes(vec![0; 34])).unwrap();
        let e = w.add_tensor("t", &[32], GgmlType::Q8_0, TensorData::Bytes(vec![0; 34])).unwrap_err().to_string();
        assert!(e.contains("`t` added twice"), "{e}");
        // A lazy tensor of the wrong size fails the write; the target is not created or touched.
        w.add_tensor("u", &[4], GgmlType::F32, TensorData::Lazy(Box::new(|| Ok(vec![0; 3])))).unwrap();
        let dir = tempfile_dir();
        let path = dir.join("bad.gguf");
        std::fs::write(&path, b"previous contents").unwrap();
        let e = w.write(&path).unwrap_err().to_string();
        assert!(e.contains("tensor `u`") && e.contains("expected 16 bytes, found 3"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"previous contents");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "temporary file removed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir()
            .join(format!("whale-gguf-write-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
