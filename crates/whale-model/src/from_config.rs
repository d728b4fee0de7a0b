//! Building a model of any family from a parsed config and a weight source — a checkpoint,
//! or fresh Vars for training (`Weights::for_training`). Training, RL and the engine use this
//! to put several models over the same Vars (the optimizer's updates are then seen by all).

use crate::{CausalLm, DeepSeekModel, LlamaModel};
use whale_core::config::ModelConfig;
use whale_core::{Result, Weights};

pub fn model_from_config(cfg: &ModelConfig, w: &Weights) -> Result<Box<dyn CausalLm>> {
    Ok(match cfg {
        ModelConfig::DeepSeek(c) => Box::new(DeepSeekModel::new(c, w)?),
        ModelConfig::Llama(c) => Box::new(LlamaModel::new(c, w)?),
    })
}
