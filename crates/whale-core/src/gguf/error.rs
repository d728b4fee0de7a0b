//! Errors of the GGUF reader.
//!
//! A GGUF file comes from outside (a download, a user's disk), so every structural problem —
//! wrong magic, an unsupported version, a count or length larger than the bytes that are left,
//! an unknown value type, a tensor that points past the end — is reported as a [`GgufError`]
//! that names the file and, where it helps, the byte offset and the metadata key or tensor.
//! Nothing in the reader panics on bad input.

use std::fmt;
use std::path::PathBuf;

/// An error reading a GGUF file: the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct GgufError {
    /// The file (or the name given to an in-memory buffer).
    pub path: PathBuf,
    /// What is wrong.
    pub kind: GgufErrorKind,
}

impl GgufError {
    pub fn new(path: impl Into<PathBuf>, kind: GgufErrorKind) -> Self {
        GgufError { path: path.into(), kind }
    }
}

/// What is wrong with a GGUF file.
#[derive(Debug)]
pub enum GgufErrorKind {
    /// The file could not be opened, read or mapped.
    Io(std::io::Error),
    /// The first four bytes are not `GGUF`.
    BadMagic { found: Vec<u8> },
    /// A version other than 2 or 3.
    UnsupportedVersion { version: u32 },
    /// A read of `needed` bytes at `offset` ran past the end of the file.
    Truncated { what: String, offset: u64, needed: u64, available: u64 },
    /// A count read from the file is larger than the bytes left could possibly hold.
    CountTooLarge { what: String, offset: u64, count: u64, min_bytes_each: u64, available: u64 },
    /// A metadata value type id outside 0..=12.
    UnknownValueType { what: String, offset: u64, type_id: u32 },
    /// Arrays nested deeper than the reader allows.
    TooDeep { what: String, offset: u64, max_depth: usize },
    /// A key or tensor name that is not valid UTF-8.
    InvalidUtf8 { what: String, offset: u64 },
    /// The same metadata key twice.
    DuplicateKey { key: String },
    /// The same tensor name twice.
    DuplicateTensor { name: String },
    /// `general.alignment` is zero or not a power of two.
    BadAlignment { alignment: u64 },
    /// A tensor with more dimensions than GGML supports, or an empty/overflowing shape.
    BadTensorShape { name: String, reason: String },
    /// A tensor type id this reader does not know (only an error where the size is needed).
    UnknownTensorType { name: String, type_id: u32 },
    /// A tensor whose offset is not aligned, or whose bytes lie past the end of the file.
    TensorOutOfBounds { name: String, reason: String },
    /// A metadata key the caller needs is absent.
    MissingKey { key: String },
    /// A metadata key holds another type than the caller needs.
    WrongType { key: String, expected: String, found: String },
}

impl fmt::Display for GgufErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GgufErrorKind::*;
        match self {
            Io(e) => write!(f, "{e}"),
            BadMagic { found } => write!(
                f,
                "not a GGUF file: expected magic \"GGUF\" (47 47 55 46), found {}",
                hex(found)
            ),
            UnsupportedVersion { version } => {
                write!(f, "unsupported GGUF version {version}; supported: 2, 3")?;
                if *version > 3 && (1..=3).contains(&version.swap_bytes()) {
                    write!(f, " (this looks like a big-endian GGUF, which is not supported)")?;
                }
                Ok(())
            }
            Truncated { what, offset, needed, available } => write!(
                f,
                "truncated: {what} needs {needed} bytes at offset {offset}, only {available} left"
            ),
            CountTooLarge { what, offset, count, min_bytes_each, available } => write!(
                f,
                "{what} at offset {offset} claims {count} entries of at least {min_bytes_each} \
                 bytes each, but only {available} bytes are left"
            ),
            UnknownValueType { what, offset, type_id } => write!(
                f,
                "{what} at offset {offset} has unknown value type {type_id} (known: 0..=12)"
            ),
            TooDeep { what, offset, max_depth } => write!(
                f,
                "{what} at offset {offset}: arrays nested deeper than {max_depth} levels"
            ),
            InvalidUtf8 { what, offset } => write!(f, "{what} at offset {offset} is not valid UTF-8"),
            DuplicateKey { key } => write!(f, "metadata key `{key}` appears twice"),
            DuplicateTensor { name } => write!(f, "tensor `{name}` appears twice"),
            BadAlignment { alignment } => write!(
                f,
                "general.alignment = {alignment}; it must be a non-zero power of two"
            ),
            BadTensorShape { name, reason } => write!(f, "tensor `{name}`: {reason}"),
            UnknownTensorType { name, type_id } => {
                write!(f, "tensor `{name}` has unknown ggml type id {type_id}")
            }
            TensorOutOfBounds { name, reason } => write!(f, "tensor `{name}`: {reason}"),
            MissingKey { key } => write!(f, "metadata key `{key}` is missing"),
            WrongType { key, expected, found } => {
                write!(f, "metadata key `{key}`: expected {expected}, found {found}")
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "an empty file".to_string();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}
