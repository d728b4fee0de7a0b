//! The `<think>`…`</think>` reasoning split of DeepSeek-R1-style output, done incrementally.
//!
//! Why: R1 writes its chain of thought between `<think>` and `</think>` and the answer after
//! it; an OpenAI-style server streams the two as separate `reasoning_content` and `content`
//! deltas. Text arrives one decoded token at a time, so a tag may be split across pieces;
//! [`ReasoningParser`] never emits part of a tag: it holds back a suffix that could still
//! become a tag and releases it as ordinary text once it cannot.
//!
//! Rules (R1 semantics; the output depends only on the concatenated text, never on how it was
//! split into pieces):
//! - Only a *leading* think block is reasoning. At the start of the output, optional
//!   whitespace followed by the opening tag opens it (that whitespace is dropped). Output that
//!   starts with anything else is content, and a later `<think>` or `</think>` in content is
//!   passed through verbatim as content: R1 never reasons mid-answer, and quoting the tags in
//!   an answer (e.g. when explaining R1's format) must not swallow the rest of the answer.
//! - `starts_in_reasoning`: the chat template already put the opening tag in the prompt (the R1
//!   templates prefill `<think>\n`), so the output starts inside the block.
//! - Everything up to the first closing tag is reasoning; the closing tag is dropped; the rest
//!   is content. With no closing tag before the end, everything was reasoning (a truncated or
//!   budget-less run) and [`ReasoningParser::finish`] flushes a held partial tag as reasoning.
//! - R1 emits `<think>\n…\n</think>\n\n…`. One `\n` right after the opening tag (also when the
//!   tag was prefilled: an extra leading newline carries no meaning) and all newlines (`\n`,
//!   `\r`) right after the closing tag are stripped, so neither delta starts with blank lines.
//!   The newline before `</think>` stays in the reasoning (it is the end of its last line), and
//!   leading spaces of the content are kept (they may be code indentation).

use crate::stop::partial_match_len;

/// The opening tag DeepSeek-R1 uses.
pub const DEFAULT_OPEN_TAG: &str = "<think>";
/// The closing tag DeepSeek-R1 uses.
pub const DEFAULT_CLOSE_TAG: &str = "</think>";

/// Tags that cannot delimit a reasoning block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReasoningError {
    /// An empty tag would match everywhere.
    #[error("reasoning {which} tag is empty; expected a non-empty tag such as {example:?}")]
    EmptyTag { which: &'static str, example: &'static str },
}

/// Where the parser is in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningState {
    /// At the start of the output: only whitespace or a prefix of the opening tag seen so far.
    Undecided,
    /// Inside the think block.
    Reasoning,
    /// After the think block, or the model did not open one.
    Content,
}

/// Text released by one push: the reasoning part and the content part (either may be empty;
/// both are non-empty when a piece contains the closing tag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReasoningDelta {
    pub reasoning: String,
    pub content: String,
}

impl ReasoningDelta {
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty() && self.content.is_empty()
    }
}

/// Splits streamed output into reasoning and content deltas.
#[derive(Debug, Clone)]
pub struct ReasoningParser {
    open: String,
    close: String,
    state: ReasoningState,
    /// Received but not released: in `Undecided`, whitespace plus a prefix of the opening tag;
    /// in `Reasoning`, a proper prefix of the closing tag. Empty in `Content`.
    held: String,
    /// One `\n` right after the opening tag is still to be dropped.
    strip_open_newline: bool,
    /// Newlines right after the closing tag are still to be dropped.
    strip_close_newlines: bool,
    reasoning_pieces: usize,
}

impl ReasoningParser {
    /// A parser for R1's `<think>` / `</think>`. Pass `starts_in_reasoning = true` when the
    /// prompt ends with the opening tag (the template prefilled it).
    pub fn new(starts_in_reasoning: bool) -> Self {
        Self::build(DEFAULT_OPEN_TAG, DEFAULT_CLOSE_TAG, starts_in_reasoning)
    }

    /// A parser for other tags (e.g. `<reasoning>` / `</reasoning>`).
    pub fn with_tags(
        open: &str,
        close: &str,
        starts_in_reasoning: bool,
    ) -> Result<Self, ReasoningError> {
        if open.is_empty() {
            return Err(ReasoningError::EmptyTag { which: "opening", example: DEFAULT_OPEN_TAG });
        }
        if close.is_empty() {
            return Err(ReasoningError::EmptyTag { which: "closing", example: DEFAULT_CLOSE_TAG });
        }
        Ok(Self::build(open, close, starts_in_reasoning))
    }

    fn build(open: &str, close: &str, starts_in_reasoning: bool) -> Self {
        ReasoningParser {
            open: open.to_string(),
            close: close.to_string(),
            state: if starts_in_reasoning {
                ReasoningState::Reasoning
            } else {
                ReasoningState::Undecided
            },
            held: String::new(),
            strip_open_newline: starts_in_reasoning,
            strip_close_newlines: false,
            reasoning_pieces: 0,
        }
    }

    /// The current state.
    pub fn state(&self) -> ReasoningState {
        self.state
    }

    /// Whether the output is currently inside the think block.
    pub fn in_reasoning(&self) -> bool {
        self.state == ReasoningState::Reasoning
    }

    /// How many pieces arrived while the parser was inside the think block. With one piece per
    /// token and R1's single-token tags, that is the tokens after `<think>` up to and including
    /// `</think>` (the `reasoning_tokens` of OpenAI usage). A piece that carries the opening tag
    /// together with reasoning text is not counted (it arrived before the block opened).
    pub fn reasoning_pieces(&self) -> usize {
        self.reasoning_pieces
    }

    /// Adds one piece of generated text; returns what can be released now.
    pub fn push(&mut self, piece: &str) -> ReasoningDelta {
        let mut out = ReasoningDelta::default();
        let mut text = std::mem::take(&mut self.held);
        text.push_str(piece);
        if self.state == ReasoningState::Reasoning {
            self.reasoning_pieces += 1;
        }
        let mut rest = text.as_str();
        loop {
            match self.state {
                ReasoningState::Undecided => {
                    let after_ws = rest.trim_start();
                    if let Some(inside) = after_ws.strip_prefix(self.open.as_str()) {
                        self.state = ReasoningState::Reasoning;
                        self.strip_open_newline = true;
                        rest = inside;
                    } else if self.open.starts_with(after_ws) {
                        // Whitespace and maybe the start of the tag: undecided still.
                        self.held = rest.to_string();
                        break;
                    } else {
                        self.state = ReasoningState::Content;
                    }
                }
                ReasoningState::Reasoning => {
                    if self.strip_open_newline {
                        if rest.is_empty() {
                            break;
                        }
                        rest = rest.strip_prefix('\n').unwrap_or(rest);
                        self.strip_open_newline = false;
                    }
                    if let Some(at) = rest.find(self.close.as_str()) {
                        out.reasoning.push_str(&rest[..at]);
                        rest = &rest[at + self.close.len()..];
                        self.state = ReasoningState::Content;
                        self.strip_close_newlines = true;
                    } else {
                        let keep = partial_match_len(rest, &[self.close.as_str()]);
                        let (emit, hold) = rest.split_at(rest.len() - keep);
                        out.reasoning.push_str(emit);
                        self.held = hold.to_string();
                        break;
                    }
                }
                ReasoningState::Content => {
                    if self.strip_close_newlines {
                        rest = rest.trim_start_matches(['\n', '\r']);
                        if rest.is_empty() {
                            break;
                        }
                        self.strip_close_newlines = false;
                    }
                    out.content.push_str(rest);
                    break;
                }
            }
        }
        out
    }

    /// Ends the stream and releases held text. Undecided output (only whitespace or a
    /// prefix of the opening tag) is content: the model never opened a block. Inside the
    /// block, a held partial closing tag turned out to be reasoning text; the state stays
    /// `Reasoning` so callers can see the block was never closed.
    pub fn finish(&mut self) -> ReasoningDelta {
        let held = std::mem::take(&mut self.held);
        match self.state {
            ReasoningState::Undecided => {
                self.state = ReasoningState::Content;
                ReasoningDelta { reasoning: String::new(), content: held }
            }
            ReasoningState::Reasoning => ReasoningDelta { reasoning: held, content: String::new() },
            ReasoningState::Content => ReasoningDelta { reasoning: String::new(), content: held },
        }
    }
}

/// Splits a complete output in one go (non-streaming responses).
pub fn split_reasoning(text: &str, starts_in_reasoning: bool) -> ReasoningDelta {
    let mut parser = ReasoningParser::new(starts_in_reasoning);
    let mut out = parser.push(text);
    let rest = parser.finish();
    out.reasoning.push_str(&rest.reasoning);
    out.content.push_str(&rest.content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces`, then finishes; returns (reasoning, content, state before finish, pieces).
    fn run(parser: &mut ReasoningParser, pieces: &[&str]) -> (String, String, ReasoningState) {
        let (mut r, mut c) = (String::new(), String::new());
        for p in pieces {
            let d = parser.push(p);
            r.push_str(&d.reasoning);
            c.push_str(&d.content);
        }
        let state = parser.state();
        let d = parser.finish();
        r.push_str(&d.reasoning);
        c.push_str(&d.content);
        (r, c, state)
    }

    /// Runs whole, char-at-a-time and every two-way split; asserts they agree.
    fn split(text: &str, starts_in_reasoning: bool) -> (String, String, ReasoningState) {
        let whole = run(&mut ReasoningParser::new(starts_in_reasoning), &[text]);
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
        let by_char = run(&mut ReasoningParser::new(starts_in_reasoning), &chars);
        assert_eq!(by_char, whole, "char-at-a-time differs for {text:?}");
        for (i, _) in text.char_indices() {
            let two =
                run(&mut ReasoningParser::new(starts_in_reasoning), &[&text[..i], &text[i..]]);
            assert_eq!(two, whole, "split at {i} differs for {text:?}");
        }
        whole
    }

    fn owned(r: &str, c: &str, s: ReasoningState) -> (String, String, ReasoningState) {
        (r.to_string(), c.to_string(), s)
    }

    #[test]
    fn r1_output_with_think_block() {
        let got = split("<think>\nLet me think.\nOK.\n</think>\n\nThe answer is 4.", false);
        assert_eq!(got, owned("Let me think.\nOK.\n", "The answer is 4.", ReasoningState::Content));
    }

    #[test]
    fn prefilled_open_tag() {
        let got = split("Hmm, 2+2.\n</think>\n\n4", true);
        assert_eq!(got, owned("Hmm, 2+2.\n", "4", ReasoningState::Content));
        // A model that still emits the newline after a prefilled `<think>`.
        assert_eq!(split("\nHmm.\n</think>\n\n4", true).0, "Hmm.\n");
    }

    #[test]
    fn no_closing_tag_everything_is_reasoning() {
        let got = split("<think>\nstill thinking </thi", false);
        assert_eq!(got, owned("still thinking </thi", "", ReasoningState::Reasoning));
        let got = split("thinking forever", true);
        assert_eq!(got, owned("thinking forever", "", ReasoningState::Reasoning));
    }

    #[test]
    fn model_that_never_thinks() {
        let got = split("Paris is the capital.", false);
        assert_eq!(got, owned("", "Paris is the capital.", ReasoningState::Content));
        // Leading whitespace of content-only output is kept.
        assert_eq!(split("\n\nHi", false).1, "\n\nHi");
        // Output that is only a prefix of the tag, or whitespace, is content at the end.
        assert_eq!(split("<thi", false), owned("", "<thi", ReasoningState::Undecided));
        assert_eq!(split("  ", false), owned("", "  ", ReasoningState::Undecided));
    }

    #[test]
    fn think_tag_mid_content_is_content() {
        let text = "Use <think>...</think> tags.";
        assert_eq!(split(text, false), owned("", text, ReasoningState::Content));
        // A second block after the first is content as well.
        let got = split("<think>a</think>b<think>c</think>d", false);
        assert_eq!(got, owned("a", "b<think>c</think>d", ReasoningState::Content));
    }

    #[test]
    fn whitespace_before_opening_tag_is_dropped() {
        let got = split(" \n<think>\nr</think>c", false);
        assert_eq!(got, owned("r", "c", ReasoningState::Content));
    }

    #[test]
    fn only_newlines_are_stripped_after_closing_tag() {
        assert_eq!(split("<think>r</think>\r\n\r\n  code", false).1, "  code");
        // Only one newline after the opening tag.
        assert_eq!(split("<think>\n\nr</think>c", false).0, "\nr");
        // Stripping stays pending across empty pieces.
        let mut p = ReasoningParser::new(false);
        let got = run(&mut p, &["<think>", "", "\n", "r", "</think>", "", "\n", "\n", "c"]);
        assert_eq!(got, owned("r", "c", ReasoningState::Content));
    }

    #[test]
    fn tag_split_across_pieces_is_never_emitted_partially() {
        let mut p = ReasoningParser::new(false);
        assert!(p.push("<th").is_empty());
        assert_eq!(p.state(), ReasoningState::Undecided);
        assert!(p.push("ink>").is_empty());
        assert!(p.in_reasoning());
        assert_eq!(p.push("\nabc</").reasoning, "abc");
        assert!(p.push("thi").is_empty());
        let d = p.push("nk>\n\nAnswer");
        assert_eq!(d, ReasoningDelta { reasoning: String::new(), content: "Answer".into() });
        assert!(!p.in_reasoning());
    }

    #[test]
    fn false_tag_prefix_is_released() {
        let mut p = ReasoningParser::new(true);
        assert_eq!(p.push("a </th").reasoning, "a ");
        assert_eq!(p.push("e end").reasoning, "</the end");
        let mut p = ReasoningParser::new(false);
        assert!(p.push("<thin").is_empty());
        assert_eq!(p.push("g>").content, "<thing>");
    }

    #[test]
    fn counts_reasoning_pieces() {
        let mut p = ReasoningParser::new(false);
        for piece in ["<think>", "\n", "a", "b", "</think>", "\n\n", "c", "d"] {
            p.push(piece);
        }
        assert_eq!(p.reasoning_pieces(), 4, "`\\n`, `a`, `b` and `</think>`");
        let mut p = ReasoningParser::new(true);
        for piece in ["x", "y", "</think>", "z"] {
            p.push(piece);
        }
        assert_eq!(p.reasoning_pieces(), 3);
        let mut p = ReasoningParser::new(false);
        p.push("no");
        p.push(" thinking");
        assert_eq!(p.reasoning_pieces(), 0);
    }

    #[test]
    fn custom_tags_and_unicode() {
        let mut p = ReasoningParser::with_tags("【思考】", "【/思考】", false).unwrap();
        let got = run(&mut p, &["【思", "考】\n鲸鱼", "🐳【/", "思考】\n\n答案"]);
        assert_eq!(got, owned("鲸鱼🐳", "答案", ReasoningState::Content));
    }

    #[test]
    fn char_at_a_time_equivalence_on_assorted_inputs() {
        for text in [
            "<think>\n</think>\n\n",
            "<think></think>x",
            "<think>\n<think> nested?</think>\n\nok",
            "<<think>>",
            "</think>only close",
            "\n\n<think>\nr\n</think>\n\nc\n",
            "<think>a</thinkk></think>b",
            "<think>é</thinké</think>\n",
        ] {
            split(text, false);
            split(text, true);
        }
    }

    #[test]
    fn empty_tags_are_errors() {
        let err = ReasoningParser::with_tags("", "</x>", false).unwrap_err();
        assert!(err.to_string().contains("opening tag is empty"), "{err}");
        let err = ReasoningParser::with_tags("<x>", "", true).unwrap_err();
        assert!(err.to_string().contains("closing tag is empty"), "{err}");
    }

    #[test]
    fn split_reasoning_whole_text() {
        let d = split_reasoning("<think>\nr\n</think>\n\nc", false);
        assert_eq!((d.reasoning.as_str(), d.content.as_str()), ("r\n", "c"));
    }
}
