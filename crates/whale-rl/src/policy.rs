//! The policy being trained: a checkpoint loaded into candle Vars (FP32 master weights), from
//! which any number of models can be built over the same storage — one for the engine that
//! samples rollouts, one for the training forward — so every optimizer step is immediately
//! what the next rollout samples from. Saved as an HF folder (config.json + model.safetensors),
//! atomically.

use candle_core::{DType, Device, Var};
use candle_nn::VarMap;
use std::path::{Path, PathBuf};
use whale_core::config::ModelConfig;
use whale_core::{Result, WhaleError, Weights};
use whale_model::{model_from_config, CausalLm, CONFIG_FILE};

/// Parameters never touched by the optimizer: the V3 gate bias is set by the aux-loss-free
/// balancing rule, not by gradients.
pub const FROZEN_SUFFIXES: &[&str] = &["e_score_correction_bias"];

pub struct Policy {
    varmap: VarMap,
    config: ModelConfig,
    config_json: String,
    source: PathBuf,
    device: Device,
}

/// Files copied from the source folder into every saved checkpoint, so it runs on its own.
const CARRIED_FILES: &[&str] = &["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"];

impl Policy {
    /// Loads the HF folder `dir` into fresh Vars (f32).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let config_json = std::fs::read_to_string(&config_path).map_err(|e| WhaleError::Io { path: config_path.clone(), source: e })?;
        let config = ModelConfig::from_json_str(&config_json, &config_path)?;
        let varmap = VarMap::new();
        // Building once creates every Var the model needs, under its checkpoint name.
        model_from_config(&config, &Weights::for_training(&varmap, 0.02, DType::F32, device))?;
        let ckpt = Weights::from_dir(dir, DType::F32, device)?;
        let data = varmap.data().lock().expect("varmap lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            if !ckpt.contains(name) {
                return Err(WhaleError::MissingTensor { name: name.clone(), location: dir.display().to_string() });
            }
            var.set(&ckpt.get(var.dims(), name)?)?;
        }
        drop(data);
        Ok(Policy { varmap, config, config_json, source: dir.to_path_buf(), device: device.clone() })
    }

    /// A freshly initialized model (N(0, `init_std`) matrices, unit norms) from an HF
    /// `config.json`; `carry_from` is a folder whose tokenizer files saved checkpoints copy.
    pub fn init(config_path: &Path, init_std: f64, carry_from: &Path, device: &Device) -> Result<Self> {
        let config_json = std::fs::read_to_string(config_path).map_err(|e| WhaleError::Io { path: config_path.to_path_buf(), source: e })?;
        let config = ModelConfig::from_json_str(&config_json, config_path)?;
        let varmap = VarMap::new();
        model_from_config(&config, &Weights::for_training(&varmap, init_std, DType::F32, device))?;
        Ok(Policy { varmap, config, config_json, source: carry_from.to_path_buf(), device: device.clone() })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A model whose weights are this policy's Vars.
    pub fn model(&self) -> Result<Box<dyn CausalLm>> {
        model_from_config(&self.config, &Weights::for_training(&self.varmap, 0.02, DType::F32, &self.device))
    }

    /// A model for sampling over the same storage: it follows every optimizer step like
    /// [`Policy::model`], but records no autograd graph, so it runs the inference kernels
    /// (fused softmax and RoPE, batched decode attention, MLA's absorbed path). The engine
    /// that samples rollouts runs this one.
    pub fn inference_model(&self) -> Result<Box<dyn CausalLm>> {
        model_from_config(&self.config, &Weights::over_vars(&self.varmap, DType::F32, &self.device))
    }

    /// The Vars the optimizer updates, in name order.
    pub fn trainable(&self) -> Vec<Var> {
        let data = self.varmap.data().lock().expect("varmap lock");
        let mut named: Vec<(&String, &Var)> =
            data.iter().filter(|(n, _)| !FROZEN_SUFFIXES.iter().any(|s| n.ends_with(s))).collect();
        named.sort_by_key(|(n, _)| *n);
        named.into_iter().map(|(_, v)| v.clone()).collect()
    }

    /// The V3 gate biases (`e_score_correction_bias`) in layer order; empty for other models.
    pub fn gate_biases(&self) -> Vec<Var> {
        let data = self.varmap.data().lock().expect("varmap lock");
        let mut named: Vec<(usize, Var)> = data
            .iter()
            .filter(|(n, _)| n.ends_with("e_score_correction_bias"))
            .filter_map(|(n, v)| {
                let layer = n.strip_prefix("model.layers.")?.split('.').next()?.parse().ok()?;
                Some((layer, v.clone()))
            })
            .collect();
        named.sort_by_key(|(l, _)| *l);
        named.into_iter().map(|(_, v)| v).collect()
    }

    pub fn parameter_count(&self) -> usize {
        self.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Writes `dir/config.json` and `dir/model.safetensors` through a temp folder renamed
    /// into place, so a crash never leaves a half-written checkpoint under `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let io = |path: &Path, e: std::io::Error| WhaleError::Io { path: path.to_path_buf(), source: e };
        let parent = dir.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&parent).map_err(|e| io(&parent, e))?;
        let tmp = parent.join(format!(".{}.tmp", dir.file_name().map_or("ckpt".into(), |n| n.to_string_lossy())));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        std::fs::write(tmp.join(CONFIG_FILE), &self.config_json).map_err(|e| io(&tmp, e))?;
        let weights = tmp.join("model.safetensors");
        self.varmap.save(&weights)?;
        for name in CARRIED_FILES {
            let from = self.source.join(name);
            if from.exists() {
                std::fs::copy(&from, tmp.join(name)).map_err(|e| io(&from, e))?;
            }
        }
        for f in [tmp.join(CONFIG_FILE), weights] {
            std::fs::File::open(&f).and_then(|h| h.sync_all()).map_err(|e| io(&f, e))?;
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
        Ok(())
    }
}
