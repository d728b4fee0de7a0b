//! The GRPO loop (DeepSeekMath §4.1; R1 §2.2): for each step, take P training prompts, sample
//! G outputs each from the current policy through the engine, score them with the task's rule
//! rewards, normalize advantages within each group, then take μ optimizer steps on the
//! clipped-ratio objective with a per-token KL to a frozen reference (see `grpo_loss.rs`).
//! With μ = 1 the ratio is 1 at the update (π_old = π_θ), as in R1's "1 update per rollout".

use crate::grpo_loss::{GrpoLoss, LossNorm};
use crate::logprobs::{token_logprobs, SeqBatch};
use crate::policy::Policy;
use crate::rollout::{rollout, Group, RolloutConfig};
use crate::RlError;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::Serialize;
use std::time::Instant;
use whale_engine::{EngineHandle, SamplingParams};
use whale_eval::reward::Weighted;
use whale_eval::{Problem, PromptStyle};
use whale_model::CausalLm;
use whale_text::tokenizer::Tokenizer;

#[derive(Debug, Clone, Serialize)]
pub struct GrpoConfig {
    pub steps: usize,
    /// Prompts per step (P).
    pub prompts_per_step: usize,
    /// Samples per prompt (G).
    pub group_size: usize,
    /// Sequences per forward/backward (gradients are accumulated over the P·G sequences).
    pub micro_batch: usize,
    /// Optimizer steps per batch of rollouts (μ).
    pub inner_updates: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub clip_eps: f64,
    pub beta: f64,
    pub loss_norm: LossNorm,
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: usize,
    pub seed: u64,
    pub prompt_style: PromptStyle,
    /// DAPO's dynamic sampling (DAPO §3.2) when > 0: rollout rounds of P prompts are drawn,
    /// up to this many per step, until P groups have unequal rewards; groups whose rewards
    /// are all equal (zero advantage) are left out of the update, so they neither dilute the
    /// token normalization nor cost a forward and backward. 0: plain GRPO, every group counts.
    pub dynamic_rounds: usize,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            steps: 100,
            prompts_per_step: 8,
            group_size: 8,
            micro_batch: 16,
            inner_updates: 1,
            lr: 1e-5,
            warmup_steps: 0,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            clip_eps: 0.2,
            beta: 0.04,
            loss_norm: LossNorm::Token,
            temperature: 1.0,
            top_p: 1.0,
            max_tokens: 256,
            seed: 0,
            prompt_style: PromptStyle::Chat,
            dynamic_rounds: 0,
        }
    }
}

impl GrpoConfig {
    /// Checks the batch arithmetic and ranges up front, naming the settings involved.
    pub fn validate(&self) -> Result<(), RlError> {
        let bad = |m: String| Err(RlError::Config(m));
        if self.group_size < 2 {
            return bad(format!("group size G = {} but GRPO needs at least 2 samples per prompt to form an advantage", self.group_size));
        }
        if self.prompts_per_step == 0 || self.steps == 0 || self.inner_updates == 0 || self.max_tokens == 0 {
            return bad("prompts per step, steps, inner updates and max tokens must all be at least 1".into());
        }
        let batch = self.prompts_per_step * self.group_size;
        if self.micro_batch == 0 || batch % self.micro_batch != 0 {
            return bad(format!(
                "the batch of {} prompts x {} samples = {batch} sequences is not a multiple of the micro-batch {}: \
                 choose a micro-batch that divides {batch}",
                self.prompts_per_step, self.group_size, self.micro_batch
            ));
        }
        if !(self.temperature > 0.0) {
            return bad(format!("rollout temperature {}: GRPO samples its rollouts and needs T > 0", self.temperature));
        }
        if !(self.clip_eps > 0.0) || self.beta < 0.0 || !(self.lr > 0.0) {
            return bad(format!("clip ε = {}, β = {}, lr = {}: need ε > 0, β ≥ 0, lr > 0", self.clip_eps, self.beta, self.lr));
        }
        Ok(())
    }
}

/// What one step did (one JSONL line of metrics).
#[derive(Debug, Clone, Serialize)]
pub struct StepMetrics {
    pub step: usize,
    pub reward: f64,
    pub accuracy: f64,
    pub format: f64,
    pub response_length: f64,
    /// Mean per-token KL to the reference; `None` when no reference is loaded (β = 0).
    pub kl: Option<f64>,
    pub clip_fraction: f64,
    pub entropy: f64,
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
    /// Groups whose rewards were all equal (no learning signal), over every rollout round.
    pub zero_signal_groups: f64,
    /// Rollout rounds of P prompts drawn this step (1 unless dynamic sampling is on).
    pub rollout_rounds: usize,
    /// Groups the update was computed from.
    pub groups_trained: usize,
    pub rollout_seconds: f64,
    pub train_seconds: f64,
    pub rollout_tokens_per_second: f64,
}

pub struct Grpo<'a> {
    pub cfg: GrpoConfig,
    policy: &'a Policy,
    /// The training forward, over the policy's Vars.
    train_model: Box<dyn CausalLm>,
    reference: Option<Box<dyn CausalLm>>,
    engine: EngineHandle,
    tok: &'a Tokenizer,
    reward: Weighted,
    vars: Vec<Var>,
    opt: AdamW,
}

impl<'a> Grpo<'a> {
    /// `engine` must run a model built from `policy` (`Policy::inference_model`, so it
    /// samples from the current weights) without a prefix cache; `reference` is needed when β > 0.
    pub fn new(
        cfg: GrpoConfig,
        policy: &'a Policy,
        reference: Option<Box<dyn CausalLm>>,
        engine: EngineHandle,
        tok: &'a Tokenizer,
        reward: Weighted,
    ) -> Result<Self, RlError> {
        cfg.validate()?;
        if cfg.beta > 0.0 && reference.is_none() {
            return Err(RlError::Config(format!("β = {} needs a reference model (or set β = 0)", cfg.beta)));
        }
        let vars = policy.trainable();
        let opt = AdamW::new(
            vars.clone(),
            ParamsAdamW { lr: cfg.lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: cfg.weight_decay },
        )?;
        Ok(Grpo { train_model: policy.model()?, cfg, policy, reference, engine, tok, reward, vars, opt })
    }

    pub fn policy(&self) -> &Policy {
        self.policy
    }

    fn lr_at(&self, step: usize) -> f64 {
        if self.cfg.warmup_steps == 0 {
            self.cfg.lr
        } else {
            self.cfg.lr * ((step + 1) as f64 / self.cfg.warmup_steps as f64).min(1.0)
        }
    }

    /// One GRPO step: rolls out the next P problems from `problems` (more rounds of P with
    /// dynamic sampling), then updates the policy. Returns every group sampled.
    pub fn step(&mut self, step: usize, problems: &mut dyn Iterator<Item = Problem>) -> Result<(StepMetrics, Vec<Group>), RlError> {
        let t0 = Instant::now();
        let p = self.cfg.prompts_per_step;
        let mut groups: Vec<Group> = Vec::new();
        let mut rounds = 0;
        let informative = |gs: &[Group]| gs.iter().filter(|g| has_signal(g)).count();
        while rounds < self.cfg.dynamic_rounds.max(1) && (rounds == 0 || informative(&groups) < p) {
            let batch: Vec<Problem> = (&mut *problems).take(p).collect();
            if batch.is_empty() {
                break;
            }
            let rc = RolloutConfig {
                group_size: self.cfg.group_size,
                params: SamplingParams {
                    temperature: self.cfg.temperature,
                    top_p: self.cfg.top_p,
                    seed: Some(self.cfg.seed.wrapping_mul(1_000_003).wrapping_add(step as u64).wrapping_add((rounds as u64) << 32)),
                    ..Default::default()
                },
                max_tokens: self.cfg.max_tokens,
                style: self.cfg.prompt_style,
                in_flight: 64,
            };
            groups.extend(rollout(&self.engine, self.tok, &batch, &rc, &self.reward)?);
            rounds += 1;
        }
        if groups.is_empty() {
            return Err(RlError::Config(format!("step {step}: no training problems left to roll out")));
        }
        let rollout_seconds = t0.elapsed().as_secs_f64();
        let rollout_tokens: usize = groups.iter().flat_map(|g| &g.samples).map(|s| s.ids.len()).sum();
        let n_rolled: usize = groups.iter().map(|g| g.samples.len()).sum();
        let t1 = Instant::now();

        // The groups the update uses: all of them in plain GRPO; with dynamic sampling only
        // those with signal, at most P.
        let trained: Vec<&Group> = if self.cfg.dynamic_rounds > 0 {
            groups.iter().filter(|g| has_signal(g)).take(p).collect()
        } else {
            groups.iter().collect()
        };
        // Flatten to sequences with their advantages.
        let mut seqs: Vec<(&[u32], &[u32], f64)> = Vec::new();
        for g in &trained {
            for (s, a) in g.samples.iter().zip(&g.advantages) {
                seqs.push((&s.prompt_ids, &s.ids, *a));
            }
        }
        let total_tokens: usize = seqs.iter().map(|s| s.1.len()).sum();
        let n_seqs = seqs.len();
        let device = self.policy.device().clone();
        let chunks: Vec<&[(&[u32], &[u32], f64)]> = seqs.chunks(self.cfg.micro_batch).collect();
        // Log-probs of the distribution the rollouts were sampled from (logits / T), so the
        // ratio, the KL and the policy gradient are on-policy at any rollout temperature.
        let t = self.cfg.temperature as f64;
        // π_old and π_ref: fixed for the μ inner updates. With μ = 1, π_old is the policy of
        // the one update itself, so its log-probs are that forward's, detached: no extra pass.
        let mut fixed: Vec<(SeqBatch, Option<Tensor>, Option<Tensor>, Tensor)> = Vec::with_capacity(chunks.len());
        for c in &chunks {
            let pairs: Vec<(&[u32], &[u32])> = c.iter().map(|(p, o, _)| (*p, *o)).collect();
            let batch = SeqBatch::new(&pairs, &device)?;
            let old = match self.cfg.inner_updates {
                1 => None,
                _ => Some(token_logprobs(self.train_model.as_ref(), &batch, t)?.0.detach()),
            };
            let reference = match &self.reference {
                Some(r) if self.cfg.beta > 0.0 => Some(token_logprobs(r.as_ref(), &batch, t)?.0.detach()),
                _ => None,
            };
            let adv = Tensor::from_vec(c.iter().map(|s| s.2 as f32).collect::<Vec<_>>(), c.len(), &device)?;
            fixed.push((batch, old, reference, adv));
        }
        let loss_fn = GrpoLoss { clip_eps: self.cfg.clip_eps, beta: self.cfg.beta, norm: self.cfg.loss_norm };
        let lr = self.lr_at(step);
        self.opt.set_learning_rate(lr);
        let (mut loss_sum, mut kl_sum, mut clip_sum, mut ent_sum, mut grad_norm) = (0.0, 0.0, 0.0, 0.0, 0.0);
        // With dynamic sampling a step may find no group with signal: nothing to learn from.
        let updates = if fixed.is_empty() { 0 } else { self.cfg.inner_updates };
        for _ in 0..updates {
            let mut acc: Option<GradStore> = None;
            for (batch, old, reference, adv) in &fixed {
                let (logp, entropy) = token_logprobs(self.train_model.as_ref(), batch, t)?;
                let old = old.clone().unwrap_or_else(|| logp.detach());
                let (loss, stats) = loss_fn.compute(&logp, &old, reference.as_ref(), adv, &batch.mask)?;
                // Weight each micro-batch by its share, so the sum is the full-batch loss.
                let share = match self.cfg.loss_norm {
                    LossNorm::Token => batch.completion_tokens as f64 / total_tokens.max(1) as f64,
                    LossNorm::Sequence => batch.mask.dim(0)? as f64 / n_seqs as f64,
                };
                let grads = (loss * share)?.backward()?;
                acc = Some(match acc {
                    None => grads,
                    Some(mut a) => {
                        for v in &self.vars {
                            if let Some(g) = grads.get(v.as_tensor()) {
                                let sum = match a.get(v.as_tensor()) {
                                    Some(prev) => (prev + g)?,
                                    None => g.clone(),
                                };
                                a.insert(v.as_tensor(), sum);
                            }
                        }
                        a
                    }
                });
                loss_sum += stats.loss * share;
                kl_sum += stats.kl * share;
                clip_sum += stats.clip_fraction * share;
                ent_sum += entropy * share;
            }
            let mut grads = acc.expect("at least one micro-batch");
            grad_norm = clip_grad_norm(&self.vars, &mut grads, self.cfg.max_grad_norm)?;
            self.opt.step(&grads)?;
        }
        let mu = updates.max(1) as f64;
        let mean = |f: &dyn Fn(&Group) -> Vec<f64>| {
            let all: Vec<f64> = groups.iter().flat_map(f).collect();
            all.iter().sum::<f64>() / all.len().max(1) as f64
        };
        let part = |name: &str| mean(&|g: &Group| g.parts.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default());
        let metrics = StepMetrics {
            step,
            reward: mean(&|g: &Group| g.rewards.clone()),
            accuracy: part("accuracy"),
            format: part("format"),
            response_length: rollout_tokens as f64 / n_rolled.max(1) as f64,
            kl: self.reference.as_ref().map(|_| kl_sum / mu),
            clip_fraction: clip_sum / mu,
            entropy: ent_sum / mu,
            loss: loss_sum / mu,
            grad_norm,
            lr,
            zero_signal_groups: groups.iter().filter(|g| !has_signal(g)).count() as f64,
            rollout_rounds: rounds,
            groups_trained: trained.len(),
            rollout_seconds,
            train_seconds: t1.elapsed().as_secs_f64(),
            rollout_tokens_per_second: rollout_tokens as f64 / rollout_seconds.max(1e-9),
        };
        Ok((metrics, groups))
    }
}

/// A group teaches something only when its rewards differ (its advantages are not all 0).
fn has_signal(g: &Group) -> bool {
    g.advantages.iter().any(|a| *a != 0.0)
}

/// Scales the gradients so their global L2 norm is at most `max_norm` (when > 0); returns
/// the norm before clipping.
pub fn clip_grad_norm(vars: &[Var], grads: &mut GradStore, max_norm: f64) -> Result<f64, RlError> {
    let mut sq = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        }
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let scaled = (g * scale)?;
                grads.insert(v.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}
