//! A cap on the length of an R1-style think block, enforced by forcing the closing tag.
//!
//! Why: R1 may reason for tens of thousands of tokens. A budget of N reasoning tokens lets a
//! server bound latency: once N tokens were spent inside the block, the generation loop stops
//! sampling and emits the closing tag's token ids (plus an optional suffix such as the ids of
//! "\n\n", which R1 writes after `</think>`), and the model then answers from what it has.
//!
//! Protocol, per step of the generation loop:
//! 1. `budget.forced_token()`: `Some(id)` → emit `id` instead of sampling.
//! 2. `budget.observe(id)` with the token actually emitted (sampled or forced).
//!
//! Token-level rules:
//! - The block is open from the first generated token ([`ThinkingBudget::new`], for templates
//!   that prefill `<think>`), or only once the output starts with the opening tag's ids
//!   ([`ThinkingBudget::awaiting_open_tag`]); output that starts otherwise never thinks and is
//!   never forced.
//! - The model may close the block itself: the closing tag's ids appearing in order end it and
//!   nothing is forced. A multi-token closing tag is matched across tokens; if the budget runs
//!   out in the middle of one, only the rest of the tag is forced (no half-written tag twice).
//! - Reasoning tokens are those inside the block, tags excluded. A budget of 0 closes the block
//!   at once: R1 with thinking turned off.
//! - While forcing, `observe` advances through the forced ids whatever id it is given: the loop
//!   is expected to emit what it was told to.

/// Where generation is relative to the think block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkingPhase {
    /// Waiting to see whether the output starts with the opening tag.
    AwaitingOpen,
    /// Inside the think block.
    Thinking,
    /// The budget ran out: the closing tag (and suffix) are being forced.
    Closing,
    /// After the block (or the model did not open one): nothing more is forced.
    Answering,
}

/// A tag that cannot be forced or matched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThinkingBudgetError {
    #[error("thinking budget {which} tag has no token ids; expected the ids of e.g. {example:?}")]
    EmptyTag { which: &'static str, example: &'static str },
}

/// Tracks the think block token by token and says when to force its end.
#[derive(Debug, Clone)]
pub struct ThinkingBudget {
    budget: usize,
    open_tag: Vec<u32>,
    close_tag: Vec<u32>,
    /// `close_tag` followed by the suffix: what is forced when the budget runs out.
    forced: Vec<u32>,
    phase: ThinkingPhase,
    /// Ids of the opening tag matched so far (`AwaitingOpen`).
    open_matched: usize,
    /// The last tokens of the block, at most `close_tag.len()`, to match the closing tag.
    recent: Vec<u32>,
    /// Length of the longest suffix of the block that is a prefix of `close_tag`.
    close_matched: usize,
    /// Tokens inside the block so far, including any partially matched closing tag.
    in_block: usize,
    /// Reasoning tokens of the finished block (set when leaving `Thinking`).
    reasoning: usize,
    /// Position in `forced` (`Closing`).
    forced_pos: usize,
    was_forced: bool,
}

impl ThinkingBudget {
    /// A budget of `budget` reasoning tokens for a block that is already open when generation
    /// starts (the template prefilled the opening tag), closed by `close_tag`'s ids.
    pub fn new(budget: usize, close_tag: Vec<u32>) -> Result<Self, ThinkingBudgetError> {
        if close_tag.is_empty() {
            return Err(ThinkingBudgetError::EmptyTag { which: "closing", example: "</think>" });
        }
        Ok(ThinkingBudget {
            budget,
            open_tag: Vec::new(),
            forced: close_tag.clone(),
            recent: Vec::with_capacity(close_tag.len()),
            close_tag,
            phase: ThinkingPhase::Thinking,
            open_matched: 0,
            close_matched: 0,
            in_block: 0,
            reasoning: 0,
            forced_pos: 0,
            was_forced: false,
        })
    }

    /// Ids forced after the closing tag when the budget runs out (e.g. those of "\n\n").
    pub fn with_suffix(mut self, suffix: &[u32]) -> Self {
        self.forced.truncate(self.close_tag.len());
        self.forced.extend_from_slice(suffix);
        self
    }

    /// The block opens only if the output starts with `open_tag`'s ids (the model writes
    /// `<think>` itself); otherwise the model is not thinking and nothing is ever forced.
    pub fn awaiting_open_tag(mut self, open_tag: Vec<u32>) -> Result<Self, ThinkingBudgetError> {
        if open_tag.is_empty() {
            return Err(ThinkingBudgetError::EmptyTag { which: "opening", example: "<think>" });
        }
        self.open_tag = open_tag;
        self.open_matched = 0;
        self.phase = ThinkingPhase::AwaitingOpen;
        Ok(self)
    }

    pub fn phase(&self) -> ThinkingPhase {
        self.phase
    }

    /// Reasoning tokens so far: tokens inside the block, tags excluded (tokens that might be
    /// the start of the closing tag count until they turn out to be it).
    pub fn reasoning_tokens(&self) -> usize {
        match self.phase {
            ThinkingPhase::AwaitingOpen => 0,
            ThinkingPhase::Thinking => self.in_block,
            ThinkingPhase::Closing | ThinkingPhase::Answering => self.reasoning,
        }
    }

    /// Reasoning tokens left before the closing tag is forced; `None` outside the block.
    pub fn remaining(&self) -> Option<usize> {
        (self.phase == ThinkingPhase::Thinking).then(|| self.budget.saturating_sub(self.in_block))
    }

    /// Whether the block was (or is being) closed by force rather than by the model.
    pub fn was_forced(&self) -> bool {
        self.was_forced
    }

    /// The id the loop must emit next instead of sampling, if any.
    pub fn forced_token(&self) -> Option<u32> {
        match self.phase {
            ThinkingPhase::Thinking if self.in_block >= self.budget => {
                self.forced.get(self.close_matched).copied()
            }
            ThinkingPhase::Closing => self.forced.get(self.forced_pos).copied(),
            _ => None,
        }
    }

    /// Records the token the loop emitted this step.
    pub fn observe(&mut self, token: u32) {
        match self.phase {
            ThinkingPhase::AwaitingOpen => {
                if self.open_tag.get(self.open_matched) == Some(&token) {
                    self.open_matched += 1;
                    if self.open_matched == self.open_tag.len() {
                        self.phase = ThinkingPhase::Thinking;
                    }
                } else {
                    self.phase = ThinkingPhase::Answering;
                }
            }
            ThinkingPhase::Thinking if self.in_block >= self.budget => {
                // This token is the forced one, continuing the tag from where the model left
                // it; the tag ids the model wrote itself were not reasoning after all.
                self.was_forced = true;
                self.reasoning = self.in_block - self.close_matched;
                self.forced_pos = self.close_matched + 1;
                self.phase = ThinkingPhase::Closing;
                self.finish_closing_if_done();
            }
            ThinkingPhase::Thinking => {
                self.in_block += 1;
                if self.recent.len() == self.close_tag.len() {
                    self.recent.remove(0);
                }
                self.recent.push(token);
                self.close_matched = longest_prefix_suffix(&self.recent, &self.close_tag);
                if self.close_matched == self.close_tag.len() {
                    // The model closed the block itself.
                    self.reasoning = self.in_block - self.close_tag.len();
                    self.phase = ThinkingPhase::Answering;
                }
            }
            ThinkingPhase::Closing => {
                self.forced_pos += 1;
                self.finish_closing_if_done();
            }
            ThinkingPhase::Answering => {}
        }
    }

    fn finish_closing_if_done(&mut self) {
        if self.forced_pos >= self.forced.len() {
            self.phase = ThinkingPhase::Answering;
        }
    }
}

/// Length of the longest suffix of `tokens` that is a prefix of `tag` (tags are a few ids, so
/// the quadratic scan is cheaper than building a KMP table).
fn longest_prefix_suffix(tokens: &[u32], tag: &[u32]) -> usize {
    (1..=tokens.len().min(tag.len()))
        .rev()
        .find(|&k| tokens[tokens.len() - k..] == tag[..k])
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "thinking_budget_tests.rs"]
mod tests;
