//! The token sampler: one row of logits and the sequence's history in, one token out.
//!
//! Order of operations, as in HF `generate` and vLLM: penalties and logit bias
//! (`penalties.rs`) → temperature → top-k → top-p → min-p → draw. Temperature 0 is greedy: the
//! argmax, ties to the lowest id, consuming no randomness.
//!
//! Reproducibility: the RNG is ChaCha8 seeded with `seed_from_u64` (both specified bit for bit
//! by `rand_core` / `rand_chacha`, unlike `StdRng`, whose algorithm may change between `rand`
//! versions), each non-greedy draw consumes exactly one `u64`, converted to a uniform in [0, 1)
//! by the top 53 bits, and candidates are walked in an order that is a total order (id order, or
//! most likely first with ties to the lower id), and `exp` is our own bit-reproducible one
//! (`whale_nn::fast_exp`). Same seed, logits and history → same tokens, on every platform.
//!
//! Logprobs: reported from the distribution after penalties, bias and temperature but *before*
//! truncation: `log_softmax((logits') / T)`. Why not the raw model log-softmax (what OpenAI
//! reports): the sampler's own distribution is what the token was actually drawn from, so the
//! numbers explain the choice (a banned token shows -inf, a low temperature shows a confident
//! pick). Why before truncation: top-k/top-p/min-p would give every alternative outside the
//! nucleus -inf, which makes `top_logprobs` useless. For greedy decoding (T = 0, a degenerate
//! distribution) T = 1 is used, i.e. the log-softmax of the penalized logits.
//!
//! Numerics: NaN logits count as -inf (never chosen). If some logits are +inf, the +inf ones
//! share the mass equally and the rest get none (the limit of a very large logit). Scores are
//! computed as `(l - max) / T` so that no temperature, however small, overflows. A row where
//! every logit is -inf or NaN is an error.
//!
//! Cost at a 150k vocabulary: a handful of linear passes (copy, max, scale, exp + sum, top
//! logprobs). Truncation never sorts the vocabulary: top-k ≤ 256 is an insertion scan, larger k
//! a `select_nth_unstable`; top-p first drops every token provably outside the nucleus and then
//! finds the cut with a score histogram (see `top_p.rs`). The buffers are reused between calls,
//! so a call allocates only its `top_logprobs`.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::SamplingError;
use whale_nn::fast_exp::{exp_row, max_f32, sum_f64};
use crate::penalties::apply_penalties;
use crate::sampling_params::SamplingParams;
use crate::token_history::TokenHistory;
use crate::top_p::{top_p, top_p_floor, TopPScratch};
use crate::truncation::{min_p, top_k_of_row, top_n};

/// One sampled token.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    pub token: u32,
    /// Log-probability of `token` (see the module docs for which distribution).
    pub logprob: f32,
    /// The `params.top_logprobs` most likely tokens with their log-probabilities, most likely
    /// first, ties to the lower id; empty when `top_logprobs` is 0.
    pub top_logprobs: Vec<(u32, f32)>,
}

/// Samples tokens for one sequence with fixed parameters and its own seeded RNG.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    seed: u64,
    rng: ChaCha8Rng,
    /// The processed row: penalized, then `(l - max) / T`.
    scores: Vec<f32>,
    /// `exp(scores)`: unnormalized probabilities, the largest exactly 1.
    probs: Vec<f32>,
    /// Token ids still allowed by truncation.
    candidates: Vec<u32>,
    top_p_scratch: TopPScratch,
}

impl Sampler {
    /// Validates `params` and seeds the RNG (from the OS when `params.seed` is `None`).
    pub fn new(params: SamplingParams) -> Result<Self, SamplingError> {
        params.validate()?;
        let seed = params.seed.unwrap_or_else(rand::random);
        Ok(Sampler {
            params,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            scores: Vec::new(),
            probs: Vec::new(),
            candidates: Vec::new(),
            top_p_scratch: TopPScratch::default(),
        })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The seed in use (the drawn one when none was given), so a run can be replayed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Picks the next token from `logits` (one entry per vocabulary id) given the sequence so
    /// far. The caller appends the result to `history`.
    pub fn sample(
        &mut self,
        logits: &[f32],
        history: &TokenHistory,
    ) -> Result<Sampled, SamplingError> {
        let vocab = logits.len();
        if vocab == 0 {
            return Err(SamplingError::EmptyLogits);
        }
        if u32::try_from(vocab).is_err() {
            return Err(SamplingError::VocabTooLarge { len: vocab });
        }
        self.scores.clear();
        self.scores.extend_from_slice(logits);
        apply_penalties(&mut self.scores, &self.params, history)?;

        let greedy = self.params.is_greedy();
        let temperature = if greedy { 1.0 } else { self.params.temperature };
        let total = normalize(&mut self.scores, &mut self.probs, temperature)
            .ok_or(SamplingError::AllMasked { vocab })?;
        let ln_z = total.ln();

        let token = if greedy { argmax(&self.scores) } else { self.draw(total) };
        let logprob_of = |score: f32| (f64::from(score) - ln_z) as f32;
        let top_logprobs = top_n(&self.scores, self.params.top_logprobs)
            .into_iter()
            .map(|(id, score)| (id, logprob_of(score)))
            .collect();
        Ok(Sampled { token, logprob: logprob_of(self.scores[token as usize]), top_logprobs })
    }

    /// Truncates (when asked to) and draws one token; `total` is the sum of all `probs`.
    fn draw(&mut self, total: f64) -> u32 {
        let vocab = self.probs.len();
        let p = &self.params;
        let top_k_active = p.top_k > 0 && p.top_k < vocab;
        let u = uniform(&mut self.rng);
        if !top_k_active && p.top_p >= 1.0 && p.min_p <= 0.0 {
            // No candidate list needed: walk the whole row in id order.
            return pick_in_row(u * total, &self.probs);
        }
        let (scores, probs, candidates) = (&self.scores, &self.probs, &mut self.candidates);
        let scratch = &mut self.top_p_scratch;
        if top_k_active {
            top_k_of_row(scores, p.top_k, candidates);
            let mass = candidates.iter().map(|&i| f64::from(probs[i as usize])).sum();
            top_p(scores, probs, candidates, p.top_p, mass, scratch);
        } else {
            // Without top-k, both top-p and min-p cut a least-likely tail of the whole row, so
            // tokens below either cut can be dropped before any sorting. (Zero-probability
            // tokens can never be drawn and are always dropped.) The most likely token has
            // probability 1 and always survives.
            let floor = top_p_floor(p.top_p, total, vocab).max(p.min_p);
            candidates.clear();
            candidates.extend(
                (0..vocab as u32)
                    .filter(|&i| probs[i as usize] > 0.0 && probs[i as usize] >= floor),
            );
            top_p(scores, probs, candidates, p.top_p, total, scratch);
        }
        min_p(probs, candidates, p.min_p);
        let mass: f64 = candidates.iter().map(|&i| f64::from(probs[i as usize])).sum();
        pick(u * mass, candidates.iter().copied(), probs)
    }
}

/// Turns penalized logits into scores `(l - max) / t` (NaN → -inf; +inf handled as described
/// in the module docs) and `probs = exp(scores)`. Returns the sum of `probs` (≥ 1, as the top
/// score is 0), or `None` when every logit is -inf or NaN.
fn normalize(scores: &mut [f32], probs: &mut Vec<f32>, t: f32) -> Option<f64> {
    let max = max_f32(scores);
    if max == f32::NEG_INFINITY {
        return None;
    }
    if max == f32::INFINITY {
        for s in scores.iter_mut() {
            *s = if *s == f32::INFINITY { 0.0 } else { f32::NEG_INFINITY };
        }
    } else {
        // Dividing (rather than multiplying by 1/t) keeps 0 / t = 0 even if 1/t overflows.
        for s in scores.iter_mut() {
            *s = if s.is_nan() { f32::NEG_INFINITY } else { (*s - max) / t };
        }
    }
    Some(exp_row(scores, probs))
}

/// Index of the largest score, ties to the lowest id (NaNs were already mapped to -inf).
fn argmax(scores: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best as u32
}

/// A uniform f64 in [0, 1) from the top 53 bits of one `u64` (exactly representable, and
/// independent of how `rand` maps integers to floats in any version).
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Walks `ids` accumulating `probs` and returns the first id whose cumulative mass exceeds
/// `target`; rounding can leave `target` just above the final sum, so the last id with
/// non-zero probability is the fallback.
fn pick(target: f64, ids: impl Iterator<Item = u32>, probs: &[f32]) -> u32 {
    let mut cumulative = 0.0f64;
    let mut last = None;
    for id in ids {
        let p = f64::from(probs[id as usize]);
        if p > 0.0 {
            cumulative += p;
            last = Some(id);
            if cumulative > target {
                return id;
            }
        }
    }
    // Callers guarantee at least one id with probability > 0 (the top token has probability 1).
    last.unwrap_or(0)
}

/// [`pick`] over the whole row in id order, skipping blocks whose mass (summed with
/// `sum_f64`, a fixed order) keeps the running total at or below `target`.
fn pick_in_row(target: f64, probs: &[f32]) -> u32 {
    const BLOCK: usize = 256;
    let mut cumulative = 0.0f64;
    let mut last_nonempty = None;
    for (b, block) in probs.chunks(BLOCK).enumerate() {
        let mass = sum_f64(block);
        if mass <= 0.0 {
            continue;
        }
        let start = (b * BLOCK) as u32;
        if cumulative + mass > target {
            let ids = start..start + block.len() as u32;
            return pick(target - cumulative, ids, probs);
        }
        cumulative += mass;
        last_nonempty = Some((start, block.len()));
    }
    // Rounding left `target` at or above the total: the last non-zero id.
    match last_nonempty {
        Some((start, len)) => pick(f64::INFINITY, start..start + len as u32, probs),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_maps_nan_and_handles_infinities() {
        let mut probs = Vec::new();
        let mut s = vec![1.0, f32::NAN, 3.0];
        let total = normalize(&mut s, &mut probs, 0.5).unwrap();
        assert_eq!(s, vec![-4.0, f32::NEG_INFINITY, 0.0]);
        assert!((total - (1.0 + (-4.0f64).exp())).abs() < 1e-6);

        let mut s = vec![f32::INFINITY, 2.0, f32::INFINITY];
        assert_eq!(normalize(&mut s, &mut probs, 1.0), Some(2.0));
        assert_eq!(s, vec![0.0, f32::NEG_INFINITY, 0.0]);

        let mut s = vec![f32::NEG_INFINITY, f32::NAN];
        assert_eq!(normalize(&mut s, &mut probs, 1.0), None);
    }

    #[test]
    fn tiny_temperature_does_not_overflow() {
        let mut probs = Vec::new();
        let mut s = vec![1.0e30, 0.0, 1.0e30];
        let total = normalize(&mut s, &mut probs, f32::MIN_POSITIVE).unwrap();
        assert_eq!(total, 2.0);
        assert!(s.iter().all(|x| !x.is_nan()));
    }

    #[test]
    fn argmax_ties_to_lowest_id() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY, 0.0]), 2);
    }

    #[test]
    fn pick_walks_cumulative_mass() {
        let probs = [0.0, 0.25, 0.5, 0.25];
        assert_eq!(pick(0.0, 0..4, &probs), 1);
        assert_eq!(pick(0.2499, 0..4, &probs), 1);
        assert_eq!(pick(0.25, 0..4, &probs), 2);
        assert_eq!(pick(0.9, 0..4, &probs), 3);
        assert_eq!(pick(1.5, 0..4, &probs), 3, "rounding fallback");
    }

    #[test]
    fn pick_in_row_matches_pick() {
        let probs: Vec<f32> =
            (0..1000).map(|i| if i % 300 < 5 { 0.0 } else { (i % 7) as f32 / 7.0 }).collect();
        let total = sum_f64(&probs);
        for k in 0..200 {
            let target = total * f64::from(k) / 200.0;
            assert_eq!(
                pick_in_row(target, &probs),
                pick(target, 0..1000, &probs),
                "target {target}"
            );
        }
        assert_eq!(pick_in_row(total * 2.0, &probs), 999);
        assert_eq!(pick_in_row(0.0, &[0.0; 600]), 0);
    }

    #[test]
    fn uniform_is_in_unit_interval() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!((0..1000).map(|_| uniform(&mut rng)).all(|u| (0.0..1.0).contains(&u)));
    }
}
