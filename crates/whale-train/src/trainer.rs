//! The `whale train` loop: packed batches → forward (in the run's precision) → loss
//! (next-token cross-entropy + λ/D · MTP cross-entropy + sequence-wise balance loss) →
//! accumulated gradients → clip → AdamW → aux-loss-free gate-bias update → metrics,
//! validation and checkpoints.
//!
//! Everything that decides the next step is either in the checkpoint (weights, gate biases,
//! AdamW moments and step, loader epoch and cursor) or a pure function of the step (the
//! learning rate), so `--resume` reproduces an uninterrupted run bit for bit on the same
//! machine and thread count.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use whale_model::CausalLm;
use whale_nn::linear::GemmHook;
use whale_text::tokenizer::Tokenizer;

use crate::balance::{sequence_balance_loss, update_biases, LoadCounter};
use crate::checkpoint::{self, TrainerState};
use crate::config::RunConfig;
use crate::cost::{gpu_preset, model_flops, CostReport};
use crate::data::loader::{validation_sequences, LoaderState, PackedLoader};
use crate::data::shards::{self, TokenShards};
use crate::error::{Result, TrainError};
use crate::metrics::{ExpertLoad, MetricsWriter, StepRecord};
use crate::optim::{clip_grad_norm, AdamW, AdamWConfig};
use crate::params::{Param, ParamStore};
use crate::precision::{hook_for, with_precision};
use crate::schedule::LrSchedule;

/// The summed gradients of one batch and its losses (means over the batch).
pub struct BatchGradients {
    /// Gradients of the trainable parameters (see [`Trainer::trainable`]), not clipped.
    pub grads: GradStore,
    /// Main next-token cross-entropy.
    pub loss: f64,
    /// λ-weighted MTP loss, when trained.
    pub mtp_loss: Option<f64>,
    /// Sequence-wise balance loss, when on.
    pub aux_loss: Option<f64>,
    loads: LoadCounter,
}

pub struct Trainer {
    pub cfg: RunConfig,
    config_file: PathBuf,
    params: ParamStore,
    model: Box<dyn CausalLm>,
    trainable: Vec<Param>,
    biases: Vec<(usize, Var)>,
    opt: AdamW,
    sched: LrSchedule,
    shards: TokenShards,
    loader: PackedLoader,
    val: Vec<Vec<u32>>,
    hook: Option<Rc<dyn GemmHook>>,
    mtp_depth: usize,
    carry: Vec<PathBuf>,
    metrics: MetricsWriter,
    pub step: u64,
    pub tokens_seen: u64,
    /// Wall time spent in `train_step` and the tokens it trained, in this process (a
    /// resumed run's throughput excludes the steps before the checkpoint).
    train_secs: f64,
    session_tokens: u64,
}

/// Finds the tokenizer: `data.tokenizer`, else the checkpoint folder's `tokenizer.json`.
fn tokenizer(cfg: &RunConfig, file: &Path) -> Result<Tokenizer> {
    let path = match (&cfg.data.tokenizer, &cfg.model.checkpoint) {
        (Some(p), _) => p.clone(),
        (None, Some(dir)) if dir.join("tokenizer.json").exists() => dir.join("tokenizer.json"),
        _ => {
            return Err(TrainError::config(
                file,
                "data.tokenizer",
                "missing: name a tokenizer.json or a folder with one",
            ))
        }
    };
    let loaded = if path.is_dir() {
        Tokenizer::from_dir(&path)
    } else {
        Tokenizer::from_file(&path)
    };
    loaded.map_err(|e| TrainError::config(file, "data.tokenizer", e.to_string()))
}

impl Trainer {
    /// Builds the run in `cfg.out` (tokenizing the data if its cache is missing); with
    /// `resume`, continues from the newest checkpoint there.
    pub fn new(cfg: RunConfig, config_file: &Path, resume: bool) -> Result<Self> {
        let device = Device::Cpu;
        std::fs::create_dir_all(&cfg.out).map_err(|e| TrainError::io(&cfg.out, e))?;
        if !resume {
            // A fresh run into a folder with checkpoints would mix two histories (and a later
            // --resume could pick the other run's newest step).
            if let Some((step, _)) = checkpoint::list(&cfg.out.join("checkpoints"))?.pop() {
                return Err(TrainError::config(
                    config_file,
                    "out",
                    format!(
                        "{} already holds checkpoints (newest: step {step}); pass --resume or choose another run folder",
                        cfg.out.display()
                    ),
                ));
            }
        }
        let params = match (&cfg.model.config, &cfg.model.checkpoint) {
            (Some(c), _) => ParamStore::init(c, cfg.model.init_std, cfg.train.seed, &device)?,
            (None, Some(dir)) => ParamStore::load(dir, &device)?,
            (None, None) => {
                return Err(TrainError::config(
                    config_file,
                    "model",
                    "no config or checkpoint",
                ))
            }
        };
        let model = params.model()?;
        let vocab = model.info().vocab_size;
        let max_pos = model.info().max_position_embeddings;
        if cfg.train.seq_len > max_pos {
            return Err(TrainError::config(
                config_file,
                "train.seq_len",
                format!(
                    "{} is more than the model's max_position_embeddings {max_pos}",
                    cfg.train.seq_len
                ),
            ));
        }
        let tok = tokenizer(&cfg, config_file)?;
        if tok.vocab_size() > vocab {
            return Err(TrainError::config(
                config_file,
                "data.tokenizer",
                format!(
                    "{} ids, more than the model's vocab_size {vocab}",
                    tok.vocab_size()
                ),
            ));
        }
        let cache = cfg
            .data
            .shard_dir
            .clone()
            .unwrap_or_else(|| cfg.out.join("cache"));
        let shards = shards::prepare(&cfg.data, &tok, &cache, config_file, cfg.train.progress)?;
        let val = validation_sequences(&shards.val, cfg.train.seq_len, cfg.train.val_sequences)?;
        let mtp_available = model.info().mtp_depth;
        let mtp_depth = cfg.mtp.depth.unwrap_or(mtp_available);
        if mtp_depth > mtp_available {
            return Err(TrainError::config(
                config_file,
                "mtp.depth",
                format!("{mtp_depth} asked, the model has {mtp_available} MTP module(s)"),
            ));
        }
        let trainable = params.trainable();
        let o = &cfg.optim;
        let opt = AdamW::new(
            trainable.clone(),
            AdamWConfig {
                beta1: o.beta1,
                beta2: o.beta2,
                eps: o.eps,
                weight_decay: o.weight_decay,
            },
        )?;
        let hook = hook_for(
            cfg.train.precision,
            params.head_weight().map(|v| v.as_tensor()),
        );
        let sched = LrSchedule::new(&cfg.schedule, cfg.optim.lr, cfg.train.steps);
        let biases = params.gate_biases();
        // The tokenizer and its config travel with every checkpoint, so it runs on its own.
        let mut carry = vec![tok.source().to_path_buf()];
        if let Some(dir) = tok.source().parent() {
            for name in ["tokenizer_config.json", "special_tokens_map.json"] {
                let p = dir.join(name);
                if p.exists() && p != tok.source() {
                    carry.push(p);
                }
            }
        }
        let mut t = Trainer {
            loader: PackedLoader::new(
                &shards.train,
                cfg.train.seq_len,
                cfg.train.seed,
                LoaderState::default(),
            )?,
            metrics: MetricsWriter::open(&cfg.out, if resume { u64::MAX } else { 0 })?,
            cfg,
            config_file: config_file.to_path_buf(),
            params,
            model,
            trainable,
            biases,
            opt,
            sched,
            shards,
            val,
            hook,
            mtp_depth,
            carry,
            step: 0,
            tokens_seen: 0,
            train_secs: 0.0,
            session_tokens: 0,
        };
        if resume {
            let root = t.checkpoint_root();
            let (_, dir) = checkpoint::list(&root)?.pop().ok_or_else(|| {
                TrainError::checkpoint(&root, "--resume", "no checkpoint to resume from")
            })?;
            let state = checkpoint::restore(&dir, &t.params, &mut t.opt)?;
            t.step = state.step;
            t.tokens_seen = state.tokens_seen;
            t.loader = PackedLoader::new(
                &t.shards.train,
                t.cfg.train.seq_len,
                t.cfg.train.seed,
                state.loader,
            )?;
            t.metrics = MetricsWriter::open(&t.cfg.out, state.step)?;
        }
        Ok(t)
    }

    pub fn checkpoint_root(&self) -> PathBuf {
        self.cfg.out.join("checkpoints")
    }

    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The parameters AdamW updates (all but the gate biases), name order.
    pub fn trainable(&self) -> &[Param] {
        &self.trainable
    }

    pub fn shards(&self) -> &TokenShards {
        &self.shards
    }

    /// Losses of one micro-batch of `seqs` (each `seq_len + 1` tokens): (total loss to
    /// backpropagate, main CE, MTP CE, balance loss) and its routing counted into `loads`.
    fn micro_losses(
        &self,
        seqs: &[Vec<u32>],
        loads: Option<&mut LoadCounter>,
    ) -> Result<(Tensor, f64, Option<f64>, Option<f64>)> {
        let b = seqs.len();
        let width = seqs[0].len();
        let t = width - 1;
        let flat: Vec<u32> = seqs.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, (b, width), self.params.device())?;
        let input = ids.narrow(1, 0, t)?.contiguous()?;
        let out = with_precision(&self.hook, || self.model.forward_train(&input))?;
        let vocab = self.model.info().vocab_size;
        let ce = |logits: &Tensor, start: usize, len: usize| -> Result<Tensor> {
            let targets = ids.narrow(1, start, len)?.contiguous()?.flatten_all()?;
            Ok(whale_nn::cross_entropy::cross_entropy(&logits.reshape((b * len, vocab))?, &targets)?)
        };
        let main = ce(&out.logits, 1, t)?;
        let main_v = main.to_scalar::<f32>()? as f64;
        let mut loss = main;
        let mut mtp_v = None;
        if self.mtp_depth > 0 && self.cfg.mtp.loss_weight > 0.0 {
            let mut sum: Option<Tensor> = None;
            for (k0, logits) in out.mtp_logits.iter().take(self.mtp_depth).enumerate() {
                let k = k0 + 1;
                // Row i of depth k predicts token i + k + 1 of the window.
                let l = ce(logits, k + 1, t - k)?;
                sum = Some(match sum {
                    Some(s) => (s + l)?,
                    None => l,
                });
            }
            if let Some(s) = sum {
                let mtp = (s * (self.cfg.mtp.loss_weight / self.mtp_depth as f64))?;
                mtp_v = Some(mtp.to_scalar::<f32>()? as f64);
                loss = (loss + mtp)?;
            }
        }
        let mut aux_v = None;
        if self.cfg.moe.seq_aux_alpha > 0.0 {
            if let Some(aux) = sequence_balance_loss(&out.routing, b, self.cfg.moe.seq_aux_alpha)? {
                aux_v = Some(aux.to_scalar::<f32>()? as f64);
                loss = (loss + aux)?;
            }
        }
        if let Some(l) = loads {
            l.add(&out.routing)?;
        }
        Ok((loss, main_v, mtp_v, aux_v))
    }

    /// One optimizer step: the loader's next `batch_size` sequences in
    /// `batch_size / micro_batch` micro-batches.
    pub fn train_step(&mut self) -> Result<StepRecord> {
        let start = Instant::now();
        let windows = self
            .loader
            .next_batch(&self.shards.train, self.cfg.train.batch_size)?;
        self.step_from(&windows, start)
    }

    /// One optimizer step on the given windows (each `seq_len + 1` tokens, `batch_size` of
    /// them) instead of the loader's: what the HF-transformers goldens test drives. The loader
    /// does not move.
    pub fn train_step_on(&mut self, windows: Vec<Vec<u32>>) -> Result<StepRecord> {
        self.check_windows(&windows)?;
        self.step_from(&windows, Instant::now())
    }

    /// The accumulated gradients and losses of one batch of windows (each `seq_len + 1`
    /// tokens) in micro-batches of `micro_batch`, before clipping: what [`Trainer::train_step_on`]
    /// would apply. Nothing is updated.
    pub fn gradients_on(&self, windows: &[Vec<u32>]) -> Result<BatchGradients> {
        self.check_windows(windows)?;
        self.accumulate(windows)
    }

    fn check_windows(&self, windows: &[Vec<u32>]) -> Result<()> {
        let (n, width) = (self.cfg.train.batch_size, self.cfg.train.seq_len + 1);
        if windows.len() != n || windows.iter().any(|w| w.len() != width) {
            return Err(TrainError::data(
                "<batch>",
                format!(
                    "expected {n} windows of {width} tokens (train.batch_size, train.seq_len + 1)"
                ),
            ));
        }
        Ok(())
    }

    /// Forward/backward over `windows` in micro-batches, the gradients summed with weight
    /// `1 / n_micro` each.
    fn accumulate(&self, windows: &[Vec<u32>]) -> Result<BatchGradients> {
        let mb = self.cfg.micro_batch();
        let n_micro = windows.len().div_ceil(mb);
        let mut grads: Option<GradStore> = None;
        let mut loads = LoadCounter::default();
        let (mut ce, mut mtp, mut aux) = (0.0, None::<f64>, None::<f64>);
        for seqs in windows.chunks(mb) {
            let (loss, c, m, a) = self.micro_losses(seqs, Some(&mut loads))?;
            // Every micro-batch holds the same number of tokens, so the mean of their means
            // is the batch mean.
            let share = 1.0 / n_micro as f64;
            ce += c * share;
            if let Some(m) = m {
                *mtp.get_or_insert(0.0) += m * share;
            }
            if let Some(a) = a {
                *aux.get_or_insert(0.0) += a * share;
            }
            let g = (loss * share)?.backward()?;
            grads = Some(match grads {
                None => g,
                Some(mut acc) => {
                    for p in &self.trainable {
                        if let Some(gi) = g.get(p.var.as_tensor()) {
                            let sum = match acc.get(p.var.as_tensor()) {
                                Some(prev) => (prev + gi)?,
                                None => gi.clone(),
                            };
                            acc.insert(p.var.as_tensor(), sum);
                        }
                    }
                    acc
                }
            });
        }
        let grads = grads.ok_or_else(|| TrainError::data("<batch>", "no micro-batch"))?;
        Ok(BatchGradients {
            grads,
            loss: ce,
            mtp_loss: mtp,
            aux_loss: aux,
            loads,
        })
    }

    fn step_from(&mut self, windows: &[Vec<u32>], start: Instant) -> Result<StepRecord> {
        let lr = self.sched.lr_at(self.step);
        let BatchGradients {
            mut grads,
            loss: ce,
            mtp_loss: mtp,
            aux_loss: aux,
            loads,
        } = self.accumulate(windows)?;
        let next_step = self.step + 1;
        if !ce.is_finite() {
            return Err(TrainError::Diverged {
                step: next_step,
                what: "loss".into(),
                value: ce,
            });
        }
        let grad_norm = clip_grad_norm(&self.trainable, &mut grads, self.cfg.optim.grad_clip)?;
        if !grad_norm.is_finite() {
            return Err(TrainError::Diverged {
                step: next_step,
                what: "gradient norm".into(),
                value: grad_norm,
            });
        }
        self.opt.step(&grads, lr)?;
        let layer_loads = loads.loads();
        update_biases(&self.biases, &layer_loads, self.cfg.moe.bias_update_speed)?;
        self.step = next_step;
        let tokens = (self.cfg.train.batch_size * self.cfg.train.seq_len) as u64;
        self.tokens_seen += tokens;
        let secs = start.elapsed().as_secs_f64();
        self.train_secs += secs;
        self.session_tokens += tokens;
        Ok(StepRecord {
            step: self.step,
            loss: ce,
            mtp_loss: mtp,
            aux_loss: aux,
            val_loss: None,
            lr,
            grad_norm,
            tokens,
            tokens_per_s: tokens as f64 / secs.max(1e-9),
            expert_load: layer_loads
                .iter()
                .map(|l| ExpertLoad {
                    layer: l.layer,
                    max_over_mean: l.max_over_mean,
                    dead: l.dead,
                })
                .collect(),
            rl: Default::default(),
        })
    }

    /// Mean next-token cross-entropy over the validation sequences (None without any).
    pub fn evaluate(&self) -> Result<Option<f64>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let mut sum = 0.0;
        let chunks: Vec<&[Vec<u32>]> = self.val.chunks(self.cfg.micro_batch()).collect();
        let mut weight = 0usize;
        for c in &chunks {
            let (_, ce, _, _) = self.micro_losses(c, None)?;
            sum += ce * c.len() as f64;
            weight += c.len();
        }
        Ok(Some(sum / weight as f64))
    }

    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let state = TrainerState {
            step: self.step,
            loader: self.loader.state(),
            tokens_seen: self.tokens_seen,
        };
        checkpoint::save(
            &self.checkpoint_root(),
            &self.params,
            &self.opt,
            &state,
            &self.carry,
            self.cfg.checkpoint.keep,
        )
    }

    /// The cost report: this run's measured throughput and the projection for
    /// `cost.target_tokens` (default: the tokens this run trains).
    pub fn cost_report(&self) -> Result<CostReport> {
        cost_report(
            &self.cfg,
            &self.config_file,
            self.params.config(),
            self.mtp_depth,
            self.measured_tokens_per_s(),
        )
    }

    fn measured_tokens_per_s(&self) -> Option<f64> {
        (self.train_secs > 0.0).then(|| self.session_tokens as f64 / self.train_secs)
    }

    /// Trains to `train.steps`, evaluating and checkpointing on schedule; returns every
    /// step's record (also written to metrics.jsonl).
    pub fn run(&mut self) -> Result<Vec<StepRecord>> {
        let total = self.cfg.train.steps;
        let bar = if self.cfg.train.progress {
            let b = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{bar:30} step {pos}/{len} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            b.set_style(style);
            b.set_position(self.step);
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        let mut records = Vec::new();
        while self.step < total {
            let mut rec = self.train_step()?;
            let every = self.cfg.train.eval_every;
            if (every > 0 && self.step % every == 0) || self.step == total {
                rec.val_loss = self.evaluate()?;
            }
            self.metrics.write(&rec)?;
            let ck = self.cfg.checkpoint.every;
            if (ck > 0 && self.step % ck == 0) || self.step == total {
                self.save_checkpoint()?;
            }
            bar.set_position(self.step);
            bar.set_message(format!(
                "loss {:.4} | {:.0} tok/s | lr {:.2e}",
                rec.loss, rec.tokens_per_s, rec.lr
            ));
            records.push(rec);
        }
        bar.finish_and_clear();
        Ok(records)
    }
}

/// The cost report of a run config without training (`whale train --cost-only`).
pub fn cost_report(
    cfg: &RunConfig,
    file: &Path,
    model: &whale_core::config::ModelConfig,
    mtp_depth: usize,
    tokens_per_s: Option<f64>,
) -> Result<CostReport> {
    let flops = model_flops(model, cfg.train.seq_len, mtp_depth);
    let gpu_flops = match cfg.cost.gpu_flops {
        Some(f) if f > 0.0 => f,
        Some(f) => {
            return Err(TrainError::config(
                file,
                "cost.gpu_flops",
                format!("must be positive, found {f}"),
            ))
        }
        None => gpu_preset(&cfg.cost.gpu).ok_or_else(|| {
            TrainError::config(
                file,
                "cost.gpu",
                format!(
                    "unknown GPU `{}` (h800, h100, a100; or set gpu_flops)",
                    cfg.cost.gpu
                ),
            )
        })?,
    };
    let target = cfg
        .cost
        .target_tokens
        .unwrap_or((cfg.tokens_per_step() as u64 * cfg.train.steps) as f64);
    Ok(CostReport::new(
        &flops,
        tokens_per_s,
        target,
        &cfg.cost.gpu,
        gpu_flops,
        cfg.cost.usd_per_gpu_hour,
    ))
}
