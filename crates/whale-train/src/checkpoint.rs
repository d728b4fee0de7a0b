//! Training checkpoints: an HF folder (`config.json` + `model.safetensors`, loadable by
//! `whale generate` and `whale_model::load_model`) plus what resuming needs:
//! `optimizer.safetensors` (AdamW moments and step), `trainer_state.json` (step, data-loader
//! state, tokens seen) and `manifest.json` (SHA-256 of every other file).
//!
//! A checkpoint is written into a temp folder, every file fsynced, the folder renamed to
//! `step-NNNNNNNN` and the parent fsynced, so a crash leaves either the whole checkpoint or
//! none. Reading verifies the manifest first: a truncated or altered file is an error that
//! names it, never a silently different run.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::loader::LoaderState;
use crate::data::shards::write_synced;
use crate::error::{Result, TrainError};
use crate::optim::AdamW;
use crate::params::ParamStore;

pub const MANIFEST: &str = "manifest.json";
pub const STATE: &str = "trainer_state.json";
pub const OPTIMIZER: &str = "optimizer.safetensors";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: u64,
    pub loader: LoaderState,
    pub tokens_seen: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    /// File name → lowercase hex SHA-256.
    files: BTreeMap<String, String>,
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| TrainError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn fsync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(path, e))
}

/// The folder name of the checkpoint after `step` steps.
pub fn step_dir(root: &Path, step: u64) -> PathBuf {
    root.join(format!("step-{step:08}"))
}

/// Writes a checkpoint under `root` and deletes all but the newest `keep`. `carry` are extra
/// files copied in (the tokenizer, so the folder runs on its own).
pub fn save(
    root: &Path,
    params: &ParamStore,
    opt: &AdamW,
    state: &TrainerState,
    carry: &[PathBuf],
    keep: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| TrainError::io(root, e))?;
    let dir = step_dir(root, state.step);
    let tmp = root.join(format!(".step-{:08}.tmp", state.step));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let mut files = params.write_hf(&tmp)?;
    let opt_path = tmp.join(OPTIMIZER);
    opt.save(&opt_path)?;
    files.push(opt_path);
    let state_path = tmp.join(STATE);
    let json = serde_json::to_string_pretty(state)
        .map_err(|e| TrainError::checkpoint(&state_path, "<json>", e.to_string()))?;
    write_synced(&state_path, json.as_bytes())?;
    files.push(state_path);
    for src in carry {
        if let Some(name) = src.file_name() {
            let dst = tmp.join(name);
            std::fs::copy(src, &dst).map_err(|e| TrainError::io(src, e))?;
            files.push(dst);
        }
    }
    let mut manifest = Manifest {
        files: BTreeMap::new(),
    };
    for f in &files {
        fsync(f)?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        manifest.files.insert(name, sha256_file(f)?);
    }
    let mpath = tmp.join(MANIFEST);
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| TrainError::checkpoint(&mpath, "<json>", e.to_string()))?;
    write_synced(&mpath, json.as_bytes())?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&dir, e))?;
    fsync(root)?;
    prune(root, keep)?;
    Ok(dir)
}

/// Finished checkpoints under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(TrainError::io(root, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io(root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn prune(root: &Path, keep: usize) -> Result<()> {
    let all = list(root)?;
    let excess = all.len().saturating_sub(keep);
    for (_, dir) in all.into_iter().take(excess) {
        std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    }
    Ok(())
}

/// Checks every file of the checkpoint `dir` against its manifest and reads its state.
pub fn verify(dir: &Path) -> Result<TrainerState> {
    let mpath = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&mpath).map_err(|e| TrainError::io(&mpath, e))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| TrainError::checkpoint(&mpath, "<json>", e.to_string()))?;
    for required in [
        whale_model::CONFIG_FILE,
        "model.safetensors",
        OPTIMIZER,
        STATE,
    ] {
        if !manifest.files.contains_key(required) {
            return Err(TrainError::checkpoint(
                &mpath,
                required,
                "not listed in the manifest",
            ));
        }
    }
    for (name, want) in &manifest.files {
        let path = dir.join(name);
        if !path.exists() {
            return Err(TrainError::checkpoint(&path, name, "file missing"));
        }
        let got = sha256_file(&path)?;
        if &got != want {
            return Err(TrainError::checkpoint(
                &path,
                name,
                format!("checksum mismatch (manifest {want}, file {got}): the file is corrupted"),
            ));
        }
    }
    let spath = dir.join(STATE);
    let text = std::fs::read_to_string(&spath).map_err(|e| TrainError::io(&spath, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::checkpoint(&spath, "<json>", e.to_string()))
}

/// Verifies `dir` and loads its weights and optimizer state into `params` / `opt`.
pub fn restore(dir: &Path, params: &ParamStore, opt: &mut AdamW) -> Result<TrainerState> {
    let state = verify(dir)?;
    let cfg_path = dir.join(whale_model::CONFIG_FILE);
    let cfg = std::fs::read_to_string(&cfg_path).map_err(|e| TrainError::io(&cfg_path, e))?;
    let same = serde_json::from_str::<serde_json::Value>(&cfg).ok()
        == serde_json::from_str::<serde_json::Value>(params.config_json()).ok();
    if !same {
        return Err(TrainError::checkpoint(
            &cfg_path,
            "config.json",
            "differs from the model of this run",
        ));
    }
    params.load_weights(dir)?;
    opt.load(&dir.join(OPTIMIZER))?;
    if opt.steps_taken() != state.step {
        return Err(TrainError::checkpoint(
            dir.join(OPTIMIZER),
            "__step__",
            format!(
                "optimizer has {} steps, trainer_state.json says {}",
                opt.steps_taken(),
                state.step
            ),
        ));
    }
    Ok(state)
}
