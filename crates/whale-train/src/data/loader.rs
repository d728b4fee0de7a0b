//! Packed training sequences: the train shard (documents already separated by EOS) is cut
//! into windows of `seq_len + 1` tokens, window `i` starting at token `i · seq_len`, so the
//! targets of one window are its inputs shifted by one and no token is skipped. Documents
//! run across window boundaries and share windows without cross-document masking, as in V3
//! pretraining (deepseek-reference §1.2).
//!
//! Each epoch visits the windows in a permutation drawn from ChaCha8 seeded by
//! `(seed, epoch)`; the whole loader state is `(epoch, cursor)`, so a resumed run draws the
//! same sequences as an uninterrupted one.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::shards::Shard;
use crate::error::{Result, TrainError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LoaderState {
    pub epoch: u64,
    /// Windows of this epoch already handed out.
    pub cursor: u64,
}

pub struct PackedLoader {
    seq_len: usize,
    seed: u64,
    windows: usize,
    order: Vec<u32>,
    state: LoaderState,
}

/// The number of `seq_len + 1`-token windows at stride `seq_len` in `tokens` tokens.
pub fn window_count(tokens: usize, seq_len: usize) -> usize {
    if tokens < seq_len + 1 {
        0
    } else {
        (tokens - 1) / seq_len
    }
}

impl PackedLoader {
    pub fn new(shard: &Shard, seq_len: usize, seed: u64, state: LoaderState) -> Result<Self> {
        let windows = window_count(shard.len(), seq_len);
        if windows == 0 {
            return Err(TrainError::data(
                "<train split>",
                format!(
                    "{} training tokens; one sequence needs seq_len + 1 = {}",
                    shard.len(),
                    seq_len + 1
                ),
            ));
        }
        if windows > u32::MAX as usize {
            return Err(TrainError::data(
                "<train split>",
                "more than 2^32 sequences; use a longer seq_len",
            ));
        }
        let mut l = PackedLoader {
            seq_len,
            seed,
            windows,
            order: Vec::new(),
            state,
        };
        l.order = l.permutation(state.epoch);
        Ok(l)
    }

    pub fn state(&self) -> LoaderState {
        self.state
    }

    pub fn windows(&self) -> usize {
        self.windows
    }

    fn permutation(&self, epoch: u64) -> Vec<u32> {
        // Mixing the epoch into the seed (not continuing one stream) makes any epoch's order
        // computable on its own, which is what resuming needs.
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut order: Vec<u32> = (0..self.windows as u32).collect();
        order.shuffle(&mut rng);
        order
    }

    /// The next `n` sequences of `seq_len + 1` tokens (a new epoch starts when one runs out).
    pub fn next_batch(&mut self, shard: &Shard, n: usize) -> Result<Vec<Vec<u32>>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            if self.state.cursor as usize >= self.windows {
                self.state = LoaderState {
                    epoch: self.state.epoch + 1,
                    cursor: 0,
                };
                self.order = self.permutation(self.state.epoch);
            }
            let w = self.order[self.state.cursor as usize] as usize;
            out.push(shard.tokens(w * self.seq_len, self.seq_len + 1)?);
            self.state.cursor += 1;
        }
        Ok(out)
    }
}

/// The first `n` validation windows, in order (the same every evaluation).
pub fn validation_sequences(shard: &Shard, seq_len: usize, n: usize) -> Result<Vec<Vec<u32>>> {
    let count = window_count(shard.len(), seq_len).min(n);
    (0..count)
        .map(|w| shard.tokens(w * seq_len, seq_len + 1))
        .collect()
}
