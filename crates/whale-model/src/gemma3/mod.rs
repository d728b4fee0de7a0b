//! Gemma 3 (text): the shared decoder with [`Gemma3Attention`] (q/k norms, sliding and
//! global layers) and [`Gemma3Mlp`] (GeGLU + post-norm). Runs the one complete pretrained
//! model obtainable here, Gemma 3 270M in GGUF.

mod attention;
mod mlp;
mod model;

pub use attention::Gemma3Attention;
pub use mlp::Gemma3Mlp;
pub use model::Gemma3Model;
