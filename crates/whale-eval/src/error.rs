use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Task(String),
    /// `at` says where in the file: "line 3" (JSONL), "row 3" (Parquet).
    #[error("{file}: {at}: {msg}")]
    Data { file: PathBuf, at: String, msg: String },
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Text(#[from] whale_text::TextError),
    #[error(transparent)]
    Submit(#[from] whale_engine::SubmitError),
    #[error("generation failed: {0}")]
    Generation(String),
}
