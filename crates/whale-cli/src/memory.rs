//! Will it fit? Checked before a model loads and before its engine starts, so that a model or a
//! context too big for this machine fails at once with what to do, rather than swapping or
//! being killed halfway through an answer.

use anyhow::{bail, Context, Result};
use candle_core::DType;
use std::path::Path;

const GIB: f64 = (1u64 << 30) as f64;

/// Memory the kernel says can be handed out now without swapping (`MemAvailable`), if known.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The bytes the weights take once loaded: a GGUF file's own size (its blocks stay in their
/// format), an HF folder's tensors at the compute dtype (they are converted on load).
pub fn weight_bytes(model: &Path, dtype: DType) -> Result<u64> {
    if model.is_file() {
        return Ok(std::fs::metadata(model).with_context(|| format!("reading {}", model.display()))?.len());
    }
    // Opening maps the files and reads their headers only; nothing is converted yet.
    let weights = whale_core::Weights::from_dir(model, dtype, &candle_core::Device::Cpu)?;
    Ok(weights.parameter_count() as u64 * dtype.size_in_bytes() as u64)
}

/// Refuses to load weights that cannot fit in the memory available now.
pub fn check_weights(model: &Path, dtype: DType, available: Option<u64>) -> Result<()> {
    let Some(free) = available else { return Ok(()) };
    let need = weight_bytes(model, dtype)?;
    if need > free {
        let hint = if model.is_file() {
            "use a smaller quantization (e.g. Q4_K_M) of the model".to_string()
        } else if dtype == DType::F32 {
            "pass --dtype bf16 (half the memory), or convert it to a quantized GGUF with `whale quantize DIR out.gguf --type q4_k_m`".to_string()
        } else {
            "convert it to a quantized GGUF with `whale quantize DIR out.gguf --type q4_k_m`".to_string()
        };
        bail!(
            "not enough memory for {}: its weights need {:.1} GiB, only {:.1} GiB are available; close other programs or {hint}",
            model.display(),
            need as f64 / GIB,
            free as f64 / GIB
        );
    }
    Ok(())
}

/// The context (tokens per sequence) the engine may use so that `batch` full sequences' KV
/// caches fit in `free` bytes: `requested` when given (an error if it cannot fit), else the
/// model's whole context, lowered with a warning when that would not fit.
pub fn context_for(model_context: usize, requested: Option<usize>, bytes_per_token: usize, batch: usize, free: Option<u64>) -> Result<usize> {
    let want = requested.unwrap_or(model_context).min(model_context);
    let Some(free) = free else { return Ok(want) };
    let per_seq = |tokens: usize| (tokens * bytes_per_token * batch) as u64;
    if per_seq(want) <= free {
        return Ok(want);
    }
    // Leave a quarter of what is free for activations and everything else.
    let fits = ((free as f64 * 0.75) / (bytes_per_token * batch).max(1) as f64) as usize;
    let need = per_seq(want) as f64 / GIB;
    let free_gib = free as f64 / GIB;
    if requested.is_some() || fits < 256 {
        bail!(
            "not enough memory for a {want}-token context: {batch} sequence(s) of it need {need:.1} GiB of KV cache, only \
             {free_gib:.1} GiB are available; pass --ctx-size {} or lower --max-batch",
            fits.max(1)
        );
    }
    eprintln!(
        "warning: the model's {want}-token context for {batch} sequence(s) would need {need:.1} GiB of KV cache, only \
         {free_gib:.1} GiB are available: contexts are limited to {fits} tokens (set --ctx-size or --max-batch to choose)"
    );
    Ok(fits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_counted_at_the_compute_dtype() {
        let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/qwen2_tiny");
        let f32 = weight_bytes(&tiny, DType::F32).unwrap();
        assert_eq!(weight_bytes(&tiny, DType::BF16).unwrap() * 2, f32);
        assert!(check_weights(&tiny, DType::F32, Some(f32)).is_ok());
        let e = check_weights(&tiny, DType::F32, Some(f32 - 1)).unwrap_err().to_string();
        assert!(e.contains("not enough memory") && e.contains("--dtype bf16"), "{e}");
        assert!(check_weights(&tiny, DType::F32, None).is_ok(), "unknown free memory is not an error");
    }

    #[test]
    fn contexts_that_do_not_fit_are_refused_or_lowered() {
        // 1 KiB per token, 4 sequences.
        assert_eq!(context_for(4096, None, 1024, 4, Some(1 << 30)).unwrap(), 4096);
        assert_eq!(context_for(4096, Some(100_000), 1024, 4, None).unwrap(), 4096, "never above the model's");
        let lowered = context_for(4096, None, 1024, 4, Some(8 << 20)).unwrap();
        assert_eq!(lowered, 1536, "three quarters of 8 MiB over 4 KiB per position");
        let e = context_for(4096, Some(4096), 1024, 4, Some(8 << 20)).unwrap_err().to_string();
        assert!(e.contains("not enough memory for a 4096-token context") && e.contains("--ctx-size 1536"), "{e}");
        let e = context_for(4096, None, 1024, 4, Some(512 << 10)).unwrap_err().to_string();
        assert!(e.contains("lower --max-batch"), "{e}");
    }
}
