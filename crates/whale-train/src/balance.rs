//! DeepSeekMoE load balancing in training (V3 §2.1.2, deepseek-reference §1.5).
//!
//! - Auxiliary-loss-free: after every optimizer step, each gate's `e_score_correction_bias`
//!   moves by `b_i += γ · sign(mean load − load_i)` from the whole batch's expert loads
//!   (all micro-batches). The bias only affects selection, never the gate value, and gets no
//!   gradient (the optimizer does not hold it).
//! - Complementary sequence-wise balance loss: per sequence and layer
//!   `L = α Σ_i f_i P_i`, `f_i = N_r / (K_r T) · #tokens choosing i`,
//!   `P_i = mean_t s'_{i,t}`, `s' = s / Σ_j s_j`; averaged over sequences, summed over layers.

use candle_core::{Tensor, Var};
use serde::Serialize;
use whale_nn::moe::Routing;

use crate::error::Result;

/// Expert loads of one MoE layer over one optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerLoad {
    pub layer: usize,
    /// Tokens routed to each expert (each token counts once per chosen expert).
    #[serde(skip)]
    pub counts: Vec<u64>,
    /// The busiest expert's load over the mean load (1 = perfectly balanced).
    pub max_over_mean: f64,
    /// Experts that got no token this step.
    pub dead: usize,
}

/// Per-layer expert counts, summed over micro-batches.
#[derive(Debug, Default, Clone)]
pub struct LoadCounter {
    layers: Vec<(usize, Vec<u64>)>,
}

impl LoadCounter {
    /// Adds one forward's routing; `n_experts` is the gate width (from the score tensor).
    pub fn add(&mut self, routing: &[(usize, Routing)]) -> Result<()> {
        for (layer, r) in routing {
            let n = r.scores.dim(1)?;
            let idx = match self.layers.iter().position(|(l, _)| l == layer) {
                Some(i) => i,
                None => {
                    self.layers.push((*layer, vec![0; n]));
                    self.layers.len() - 1
                }
            };
            let counts = &mut self.layers[idx].1;
            for &e in &r.expert_ids {
                if let Some(c) = counts.get_mut(e as usize) {
                    *c += 1;
                }
            }
        }
        Ok(())
    }

    pub fn loads(&self) -> Vec<LayerLoad> {
        let mut out: Vec<LayerLoad> = self
            .layers
            .iter()
            .map(|(layer, counts)| {
                let mean = counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64;
                let max = counts.iter().copied().max().unwrap_or(0) as f64;
                LayerLoad {
                    layer: *layer,
                    counts: counts.clone(),
                    max_over_mean: if mean > 0.0 { max / mean } else { 0.0 },
                    dead: counts.iter().filter(|&&c| c == 0).count(),
                }
            })
            .collect();
        out.sort_by_key(|l| l.layer);
        out
    }
}

/// The aux-loss-free update of every gate bias in `biases` (`(layer, bias)`) from `loads`.
pub fn update_biases(biases: &[(usize, Var)], loads: &[LayerLoad], gamma: f64) -> Result<()> {
    if gamma <= 0.0 {
        return Ok(());
    }
    for (layer, bias) in biases {
        let Some(load) = loads.iter().find(|l| l.layer == *layer) else {
            continue;
        };
        let n = bias.elem_count();
        if load.counts.len() != n {
            continue;
        }
        let mean = load.counts.iter().sum::<u64>() as f64 / n as f64;
        // sign(0) = 0: an expert exactly at the mean keeps its bias.
        let delta: Vec<f32> = load
            .counts
            .iter()
            .map(|&c| {
                let d = mean - c as f64;
                (if d > 0.0 {
                    gamma
                } else if d < 0.0 {
                    -gamma
                } else {
                    0.0
                }) as f32
            })
            .collect();
        let delta = Tensor::from_vec(delta, n, bias.device())?.to_dtype(bias.dtype())?;
        bias.set(&(bias.as_tensor() + delta)?)?;
    }
    Ok(())
}

/// The sequence-wise balance loss of one forward over `batch` sequences (scalar f32), or
/// None when there is no MoE layer. Rows of each routing are the tokens, sequence-major.
pub fn sequence_balance_loss(
    routing: &[(usize, Routing)],
    batch: usize,
    alpha: f64,
) -> Result<Option<Tensor>> {
    let mut total: Option<Tensor> = None;
    for (_, r) in routing {
        let (n, e) = r.scores.dims2()?;
        if batch == 0 || n % batch != 0 || n == 0 {
            continue;
        }
        let t = n / batch;
        let k = r.top_k.max(1);
        // f_i per sequence from the discrete choices (a constant for the gradient).
        let mut f = vec![0f32; batch * e];
        for (slot, &ex) in r.expert_ids.iter().enumerate() {
            let seq = slot / k / t;
            if let Some(x) = f.get_mut(seq * e + ex as usize) {
                *x += (e as f64 / (k as f64 * t as f64)) as f32;
            }
        }
        let f = Tensor::from_vec(f, (batch, e), r.scores.device())?;
        let s = r.scores.reshape((batch, t, e))?;
        let s_norm = s.broadcast_div(&(s.sum_keepdim(2)? + 1e-20)?)?;
        let p = s_norm.mean(1)?; // (batch, e)
        let l = ((f * p)?.sum_all()? * (alpha / batch as f64))?;
        total = Some(match total {
            Some(acc) => (acc + l)?,
            None => l,
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn routing(ids: Vec<u32>, top_k: usize, scores: Vec<f32>, e: usize) -> Routing {
        let n = ids.len() / top_k;
        let dev = Device::Cpu;
        Routing {
            expert_ids: ids,
            top_k,
            weights: Tensor::ones((n, top_k), candle_core::DType::F32, &dev).unwrap(),
            scores: Tensor::from_vec(scores, (n, e), &dev).unwrap(),
        }
    }

    #[test]
    fn loads_and_bias_update_push_towards_balance() {
        let r = routing(vec![0, 0, 0, 1], 1, vec![0.5; 4 * 4], 4);
        let mut c = LoadCounter::default();
        c.add(&[(1, r)]).unwrap();
        let loads = c.loads();
        assert_eq!(loads[0].counts, vec![3, 1, 0, 0]);
        assert_eq!(loads[0].max_over_mean, 3.0);
        assert_eq!(loads[0].dead, 2);
        let bias = Var::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap();
        update_biases(&[(1, bias.clone())], &loads, 0.001).unwrap();
        // Mean load 1: expert 0 overloaded, 1 at the mean, 2 and 3 underloaded.
        assert_eq!(
            bias.to_vec1::<f32>().unwrap(),
            vec![-0.001, 0.0, 0.001, 0.001]
        );
    }

    #[test]
    fn balance_loss_is_alpha_for_uniform_routing() {
        // Uniform scores and every expert chosen equally: f_i = 1, P_i = 1/E, L = α.
        let e = 4;
        let r = routing(vec![0, 1, 2, 3, 0, 1, 2, 3], 2, vec![0.3; 4 * e], e);
        let l = sequence_balance_loss(&[(1, r)], 1, 0.01).unwrap().unwrap();
        assert!((l.to_scalar::<f32>().unwrap() - 0.01).abs() < 1e-7);
        // Collapsed routing costs more.
        let r = routing(
            vec![0, 1, 0, 1, 0, 1, 0, 1],
            2,
            (0..16).map(|i| if i % 4 < 2 { 0.9 } else { 0.1 }).collect(),
            e,
        );
        let l = sequence_balance_loss(&[(1, r)], 1, 0.01).unwrap().unwrap();
        assert!(l.to_scalar::<f32>().unwrap() > 0.015);
    }
}
