//! A task: a named source of problems with a fixed held-out split. The same task serves
//! evaluation (`whale eval`) and RL rewards (`whale grpo`), as in the R1 recipe, where the
//! reward is the rule-based verifier of the benchmark's own answer format.

use crate::problem::{Check, Problem};
use crate::EvalError;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Test,
}

pub trait Task: Send + Sync {
    /// The name reports and checkpoints record (with its difficulty).
    fn name(&self) -> String;
    /// Up to `n` problems of `split`. The test split is the same on every call and shares no
    /// question with the train split.
    fn problems(&self, split: Split, n: usize) -> Result<Vec<Problem>, EvalError>;
}

/// A generator of random problems, made into a [`Task`] by [`Generated`].
pub trait ProblemGenerator: Send + Sync {
    fn name(&self) -> String;
    /// One random problem: its question and how to check it.
    fn generate(&self, rng: &mut ChaCha8Rng) -> (String, Check);
}

/// Built-in tasks: a generator with a fixed test split of `test_size` problems (seeded) and
/// an unbounded train stream that skips every test question.
pub struct Generated<G> {
    generator: G,
    test_size: usize,
}

const TEST_SEED: u64 = 0x7e57;
const TRAIN_SEED: u64 = 0x7a19;

impl<G: ProblemGenerator> Generated<G> {
    pub fn new(generator: G, test_size: usize) -> Self {
        Generated { generator, test_size }
    }

    fn test_set(&self, n: usize) -> Vec<Problem> {
        let mut rng = ChaCha8Rng::seed_from_u64(TEST_SEED);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        // Distinct questions; a generous attempt bound covers generators with few distinct
        // problems (1-digit arithmetic has only a few hundred).
        for _ in 0..n.max(1) * 50 {
            if out.len() == n {
                break;
            }
            let (question, check) = self.generator.generate(&mut rng);
            if seen.insert(question.clone()) {
                out.push(Problem { id: format!("test-{}", out.len()), question, check });
            }
        }
        out
    }
}

impl<G: ProblemGenerator> Task for Generated<G> {
    fn name(&self) -> String {
        self.generator.name()
    }

    fn problems(&self, split: Split, n: usize) -> Result<Vec<Problem>, EvalError> {
        match split {
            Split::Test => {
                if n > self.test_size {
                    return Err(EvalError::Task(format!(
                        "{}: the test split has {} problems, {n} were asked for",
                        self.name(),
                        self.test_size
                    )));
                }
                Ok(self.test_set(n))
            }
            Split::Train => {
                let held_out: HashSet<String> = self.test_set(self.test_size).into_iter().map(|p| p.question).collect();
                let mut rng = ChaCha8Rng::seed_from_u64(TRAIN_SEED);
                let mut out = Vec::with_capacity(n);
                let mut tries = 0usize;
                while out.len() < n {
                    tries += 1;
                    if tries > n.max(1) * 100 {
                        return Err(EvalError::Task(format!(
                            "{}: could not generate {n} training problems outside the test split (made {})",
                            self.name(),
                            out.len()
                        )));
                    }
                    let (question, check) = self.generator.generate(&mut rng);
                    if !held_out.contains(&question) {
                        out.push(Problem { id: format!("train-{}", out.len()), question, check });
                    }
                }
                Ok(out)
            }
        }
    }
}
