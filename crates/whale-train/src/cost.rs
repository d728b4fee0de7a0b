//! Training cost: FLOPs per token from the model config and a projection of GPU-hours and
//! dollars for a token budget.
//!
//! FLOPs per trained token = `6 · N_active` (forward 2N, backward 4N; `N_active` counts the
//! matrices one token passes through: attention projections, the dense FFN or the shared +
//! top-k routed experts and the gate, the output head, not the embedding lookup) plus the
//! attention core, `3 · 2 · layers · (T/2) · heads · (d_qk + d_v)` for causal attention over
//! sequences of T tokens, plus the same for each trained MTP module.
//!
//! The H800 preset is the throughput DeepSeek-V3 itself achieved: V3 Table 1 reports 180K
//! H800-hours per trillion tokens, i.e. 1543.2 tokens/s per GPU, times V3's 2.606e11 FLOPs
//! per token (this module's count, 4K sequences, one MTP module) gives 4.022e14 FLOP/s per
//! GPU of useful work in FP8. Applying it to other models assumes the same efficiency.

use serde::Serialize;
use whale_core::config::ModelConfig;

/// Achieved training FLOP/s per H800 in DeepSeek-V3's run (see the module header).
pub const H800_ACHIEVED_FLOPS: f64 = 4.022e14;

/// GPU presets: name → achieved FLOP/s. H100 has the H800's compute (the H800 cuts
/// interconnect bandwidth); A100 scales by dense BF16 peak (312 vs 989 TFLOP/s).
pub fn gpu_preset(name: &str) -> Option<f64> {
    match name.to_ascii_lowercase().as_str() {
        "h800" | "h100" => Some(H800_ACHIEVED_FLOPS),
        "a100" => Some(H800_ACHIEVED_FLOPS * 312.0 / 989.0),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ModelFlops {
    /// Parameters one token's forward multiplies with (head included, embedding not).
    pub active_params: f64,
    pub total_params: f64,
    /// Attention-core FLOPs per trained token (forward + backward).
    pub attention_flops: f64,
    /// `6 · active_params + attention_flops` (MTP modules included).
    pub flops_per_token: f64,
}

struct Layer {
    active: f64,
    total: f64,
    /// `heads · (d_qk + d_v)`: the attention core's width.
    core: f64,
}

fn deepseek_layer(c: &whale_core::config::DeepSeekConfig, i: usize) -> Layer {
    let d = c.hidden_size as f64;
    let h = c.num_attention_heads as f64;
    let qk = c.qk_head_dim() as f64;
    let attn = match c.q_lora_rank {
        Some(r) => d * r as f64 + r as f64 * h * qk,
        None => d * h * qk,
    } + d * (c.kv_lora_rank + c.qk_rope_head_dim) as f64
        + c.kv_lora_rank as f64 * h * (c.qk_nope_head_dim + c.v_head_dim) as f64
        + h * c.v_head_dim as f64 * d;
    let (ffn_active, ffn_total) = match c.n_routed_experts {
        Some(e) if c.is_moe_layer(i) => {
            let expert = 3.0 * d * c.moe_intermediate_size as f64;
            let gate = d * e as f64;
            let shared = c.n_shared_experts as f64 * expert;
            (
                gate + shared + c.num_experts_per_tok as f64 * expert,
                gate + shared + e as f64 * expert,
            )
        }
        _ => {
            let dense = 3.0 * d * c.intermediate_size as f64;
            (dense, dense)
        }
    };
    Layer {
        active: attn + ffn_active,
        total: attn + ffn_total,
        core: h * (qk + c.v_head_dim as f64),
    }
}

/// FLOPs of training on sequences of `seq_len` tokens with `mtp_depth` MTP modules.
pub fn model_flops(cfg: &ModelConfig, seq_len: usize, mtp_depth: usize) -> ModelFlops {
    let (layers, head, embed, mtp_extra): (Vec<Layer>, f64, f64, f64) = match cfg {
        ModelConfig::DeepSeek(c) => {
            let d = c.hidden_size as f64;
            let layers = (0..c.num_hidden_layers)
                .map(|i| deepseek_layer(c, i))
                .collect();
            // An MTP module: eh_proj (2d → d) and one MoE block, then the shared head again.
            let mtp = (0..mtp_depth.min(c.num_nextn_predict_layers))
                .map(|k| deepseek_layer(c, c.num_hidden_layers + k))
                .map(|l| Layer {
                    active: l.active + 2.0 * d * d,
                    total: l.total + 2.0 * d * d,
                    core: l.core,
                })
                .collect::<Vec<_>>();
            let head = d * c.vocab_size as f64;
            let mut all: Vec<Layer> = layers;
            let n_mtp = mtp.len() as f64;
            all.extend(mtp);
            (all, head, head, n_mtp * head)
        }
        ModelConfig::Llama(c) => {
            let d = c.hidden_size as f64;
            let hd = c.head_dim as f64;
            let attn = d * c.num_attention_heads as f64 * hd * 2.0
                + 2.0 * d * c.num_key_value_heads as f64 * hd;
            let ffn = 3.0 * d * c.intermediate_size as f64;
            let core = c.num_attention_heads as f64 * 2.0 * hd;
            let layers = (0..c.num_hidden_layers)
                .map(|_| Layer {
                    active: attn + ffn,
                    total: attn + ffn,
                    core,
                })
                .collect();
            let head = d * c.vocab_size as f64;
            (
                layers,
                head,
                if c.tie_word_embeddings { 0.0 } else { head },
                0.0,
            )
        }
    };
    let active = layers.iter().map(|l| l.active).sum::<f64>() + head + mtp_extra;
    let total = layers.iter().map(|l| l.total).sum::<f64>() + head + embed;
    let attention = layers
        .iter()
        .map(|l| 3.0 * 2.0 * (seq_len as f64 / 2.0) * l.core)
        .sum::<f64>();
    ModelFlops {
        active_params: active,
        total_params: total,
        attention_flops: attention,
        flops_per_token: 6.0 * active + attention,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostReport {
    pub flops_per_token: f64,
    pub active_params: f64,
    pub total_params: f64,
    /// Measured on this machine (None for `--cost-only`).
    pub tokens_per_s: Option<f64>,
    pub achieved_flops: Option<f64>,
    pub target_tokens: f64,
    pub gpu: String,
    pub gpu_flops: f64,
    pub gpu_hours: f64,
    pub usd_per_gpu_hour: f64,
    pub usd: f64,
}

impl CostReport {
    pub fn new(
        flops: &ModelFlops,
        tokens_per_s: Option<f64>,
        target_tokens: f64,
        gpu: &str,
        gpu_flops: f64,
        usd_per_gpu_hour: f64,
    ) -> Self {
        let gpu_hours = target_tokens * flops.flops_per_token / gpu_flops / 3600.0;
        CostReport {
            flops_per_token: flops.flops_per_token,
            active_params: flops.active_params,
            total_params: flops.total_params,
            tokens_per_s,
            achieved_flops: tokens_per_s.map(|t| t * flops.flops_per_token),
            target_tokens,
            gpu: gpu.to_owned(),
            gpu_flops,
            gpu_hours,
            usd_per_gpu_hour,
            usd: gpu_hours * usd_per_gpu_hour,
        }
    }

    /// A few human-readable lines.
    pub fn render(&self) -> String {
        let mut s = format!(
            "model: {} parameters, {} active per token; {} FLOPs per trained token\n",
            si(self.total_params),
            si(self.active_params),
            si(self.flops_per_token)
        );
        if let (Some(t), Some(f)) = (self.tokens_per_s, self.achieved_flops) {
            s += &format!("this run: {t:.1} tokens/s, {} FLOP/s achieved\n", si(f));
        }
        s += &format!(
            "projection: {} tokens on {} at {} FLOP/s per GPU: {} GPU-hours, ${} at ${}/GPU-hour\n",
            si(self.target_tokens),
            self.gpu,
            si(self.gpu_flops),
            si(self.gpu_hours),
            si(self.usd),
            self.usd_per_gpu_hour
        );
        s
    }
}

/// `x` with an SI suffix and 4 significant digits (`2.664M`, `402.2T`, `1.093`).
fn si(x: f64) -> String {
    const UNITS: &[(f64, &str)] = &[
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "K"),
        (1.0, ""),
    ];
    let (scale, unit) = UNITS
        .iter()
        .copied()
        .find(|(s, _)| x.abs() >= *s)
        .unwrap_or((1.0, ""));
    let v = x / scale;
    let int_digits = if v.abs() >= 1.0 {
        v.abs().log10().floor() as usize + 1
    } else {
        1
    };
    format!("{v:.*}{unit}", 4usize.saturating_sub(int_digits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// DeepSeek-V3's config.json (the fields that size it), as released.
    const V3: &str = r#"{"model_type":"deepseek_v3","vocab_size":129280,"hidden_size":7168,
        "intermediate_size":18432,"moe_intermediate_size":2048,"num_hidden_layers":61,
        "num_attention_heads":128,"num_key_value_heads":128,"n_shared_experts":1,
        "n_routed_experts":256,"routed_scaling_factor":2.5,"kv_lora_rank":512,"q_lora_rank":1536,
        "qk_rope_head_dim":64,"v_head_dim":128,"qk_nope_head_dim":128,"topk_method":"noaux_tc",
        "n_group":8,"topk_group":4,"num_experts_per_tok":8,"moe_layer_freq":1,
        "first_k_dense_replace":3,"norm_topk_prob":true,"scoring_func":"sigmoid",
        "max_position_embeddings":163840,"rms_norm_eps":1e-6,"rope_theta":10000,
        "num_nextn_predict_layers":1,"tie_word_embeddings":false,"bos_token_id":0,"eos_token_id":1,
        "rope_scaling":{"beta_fast":32,"beta_slow":1,"factor":40,"mscale":1.0,"mscale_all_dim":1.0,
        "original_max_position_embeddings":4096,"type":"yarn"}}"#;

    #[test]
    fn reproduces_deepseek_v3_table_1() {
        let cfg = ModelConfig::from_json_str(V3, Path::new("v3/config.json")).unwrap();
        let f = model_flops(&cfg, 4096, 1);
        let c = CostReport::new(&f, None, 14.8e12, "h800", gpu_preset("h800").unwrap(), 2.0);
        // Pre-training row: 2,664K GPU-hours, $5.328M.
        assert!(
            (c.gpu_hours / 2.664e6 - 1.0).abs() < 1e-3,
            "{}",
            c.gpu_hours
        );
        assert!((c.usd / 5.328e6 - 1.0).abs() < 1e-3, "{}", c.usd);
        let text = c.render();
        assert!(
            text.contains("2.664M GPU-hours, $5.328M at $2/GPU-hour"),
            "{text}"
        );
        // With the table's context-extension (119K) and post-training (5K) rows, which are
        // measured stages, not token counts: 2.788M GPU-hours, $5.576M.
        let total = c.gpu_hours + 119e3 + 5e3;
        assert!((total / 2.788e6 - 1.0).abs() < 1e-3, "{total}");
        assert!((total * 2.0 / 5.576e6 - 1.0).abs() < 1e-3);
    }

    #[test]
    fn v3_active_parameters_are_37b() {
        let cfg = ModelConfig::from_json_str(V3, Path::new("v3/config.json")).unwrap();
        let f = model_flops(&cfg, 4096, 0);
        // "671B total" (main model, without the 14B MTP module).
        assert!(
            (f.total_params / 1e9 - 671.0).abs() < 0.1,
            "{}",
            f.total_params
        );
        // 36.6B non-embedding active + 0.93B embedding = V3's "37B activated".
        assert!(
            (f.active_params / 1e9 - 36.62).abs() < 0.05,
            "{}",
            f.active_params
        );
    }
}
