//! The tail tier: the KV of the last, partial block of a cached sequence (fewer than 64
//! tokens), kept in RAM under the key of the full block before it.
//!
//! Without it a repeated prompt recomputes everything after its last full block (up to 63
//! tokens, most of a warm request's time to first token); with it only the one token whose
//! logits give the first new token is computed, as llama.cpp's server does when a slot's
//! prompt repeats. A tail serves a prompt that it covers (so the tail stored with a finished
//! answer, prompt + completion, also serves a repeat of its prompt alone) or that extends it
//! (the next turn of a conversation).
//!
//! Tails live in RAM only: their length varies, and the disk tier stores whole blocks.

use super::{Block, BlockKey};
use std::collections::HashMap;
use std::sync::Arc;

/// Tails kept per parent block: a few different continuations of one prefix.
const PER_PARENT: usize = 4;

struct Tail {
    tokens: Vec<u32>,
    block: Arc<Block>,
    used: u64,
}

pub struct TailTier {
    cap: usize,
    bytes: usize,
    tick: u64,
    by_parent: HashMap<BlockKey, Vec<Tail>>,
}

impl TailTier {
    pub fn new(cap: usize) -> Self {
        TailTier { cap, bytes: 0, tick: 0, by_parent: HashMap::new() }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.by_parent.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_parent.is_empty()
    }

    /// Whether a tail under `parent` already covers `tokens` (holds them as its prefix).
    pub fn covers(&self, parent: &BlockKey, tokens: &[u32]) -> bool {
        self.by_parent.get(parent).is_some_and(|ts| ts.iter().any(|t| t.tokens.starts_with(tokens)))
    }

    /// Keeps the KV of `tokens` (1 to 63 positions after the block `parent`), replacing tails
    /// it extends; then evicts the least recently used tails beyond the byte cap.
    pub fn insert(&mut self, parent: BlockKey, tokens: Vec<u32>, block: Block) {
        let size = block.bytes();
        if tokens.is_empty() || size > self.cap || self.covers(&parent, &tokens) {
            return;
        }
        self.tick += 1;
        let tails = self.by_parent.entry(parent).or_default();
        let before: usize = tails.iter().map(|t| t.block.bytes()).sum();
        tails.retain(|t| !tokens.starts_with(&t.tokens));
        if tails.len() >= PER_PARENT {
            if let Some(oldest) = tails.iter().enumerate().min_by_key(|(_, t)| t.used).map(|(i, _)| i) {
                tails.swap_remove(oldest);
            }
        }
        tails.push(Tail { tokens, block: Arc::new(block), used: self.tick });
        let after: usize = tails.iter().map(|t| t.block.bytes()).sum();
        self.bytes = self.bytes + after - before;
        while self.bytes > self.cap {
            let oldest = self
                .by_parent
                .iter()
                .flat_map(|(k, ts)| ts.iter().enumerate().map(move |(i, t)| (t.used, *k, i)))
                .min();
            let Some((_, key, i)) = oldest else { break };
            let tails = self.by_parent.get_mut(&key).expect("found above");
            self.bytes -= tails.swap_remove(i).block.bytes();
            if tails.is_empty() {
                self.by_parent.remove(&key);
            }
        }
    }

    /// The tail under `parent` that covers `next` (the tokens after the parent block that may
    /// be loaded) or that `next` extends, and the length they share (at least 1). A tail that
    /// shares only some first tokens with the prompt (two prompts that start alike) is not
    /// used: it would save little, and those positions' KV, computed inside another prompt's
    /// prefill, would differ in the last bits from the prompt's own.
    pub fn best(&mut self, parent: &BlockKey, next: &[u32]) -> Option<(Arc<Block>, usize)> {
        let tails = self.by_parent.get_mut(parent)?;
        let common = |t: &Tail| {
            let n = t.tokens.iter().zip(next).take_while(|(a, b)| a == b).count();
            if n == next.len() || n == t.tokens.len() {
                n
            } else {
                0
            }
        };
        let best = tails.iter_mut().max_by_key(|t| common(t)).filter(|t| common(t) > 0)?;
        self.tick += 1;
        best.used = self.tick;
        let n = common(best);
        Some((best.block.clone(), n))
    }
}
