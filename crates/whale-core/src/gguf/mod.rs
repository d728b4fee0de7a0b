//! A reader for GGUF files (llama.cpp's model format, spec versions 2 and 3).
//!
//! Why: GGUF is how most quantized DeepSeek/Qwen checkpoints are distributed, and its header
//! alone carries the tokenizer (vocabulary, merges, special ids, chat template). The file is
//! memory-mapped, the header (KV metadata + tensor infos) is parsed into owned values, and
//! tensor bytes stay in the map until someone asks for them.
//!
//! Layout (little-endian): `"GGUF"`, `u32 version`, `u64 n_tensors`, `u64 n_kv`, the KV pairs
//! (`string key`, `u32 type`, value), the tensor infos (`string name`, `u32 n_dims`,
//! `u64 dims[n_dims]`, `u32 ggml_type`, `u64 offset`), padding to `general.alignment`
//! (default 32), then the data section; tensor offsets are relative to its start.
//!
//! Every structural problem is a [`GgufError`] naming the file; nothing panics on bad input.

mod access;
mod cursor;
mod error;
mod parse;
mod tensor;
mod value;
pub mod write;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use access::FromGgufValue;
pub use error::{GgufError, GgufErrorKind};
pub use tensor::{GgmlType, TensorInfo, GGML_MAX_DIMS};
pub use value::{GgufArray, GgufValue, GgufValueType};
pub use write::{GgufWriter, TensorData};

/// The bytes behind a [`GgufFile`]: a read-only memory map, or a buffer owned in memory.
enum Storage {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// How strictly tensor extents are checked when a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extents {
    /// Every tensor must have a known type and lie inside the file.
    Check,
    /// Only the header must be complete (for reading metadata of partial downloads).
    Skip,
}

/// An opened GGUF file: its metadata, its tensor infos, and (mapped) its bytes.
pub struct GgufFile {
    path: PathBuf,
    storage: Storage,
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("n_kv", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl GgufFile {
    /// Maps and parses a complete GGUF file: the header, and every tensor's type and extent
    /// checked against the file's length.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        Self::open_with(path.as_ref(), Extents::Check)
    }

    /// Maps and parses only the header: tensors with unknown types or extents past the end of
    /// the file are accepted (their data is checked when it is asked for). For reading the
    /// metadata (e.g. the tokenizer) of a partial download.
    pub fn open_metadata(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        Self::open_with(path.as_ref(), Extents::Skip)
    }

    /// Parses a GGUF file held in memory; `name` stands for the path in error messages.
    /// Tensor extents are checked as by [`GgufFile::open`].
    pub fn from_bytes(bytes: Vec<u8>, name: impl Into<PathBuf>) -> Result<Self, GgufError> {
        Self::parse(name.into(), Storage::Owned(bytes), Extents::Check)
    }

    /// Like [`GgufFile::from_bytes`], checking only the header (see [`GgufFile::open_metadata`]).
    pub fn metadata_from_bytes(
        bytes: Vec<u8>,
        name: impl Into<PathBuf>,
    ) -> Result<Self, GgufError> {
        Self::parse(name.into(), Storage::Owned(bytes), Extents::Skip)
    }

    fn open_with(path: &Path, extents: Extents) -> Result<Self, GgufError> {
        let io = |e| GgufError::new(path, GgufErrorKind::Io(e));
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let storage = if len == 0 {
            Storage::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only and private to this struct. As with every mmap, a
            // file truncated or rewritten by another process while mapped is undefined
            // behaviour; model files are treated as immutable while in use.
            Storage::Mmap(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
        };
        Self::parse(path.to_path_buf(), storage, extents)
    }

    fn parse(path: PathBuf, storage: Storage, extents: Extents) -> Result<Self, GgufError> {
        let h = match parse::parse_header(storage.bytes()) {
            Ok(h) => h,
            Err(kind) => return Err(GgufError::new(path, kind)),
        };
        let tensor_index =
            h.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let file = GgufFile {
            path,
            storage,
            version: h.version,
            metadata: h.metadata,
            index: h.index,
            tensors: h.tensors,
            tensor_index,
            alignment: h.alignment,
            data_offset: h.data_offset,
        };
        if extents == Extents::Check {
            for t in &file.tensors {
                file.tensor_range(t)?;
            }
        }
        Ok(file)
    }

    fn err(&self, kind: GgufErrorKind) -> GgufError {
        GgufError::new(&self.path, kind)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// `general.alignment`, or 32.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// Byte offset of the data section in the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
    /// Total length of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.storage.bytes().len() as u64
    }

    /// All metadata pairs, in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &GgufValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.index.get(key).map(|&i| &self.metadata[i].1)
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The value of `key` converted to `T`; a missing key or another type is an error naming
    /// the key, the expected and the found type. Integers convert between widths when the
    /// value fits (writers disagree on e.g. `u32` vs `i32` for token ids).
    pub fn get_as<'a, T: FromGgufValue<'a>>(&'a self, key: &str) -> Result<T, GgufError> {
        match self.get_opt(key)? {
            Some(v) => Ok(v),
            None => Err(self.err(GgufErrorKind::MissingKey { key: key.to_string() })),
        }
    }

    /// Like [`GgufFile::get_as`], with `Ok(None)` for a missing key.
    pub fn get_opt<'a, T: FromGgufValue<'a>>(&'a self, key: &str) -> Result<Option<T>, GgufError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        T::from_value(v).map(Some).ok_or_else(|| {
            self.err(GgufErrorKind::WrongType {
                key: key.to_string(),
                expected: T::EXPECTED.to_string(),
                found: describe_found(v),
            })
        })
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        self.get_as(key)
    }
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        self.get_as(key)
    }
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get_as(key)
    }
    pub fn get_i32(&self, key: &str) -> Result<i32, GgufError> {
        self.get_as(key)
    }
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        self.get_as(key)
    }
    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        self.get_as(key)
    }
    pub fn get_str_array(&self, key: &str) -> Result<&[String], GgufError> {
        self.get_as(key)
    }
    pub fn get_f32_array(&self, key: &str) -> Result<&[f32], GgufError> {
        self.get_as(key)
    }
    pub fn get_i32_array(&self, key: &str) -> Result<&[i32], GgufError> {
        self.get_as(key)
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// Absolute byte range of a tensor in the file, checked against the file's length.
    pub fn tensor_range(&self, t: &TensorInfo) -> Result<std::ops::Range<u64>, GgufError> {
        let Some(n_bytes) = t.n_bytes else {
            return Err(self.err(GgufErrorKind::UnknownTensorType {
                name: t.name.clone(),
                type_id: t.type_id,
            }));
        };
        let start = self.data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(n_bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= self.file_len() => Ok(start..end),
            _ => Err(self.err(GgufErrorKind::TensorOutOfBounds {
                name: t.name.clone(),
                reason: format!(
                    "{n_bytes} bytes at data offset {} (file offset {}+{}) run past the end of \
                     the file ({} bytes)",
                    t.offset,
                    self.data_offset,
                    t.offset,
                    self.file_len()
                ),
            })),
        }
    }

    /// The raw bytes of a tensor (still quantized, exactly as stored).
    pub fn tensor_data(&self, t: &TensorInfo) -> Result<&[u8], GgufError> {
        let r = self.tensor_range(t)?;
        Ok(&self.storage.bytes()[r.start as usize..r.end as usize])
    }
}

fn describe_found(v: &GgufValue) -> String {
    match v.as_integer() {
        Some(i) => format!("{} value {i}", v.value_type()),
        None => v.type_description(),
    }
}
