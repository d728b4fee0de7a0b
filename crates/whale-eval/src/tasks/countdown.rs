//! Countdown (as in TinyZero-style R1-Zero replications): reach a target with the given
//! numbers and + − × ÷, each number at most once. Targets are built from a random expression
//! over the numbers, so every problem has a solution.

use crate::problem::Check;
use crate::task::ProblemGenerator;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub struct Countdown {
    /// How many numbers are given (3 or more).
    pub count: usize,
}

impl ProblemGenerator for Countdown {
    fn name(&self) -> String {
        format!("countdown-{}", self.count)
    }

    fn generate(&self, rng: &mut ChaCha8Rng) -> (String, Check) {
        loop {
            let numbers: Vec<i64> = (0..self.count).map(|_| rng.random_range(1..=25)).collect();
            // Combine a random subset (at least 2) left to right, keeping integers.
            let used = rng.random_range(2..=self.count);
            let mut order: Vec<usize> = (0..self.count).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            let mut value = numbers[order[0]];
            for &i in &order[1..used] {
                let n = numbers[i];
                value = match rng.random_range(0..4) {
                    0 => value + n,
                    1 => value - n,
                    2 => value * n,
                    _ if n != 0 && value % n == 0 => value / n,
                    _ => value + n,
                };
            }
            if (1..=200).contains(&value) {
                let list = numbers.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
                let q = format!(
                    "Using the numbers [{list}], write an arithmetic expression that equals {value}. \
                     You may use + - * / and parentheses, and each number at most once."
                );
                return (q, Check::Countdown { numbers, target: value });
            }
        }
    }
}
