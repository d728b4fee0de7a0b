//! Layers shared by every model family: linear, embedding, norms, RoPE (+ YaRN, Llama 3),
//! attention (causal and sliding-window masks), KV caches (dense and MLA latent), the gated
//! MLP (SwiGLU, GeGLU) and MoE expert dispatch.

pub mod attention;
pub mod causal_softmax;
pub mod cross_entropy;
pub mod fused_attention;
pub mod row_math;
pub mod embedding;
pub mod fast_exp;
pub mod glu;
pub mod kv_cache;
pub mod linear;
pub mod mlp;
pub mod moe;
pub mod norm;
pub mod rope;

pub use embedding::Embedding;
pub use kv_cache::{KvCache, LayerCache};
pub use linear::Linear;
pub use mlp::{Activation, Mlp};
pub use norm::RmsNorm;
pub use rope::{Rope, RopeLayout, RopeTable};

pub use whale_core::{Result, WhaleError};
