//! Multi-digit arithmetic: `a op b` with `digits`-digit operands, op among + − × (or only
//! + − for the easier `addsub` variant).

use crate::problem::Check;
use crate::task::ProblemGenerator;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub struct Arithmetic {
    pub digits: u32,
    /// Include multiplication.
    pub multiply: bool,
}

impl Arithmetic {
    /// The operands and operator of a question this task wrote (`What is 47 + 38?`).
    pub fn parse(question: &str) -> Option<(i64, char, i64)> {
        let body = question.strip_prefix("What is ")?.strip_suffix('?')?;
        let mut parts = body.split(' ');
        let (a, op, b) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let op = match op {
            "+" | "-" | "*" => op.chars().next()?,
            _ => return None,
        };
        Some((a.parse().ok()?, op, b.parse().ok()?))
    }
}

impl ProblemGenerator for Arithmetic {
    fn name(&self) -> String {
        if self.multiply {
            format!("arithmetic-{}d", self.digits)
        } else {
            format!("addsub-{}d", self.digits)
        }
    }

    fn generate(&self, rng: &mut ChaCha8Rng) -> (String, Check) {
        let lo = if self.digits == 1 { 0 } else { 10i64.pow(self.digits - 1) };
        let hi = 10i64.pow(self.digits);
        let a = rng.random_range(lo..hi);
        let b = rng.random_range(lo..hi);
        let (sym, v) = match rng.random_range(0..if self.multiply { 3 } else { 2 }) {
            0 => ('+', a + b),
            1 => ('-', a - b),
            _ => ('*', a * b),
        };
        (format!("What is {a} {sym} {b}?"), Check::Value { gold: v.to_string() })
    }
}
