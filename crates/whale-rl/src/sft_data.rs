//! Training sequences for supervised fine-tuning and (continued) pretraining.
//!
//! - Chat SFT (`{"messages": [...]}` JSONL, or `{"prompt", "reasoning", "answer"}`): the
//!   prompt is rendered with the model's chat template; the loss covers only the assistant's
//!   tokens — its reasoning (inside `<think>…</think>`), its answer and the end-of-sequence
//!   token. The assistant turn is built from the generation prompt onward rather than by the
//!   template, because R1's template drops reasoning from assistant history.
//! - Plain text: every token is trained on, documents separated by the EOS token.
//!
//! Examples are packed back to back into fixed-length rows (`seq_len + 1` ids, so inputs
//! and next-token targets are shifted views of one row). An example longer than a row is not
//! silently cut: it is skipped and counted, and the caller reports how many.

use crate::RlError;
use std::path::{Path, PathBuf};
use whale_text::chat_template::{ChatMessage, RenderOptions};
use whale_text::tokenizer::Tokenizer;

/// One tokenized example: ids and a 0/1 loss mask over them (1 = predict this id).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub ids: Vec<u32>,
    pub train: Vec<bool>,
}

/// Packed rows of `seq_len + 1` ids with per-id loss flags.
#[derive(Debug, Clone)]
pub struct Packed {
    pub seq_len: usize,
    pub rows: Vec<(Vec<u32>, Vec<bool>)>,
    pub skipped_too_long: usize,
    pub trained_tokens: usize,
}

fn data_err(file: &Path, line: usize, msg: impl Into<String>) -> RlError {
    RlError::Config(format!("{}: line {line}: {}", file.display(), msg.into()))
}

/// Reads a chat SFT file. Each line: `{"messages": [{"role","content","reasoning_content"?}…]}`
/// whose last message is the assistant's, or `{"prompt", "answer", "reasoning"?}`.
pub fn read_chat_jsonl(path: &Path, tok: &Tokenizer) -> Result<Vec<Example>, RlError> {
    let text = std::fs::read_to_string(path).map_err(|e| RlError::Io(path.to_path_buf(), e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| data_err(path, i + 1, format!("not valid JSON: {e}")))?;
        let (history, reasoning, answer) = if let Some(msgs) = v.get("messages") {
            let mut msgs: Vec<ChatMessage> = serde_json::from_value(msgs.clone())
                .map_err(|e| data_err(path, i + 1, format!("\"messages\" is not a list of chat messages: {e}")))?;
            let last = msgs.pop().ok_or_else(|| data_err(path, i + 1, "\"messages\" is empty"))?;
            if last.role != "assistant" {
                return Err(data_err(path, i + 1, format!("the last message must be the assistant's (found role {:?})", last.role)));
            }
            (msgs, last.reasoning_content.unwrap_or_default(), last.content.unwrap_or_default())
        } else {
            let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
            let prompt = field("prompt").ok_or_else(|| data_err(path, i + 1, "needs \"messages\" or \"prompt\" + \"answer\""))?;
            let answer = field("answer").ok_or_else(|| data_err(path, i + 1, "no \"answer\" field"))?;
            (vec![ChatMessage::user(prompt)], field("reasoning").unwrap_or_default(), answer)
        };
        out.push(chat_example(tok, &history, &reasoning, &answer).map_err(|e| data_err(path, i + 1, e.to_string()))?);
    }
    if out.is_empty() {
        return Err(data_err(path, 0, "no examples"));
    }
    Ok(out)
}

/// The ids of `history` + an assistant turn (reasoning, answer, EOS) with the loss on the turn.
pub fn chat_example(tok: &Tokenizer, history: &[ChatMessage], reasoning: &str, answer: &str) -> Result<Example, RlError> {
    let opts = RenderOptions { add_generation_prompt: true, ..Default::default() };
    let (rendered, prompt) = tok.encode_chat(history, &opts).map_err(|e| RlError::Config(e.to_string()))?;
    let mut turn = String::new();
    if !rendered.think_prefilled && (!reasoning.is_empty()) {
        turn.push_str("<think>\n");
    }
    if !reasoning.is_empty() || rendered.think_prefilled {
        turn.push_str(reasoning.trim());
        turn.push_str("\n</think>\n\n");
    }
    turn.push_str(answer.trim());
    let mut reply = tok.encode(&turn, false).map_err(|e| RlError::Config(e.to_string()))?;
    let eos = tok
        .eos_ids()
        .iter()
        .next()
        .copied()
        .ok_or_else(|| RlError::Config(format!("tokenizer {} has no end-of-sequence token", tok.source().display())))?;
    reply.push(eos);
    let mut train = vec![false; prompt.len()];
    train.extend(std::iter::repeat_n(true, reply.len()));
    let mut ids = prompt;
    ids.extend(reply);
    Ok(Example { ids, train })
}

/// Plain-text documents (files; each blank-line-separated paragraph is a document), every
/// token trained, each document followed by EOS.
pub fn read_text(paths: &[PathBuf], tok: &Tokenizer) -> Result<Vec<Example>, RlError> {
    let eos = tok.eos_ids().iter().next().copied();
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| RlError::Io(p.clone(), e))?;
        for doc in text.split("\n\n").map(str::trim).filter(|d| !d.is_empty()) {
            let mut ids = tok.encode(doc, false).map_err(|e| RlError::Config(format!("{}: {e}", p.display())))?;
            ids.extend(eos);
            out.push(Example { train: vec![true; ids.len()], ids });
        }
    }
    if out.is_empty() {
        return Err(RlError::Config(format!("no text in {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))));
    }
    Ok(out)
}

/// Packs examples in order into rows of `seq_len + 1` ids (the tail row padded with `pad`,
/// untrained). The flag at position j says whether id j is a target.
pub fn pack(examples: &[Example], seq_len: usize, pad: u32) -> Packed {
    let width = seq_len + 1;
    let mut rows = Vec::new();
    let (mut ids, mut train) = (Vec::with_capacity(width), Vec::with_capacity(width));
    let mut skipped = 0;
    let mut trained_tokens = 0;
    for ex in examples {
        if ex.ids.len() > width {
            skipped += 1;
            continue;
        }
        if ids.len() + ex.ids.len() > width {
            pad_row(&mut ids, &mut train, width, pad);
            rows.push((std::mem::take(&mut ids), std::mem::take(&mut train)));
        }
        ids.extend_from_slice(&ex.ids);
        train.extend_from_slice(&ex.train);
        trained_tokens += ex.train.iter().filter(|t| **t).count();
    }
    if !ids.is_empty() {
        pad_row(&mut ids, &mut train, width, pad);
        rows.push((ids, train));
    }
    Packed { seq_len, rows, skipped_too_long: skipped, trained_tokens }
}

fn pad_row(ids: &mut Vec<u32>, train: &mut Vec<bool>, width: usize, pad: u32) {
    ids.resize(width, pad);
    train.resize(width, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_keeps_order_masks_and_counts_what_does_not_fit() {
        let ex = |n: usize, t: bool| Example { ids: (0..n as u32).collect(), train: vec![t; n] };
        let p = pack(&[ex(3, true), ex(4, false), ex(9, true), ex(2, true)], 6, 99);
        assert_eq!(p.skipped_too_long, 1);
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].0, vec![0, 1, 2, 0, 1, 2, 3]);
        assert_eq!(p.rows[0].1, vec![true, true, true, false, false, false, false]);
        assert_eq!(p.rows[1].0, vec![0, 1, 99, 99, 99, 99, 99]);
        assert_eq!(p.trained_tokens, 5);
    }
}
