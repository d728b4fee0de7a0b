//! Linear equations `a·x + b = c` with an integer solution.

use crate::problem::Check;
use crate::task::ProblemGenerator;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub struct Linear {
    /// Coefficients and the solution range grow with it.
    pub max_coefficient: i64,
}

impl ProblemGenerator for Linear {
    fn name(&self) -> String {
        format!("linear-{}", self.max_coefficient)
    }

    fn generate(&self, rng: &mut ChaCha8Rng) -> (String, Check) {
        let m = self.max_coefficient.max(2);
        let mut a = rng.random_range(-m..=m);
        if a == 0 || a == 1 {
            a = 2;
        }
        let x = rng.random_range(-2 * m..=2 * m);
        let b = rng.random_range(-5 * m..=5 * m);
        let c = a * x + b;
        let lhs = match b {
            0 => format!("{a}x"),
            b if b > 0 => format!("{a}x + {b}"),
            b => format!("{a}x - {}", -b),
        };
        (format!("Solve for x: {lhs} = {c}."), Check::Value { gold: x.to_string() })
    }
}
