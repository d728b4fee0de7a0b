//! Fill-in-the-middle for `/v1/completions` with `suffix` (DeepSeek's beta FIM endpoint):
//! the prompt and suffix in the model's FIM format, prefix-suffix-middle order (PSM, the
//! order DeepSeek-V3 was trained with, and Qwen's), so the model writes the middle.
//!
//! - DeepSeek: `<｜fim▁begin｜>PREFIX<｜fim▁hole｜>SUFFIX<｜fim▁end｜>` (after BOS)
//! - Qwen 2.5 (R1-Distill-Qwen's vocabulary): `<|fim_prefix|>PREFIX<|fim_suffix|>SUFFIX<|fim_middle|>`
//!
//! The markers must be single tokens of the served vocabulary: a tokenizer without them gets
//! a 400 that names what is missing, since spelling them out as text would not be FIM.

use crate::error::ApiError;
use whale_text::Tokenizer;

/// One FIM token family: (begin, hole, end) in PSM order.
struct FimFormat {
    family: &'static str,
    prefix: &'static str,
    suffix: &'static str,
    middle: &'static str,
}

const FORMATS: [FimFormat; 2] = [
    FimFormat {
        family: "DeepSeek",
        prefix: "<｜fim▁begin｜>",
        suffix: "<｜fim▁hole｜>",
        middle: "<｜fim▁end｜>",
    },
    FimFormat {
        family: "Qwen",
        prefix: "<|fim_prefix|>",
        suffix: "<|fim_suffix|>",
        middle: "<|fim_middle|>",
    },
];

/// The FIM prompt ids for `prefix` … `suffix`.
pub fn fim_prompt(tok: &Tokenizer, prefix: &str, suffix: &str) -> Result<Vec<u32>, ApiError> {
    let id = |t: &str| tok.token_to_id(t);
    for f in &FORMATS {
        let (Some(p), Some(s), Some(m)) = (id(f.prefix), id(f.suffix), id(f.middle)) else {
            continue;
        };
        let mut ids = Vec::new();
        if tok.special_tokens().add_bos {
            ids.extend(tok.bos_id());
        }
        ids.push(p);
        ids.extend(tok.encode(prefix, false)?);
        ids.push(s);
        ids.extend(tok.encode(suffix, false)?);
        ids.push(m);
        return Ok(ids);
    }
    let wanted: Vec<String> = FORMATS
        .iter()
        .map(|f| {
            let missing: Vec<&str> = [f.prefix, f.suffix, f.middle]
                .into_iter()
                .filter(|t| id(t).is_none())
                .collect();
            format!(
                "{}'s {} (missing: {})",
                f.family,
                [f.prefix, f.suffix, f.middle].join(" "),
                missing.join(" ")
            )
        })
        .collect();
    Err(ApiError::invalid(
        "suffix",
        format!(
            "fill-in-the-middle (`suffix`) needs FIM tokens in the served tokenizer, and it has none: expected {}",
            wanted.join(", or ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> Tokenizer {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name);
        Tokenizer::from_dir(dir).unwrap()
    }

    #[test]
    fn qwen_fim_tokens_make_a_psm_prompt() {
        let tok = fixture("tokenizer_r1_distill");
        let ids = fim_prompt(&tok, "def add(a, b):\n    ", "\n    return c").unwrap();
        let t = |s: &str| tok.token_to_id(s).unwrap();
        let (p, s, m) = (
            t("<|fim_prefix|>"),
            t("<|fim_suffix|>"),
            t("<|fim_middle|>"),
        );
        let at = |id: u32| ids.iter().position(|&x| x == id).unwrap();
        assert!(at(p) < at(s) && at(s) < at(m));
        assert_eq!(*ids.last().unwrap(), m, "the model writes the middle next");
        let text = tok.decode(&ids, false).unwrap();
        assert!(
            text.ends_with(
                "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n    return c<|fim_middle|>"
            ),
            "{text:?}"
        );
    }

    #[test]
    fn a_tokenizer_without_fim_tokens_is_told_which_are_missing() {
        let e = fim_prompt(&fixture("tiny_chat_tokenizer"), "a", "b").unwrap_err();
        let msg = e.to_string();
        for t in [
            "<｜fim▁begin｜>",
            "<｜fim▁hole｜>",
            "<｜fim▁end｜>",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
        ] {
            assert!(msg.contains(t), "{msg}");
        }
    }
}
