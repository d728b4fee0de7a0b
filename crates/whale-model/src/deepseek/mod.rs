//! DeepSeek-V2 / V2-Lite / V3 / R1: Multi-head Latent Attention, DeepSeekMoE with V2 and V3
//! gating, and the multi-token-prediction module. One implementation for the whole family;
//! the config decides the variant.

mod gate;
mod mla;
mod model;
mod moe;
mod mtp;

pub use gate::Gate;
pub use mla::{Mla, MlaMode};
pub use model::DeepSeekModel;
pub use moe::{DeepSeekFfn, DeepSeekMoe};
