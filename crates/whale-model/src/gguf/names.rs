//! Tensor names: HF checkpoint names ↔ GGUF names, one table per llama.cpp architecture.
//!
//! GGUF names follow llama.cpp's `gguf-py/gguf/constants.py` (`TENSOR_NAMES`) and the HF
//! sources of `tensor_mapping.py`: whole-model tensors (`token_embd`, `output_norm`,
//! `output`) and per-layer tensors under `blk.{i}.`; the `.weight`/`.bias` suffix carries
//! over unchanged. Routed experts are one stacked 3-D tensor per projection in GGUF
//! (`blk.{i}.ffn_gate_exps.weight`, shape `(n_expert, rows, cols)`) where HF has one 2-D
//! tensor per expert (`model.layers.{i}.mlp.experts.{e}.gate_proj.weight`).
//!
//! A new architecture is one more [`ArchTable`] in [`TABLES`] (its layer table may reuse
//! [`LLAMA_PROJ`] and add its own rows).

/// The HF ↔ GGUF names of one architecture.
#[derive(Debug)]
pub struct ArchTable {
    /// `general.architecture` in the GGUF file.
    pub arch: &'static str,
    /// Tables of per-layer `(HF name under model.layers.{i}., GGUF name under blk.{i}.)`
    /// base names (no `.weight`/`.bias`); searched in order.
    pub layer: &'static [&'static [(&'static str, &'static str)]],
    /// Per-layer names whose suffix is not `.weight`/`.bias`, matched whole.
    pub layer_exact: &'static [(&'static str, &'static str)],
    /// Routed experts: `(HF projection under mlp.experts.{e}., stacked GGUF base name)`.
    pub experts: &'static [(&'static str, &'static str)],
}

/// Whole-model tensors, shared by every architecture here.
pub const GLOBAL: &[(&str, &str)] =
    &[("model.embed_tokens", "token_embd"), ("model.norm", "output_norm"), ("lm_head", "output")];

/// The Llama block's two pre-norms (also Qwen2's, and DeepSeek's).
pub const LLAMA_NORMS: &[(&str, &str)] = &[("input_layernorm", "attn_norm"), ("post_attention_layernorm", "ffn_norm")];

/// Attention and MLP projections of the Llama block (also Qwen2's, Gemma 3's, and the dense
/// part of DeepSeek's).
pub const LLAMA_PROJ: &[(&str, &str)] = &[
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// Gemma 3's four norms per block and its q/k norms. Its `post_attention_layernorm` is a
/// post-norm of the attention output, so it is not Llama's `ffn_norm`.
pub const GEMMA3_NORMS: &[(&str, &str)] = &[
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "post_attention_norm"),
    ("pre_feedforward_layernorm", "ffn_norm"),
    ("post_feedforward_layernorm", "post_ffw_norm"),
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
];

/// DeepSeek's MLA projections, router and shared experts.
pub const DEEPSEEK2_LAYER: &[(&str, &str)] = &[
    ("self_attn.q_a_proj", "attn_q_a"),
    ("self_attn.q_a_layernorm", "attn_q_a_norm"),
    ("self_attn.q_b_proj", "attn_q_b"),
    ("self_attn.kv_a_proj_with_mqa", "attn_kv_a_mqa"),
    ("self_attn.kv_a_layernorm", "attn_kv_a_norm"),
    ("self_attn.kv_b_proj", "attn_kv_b"),
    ("mlp.gate", "ffn_gate_inp"),
    ("mlp.shared_experts.gate_proj", "ffn_gate_shexp"),
    ("mlp.shared_experts.up_proj", "ffn_up_shexp"),
    ("mlp.shared_experts.down_proj", "ffn_down_shexp"),
];

const SWIGLU_EXPERTS: &[(&str, &str)] =
    &[("gate_proj", "ffn_gate_exps"), ("up_proj", "ffn_up_exps"), ("down_proj", "ffn_down_exps")];

pub const TABLES: &[ArchTable] = &[
    ArchTable { arch: "llama", layer: &[LLAMA_NORMS, LLAMA_PROJ], layer_exact: &[], experts: SWIGLU_EXPERTS },
    ArchTable { arch: "qwen2", layer: &[LLAMA_NORMS, LLAMA_PROJ], layer_exact: &[], experts: &[] },
    ArchTable { arch: "gemma3", layer: &[GEMMA3_NORMS, LLAMA_PROJ], layer_exact: &[], experts: &[] },
    ArchTable {
        arch: "deepseek2",
        layer: &[LLAMA_NORMS, LLAMA_PROJ, DEEPSEEK2_LAYER],
        layer_exact: &[("mlp.gate.e_score_correction_bias", "exp_probs_b.bias")],
        experts: SWIGLU_EXPERTS,
    },
];

/// The table of a GGUF architecture name.
pub fn table(arch: &str) -> Option<&'static ArchTable> {
    TABLES.iter().find(|t| t.arch == arch)
}

/// A GGUF tensor, or one expert's slice of a stacked one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufName {
    pub name: String,
    /// The expert index along the first (outermost) dimension of a stacked tensor.
    pub expert: Option<usize>,
}

/// An HF name as GGUF would spell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfName {
    /// For stacked experts the name holds `{e}` where the expert index goes.
    pub name: String,
    pub stacked_experts: bool,
}

const LAYER_PREFIX: &str = "model.layers.";
const EXPERT_PREFIX: &str = "mlp.experts.";

fn split_suffix(name: &str) -> Option<(&str, &str)> {
    [".weight", ".bias"].iter().find_map(|s| name.strip_suffix(s).map(|base| (base, *s)))
}

/// `model.layers.{i}.rest` → `(i, rest)`.
fn split_layer<'a>(name: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
    let rest = name.strip_prefix(prefix)?;
    let (idx, rest) = rest.split_once('.')?;
    if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) || (idx.len() > 1 && idx.starts_with('0')) {
        return None;
    }
    Some((idx.parse().ok()?, rest))
}

impl ArchTable {
    /// The GGUF tensor holding HF tensor `hf`, or `None` when this architecture has none.
    pub fn hf_to_gguf(&self, hf: &str) -> Option<GgufName> {
        let single = |name: String| Some(GgufName { name, expert: None });
        if let Some((base, suffix)) = split_suffix(hf) {
            if let Some((_, g)) = GLOBAL.iter().find(|(h, _)| *h == base) {
                return single(format!("{g}{suffix}"));
            }
        }
        let (layer, rest) = split_layer(hf, LAYER_PREFIX)?;
        if let Some((_, g)) = self.layer_exact.iter().find(|(h, _)| *h == rest) {
            return single(format!("blk.{layer}.{g}"));
        }
        let (base, suffix) = split_suffix(rest)?;
        if let Some((e, proj)) = base.strip_prefix(EXPERT_PREFIX).and_then(|r| split_layer(r, "")) {
            let (_, g) = self.experts.iter().find(|(h, _)| *h == proj)?;
            return Some(GgufName { name: format!("blk.{layer}.{g}{suffix}"), expert: Some(e) });
        }
        let g = self.layer.iter().flat_map(|t| t.iter()).find(|(h, _)| *h == base)?.1;
        single(format!("blk.{layer}.{g}{suffix}"))
    }

    /// The HF name of GGUF tensor `gguf` (stacked experts come back with `{e}`).
    pub fn gguf_to_hf(&self, gguf: &str) -> Option<HfName> {
        let single = |name: String| Some(HfName { name, stacked_experts: false });
        if let Some((base, suffix)) = split_suffix(gguf) {
            if let Some((h, _)) = GLOBAL.iter().find(|(_, g)| *g == base) {
                return single(format!("{h}{suffix}"));
            }
        }
        let (layer, rest) = split_layer(gguf, "blk.")?;
        if let Some((h, _)) = self.layer_exact.iter().find(|(_, g)| *g == rest) {
            return single(format!("{LAYER_PREFIX}{layer}.{h}"));
        }
        let (base, suffix) = split_suffix(rest)?;
        if let Some((h, _)) = self.experts.iter().find(|(_, g)| *g == base) {
            return Some(HfName { name: format!("{LAYER_PREFIX}{layer}.{EXPERT_PREFIX}{{e}}.{h}{suffix}"), stacked_experts: true });
        }
        let h = self.layer.iter().flat_map(|t| t.iter()).find(|(_, g)| *g == base)?.0;
        single(format!("{LAYER_PREFIX}{layer}.{h}{suffix}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_names_both_ways() {
        let t = table("qwen2").unwrap();
        for (hf, gguf) in [
            ("model.embed_tokens.weight", "token_embd.weight"),
            ("lm_head.weight", "output.weight"),
            ("model.norm.weight", "output_norm.weight"),
            ("model.layers.0.self_attn.q_proj.bias", "blk.0.attn_q.bias"),
            ("model.layers.17.mlp.down_proj.weight", "blk.17.ffn_down.weight"),
            ("model.layers.3.post_attention_layernorm.weight", "blk.3.ffn_norm.weight"),
        ] {
            assert_eq!(t.hf_to_gguf(hf), Some(GgufName { name: gguf.into(), expert: None }), "{hf}");
            assert_eq!(t.gguf_to_hf(gguf).unwrap().name, hf, "{gguf}");
        }
        assert_eq!(t.hf_to_gguf("model.layers.x.mlp.down_proj.weight"), None);
        assert_eq!(t.hf_to_gguf("model.layers.01.mlp.down_proj.weight"), None);
        assert_eq!(t.hf_to_gguf("model.layers.1.mlp.down_proj"), None);
        assert_eq!(t.hf_to_gguf("model.layers.1.mlp.experts.0.up_proj.weight"), None);
    }

    #[test]
    fn deepseek_names_both_ways() {
        let t = table("deepseek2").unwrap();
        assert_eq!(
            t.hf_to_gguf("model.layers.2.mlp.experts.5.gate_proj.weight"),
            Some(GgufName { name: "blk.2.ffn_gate_exps.weight".into(), expert: Some(5) })
        );
        assert_eq!(
            t.gguf_to_hf("blk.2.ffn_down_exps.weight"),
            Some(HfName { name: "model.layers.2.mlp.experts.{e}.down_proj.weight".into(), stacked_experts: true })
        );
        for (hf, gguf) in [
            ("model.layers.1.mlp.gate.weight", "blk.1.ffn_gate_inp.weight"),
            ("model.layers.1.mlp.gate.e_score_correction_bias", "blk.1.exp_probs_b.bias"),
            ("model.layers.1.mlp.gate_proj.weight", "blk.1.ffn_gate.weight"),
            ("model.layers.1.mlp.shared_experts.up_proj.weight", "blk.1.ffn_up_shexp.weight"),
            ("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", "blk.0.attn_kv_a_mqa.weight"),
            ("model.layers.0.self_attn.q_a_layernorm.weight", "blk.0.attn_q_a_norm.weight"),
        ] {
            assert_eq!(t.hf_to_gguf(hf).unwrap().name, gguf, "{hf}");
            assert_eq!(t.gguf_to_hf(gguf).unwrap().name, hf, "{gguf}");
        }
    }
}
