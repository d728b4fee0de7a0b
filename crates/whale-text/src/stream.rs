//! Incremental detokenization for streaming generation.
//!
//! Why: one token is not one piece of text. A multi-byte character can be split across tokens
//! (byte-level BPE and `<0xXX>` byte fallback both do this), and some decoders change a
//! token's text depending on its neighbours (SentencePiece strips the leading space of the
//! first token). Decoding each token alone would emit half characters (U+FFFD) or wrong
//! spaces. [`StreamDecoder`] keeps a small window of ids: it decodes the window with and
//! without the newest ids and emits only the difference, and only once that text no longer
//! ends in an incomplete character. (The approach of HF text-generation-inference and
//! `tokenizers::DecodeStream`, on an owned tokenizer handle so it can live in a request.)
//!
//! The concatenation of everything returned by [`StreamDecoder::step`] and
//! [`StreamDecoder::flush`] equals `Tokenizer::decode` of all the ids.

use crate::error::TextError;
use crate::tokenizer::Tokenizer;

/// Feeds generated ids one at a time and returns the newly completed text.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    tokenizer: Tokenizer,
    skip_special: bool,
    /// Ids from `prefix_offset` on (earlier ones are no longer needed).
    ids: Vec<u32>,
    /// Ids in `ids[..read]` have been turned into text already.
    read: usize,
}

impl StreamDecoder {
    pub fn new(tokenizer: Tokenizer, skip_special: bool) -> Self {
        StreamDecoder { tokenizer, skip_special, ids: Vec::new(), read: 0 }
    }

    /// Adds one id; returns the text it completes, or `None` if it completes nothing yet (a
    /// partial multi-byte character, or a skipped special token).
    pub fn step(&mut self, id: u32) -> Result<Option<String>, TextError> {
        self.ids.push(id);
        self.emit(false)
    }

    /// Adds several ids; returns the text they complete (possibly empty).
    pub fn step_many(&mut self, ids: &[u32]) -> Result<String, TextError> {
        let mut out = String::new();
        for &id in ids {
            if let Some(t) = self.step(id)? {
                out.push_str(&t);
            }
        }
        Ok(out)
    }

    /// Returns whatever is still held back (an incomplete character at the end of the
    /// generation becomes U+FFFD, exactly as `decode` would render it).
    pub fn flush(&mut self) -> Result<Option<String>, TextError> {
        self.emit(true)
    }

    /// Forgets all state, for a new sequence.
    pub fn reset(&mut self) {
        self.ids.clear();
        self.read = 0;
    }

    fn emit(&mut self, force: bool) -> Result<Option<String>, TextError> {
        if self.read == self.ids.len() {
            return Ok(None);
        }
        let prefix = self.tokenizer.decode(&self.ids[..self.read], self.skip_special)?;
        let full = self.tokenizer.decode(&self.ids, self.skip_special)?;
        let new = match full.get(prefix.len()..) {
            Some(new) if full.starts_with(&prefix) => new,
            // A decoder that rewrote earlier text: wait for more ids (or give up at flush).
            _ if !force => return Ok(None),
            _ => full.get(common_prefix_len(&prefix, &full)..).unwrap_or(""),
        };
        if new.is_empty() && !force {
            // E.g. a skipped special token: nothing to show, but nothing is pending either.
            if !full.ends_with('\u{FFFD}') {
                self.advance();
            }
            return Ok(None);
        }
        if new.ends_with('\u{FFFD}') && !force {
            return Ok(None);
        }
        let out = new.to_string();
        self.advance();
        Ok(if out.is_empty() { None } else { Some(out) })
    }

    /// Marks everything as read and keeps only the last id as context for the next step (so
    /// that context-dependent decoders see a neighbour).
    fn advance(&mut self) {
        let keep_from = self.ids.len().saturating_sub(1);
        self.ids.drain(..keep_from);
        self.read = self.ids.len();
    }
}

fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, ca), cb)| ca != cb)
        .map_or(a.len().min(b.len()), |((i, _), _)| i)
}
