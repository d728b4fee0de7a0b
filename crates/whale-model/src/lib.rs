//! The model families behind one trait, [`CausalLm`]: DeepSeek-V2/V3 (MLA + DeepSeekMoE +
//! MTP) and Llama/Qwen2 (the R1-Distill models).

pub mod block;
pub mod causal_lm;
pub mod deepseek;
pub mod decode;
pub mod decoder;
pub mod gemma3;
pub mod gguf;
pub mod from_config;
pub mod llama;
pub mod loader;

pub use causal_lm::{CausalLm, ModelInfo, SeqStep, TrainOutput};
pub use decoder::DecoderOutput;
pub use from_config::model_from_config;
pub use deepseek::{DeepSeekModel, MlaMode};
pub use gemma3::Gemma3Model;
pub use llama::LlamaModel;
pub use loader::{load_model, CONFIG_FILE};
pub use whale_core::{Result, WhaleError};
