//! The tokens of one sequence so far (prompt and generated), with the counts the penalties need.
//!
//! Why keep counts: the repetition penalty needs the distinct tokens of prompt + output and the
//! OpenAI penalties the per-token counts of the output. Recounting a 100k-token context at every
//! step would cost more than the sampling itself, so the counts are updated as tokens arrive.

use std::collections::{HashMap, HashSet};

/// Prompt and generated tokens of one sequence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenHistory {
    prompt: Vec<u32>,
    output: Vec<u32>,
    /// Distinct ids of prompt and output (repetition penalty).
    seen: HashSet<u32>,
    /// How often each id occurs in the output (frequency and presence penalties).
    output_counts: HashMap<u32, u32>,
}

impl TokenHistory {
    /// A history holding the prompt and no generated tokens.
    pub fn new(prompt: impl Into<Vec<u32>>) -> Self {
        let prompt = prompt.into();
        let seen = prompt.iter().copied().collect();
        TokenHistory { prompt, output: Vec::new(), seen, output_counts: HashMap::new() }
    }

    /// Records one generated token.
    pub fn push(&mut self, token: u32) {
        self.output.push(token);
        self.seen.insert(token);
        *self.output_counts.entry(token).or_insert(0) += 1;
    }

    /// Records several generated tokens in order.
    pub fn extend(&mut self, tokens: impl IntoIterator<Item = u32>) {
        for token in tokens {
            self.push(token);
        }
    }

    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    pub fn output(&self) -> &[u32] {
        &self.output
    }

    /// Prompt plus output length.
    pub fn len(&self) -> usize {
        self.prompt.len() + self.output.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distinct ids seen in prompt or output, in no particular order.
    pub fn seen(&self) -> impl Iterator<Item = u32> + '_ {
        self.seen.iter().copied()
    }

    /// `(id, count)` for each distinct generated id, in no particular order.
    pub fn output_counts(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.output_counts.iter().map(|(&id, &n)| (id, n))
    }

    /// How often `token` was generated.
    pub fn output_count(&self, token: u32) -> u32 {
        self.output_counts.get(&token).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_pushes() {
        let mut h = TokenHistory::new(vec![1, 2, 2]);
        h.extend([2, 3, 3, 3]);
        assert_eq!(h.prompt(), &[1, 2, 2]);
        assert_eq!(h.output(), &[2, 3, 3, 3]);
        assert_eq!(h.len(), 7);
        assert_eq!((h.output_count(1), h.output_count(2), h.output_count(3)), (0, 1, 3));
        let mut seen: Vec<u32> = h.seen().collect();
        seen.sort();
        assert_eq!(seen, vec![1, 2, 3]);
        let mut counts: Vec<(u32, u32)> = h.output_counts().collect();
        counts.sort();
        assert_eq!(counts, vec![(2, 1), (3, 3)]);
        assert!(TokenHistory::default().is_empty());
    }
}
