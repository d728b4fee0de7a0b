//! The knobs of token sampling, with OpenAI's ranges and DeepSeek-R1's published defaults.
//!
//! Why a plain struct (no serde): the server maps its request schema onto this and the CLI its
//! flags; the engine only needs validated numbers. [`SamplingParams::validate`] checks every
//! field against the range the OpenAI API allows, so a bad request is refused with a message
//! naming the field instead of producing NaNs deep inside the sampler.

use std::collections::HashMap;

use crate::error::SamplingError;

/// The largest `top_logprobs` the OpenAI API allows.
pub const MAX_TOP_LOGPROBS: usize = 20;
/// The largest magnitude of a `logit_bias` value the OpenAI API allows.
pub const MAX_LOGIT_BIAS: f32 = 100.0;

/// How to pick the next token. `Default` is plain sampling from the model's distribution
/// (temperature 1, no truncation, no penalties), OpenAI's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Divides the logits; 0 means greedy (argmax, ties to the lowest id). Range [0, 2].
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose mass reaches `top_p`. Range (0, 1];
    /// 1 disables.
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` times the top token's. Range [0, 1];
    /// 0 disables.
    pub min_p: f32,
    /// HF/CTRL repetition penalty over tokens seen in prompt and output: positive logits are
    /// divided by it, negative ones multiplied. Must be > 0; 1 disables.
    pub repetition_penalty: f32,
    /// OpenAI frequency penalty: subtracts `count × frequency_penalty` for each token generated
    /// so far (prompt excluded). Range [-2, 2].
    pub frequency_penalty: f32,
    /// OpenAI presence penalty: subtracts `presence_penalty` once for each token generated so
    /// far (prompt excluded). Range [-2, 2].
    pub presence_penalty: f32,
    /// Token id → value added to its logit (after the penalties). Values in [-100, 100]; -100
    /// effectively bans a token, +100 effectively forces it.
    pub logit_bias: HashMap<u32, f32>,
    /// Seed of the sampler's RNG: the same seed, logits and history give the same tokens on
    /// every platform. `None` draws a seed from the OS.
    pub seed: Option<u64>,
    /// Most tokens to generate; `None` leaves the limit to the context size. Enforced by the
    /// generation loop, not the sampler. Must be ≥ 1 when set.
    pub max_tokens: Option<usize>,
    /// How many most likely alternatives to report with each token. Range [0, 20].
    pub top_logprobs: usize,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            logit_bias: HashMap::new(),
            seed: None,
            max_tokens: None,
            top_logprobs: 0,
        }
    }
}

impl SamplingParams {
    /// DeepSeek-R1's recommended settings: temperature 0.6, top-p 0.95 (greedy decoding makes
    /// R1 loop and repeat itself, per its model card).
    pub fn r1_defaults() -> Self {
        SamplingParams { temperature: 0.6, top_p: 0.95, ..Self::default() }
    }

    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplingParams { temperature: 0.0, ..Self::default() }
    }

    /// Whether the sampler takes the argmax instead of drawing.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Checks every field against its allowed range; the error names the first bad field.
    pub fn validate(&self) -> Result<(), SamplingError> {
        check_range("temperature", self.temperature, 0.0, 2.0, "a number in [0, 2]")?;
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(invalid("top_p", self.top_p, "a number in (0, 1]"));
        }
        check_range("min_p", self.min_p, 0.0, 1.0, "a number in [0, 1]")?;
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(invalid(
                "repetition_penalty",
                self.repetition_penalty,
                "a finite number > 0 (1 disables)",
            ));
        }
        check_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0, "a number in [-2, 2]")?;
        check_range("presence_penalty", self.presence_penalty, -2.0, 2.0, "a number in [-2, 2]")?;
        // Sorted so that the reported entry does not depend on hash order.
        let mut biases: Vec<(&u32, &f32)> = self.logit_bias.iter().collect();
        biases.sort_by_key(|(token, _)| **token);
        for (token, &bias) in biases {
            if !(-MAX_LOGIT_BIAS..=MAX_LOGIT_BIAS).contains(&bias) {
                return Err(invalid(
                    &format!("logit_bias[{token}]"),
                    bias,
                    "a number in [-100, 100]",
                ));
            }
        }
        if self.max_tokens == Some(0) {
            return Err(invalid("max_tokens", 0, "at least 1 (or unset)"));
        }
        if self.top_logprobs > MAX_TOP_LOGPROBS {
            return Err(invalid("top_logprobs", self.top_logprobs, "an integer in [0, 20]"));
        }
        Ok(())
    }
}

fn invalid(field: &str, value: impl std::fmt::Display, expected: &str) -> SamplingError {
    SamplingError::InvalidParam {
        field: field.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Inclusive range check that also refuses NaN (every comparison with NaN is false).
fn check_range(
    field: &str,
    value: f32,
    lo: f32,
    hi: f32,
    expected: &str,
) -> Result<(), SamplingError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, value, expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: SamplingParams) -> String {
        p.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        SamplingParams::default().validate().unwrap();
        SamplingParams::greedy().validate().unwrap();
        let r1 = SamplingParams::r1_defaults();
        r1.validate().unwrap();
        assert_eq!((r1.temperature, r1.top_p), (0.6, 0.95));
        assert!(!r1.is_greedy());
        assert!(SamplingParams::greedy().is_greedy());
    }

    #[test]
    fn errors_name_field_value_and_range() {
        let d = SamplingParams::default;
        assert_eq!(
            err(SamplingParams { temperature: 2.5, ..d() }),
            "invalid sampling parameter temperature = 2.5: expected a number in [0, 2]"
        );
        assert!(err(SamplingParams { temperature: -0.1, ..d() }).contains("temperature = -0.1"));
        assert!(err(SamplingParams { temperature: f32::NAN, ..d() }).contains("temperature = NaN"));
        assert_eq!(
            err(SamplingParams { top_p: 0.0, ..d() }),
            "invalid sampling parameter top_p = 0: expected a number in (0, 1]"
        );
        assert!(err(SamplingParams { top_p: 1.01, ..d() }).contains("top_p = 1.01"));
        assert!(err(SamplingParams { min_p: 1.5, ..d() })
            .contains("min_p = 1.5: expected a number in [0, 1]"));
        assert!(err(SamplingParams { repetition_penalty: 0.0, ..d() })
            .contains("repetition_penalty = 0: expected a finite number > 0"));
        assert!(err(SamplingParams { repetition_penalty: f32::INFINITY, ..d() })
            .contains("repetition_penalty = inf"));
        assert!(err(SamplingParams { frequency_penalty: -2.1, ..d() })
            .contains("frequency_penalty = -2.1: expected a number in [-2, 2]"));
        assert!(err(SamplingParams { presence_penalty: 3.0, ..d() })
            .contains("presence_penalty = 3: expected a number in [-2, 2]"));
        assert_eq!(
            err(SamplingParams { top_logprobs: 21, ..d() }),
            "invalid sampling parameter top_logprobs = 21: expected an integer in [0, 20]"
        );
        assert!(err(SamplingParams { max_tokens: Some(0), ..d() }).contains("max_tokens = 0"));
    }

    #[test]
    fn logit_bias_entries_are_checked() {
        let mut p = SamplingParams::default();
        p.logit_bias.insert(7, 100.0);
        p.logit_bias.insert(3, -100.0);
        p.validate().unwrap();
        p.logit_bias.insert(9, 150.0);
        p.logit_bias.insert(5, f32::NAN);
        // The lowest bad id is reported, whatever the hash order.
        assert_eq!(
            err(p),
            "invalid sampling parameter logit_bias[5] = NaN: expected a number in [-100, 100]"
        );
    }

    #[test]
    fn boundaries_are_inclusive_where_openai_allows() {
        let d = SamplingParams::default;
        for p in [
            SamplingParams { temperature: 2.0, ..d() },
            SamplingParams { top_p: 1.0, min_p: 1.0, ..d() },
            SamplingParams { frequency_penalty: -2.0, presence_penalty: 2.0, ..d() },
            SamplingParams { top_logprobs: 20, max_tokens: Some(1), ..d() },
            SamplingParams { repetition_penalty: 1e-3, ..d() },
        ] {
            p.validate().unwrap();
        }
    }
}
