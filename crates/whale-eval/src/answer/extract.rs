//! Finding the final answer in a model's output, in the formats R1-style evaluation uses:
//! the last `\boxed{…}` (R1's recommended math format), an `<answer>…</answer>` block (the
//! R1-Zero template), GSM8K's `#### 42`, and as a last resort the final number in the text.
//! Only text after the reasoning block counts when one is present: a number mentioned while
//! thinking is not an answer.

/// Where an answer came from (reports count them, to spot format problems).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    Boxed,
    AnswerTag,
    Hashes,
    LastNumber,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub text: String,
    pub source: AnswerSource,
}

/// The part of `output` after its reasoning: after the last `</think>` if any.
pub fn after_reasoning(output: &str) -> &str {
    match output.rfind("</think>") {
        Some(i) => &output[i + "</think>".len()..],
        None => output,
    }
}

/// The final answer of `output`, or `None` when it states none.
pub fn extract_answer(output: &str) -> Option<Extracted> {
    let text = after_reasoning(output);
    if let Some(b) = last_boxed(text) {
        return Some(Extracted { text: b, source: AnswerSource::Boxed });
    }
    if let Some(a) = last_tag(text, "<answer>", "</answer>") {
        // An answer block may itself hold a boxed expression.
        let inner = last_boxed(&a).unwrap_or(a);
        return Some(Extracted { text: inner.trim().to_string(), source: AnswerSource::AnswerTag });
    }
    if let Some(i) = text.rfind("####") {
        let rest = text[i + 4..].trim();
        let line = rest.lines().next().unwrap_or("").trim();
        if !line.is_empty() {
            return Some(Extracted { text: line.to_string(), source: AnswerSource::Hashes });
        }
    }
    last_number(text).map(|n| Extracted { text: n, source: AnswerSource::LastNumber })
}

/// The contents of the last `\boxed{…}` (or `\fbox{…}`), braces balanced.
pub fn last_boxed(text: &str) -> Option<String> {
    let start = ["\\boxed", "\\fbox"].iter().filter_map(|m| text.rfind(m).map(|i| (i, m.len()))).max()?;
    let rest = text[start.0 + start.1..].trim_start();
    let mut chars = rest.char_indices();
    match chars.next() {
        Some((_, '{')) => {}
        // `\boxed 5`: the next token.
        Some(_) => return rest.split_whitespace().next().map(|s| s.trim_end_matches(['$', '.']).to_string()),
        None => return None,
    }
    let mut depth = 1;
    for (i, c) in chars {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(rest[1..i].trim().to_string());
                }
            }
            _ => {}
        }
    }
    None // unbalanced: the output was cut off inside the box
}

fn last_tag(text: &str, open: &str, close: &str) -> Option<String> {
    let s = text.rfind(open)? + open.len();
    let e = text[s..].find(close)? + s;
    Some(text[s..e].to_string())
}

/// The last number written in `text` (`-12`, `3.5`, `1,234`, `3/4`).
pub fn last_number(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut end = b.len();
    while end > 0 {
        if !b[end - 1].is_ascii_digit() {
            end -= 1;
            continue;
        }
        let mut start = end;
        while start > 0 && (b[start - 1].is_ascii_digit() || matches!(b[start - 1], b'.' | b',' | b'/')) {
            start -= 1;
        }
        // Separators must sit between digits.
        while start < end && !b[start].is_ascii_digit() {
            start += 1;
        }
        if start > 0 && b[start - 1] == b'-' {
            start -= 1;
        }
        return Some(text[start..end].to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_order_of_precedence() {
        let e = |s: &str| extract_answer(s).map(|x| (x.text, x.source));
        assert_eq!(e("so \\boxed{\\frac{1}{2}} and 7"), Some(("\\frac{1}{2}".into(), AnswerSource::Boxed)));
        assert_eq!(e("<think>maybe \\boxed{3}</think>The answer is 4."), Some(("4".into(), AnswerSource::LastNumber)));
        assert_eq!(e("<think>x</think><answer> 12 </answer>"), Some(("12".into(), AnswerSource::AnswerTag)));
        assert_eq!(e("<answer>\\boxed{5}</answer>"), Some(("5".into(), AnswerSource::Boxed)));
        assert_eq!(e("Natalia sold 48/2 = 24 clips.\n#### 72"), Some(("72".into(), AnswerSource::Hashes)));
        assert_eq!(e("total: 1,234 apples."), Some(("1,234".into(), AnswerSource::LastNumber)));
        assert_eq!(e("it is -7."), Some(("-7".into(), AnswerSource::LastNumber)));
        assert_eq!(e("no idea"), None);
        assert_eq!(e("\\boxed{unfinished"), None);
        assert_eq!(last_boxed("\\boxed{a{b}c} then \\boxed{ {x} }"), Some("{x}".into()));
    }
}
