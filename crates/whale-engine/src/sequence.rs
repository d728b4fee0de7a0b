//! One running request inside the scheduler: its KV cache, its token chooser, the ids known
//! so far (prompt, then output) and how many of them the cache already holds.

use crate::chooser::TokenChooser;
use crate::event::{Completion, Event, SpecStats, Usage};
use crate::speculative::SpecState;
use crate::{FinishReason, GeneratedToken};
use tokio::sync::mpsc::UnboundedSender;
use whale_nn::KvCache;

pub(crate) struct Sequence {
    pub id: u64,
    pub events: UnboundedSender<Event>,
    pub cache: KvCache,
    pub chooser: TokenChooser,
    /// Prompt followed by every produced token.
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    /// Prompt tokens whose KV came from the prefix cache.
    pub cache_hit: usize,
    pub max_tokens: Option<usize>,
    pub max_positions: usize,
    pub finished: Option<FinishReason>,
    pub use_prefix_cache: bool,
    /// Whether the prompt's blocks were offered to the prefix cache.
    pub prompt_stored: bool,
    pub spec: Option<SpecState>,
}

impl Sequence {
    pub fn produced(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    /// Ids known but not yet in the cache (the rest of the prompt, or the last token).
    pub fn pending(&self) -> usize {
        self.tokens.len() - self.cache.seq_len()
    }

    /// Whether the next ids to feed are the prompt's (a prompt's last token fed alone, after a
    /// prefix-cache hit, is still a prompt row: `SeqStep::prompt`).
    pub fn feeding_prompt(&self) -> bool {
        self.cache.seq_len() < self.prompt_len
    }

    pub fn is_cancelled(&self) -> bool {
        self.events.is_closed()
    }

    /// Finishes with `Length`/`ContextFull` when no further token may be produced or fed.
    pub fn check_limits(&mut self, to_feed: usize) -> bool {
        if self.finished.is_some() {
            return true;
        }
        if self.max_tokens.is_some_and(|m| self.produced() >= m) {
            self.finished = Some(FinishReason::Length);
        } else if self.cache.seq_len() + to_feed > self.max_positions {
            self.finished = Some(FinishReason::ContextFull);
        }
        self.finished.is_some()
    }

    /// Chooses the next token from this sequence's logits row, reports it, and marks the
    /// sequence finished on an end-of-sequence id or the token limit.
    pub fn take_token(&mut self, logits: &mut [f32]) -> Result<GeneratedToken, crate::SamplingError> {
        let t = self.chooser.choose(logits)?;
        self.tokens.push(t.token);
        let _ = self.events.send(Event::Token(t.clone()));
        if self.chooser.is_stop(t.token) {
            self.finished = Some(FinishReason::Stop);
        } else if self.max_tokens.is_some_and(|m| self.produced() >= m) {
            self.finished = Some(FinishReason::Length);
        }
        Ok(t)
    }

    pub fn usage(&self) -> Usage {
        Usage { prompt_tokens: self.prompt_len, prompt_cache_hit_tokens: self.cache_hit, completion_tokens: self.produced() }
    }

    pub fn completion(&self) -> Completion {
        Completion {
            finish: self.finished.unwrap_or(FinishReason::Length),
            usage: self.usage(),
            speculative: self.spec.as_ref().map(|s| SpecStats { drafted: s.drafted, accepted: s.accepted }),
            seed: self.chooser.seed(),
        }
    }
}
