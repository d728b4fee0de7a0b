//! The prefix cache: KV blocks of 64 tokens keyed by a hash chain of the token ids and a
//! model fingerprint, found by longest-prefix match from token 0, held in RAM (LRU, byte cap)
//! and optionally on disk (survives restarts, byte cap, checksummed atomic files). The partial
//! block at the end of a sequence is kept too, in RAM (`tail.rs`), so a repeated prompt
//! computes only its last token.
//!
//! This is what DeepSeek's API bills as a "cache hit": a request whose prompt starts with a
//! prefix seen before skips computing it. MLA models store only the latent
//! (`kv_lora_rank + qk_rope_head_dim` values per token per layer), which is what makes a disk
//! tier cheap for them: the blocks are the cache's own tensors, so no model-specific code
//! lives here.

mod block;
mod disk;
mod key;
mod ram;
mod tail;

#[cfg(test)]
mod tests;

pub use block::Block;
pub use disk::DiskTier;
pub use key::{chain, fingerprint_files, root, BlockKey, BLOCK_TOKENS};
pub use ram::RamTier;
pub use tail::TailTier;

use candle_core::{DType, Device};
use std::path::PathBuf;
use std::sync::Arc;
use whale_nn::KvCache;

#[derive(Debug, Clone)]
pub struct PrefixCacheConfig {
    /// Byte cap of the RAM tier (a quarter of it for partial tail blocks).
    pub ram_bytes: usize,
    pub disk: Option<DiskConfig>,
    /// Identifies the model (and cache dtype): blocks of other models are never matched.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct DiskConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("prefix cache file {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("invalid prefix cache block: {0}")]
    Format(String),
    #[error("prefix cache tensor error: {0}")]
    Tensor(#[from] whale_core::WhaleError),
}

impl From<candle_core::Error> for CacheError {
    fn from(e: candle_core::Error) -> Self {
        CacheError::Tensor(e.into())
    }
}

pub struct PrefixCache {
    fingerprint: String,
    ram: RamTier,
    tails: TailTier,
    disk: Option<DiskTier>,
    dtype: DType,
    device: Device,
    /// Per layer, the shapes of one block's tensors.
    shapes: Vec<Vec<Vec<usize>>>,
}

impl PrefixCache {
    /// `template` is an empty cache of the model (it gives the layer kinds, widths, dtype).
    pub fn new(cfg: &PrefixCacheConfig, template: &KvCache, device: &Device) -> Result<Self, CacheError> {
        let shapes = (0..template.num_layers()).map(|i| template.layer(i).span_shapes(BLOCK_TOKENS)).collect();
        let disk = match &cfg.disk {
            Some(d) => Some(DiskTier::open(&d.dir, &cfg.fingerprint, d.max_bytes)?),
            None => None,
        };
        Ok(PrefixCache {
            fingerprint: cfg.fingerprint.clone(),
            ram: RamTier::new(cfg.ram_bytes - cfg.ram_bytes / 4),
            tails: TailTier::new(cfg.ram_bytes / 4),
            disk,
            dtype: template.dtype(),
            device: device.clone(),
            shapes,
        })
    }

    pub fn ram_bytes(&self) -> usize {
        self.ram.bytes() + self.tails.bytes()
    }

    pub fn disk_bytes(&self) -> u64 {
        self.disk.as_ref().map_or(0, DiskTier::bytes)
    }

    pub fn corrupt_blocks(&self) -> u64 {
        self.disk.as_ref().map_or(0, DiskTier::corrupt_blocks)
    }

    /// Fills the empty `cache` with the longest cached prefix of `tokens` that is at most
    /// `max_tokens` long, and returns its length: whole 64-token blocks from RAM or disk, then
    /// as much of a partial tail block from RAM as matches.
    pub fn load_prefix(&mut self, tokens: &[u32], max_tokens: usize, cache: &mut KvCache) -> Result<usize, CacheError> {
        if cache.seq_len() != 0 {
            return Err(CacheError::Format("load_prefix needs an empty cache".into()));
        }
        let usable = &tokens[..tokens.len().min(max_tokens)];
        let mut loaded = 0;
        let mut parent = root(&self.fingerprint);
        // Keys over all of `tokens`: the block that `max_tokens` ends inside loads too, but
        // for its last positions (a repeated prompt of whole blocks).
        for key in chain(&self.fingerprint, tokens) {
            if loaded >= usable.len() {
                break;
            }
            let Some(block) = self.find(&key)? else { break };
            self.import(&block, loaded, cache)?;
            loaded += BLOCK_TOKENS;
            parent = key;
        }
        if loaded > usable.len() {
            loaded = usable.len();
            cache.truncate(loaded);
        } else if loaded < usable.len() {
            if let Some((tail, n)) = self.tails.best(&parent, &usable[loaded..]) {
                self.import(&tail, loaded, cache)?;
                // The tail may run past what matches (or past `max_tokens`): keep the match.
                loaded += n;
                cache.truncate(loaded);
            }
        }
        Ok(loaded)
    }

    /// Appends a block's tensors to `cache`, which holds `held` positions; on an error the
    /// cache is cut back to them.
    fn import(&self, block: &Block, held: usize, cache: &mut KvCache) -> Result<(), CacheError> {
        let imported = block.layers.iter().enumerate().try_for_each(|(i, parts)| cache.layer_mut(i).import(parts));
        if let Err(e) = imported {
            cache.truncate(held);
            return Err(e.into());
        }
        Ok(())
    }

    fn find(&mut self, key: &BlockKey) -> Result<Option<Arc<Block>>, CacheError> {
        if let Some(b) = self.ram.get(key) {
            return Ok(Some(b));
        }
        let Some(disk) = self.disk.as_mut() else { return Ok(None) };
        let Some(block) = disk.get(key, self.dtype, &self.shapes, &self.device)? else { return Ok(None) };
        let block = Arc::new(block);
        self.ram.insert(*key, block.clone());
        Ok(Some(block))
    }

    /// Adds every full block of `tokens[..cache.seq_len()]` not cached yet, and the partial
    /// block after them to the tail tier; returns how many full blocks were added. `tokens`
    /// are the ids whose KV `cache` holds, in order.
    pub fn store(&mut self, tokens: &[u32], cache: &KvCache) -> Result<usize, CacheError> {
        let held = &tokens[..tokens.len().min(cache.seq_len())];
        let mut added = 0;
        let keys = chain(&self.fingerprint, held);
        for (i, &key) in keys.iter().enumerate() {
            let on_disk = self.disk.as_ref().is_none_or(|d| d.contains(&key));
            let in_ram = self.ram.contains(&key);
            if in_ram && on_disk {
                continue;
            }
            let layers = (0..cache.num_layers())
                .map(|l| cache.layer(l).export(i * BLOCK_TOKENS, BLOCK_TOKENS))
                .collect::<Result<Vec<_>, _>>()?;
            let block = Block { layers };
            if let Some(disk) = self.disk.as_mut() {
                if on_disk {
                    // Indexed but not loaded for this request: unverified, so rewrite it.
                    disk.rewrite(&key, &block)?;
                } else {
                    disk.put(&key, &block)?;
                }
            }
            self.ram.insert(key, Arc::new(block));
            added += 1;
        }
        let full = held.len() / BLOCK_TOKENS * BLOCK_TOKENS;
        if held.len() > full {
            let parent = keys.last().copied().unwrap_or_else(|| root(&self.fingerprint));
            let tail = &held[full..];
            if !self.tails.covers(&parent, tail) {
                let layers = (0..cache.num_layers())
                    .map(|l| cache.layer(l).export(full, tail.len()))
                    .collect::<Result<Vec<_>, _>>()?;
                self.tails.insert(parent, tail.to_vec(), Block { layers });
            }
        }
        Ok(added)
    }
}
