//! RoPE frequency scaling as written in HF configs (`rope_scaling`): YaRN (DeepSeek-V2/V3),
//! Llama 3 (R1-Distill-Llama) and linear interpolation. The frequencies themselves are
//! computed in `whale-nn::rope`; this is only the typed, validated config.

use super::require;
use crate::Result;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    Yarn {
        factor: f64,
        original_max_position_embeddings: usize,
        beta_fast: f64,
        beta_slow: f64,
        mscale: f64,
        mscale_all_dim: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
    Linear {
        factor: f64,
    },
}

/// The raw JSON object: HF spells the kind `type` (old) or `rope_type` (new).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RawRopeScaling {
    #[serde(rename = "type")]
    kind: Option<String>,
    rope_type: Option<String>,
    factor: Option<f64>,
    original_max_position_embeddings: Option<usize>,
    beta_fast: Option<f64>,
    beta_slow: Option<f64>,
    mscale: Option<f64>,
    mscale_all_dim: Option<f64>,
    low_freq_factor: Option<f64>,
    high_freq_factor: Option<f64>,
}

impl RawRopeScaling {
    /// `None` for `default` (no scaling); `max_position_embeddings` is YaRN's fallback for
    /// `original_max_position_embeddings`, as in transformers.
    pub(crate) fn resolve(self, max_position_embeddings: usize) -> Result<Option<RopeScaling>> {
        let kind = self.rope_type.clone().or(self.kind.clone()).unwrap_or_else(|| "default".into());
        let factor = |s: &Self| -> Result<f64> {
            let f = s.factor.ok_or_else(|| {
                crate::WhaleError::invalid_config("rope_scaling.factor", format!("required for rope type {kind:?}"))
            })?;
            require(f.is_finite() && f > 0.0, "rope_scaling.factor", || format!("must be > 0, found {f}"))?;
            Ok(f)
        };
        let scaling = match kind.as_str() {
            "default" => return Ok(None),
            "yarn" => RopeScaling::Yarn {
                factor: factor(&self)?,
                original_max_position_embeddings: self
                    .original_max_position_embeddings
                    .unwrap_or(max_position_embeddings),
                beta_fast: self.beta_fast.unwrap_or(32.0),
                beta_slow: self.beta_slow.unwrap_or(1.0),
                mscale: self.mscale.unwrap_or(1.0),
                mscale_all_dim: self.mscale_all_dim.unwrap_or(0.0),
            },
            "llama3" => RopeScaling::Llama3 {
                factor: factor(&self)?,
                low_freq_factor: self.low_freq_factor.unwrap_or(1.0),
                high_freq_factor: self.high_freq_factor.unwrap_or(4.0),
                original_max_position_embeddings: self.original_max_position_embeddings.ok_or_else(|| {
                    crate::WhaleError::invalid_config(
                        "rope_scaling.original_max_position_embeddings",
                        "required for rope type \"llama3\"",
                    )
                })?,
            },
            "linear" => RopeScaling::Linear { factor: factor(&self)? },
            other => {
                return Err(crate::WhaleError::invalid_config(
                    "rope_scaling.rope_type",
                    format!("unsupported rope scaling {other:?}; supported: default, yarn, llama3, linear"),
                ))
            }
        };
        if let RopeScaling::Yarn { original_max_position_embeddings, beta_fast, beta_slow, .. } = &scaling {
            super::positive(*original_max_position_embeddings, "rope_scaling.original_max_position_embeddings")?;
            require(*beta_slow > 0.0 && beta_fast > beta_slow, "rope_scaling.beta_fast", || {
                format!("need beta_fast > beta_slow > 0, found beta_fast {beta_fast}, beta_slow {beta_slow}")
            })?;
        }
        if let RopeScaling::Llama3 { low_freq_factor, high_freq_factor, .. } = &scaling {
            require(high_freq_factor > low_freq_factor, "rope_scaling.high_freq_factor", || {
                format!("must be > low_freq_factor ({low_freq_factor}), found {high_freq_factor}")
            })?;
        }
        Ok(Some(scaling))
    }
}
