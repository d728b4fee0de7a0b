//! The disk tier: one file per block under `DIR/<model fingerprint>/`, surviving restarts,
//! capped in bytes with the least recently used blocks deleted first.
//!
//! Writes are atomic (temp file, fsync, rename), so a crash leaves either the old state or a
//! complete block, never a partial one under a block's name; leftover temp files are removed
//! at open. Every read is verified (see `block.rs`): a corrupted or foreign file is deleted
//! and reported as a miss, so the block is recomputed rather than served.

use super::{Block, BlockKey, CacheError};
use candle_core::{DType, Device};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const EXT: &str = "kvb";

pub struct DiskTier {
    dir: PathBuf,
    cap: u64,
    bytes: u64,
    tick: u64,
    /// Key → (file size, last use).
    index: HashMap<BlockKey, (u64, u64)>,
    corrupt: u64,
}

impl DiskTier {
    /// Opens (creating) `root/<fingerprint>/` and indexes the blocks already there, oldest
    /// modification time first.
    pub fn open(root: &Path, fingerprint: &str, cap: u64) -> Result<Self, CacheError> {
        let dir = root.join(fingerprint);
        std::fs::create_dir_all(&dir).map_err(|e| CacheError::Io(dir.clone(), e))?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| CacheError::Io(dir.clone(), e))? {
            let entry = entry.map_err(|e| CacheError::Io(dir.clone(), e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(key) = name.strip_suffix(&format!(".{EXT}")).and_then(BlockKey::from_hex) else { continue };
            let meta = entry.metadata().map_err(|e| CacheError::Io(path.clone(), e))?;
            found.push((meta.modified().ok(), key, meta.len()));
        }
        found.sort();
        let mut tier = DiskTier { dir, cap, bytes: 0, tick: 0, index: HashMap::new(), corrupt: 0 };
        for (_, key, size) in found {
            tier.tick += 1;
            tier.index.insert(key, (size, tier.tick));
            tier.bytes += size;
        }
        tier.evict()?;
        Ok(tier)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn corrupt_blocks(&self) -> u64 {
        self.corrupt
    }

    pub fn contains(&self, key: &BlockKey) -> bool {
        self.index.contains_key(key)
    }

    fn path(&self, key: &BlockKey) -> PathBuf {
        self.dir.join(format!("{}.{EXT}", key.hex()))
    }

    /// The verified block, or `None` when absent or (then deleted) corrupted.
    pub fn get(
        &mut self,
        key: &BlockKey,
        dtype: DType,
        expected: &[Vec<Vec<usize>>],
        device: &Device,
    ) -> Result<Option<Block>, CacheError> {
        if !self.index.contains_key(key) {
            return Ok(None);
        }
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.forget(key);
                return Ok(None);
            }
            Err(e) => return Err(CacheError::Io(path, e)),
        };
        match Block::decode(&bytes, key, dtype, expected, device) {
            Ok(block) => {
                self.tick += 1;
                if let Some(e) = self.index.get_mut(key) {
                    e.1 = self.tick;
                }
                Ok(Some(block))
            }
            Err(CacheError::Format(why)) => {
                tracing::warn!("prefix cache: dropping corrupted block {}: {why}", path.display());
                self.corrupt += 1;
                let _ = std::fs::remove_file(&path);
                self.forget(key);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes a block atomically, then evicts beyond the cap. A block larger than the whole
    /// cap is not written.
    pub fn put(&mut self, key: &BlockKey, block: &Block) -> Result<(), CacheError> {
        if self.index.contains_key(key) {
            return Ok(());
        }
        let bytes = block.encode(key)?;
        if bytes.len() as u64 > self.cap {
            return Ok(());
        }
        let path = self.path(key);
        let tmp = self.dir.join(format!("{}.{}.tmp", key.hex(), std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(CacheError::Io(path, e));
        }
        self.tick += 1;
        self.index.insert(*key, (bytes.len() as u64, self.tick));
        self.bytes += bytes.len() as u64;
        self.evict()
    }

    /// Writes a block over an indexed file of the same key. Used for a block that was just
    /// recomputed although its file exists: the chain stopped before it (an earlier block was
    /// corrupted or evicted), so its file was never verified and may itself be torn; leaving
    /// it would turn every later restart's lookup into a miss.
    pub fn rewrite(&mut self, key: &BlockKey, block: &Block) -> Result<(), CacheError> {
        self.forget(key);
        self.put(key, block)?;
        if !self.index.contains_key(key) {
            // Not written (larger than the cap): the old file must not linger unindexed.
            let _ = std::fs::remove_file(self.path(key));
        }
        Ok(())
    }

    fn forget(&mut self, key: &BlockKey) {
        if let Some((size, _)) = self.index.remove(key) {
            self.bytes -= size;
        }
    }

    fn evict(&mut self) -> Result<(), CacheError> {
        while self.bytes > self.cap {
            let Some((&oldest, _)) = self.index.iter().min_by_key(|(_, (_, t))| *t) else { break };
            let path = self.path(&oldest);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CacheError::Io(path, e)),
            }
            self.forget(&oldest);
        }
        Ok(())
    }
}
