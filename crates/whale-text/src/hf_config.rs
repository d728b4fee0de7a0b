//! The JSON files that sit beside an HF `tokenizer.json` and complete it: `tokenizer_config.json`
//! (chat template, bos/eos/pad tokens, `add_bos_token`), `chat_template.jinja` (newer
//! transformers save the template there), `generation_config.json` and `config.json` (the
//! eos ids generation stops on, which may be several).
//!
//! All of them are optional; a file that exists but is not valid JSON is an error naming it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::TextError;

/// What the side files say; every field is optional.
#[derive(Debug, Default, Clone)]
pub(crate) struct SideConfig {
    pub chat_template: Option<String>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    /// From generation_config.json, then config.json.
    pub eos_token_ids: Vec<u32>,
    pub bos_token_id: Option<u32>,
}

/// Reads a JSON file if it exists.
pub(crate) fn read_json_opt(path: &Path) -> Result<Option<Value>, TextError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TextError::io(path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| TextError::Json { path: path.to_path_buf(), message: e.to_string() })
}

/// A special-token field: a plain string, or an `AddedToken` object with `content`.
fn token_field(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// `eos_token_id` as an integer or a list of integers.
fn id_list(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().and_then(|x| u32::try_from(x).ok()).into_iter().collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
            .collect(),
        _ => Vec::new(),
    }
}

/// `chat_template` as a string, or as a list of `{name, template}` (the `default` one, else the
/// first).
fn template_field(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => {
            let named = |n: &str| {
                list.iter().find(|t| t.get("name").and_then(Value::as_str) == Some(n))
            };
            let t = named("default").or_else(|| list.first())?;
            t.get("template")?.as_str().map(str::to_owned)
        }
        _ => None,
    }
}

/// Reads the side files of the tokenizer in `dir`.
pub(crate) fn load_side_config(dir: &Path) -> Result<SideConfig, TextError> {
    let mut c = SideConfig::default();
    let p = |name: &str| -> PathBuf { dir.join(name) };

    if let Some(tc) = read_json_opt(&p("tokenizer_config.json"))? {
        c.chat_template = template_field(tc.get("chat_template"));
        c.bos_token = token_field(tc.get("bos_token"));
        c.eos_token = token_field(tc.get("eos_token"));
        c.pad_token = token_field(tc.get("pad_token"));
        c.add_bos_token = tc.get("add_bos_token").and_then(Value::as_bool);
        c.add_eos_token = tc.get("add_eos_token").and_then(Value::as_bool);
    }
    let jinja = p("chat_template.jinja");
    match std::fs::read_to_string(&jinja) {
        Ok(t) => c.chat_template = Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(TextError::io(jinja, e)),
    }
    for name in ["generation_config.json", "config.json"] {
        if let Some(g) = read_json_opt(&p(name))? {
            for id in id_list(g.get("eos_token_id")) {
                if !c.eos_token_ids.contains(&id) {
                    c.eos_token_ids.push(id);
                }
            }
            if c.bos_token_id.is_none() {
                c.bos_token_id = id_list(g.get("bos_token_id")).first().copied();
            }
        }
    }
    Ok(c)
}
