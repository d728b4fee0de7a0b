//! Llama and Qwen2 (the dense R1-Distill families): grouped-query attention with RoPE over
//! the two halves of each head, SwiGLU MLP. Qwen2 is Llama plus q/k/v biases — a config
//! flag, not a second implementation.

mod attention;
mod model;

pub use attention::GqaAttention;
pub use model::LlamaModel;
