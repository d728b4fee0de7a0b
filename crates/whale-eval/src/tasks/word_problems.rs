//! Simple word problems (GSM8K-like, one or two steps) from templates with random names,
//! items and quantities.

use crate::problem::Check;
use crate::task::ProblemGenerator;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub struct WordProblems {
    /// Largest quantity that appears.
    pub max_quantity: i64,
}

const NAMES: &[&str] = &["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goro", "Hana", "Ivan", "Jia"];
const ITEMS: &[&str] = &["apples", "marbles", "stickers", "books", "pencils", "cookies", "stamps", "shells"];

impl ProblemGenerator for WordProblems {
    fn name(&self) -> String {
        format!("word-{}", self.max_quantity)
    }

    fn generate(&self, rng: &mut ChaCha8Rng) -> (String, Check) {
        let m = self.max_quantity.max(4);
        let name = NAMES[rng.random_range(0..NAMES.len())];
        let other = NAMES[rng.random_range(0..NAMES.len())];
        let item = ITEMS[rng.random_range(0..ITEMS.len())];
        let a = rng.random_range(2..=m);
        let b = rng.random_range(1..=m);
        let (q, v) = match rng.random_range(0..4) {
            0 => {
                let c = rng.random_range(0..=a + b);
                (format!("{name} has {a} {item}. {name} gets {b} more and then gives {c} to {other}. How many {item} does {name} have now?"), a + b - c)
            }
            1 => {
                let k = rng.random_range(2..=9);
                (format!("{name} buys {k} boxes of {item} with {a} {item} in each box. How many {item} does {name} buy?"), k * a)
            }
            2 => {
                let k = rng.random_range(2..=9);
                let total = k * a;
                (format!("{name} shares {total} {item} equally among {k} friends. How many {item} does each friend get?"), a)
            }
            _ => (format!("{name} has {a} {item} and {other} has {b} {item}. How many {item} do they have together?"), a + b),
        };
        (q, Check::Value { gold: v.to_string() })
    }
}
