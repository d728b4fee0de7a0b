//! The parameters being trained: every tensor of a whale-model model as a candle `Var`
//! (f32 master weights), created by building the model once over
//! `Weights::for_training`, so training and inference share one model implementation.
//!
//! Fresh weights are drawn from a seeded ChaCha8 stream (candle's CPU rng cannot be
//! seeded), matrices N(0, init_std²) and vectors as the model creates them (norms 1,
//! biases 0), so two runs with one seed start from the same bits.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use whale_core::config::ModelConfig;
use whale_core::Weights;
use whale_model::{model_from_config, CausalLm, CONFIG_FILE};

use crate::error::{Result, TrainError};

/// Parameters that gradients never touch: the V3 gate bias follows the aux-loss-free rule.
pub const GATE_BIAS_SUFFIX: &str = "e_score_correction_bias";

/// One named parameter and whether AdamW decays it.
#[derive(Clone)]
pub struct Param {
    pub name: String,
    pub var: Var,
    /// Weight decay applies to matrices (embeddings included); not to norms or biases.
    pub decay: bool,
}

pub struct ParamStore {
    varmap: VarMap,
    config: ModelConfig,
    config_json: String,
    device: Device,
    /// Every Var by name, sorted (optimizer and checkpoint order).
    named: Vec<(String, Var)>,
}

impl ParamStore {
    /// Fresh weights for the HF `config.json` at `config_path`.
    pub fn init(config_path: &Path, init_std: f64, seed: u64, device: &Device) -> Result<Self> {
        let config_json =
            std::fs::read_to_string(config_path).map_err(|e| TrainError::io(config_path, e))?;
        let store = Self::build(config_json, config_path, device)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (_, var) in &store.named {
            if var.rank() >= 2 {
                let n = var.elem_count();
                let values: Vec<f32> = (0..n)
                    .map(|_| (normal(&mut rng) * init_std) as f32)
                    .collect();
                var.set(&Tensor::from_vec(values, var.shape(), device)?)?;
            }
        }
        Ok(store)
    }

    /// The weights of the HF checkpoint folder `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let config_json =
            std::fs::read_to_string(&config_path).map_err(|e| TrainError::io(&config_path, e))?;
        let store = Self::build(config_json, &config_path, device)?;
        store.load_weights(dir)?;
        Ok(store)
    }

    /// Overwrites every parameter with the tensors of the checkpoint folder `dir`.
    pub fn load_weights(&self, dir: &Path) -> Result<()> {
        let ckpt = Weights::from_dir(dir, DType::F32, &self.device)?;
        for (name, var) in &self.named {
            if !ckpt.contains(name) {
                return Err(TrainError::checkpoint(
                    dir,
                    name,
                    "tensor missing from the checkpoint",
                ));
            }
            var.set(&ckpt.get(var.dims(), name)?)?;
        }
        Ok(())
    }

    fn build(config_json: String, config_path: &Path, device: &Device) -> Result<Self> {
        let config = ModelConfig::from_json_str(&config_json, config_path)?;
        let varmap = VarMap::new();
        // Building once creates every Var the model needs, under its checkpoint name.
        model_from_config(
            &config,
            &Weights::for_training(&varmap, 0.02, DType::F32, device),
        )?;
        let mut named: Vec<(String, Var)> = {
            let data = varmap.data().lock().map_err(|_| poisoned())?;
            data.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
        };
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(ParamStore {
            varmap,
            config,
            config_json,
            device: device.clone(),
            named,
        })
    }

    /// A model whose weights are these Vars (an optimizer step is seen by it at once).
    pub fn model(&self) -> Result<Box<dyn CausalLm>> {
        Ok(model_from_config(
            &self.config,
            &Weights::for_training(&self.varmap, 0.02, DType::F32, &self.device),
        )?)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every parameter, name order.
    pub fn all(&self) -> &[(String, Var)] {
        &self.named
    }

    /// The parameters the optimizer updates (all but the gate biases), name order.
    pub fn trainable(&self) -> Vec<Param> {
        self.named
            .iter()
            .filter(|(n, _)| !n.ends_with(GATE_BIAS_SUFFIX))
            .map(|(n, v)| Param {
                name: n.clone(),
                var: v.clone(),
                decay: v.rank() >= 2,
            })
            .collect()
    }

    /// `(layer index, bias)` of every aux-loss-free gate (main layers and MTP blocks).
    pub fn gate_biases(&self) -> Vec<(usize, Var)> {
        let mut out: Vec<(usize, Var)> = self
            .named
            .iter()
            .filter(|(n, _)| n.ends_with(GATE_BIAS_SUFFIX))
            .filter_map(|(n, v)| {
                let layer = n
                    .strip_prefix("model.layers.")?
                    .split('.')
                    .next()?
                    .parse()
                    .ok()?;
                Some((layer, v.clone()))
            })
            .collect();
        out.sort_by_key(|(l, _)| *l);
        out
    }

    /// The output head's weight (kept out of FP8 GEMMs).
    pub fn head_weight(&self) -> Option<&Var> {
        let name = if self.tied() {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        self.named.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn tied(&self) -> bool {
        match &self.config {
            ModelConfig::DeepSeek(c) => c.tie_word_embeddings,
            ModelConfig::Llama(c) => c.tie_word_embeddings,
        }
    }

    pub fn parameter_count(&self) -> usize {
        self.named.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Writes `config.json` and `model.safetensors` (f32) into the existing folder `dir`.
    pub fn write_hf(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let config = dir.join(CONFIG_FILE);
        std::fs::write(&config, &self.config_json).map_err(|e| TrainError::io(&config, e))?;
        let weights = dir.join("model.safetensors");
        let tensors: Vec<(String, Tensor)> = self
            .named
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&tensors.into_iter().collect(), &weights)?;
        Ok(vec![config, weights])
    }
}

fn poisoned() -> TrainError {
    TrainError::Tensor(candle_core::Error::Msg(
        "parameter map lock poisoned".into(),
    ))
}

/// A standard normal draw (Box-Muller; one of the pair is dropped, which keeps the stream
/// position a pure function of the draw count).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    use rand::Rng;
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
