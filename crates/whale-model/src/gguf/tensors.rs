//! A GGUF file seen through HF tensor names ([`GgufTensors`] for [`whale_core::Weights`]),
//! with the per-architecture quirks of llama.cpp's converter undone at load:
//! - stacked experts: one expert's rows are a contiguous byte range of the 3-D tensor, so
//!   an expert is a slice of the mapped file, never a dequantized copy;
//! - `llama` q/k rows are permuted for pair-wise RoPE (`permute.rs`): moved back;
//! - DeepSeek-V2/V3 files written since llama.cpp's MLA rework may store `kv_b_proj` only
//!   split into `attn_k_b` (`W_UK` per head, transposed: `(h, kv_lora, nope)`) and `attn_v_b`
//!   (`W_UV` per head: `(h, v, kv_lora)`); `kv_b_proj` `(h·(nope+v), kv_lora)` is rebuilt
//!   from them in f32 (it is small: `h·(nope+v)·kv_lora` values per layer), so the MLA code
//!   derives its absorbed `W_UK`/`W_UVᵀ` exactly as for an HF checkpoint;
//! - a file without `output.weight` (tied embeddings) gets its head from `token_embd.weight`;
//! - Gemma's converter stores norm weights as `1 + w` (llama.cpp's RMSNorm multiplies by the
//!   weight alone); `w` is given back, as the HF checkpoint holds it.

use super::names::ArchTable;
use super::permute::unpermute_rows;
use std::borrow::Cow;
use whale_core::gguf::{GgmlType, GgufFile, TensorInfo};
use candle_core::{DType, Device};
use whale_core::weights::{raw_to_tensor, GgufTensors, RawTensor};
use whale_core::{Result, WhaleError};

/// How the MLA up-projection is stored.
#[derive(Debug, Clone, Copy)]
struct SplitKvB {
    heads: usize,
    nope: usize,
    v: usize,
}

pub struct GgufCheckpoint {
    file: GgufFile,
    table: &'static ArchTable,
    /// `(n_head, n_head_kv)` for `llama` files (rows permuted by the converter).
    permuted_qk: Option<(usize, usize)>,
    split_kv_b: Option<SplitKvB>,
    /// Norm weights are stored as `1 + w` (gemma3).
    norms_plus_one: bool,
}

impl GgufCheckpoint {
    /// `permuted_qk` for the `llama` architecture, `mla` = `(heads, nope, v)` for `deepseek2`.
    pub fn new(
        file: GgufFile,
        table: &'static ArchTable,
        permuted_qk: Option<(usize, usize)>,
        mla: Option<(usize, usize, usize)>,
    ) -> Self {
        let split_kv_b = mla.map(|(heads, nope, v)| SplitKvB { heads, nope, v });
        Self { file, table, permuted_qk, split_kv_b, norms_plus_one: false }
    }

    /// For files whose norm weights are stored as `1 + w` (Gemma).
    pub fn with_norms_plus_one(mut self) -> Self {
        self.norms_plus_one = true;
        self
    }

    /// `w` from a stored `1 + w` norm weight, in f32.
    fn minus_one(&self, name: &str, raw: &RawTensor<'_>) -> Result<RawTensor<'static>> {
        let data: Vec<u8> = self.to_f32(name, raw)?.iter().flat_map(|x| (x - 1.0).to_le_bytes()).collect();
        Ok(RawTensor { ty: GgmlType::F32, shape: raw.shape.clone(), data: Cow::Owned(data) })
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    fn bad(&self, message: String) -> WhaleError {
        WhaleError::BadFile { path: self.file.path().to_path_buf(), message }
    }

    fn ty(&self, t: &TensorInfo) -> Result<GgmlType> {
        t.ggml_type.ok_or_else(|| self.bad(format!("tensor `{}` has unknown ggml type id {}", t.name, t.type_id)))
    }

    fn stored(&self, t: &TensorInfo) -> Result<RawTensor<'_>> {
        Ok(RawTensor { ty: self.ty(t)?, shape: t.shape(), data: Cow::Borrowed(self.file.tensor_data(t)?) })
    }

    /// The GGUF tensor name(s) behind an HF name, for `contains`.
    fn gguf_tensor(&self, hf: &str) -> Option<&TensorInfo> {
        let g = self.table.hf_to_gguf(hf)?;
        self.file.tensor(&g.name)
    }

    fn expert(&self, t: &TensorInfo, e: usize) -> Result<RawTensor<'_>> {
        let shape = t.shape();
        let [n, rows, cols] = shape[..] else {
            return Err(self.bad(format!("stacked expert tensor `{}` has shape {shape:?}, expected 3 dims", t.name)));
        };
        if e >= n {
            return Err(self.bad(format!("tensor `{}` holds {n} experts, expert {e} was asked for", t.name)));
        }
        let data = self.file.tensor_data(t)?;
        let each = data.len() / n;
        Ok(RawTensor { ty: self.ty(t)?, shape: vec![rows, cols], data: Cow::Borrowed(&data[e * each..(e + 1) * each]) })
    }

    fn unpermute(&self, hf: &str, raw: RawTensor<'_>, heads: usize) -> Result<RawTensor<'static>> {
        let rows = raw.shape[0];
        let data = unpermute_rows(&raw.data, rows, heads).ok_or_else(|| {
            self.bad(format!("tensor `{hf}`: {rows} rows cannot be split into {heads} heads of an even size"))
        })?;
        Ok(RawTensor { ty: raw.ty, shape: raw.shape, data: Cow::Owned(data) })
    }

    /// `kv_b_proj` rebuilt from `attn_k_b` `(h, kv_lora, nope)` and `attn_v_b` `(h, v, kv_lora)`.
    fn kv_b_from_split(&self, layer_prefix: &str, s: SplitKvB) -> Result<Option<RawTensor<'static>>> {
        let get = |n: &str| self.file.tensor(&format!("{layer_prefix}{n}.weight"));
        let (Some(kb), Some(vb)) = (get("attn_k_b"), get("attn_v_b")) else { return Ok(None) };
        let (kb_raw, vb_raw) = (self.stored(kb)?, self.stored(vb)?);
        let lora = match kb_raw.shape[..] {
            [h, l, n] if h == s.heads && n == s.nope => l,
            _ => {
                return Err(self.bad(format!(
                    "tensor `{}` has shape {:?}, expected ({}, kv_lora_rank, {})",
                    kb.name, kb_raw.shape, s.heads, s.nope
                )))
            }
        };
        if vb_raw.shape != [s.heads, s.v, lora] {
            return Err(self.bad(format!(
                "tensor `{}` has shape {:?}, expected {:?}",
                vb.name,
                vb_raw.shape,
                [s.heads, s.v, lora]
            )));
        }
        let k = self.to_f32(&kb.name, &kb_raw)?;
        let v = self.to_f32(&vb.name, &vb_raw)?;
        let per_head = s.nope + s.v;
        let mut out = vec![0f32; s.heads * per_head * lora];
        for h in 0..s.heads {
            let head = &mut out[h * per_head * lora..(h + 1) * per_head * lora];
            // W_UK rows: k_b[h] is (lora, nope); row n of W_UK is its column n.
            for n in 0..s.nope {
                for l in 0..lora {
                    head[n * lora + l] = k[(h * lora + l) * s.nope + n];
                }
            }
            head[s.nope * lora..].copy_from_slice(&v[h * s.v * lora..(h + 1) * s.v * lora]);
        }
        let data: Vec<u8> = out.iter().flat_map(|x| x.to_le_bytes()).collect();
        Ok(Some(RawTensor { ty: GgmlType::F32, shape: vec![s.heads * per_head, lora], data: Cow::Owned(data) }))
    }

    /// Any stored tensor as f32 values.
    fn to_f32(&self, name: &str, raw: &RawTensor<'_>) -> Result<Vec<f32>> {
        let t = raw_to_tensor(self, name, raw, &Device::Cpu)?;
        Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
    }
}

impl GgufTensors for GgufCheckpoint {
    fn raw(&self, name: &str) -> Result<Option<RawTensor<'_>>> {
        if name == "lm_head.weight" && self.file.tensor("output.weight").is_none() {
            return self.raw("model.embed_tokens.weight");
        }
        let Some(g) = self.table.hf_to_gguf(name) else { return Ok(None) };
        let Some(t) = self.file.tensor(&g.name) else {
            if let (Some(s), Some(layer)) = (self.split_kv_b, g.name.strip_suffix("attn_kv_b.weight")) {
                return self.kv_b_from_split(layer, s);
            }
            return Ok(None);
        };
        let raw = match g.expert {
            Some(e) => self.expert(t, e)?,
            None => self.stored(t)?,
        };
        if self.norms_plus_one && name.ends_with("norm.weight") {
            return Ok(Some(self.minus_one(name, &raw)?));
        }
        if let Some((n_head, n_kv)) = self.permuted_qk {
            if name.contains("self_attn.q_proj.") {
                return Ok(Some(self.unpermute(name, raw, n_head)?));
            }
            if name.contains("self_attn.k_proj.") {
                return Ok(Some(self.unpermute(name, raw, n_kv)?));
            }
        }
        Ok(Some(raw))
    }

    fn contains(&self, name: &str) -> bool {
        if name == "lm_head.weight" {
            return self.file.tensor("output.weight").is_some() || self.file.tensor("token_embd.weight").is_some();
        }
        if self.gguf_tensor(name).is_some() {
            return true;
        }
        self.split_kv_b.is_some()
            && name.ends_with("self_attn.kv_b_proj.weight")
            && self.table.hf_to_gguf(name).is_some_and(|g| {
                let layer = g.name.trim_end_matches("attn_kv_b.weight");
                self.file.tensor(&format!("{layer}attn_k_b.weight")).is_some()
            })
    }

    fn dequantize(&self, name: &str, raw: &RawTensor<'_>) -> Result<Vec<f32>> {
        super::dequant::dequantize(name, raw)
    }

    fn location(&self) -> String {
        self.file.path().display().to_string()
    }

    fn parameter_count(&self) -> usize {
        self.file.tensors().iter().map(|t| t.n_elements() as usize).sum()
    }

    fn file_bytes(&self) -> u64 {
        self.file.file_len()
    }
}
