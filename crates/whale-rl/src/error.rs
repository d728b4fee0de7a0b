#[derive(Debug, thiserror::Error)]
pub enum RlError {
    #[error("invalid GRPO setting: {0}")]
    Config(String),
    #[error(transparent)]
    Model(#[from] whale_core::WhaleError),
    #[error(transparent)]
    Eval(#[from] whale_eval::EvalError),
    #[error("{0}: {1}")]
    Io(std::path::PathBuf, #[source] std::io::Error),
}

impl From<candle_core::Error> for RlError {
    fn from(e: candle_core::Error) -> Self {
        RlError::Model(e.into())
    }
}
