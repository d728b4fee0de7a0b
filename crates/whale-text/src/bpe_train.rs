//! Training a byte-level BPE tokenizer with the DeepSeek-R1 special tokens and chat template
//! (`whale tokenizer train`), so a model trained from scratch chats, reasons and serves like an
//! R1 model.
//!
//! Layout of the result (as the R1-Distill tokenizers, and `tests/fixtures/tiny_chat_tokenizer`):
//! ids 0–3 are the special tokens `<｜begin▁of▁sentence｜>`, `<｜end▁of▁sentence｜>`,
//! `<｜User｜>`, `<｜Assistant｜>`; then the 256 byte symbols and the learned merges; the last two
//! ids are `<think>` and `</think>` (added tokens, not special: they are part of the model's
//! visible output). Text is split before BPE by the pre-tokenizer regexes of a GGUF
//! `tokenizer.ggml.pre` name (`default` = GPT-2's, `qwen2`, `deepseek-v3`, ...), so the result
//! converts to GGUF and llama.cpp splits text the same way.

use std::path::Path;

use serde_json::json;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, TokenizerBuilder, TokenizerImpl};

use crate::error::TextError;
use crate::pretokenize::{byte_level_pre_tokenizer, regexes_for, SUPPORTED_PRE};

/// The special tokens, in id order.
pub const R1_SPECIAL: [&str; 4] = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"];

/// DeepSeek-R1's chat template with the updated generation prompt `<｜Assistant｜><think>\n`.
pub const R1_CHAT_TEMPLATE: &str = include_str!("templates/deepseek_r1.jinja");

#[derive(Debug, Clone)]
pub struct BpeTrainConfig {
    /// Total vocabulary, special and think tokens included.
    pub vocab_size: usize,
    /// Pairs seen fewer times are not merged.
    pub min_frequency: u64,
    /// A `tokenizer.ggml.pre` name (see `pretokenize.rs`).
    pub pre: String,
}

impl Default for BpeTrainConfig {
    fn default() -> Self {
        Self { vocab_size: 8192, min_frequency: 2, pre: "deepseek-v3".into() }
    }
}

fn invalid(message: String) -> TextError {
    TextError::InvalidTokenizer { path: "<tokenizer training>".into(), message }
}

/// Trains on `texts` (one document each). The vocabulary can come out smaller than asked
/// when the text has too few distinct pairs to merge (see `get_vocab_size`).
pub fn train_bpe<I, S>(texts: I, cfg: &BpeTrainConfig) -> Result<tokenizers::Tokenizer, TextError>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    // 4 special + 256 bytes + 2 think tokens, and at least one merge.
    let smallest = R1_SPECIAL.len() + 256 + 2 + 1;
    if cfg.vocab_size < smallest {
        return Err(invalid(format!(
            "vocab_size {} is too small: the special tokens, the 256 bytes and <think>/</think> take {}",
            cfg.vocab_size,
            smallest - 1
        )));
    }
    let regexes = regexes_for(&cfg.pre)
        .ok_or_else(|| invalid(format!("unknown pre-tokenizer {:?}; use one of {SUPPORTED_PRE}", cfg.pre)))?;
    let special: Vec<AddedToken> = R1_SPECIAL.iter().map(|t| AddedToken::from(*t, true)).collect();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(cfg.vocab_size - 2)
        .min_frequency(cfg.min_frequency)
        .special_tokens(special)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .show_progress(false)
        .build();
    let mut tok: TokenizerImpl<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, ByteLevel> =
        TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_pre_tokenizer(Some(byte_level_pre_tokenizer(regexes).map_err(invalid)?))
        .with_decoder(Some(ByteLevel::default()))
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    tok.train(&mut trainer, texts).map_err(|e| invalid(format!("training failed: {e}")))?;
    let mut tok: tokenizers::Tokenizer = tok.into();
    tok.add_tokens(vec![
        AddedToken::from("<think>", false).normalized(false),
        AddedToken::from("</think>", false).normalized(false),
    ])
    .map_err(|e| invalid(format!("adding <think>/</think>: {e}")))?;
    Ok(tok)
}

/// Writes `tokenizer.json` and `tokenizer_config.json` (BOS/EOS, R1's chat template) into
/// `dir`, which `Tokenizer::from_dir` and HF transformers load.
pub fn save_r1_tokenizer(tok: &tokenizers::Tokenizer, dir: &Path, model_max_length: usize) -> Result<(), TextError> {
    std::fs::create_dir_all(dir).map_err(|e| TextError::io(dir, e))?;
    let path = dir.join("tokenizer.json");
    tok.save(&path, false).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    let config = json!({
        "add_bos_token": true,
        "add_eos_token": false,
        "bos_token": R1_SPECIAL[0],
        "eos_token": R1_SPECIAL[1],
        "pad_token": R1_SPECIAL[1],
        "chat_template": R1_CHAT_TEMPLATE,
        "model_max_length": model_max_length,
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    let path = dir.join("tokenizer_config.json");
    let text = serde_json::to_string_pretty(&config).map_err(|e| invalid(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| TextError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tokenizer;

    /// Arithmetic sentences plus made-up words from syllables: enough distinct pairs to merge.
    fn corpus() -> Vec<String> {
        let syl = ["ka", "ri", "to", "mu", "se", "lo", "pa", "ne"];
        let word = |i: usize| format!("{}{}{}", syl[i % 8], syl[(i / 8) % 8], syl[(i / 64) % 8]);
        let mut v: Vec<String> = (1..200).map(|a| format!("What is {a} plus 7? Let us think. {a} + 7 = {}.", a + 7)).collect();
        v.extend((0..512).map(|i| format!("{} {} {}", word(i), word(i * 7 + 3), word(i))));
        v
    }

    #[test]
    fn trains_an_r1_tokenizer_that_round_trips_and_chats() {
        let cfg = BpeTrainConfig { vocab_size: 300, min_frequency: 2, pre: "qwen2".into() };
        let hf = train_bpe(corpus().into_iter(), &cfg).unwrap();
        assert_eq!(hf.get_vocab_size(true), 300);
        for (i, t) in R1_SPECIAL.iter().enumerate() {
            assert_eq!(hf.token_to_id(t), Some(i as u32), "{t}");
        }
        assert_eq!((hf.token_to_id("<think>"), hf.token_to_id("</think>")), (Some(298), Some(299)));
        let dir = tempfile::tempdir().unwrap();
        save_r1_tokenizer(&hf, dir.path(), 1024).unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        let text = "What is 12 plus 7? ünïcode ✓";
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        // Merges were learned: the training text takes fewer tokens than bytes.
        assert!(tok.encode("What is 12 plus 7?", false).unwrap().len() < 10);
        assert_eq!(tok.bos_id(), Some(0));
        assert!(tok.is_eos(1));
        let opts = crate::RenderOptions { add_generation_prompt: true, ..Default::default() };
        let chat = tok.apply_chat_template(&[crate::ChatMessage::user("hi")], &opts).unwrap();
        assert!(chat.text.ends_with("<｜Assistant｜><think>\n") && chat.think_prefilled, "{chat:?}");
    }

    #[test]
    fn bad_settings_are_errors() {
        let small = BpeTrainConfig { vocab_size: 100, ..Default::default() };
        assert!(train_bpe(corpus().into_iter(), &small).unwrap_err().to_string().contains("too small"));
        let pre = BpeTrainConfig { pre: "nope".into(), ..Default::default() };
        assert!(train_bpe(corpus().into_iter(), &pre).unwrap_err().to_string().contains("unknown pre-tokenizer"));
    }
}
