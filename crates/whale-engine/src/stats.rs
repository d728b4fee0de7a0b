//! Live counters of the engine, shared lock-free with its handles (for `/metrics`, `whale
//! bench`, logs). Monotonic counters only grow; gauges hold the latest value.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct EngineStats {
    pub requests_submitted: AtomicU64,
    pub requests_rejected: AtomicU64,
    pub requests_finished: AtomicU64,
    pub requests_cancelled: AtomicU64,
    pub requests_failed: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub prompt_cache_hit_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub spec_drafted: AtomicU64,
    pub spec_accepted: AtomicU64,
    pub forward_steps: AtomicU64,
    /// Gauges.
    pub queue_depth: AtomicU64,
    pub running: AtomicU64,
    pub last_batch_size: AtomicU64,
    /// Tokens processed (prefill + decode) per second over the last step, as f64 bits.
    pub tokens_per_second_bits: AtomicU64,
    /// Prefix cache contents.
    pub cache_ram_bytes: AtomicU64,
    pub cache_disk_bytes: AtomicU64,
    pub cache_corrupt_blocks: AtomicU64,
}

/// A consistent-enough copy of [`EngineStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatsSnapshot {
    pub requests_submitted: u64,
    pub requests_rejected: u64,
    pub requests_finished: u64,
    pub requests_cancelled: u64,
    pub requests_failed: u64,
    pub prompt_tokens: u64,
    pub prompt_cache_hit_tokens: u64,
    pub completion_tokens: u64,
    pub spec_drafted: u64,
    pub spec_accepted: u64,
    pub forward_steps: u64,
    pub queue_depth: u64,
    pub running: u64,
    pub last_batch_size: u64,
    pub tokens_per_second: f64,
    pub cache_ram_bytes: u64,
    pub cache_disk_bytes: u64,
    pub cache_corrupt_blocks: u64,
}

impl StatsSnapshot {
    /// Share of prompt tokens served from the prefix cache.
    pub fn cache_hit_ratio(&self) -> f64 {
        if self.prompt_tokens == 0 {
            0.0
        } else {
            self.prompt_cache_hit_tokens as f64 / self.prompt_tokens as f64
        }
    }
}

impl EngineStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests_submitted: self.requests_submitted.load(Relaxed),
            requests_rejected: self.requests_rejected.load(Relaxed),
            requests_finished: self.requests_finished.load(Relaxed),
            requests_cancelled: self.requests_cancelled.load(Relaxed),
            requests_failed: self.requests_failed.load(Relaxed),
            prompt_tokens: self.prompt_tokens.load(Relaxed),
            prompt_cache_hit_tokens: self.prompt_cache_hit_tokens.load(Relaxed),
            completion_tokens: self.completion_tokens.load(Relaxed),
            spec_drafted: self.spec_drafted.load(Relaxed),
            spec_accepted: self.spec_accepted.load(Relaxed),
            forward_steps: self.forward_steps.load(Relaxed),
            queue_depth: self.queue_depth.load(Relaxed),
            running: self.running.load(Relaxed),
            last_batch_size: self.last_batch_size.load(Relaxed),
            tokens_per_second: f64::from_bits(self.tokens_per_second_bits.load(Relaxed)),
            cache_ram_bytes: self.cache_ram_bytes.load(Relaxed),
            cache_disk_bytes: self.cache_disk_bytes.load(Relaxed),
            cache_corrupt_blocks: self.cache_corrupt_blocks.load(Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn set(gauge: &AtomicU64, v: usize) {
        gauge.store(v as u64, Relaxed);
    }
}
