//! Per-step metrics, one JSON object a line in `RUN/metrics.jsonl` (what `whale plot`
//! draws). A resumed run first drops the lines of steps after its checkpoint, so the file
//! describes exactly one history.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

pub const METRICS_FILE: &str = "metrics.jsonl";

/// One MoE layer's load in one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpertLoad {
    pub layer: usize,
    pub max_over_mean: f64,
    /// Experts that got no token.
    pub dead: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Optimizer steps completed (1-based).
    pub step: u64,
    /// Main next-token cross-entropy (mean over the step's tokens).
    pub loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtp_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    pub lr: f64,
    /// Before clipping.
    pub grad_norm: f64,
    pub tokens: u64,
    pub tokens_per_s: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expert_load: Vec<ExpertLoad>,
    /// What reinforcement-learning runs (`whale grpo`) log besides.
    #[serde(flatten)]
    pub rl: RlMetrics,
}

/// A GRPO step's rollout and policy statistics; all absent in a training run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RlMetrics {
    /// Mean total reward of the step's rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    /// Share of rollouts the accuracy reward accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Held-out greedy accuracy, on the steps that measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
    /// Mean completion tokens per rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_length: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_fraction: Option<f64>,
}

pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Opens `dir/metrics.jsonl` for appending, keeping only records with `step <= keep_upto`.
    pub fn open(dir: &Path, keep_upto: u64) -> Result<Self> {
        let path = dir.join(METRICS_FILE);
        if path.exists() {
            let kept: Vec<StepRecord> = read(&path)?
                .into_iter()
                .filter(|r| r.step <= keep_upto)
                .collect();
            let mut text = String::new();
            for r in &kept {
                text += &to_line(r, &path)?;
            }
            std::fs::write(&path, text).map_err(|e| TrainError::io(&path, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(MetricsWriter { path, file })
    }

    pub fn write(&mut self, r: &StepRecord) -> Result<()> {
        let line = to_line(r, &self.path)?;
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

fn to_line(r: &StepRecord, path: &Path) -> Result<String> {
    let mut s = serde_json::to_string(r).map_err(|e| TrainError::data(path, e.to_string()))?;
    s.push('\n');
    Ok(s)
}

/// Every record of a metrics file; a malformed line is an error naming it.
pub fn read(path: &Path) -> Result<Vec<StepRecord>> {
    let f = File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| TrainError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let r = serde_json::from_str(&line)
            .map_err(|e| TrainError::data(path, format!("line {}: {e}", i + 1)))?;
        out.push(r);
    }
    Ok(out)
}
