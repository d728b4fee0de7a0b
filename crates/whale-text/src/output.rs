//! Turns a stream of generated token ids into what a person or an API client sees:
//! detokenized text, cut at the first stop string, split into `reasoning` and `content` at
//! R1's `<think>`…`</think>`.
//!
//! Order: ids → text (`StreamDecoder`, never half a character) → stop strings
//! (`StopMatcher`, on the raw text, as vLLM and llama.cpp apply them; a stop string is never
//! shown, not even in part) → reasoning split (`ReasoningParser`). The engine stays free of
//! text: `whale generate`, `whale chat` and the server all assemble output here.

use crate::error::TextError;
use crate::reasoning::{ReasoningDelta, ReasoningParser};
use crate::stop::StopMatcher;
use crate::stream::StreamDecoder;
use crate::tokenizer::Tokenizer;

/// Whether and how the output has a think block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningMode {
    /// Plain text: everything is content.
    Off,
    /// The output may start with `<think>`.
    Detect,
    /// The prompt already opened `<think>` (the template prefilled it).
    Prefilled,
}

/// Newly visible text after one token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputDelta {
    pub reasoning: String,
    pub content: String,
    /// A stop string was completed: generation should end (its text is not included).
    pub stopped: bool,
}

impl OutputDelta {
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty() && self.content.is_empty() && !self.stopped
    }
}

pub struct OutputAssembler {
    decoder: StreamDecoder,
    stop: Option<StopMatcher>,
    reasoning: Option<ReasoningParser>,
    stopped: bool,
}

impl OutputAssembler {
    pub fn new(tokenizer: &Tokenizer, stops: &[String], mode: ReasoningMode) -> Result<Self, TextError> {
        let stop = if stops.is_empty() {
            None
        } else {
            Some(StopMatcher::new(stops.iter().cloned()).map_err(|e| TextError::InvalidInput(e.to_string()))?)
        };
        let reasoning = match mode {
            ReasoningMode::Off => None,
            ReasoningMode::Detect => Some(ReasoningParser::new(false)),
            ReasoningMode::Prefilled => Some(ReasoningParser::new(true)),
        };
        Ok(Self { decoder: tokenizer.stream_decoder(true), stop, reasoning, stopped: false })
    }

    /// Whether the output is inside its think block now.
    pub fn in_reasoning(&self) -> bool {
        self.reasoning.as_ref().is_some_and(ReasoningParser::in_reasoning)
    }

    /// Whether a stop string has ended the output.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Feeds one generated id.
    pub fn push(&mut self, id: u32) -> Result<OutputDelta, TextError> {
        if self.stopped {
            return Ok(OutputDelta { stopped: true, ..Default::default() });
        }
        let text = self.decoder.step(id)?.unwrap_or_default();
        Ok(self.text(&text, false))
    }

    /// Ends the output: releases text held back for a possible stop string or tag.
    pub fn finish(&mut self) -> Result<OutputDelta, TextError> {
        if self.stopped {
            return Ok(OutputDelta { stopped: true, ..Default::default() });
        }
        let text = self.decoder.flush()?.unwrap_or_default();
        Ok(self.text(&text, true))
    }

    fn text(&mut self, text: &str, end: bool) -> OutputDelta {
        let (mut visible, stopped) = match &mut self.stop {
            Some(stop) => {
                let d = stop.push(text);
                (d.text, d.stopped.is_some())
            }
            None => (text.to_string(), false),
        };
        if end && !stopped {
            if let Some(stop) = &mut self.stop {
                visible.push_str(&stop.finish());
            }
        }
        self.stopped = stopped;
        let ReasoningDelta { reasoning, content } = match &mut self.reasoning {
            Some(parser) => {
                let mut d = parser.push(&visible);
                if end || stopped {
                    let tail = parser.finish();
                    d.reasoning.push_str(&tail.reasoning);
                    d.content.push_str(&tail.content);
                }
                d
            }
            None => ReasoningDelta { reasoning: String::new(), content: visible },
        };
        OutputDelta { reasoning, content, stopped }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Tokenizer {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tokenizer_r1_distill");
        Tokenizer::from_dir(dir).unwrap()
    }

    fn assemble(text: &str, stops: &[&str], mode: ReasoningMode) -> (String, String, bool) {
        let tok = tokenizer();
        let ids = tok.encode(text, false).unwrap();
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut out = OutputAssembler::new(&tok, &stops, mode).unwrap();
        let (mut r, mut c, mut stopped) = (String::new(), String::new(), false);
        for id in ids {
            let d = out.push(id).unwrap();
            r += &d.reasoning;
            c += &d.content;
            if d.stopped {
                stopped = true;
                break;
            }
        }
        let d = out.finish().unwrap();
        (r + &d.reasoning, c + &d.content, stopped)
    }

    #[test]
    fn splits_reasoning_from_the_answer_token_by_token() {
        let (r, c, stopped) = assemble("<think>\n2 + 2 is 4.\n</think>\n\nThe answer is 4.", &[], ReasoningMode::Detect);
        assert_eq!((r.as_str(), c.as_str(), stopped), ("2 + 2 is 4.\n", "The answer is 4.", false));
    }

    #[test]
    fn prefilled_think_and_multibyte_text() {
        let (r, c, _) = assemble("想一想……\n</think>\n\n答案是 4。", &[], ReasoningMode::Prefilled);
        assert_eq!((r.as_str(), c.as_str()), ("想一想……\n", "答案是 4。"));
    }

    #[test]
    fn stop_strings_cut_the_output_and_are_never_shown() {
        let (r, c, stopped) = assemble("<think>ok</think>Answer: 42\nUser: more", &["\nUser:"], ReasoningMode::Detect);
        assert_eq!((r.as_str(), c.as_str(), stopped), ("ok", "Answer: 42", true));
        let (_, c, stopped) = assemble("no stop here", &["STOP"], ReasoningMode::Off);
        assert_eq!((c.as_str(), stopped), ("no stop here", false));
    }

    #[test]
    fn plain_mode_keeps_tags_as_content() {
        let (r, c, _) = assemble("<think>x</think>y", &[], ReasoningMode::Off);
        assert_eq!((r.as_str(), c.as_str()), ("", "<think>x</think>y"));
    }
}
