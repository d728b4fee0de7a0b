//! Constrained decoding: a per-request automaton that masks the logits of tokens that would
//! break a format (JSON mode), consulted before every sampling step.

/// Restricts the next token. `mask` sets disallowed logits to `-inf`; `accept` advances the
/// automaton with the token actually chosen (sampled or forced).
pub trait LogitConstraint: Send {
    /// `logits` has one entry per vocabulary id.
    fn mask(&mut self, logits: &mut [f32]);
    fn accept(&mut self, token: u32);
    /// Whether the constrained output is complete (an end-of-sequence id may be chosen).
    fn is_complete(&self) -> bool;
}
