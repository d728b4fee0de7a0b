//! Tokenized documents cached on disk as memory-mapped u32 shards.
//!
//! `prepare` streams every source's documents, routes each to the train or validation split
//! by a salted SHA-256 of its text (so the split does not move when sources are reordered or
//! appended), tokenizes it (BOS/EOS added as configured; EOS is the packing separator) and
//! appends the ids, little-endian u32, to `train.bin` / `val.bin`. The folder is named by a
//! hash of everything that decides its content (sources with their size and mtime, the
//! tokenizer file, the data settings), built under a temp name, fsynced and renamed, so a
//! later run reuses it and an interrupted one never leaves a half-written cache.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use whale_text::tokenizer::Tokenizer;

use crate::data::config::DataConfig;
use crate::data::documents::DocumentReader;
use crate::error::{Result, TrainError};

/// Bumped when the shard layout changes, so old caches are rebuilt rather than misread.
const FORMAT_VERSION: u32 = 1;
const META: &str = "meta.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub version: u32,
    pub train_tokens: u64,
    pub val_tokens: u64,
    pub train_docs: u64,
    pub val_docs: u64,
    pub eos_id: Option<u32>,
}

/// One split's tokens, memory-mapped.
pub struct Shard {
    path: PathBuf,
    map: Option<Mmap>,
}

impl Shard {
    fn open(path: &Path, expected_tokens: u64) -> Result<Self> {
        let f = File::open(path).map_err(|e| TrainError::io(path, e))?;
        let len = f.metadata().map_err(|e| TrainError::io(path, e))?.len();
        if len != expected_tokens * 4 {
            return Err(TrainError::data(
                path,
                format!("shard holds {len} bytes, its meta.json says {expected_tokens} tokens ({} bytes); delete the cache folder", expected_tokens * 4),
            ));
        }
        // An empty file cannot be mapped; it simply has no tokens.
        // SAFETY: the cache folder is written once (renamed into place) and never modified
        // afterwards, so the mapped bytes do not change under us.
        let map = if len == 0 {
            None
        } else {
            Some(unsafe { Mmap::map(&f) }.map_err(|e| TrainError::io(path, e))?)
        };
        Ok(Shard {
            path: path.to_path_buf(),
            map,
        })
    }

    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len() / 4)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens `start .. start + n` (the caller keeps the range inside the shard).
    pub fn tokens(&self, start: usize, n: usize) -> Result<Vec<u32>> {
        let bytes = self.map.as_deref().unwrap_or(&[]);
        let range = start * 4..(start + n) * 4;
        let slice = bytes.get(range).ok_or_else(|| {
            TrainError::data(
                &self.path,
                format!(
                    "tokens {start}..{} out of range ({} tokens)",
                    start + n,
                    self.len()
                ),
            )
        })?;
        Ok(slice
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

pub struct TokenShards {
    pub dir: PathBuf,
    pub meta: ShardMeta,
    pub train: Shard,
    pub val: Shard,
}

/// Tokenizes `data` into `cache_dir/<hash>/` (or reuses it). `file` names the run.toml;
/// `progress` shows a spinner with the documents and tokens done.
pub fn prepare(
    data: &DataConfig,
    tok: &Tokenizer,
    cache_dir: &Path,
    file: &Path,
    progress: bool,
) -> Result<TokenShards> {
    let sources = data.resolved_sources(file)?;
    let eos_id = match &data.eos_token {
        Some(t) => Some(tok.token_to_id(t).ok_or_else(|| {
            TrainError::config(
                file,
                "data.eos_token",
                format!("`{t}` is not a token of {}", tok.source().display()),
            )
        })?),
        None => tok.eos_ids().iter().next().copied(),
    };
    if data.add_eos && eos_id.is_none() {
        return Err(TrainError::config(
            file,
            "data.eos_token",
            "the tokenizer has no EOS token; name the separator token or set add_eos = false",
        ));
    }
    let bos_id = if data.add_bos {
        Some(tok.bos_id().ok_or_else(|| {
            TrainError::config(file, "data.add_bos", "the tokenizer has no BOS token")
        })?)
    } else {
        None
    };

    let mut h = Sha256::new();
    h.update(FORMAT_VERSION.to_le_bytes());
    let tok_path = tok.source();
    let tok_bytes = std::fs::read(tok_path).map_err(|e| TrainError::io(tok_path, e))?;
    h.update(Sha256::digest(&tok_bytes));
    for s in &sources {
        let md = std::fs::metadata(&s.path).map_err(|e| TrainError::io(&s.path, e))?;
        let mtime = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(format!(
            "{:?}|{:?}|{}|{:?}|{}|{mtime}\n",
            s.path,
            s.format,
            s.text_field,
            s.text_split,
            md.len()
        ));
    }
    h.update(format!(
        "{}|{}|{}|{}|{:?}|{:?}",
        data.validation_fraction, data.split_seed, data.add_eos, data.add_bos, eos_id, bos_id
    ));
    let key: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache_dir.join(format!("tokens-{key}"));
    if dir.join(META).exists() {
        return open(&dir);
    }

    std::fs::create_dir_all(cache_dir).map_err(|e| TrainError::io(cache_dir, e))?;
    let tmp = cache_dir.join(format!(".tokens-{key}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let create = |name: &str| -> Result<BufWriter<File>> {
        let p = tmp.join(name);
        Ok(BufWriter::with_capacity(
            1 << 20,
            File::create(&p).map_err(|e| TrainError::io(&p, e))?,
        ))
    };
    let mut outs = [create("train.bin")?, create("val.bin")?];
    let mut meta = ShardMeta {
        version: FORMAT_VERSION,
        train_tokens: 0,
        val_tokens: 0,
        train_docs: 0,
        val_docs: 0,
        eos_id,
    };
    let bar = if progress {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    for src in &sources {
        for doc in DocumentReader::open(src)? {
            let doc = doc?;
            let done = meta.train_docs + meta.val_docs;
            if done % 256 == 0 {
                bar.set_message(format!(
                    "tokenizing {}: {done} documents, {} tokens",
                    src.path.display(),
                    meta.train_tokens + meta.val_tokens
                ));
                bar.tick();
            }
            let val = is_validation(&doc.text, data.split_seed, data.validation_fraction);
            let mut ids = Vec::with_capacity(doc.text.len() / 3 + 2);
            ids.extend(bos_id);
            ids.extend(tok.encode(&doc.text, false).map_err(|e| {
                TrainError::data(
                    &src.path,
                    format!("document at {}: cannot tokenize: {e}", doc.location),
                )
            })?);
            if data.add_eos {
                ids.extend(eos_id);
            }
            let out = &mut outs[usize::from(val)];
            let bytes: Vec<u8> = ids.iter().flat_map(|t| t.to_le_bytes()).collect();
            out.write_all(&bytes).map_err(|e| TrainError::io(&tmp, e))?;
            if val {
                meta.val_tokens += ids.len() as u64;
                meta.val_docs += 1;
            } else {
                meta.train_tokens += ids.len() as u64;
                meta.train_docs += 1;
            }
        }
    }
    bar.finish_and_clear();
    for out in outs {
        let f = out
            .into_inner()
            .map_err(|e| TrainError::io(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| TrainError::io(&tmp, e))?;
    }
    let meta_path = tmp.join(META);
    let json = serde_json::to_string_pretty(&meta)
        .map_err(|e| TrainError::data(&meta_path, e.to_string()))?;
    write_synced(&meta_path, json.as_bytes())?;
    if dir.exists() {
        // Another run finished the same cache first; ours is identical.
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    } else {
        std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&dir, e))?;
    }
    open(&dir)
}

/// Opens a finished cache folder.
pub fn open(dir: &Path) -> Result<TokenShards> {
    let meta_path = dir.join(META);
    let text = std::fs::read_to_string(&meta_path).map_err(|e| TrainError::io(&meta_path, e))?;
    let meta: ShardMeta =
        serde_json::from_str(&text).map_err(|e| TrainError::data(&meta_path, e.to_string()))?;
    if meta.version != FORMAT_VERSION {
        return Err(TrainError::data(
            &meta_path,
            format!(
                "shard format {}, this build reads {FORMAT_VERSION}",
                meta.version
            ),
        ));
    }
    Ok(TokenShards {
        dir: dir.to_path_buf(),
        train: Shard::open(&dir.join("train.bin"), meta.train_tokens)?,
        val: Shard::open(&dir.join("val.bin"), meta.val_tokens)?,
        meta,
    })
}

/// Whether a document belongs to the validation split: a salted hash of its text, read as a
/// number in [0, 1), below `fraction`.
pub fn is_validation(text: &str, salt: u64, fraction: f64) -> bool {
    if fraction <= 0.0 {
        return false;
    }
    let mut h = Sha256::new();
    h.update(salt.to_le_bytes());
    h.update(text.as_bytes());
    let d = h.finalize();
    let x = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    (x as f64 / u64::MAX as f64) < fraction
}

/// Writes `bytes` to `path` and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| TrainError::io(path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| TrainError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::config::SourceSpec;
    use crate::data::parquet_reader::tests::write_text_parquet;

    #[test]
    fn parquet_and_text_sources_become_one_cached_token_stream() {
        let dir = tempfile::tempdir().unwrap();
        let tok = Tokenizer::from_dir(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_chat_tokenizer"),
        )
        .unwrap();
        write_text_parquet(
            &dir.path().join("a.parquet"),
            &[&["the sea", "the whale"], &["a song"]],
        );
        std::fs::write(dir.path().join("b.txt"), "first doc\n\nsecond\ndoc\n").unwrap();
        let mut cfg = DataConfig::new(vec![dir.path().join("a.parquet"), dir.path().join("b.txt")]);
        cfg.validation_fraction = 0.0;
        let run = dir.path().join("run.toml");
        let s = prepare(&cfg, &tok, &dir.path().join("cache"), &run, false).unwrap();
        assert_eq!((s.meta.train_docs, s.meta.val_docs), (5, 0));
        let all = s.train.tokens(0, s.train.len()).unwrap();
        let eos = s.meta.eos_id.unwrap();
        assert_eq!(
            all.iter().filter(|&&t| t == eos).count(),
            5,
            "one EOS after every document"
        );
        let mut expect = tok.encode("the sea", false).unwrap();
        expect.push(eos);
        assert_eq!(&all[..expect.len()], &expect[..]);
        // A changed setting is a different cache; the same settings reuse it.
        let again = prepare(&cfg, &tok, &dir.path().join("cache"), &run, false).unwrap();
        assert_eq!(again.dir, s.dir);
        cfg.add_bos = true;
        let bos = prepare(&cfg, &tok, &dir.path().join("cache"), &run, false).unwrap();
        assert_ne!(bos.dir, s.dir);
        assert_eq!(bos.train.len(), s.train.len() + 5);
        // A missing column names the file and the column.
        cfg.sources = vec![SourceSpec::Table {
            path: dir.path().join("a.parquet"),
            format: None,
            text_field: Some("content".into()),
            text_split: None,
        }];
        let e = prepare(&cfg, &tok, &dir.path().join("cache"), &run, false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a.parquet") && e.contains("`content`"), "{e}");
    }

    #[test]
    fn validation_split_is_stable_and_near_the_fraction() {
        let n = (0..2000)
            .filter(|i| is_validation(&format!("doc {i}"), 0, 0.1))
            .count();
        assert!((150..250).contains(&n), "{n}");
        assert_eq!(is_validation("x", 3, 0.5), is_validation("x", 3, 0.5));
        assert!(!is_validation("x", 3, 0.0));
    }
}
