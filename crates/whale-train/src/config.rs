//! run.toml: every setting of a `whale train` run (documented key by key in docs/train.md).
//!
//! The file is read as a TOML table, command-line overrides (`section.key=value`) are applied
//! to that table, and each section is then deserialized on its own with unknown keys denied,
//! so an error always names the full field (`optim.lrr`, `train.micro_batch`).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::data::config::DataConfig;
use crate::error::{Result, TrainError};

/// How the model starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// An HF `config.json` to initialize fresh weights from (any size).
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Or an HF checkpoint folder to continue from.
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// Standard deviation of the fresh matrices (DeepSeek-V3 used 0.006).
    #[serde(default = "default_init_std")]
    pub init_std: f64,
}

/// GEMM precision of the training forward/backward; master weights are always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    Fp8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    pub steps: u64,
    /// Sequences per optimizer step.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Sequences per forward/backward; `batch_size / micro_batch` gradients are accumulated.
    #[serde(default)]
    pub micro_batch: Option<usize>,
    /// Tokens per training sequence.
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub precision: Precision,
    /// Validation loss every N steps (0: only at the end).
    #[serde(default = "default_eval_every")]
    pub eval_every: u64,
    /// Validation sequences per evaluation.
    #[serde(default = "default_val_sequences")]
    pub val_sequences: usize,
    /// Show the progress bar (off in tests and when stderr is not a terminal).
    #[serde(default = "default_true")]
    pub progress: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 disables).
    #[serde(default = "default_clip")]
    pub grad_clip: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Linear warmup, then cosine to `min_lr_ratio · lr`.
    #[default]
    Cosine,
    /// Warmup-stable-decay: linear warmup, flat, then a linear decay over the last
    /// `decay_fraction` of the steps (the shape of V3's flat-then-decay schedule).
    Wsd,
    /// Linear warmup, then flat.
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    #[serde(default)]
    pub kind: ScheduleKind,
    #[serde(default)]
    pub warmup_steps: u64,
    #[serde(default = "default_min_lr_ratio")]
    pub min_lr_ratio: f64,
    #[serde(default = "default_decay_fraction")]
    pub decay_fraction: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeSection {
    /// Aux-loss-free bias update speed γ (V3: 0.001; 0 disables).
    #[serde(default = "default_gamma")]
    pub bias_update_speed: f64,
    /// Weight α of the sequence-wise balance loss (V3: 1e-4; 0 disables).
    #[serde(default = "default_alpha")]
    pub seq_aux_alpha: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtpSection {
    /// MTP depths trained (at most the model's `num_nextn_predict_layers`); unset: all.
    #[serde(default)]
    pub depth: Option<usize>,
    /// λ: the MTP loss is `λ / D · Σ_k L_k` (V3: 0.3, then 0.1).
    #[serde(default = "default_lambda")]
    pub loss_weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    /// Save every N steps (0: only at the end).
    #[serde(default)]
    pub every: u64,
    /// Checkpoints kept (older ones are deleted).
    #[serde(default = "default_keep")]
    pub keep: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostSection {
    /// Token count the projection is for (default: the run's own tokens).
    #[serde(default)]
    pub target_tokens: Option<f64>,
    /// GPU preset naming the throughput (`h800`) unless `gpu_flops` is set.
    #[serde(default = "default_gpu")]
    pub gpu: String,
    /// Achieved training FLOP/s per GPU, overriding the preset.
    #[serde(default)]
    pub gpu_flops: Option<f64>,
    #[serde(default = "default_price")]
    pub usd_per_gpu_hour: f64,
}

/// A whole run.toml.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunConfig {
    /// The run folder (metrics, checkpoints, token cache); relative to the run.toml.
    pub out: PathBuf,
    pub model: ModelSection,
    pub data: DataConfig,
    pub train: TrainSection,
    pub optim: OptimSection,
    pub schedule: ScheduleSection,
    pub moe: MoeSection,
    pub mtp: MtpSection,
    pub checkpoint: CheckpointSection,
    pub cost: CostSection,
}

fn default_init_std() -> f64 {
    0.02
}
fn default_batch() -> usize {
    8
}
fn default_seq_len() -> usize {
    256
}
fn default_eval_every() -> u64 {
    100
}
fn default_val_sequences() -> usize {
    16
}
fn default_true() -> bool {
    true
}
fn default_lr() -> f64 {
    3e-4
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.95
}
fn default_eps() -> f64 {
    1e-8
}
fn default_wd() -> f64 {
    0.1
}
fn default_clip() -> f64 {
    1.0
}
fn default_min_lr_ratio() -> f64 {
    0.1
}
fn default_decay_fraction() -> f64 {
    0.2
}
fn default_gamma() -> f64 {
    1e-3
}
fn default_alpha() -> f64 {
    1e-4
}
fn default_lambda() -> f64 {
    0.3
}
fn default_keep() -> usize {
    3
}
fn default_gpu() -> String {
    "h800".into()
}
fn default_price() -> f64 {
    2.0
}

const SECTIONS: &[&str] = &[
    "model",
    "data",
    "train",
    "optim",
    "schedule",
    "moe",
    "mtp",
    "checkpoint",
    "cost",
];

impl RunConfig {
    /// Reads `path` and applies `overrides` (`section.key=value`, value in TOML syntax; a
    /// bare word is taken as a string).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        Self::parse(&text, path, overrides)
    }

    /// Parses run.toml text; `file` names it in errors and is the base of relative paths.
    pub fn parse(text: &str, file: &Path, overrides: &[String]) -> Result<Self> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| TrainError::config(file, "<syntax>", e.to_string()))?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        for key in table.keys() {
            if key != "out" && !SECTIONS.contains(&key.as_str()) {
                return Err(TrainError::config(
                    file,
                    key,
                    format!(
                        "unknown key; expected `out` or one of the sections [{}]",
                        SECTIONS.join("], [")
                    ),
                ));
            }
        }
        let out = match table.get("out") {
            Some(toml::Value::String(s)) => PathBuf::from(s),
            Some(other) => {
                return Err(TrainError::config(
                    file,
                    "out",
                    format!("expected a path string, found {other}"),
                ))
            }
            None => return Err(TrainError::config(file, "out", "missing (the run folder)")),
        };
        let base = file.parent().unwrap_or(Path::new("."));
        let mut cfg = RunConfig {
            // `out = "."` is the run.toml's own folder (no `dir/./checkpoints` in messages).
            out: if out.is_relative() {
                base.join(out).components().filter(|c| *c != std::path::Component::CurDir).collect()
            } else {
                out
            },
            model: section(&table, "model", file)?,
            data: section(&table, "data", file)?,
            train: section(&table, "train", file)?,
            optim: section(&table, "optim", file)?,
            schedule: section(&table, "schedule", file)?,
            moe: section(&table, "moe", file)?,
            mtp: section(&table, "mtp", file)?,
            checkpoint: section(&table, "checkpoint", file)?,
            cost: section(&table, "cost", file)?,
        };
        cfg.data.resolve_paths(base);
        for p in [&mut cfg.model.config, &mut cfg.model.checkpoint]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Sequences per forward/backward.
    pub fn micro_batch(&self) -> usize {
        self.train.micro_batch.unwrap_or(self.train.batch_size)
    }

    /// Tokens trained per optimizer step.
    pub fn tokens_per_step(&self) -> usize {
        self.train.batch_size * self.train.seq_len
    }

    // `!(x > 0.0)` rather than `x <= 0.0`: NaN must be rejected too.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn validate(&self, file: &Path) -> Result<()> {
        let err = |field: &str, reason: String| Err(TrainError::config(file, field, reason));
        match (&self.model.config, &self.model.checkpoint) {
            (Some(_), Some(_)) => {
                return err("model", "set `config` or `checkpoint`, not both".into())
            }
            (None, None) => {
                return err(
                    "model",
                    "set `config` (an HF config.json) or `checkpoint` (a folder)".into(),
                )
            }
            _ => {}
        }
        let t = &self.train;
        if t.steps == 0 {
            return err("train.steps", "must be at least 1".into());
        }
        if t.batch_size == 0 {
            return err("train.batch_size", "must be at least 1".into());
        }
        let mb = self.micro_batch();
        if mb == 0 || t.batch_size % mb != 0 {
            return err(
                "train.micro_batch",
                format!("must divide batch_size {} (found {mb})", t.batch_size),
            );
        }
        if t.seq_len < 2 {
            return err(
                "train.seq_len",
                format!("must be at least 2, found {}", t.seq_len),
            );
        }
        let o = &self.optim;
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            return err(
                "optim.lr",
                format!("must be a positive number, found {}", o.lr),
            );
        }
        for (name, b) in [("optim.beta1", o.beta1), ("optim.beta2", o.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return err(name, format!("must be in [0, 1), found {b}"));
            }
        }
        if !(o.eps > 0.0) {
            return err("optim.eps", format!("must be positive, found {}", o.eps));
        }
        if !(o.weight_decay >= 0.0) || !(o.grad_clip >= 0.0) {
            return err("optim", "weight_decay and grad_clip must be ≥ 0".into());
        }
        let s = &self.schedule;
        if !(0.0..=1.0).contains(&s.min_lr_ratio) {
            return err(
                "schedule.min_lr_ratio",
                format!("must be in [0, 1], found {}", s.min_lr_ratio),
            );
        }
        if !(0.0..=1.0).contains(&s.decay_fraction) {
            return err(
                "schedule.decay_fraction",
                format!("must be in [0, 1], found {}", s.decay_fraction),
            );
        }
        if s.warmup_steps > t.steps {
            return err(
                "schedule.warmup_steps",
                format!("{} is more than train.steps {}", s.warmup_steps, t.steps),
            );
        }
        if !(self.moe.bias_update_speed >= 0.0) || !(self.moe.seq_aux_alpha >= 0.0) {
            return err(
                "moe",
                "bias_update_speed and seq_aux_alpha must be ≥ 0".into(),
            );
        }
        if !(self.mtp.loss_weight >= 0.0) {
            return err(
                "mtp.loss_weight",
                format!("must be ≥ 0, found {}", self.mtp.loss_weight),
            );
        }
        if self.checkpoint.keep == 0 {
            return err("checkpoint.keep", "must be at least 1".into());
        }
        if !(self.cost.usd_per_gpu_hour >= 0.0) {
            return err("cost.usd_per_gpu_hour", "must be ≥ 0".into());
        }
        self.data.validate(file)
    }
}

/// Deserializes `[name]` (an absent section takes every default, if it has them).
fn section<T: DeserializeOwned>(table: &toml::Table, name: &str, file: &Path) -> Result<T> {
    let value = table
        .get(name)
        .cloned()
        .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
    if !value.is_table() {
        return Err(TrainError::config(
            file,
            name,
            format!("expected a table [{name}], found {value}"),
        ));
    }
    T::deserialize(value).map_err(|e| {
        let (reason, field) = field_of_error(&e.to_string());
        TrainError::config(
            file,
            field.map_or_else(|| name.to_owned(), |f| format!("{name}.{f}")),
            reason,
        )
    })
}

/// Splits a toml/serde message into (reason, offending key): a type error ends with
/// "in `key`"; unknown and missing fields name the key as "field `key`".
fn field_of_error(msg: &str) -> (String, Option<String>) {
    let msg = msg.trim();
    let backticked = |s: &str| s.split('`').nth(1).map(str::to_owned);
    if let Some((reason, tail)) = msg.rsplit_once("\nin `") {
        let key = tail.trim_end_matches('`').to_owned();
        return (reason.trim().to_owned(), Some(key));
    }
    for marker in ["unknown field `", "missing field `"] {
        if let Some(i) = msg.find(marker) {
            return (
                msg.replace('\n', " "),
                backticked(&msg[i + marker.len() - 1..]),
            );
        }
    }
    (msg.replace('\n', " "), None)
}

/// `section.key=value` → sets `table[section][key]`.
fn apply_override(table: &mut toml::Table, o: &str) -> Result<()> {
    let bad = |reason: &str| TrainError::config("<cli>", o, reason.to_owned());
    let (key, value) = o
        .split_once('=')
        .ok_or_else(|| bad("expected section.key=value"))?;
    let value = value.trim();
    // A TOML literal (number, bool, quoted string, array) or else a bare string.
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let (last, path) = parts.split_last().ok_or_else(|| bad("empty key"))?;
    let mut cur = table;
    for p in path {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| bad("a key on the path is not a table"))?;
    }
    cur.insert(last.to_string(), parsed);
    Ok(())
}
