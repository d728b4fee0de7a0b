//! Turning an answer string into a comparable value, in the spirit of the MATH / GSM8K
//! graders: strip LaTeX wrappers (`$…$`, `\text{}`, `\left`), units and degree/percent signs,
//! thousands separators and "x =" prefixes; evaluate what is numeric (see `expr.rs`), compare
//! tuples elementwise, and fall back to a whitespace- and case-insensitive string comparison.

use super::expr::eval;

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Number(f64),
    Tuple(Vec<Answer>),
    Text(String),
}

impl Answer {
    /// A canonical string, used to group equal answers for majority voting.
    pub fn key(&self) -> String {
        match self {
            Answer::Number(v) => {
                let r = (v * 1e9).round() / 1e9;
                if r == r.trunc() && r.abs() < 1e15 {
                    format!("{}", r as i64)
                } else {
                    format!("{r}")
                }
            }
            Answer::Tuple(xs) => format!("({})", xs.iter().map(Answer::key).collect::<Vec<_>>().join(",")),
            Answer::Text(t) => t.clone(),
        }
    }
}

/// Equal numbers within a relative 1e-9 (so `1/3` ≠ `0.333`), tuples elementwise, text exactly
/// after normalization.
pub fn answers_match(a: &Answer, b: &Answer) -> bool {
    match (a, b) {
        (Answer::Number(x), Answer::Number(y)) => (x - y).abs() <= 1e-9 * 1f64.max(x.abs()).max(y.abs()),
        (Answer::Tuple(x), Answer::Tuple(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| answers_match(p, q)),
        (Answer::Text(x), Answer::Text(y)) => x == y,
        _ => false,
    }
}

/// The value of an answer string; `None` when nothing is left after normalization or its
/// braces do not balance.
pub fn parse_answer(raw: &str) -> Option<Answer> {
    let s = normalize(raw);
    if s.is_empty() || !balanced(&s) {
        return None;
    }
    Some(value(&s))
}

fn value(s: &str) -> Answer {
    if let Some(v) = eval(s) {
        return Answer::Number(v);
    }
    let parts = split_top_level(s);
    if parts.len() > 1 {
        return Answer::Tuple(parts.iter().map(|p| value(p.trim())).collect());
    }
    let inner = s.strip_prefix('(').and_then(|x| x.strip_suffix(')'));
    if let Some(inner) = inner {
        let parts = split_top_level(inner);
        if parts.len() > 1 {
            return Answer::Tuple(parts.iter().map(|p| value(p.trim())).collect());
        }
    }
    Answer::Text(s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase())
}

fn balanced(s: &str) -> bool {
    let mut depth: i64 = 0;
    for c in s.chars() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        out.last_mut().expect("non-empty").push(c);
    }
    out
}

/// The normalized answer text (see the module docs).
pub fn normalize(raw: &str) -> String {
    let mut s = raw.trim().to_string();
    for (open, close) in [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")] {
        if s.len() >= open.len() + close.len() && s.starts_with(open) && s.ends_with(close) {
            s = s[open.len()..s.len() - close.len()].trim().to_string();
        }
    }
    for cmd in ["\\text", "\\textbf", "\\mathrm", "\\mbox", "\\mathbf"] {
        s = unwrap_command(&s, cmd);
    }
    for junk in ["\\!", "\\,", "\\;", "\\:", "\\displaystyle", "\\left", "\\right", "^\\circ", "^{\\circ}", "°", "\\%", "%", "\\$", "$", "~"] {
        s = s.replace(junk, "");
    }
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac");
    let lower = s.to_lowercase();
    for prefix in ["the final answer is", "the answer is", "final answer:", "answer:"] {
        if lower.starts_with(prefix) {
            s = s[prefix.len()..].trim().to_string();
            break;
        }
    }
    // "x = 5", "k=3" (a single variable name before '=')
    if let Some((lhs, rhs)) = s.split_once('=') {
        let lhs = lhs.trim();
        if !lhs.is_empty() && lhs.len() <= 2 && lhs.chars().all(|c| c.is_ascii_alphabetic()) {
            s = rhs.trim().to_string();
        }
    }
    let s = s.trim().trim_end_matches('.').trim().to_string();
    let s = strip_thousands(&s);
    strip_unit(&s)
}

fn unwrap_command(s: &str, cmd: &str) -> String {
    let mut out = s.to_string();
    while let Some(i) = out.find(&format!("{cmd}{{")) {
        let open = i + cmd.len();
        let mut depth = 0;
        let mut close = None;
        for (j, c) in out[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(open + j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else { break };
        out = format!("{}{}{}", &out[..i], &out[open + 1..close], &out[close + 1..]);
    }
    out
}

/// `1,234,567.5` → `1234567.5` (only a well-formed grouping, so tuples like `1,2` survive).
fn strip_thousands(s: &str) -> String {
    let body = s.strip_prefix('-').unwrap_or(s);
    let int = body.split('.').next().unwrap_or("");
    let groups: Vec<&str> = int.split(',').collect();
    let grouped = groups.len() > 1
        && (1..=3).contains(&groups[0].len())
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_digit()))
        && groups[1..].iter().all(|g| g.len() == 3);
    if grouped {
        s.replacen(',', "", groups.len() - 1)
    } else {
        s.to_string()
    }
}

/// `18 dollars`, `5 cm`, `3 apples` → the number, when what precedes the words is numeric.
fn strip_unit(s: &str) -> String {
    let trimmed = s.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == ' ');
    if trimmed.len() < s.len() && !trimmed.trim().is_empty() && eval(trimmed.trim()).is_some() {
        trimmed.trim().to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        answers_match(&parse_answer(a).unwrap(), &parse_answer(b).unwrap())
    }

    #[test]
    fn equal_answers_in_different_notations() {
        assert!(same("\\frac{1}{2}", "0.5"));
        assert!(same("\\dfrac{1}{2}", "1/2"));
        assert!(same("$\\frac{\\sqrt{2}}{2}$", "\\sqrt{2}/2"));
        assert!(same("1,234", "1234"));
        assert!(same("18 dollars", "18"));
        assert!(same("\\$18.00", "18"));
        assert!(same("x = 5", "5"));
        assert!(same("50\\%", "50"));
        assert!(same("90^\\circ", "90"));
        assert!(same("\\text{(C)}", "(c)"));
        assert!(same("The answer is 7.", "7"));
        assert!(same("(1, 2)", "(1,2)"));
        assert!(same("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\frac{\\pi}{2})"));
    }

    #[test]
    fn different_answers_stay_different() {
        assert!(!same("1/3", "0.333"));
        assert!(!same("1,2", "12"));
        assert!(!same("(1,2)", "(2,1)"));
        assert!(!same("5", "-5"));
        assert!(!same("\\text{yes}", "no"));
    }

    #[test]
    fn unparseable_answers() {
        assert_eq!(parse_answer(""), None);
        assert_eq!(parse_answer("$ $"), None);
        assert_eq!(parse_answer("\\frac{1}{2"), None);
        assert_eq!(parse_answer("(1, 2"), None);
    }
}
