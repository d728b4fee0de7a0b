//! Repetition, frequency and presence penalties and the logit bias, applied to one logits row.
//!
//! Why this order: the penalties are defined on the model's own scores (HF applies the
//! repetition penalty to raw logits; OpenAI subtracts its penalties from them), so they come
//! first; the logit bias is added last so that a bias means exactly "this much added to the
//! final logit", whatever the penalties did (a +100 bias forces a token even if it was repeated).
//! Temperature and truncation come after all of these (see `sampling.rs`).
//!
//! Ids in the history that are outside the logits row are skipped (they cannot be penalized);
//! a `logit_bias` id outside it is a request error and reported as such.

use crate::error::SamplingError;
use crate::sampling_params::SamplingParams;
use crate::token_history::TokenHistory;

/// Applies, in order: the HF repetition penalty over tokens seen in prompt + output, the OpenAI
/// frequency and presence penalties over generated tokens, then the logit bias.
pub fn apply_penalties(
    logits: &mut [f32],
    params: &SamplingParams,
    history: &TokenHistory,
) -> Result<(), SamplingError> {
    let vocab = logits.len();
    // Check the bias first so that an error leaves the row untouched.
    if let Some(&token) = params.logit_bias.keys().filter(|&&t| t as usize >= vocab).min() {
        return Err(SamplingError::BiasTokenOutOfRange { token, vocab });
    }

    let rep = params.repetition_penalty;
    if rep != 1.0 {
        for id in history.seen() {
            if let Some(l) = logits.get_mut(id as usize) {
                // HF/CTRL: shrink positive logits and push negative ones further down, so the
                // penalty always makes the token less likely.
                *l = if *l < 0.0 { *l * rep } else { *l / rep };
            }
        }
    }

    let (freq, pres) = (params.frequency_penalty, params.presence_penalty);
    if freq != 0.0 || pres != 0.0 {
        for (id, count) in history.output_counts() {
            if let Some(l) = logits.get_mut(id as usize) {
                // OpenAI: mu[j] -= c[j] * alpha_frequency + (c[j] > 0) * alpha_presence.
                *l -= count as f32 * freq + pres;
            }
        }
    }

    for (&id, &bias) in &params.logit_bias {
        logits[id as usize] += bias;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SamplingParams {
        SamplingParams::default()
    }

    #[test]
    fn neutral_params_change_nothing() {
        let mut l = vec![1.0, -2.0, 0.5];
        apply_penalties(&mut l, &params(), &TokenHistory::new(vec![0, 1, 2])).unwrap();
        assert_eq!(l, vec![1.0, -2.0, 0.5]);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        // Token 0 only in the prompt, token 1 only in the output, token 3 never seen.
        let mut h = TokenHistory::new(vec![0, 0]);
        h.push(1);
        h.push(2);
        let p = SamplingParams { repetition_penalty: 2.0, ..params() };
        let mut l = vec![4.0, -3.0, 0.0, 5.0];
        apply_penalties(&mut l, &p, &h).unwrap();
        assert_eq!(l, vec![2.0, -6.0, 0.0, 5.0]);
    }

    #[test]
    fn frequency_penalty_scales_with_output_count_only() {
        let mut h = TokenHistory::new(vec![2, 2, 2]);
        h.extend([0, 0, 0, 1]);
        let p = SamplingParams { frequency_penalty: 0.5, ..params() };
        let mut l = vec![1.0, 1.0, 1.0];
        apply_penalties(&mut l, &p, &h).unwrap();
        // 1 - 3*0.5, 1 - 1*0.5, prompt-only token untouched.
        assert_eq!(l, vec![-0.5, 0.5, 1.0]);
    }

    #[test]
    fn presence_penalty_is_applied_once_per_generated_token() {
        let mut h = TokenHistory::new(vec![2]);
        h.extend([0, 0, 0, 1]);
        let p = SamplingParams { presence_penalty: 1.5, ..params() };
        let mut l = vec![1.0, 1.0, 1.0];
        apply_penalties(&mut l, &p, &h).unwrap();
        assert_eq!(l, vec![-0.5, -0.5, 1.0]);
        // Negative values encourage repetition.
        let p = SamplingParams { presence_penalty: -1.0, frequency_penalty: -0.25, ..params() };
        let mut l = vec![1.0, 1.0, 1.0];
        apply_penalties(&mut l, &p, &h).unwrap();
        assert_eq!(l, vec![2.75, 2.25, 1.0]);
    }

    #[test]
    fn penalties_combine_in_order_then_bias() {
        let mut h = TokenHistory::new(vec![]);
        h.extend([0, 0]);
        let mut p = SamplingParams {
            repetition_penalty: 2.0,
            frequency_penalty: 1.0,
            presence_penalty: 0.5,
            ..params()
        };
        p.logit_bias.insert(0, 10.0);
        let mut l = vec![6.0, 0.0];
        apply_penalties(&mut l, &p, &h).unwrap();
        // 6 / 2 = 3; 3 - 2*1 - 0.5 = 0.5; + 10.
        assert_eq!(l, vec![10.5, 0.0]);
    }

    #[test]
    fn bias_out_of_range_is_an_error_and_leaves_row_untouched() {
        let mut p = params();
        p.logit_bias.insert(1, 5.0);
        p.logit_bias.insert(9, 5.0);
        p.logit_bias.insert(4, 5.0);
        let mut l = vec![0.0; 3];
        let err = apply_penalties(&mut l, &p, &TokenHistory::default()).unwrap_err();
        assert_eq!(err, SamplingError::BiasTokenOutOfRange { token: 4, vocab: 3 });
        assert!(err.to_string().contains("token id 4"));
        assert_eq!(l, vec![0.0; 3]);
    }

    #[test]
    fn history_ids_outside_the_row_are_skipped() {
        let mut h = TokenHistory::new(vec![100]);
        h.push(200);
        let p = SamplingParams { repetition_penalty: 1.5, frequency_penalty: 1.0, ..params() };
        let mut l = vec![1.0, 2.0];
        apply_penalties(&mut l, &p, &h).unwrap();
        assert_eq!(l, vec![1.0, 2.0]);
    }
}
