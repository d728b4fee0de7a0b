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
