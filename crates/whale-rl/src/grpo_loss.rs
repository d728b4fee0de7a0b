//! The GRPO objective (DeepSeekMath eq. 3; R1 eq. 1–3), per completion token t of output i:
//!
//! `ρ = π_θ / π_old`, `L_t = −[min(ρ·A_i, clip(ρ, 1−ε, 1+ε)·A_i) − β·KL_t]`,
//! `KL_t = π_ref/π_θ − log(π_ref/π_θ) − 1` (the unbiased, non-negative "k3" estimator).
//!
//! Normalization: [`LossNorm::Token`] (the default) averages over every completion token of
//! the batch; [`LossNorm::Sequence`] averages within each output, then over outputs, as
//! DeepSeekMath writes it (`1/|o_i|`). Token-level is the default because the per-sequence mean
//! gives each token of a long output less weight, so long wrong answers are penalized less
//! per token than short ones and response length drifts for the wrong reason (DAPO §3.3).

use candle_core::Tensor;
use whale_core::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossNorm {
    Token,
    Sequence,
}

#[derive(Debug, Clone, Copy)]
pub struct GrpoLoss {
    pub clip_eps: f64,
    /// KL coefficient; 0 needs no reference model.
    pub beta: f64,
    pub norm: LossNorm,
}

/// Detached statistics of one loss evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossStats {
    pub loss: f64,
    /// Mean KL_t over completion tokens (0 when β = 0 and no reference).
    pub kl: f64,
    /// Share of completion tokens whose ratio was clipped (the clip was active).
    pub clip_fraction: f64,
}

impl GrpoLoss {
    /// `logp`, `old_logp`, `ref_logp`: `(b, T)` per-token log-probs (only `logp` carries
    /// gradients); `advantages`: `(b,)`; `mask`: `(b, T)`, 1 on completion tokens.
    pub fn compute(
        &self,
        logp: &Tensor,
        old_logp: &Tensor,
        ref_logp: Option<&Tensor>,
        advantages: &Tensor,
        mask: &Tensor,
    ) -> Result<(Tensor, LossStats)> {
        let adv = advantages.unsqueeze(1)?.broadcast_as(logp.shape())?;
        let ratio = (logp - old_logp.detach())?.exp()?;
        let unclipped = (&ratio * &adv)?;
        let clipped_ratio = ratio.clamp(1.0 - self.clip_eps, 1.0 + self.clip_eps)?;
        let clipped = (&clipped_ratio * &adv)?;
        let surrogate = unclipped.minimum(&clipped)?;
        let (per_token, kl_mean) = match ref_logp {
            Some(r) if self.beta != 0.0 => {
                let d = (r.detach() - logp)?; // log(π_ref/π_θ)
                let kl = ((d.exp()? - &d)? - 1.0)?;
                let kl_mean = masked_mean(&kl.detach(), mask)?;
                ((surrogate - (kl * self.beta)?)?, kl_mean)
            }
            Some(r) => {
                let d = (r.detach() - logp)?.detach();
                let kl = ((d.exp()? - &d)? - 1.0)?;
                (surrogate, masked_mean(&kl, mask)?)
            }
            None => (surrogate, 0.0),
        };
        let per_token = per_token.neg()?;
        let loss = match self.norm {
            LossNorm::Token => ((&per_token * mask)?.sum_all()? / mask.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64)?,
            LossNorm::Sequence => {
                let lens = mask.sum(1)?.clamp(1.0, f64::INFINITY)?;
                let per_seq = ((&per_token * mask)?.sum(1)? / lens)?;
                per_seq.mean_all()?
            }
        };
        let was_clipped = (&clipped_ratio - &ratio)?.abs()?.gt(1e-12)?.to_dtype(mask.dtype())?;
        let stats = LossStats {
            loss: loss.to_scalar::<f32>()? as f64,
            kl: kl_mean,
            clip_fraction: masked_mean(&was_clipped, mask)?,
        };
        Ok((loss, stats))
    }
}

fn masked_mean(x: &Tensor, mask: &Tensor) -> Result<f64> {
    let n = mask.sum_all()?.to_scalar::<f32>()? as f64;
    let s = (x * mask)?.sum_all()?.to_scalar::<f32>()? as f64;
    Ok(if n == 0.0 { 0.0 } else { s / n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(v: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    /// The loss, its gradient, the KL and the clip fraction against values worked out by hand
    /// from the formulas above.
    #[test]
    fn matches_hand_computation() {
        let logp = Var::from_tensor(&t(&[-1.0, -2.0, -0.5, -3.0], (2, 2))).unwrap();
        let old = t(&[-1.0, -2.5, -0.5, -3.0], (2, 2));
        let reference = t(&[-1.2, -2.0, -0.4, -3.0], (2, 2));
        let adv = Tensor::from_slice(&[1.0f32, -0.5], 2, &Device::Cpu).unwrap();
        let mask = t(&[1.0, 1.0, 1.0, 0.0], (2, 2));
        let g = GrpoLoss { clip_eps: 0.2, beta: 0.1, norm: LossNorm::Token };
        let (loss, stats) = g.compute(logp.as_tensor(), &old, Some(&reference), &adv, &mask).unwrap();
        // token (0,0): ρ=1, A=1 → surrogate 1; d=-0.2, kl=e^-0.2+0.2-1
        // token (0,1): ρ=e^0.5=1.6487 → clipped 1.2, A=1 → 1.2; d=0 → kl 0
        // token (1,0): ρ=1, A=-0.5 → -0.5; d=0.1 → kl=e^0.1-0.1-1
        let kl00 = (-0.2f64).exp() + 0.2 - 1.0;
        let kl10 = 0.1f64.exp() - 0.1 - 1.0;
        let want = -((1.0 - 0.1 * kl00) + 1.2 + (-0.5 - 0.1 * kl10)) / 3.0;
        assert!((stats.loss - want).abs() < 1e-6, "{} vs {want}", stats.loss);
        assert!((stats.kl - (kl00 + kl10) / 3.0).abs() < 1e-6);
        assert!((stats.clip_fraction - 1.0 / 3.0).abs() < 1e-6);
        // d loss / d logp00 = -(ρ·A − β·(1 − e^d))/3 with ρ=1, A=1, d=-0.2.
        let grads = loss.backward().unwrap();
        let gr = grads.get(logp.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        let want00 = -(1.0 - 0.1 * (1.0 - (-0.2f64).exp())) / 3.0;
        assert!((gr[0][0] as f64 - want00).abs() < 1e-6, "{} vs {want00}", gr[0][0]);
        assert!(gr[0][1].abs() < 1e-7, "a clipped token with positive advantage has no gradient");
        assert_eq!(gr[1][1], 0.0, "masked tokens have no gradient");

        let seq = GrpoLoss { norm: LossNorm::Sequence, ..g };
        let (_, s2) = seq.compute(logp.as_tensor(), &old, Some(&reference), &adv, &mask).unwrap();
        let want_seq = -(((1.0 - 0.1 * kl00) + 1.2) / 2.0 + (-0.5 - 0.1 * kl10)) / 2.0;
        assert!((s2.loss - want_seq).abs() < 1e-6);
    }
}
