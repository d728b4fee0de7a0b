//! The DeepSeekMoE router.
//!
//! - V2 (`softmax`): scores = softmax(W_g u); `greedy` takes the top-k;
//!   `group_limited_greedy` first keeps the `topk_group` groups with the highest max score.
//! - V3 (`sigmoid`, `noaux_tc`, V3 §2.1.2): scores = sigmoid(W_g u); selection uses
//!   score + `e_score_correction_bias` (the auxiliary-loss-free balancing bias, never part of
//!   the gate value); a group's score is the sum of its top-2 selection scores; keep
//!   `topk_group` groups, then the top-k experts.
//!
//! Gate values come from the unbiased scores, normalized over the chosen experts when
//! `norm_topk_prob`, times `routed_scaling_factor`. Masked experts are excluded outright
//! (the reference `inference/model.py` fills them with -inf; transformers uses 0.0, which
//! agrees whenever every selection score is positive).
//!
//! Selection runs on the host in f32 (it is tiny and discrete); the gate values are
//! gathered from the score tensor so gradients reach `W_g` in training.

use candle_core::{DType, Tensor};
use candle_nn::Init;
use whale_core::config::{DeepSeekConfig, ScoringFunc, TopkMethod};
use whale_core::{Result, Weights};
use whale_nn::moe::Routing;

pub struct Gate {
    /// `(n_experts, hidden)` f32.
    weight: Tensor,
    /// `(n_experts,)` f32, `noaux_tc` only.
    bias: Option<Tensor>,
    scoring: ScoringFunc,
    method: TopkMethod,
    n_experts: usize,
    top_k: usize,
    n_group: usize,
    topk_group: usize,
    norm_topk_prob: bool,
    scaling: f64,
}

impl Gate {
    /// `w` is the layer's `mlp.gate` prefix.
    pub fn new(w: &Weights, cfg: &DeepSeekConfig, n_experts: usize) -> Result<Self> {
        let std = cfg.initializer_range;
        let weight = w.get_f32(&[n_experts, cfg.hidden_size], "weight", Init::Randn { mean: 0.0, stdev: std })?;
        let bias = if cfg.topk_method == TopkMethod::NoauxTc {
            Some(w.get_f32(&[n_experts], "e_score_correction_bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            scoring: cfg.scoring_func,
            method: cfg.topk_method,
            n_experts,
            top_k: cfg.num_experts_per_tok,
            n_group: cfg.n_group,
            topk_group: cfg.topk_group,
            norm_topk_prob: cfg.norm_topk_prob,
            scaling: cfg.routed_scaling_factor,
        })
    }

    pub fn n_experts(&self) -> usize {
        self.n_experts
    }

    /// The auxiliary-loss-free balancing bias (V3), if this gate has one.
    pub fn correction_bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `x: (n, hidden)` → the routing of the `n` tokens.
    pub fn route(&self, x: &Tensor) -> Result<Routing> {
        let x = x.to_dtype(DType::F32)?;
        // In inference, one fixed-order dot per score: a token is routed the same way
        // whatever else is in the step (a GEMM's rounding can depend on the row count).
        let logits = if !x.track_op() && !self.weight.track_op() && x.device().is_cpu() {
            whale_nn::row_math::matmul_t(&x, &self.weight)?
        } else {
            x.matmul(&self.weight.t()?)?
        };
        let scores = match self.scoring {
            ScoringFunc::Sigmoid => candle_nn::ops::sigmoid(&logits)?,
            ScoringFunc::Softmax => whale_nn::attention::softmax_last_dim(&logits)?,
        };
        let host = scores.to_vec2::<f32>()?;
        let bias = match &self.bias {
            Some(b) => Some(b.to_vec1::<f32>()?),
            None => None,
        };
        let mut expert_ids = Vec::with_capacity(host.len() * self.top_k);
        for row in &host {
            let choice: Vec<f32> = match &bias {
                Some(b) => row.iter().zip(b).map(|(s, b)| s + b).collect(),
                None => row.clone(),
            };
            expert_ids.extend(self.select(&choice));
        }
        let n = host.len();
        let ids = Tensor::from_vec(expert_ids.clone(), (n, self.top_k), x.device())?;
        let mut weights = scores.gather(&ids, 1)?;
        if self.norm_topk_prob {
            weights = weights.broadcast_div(&(weights.sum_keepdim(1)? + 1e-20)?)?;
        }
        let weights = (weights * self.scaling)?;
        Ok(Routing { expert_ids, top_k: self.top_k, weights, scores })
    }

    /// The top-k experts of one token by selection score, best first (ties: lower id).
    fn select(&self, choice: &[f32]) -> Vec<u32> {
        let mut allowed = vec![true; self.n_experts];
        if self.n_group > 1 && self.method != TopkMethod::Greedy {
            let per_group = self.n_experts / self.n_group;
            let group_scores: Vec<f32> = choice
                .chunks(per_group)
                .map(|g| match self.method {
                    TopkMethod::NoauxTc => {
                        let mut top = [f32::NEG_INFINITY; 2];
                        for &s in g {
                            if s > top[0] {
                                top = [s, top[0]];
                            } else if s > top[1] {
                                top[1] = s;
                            }
                        }
                        top[0] + top[1]
                    }
                    _ => g.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                })
                .collect();
            let kept = top_indices(&group_scores, self.topk_group);
            for (gi, chunk) in allowed.chunks_mut(per_group).enumerate() {
                if !kept.contains(&gi) {
                    chunk.iter_mut().for_each(|a| *a = false);
                }
            }
        }
        let masked: Vec<f32> =
            choice.iter().zip(&allowed).map(|(&s, &ok)| if ok { s } else { f32::NEG_INFINITY }).collect();
        top_indices(&masked, self.top_k).into_iter().map(|i| i as u32).collect()
    }
}

/// Indices of the `k` largest values, largest first; NaN sorts last, ties by lower index.
fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (values[a], values[b]);
        y.partial_cmp(&x).unwrap_or_else(|| x.is_nan().cmp(&y.is_nan())).then(a.cmp(&b))
    });
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::top_indices;

    #[test]
    fn top_indices_orders_and_breaks_ties_by_index() {
        assert_eq!(top_indices(&[0.1, 0.5, 0.5, f32::NAN, 0.9], 3), vec![4, 1, 2]);
        assert_eq!(top_indices(&[f32::NAN, 1.0], 2), vec![1, 0]);
    }
}
