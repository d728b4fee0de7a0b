//! HF safetensors → GGUF tensors, the way llama.cpp's `convert_hf_to_gguf.py` lays them out
//! and `llama-quantize` types them: names from the architecture table, routed experts stacked
//! into `ffn_*_exps`, `llama` q/k rows permuted for pair-wise RoPE, DeepSeek's `kv_b_proj`
//! split into `attn_k_b` (transposed) and `attn_v_b`, each tensor's type from `mixture.rs`.
//! MTP layers (past `num_hidden_layers`) are left out, as llama.cpp's converter does.
//!
//! Tensor data is produced lazily, one tensor at a time while the file is written, so the
//! memory peak is one tensor in f32 plus its quantized bytes.

use super::export::{arch_of, model_metadata};
use super::mixture::{tensor_type, FileType, ModelFacts};
use super::names::{self, GgufName};
use super::permute::permute_rows;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use whale_core::config::{LlamaFlavor, ModelConfig};
use whale_core::gguf::{GgmlType, GgufValue, GgufWriter, TensorData};
use whale_core::weights::checkpoint_files;
use whale_core::{Result, WhaleError};
use whale_quant::QMatrix;

/// Where a GGUF tensor's values come from.
#[derive(Debug, Clone)]
enum Source {
    /// One HF tensor; `permute_heads` = the converter's llama q/k row permutation.
    Hf { name: String, permute_heads: Option<usize> },
    /// Routed experts `0..n`, stacked along a new outer dimension.
    Experts(Vec<String>),
    /// `W_UK` per head, transposed: `(h, kv_lora, nope)` out of `kv_b_proj`.
    KB { name: String, heads: usize, nope: usize, v: usize },
    /// `W_UV` per head: `(h, v, kv_lora)` out of `kv_b_proj`.
    VB { name: String, heads: usize, nope: usize, v: usize },
}

/// One tensor of the output file.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    pub ty: GgmlType,
    source: Source,
}

/// A conversion: the config, the metadata and the tensors to write.
pub struct Conversion {
    pub config: ModelConfig,
    pub tensors: Vec<PlannedTensor>,
    /// HF tensors not written (MTP layers, rotary caches).
    pub skipped: Vec<String>,
    st: Arc<MmapedSafetensors>,
}

fn bad(dir: &Path, message: String) -> WhaleError {
    WhaleError::BadFile { path: dir.to_path_buf(), message }
}

/// Sort key: token_embd first, then blocks in layer order, then the rest (llama.cpp's order).
fn order_key(name: &str) -> (usize, usize, String) {
    if name.starts_with("token_embd") {
        return (0, 0, name.to_string());
    }
    match name.strip_prefix("blk.").and_then(|r| r.split('.').next()).and_then(|i| i.parse().ok()) {
        Some(layer) => (1, layer, name.to_string()),
        None => (2, 0, name.to_string()),
    }
}

impl Conversion {
    /// Plans the conversion of the HF folder `dir` (config.json + safetensors) to `ftype`.
    pub fn plan(dir: &Path, ftype: FileType) -> Result<Self> {
        let config = ModelConfig::from_file(&dir.join(crate::CONFIG_FILE))?;
        let arch = arch_of(&config);
        let table = names::table(arch).ok_or_else(|| bad(dir, format!("no GGUF name table for {arch}")))?;
        let files = checkpoint_files(dir)?;
        // SAFETY: read-only maps of checkpoint files that are not modified while converting.
        let st = unsafe { MmapedSafetensors::multi(&files) }
            .map_err(|e| WhaleError::Safetensors { path: dir.to_path_buf(), message: e.to_string() })?;
        let n_layers = match &config {
            ModelConfig::Llama(c) => c.num_hidden_layers,
            ModelConfig::DeepSeek(c) => c.num_hidden_layers,
        };
        let (n_head, n_kv) = match &config {
            ModelConfig::Llama(c) => (c.num_attention_heads, c.num_key_value_heads),
            ModelConfig::DeepSeek(c) => (c.num_attention_heads, c.num_attention_heads),
        };
        let permute = matches!(&config, ModelConfig::Llama(c) if c.flavor == LlamaFlavor::Llama);
        let mut planned: BTreeMap<String, (Vec<usize>, Source)> = BTreeMap::new();
        let mut experts: BTreeMap<String, (Vec<usize>, BTreeMap<usize, String>)> = BTreeMap::new();
        let mut skipped = Vec::new();
        let mut hf: Vec<(String, Vec<usize>)> = st.tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec())).collect();
        hf.sort();
        for (name, shape) in hf {
            let layer = name.strip_prefix("model.layers.").and_then(|r| r.split('.').next()).and_then(|i| i.parse::<usize>().ok());
            if layer.is_some_and(|l| l >= n_layers) || name.ends_with("rotary_emb.inv_freq") {
                skipped.push(name);
                continue;
            }
            let Some(GgufName { name: gname, expert }) = table.hf_to_gguf(&name) else {
                return Err(bad(dir, format!("tensor `{name}` has no GGUF name for architecture {arch}")));
            };
            if let Some(e) = expert {
                let entry = experts.entry(gname).or_insert_with(|| (shape.clone(), BTreeMap::new()));
                if entry.0 != shape {
                    return Err(WhaleError::ShapeMismatch { name, expected: entry.0.clone(), found: shape });
                }
                entry.1.insert(e, name);
                continue;
            }
            if let (ModelConfig::DeepSeek(c), true) = (&config, name.ends_with("self_attn.kv_b_proj.weight")) {
                let (heads, nope, v) = (c.num_attention_heads, c.qk_nope_head_dim, c.v_head_dim);
                let lora = c.kv_lora_rank;
                if shape != [heads * (nope + v), lora] {
                    return Err(WhaleError::ShapeMismatch { name, expected: vec![heads * (nope + v), lora], found: shape });
                }
                let base = gname.trim_end_matches("attn_kv_b.weight").to_string();
                planned.insert(format!("{base}attn_k_b.weight"), (vec![heads, lora, nope], Source::KB { name: name.clone(), heads, nope, v }));
                planned.insert(format!("{base}attn_v_b.weight"), (vec![heads, v, lora], Source::VB { name, heads, nope, v }));
                continue;
            }
            let permute_heads = match () {
                _ if permute && name.contains("self_attn.q_proj.") => Some(n_head),
                _ if permute && name.contains("self_attn.k_proj.") => Some(n_kv),
                _ => None,
            };
            planned.insert(gname, (shape, Source::Hf { name, permute_heads }));
        }
        let n_expert = match &config {
            ModelConfig::DeepSeek(c) => c.n_routed_experts.unwrap_or(0),
            ModelConfig::Llama(_) => 0,
        };
        for (gname, (shape, by_index)) in experts {
            if by_index.len() != n_expert || by_index.keys().copied().ne(0..n_expert) {
                return Err(bad(dir, format!("{gname}: found experts {:?}, expected 0..{n_expert}", by_index.keys().collect::<Vec<_>>())));
            }
            let mut full = vec![n_expert];
            full.extend(shape);
            planned.insert(gname, (full, Source::Experts(by_index.into_values().collect())));
        }
        let mut order: Vec<String> = planned.keys().cloned().collect();
        order.sort_by_key(|n| order_key(n));
        let is_v_like = |n: &str| n.contains("attn_v.weight") || n.contains("attn_qkv.weight") || n.contains("attn_kv_b.weight");
        let facts = ModelFacts {
            n_layer: n_layers,
            n_expert,
            n_attention_wv: order.iter().filter(|n| is_v_like(n)).count(),
            has_output: planned.contains_key("output.weight"),
        };
        let mut i_wv = 0;
        let mut tensors = Vec::with_capacity(order.len());
        for name in order {
            let (shape, source) = planned.remove(&name).expect("planned above");
            let ne0 = *shape.last().unwrap_or(&1);
            let ty = tensor_type(ftype, &facts, &name, shape.len(), ne0, i_wv);
            if is_v_like(&name) {
                i_wv += 1;
            }
            tensors.push(PlannedTensor { name, shape, ty, source });
        }
        Ok(Self { config, tensors, skipped, st: Arc::new(st) })
    }

    /// `general.*` and `{arch}.*` metadata (no tokenizer).
    pub fn metadata(&self, model_name: &str, ftype: FileType) -> Result<Vec<(String, GgufValue)>> {
        let mut kv = vec![
            ("general.architecture".to_string(), GgufValue::String(arch_of(&self.config).into())),
            ("general.name".to_string(), GgufValue::String(model_name.into())),
            ("general.file_type".to_string(), GgufValue::U32(ftype.id())),
            ("general.quantization_version".to_string(), GgufValue::U32(2)),
        ];
        kv.extend(model_metadata(&self.config)?);
        Ok(kv)
    }

    /// Adds every planned tensor to `w` with lazily computed data; `on_done(name, n_values)`
    /// is called after each tensor is produced (for progress).
    pub fn add_tensors(&self, w: &mut GgufWriter, on_done: Arc<dyn Fn(&str, usize) + Send + Sync>) -> Result<()> {
        for t in &self.tensors {
            let dims: Vec<u64> = t.shape.iter().rev().map(|&d| d as u64).collect();
            let (st, t2, cb) = (self.st.clone(), t.clone(), on_done.clone());
            w.add_tensor(
                t.name.clone(),
                &dims,
                t.ty,
                TensorData::Lazy(Box::new(move || {
                    let values = values_of(&st, &t2)?;
                    let cols = *t2.shape.last().unwrap_or(&1);
                    let rows = values.len() / cols.max(1);
                    let q = QMatrix::quantize(t2.ty, rows, cols, &values)
                        .map_err(|e| WhaleError::InvalidInput(format!("tensor `{}`: {e}", t2.name)))?;
                    cb(&t2.name, values.len());
                    Ok(q.as_bytes().to_vec())
                })),
            )?;
        }
        Ok(())
    }
}

fn load_f32(st: &MmapedSafetensors, name: &str) -> Result<Vec<f32>> {
    let t = st.load(name, &Device::Cpu).map_err(|e| WhaleError::InvalidInput(format!("tensor `{name}`: {e}")))?;
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// The row-major f32 values of a planned tensor.
fn values_of(st: &MmapedSafetensors, t: &PlannedTensor) -> Result<Vec<f32>> {
    match &t.source {
        Source::Hf { name, permute_heads: None } => load_f32(st, name),
        Source::Hf { name, permute_heads: Some(heads) } => {
            let v = load_f32(st, name)?;
            let rows = t.shape[0];
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let p = permute_rows(&bytes, rows, *heads).ok_or_else(|| {
                WhaleError::InvalidInput(format!("tensor `{name}`: {rows} rows do not split into {heads} heads of even size"))
            })?;
            Ok(p.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        }
        Source::Experts(names) => {
            let mut out = Vec::new();
            for n in names {
                out.extend(load_f32(st, n)?);
            }
            Ok(out)
        }
        Source::KB { name, heads, nope, v } => {
            let kv = load_f32(st, name)?;
            let lora = t.shape[1];
            let mut out = vec![0f32; heads * lora * nope];
            for h in 0..*heads {
                for n in 0..*nope {
                    let row = &kv[(h * (nope + v) + n) * lora..][..lora];
                    for (l, &x) in row.iter().enumerate() {
                        out[(h * lora + l) * nope + n] = x;
                    }
                }
            }
            Ok(out)
        }
        Source::VB { name, heads, nope, v } => {
            let kv = load_f32(st, name)?;
            let lora = t.shape[2];
            let mut out = Vec::with_capacity(heads * v * lora);
            for h in 0..*heads {
                out.extend_from_slice(&kv[(h * (nope + v) + nope) * lora..(h * (nope + v) + nope + v) * lora]);
            }
            Ok(out)
        }
    }
}
