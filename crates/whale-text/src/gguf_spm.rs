//! SentencePiece-style vocabularies from GGUF (`tokenizer.ggml.model = llama`: Llama 1/2,
//! Mistral, Gemma 3, ...).
//!
//! Why: these GGUFs store `tokens` and `scores` (no merges): llama.cpp's SPM tokenizer starts
//! from single characters and repeatedly merges the adjacent pair whose concatenation is the
//! highest-scoring vocabulary entry; characters not in the vocabulary fall back to `<0xXX>`
//! byte tokens. That is a BPE whose merge list is every split `(l, r)` of a vocabulary piece
//! with both halves in the vocabulary, ranked by the piece's score — the same construction as
//! transformers' GGUF converter (`SentencePieceExtractor` / `generate_merges`), so the result
//! matches the model's HF `tokenizer.json`. Spaces become `▁`; with `add_space_prefix` (default
//! true) a `▁` is prepended to each run of text, which is llama.cpp's "space after BOS and
//! after every special token" rule.

use serde_json::json;
use tokenizers::models::bpe::{Vocab, BPE};
use whale_core::gguf::GgufFile;

use crate::error::TextError;
use crate::gguf_vocab::vocab_map;

/// Builds the SPM-style BPE pipeline (model, normalizer, decoder).
pub(crate) fn build(
    g: &GgufFile,
    tokens: &[String],
    unk_token: Option<&str>,
) -> Result<tokenizers::Tokenizer, TextError> {
    let path = g.path();
    let scores = g.get_f32_array("tokenizer.ggml.scores")?;
    if scores.len() != tokens.len() {
        return Err(TextError::invalid(
            path,
            format!(
                "tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}",
                scores.len(),
                tokens.len()
            ),
        ));
    }
    let add_space_prefix = g.get_opt::<bool>("tokenizer.ggml.add_space_prefix")?.unwrap_or(true);

    let vocab = vocab_map(tokens);
    let merges = merges_from_scores(tokens, scores, &vocab);
    let mut builder = BPE::builder().vocab_and_merges(vocab, merges).byte_fallback(true);
    if let Some(unk) = unk_token {
        builder = builder.unk_token(unk.to_string()).fuse_unk(true);
    }
    let bpe = builder
        .build()
        .map_err(|e| TextError::invalid(path, format!("cannot build the BPE model: {e}")))?;

    let replace_space = json!({"type": "Replace", "pattern": {"String": " "}, "content": "▁"});
    let normalizer = if add_space_prefix {
        json!({"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, replace_space]})
    } else {
        replace_space
    };
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": "▁"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_space_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    let decoder = json!({"type": "Sequence", "decoders": decoders});

    let bad = |what: &str, e: serde_json::Error| {
        TextError::invalid(path, format!("cannot build the SentencePiece {what}: {e}"))
    };
    let normalizer: tokenizers::NormalizerWrapper =
        serde_json::from_value(normalizer).map_err(|e| bad("normalizer", e))?;
    let decoder: tokenizers::DecoderWrapper =
        serde_json::from_value(decoder).map_err(|e| bad("decoder", e))?;
    let mut hf = tokenizers::Tokenizer::new(bpe);
    hf.with_normalizer(Some(normalizer))
        .map_err(|e| TextError::invalid(path, e.to_string()))?;
    hf.with_decoder(Some(decoder));
    Ok(hf)
}

/// Every split of every piece into two vocabulary pieces, best score first (ties: vocabulary
/// order, then by the ids of the halves), as transformers' `generate_merges` does.
fn merges_from_scores(
    tokens: &[String],
    scores: &[f32],
    vocab: &Vocab,
) -> Vec<(String, String)> {
    let mut merges: Vec<(u32, u32, f32)> = Vec::new();
    let mut local: Vec<(u32, u32)> = Vec::new();
    for (piece, &score) in tokens.iter().zip(scores) {
        local.clear();
        for (at, _) in piece.char_indices().skip(1) {
            if let (Some(&l), Some(&r)) = (vocab.get(&piece[..at]), vocab.get(&piece[at..])) {
                local.push((l, r));
            }
        }
        local.sort_unstable();
        merges.extend(local.iter().map(|&(l, r)| (l, r, score)));
    }
    // Stable sort keeps the insertion order among equal scores.
    merges.sort_by(|a, b| b.2.total_cmp(&a.2));
    merges
        .into_iter()
        .map(|(l, r, _)| (tokens[l as usize].clone(), tokens[r as usize].clone()))
        .collect()
}
