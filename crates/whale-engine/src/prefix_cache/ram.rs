//! The RAM tier: blocks in memory, least-recently-used evicted first once the byte cap is
//! reached.

use super::{Block, BlockKey};
use std::collections::HashMap;
use std::sync::Arc;

pub struct RamTier {
    cap: usize,
    bytes: usize,
    tick: u64,
    map: HashMap<BlockKey, (Arc<Block>, u64)>,
}

impl RamTier {
    pub fn new(cap: usize) -> Self {
        RamTier { cap, bytes: 0, tick: 0, map: HashMap::new() }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains(&self, key: &BlockKey) -> bool {
        self.map.contains_key(key)
    }

    pub fn get(&mut self, key: &BlockKey) -> Option<Arc<Block>> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(key).map(|(b, t)| {
            *t = tick;
            b.clone()
        })
    }

    /// Inserts (or refreshes) a block, then evicts the least recently used ones beyond the cap.
    /// A block larger than the whole cap is not kept.
    pub fn insert(&mut self, key: BlockKey, block: Arc<Block>) {
        let size = block.bytes();
        if size > self.cap {
            return;
        }
        self.tick += 1;
        if let Some((old, _)) = self.map.insert(key, (block, self.tick)) {
            self.bytes -= old.bytes();
        }
        self.bytes += size;
        while self.bytes > self.cap {
            let Some((&oldest, _)) = self.map.iter().min_by_key(|(_, (_, t))| *t) else { break };
            if let Some((b, _)) = self.map.remove(&oldest) {
                self.bytes -= b.bytes();
            }
        }
    }
}
