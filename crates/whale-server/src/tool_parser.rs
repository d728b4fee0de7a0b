//! DeepSeek-V3/R1 tool calls in generated text → OpenAI `tool_calls`, incrementally.
//!
//! The format (DeepSeek-V3's and R1's chat templates render past calls the same way):
//!
//! ```text
//! <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
//! ```json
//! ARGUMENTS
//! ```<｜tool▁call▁end｜>
//! <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME2 ...<｜tool▁call▁end｜><｜tool▁calls▁end｜>
//! ```
//!
//! Also accepted: V3.1's `NAME<｜tool▁sep｜>ARGUMENTS` (no type, no fence), and a call block
//! that starts at `<｜tool▁call▁begin｜>` without the outer marker. Text before the block is
//! content; a call is emitted once its `<｜tool▁call▁end｜>` arrives (OpenAI allows a call's
//! whole arguments in one delta). Where Whale deviates from a strict parser: nothing the model
//! wrote is lost — an unterminated or malformed call is returned as content, so a client
//! sees the raw text instead of a silently dropped call. Arguments are passed on as written
//! (OpenAI, too, says they may not be valid JSON).

pub const CALLS_BEGIN: &str = "<｜tool▁calls▁begin｜>";
pub const CALLS_END: &str = "<｜tool▁calls▁end｜>";
pub const CALL_BEGIN: &str = "<｜tool▁call▁begin｜>";
pub const CALL_END: &str = "<｜tool▁call▁end｜>";
pub const SEP: &str = "<｜tool▁sep｜>";

/// Every marker the parser reads (for tokenizers that hold them as special tokens).
pub const MARKERS: [&str; 5] = [CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCall {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolDelta {
    pub content: String,
    pub calls: Vec<ParsedCall>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Plain content; a marker may begin.
    Text,
    /// Inside the call block: between calls, or inside one.
    Calls,
    /// After `<｜tool▁calls▁end｜>`.
    After,
}

#[derive(Debug)]
pub struct ToolCallParser {
    state: State,
    buf: String,
    /// Raw text of the current block, returned as content if the block never completes.
    raw: String,
    calls: usize,
}

impl Default for ToolCallParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ToolCallParser {
    pub fn new() -> Self {
        ToolCallParser {
            state: State::Text,
            buf: String::new(),
            raw: String::new(),
            calls: 0,
        }
    }

    /// Calls parsed so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    pub fn push(&mut self, text: &str) -> ToolDelta {
        self.buf.push_str(text);
        let mut out = ToolDelta::default();
        loop {
            match self.state {
                State::Text => {
                    let found = [CALLS_BEGIN, CALL_BEGIN]
                        .iter()
                        .filter_map(|m| self.buf.find(m).map(|i| (i, *m)))
                        .min();
                    match found {
                        Some((i, m)) => {
                            out.content.push_str(&self.buf[..i]);
                            // A bare call opener stays in the buffer (the Calls state reads
                            // it); the outer marker is consumed, so `raw` keeps it.
                            let keep = if m == CALL_BEGIN {
                                self.raw.clear();
                                i
                            } else {
                                self.raw = m.to_string();
                                i + m.len()
                            };
                            self.buf.drain(..keep);
                            self.state = State::Calls;
                        }
                        None => {
                            let hold = partial_marker_len(&self.buf, &[CALLS_BEGIN, CALL_BEGIN]);
                            let cut = self.buf.len() - hold;
                            out.content.push_str(&self.buf[..cut]);
                            self.buf.drain(..cut);
                            return out;
                        }
                    }
                }
                State::Calls => {
                    let start = self.buf.find(CALL_BEGIN);
                    let end_all = self.buf.find(CALLS_END);
                    if let Some(e) = end_all.filter(|&e| start.is_none_or(|s| e < s)) {
                        self.buf.drain(..e + CALLS_END.len());
                        self.raw.clear();
                        self.state = State::After;
                        continue;
                    }
                    let Some(s) = start else { return out };
                    let body_from = s + CALL_BEGIN.len();
                    let Some(len) = self.buf[body_from..].find(CALL_END) else {
                        return out;
                    };
                    let inner = self.buf[body_from..body_from + len].to_string();
                    let consumed = body_from + len + CALL_END.len();
                    let raw_call: String = self.buf[..consumed].to_string();
                    self.buf.drain(..consumed);
                    match parse_call(&inner) {
                        Some(call) => {
                            self.calls += 1;
                            out.calls.push(call);
                            self.raw.clear();
                        }
                        // A malformed call: its text is content, nothing is dropped.
                        None => {
                            out.content.push_str(&std::mem::take(&mut self.raw));
                            out.content.push_str(&raw_call);
                        }
                    }
                }
                State::After => {
                    // The model should stop here; anything it still writes is content.
                    out.content.push_str(&self.buf);
                    self.buf.clear();
                    return out;
                }
            }
        }
    }

    /// The end of the output: text held back for a possible marker, or an unterminated call
    /// block, comes out as content.
    pub fn finish(&mut self) -> ToolDelta {
        let mut out = ToolDelta::default();
        if self.state == State::Calls {
            out.content.push_str(&std::mem::take(&mut self.raw));
        }
        out.content.push_str(&std::mem::take(&mut self.buf));
        self.state = State::After;
        out
    }
}

/// One call's text between `<｜tool▁call▁begin｜>` and `<｜tool▁call▁end｜>`.
pub fn parse_call(inner: &str) -> Option<ParsedCall> {
    let (head, rest) = inner.split_once(SEP)?;
    let (name, args) = if head.trim() == "function" {
        // V3/R1: `function<sep>NAME\n```json\nARGS\n```` (the name ends at the newline).
        match rest.split_once('\n') {
            Some((name, args)) => (name.trim(), args),
            None => (rest.trim(), ""),
        }
    } else {
        (head.trim(), rest)
    };
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return None;
    }
    Some(ParsedCall {
        name: name.to_string(),
        arguments: strip_fence(args).to_string(),
    })
}

/// ```` ```json\n{...}\n``` ```` → `{...}`; unfenced text is only trimmed.
fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    let Some(body) = t.strip_prefix("```") else {
        return t;
    };
    let body = body.strip_suffix("```").unwrap_or(body);
    // The fence's language tag runs to the first newline.
    let body = match body.split_once('\n') {
        Some((lang, rest)) if !lang.trim_start().starts_with(['{', '[']) => rest,
        _ => body,
    };
    body.trim()
}

/// Length of the longest suffix of `s` that is a proper prefix of one of `markers` (text that
/// might still become a marker, so it is held back).
fn partial_marker_len(s: &str, markers: &[&str]) -> usize {
    let mut best = 0;
    for m in markers {
        for (i, _) in m.char_indices().skip(1) {
            if i > best && s.ends_with(&m[..i]) {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v3_call(name: &str, args: &str) -> String {
        format!("{CALL_BEGIN}function{SEP}{name}\n```json\n{args}\n```{CALL_END}")
    }

    fn run(chunks: &[&str]) -> (String, Vec<ParsedCall>) {
        let mut p = ToolCallParser::new();
        let (mut content, mut calls) = (String::new(), Vec::new());
        for c in chunks {
            let d = p.push(c);
            content += &d.content;
            calls.extend(d.calls);
        }
        let d = p.finish();
        content += &d.content;
        calls.extend(d.calls);
        (content, calls)
    }

    /// Splits `s` into pieces of `n` characters (as a token stream would).
    fn pieces(s: &str, n: usize) -> Vec<String> {
        let chars: Vec<char> = s.chars().collect();
        chars.chunks(n).map(|c| c.iter().collect()).collect()
    }

    #[test]
    fn parses_deepseek_v3_calls_at_every_split() {
        let text = format!(
            "Let me check.{CALLS_BEGIN}{}\n{}{CALLS_END}",
            v3_call("get_weather", r#"{"city": "Paris"}"#),
            v3_call("get_time", r#"{"tz": "CET"}"#)
        );
        for n in [1, 2, 3, 7, 1000] {
            let chunks = pieces(&text, n);
            let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
            let (content, calls) = run(&refs);
            assert_eq!(content, "Let me check.", "split {n}");
            assert_eq!(
                calls,
                vec![
                    ParsedCall {
                        name: "get_weather".into(),
                        arguments: r#"{"city": "Paris"}"#.into()
                    },
                    ParsedCall {
                        name: "get_time".into(),
                        arguments: r#"{"tz": "CET"}"#.into()
                    },
                ],
                "split {n}"
            );
        }
    }

    #[test]
    fn a_call_is_emitted_when_its_end_marker_arrives() {
        let mut p = ToolCallParser::new();
        let call = v3_call("f", "{}");
        let (a, b) = call.split_at(call.len() - CALL_END.len());
        assert!(p.push(&format!("{CALLS_BEGIN}{a}")).calls.is_empty());
        assert_eq!(p.push(b).calls.len(), 1);
        assert_eq!(p.calls(), 1);
    }

    #[test]
    fn accepts_v31_format_and_a_missing_outer_marker() {
        let (content, calls) = run(&[&format!(
            "{CALL_BEGIN}search{SEP}{{\"q\": \"x\"}}{CALL_END}"
        )]);
        assert_eq!(content, "");
        assert_eq!(
            calls,
            vec![ParsedCall {
                name: "search".into(),
                arguments: r#"{"q": "x"}"#.into()
            }]
        );
    }

    #[test]
    fn plain_text_and_lookalikes_stay_content() {
        let (content, calls) = run(&["a < b and <｜tool", " is not a marker"]);
        assert_eq!(content, "a < b and <｜tool is not a marker");
        assert!(calls.is_empty());
        // Held back while it could be a marker, released at the end.
        let mut p = ToolCallParser::new();
        assert_eq!(p.push("x<｜tool▁ca").content, "x");
        assert_eq!(p.finish().content, "<｜tool▁ca");
    }

    #[test]
    fn unterminated_or_malformed_calls_come_back_as_content() {
        let cut = format!("{CALLS_BEGIN}{CALL_BEGIN}function{SEP}f\n```json\n{{\"a\":");
        let (content, calls) = run(&[&cut]);
        assert!(calls.is_empty());
        assert_eq!(
            content, cut,
            "a call cut by max_tokens is returned as written"
        );
        let bad = format!("{CALLS_BEGIN}{CALL_BEGIN}no separator{CALL_END}{CALLS_END}");
        let (content, calls) = run(&[&bad]);
        assert!(calls.is_empty());
        assert!(content.contains("no separator"), "{content}");
    }

    #[test]
    fn text_after_the_block_is_content() {
        let (content, calls) = run(&[&format!(
            "{CALLS_BEGIN}{}{CALLS_END} done",
            v3_call("f", "{}")
        )]);
        assert_eq!(calls.len(), 1);
        assert_eq!(content, " done");
    }

    #[test]
    fn fences_are_stripped() {
        assert_eq!(strip_fence("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
        assert_eq!(strip_fence("```\n[1]\n```"), "[1]");
        assert_eq!(strip_fence("```{\"a\": 1}```"), "{\"a\": 1}");
        assert_eq!(strip_fence(" {\"a\": 1} "), "{\"a\": 1}");
        assert_eq!(
            parse_call(&format!("function{SEP}f")),
            Some(ParsedCall {
                name: "f".into(),
                arguments: String::new()
            })
        );
        assert_eq!(parse_call("function f"), None);
    }
}
