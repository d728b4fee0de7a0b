//! JSON mode (`response_format: {"type": "json_object"}`): an engine [`LogitConstraint`] that
//! allows only tokens whose text keeps the output a prefix of one JSON object (RFC 8259),
//! checked character by character with a small pushdown automaton.
//!
//! With an R1 prompt that opens `<think>`, the reasoning is left free and the constraint
//! starts after the `</think>` token, so the *answer* is the JSON object (DeepSeek's JSON mode
//! constrains `content`, not `reasoning_content`). Runs of whitespace are capped, so a model
//! cannot stall in JSON mode by emitting blanks forever. Special tokens (their text is empty
//! here) are never allowed inside the object.

use std::sync::Arc;
use whale_engine::LogitConstraint;

/// Most whitespace characters in a row outside strings.
const MAX_WS_RUN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Before the top-level object: only `{`.
    Start,
    /// A value is expected (after `:` or `,` in an array).
    Value,
    /// After `[`: a value or `]`.
    ArrayFirst,
    /// After `{`: a key or `}`.
    ObjectFirst,
    /// After `,` in an object: a key.
    Key,
    Colon,
    /// After a value: `,` or the closing bracket.
    After,
    /// Inside a string; `key` strings are followed by `:`. `hex` counts `\u` digits left.
    Str {
        key: bool,
        escape: bool,
        hex: u8,
    },
    Number(Num),
    /// The rest of `true` / `false` / `null`.
    Literal(&'static [u8]),
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Machine {
    stack: Vec<Ctx>,
    mode: Mode,
    ws_run: usize,
}

impl Machine {
    fn new() -> Self {
        Machine {
            stack: Vec::new(),
            mode: Mode::Start,
            ws_run: 0,
        }
    }

    /// Advances over `text`; false if it cannot continue a JSON object.
    fn feed(&mut self, text: &str) -> bool {
        text.chars().all(|c| self.step(c))
    }

    fn step(&mut self, c: char) -> bool {
        if let Mode::Str { key, escape, hex } = self.mode {
            return self.string_char(c, key, escape, hex);
        }
        if let Mode::Number(n) = self.mode {
            if let Some(next) = number_step(n, c) {
                self.mode = Mode::Number(next);
                return true;
            }
            if !matches!(n, Num::Zero | Num::Int | Num::Frac | Num::ExpDigits) {
                return false;
            }
            // The number ended; `c` belongs to what follows it.
            self.mode = Mode::After;
        }
        if let Mode::Literal(rest) = self.mode {
            return match rest.split_first() {
                Some((&b, tail)) if c == b as char => {
                    self.mode = if tail.is_empty() {
                        Mode::After
                    } else {
                        Mode::Literal(tail)
                    };
                    true
                }
                _ => false,
            };
        }
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            self.ws_run += 1;
            return self.mode != Mode::Done && self.ws_run <= MAX_WS_RUN;
        }
        self.ws_run = 0;
        match self.mode {
            Mode::Start => self.open(c == '{', Ctx::Object),
            Mode::Value | Mode::ArrayFirst => {
                if self.mode == Mode::ArrayFirst && c == ']' {
                    return self.close(Ctx::Array);
                }
                self.value_start(c)
            }
            Mode::ObjectFirst if c == '}' => self.close(Ctx::Object),
            Mode::ObjectFirst | Mode::Key => {
                self.mode = Mode::Str {
                    key: true,
                    escape: false,
                    hex: 0,
                };
                c == '"'
            }
            Mode::Colon => {
                self.mode = Mode::Value;
                c == ':'
            }
            Mode::After => match (c, self.stack.last()) {
                (',', Some(Ctx::Object)) => {
                    self.mode = Mode::Key;
                    true
                }
                (',', Some(Ctx::Array)) => {
                    self.mode = Mode::Value;
                    true
                }
                ('}', Some(Ctx::Object)) => self.close(Ctx::Object),
                (']', Some(Ctx::Array)) => self.close(Ctx::Array),
                _ => false,
            },
            Mode::Done => false,
            Mode::Str { .. } | Mode::Number(_) | Mode::Literal(_) => false,
        }
    }

    fn open(&mut self, ok: bool, ctx: Ctx) -> bool {
        if ok {
            self.stack.push(ctx);
            self.mode = if ctx == Ctx::Object {
                Mode::ObjectFirst
            } else {
                Mode::ArrayFirst
            };
        }
        ok
    }

    fn close(&mut self, ctx: Ctx) -> bool {
        if self.stack.pop() != Some(ctx) {
            return false;
        }
        self.mode = if self.stack.is_empty() {
            Mode::Done
        } else {
            Mode::After
        };
        true
    }

    fn value_start(&mut self, c: char) -> bool {
        match c {
            '{' => self.open(true, Ctx::Object),
            '[' => self.open(true, Ctx::Array),
            '"' => {
                self.mode = Mode::Str {
                    key: false,
                    escape: false,
                    hex: 0,
                };
                true
            }
            '-' => {
                self.mode = Mode::Number(Num::Minus);
                true
            }
            '0' => {
                self.mode = Mode::Number(Num::Zero);
                true
            }
            '1'..='9' => {
                self.mode = Mode::Number(Num::Int);
                true
            }
            't' => {
                self.mode = Mode::Literal(b"rue");
                true
            }
            'f' => {
                self.mode = Mode::Literal(b"alse");
                true
            }
            'n' => {
                self.mode = Mode::Literal(b"ull");
                true
            }
            _ => false,
        }
    }

    fn string_char(&mut self, c: char, key: bool, escape: bool, hex: u8) -> bool {
        if hex > 0 {
            self.mode = Mode::Str {
                key,
                escape: false,
                hex: hex - 1,
            };
            return c.is_ascii_hexdigit();
        }
        if escape {
            return match c {
                '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' => {
                    self.mode = Mode::Str {
                        key,
                        escape: false,
                        hex: 0,
                    };
                    true
                }
                'u' => {
                    self.mode = Mode::Str {
                        key,
                        escape: false,
                        hex: 4,
                    };
                    true
                }
                _ => false,
            };
        }
        match c {
            '"' => {
                self.mode = if key { Mode::Colon } else { Mode::After };
                true
            }
            '\\' => {
                self.mode = Mode::Str {
                    key,
                    escape: true,
                    hex: 0,
                };
                true
            }
            c => c >= ' ',
        }
    }
}

fn number_step(n: Num, c: char) -> Option<Num> {
    let digit = c.is_ascii_digit();
    match (n, c) {
        (Num::Minus, '0') => Some(Num::Zero),
        (Num::Minus, _) if digit => Some(Num::Int),
        (Num::Int, _) if digit => Some(Num::Int),
        (Num::Zero | Num::Int, '.') => Some(Num::Dot),
        (Num::Dot | Num::Frac, _) if digit => Some(Num::Frac),
        (Num::Zero | Num::Int | Num::Frac, 'e' | 'E') => Some(Num::Exp),
        (Num::Exp, '+' | '-') => Some(Num::ExpSign),
        (Num::Exp | Num::ExpSign | Num::ExpDigits, _) if digit => Some(Num::ExpDigits),
        _ => None,
    }
}

pub struct JsonConstraint {
    /// Every token id's text (empty for special tokens).
    texts: Arc<Vec<String>>,
    machine: Machine,
    /// In the think block: no constraint until `think_end`.
    thinking: bool,
    think_end: Option<u32>,
}

impl JsonConstraint {
    /// `reasoning`: the prompt opened a think block (R1's template prefilled `<think>`) that
    /// the output closes first.
    pub fn new(texts: Arc<Vec<String>>, reasoning: bool, think_end: Option<u32>) -> Self {
        JsonConstraint {
            texts,
            machine: Machine::new(),
            thinking: reasoning && think_end.is_some(),
            think_end,
        }
    }
}

impl LogitConstraint for JsonConstraint {
    fn mask(&mut self, logits: &mut [f32]) {
        if self.thinking {
            return;
        }
        for (id, l) in logits.iter_mut().enumerate() {
            if *l == f32::NEG_INFINITY {
                continue;
            }
            let ok = match self.texts.get(id) {
                Some(t) if !t.is_empty() => self.machine.clone().feed(t),
                _ => false,
            };
            if !ok {
                *l = f32::NEG_INFINITY;
            }
        }
    }

    fn accept(&mut self, token: u32) {
        if self.thinking {
            self.thinking = Some(token) != self.think_end;
            return;
        }
        let mut next = self.machine.clone();
        // A forced token (the thinking budget) may not fit; the state then stays as it was.
        if let Some(t) = self.texts.get(token as usize) {
            if next.feed(t) {
                self.machine = next;
            }
        }
    }

    fn is_complete(&self) -> bool {
        self.machine.mode == Mode::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(s: &str) -> (bool, bool) {
        let mut m = Machine::new();
        let ok = m.feed(s);
        (ok, m.mode == Mode::Done)
    }

    #[test]
    fn valid_objects_complete() {
        for s in [
            r#"{}"#,
            r#"{"a": 1}"#,
            r#"{"a": [1, -2.5e+3, 0, true, false, null, "x\"\u00e9"], "b": {"c": {}}}"#,
            "{\n  \"k\": \"v\"\n}",
        ] {
            assert_eq!(accepts(s), (true, true), "{s}");
        }
    }

    #[test]
    fn prefixes_are_allowed_and_errors_refused() {
        assert_eq!(accepts(r#"{"a": [1, 2"#), (true, false));
        assert!(!accepts(r#"{"a": 01}"#).0);
        for bad in [
            "[1]",
            "x",
            r#"{"a" 1}"#,
            r#"{"a": tru "#,
            r#"{"a": 1,}"#,
            r#"{} x"#,
            r#"{"a": "\q"}"#,
            "{\"a\": \"\u{1}\"}",
        ] {
            assert!(!accepts(bad).0, "{bad}");
        }
        assert!(!accepts(&format!("{{{}", " ".repeat(MAX_WS_RUN + 1))).0);
    }

    #[test]
    fn mask_keeps_only_fitting_tokens() {
        let texts = Arc::new(vec![
            "{".to_string(),
            "}".into(),
            "\"a\"".into(),
            "".into(),
            ":".into(),
            " 1".into(),
        ]);
        let mut c = JsonConstraint::new(texts, false, None);
        let mut l = vec![0.0; 6];
        c.mask(&mut l);
        assert_eq!(
            l.iter().map(|x| x.is_finite()).collect::<Vec<_>>(),
            [true, false, false, false, false, false]
        );
        for t in [0, 2, 4, 5] {
            c.accept(t);
        }
        assert!(!c.is_complete());
        c.accept(1);
        assert!(c.is_complete());
    }

    #[test]
    fn reasoning_is_free_until_think_end() {
        let texts = Arc::new(vec!["x".to_string(), "".into(), "{".into()]);
        let mut c = JsonConstraint::new(texts, true, Some(1));
        let mut l = vec![0.0; 3];
        c.mask(&mut l);
        assert!(l.iter().all(|x| x.is_finite()));
        c.accept(0);
        c.accept(1);
        c.mask(&mut l);
        assert_eq!(
            l.iter().map(|x| x.is_finite()).collect::<Vec<_>>(),
            [false, false, true]
        );
    }
}
