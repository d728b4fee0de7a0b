//! Supervised training on packed rows: chat SFT (loss on assistant tokens), continued
//! pretraining on text (loss everywhere), and distillation (optionally with a logit KD term
//! against a teacher that shares the vocabulary). AdamW (β 0.9/0.95; weight decay on
//! matrices only, not on norms, biases or the gate bias), linear warmup then cosine decay,
//! global-norm clipping, and for DeepSeek MoE layers the auxiliary-loss-free bias update
//! (V3 §2.1.2: after each step, `b_i += γ · sign(mean load − load_i)`).

use crate::grpo::clip_grad_norm;
use crate::policy::Policy;
use crate::RlError;
use candle_core::{DType, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::Serialize;
use whale_model::CausalLm;

#[derive(Debug, Clone, Serialize)]
pub struct SftConfig {
    pub steps: usize,
    /// Rows per optimizer step.
    pub batch: usize,
    /// Rows per forward/backward.
    pub micro_batch: usize,
    pub lr: f64,
    /// The cosine decays to `lr * min_lr_ratio`.
    pub min_lr_ratio: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    /// Aux-loss-free balancing speed γ (0 disables).
    pub bias_update_speed: f64,
    /// Weight α of the KD term (0: plain cross-entropy) and its temperature.
    pub kd_alpha: f64,
    pub kd_temperature: f64,
}

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            steps: 100,
            batch: 8,
            micro_batch: 8,
            lr: 3e-4,
            min_lr_ratio: 0.1,
            warmup_steps: 10,
            weight_decay: 0.1,
            max_grad_norm: 1.0,
            bias_update_speed: 1e-3,
            kd_alpha: 0.0,
            kd_temperature: 1.0,
        }
    }
}

impl SftConfig {
    pub fn validate(&self) -> Result<(), RlError> {
        if self.steps == 0 || self.batch == 0 || self.micro_batch == 0 || self.batch % self.micro_batch != 0 {
            return Err(RlError::Config(format!(
                "steps ({}) and batch ({}) must be at least 1 and the batch a multiple of the micro-batch ({})",
                self.steps, self.batch, self.micro_batch
            )));
        }
        if !(self.lr > 0.0) || !(0.0..=1.0).contains(&self.kd_alpha) || !(self.kd_temperature > 0.0) {
            return Err(RlError::Config(format!(
                "lr {} must be > 0, kd α {} in [0, 1], kd temperature {} > 0",
                self.lr, self.kd_alpha, self.kd_temperature
            )));
        }
        Ok(())
    }

    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = (self.steps - self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let min = self.lr * self.min_lr_ratio;
        min + 0.5 * (self.lr - min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SftStats {
    pub loss: f64,
    pub kd_loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub tokens: usize,
    /// Over MoE layers: the busiest expert's load over the mean load.
    pub expert_load_max_over_mean: f64,
}

pub struct Sft<'a> {
    pub cfg: SftConfig,
    policy: &'a Policy,
    model: Box<dyn CausalLm>,
    teacher: Option<Box<dyn CausalLm>>,
    decay: (Vec<Var>, AdamW),
    no_decay: (Vec<Var>, AdamW),
}

impl<'a> Sft<'a> {
    pub fn new(cfg: SftConfig, policy: &'a Policy, teacher: Option<Box<dyn CausalLm>>) -> Result<Self, RlError> {
        cfg.validate()?;
        if let Some(t) = &teacher {
            let (tv, sv) = (t.info().vocab_size, policy.model()?.info().vocab_size);
            if tv != sv {
                return Err(RlError::Config(format!(
                    "logit distillation needs the same vocabulary: the teacher has {tv} ids, the student {sv} (use kd α = 0)"
                )));
            }
        }
        let (matrices, vectors): (Vec<Var>, Vec<Var>) = policy.trainable().into_iter().partition(|v| v.rank() >= 2);
        let params = |wd| ParamsAdamW { lr: cfg.lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: wd };
        let decay = (matrices.clone(), AdamW::new(matrices, params(cfg.weight_decay))?);
        let no_decay = (vectors.clone(), AdamW::new(vectors, params(0.0))?);
        Ok(Sft { model: policy.model()?, cfg, policy, teacher, decay, no_decay })
    }

    /// Mean masked cross-entropy (and KD) of `rows` without updating anything.
    pub fn eval_loss(&self, rows: &[(Vec<u32>, Vec<bool>)]) -> Result<f64, RlError> {
        let (mut sum, mut n) = (0.0, 0usize);
        for chunk in rows.chunks(self.cfg.micro_batch) {
            let (ce, _, tokens, _) = self.losses(chunk)?;
            sum += ce.to_scalar::<f32>()? as f64 * tokens as f64;
            n += tokens;
        }
        Ok(sum / n.max(1) as f64)
    }

    /// Cross-entropy (mean over trained tokens), KD term, trained-token count, routing.
    fn losses(&self, rows: &[(Vec<u32>, Vec<bool>)]) -> Result<(Tensor, Option<Tensor>, usize, Vec<Vec<u32>>), RlError> {
        let device = self.policy.device();
        let width = rows[0].0.len();
        let b = rows.len();
        let flat: Vec<u32> = rows.iter().flat_map(|r| r.0.iter().copied()).collect();
        let ids = Tensor::from_vec(flat, (b, width), device)?;
        let input = ids.narrow(1, 0, width - 1)?.contiguous()?;
        let targets = ids.narrow(1, 1, width - 1)?.contiguous()?;
        let mask_v: Vec<f32> = rows.iter().flat_map(|r| r.1[1..].iter().map(|&t| f32::from(u8::from(t)))).collect();
        let tokens = mask_v.iter().filter(|m| **m > 0.0).count();
        let mask = Tensor::from_vec(mask_v, (b, width - 1), device)?;
        let out = self.model.forward_train(&input)?;
        let logits = out.logits.to_dtype(DType::F32)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let nll = logp.gather(&targets.unsqueeze(2)?, 2)?.squeeze(2)?.neg()?;
        let denom = tokens.max(1) as f64;
        let ce = ((nll * &mask)?.sum_all()? / denom)?;
        let kd = match &self.teacher {
            Some(t) if self.cfg.kd_alpha > 0.0 => {
                let temp = self.cfg.kd_temperature;
                let tl = (t.forward_train(&input)?.logits.to_dtype(DType::F32)? / temp)?.detach();
                let tp = candle_nn::ops::softmax(&tl, D::Minus1)?;
                let tlogp = candle_nn::ops::log_softmax(&tl, D::Minus1)?;
                let slogp = candle_nn::ops::log_softmax(&(logits / temp)?, D::Minus1)?;
                // KL(teacher ‖ student) per position, scaled by T² (Hinton et al.).
                let kl = (tp * (tlogp - slogp)?)?.sum(D::Minus1)?;
                Some(((kl * &mask)?.sum_all()? * (temp * temp / denom))?)
            }
            _ => None,
        };
        let loads = out.routing.iter().map(|(_, r)| r.expert_ids.clone()).collect();
        Ok((ce, kd, tokens, loads))
    }

    /// One optimizer step over `rows` (`cfg.batch` of them).
    pub fn step(&mut self, step: usize, rows: &[(Vec<u32>, Vec<bool>)]) -> Result<SftStats, RlError> {
        let lr = self.cfg.lr_at(step);
        self.decay.1.set_learning_rate(lr);
        self.no_decay.1.set_learning_rate(lr);
        let total_tokens: usize = rows.iter().map(|r| r.1[1..].iter().filter(|t| **t).count()).sum();
        let vars: Vec<Var> = self.decay.0.iter().chain(&self.no_decay.0).cloned().collect();
        let mut acc: Option<candle_core::backprop::GradStore> = None;
        let (mut ce_sum, mut kd_sum) = (0.0, 0.0);
        let mut loads: Vec<Vec<u32>> = Vec::new();
        for chunk in rows.chunks(self.cfg.micro_batch) {
            let (ce, kd, tokens, l) = self.losses(chunk)?;
            let share = tokens as f64 / total_tokens.max(1) as f64;
            ce_sum += ce.to_scalar::<f32>()? as f64 * share;
            let a = self.cfg.kd_alpha;
            let loss = match &kd {
                Some(k) => {
                    kd_sum += k.to_scalar::<f32>()? as f64 * share;
                    ((ce * (1.0 - a))? + (k * a)?)?
                }
                None => ce,
            };
            let grads = (loss * share)?.backward()?;
            acc = Some(match acc {
                None => grads,
                Some(mut acc) => {
                    for v in &vars {
                        if let Some(g) = grads.get(v.as_tensor()) {
                            let sum = match acc.get(v.as_tensor()) {
                                Some(prev) => (prev + g)?,
                                None => g.clone(),
                            };
                            acc.insert(v.as_tensor(), sum);
                        }
                    }
                    acc
                }
            });
            if loads.is_empty() {
                loads = l;
            } else {
                for (dst, src) in loads.iter_mut().zip(l) {
                    dst.extend(src);
                }
            }
        }
        let mut grads = acc.expect("at least one micro-batch");
        let grad_norm = clip_grad_norm(&vars, &mut grads, self.cfg.max_grad_norm)?;
        self.decay.1.step(&grads)?;
        self.no_decay.1.step(&grads)?;
        let imbalance = self.balance(&loads)?;
        Ok(SftStats { loss: ce_sum, kd_loss: kd_sum, grad_norm, lr, tokens: total_tokens, expert_load_max_over_mean: imbalance })
    }

    /// The aux-loss-free update of every MoE layer's gate bias from this step's expert loads;
    /// returns the worst max/mean load.
    fn balance(&self, loads: &[Vec<u32>]) -> Result<f64, RlError> {
        let biases = self.policy.gate_biases();
        let mut worst: f64 = 0.0;
        for (layer_ids, bias) in loads.iter().zip(&biases) {
            let n = bias.elem_count();
            let mut count = vec![0f64; n];
            for &e in layer_ids {
                if let Some(c) = count.get_mut(e as usize) {
                    *c += 1.0;
                }
            }
            let mean = count.iter().sum::<f64>() / n as f64;
            if mean > 0.0 {
                worst = worst.max(count.iter().cloned().fold(0.0, f64::max) / mean);
            }
            if self.cfg.bias_update_speed > 0.0 {
                let step: Vec<f32> = count.iter().map(|&c| (self.cfg.bias_update_speed * (mean - c).signum()) as f32).collect();
                let delta = Tensor::from_vec(step, n, bias.device())?.to_dtype(bias.dtype())?;
                bias.set(&(bias.as_tensor() + delta)?)?;
            }
        }
        Ok(worst)
    }
}
