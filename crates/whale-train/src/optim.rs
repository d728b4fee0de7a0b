//! AdamW (Loshchilov & Hutter) with decoupled weight decay, per-parameter decay on/off, and
//! a state that can be saved and restored exactly (candle-nn's AdamW keeps its moments
//! private, so a resumed run could not continue bit-identically with it).
//!
//! The update is written operation for operation like candle-nn's (`tests` checks the two
//! agree bit for bit), with one step counter for all parameters:
//! `m ← β1 m + (1-β1) g`, `v ← β2 v + (1-β2) g²`,
//! `θ ← θ (1 - lr·wd) - lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)`.
//! Moments are f32 (V3 keeps them in BF16 to save memory; at CPU scale exactness matters more).

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};

use crate::error::{Result, TrainError};
use crate::params::Param;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

struct Slot {
    param: Param,
    m: Tensor,
    v: Tensor,
}

pub struct AdamW {
    cfg: AdamWConfig,
    slots: Vec<Slot>,
    /// Optimizer steps taken (the bias-correction exponent).
    step: u64,
}

impl AdamW {
    pub fn new(params: Vec<Param>, cfg: AdamWConfig) -> Result<Self> {
        let slots = params
            .into_iter()
            .map(|p| {
                let z = p.var.zeros_like()?;
                Ok(Slot {
                    m: z.clone(),
                    v: z,
                    param: p,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            cfg,
            slots,
            step: 0,
        })
    }

    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// One update at learning rate `lr`; parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let t = self.step as i32;
        let scale_m = 1f64 / (1f64 - beta1.powi(t));
        let scale_v = 1f64 / (1f64 - beta2.powi(t));
        for slot in &mut self.slots {
            let theta = &slot.param.var;
            let Some(g) = grads.get(theta.as_tensor()) else {
                continue;
            };
            let lr_lambda = if slot.param.decay {
                lr * weight_decay
            } else {
                0.0
            };
            let next_m = ((&slot.m * beta1)? + (g * (1.0 - beta1))?)?;
            let next_v = ((&slot.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let next_theta = (theta.as_tensor() * (1f64 - lr_lambda))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + eps)?)?;
            let next_theta = (next_theta - (adjusted * lr)?)?;
            slot.m = next_m;
            slot.v = next_v;
            theta.set(&next_theta)?;
        }
        Ok(())
    }

    /// Writes the moments (`{param}.exp_avg`, `{param}.exp_avg_sq`) and the step count to a
    /// safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for s in &self.slots {
            tensors.insert(format!("{}.exp_avg", s.param.name), s.m.clone());
            tensors.insert(format!("{}.exp_avg_sq", s.param.name), s.v.clone());
        }
        // The step count as a tensor keeps the whole state in one checksummed file.
        let step = Tensor::new(&[self.step as i64], &Device::Cpu)?;
        tensors.insert("__step__".into(), step);
        candle_core::safetensors::save(&tensors, path)?;
        Ok(())
    }

    /// Restores what [`AdamW::save`] wrote; every parameter's moments must be there with
    /// its shape.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let mut tensors = candle_core::safetensors::load(path, self.device())
            .map_err(|e| TrainError::checkpoint(path, "<file>", e.to_string()))?;
        let step = tensors
            .remove("__step__")
            .ok_or_else(|| TrainError::checkpoint(path, "__step__", "missing"))?
            .to_vec1::<i64>()
            .map_err(|e| TrainError::checkpoint(path, "__step__", e.to_string()))?;
        self.step = step.first().copied().unwrap_or(0).max(0) as u64;
        for s in &mut self.slots {
            for (suffix, dst) in [("exp_avg", &mut s.m), ("exp_avg_sq", &mut s.v)] {
                let name = format!("{}.{suffix}", s.param.name);
                let t = tensors
                    .remove(&name)
                    .ok_or_else(|| TrainError::checkpoint(path, &name, "missing"))?;
                if t.dims() != s.param.var.dims() {
                    return Err(TrainError::checkpoint(
                        path,
                        &name,
                        format!(
                            "shape {:?}, the parameter is {:?}",
                            t.dims(),
                            s.param.var.dims()
                        ),
                    ));
                }
                *dst = t;
            }
        }
        Ok(())
    }

    fn device(&self) -> &Device {
        self.slots
            .first()
            .map(|s| s.param.var.device())
            .unwrap_or(&Device::Cpu)
    }
}

/// The global L2 norm of the gradients of `params`; when `max_norm > 0` and the norm is
/// larger, every gradient is scaled by `max_norm / (norm + 1e-6)`.
pub fn clip_grad_norm(params: &[Param], grads: &mut GradStore, max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for p in params {
        if let Some(g) = grads.get(p.var.as_tensor()) {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for p in params {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                let scaled = (g * scale)?;
                grads.insert(p.var.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;
    use candle_nn::Optimizer;

    #[test]
    fn matches_candle_nn_adamw_bit_for_bit() {
        let dev = Device::Cpu;
        let init: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).sin()).collect();
        let ours = Var::from_vec(init.clone(), (3, 4), &dev).unwrap();
        let theirs = Var::from_vec(init, (3, 4), &dev).unwrap();
        let cfg = AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut a = AdamW::new(
            vec![Param {
                name: "w".into(),
                var: ours.clone(),
                decay: true,
            }],
            cfg,
        )
        .unwrap();
        let params = candle_nn::ParamsAdamW {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut b = candle_nn::AdamW::new(vec![theirs.clone()], params).unwrap();
        for step in 0..5 {
            let target = Tensor::new(step as f32, &dev).unwrap();
            let loss = |v: &Var| {
                v.as_tensor()
                    .broadcast_sub(&target)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
            };
            a.step(&loss(&ours).backward().unwrap(), 1e-2).unwrap();
            b.step(&loss(&theirs).backward().unwrap()).unwrap();
            let (x, y) = (
                ours.to_vec2::<f32>().unwrap(),
                theirs.to_vec2::<f32>().unwrap(),
            );
            assert_eq!(x, y, "step {step}");
        }
    }

    #[test]
    fn state_round_trips() {
        let dev = Device::Cpu;
        let var = Var::from_vec(vec![1f32, 2., 3.], 3, &dev).unwrap();
        let cfg = AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let p = Param {
            name: "b".into(),
            var: var.clone(),
            decay: false,
        };
        let mut a = AdamW::new(vec![p.clone()], cfg).unwrap();
        a.step(
            &var.as_tensor()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap(),
            0.1,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opt.safetensors");
        a.save(&path).unwrap();
        let mut b = AdamW::new(vec![p], cfg).unwrap();
        b.load(&path).unwrap();
        assert_eq!(b.steps_taken(), 1);
        assert_eq!(
            a.slots[0].m.to_vec1::<f32>().unwrap(),
            b.slots[0].m.to_vec1::<f32>().unwrap()
        );
        assert_eq!(
            a.slots[0].v.to_vec1::<f32>().unwrap(),
            b.slots[0].v.to_vec1::<f32>().unwrap()
        );
    }
}
