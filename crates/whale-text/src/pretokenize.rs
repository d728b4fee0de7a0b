//! Pre-tokenizer regexes for byte-level BPE vocabularies read from GGUF, by the value of
//! `tokenizer.ggml.pre` (llama.cpp's `llama_vocab_pre_type`, src/llama-vocab.cpp).
//!
//! A GGUF stores the vocabulary and merges but not the regex that splits text into words
//! before BPE; the converter records only a name for it. Each name maps to the regex list that
//! llama.cpp (and the model's own HF tokenizer.json) uses; the regexes are applied in turn,
//! each splitting the pieces of the previous one and keeping both the matches and the text
//! between them (HF `Split` with `Isolated` behaviour), followed by the byte-level mapping.
//! Regexes are written in HF's original form (`(?i:'s|...)`; llama.cpp spells the
//! case-insensitive group out as `'[sS]|...` only because `std::regex` lacks `(?i:)`).

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

/// Qwen2 (`qwen2`, `deepseek-r1-qwen`, `stablelm2`): like Llama 3 but digits one at a time.
const QWEN2: &[&str] = &[
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];

/// Llama 3 (`llama-bpe`, `llama3`, `dbrx`, `smaug-bpe`): digits in runs of up to three.
const LLAMA3: &[&str] = &[
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];

/// DeepSeek-V3 / R1 (`deepseek-v3`).
const DEEPSEEK_V3: &[&str] = &[
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];

/// DeepSeek LLM / V2 (`deepseek-llm`). Three range ends are written as `\x{..}` escapes: the
/// characters themselves (U+1F7D, U+1FD3, U+1FDB) have NFC forms outside the ranges, and an
/// editor that normalizes the file would silently reverse them.
const DEEPSEEK_LLM: &[&str] = &[
    r"[\r\n]",
    r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\x{1F7D}ᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-\x{1FD3}ῖ-\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
    r"\s+$",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}+",
];

/// DeepSeek Coder (`deepseek-coder`).
const DEEPSEEK_CODER: &[&str] = &[
    r"[\r\n]",
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}",
];

/// The `tokenizer.ggml.pre` values this crate understands, for error messages.
pub(crate) const SUPPORTED_PRE: &str = "default, gpt2, qwen2, deepseek-r1-qwen, stablelm2, \
    llama-bpe, llama3, dbrx, smaug-bpe, deepseek-v3, deepseek-llm, deepseek-coder";

/// The regexes for a `tokenizer.ggml.pre` value; `Some(&[])` means GPT-2's built-in regex
/// (HF `ByteLevel` with `use_regex`), `None` an unknown name.
pub(crate) fn regexes_for(pre: &str) -> Option<&'static [&'static str]> {
    Some(match pre {
        "default" | "gpt2" | "gpt-2" => &[],
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" => QWEN2,
        "llama-bpe" | "llama3" | "dbrx" | "smaug-bpe" => LLAMA3,
        "deepseek-v3" => DEEPSEEK_V3,
        "deepseek-llm" => DEEPSEEK_LLM,
        "deepseek-coder" => DEEPSEEK_CODER,
        _ => return None,
    })
}

/// The HF pre-tokenizer for a regex list: `Sequence[Split(r, Isolated)..., ByteLevel]`.
pub(crate) fn byte_level_pre_tokenizer(
    regexes: &[&str],
) -> Result<PreTokenizerWrapper, String> {
    if regexes.is_empty() {
        return Ok(ByteLevel::new(false, false, true).into());
    }
    let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(regexes.len() + 1);
    for r in regexes {
        let split = Split::new(SplitPattern::Regex(r.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| format!("pre-tokenizer regex {r:?} does not compile: {e}"))?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, false).into());
    Ok(Sequence::new(steps).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_regex_set_compiles() {
        for name in SUPPORTED_PRE.split(", ") {
            let r = regexes_for(name).unwrap_or_else(|| panic!("{name} not mapped"));
            byte_level_pre_tokenizer(r).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(regexes_for("no-such-pre").is_none());
    }
}
