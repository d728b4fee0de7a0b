//! The DeepSeekMoE feed-forward (V2 §2.2, V3 §2.1.2):
//! `h' = u + Σ shared(u) + Σ_i g_i · expert_i(u)`. The `n_shared_experts` shared experts are
//! stored as one MLP `n_shared_experts` times as wide. Layers before
//! `first_k_dense_replace` use a dense MLP instead.

use super::gate::Gate;
use crate::block::FeedForward;
use candle_core::Tensor;
use whale_core::config::DeepSeekConfig;
use whale_core::{Result, Weights};
use whale_nn::moe::{dispatch, Routing};
use whale_nn::Mlp;

pub struct DeepSeekMoe {
    pub gate: Gate,
    experts: Vec<Mlp>,
    shared: Option<Mlp>,
}

impl DeepSeekMoe {
    /// `w` is the layer's `mlp` prefix.
    pub fn new(w: &Weights, cfg: &DeepSeekConfig, n_experts: usize) -> Result<Self> {
        let (d, inter) = (cfg.hidden_size, cfg.moe_intermediate_size);
        let experts = (0..n_experts)
            .map(|i| Mlp::load(&w.pp(format!("experts.{i}")), d, inter, false))
            .collect::<Result<Vec<_>>>()?;
        let shared = match cfg.n_shared_experts {
            0 => None,
            n => Some(Mlp::load(&w.pp("shared_experts"), d, inter * n, false)?),
        };
        Ok(Self { gate: Gate::new(&w.pp("gate"), cfg, n_experts)?, experts, shared })
    }

    /// `x: (T, d)` → `(T, d)` and the routing of the `T` tokens.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Routing)> {
        let routing = self.gate.route(x)?;
        let mut y = dispatch(x, &routing, &self.experts)?;
        if let Some(shared) = &self.shared {
            y = (y + shared.forward(x)?)?;
        }
        Ok((y, routing))
    }
}

/// A DeepSeek layer's feed-forward: dense in the first layers, MoE after.
pub enum DeepSeekFfn {
    Dense(Mlp),
    Moe(DeepSeekMoe),
}

impl DeepSeekFfn {
    /// `w` is the layer's prefix; `layer` decides dense vs MoE (`DeepSeekConfig::is_moe_layer`).
    pub fn new(w: &Weights, cfg: &DeepSeekConfig, layer: usize) -> Result<Self> {
        let w = w.pp("mlp");
        match cfg.n_routed_experts {
            Some(n) if cfg.is_moe_layer(layer) => Ok(DeepSeekFfn::Moe(DeepSeekMoe::new(&w, cfg, n)?)),
            _ => Ok(DeepSeekFfn::Dense(Mlp::load(&w, cfg.hidden_size, cfg.intermediate_size, false)?)),
        }
    }
}

impl FeedForward for DeepSeekFfn {
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Option<Routing>)> {
        match self {
            DeepSeekFfn::Dense(mlp) => Ok((mlp.forward(x)?, None)),
            DeepSeekFfn::Moe(moe) => {
                let (y, r) = moe.forward(x)?;
                Ok((y, Some(r)))
            }
        }
    }
}
