//! Builds a [`crate::Tokenizer`] from GGUF metadata alone (llama.cpp's `tokenizer.ggml.*` keys).
//!
//! Why: a GGUF checkpoint carries its tokenizer in the header, and often nothing else is
//! shipped beside it. The keys (llama.cpp, `llama_vocab::impl::load`):
//! - `tokenizer.ggml.model`: `gpt2` (byte-level BPE: `tokens` + `merges`) or `llama`
//!   (SentencePiece-style BPE: `tokens` + `scores`, `<0xXX>` byte fallback; see `gguf_spm`);
//! - `tokenizer.ggml.pre`: the name of the pre-tokenizer regex set (see `pretokenize`);
//! - `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
//!   6 byte. Control and unknown tokens become *special* added tokens, user-defined ones
//!   non-special added tokens (both are matched in raw text, as llama.cpp does with
//!   `parse_special`); unused rows (embedding padding such as `[PAD151665]`) stay plain
//!   vocabulary entries so their ids decode but never match text;
//! - `bos/eos/eot/eom/padding/unknown_token_id`, `add_bos_token`, `add_eos_token`,
//!   `add_space_prefix`, and `tokenizer.chat_template`.
//!
//! The result is an HF `tokenizers` pipeline equal to the model's `tokenizer.json` (checked
//! against the R1-Distill fixture's goldens).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::{AddedToken, PostProcessorWrapper};
use whale_core::gguf::GgufFile;

use crate::error::TextError;
use crate::pretokenize::{byte_level_pre_tokenizer, regexes_for, SUPPORTED_PRE};
use crate::tokenizer::SpecialTokens;

pub(crate) const TOKEN_TYPE_NORMAL: i32 = 1;
pub(crate) const TOKEN_TYPE_UNKNOWN: i32 = 2;
pub(crate) const TOKEN_TYPE_CONTROL: i32 = 3;
pub(crate) const TOKEN_TYPE_USER_DEFINED: i32 = 4;

pub(crate) struct Built {
    pub hf: tokenizers::Tokenizer,
    pub special: SpecialTokens,
    pub chat_template: Option<String>,
}

pub(crate) fn build(g: &GgufFile) -> Result<Built, TextError> {
    let path = g.path();
    let model: &str = g.get_str("tokenizer.ggml.model")?;
    let tokens = g.get_str_array("tokenizer.ggml.tokens")?;
    let types: Option<&[i32]> = g.get_opt("tokenizer.ggml.token_type")?;
    if let Some(t) = types {
        if t.len() != tokens.len() {
            return Err(TextError::invalid(
                path,
                format!(
                    "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
                    t.len(),
                    tokens.len()
                ),
            ));
        }
    }
    let type_of = |i: usize| types.map_or(TOKEN_TYPE_NORMAL, |t| t[i]);
    let id_key = |key: &str| -> Result<Option<u32>, TextError> {
        let id: Option<u32> = g.get_opt(key)?;
        match id {
            Some(i) if i as usize >= tokens.len() => Err(TextError::invalid(
                path,
                format!("{key} = {i} is outside the vocabulary ({} tokens)", tokens.len()),
            )),
            _ => Ok(id),
        }
    };

    let (mut hf, default_add_bos) = match model {
        "gpt2" => (build_byte_level_bpe(g, tokens)?, false),
        "llama" => {
            let unk = id_key("tokenizer.ggml.unknown_token_id")?;
            (crate::gguf_spm::build(g, tokens, unk.map(|i| tokens[i as usize].as_str()))?, true)
        }
        other => {
            return Err(TextError::UnsupportedGgufModel {
                path: path.to_path_buf(),
                model: other.to_string(),
                supported: "gpt2 (byte-level BPE), llama (SentencePiece BPE)".into(),
            })
        }
    };

    // Added tokens keep their GGUF ids: they are in the model vocabulary already, and the
    // added vocabulary takes an existing id when the content is known.
    let mut special = Vec::new();
    let mut user = Vec::new();
    for (i, tok) in tokens.iter().enumerate() {
        if tok.is_empty() {
            continue;
        }
        match type_of(i) {
            TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNKNOWN => special.push(AddedToken::from(tok.clone(), true)),
            TOKEN_TYPE_USER_DEFINED => user.push(AddedToken::from(tok.clone(), false).normalized(false)),
            _ => {}
        }
    }
    let tk_err = |e: tokenizers::Error| TextError::invalid(path, e.to_string());
    hf.add_special_tokens(special).map_err(tk_err)?;
    hf.add_tokens(user).map_err(tk_err)?;

    let bos_id = id_key("tokenizer.ggml.bos_token_id")?;
    let eos_id = id_key("tokenizer.ggml.eos_token_id")?;
    let mut eos_ids: BTreeSet<u32> = eos_id.into_iter().collect();
    for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
        eos_ids.extend(id_key(key)?);
    }
    let name = |id: Option<u32>| id.map(|i| tokens[i as usize].clone());
    let add_bos = g.get_opt::<bool>("tokenizer.ggml.add_bos_token")?.unwrap_or(default_add_bos);
    let add_eos = g.get_opt::<bool>("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
    let special = SpecialTokens {
        bos_id,
        bos_token: name(bos_id),
        eos_ids,
        eos_token: name(eos_id),
        pad_id: id_key("tokenizer.ggml.padding_token_id")?,
        add_bos: add_bos && bos_id.is_some(),
        add_eos: add_eos && eos_id.is_some(),
    };
    if let Some(pp) = post_processor(&special, path)? {
        hf.with_post_processor(Some(pp));
    }
    let chat_template = g.get_opt::<&str>("tokenizer.chat_template")?.map(str::to_owned);
    Ok(Built { hf, special, chat_template })
}

/// The vocabulary as a token → id map. Should a token appear twice, its first id is kept for
/// encoding (the later id then has no string to decode to).
pub(crate) fn vocab_map(tokens: &[String]) -> Vocab {
    let mut vocab = Vocab::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        vocab.entry(t.clone()).or_insert(i as u32);
    }
    vocab
}

fn build_byte_level_bpe(g: &GgufFile, tokens: &[String]) -> Result<tokenizers::Tokenizer, TextError> {
    let path = g.path();
    let pre: Option<&str> = g.get_opt("tokenizer.ggml.pre")?;
    // llama.cpp falls back to the GPT-2 regex when the key is missing.
    let pre = pre.unwrap_or("default");
    let Some(regexes) = regexes_for(pre) else {
        return Err(TextError::UnsupportedGgufPre {
            path: path.to_path_buf(),
            pre: pre.to_string(),
            supported: SUPPORTED_PRE.to_string(),
        });
    };
    let merges_raw = g.get_str_array("tokenizer.ggml.merges")?;
    let known: std::collections::HashSet<&str> = tokens.iter().map(|t| t.as_str()).collect();
    let mut merges = Vec::with_capacity(merges_raw.len());
    for (i, m) in merges_raw.iter().enumerate() {
        // Split at the first space after the first byte, as llama.cpp does (`find(' ', 1)`).
        let at = m.as_bytes().iter().skip(1).position(|&b| b == b' ').map(|p| p + 1);
        let Some(at) = at else {
            return Err(TextError::invalid(
                path,
                format!("tokenizer.ggml.merges[{i}] = {m:?} is not two tokens separated by a space"),
            ));
        };
        let (a, b) = (&m[..at], &m[at + 1..]);
        // The tokenizers crate panics on a merge whose parts or result are not tokens; a
        // hostile or broken file must get an error naming the merge instead.
        for (what, tok) in [("left part", a.to_string()), ("right part", b.to_string()), ("merged token", format!("{a}{b}"))] {
            if !known.contains(tok.as_str()) {
                return Err(TextError::invalid(
                    path,
                    format!("cannot build the BPE model: tokenizer.ggml.merges[{i}] = {m:?}: the {what} {tok:?} is not in tokenizer.ggml.tokens"),
                ));
            }
        }
        merges.push((a.to_string(), b.to_string()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab_map(tokens), merges)
        .build()
        .map_err(|e| TextError::invalid(path, format!("cannot build the BPE model: {e}")))?;
    let pre_tok = byte_level_pre_tokenizer(regexes).map_err(|e| TextError::invalid(path, e))?;
    let mut hf = tokenizers::Tokenizer::new(bpe);
    hf.with_pre_tokenizer(Some(pre_tok));
    hf.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    Ok(hf)
}

/// A `TemplateProcessing` that adds BOS in front and/or EOS behind, as configured.
fn post_processor(
    s: &SpecialTokens,
    path: &Path,
) -> Result<Option<PostProcessorWrapper>, TextError> {
    let bos = s.bos_id.zip(s.bos_token.as_deref()).filter(|_| s.add_bos);
    let eos = s.eos_ids.iter().next().copied().zip(s.eos_token.as_deref()).filter(|_| s.add_eos);
    if bos.is_none() && eos.is_none() {
        return Ok(None);
    }
    let token = |tok: &str, type_id: u32| json!({"SpecialToken": {"id": tok, "type_id": type_id}});
    let seq = |name: &str, type_id: u32| {
        let mut v = Vec::new();
        v.extend(bos.map(|(_, tok)| token(tok, type_id)));
        v.push(json!({"Sequence": {"id": name, "type_id": type_id}}));
        v.extend(eos.map(|(_, tok)| token(tok, type_id)));
        v
    };
    let single = seq("A", 0);
    let pair = [seq("A", 0), seq("B", 1)].concat();
    let mut specials = serde_json::Map::new();
    for (id, tok) in bos.into_iter().chain(eos) {
        specials.insert(tok.to_string(), json!({"id": tok, "ids": [id], "tokens": [tok]}));
    }
    let v = json!({"type": "TemplateProcessing", "single": single, "pair": pair,
                   "special_tokens": specials});
    serde_json::from_value(v).map(Some).map_err(|e| {
        TextError::invalid(path, format!("cannot build the BOS/EOS post-processor: {e}"))
    })
}
