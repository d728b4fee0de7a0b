//! A tokenizer as GGUF metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`): the inverse
//! of `gguf_vocab`, with the keys and value types llama.cpp's `convert_hf_to_gguf.py` writes
//! for byte-level BPE vocabularies (`_set_vocab_gpt2`).
//!
//! - `tokens` has exactly the model's `vocab_size` entries: ids the tokenizer does not use
//!   (embedding rows padded past the vocabulary) become `[PAD{id}]`, type 5 (unused), as the
//!   converter writes them.
//! - Added tokens keep their ids; special ones are type 3 (control), others 4 (user-defined).
//! - `tokenizer.ggml.pre` is not a hash of the tokenizer's output, as in the converter, but
//!   the name whose regex list equals the `Split` regexes of the tokenizer.json (the same
//!   regex table the reader uses, so a written file always reads back). A pre-tokenizer with
//!   no known name is an error rather than a file llama.cpp would split differently.

use std::collections::BTreeMap;

use serde_json::Value;
use whale_core::gguf::{GgufArray, GgufValue};

use crate::error::TextError;
use crate::pretokenize::regexes_for;
use crate::Tokenizer;

const TOKEN_TYPE_NORMAL: i32 = 1;
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;
const TOKEN_TYPE_UNUSED: i32 = 5;

/// The canonical names written for `tokenizer.ggml.pre`, tried in this order.
const PRE_NAMES: &[&str] = &["default", "qwen2", "llama-bpe", "deepseek-v3", "deepseek-llm", "deepseek-coder"];

/// The `tokenizer.*` metadata of `tok` for a model with `vocab_size` embedding rows.
pub fn gguf_metadata(tok: &Tokenizer, vocab_size: usize) -> Result<Vec<(String, GgufValue)>, TextError> {
    let path = tok.source();
    let bad = |message: String| TextError::invalid(path, format!("cannot write it as GGUF: {message}"));
    let json: Value = serde_json::from_str(&tok.hf().to_string(false).map_err(|e| bad(e.to_string()))?)
        .map_err(|e| bad(e.to_string()))?;
    let model = &json["model"];
    if model["type"] != "BPE" {
        return Err(bad(format!("model type {} is not BPE; Whale writes byte-level BPE vocabularies", model["type"])));
    }
    let pre = pre_name(&json["pre_tokenizer"]).map_err(bad)?;

    // id -> (token, type)
    let mut by_id: BTreeMap<u32, (String, i32)> = BTreeMap::new();
    let vocab = model["vocab"].as_object().ok_or_else(|| bad("model.vocab is not an object".into()))?;
    for (token, id) in vocab {
        let id = id.as_u64().and_then(|i| u32::try_from(i).ok()).ok_or_else(|| bad(format!("vocab id of {token:?} is {id}")))?;
        by_id.insert(id, (token.clone(), TOKEN_TYPE_NORMAL));
    }
    for added in json["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (added["id"].as_u64(), added["content"].as_str()) else {
            return Err(bad(format!("added token {added} has no id or content")));
        };
        let ty = if added["special"].as_bool().unwrap_or(false) { TOKEN_TYPE_CONTROL } else { TOKEN_TYPE_USER_DEFINED };
        by_id.insert(id as u32, (content.to_string(), ty));
    }
    if let Some((&max, (token, _))) = by_id.last_key_value() {
        if max as usize >= vocab_size {
            return Err(bad(format!(
                "token {token:?} has id {max}, outside the model's vocab_size {vocab_size} (embedding rows)"
            )));
        }
    }
    let mut tokens = Vec::with_capacity(vocab_size);
    let mut types = Vec::with_capacity(vocab_size);
    for id in 0..vocab_size as u32 {
        let (t, ty) = by_id.remove(&id).unwrap_or_else(|| (format!("[PAD{id}]"), TOKEN_TYPE_UNUSED));
        tokens.push(t);
        types.push(ty);
    }

    let mut merges = Vec::new();
    for (i, m) in model["merges"].as_array().into_iter().flatten().enumerate() {
        merges.push(match m {
            Value::String(s) => s.clone(),
            Value::Array(pair) if pair.len() == 2 && pair.iter().all(Value::is_string) => {
                format!("{} {}", pair[0].as_str().unwrap_or_default(), pair[1].as_str().unwrap_or_default())
            }
            other => return Err(bad(format!("model.merges[{i}] = {other} is neither \"a b\" nor [\"a\", \"b\"]"))),
        });
    }

    let s = tok.special_tokens();
    let mut kv = vec![
        ("tokenizer.ggml.model".to_string(), GgufValue::String("gpt2".into())),
        ("tokenizer.ggml.pre".to_string(), GgufValue::String(pre.into())),
        ("tokenizer.ggml.tokens".to_string(), GgufValue::Array(GgufArray::String(tokens))),
        ("tokenizer.ggml.token_type".to_string(), GgufValue::Array(GgufArray::I32(types))),
        ("tokenizer.ggml.merges".to_string(), GgufValue::Array(GgufArray::String(merges))),
    ];
    let mut id = |key: &str, v: Option<u32>| {
        if let Some(v) = v {
            kv.push((format!("tokenizer.ggml.{key}"), GgufValue::U32(v)));
        }
    };
    id("bos_token_id", s.bos_id);
    // The first EOS id is the one the EOS token names; others (e.g. `<|im_end|>`) are EOT.
    let eos = s.eos_token.as_deref().and_then(|t| tok.token_to_id(t)).or_else(|| s.eos_ids.iter().next().copied());
    id("eos_token_id", eos);
    id("eot_token_id", s.eos_ids.iter().copied().find(|&i| Some(i) != eos));
    id("padding_token_id", s.pad_id);
    kv.push(("tokenizer.ggml.add_bos_token".into(), GgufValue::Bool(s.add_bos || has_bos_post_processor(&json))));
    kv.push(("tokenizer.ggml.add_eos_token".into(), GgufValue::Bool(s.add_eos)));
    if let Some(t) = tok.chat_template() {
        kv.push(("tokenizer.chat_template".into(), GgufValue::String(t.to_string())));
    }
    Ok(kv)
}

/// Whether the tokenizer.json's post-processor puts a token in front of every sequence
/// (R1-Distill and Llama 3 add BOS this way, not through `add_bos_token`).
fn has_bos_post_processor(json: &Value) -> bool {
    let first = |pp: &Value| pp["single"].as_array().and_then(|a| a.first()).is_some_and(|e| e.get("SpecialToken").is_some());
    match json["post_processor"]["type"].as_str() {
        Some("TemplateProcessing") => first(&json["post_processor"]),
        Some("Sequence") => json["post_processor"]["processors"].as_array().into_iter().flatten().any(first),
        _ => false,
    }
}

/// The `tokenizer.ggml.pre` name of a tokenizer.json `pre_tokenizer`.
fn pre_name(pre: &Value) -> Result<&'static str, String> {
    let steps: Vec<&Value> = match pre["type"].as_str() {
        Some("Sequence") => pre["pretokenizers"].as_array().map(|a| a.iter().collect()).unwrap_or_default(),
        Some(_) => vec![pre],
        None => return Err("the tokenizer has no pre-tokenizer; byte-level BPE needs one".into()),
    };
    let mut regexes = Vec::new();
    let mut byte_level_regex = None;
    for step in &steps {
        match step["type"].as_str() {
            Some("Split") => match step["pattern"]["Regex"].as_str() {
                Some(r) => regexes.push(r.to_string()),
                None => return Err(format!("pre-tokenizer step {step} is not a regex Split")),
            },
            Some("ByteLevel") => byte_level_regex = Some(step["use_regex"].as_bool().unwrap_or(true)),
            Some("Digits") if step["individual_digits"].as_bool() == Some(true) => regexes.push(r"\p{N}".into()),
            _ => return Err(format!("pre-tokenizer step {step} has no GGUF equivalent")),
        }
    }
    match byte_level_regex {
        None => return Err("the pre-tokenizer has no ByteLevel step: not a byte-level BPE".into()),
        Some(true) if regexes.is_empty() => return Ok("default"),
        Some(true) => return Err("a ByteLevel step with its own GPT-2 regex after Split regexes has no GGUF name".into()),
        Some(false) => {}
    }
    PRE_NAMES
        .iter()
        .find(|name| regexes_for(name).is_some_and(|known| known.len() == regexes.len() && known.iter().zip(&regexes).all(|(a, b)| a == b)))
        .copied()
        .ok_or_else(|| format!("its pre-tokenizer regexes {regexes:?} match none of the GGUF names {}", PRE_NAMES.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pre_names_from_tokenizer_json() {
        assert_eq!(pre_name(&json!({"type": "ByteLevel", "use_regex": true})), Ok("default"));
        let qwen = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regexes_for("qwen2").unwrap()[0]}, "behavior": "Isolated"},
            {"type": "ByteLevel", "use_regex": false}]});
        assert_eq!(pre_name(&qwen), Ok("qwen2"));
        let odd = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\s+"}}, {"type": "ByteLevel", "use_regex": false}]});
        assert!(pre_name(&odd).unwrap_err().contains("match none of the GGUF names"));
        assert!(pre_name(&json!({"type": "Whitespace"})).unwrap_err().contains("no GGUF equivalent"));
        assert!(pre_name(&Value::Null).unwrap_err().contains("no pre-tokenizer"));
    }
}
