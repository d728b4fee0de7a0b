//! The one error type of whale-train: configuration, data, checkpoint and tensor failures.
//!
//! Every variant names what is wrong in terms a user can act on: the file, the field, what was
//! expected and what was found. Nothing read from disk or from a run.toml may panic; it becomes one
//! of these.

use std::path::PathBuf;

use whale_core::error::WhaleError;

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad value in run.toml or on the command line (`file` is the run.toml, or "<cli>").
    #[error("{file}: invalid `{field}`: {reason}")]
    Config {
        file: PathBuf,
        field: String,
        reason: String,
    },

    /// Unusable training data: a bad shard, a corrupt record, too few tokens for a batch.
    #[error("{file}: {reason}")]
    Data { file: PathBuf, reason: String },

    /// A checkpoint that cannot be written or read back (missing file, bad field, mismatched state).
    #[error("checkpoint {file}: `{field}`: {reason}")]
    Checkpoint {
        file: PathBuf,
        field: String,
        reason: String,
    },

    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Training diverged (non-finite loss or gradient norm).
    #[error("training diverged at step {step}: {what} is {value}")]
    Diverged { step: u64, what: String, value: f64 },

    #[error(transparent)]
    Whale(#[from] WhaleError),

    #[error(transparent)]
    Tensor(#[from] candle_core::Error),

    /// An I/O failure with no file to name (prefer [`TrainError::Io`] where a path is known).
    #[error(transparent)]
    RawIo(#[from] std::io::Error),
}

impl TrainError {
    /// A config error about a field of `file`.
    pub fn config(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        TrainError::Config {
            file: file.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A data error about `file`.
    pub fn data(file: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TrainError::Data {
            file: file.into(),
            reason: reason.into(),
        }
    }

    /// A checkpoint error about a field of `file`.
    pub fn checkpoint(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        TrainError::Checkpoint {
            file: file.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}
