//! Named model weights: HF safetensors checkpoints (single file or sharded with
//! `model.safetensors.index.json`), GGUF files (through a [`GgufTensors`] that translates HF
//! names to the file's tensors), or fresh trainable variables.
//!
//! Model code asks for a tensor by its checkpoint name and expected shape; a checkpoint that
//! lacks it, has it with another shape, or stores it in a dtype Whale cannot compute with is
//! reported by name. In training mode the same calls create initialized `Var`s in a
//! `VarMap`, so a model has one constructor for loading and for training from scratch.

use crate::{Result, WhaleError};
use candle_core::safetensors::{Load, MmapedSafetensors};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarMap};
use crate::gguf::GgmlType;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The HF file that maps tensor names to shard files.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

struct Checkpoint {
    files: Vec<(PathBuf, MmapedSafetensors)>,
    routing: HashMap<String, usize>,
    location: String,
}

/// A tensor as a GGUF file stores it (or as several stored tensors combine into it): its
/// GGML type, its row-major shape and its bytes (rows contiguous, still quantized).
#[derive(Debug, Clone)]
pub struct RawTensor<'a> {
    pub ty: GgmlType,
    pub shape: Vec<usize>,
    pub data: Cow<'a, [u8]>,
}

/// A GGUF checkpoint seen through HF tensor names. Model code asks for
/// `model.layers.3.self_attn.q_proj.weight`; the implementation (per architecture, in
/// whale-model) finds `blk.3.attn_q.weight`, slices one expert out of a stacked tensor, undoes
/// a converter's row permutation, or rebuilds a tensor the converter split in two.
pub trait GgufTensors: Send + Sync {
    /// The tensor behind HF name `name`, `Ok(None)` when the file has no such tensor.
    fn raw(&self, name: &str) -> Result<Option<RawTensor<'_>>>;
    /// Whether the file holds HF tensor `name` (without reading its data).
    fn contains(&self, name: &str) -> bool;
    /// Dequantizes a tensor of a block type into `len` f32 values.
    fn dequantize(&self, name: &str, raw: &RawTensor<'_>) -> Result<Vec<f32>>;
    /// The file, for messages.
    fn location(&self) -> String;
    /// Values stored in the file.
    fn parameter_count(&self) -> usize;
    /// Bytes of the file on disk.
    fn file_bytes(&self) -> u64;
}

enum Source {
    Checkpoint(Arc<Checkpoint>),
    Gguf(Arc<dyn GgufTensors>),
    /// `detached`: hand out the Vars' tensors detached (shared storage, no autograd).
    Init { varmap: VarMap, init_std: f64, detached: bool },
}

impl Clone for Source {
    fn clone(&self) -> Self {
        match self {
            Source::Checkpoint(c) => Source::Checkpoint(c.clone()),
            Source::Gguf(g) => Source::Gguf(g.clone()),
            Source::Init { varmap, init_std, detached } => {
                Source::Init { varmap: varmap.clone(), init_std: *init_std, detached: *detached }
            }
        }
    }
}

/// A view of a weight source under a name prefix (`model.layers.3.`).
#[derive(Clone)]
pub struct Weights {
    source: Source,
    prefix: String,
    dtype: DType,
    device: Device,
}

impl Weights {
    /// Opens the safetensors of an HF model folder: the shards named by
    /// `model.safetensors.index.json` if present, else `model.safetensors`, else every
    /// `*.safetensors` file in the folder.
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let files = checkpoint_files(dir)?;
        Self::from_files(&files, dir.display().to_string(), dtype, device)
    }

    /// Opens the given safetensors files; `location` names them in error messages.
    pub fn from_files(paths: &[PathBuf], location: String, dtype: DType, device: &Device) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut routing = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            std::fs::metadata(path).map_err(|e| WhaleError::io(path, e))?;
            // SAFETY: the file is mapped read-only; Whale never writes checkpoint files in place
            // (they are written to a temp file and renamed), so the mapping stays valid.
            let st = unsafe { MmapedSafetensors::new(path) }.map_err(|e| WhaleError::Safetensors {
                path: path.clone(),
                message: root_cause(&e),
            })?;
            for (name, _) in st.tensors() {
                routing.insert(name, i);
            }
            files.push((path.clone(), st));
        }
        let checkpoint = Checkpoint { files, routing, location };
        Ok(Self { source: Source::Checkpoint(Arc::new(checkpoint)), prefix: String::new(), dtype, device: device.clone() })
    }

    /// Weights read from a GGUF file through `tensors`, which maps HF names to the file's.
    pub fn from_gguf(tensors: Arc<dyn GgufTensors>, dtype: DType, device: &Device) -> Self {
        Self { source: Source::Gguf(tensors), prefix: String::new(), dtype, device: device.clone() }
    }

    /// The stored (possibly quantized) form of `name` when the source is a GGUF file,
    /// shape-checked; `Ok(None)` for other sources (ask [`Weights::get`] instead).
    pub fn get_raw(&self, shape: &[usize], name: &str) -> Result<Option<RawTensor<'_>>> {
        let Source::Gguf(g) = &self.source else { return Ok(None) };
        let full = self.full_name(name);
        let raw = g.raw(&full)?.ok_or_else(|| WhaleError::MissingTensor { name: full.clone(), location: g.location() })?;
        if raw.shape != shape {
            return Err(WhaleError::ShapeMismatch { name: full, expected: shape.to_vec(), found: raw.shape });
        }
        Ok(Some(raw))
    }

    /// Whether the source is a GGUF file.
    pub fn is_gguf(&self) -> bool {
        matches!(self.source, Source::Gguf(_))
    }

    /// Fresh variables for training: every `get` creates (or returns) a `Var` in `varmap`,
    /// initialized N(0, init_std) for matrices, ones for norms, zeros for biases.
    pub fn for_training(varmap: &VarMap, init_std: f64, dtype: DType, device: &Device) -> Self {
        Self {
            source: Source::Init { varmap: varmap.clone(), init_std, detached: false },
            prefix: String::new(),
            dtype,
            device: device.clone(),
        }
    }

    /// The Vars of `varmap` for inference: the tensors share the Vars' storage, so a model
    /// built over them follows every optimizer step, but they are detached, so its forwards
    /// build no autograd graph and take the inference kernels (GRPO's rollout engine). Every
    /// tensor asked for must already be in `varmap`.
    pub fn over_vars(varmap: &VarMap, dtype: DType, device: &Device) -> Self {
        Self {
            source: Source::Init { varmap: varmap.clone(), init_std: 0.0, detached: true },
            prefix: String::new(),
            dtype,
            device: device.clone(),
        }
    }

    /// The same source under `prefix.` (HF names are dotted paths).
    pub fn pp(&self, prefix: impl std::fmt::Display) -> Self {
        Self { prefix: format!("{}{}.", self.prefix, prefix), ..self.clone() }
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether the weights are read from a checkpoint (frozen) rather than created for training.
    pub fn is_checkpoint(&self) -> bool {
        matches!(self.source, Source::Checkpoint(_) | Source::Gguf(_))
    }

    /// Whether `name` exists: in a checkpoint, whether the file has it; in training mode,
    /// always (the variable is created on demand).
    pub fn contains(&self, name: &str) -> bool {
        match &self.source {
            Source::Checkpoint(c) => c.routing.contains_key(&self.full_name(name)),
            Source::Gguf(g) => g.contains(&self.full_name(name)),
            Source::Init { .. } => true,
        }
    }

    /// A matrix or other weight, N(0, init_std) when created for training.
    pub fn get(&self, shape: &[usize], name: &str) -> Result<Tensor> {
        let init = match &self.source {
            Source::Init { init_std, .. } => Init::Randn { mean: 0.0, stdev: *init_std },
            Source::Checkpoint(_) | Source::Gguf(_) => Init::Const(0.0),
        };
        self.get_init(shape, name, init)
    }

    /// A norm weight (ones when created for training).
    pub fn get_ones(&self, shape: &[usize], name: &str) -> Result<Tensor> {
        self.get_init(shape, name, Init::Const(1.0))
    }

    /// A bias (zeros when created for training).
    pub fn get_zeros(&self, shape: &[usize], name: &str) -> Result<Tensor> {
        self.get_init(shape, name, Init::Const(0.0))
    }

    /// Like `get`, but kept in f32 whatever the model dtype (router weights and biases,
    /// which DeepSeek keeps in full precision).
    pub fn get_f32(&self, shape: &[usize], name: &str, init: Init) -> Result<Tensor> {
        Self { dtype: DType::F32, ..self.clone() }.get_init(shape, name, init)
    }

    pub fn get_init(&self, shape: &[usize], name: &str, init: Init) -> Result<Tensor> {
        let full = self.full_name(name);
        match &self.source {
            Source::Init { varmap, detached: false, .. } => Ok(varmap.get(shape, &full, init, self.dtype, &self.device)?),
            Source::Init { varmap, detached: true, .. } => {
                let vars = varmap.data().lock().expect("varmap lock");
                let var = vars.get(&full).ok_or_else(|| WhaleError::MissingTensor { name: full.clone(), location: "the policy's variables".into() })?;
                if var.dims() != shape {
                    return Err(WhaleError::InvalidInput(format!("variable {full}: shape {:?}, expected {shape:?}", var.dims())));
                }
                Ok(var.as_tensor().detach().to_dtype(self.dtype)?)
            }
            Source::Gguf(g) => {
                let raw = self.get_raw(shape, name)?.ok_or_else(|| WhaleError::MissingTensor {
                    name: full.clone(),
                    location: g.location(),
                })?;
                let tensor = raw_to_tensor(g.as_ref(), &full, &raw, &self.device)?;
                Ok(tensor.to_dtype(self.dtype)?)
            }
            Source::Checkpoint(c) => {
                let index = *c.routing.get(&full).ok_or_else(|| WhaleError::MissingTensor {
                    name: full.clone(),
                    location: c.location.clone(),
                })?;
                let (path, st) = &c.files[index];
                let view = st.get(&full).map_err(|e| WhaleError::Safetensors {
                    path: path.clone(),
                    message: root_cause(&e),
                })?;
                use safetensors::Dtype as S;
                if !matches!(view.dtype(), S::F32 | S::F16 | S::BF16) {
                    return Err(WhaleError::UnsupportedDtype { name: full, dtype: format!("{:?}", view.dtype()) });
                }
                if view.shape() != shape {
                    return Err(WhaleError::ShapeMismatch {
                        name: full,
                        expected: shape.to_vec(),
                        found: view.shape().to_vec(),
                    });
                }
                let tensor = view.load(&self.device).map_err(|e| WhaleError::Safetensors {
                    path: path.clone(),
                    message: format!("tensor `{full}`: {}", root_cause(&e)),
                })?;
                Ok(tensor.to_dtype(self.dtype)?)
            }
        }
    }

    /// Number of values stored in the checkpoint (or created so far in training mode).
    pub fn parameter_count(&self) -> usize {
        match &self.source {
            Source::Checkpoint(c) => c
                .files
                .iter()
                .flat_map(|(_, st)| st.tensors().into_iter().map(|(_, v)| v.shape().iter().product::<usize>()))
                .sum(),
            Source::Gguf(g) => g.parameter_count(),
            Source::Init { varmap, .. } => varmap.all_vars().iter().map(|v| v.elem_count()).sum(),
        }
    }

    /// Bytes of the checkpoint files on disk (0 in training mode).
    pub fn file_bytes(&self) -> u64 {
        match &self.source {
            Source::Checkpoint(c) => c.files.iter().filter_map(|(p, _)| std::fs::metadata(p).ok()).map(|m| m.len()).sum(),
            Source::Gguf(g) => g.file_bytes(),
            Source::Init { .. } => 0,
        }
    }

    fn full_name(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }
}

/// A GGUF tensor as a candle tensor: float types are read as stored, block types are
/// dequantized to f32 through `g`.
pub fn raw_to_tensor(g: &dyn GgufTensors, name: &str, raw: &RawTensor<'_>, device: &Device) -> Result<Tensor> {
    let shape = raw.shape.as_slice();
    let n: usize = shape.iter().product();
    let dtype = match raw.ty {
        GgmlType::F32 => Some(DType::F32),
        GgmlType::F16 => Some(DType::F16),
        GgmlType::BF16 => Some(DType::BF16),
        _ => None,
    };
    match dtype {
        Some(dt) => {
            if raw.data.len() != n * dt.size_in_bytes() {
                return Err(WhaleError::InvalidInput(format!(
                    "tensor `{name}`: {} bytes for {n} {:?} values",
                    raw.data.len(),
                    dt
                )));
            }
            Ok(Tensor::from_raw_buffer(&raw.data, dt, shape, device)?)
        }
        None => {
            let values = g.dequantize(name, raw)?;
            Ok(Tensor::from_vec(values, shape, device)?)
        }
    }
}

/// The safetensors files that make up the checkpoint in `dir`.
pub fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(dir).map_err(|e| WhaleError::io(dir, e))?;
    if !meta.is_dir() {
        return Err(WhaleError::BadFile {
            path: dir.to_path_buf(),
            message: "expected a model folder (config.json + *.safetensors)".into(),
        });
    }
    let index = dir.join(INDEX_FILE);
    if index.exists() {
        return shards_from_index(&index, dir);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| WhaleError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(WhaleError::BadFile { path: dir.to_path_buf(), message: "no *.safetensors files in this folder".into() });
    }
    Ok(files)
}

fn shards_from_index(index: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|e| WhaleError::io(index, e))?;
    let bad = |message: String| WhaleError::BadFile { path: index.to_path_buf(), message };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("missing object `weight_map`".into()))?;
    let mut shards: Vec<String> = Vec::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| bad(format!("weight_map[{tensor:?}] is not a file name")))?;
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(bad(format!("weight_map[{tensor:?}] = {file:?} is not a file in the model folder")));
        }
        if !shards.iter().any(|s| s == file) {
            shards.push(file.to_string());
        }
    }
    if shards.is_empty() {
        return Err(bad("`weight_map` is empty".into()));
    }
    shards.sort();
    let paths: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
    for p in &paths {
        if !p.exists() {
            return Err(bad(format!("shard {} listed in the index does not exist", p.display())));
        }
    }
    Ok(paths)
}

/// candle wraps errors with backtraces and paths; keep the message a user needs.
fn root_cause(e: &candle_core::Error) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or(&s).to_string()
}
