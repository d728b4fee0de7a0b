//! The built-in model, `whale-r1-tiny` (models/whale-r1-tiny/README.md says how it was made
//! and what it scores): compiled into the binary, so `whale chat`, `generate`, `serve`, `eval`
//! and `grpo` have a model with no `--model`, no download and no network. On first use its
//! files are written to a cache folder named by their hash (atomically: a folder is renamed
//! into place once complete), and every later run reuses it.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What `--model` says to mean the built-in model (and its default).
pub const NAME: &str = "whale-r1-tiny";

const FILES: &[(&str, &[u8])] = &[
    ("config.json", include_bytes!("../../../models/whale-r1-tiny/config.json")),
    ("model.safetensors", include_bytes!("../../../models/whale-r1-tiny/model.safetensors")),
    ("tokenizer.json", include_bytes!("../../../models/whale-r1-tiny/tokenizer.json")),
    ("tokenizer_config.json", include_bytes!("../../../models/whale-r1-tiny/tokenizer_config.json")),
    ("README.md", include_bytes!("../../../models/whale-r1-tiny/README.md")),
];

/// `--model`'s parser: an existing path as given; [`NAME`] (when no such file or folder exists
/// here) means the built-in model's folder; anything else is refused before any work starts.
pub fn model_path(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.exists() {
        return Ok(p);
    }
    if s == NAME {
        return folder().map_err(|e| format!("{e:#}"));
    }
    Err(format!(
        "{s} does not exist: give an HF model folder (config.json + *.safetensors) or a .gguf file, \
         or leave --model out for the built-in {NAME}"
    ))
}

/// The built-in model's folder, written on first use.
pub fn folder() -> Result<PathBuf> {
    let mut h = Sha256::new();
    for (name, bytes) in FILES {
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    let digest: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let root = cache_root().join(format!("{NAME}-{digest}"));
    let dir = root.join(NAME);
    if FILES.iter().all(|(name, bytes)| std::fs::metadata(dir.join(name)).is_ok_and(|m| m.len() == bytes.len() as u64)) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {} for the built-in model (set WHALE_CACHE_DIR to use another folder)", root.display()))?;
    let tmp = root.join(format!(".{NAME}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for (name, bytes) in FILES {
        write_synced(&tmp.join(name), bytes)?;
    }
    // Another process may have finished first: its folder is as good as ours.
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join("model.safetensors").is_file() {
            return Err(e).with_context(|| format!("moving the built-in model into {}", dir.display()));
        }
    }
    Ok(dir)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("writing {}", path.display()))
}

/// `$WHALE_CACHE_DIR`, else `$XDG_CACHE_HOME/whale`, else `~/.cache/whale`, else the temp dir.
fn cache_root() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("WHALE_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("whale")))
        .or_else(|| env("HOME").map(|p| p.join(".cache").join("whale")))
        .unwrap_or_else(|| std::env::temp_dir().join("whale"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_model_is_written_once_and_loads() {
        let dir = folder().unwrap();
        assert_eq!(dir.file_name().unwrap(), NAME);
        for (name, bytes) in FILES {
            assert_eq!(std::fs::read(dir.join(name)).unwrap(), *bytes, "{name}");
        }
        assert_eq!(folder().unwrap(), dir, "the second call reuses the folder");
        assert_eq!(model_path(NAME).unwrap(), dir);
        assert!(model_path("some/missing/path").unwrap_err().contains("some/missing/path does not exist"));
        let here = env!("CARGO_MANIFEST_DIR");
        assert_eq!(model_path(here).unwrap(), PathBuf::from(here));
        let m = whale_model::load_model(&dir, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let t = whale_text::tokenizer::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
        assert!(t.vocab_size() <= m.info().vocab_size);
        assert!(t.chat_template().is_some(), "chat and serve need the template");
    }
}
