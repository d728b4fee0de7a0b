//! Which GGML type each tensor gets in a quantized GGUF: llama.cpp's rules
//! (`src/llama-quant.cpp`: `tensor_allows_quantization`, `llama_tensor_get_type_impl`,
//! `tensor_type_fallback`) for the file types `whale quantize` writes.
//!
//! - Only `*.weight` tensors with ≥ 2 dims are quantized; norms, the MoE router
//!   (`ffn_gate_inp`), biases and 1-D tensors stay F32 (as `convert_hf_to_gguf.py` writes them).
//! - The output head (or `token_embd` when there is no `output.weight`) gets Q6_K unless the
//!   file is Q8_0 (Q8_0 when its rows are not a multiple of 256).
//! - Q4_K_M / Q5_K_M: attention-V-like tensors (`attn_v`, `attn_qkv`, `attn_kv_b`) and every
//!   `ffn_down*` get Q6_K in the layers `use_more_bits` picks (first and last eighth, and
//!   every third layer between).
//! - Models with exactly 8 experts: `attn_v`-like and `attn_k` → Q8_0, and `attn_output` → Q5_K
//!   for Q4_K_M.
//! - A row length (`ne[0]`) that is not a multiple of the block size falls back: Q4_K → Q5_0,
//!   Q5_K → Q5_1, Q6_K → Q8_0, then F16 if still incompatible.

use whale_core::gguf::GgmlType;

/// The `--type` of `whale quantize` (llama.cpp's `llama_ftype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4KM,
    Q5KM,
    Q6K,
}

impl FileType {
    pub const NAMES: &'static str = "q8_0, q4_0, q4_k_m, q5_k_m, q6_k, f16, f32";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "f32" => FileType::F32,
            "f16" => FileType::F16,
            "q8_0" => FileType::Q8_0,
            "q4_0" => FileType::Q4_0,
            "q4_k_m" => FileType::Q4KM,
            "q5_k_m" => FileType::Q5KM,
            "q6_k" => FileType::Q6K,
            _ => return None,
        })
    }

    /// `general.file_type` (llama.cpp's `LLAMA_FTYPE_*`).
    pub fn id(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::Q4_0 => 2,
            FileType::Q8_0 => 7,
            FileType::Q4KM => 15,
            FileType::Q5KM => 17,
            FileType::Q6K => 18,
        }
    }

    /// `llama_ftype_get_default_type`.
    pub fn default_type(self) -> GgmlType {
        match self {
            FileType::F32 => GgmlType::F32,
            FileType::F16 => GgmlType::F16,
            FileType::Q8_0 => GgmlType::Q8_0,
            FileType::Q4_0 => GgmlType::Q4_0,
            FileType::Q4KM => GgmlType::Q4_K,
            FileType::Q5KM => GgmlType::Q5_K,
            FileType::Q6K => GgmlType::Q6_K,
        }
    }

    fn is_quantized(self) -> bool {
        !matches!(self, FileType::F32 | FileType::F16)
    }
}

/// What the rules need to know about the whole model.
#[derive(Debug, Clone, Copy)]
pub struct ModelFacts {
    pub n_layer: usize,
    pub n_expert: usize,
    /// Number of attention-V-like tensors in the file.
    pub n_attention_wv: usize,
    /// Whether the file has `output.weight` (else the head is `token_embd`).
    pub has_output: bool,
}

/// Whether llama.cpp would quantize this tensor at all.
pub fn allows_quantization(name: &str, n_dims: usize) -> bool {
    n_dims >= 2 && name.ends_with("weight") && !name.contains("_norm.weight") && !name.contains("ffn_gate_inp.weight")
}

fn use_more_bits(i: usize, n: usize) -> bool {
    let (i, n) = (i as i64, n as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8).rem_euclid(3) == 2
}

fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

fn is_attn_v_like(name: &str) -> bool {
    name.contains("attn_v.weight") || name.contains("attn_qkv.weight") || name.contains("attn_kv_b.weight")
}

/// The type of tensor `name` (`ne0` = its row length) in a file of type `ft`.
/// `i_attention_wv` is how many attention-V-like tensors came before it (llama.cpp counts in
/// layer order).
pub fn tensor_type(ft: FileType, facts: &ModelFacts, name: &str, n_dims: usize, ne0: usize, i_attention_wv: usize) -> GgmlType {
    if !allows_quantization(name, n_dims) {
        return GgmlType::F32;
    }
    if !ft.is_quantized() {
        return ft.default_type();
    }
    let mut t = ft.default_type();
    let is_head = name == "output.weight" || (!facts.has_output && name == "token_embd.weight");
    let q8 = GgmlType::Q8_0;
    if is_head {
        t = if !ne0.is_multiple_of(t.block_size() as usize) { q8 } else if t != q8 { GgmlType::Q6_K } else { t };
    } else if name == "token_embd.weight" {
        // No rule for these file types.
    } else if is_attn_v_like(name) {
        if matches!(ft, FileType::Q4KM | FileType::Q5KM) && use_more_bits(i_attention_wv, facts.n_attention_wv) {
            t = GgmlType::Q6_K;
        }
        if facts.n_expert == 8 {
            t = q8;
        }
    } else if name.contains("attn_k.weight") {
        if facts.n_expert == 8 {
            t = q8;
        }
    } else if name.contains("ffn_down") {
        let layer = layer_of(name).unwrap_or(0);
        if matches!(ft, FileType::Q4KM | FileType::Q5KM) && use_more_bits(layer, facts.n_layer) {
            t = GgmlType::Q6_K;
        }
    } else if name.contains("attn_output.weight") && facts.n_expert == 8 && ft == FileType::Q4KM {
        t = GgmlType::Q5_K;
    }
    fallback(t, ne0)
}

/// `tensor_type_fallback`: a compatible type when rows are not whole blocks.
fn fallback(t: GgmlType, ne0: usize) -> GgmlType {
    if ne0.is_multiple_of(t.block_size() as usize) {
        return t;
    }
    let f = match t {
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        other => other,
    };
    if ne0.is_multiple_of(f.block_size() as usize) {
        f
    } else {
        GgmlType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QWEN_1_5B: ModelFacts = ModelFacts { n_layer: 28, n_expert: 0, n_attention_wv: 28, has_output: false };

    #[test]
    fn q4_k_m_mixture_of_a_qwen2_1_5b_shape() {
        let ty = |name: &str, ne0: usize, i: usize| tensor_type(FileType::Q4KM, &QWEN_1_5B, name, 2, ne0, i);
        // Tied head: token_embd takes the output rule.
        assert_eq!(ty("token_embd.weight", 1536, 0), GgmlType::Q6_K);
        assert_eq!(ty("blk.0.attn_q.weight", 1536, 0), GgmlType::Q4_K);
        // use_more_bits(i, 28): i < 3, i >= 24, (i - 3) % 3 == 2.
        let more: Vec<usize> = (0..28).filter(|&i| use_more_bits(i, 28)).collect();
        assert_eq!(more, vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]);
        assert_eq!(ty("blk.5.attn_v.weight", 1536, 5), GgmlType::Q6_K);
        assert_eq!(ty("blk.6.attn_v.weight", 1536, 6), GgmlType::Q4_K);
        assert_eq!(ty("blk.8.ffn_down.weight", 8960, 0), GgmlType::Q6_K);
        assert_eq!(ty("blk.9.ffn_down.weight", 8960, 0), GgmlType::Q4_K);
        // 8960 = 35 · 256: k-quants fit; a 64-wide row does not → Q5_0; 16 → F16.
        assert_eq!(ty("blk.9.ffn_up.weight", 64, 0), GgmlType::Q5_0);
        assert_eq!(ty("blk.9.ffn_up.weight", 16, 0), GgmlType::F16);
        assert_eq!(tensor_type(FileType::Q4KM, &QWEN_1_5B, "blk.0.attn_norm.weight", 1, 1536, 0), GgmlType::F32);
        assert_eq!(tensor_type(FileType::Q4KM, &QWEN_1_5B, "blk.0.attn_q.bias", 1, 1536, 0), GgmlType::F32);
    }

    #[test]
    fn eight_expert_rules_and_other_types() {
        let moe = ModelFacts { n_layer: 4, n_expert: 8, n_attention_wv: 4, has_output: true };
        assert_eq!(tensor_type(FileType::Q4KM, &moe, "blk.1.attn_kv_b.weight", 2, 512, 1), GgmlType::Q8_0);
        assert_eq!(tensor_type(FileType::Q4KM, &moe, "blk.1.attn_output.weight", 2, 2048, 0), GgmlType::Q5_K);
        assert_eq!(tensor_type(FileType::Q4KM, &moe, "blk.1.ffn_gate_inp.weight", 2, 2048, 0), GgmlType::F32);
        assert_eq!(tensor_type(FileType::Q4KM, &moe, "blk.1.ffn_down_exps.weight", 3, 1408, 0), GgmlType::Q5_0);
        assert_eq!(tensor_type(FileType::Q8_0, &moe, "output.weight", 2, 2048, 0), GgmlType::Q8_0);
        assert_eq!(tensor_type(FileType::Q4_0, &moe, "output.weight", 2, 2048, 0), GgmlType::Q6_K);
        assert_eq!(tensor_type(FileType::F16, &moe, "blk.1.attn_kv_b.weight", 2, 512, 0), GgmlType::F16);
        assert_eq!(tensor_type(FileType::F32, &moe, "blk.1.attn_kv_b.weight", 2, 512, 0), GgmlType::F32);
    }
}
