//! Chat messages → prompt token ids through the tokenizer's chat template, including
//! DeepSeek's chat-prefix completion: a last assistant message with `prefix: true` is not a
//! finished turn but the start of the answer, which the model continues.
//!
//! With R1's template the generation prompt opens the think block (`<｜Assistant｜><think>\n`).
//! A prefix continues the *answer*, so the think block is closed first (holding the prefix
//! message's `reasoning_content`, if any) and the output is all content. Where Whale
//! deviates: DeepSeek refuses `reasoning_content` in earlier messages; Whale ignores it
//! there, since R1's template drops earlier reasoning anyway.

use crate::api::chat::{InputMessage, MessageContent, Role};
use crate::error::ApiError;
use whale_text::output::ReasoningMode;
use whale_text::{ChatMessage, RenderOptions, Tokenizer};

pub struct ChatPrompt {
    pub ids: Vec<u32>,
    pub mode: ReasoningMode,
}

pub fn chat_prompt(
    tokenizer: &Tokenizer,
    messages: &[InputMessage],
) -> Result<ChatPrompt, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` is empty: give at least one message",
        ));
    }
    if tokenizer.chat_template().is_none() {
        return Err(ApiError::invalid(
            "messages",
            "the served tokenizer has no chat template; use /v1/completions",
        ));
    }
    let last = messages.len() - 1;
    for (i, m) in messages.iter().enumerate() {
        if m.prefix == Some(true) && (i != last || m.role != Role::Assistant) {
            return Err(ApiError::invalid(
                &format!("messages[{i}].prefix"),
                "`prefix: true` is allowed only on the last message, which must be from the assistant",
            ));
        }
    }
    let prefix = messages[last].prefix == Some(true);
    let turns = if prefix { &messages[..last] } else { messages };
    let chat: Vec<ChatMessage> = turns
        .iter()
        .enumerate()
        .map(|(i, m)| to_chat_message(i, m))
        .collect::<Result<_, _>>()?;
    let opts = RenderOptions {
        add_generation_prompt: true,
        ..Default::default()
    };
    let rendered = tokenizer.apply_chat_template(&chat, &opts)?;
    let has_think = tokenizer.think_end_id().is_some();
    let (text, mode) = if prefix {
        let m = &messages[last];
        let content = text_of(last, m)?.unwrap_or_default();
        if rendered.think_prefilled {
            let reasoning = m.reasoning_content.as_deref().unwrap_or("");
            (
                format!("{}{reasoning}\n</think>\n\n{content}", rendered.text),
                ReasoningMode::Off,
            )
        } else {
            (format!("{}{content}", rendered.text), ReasoningMode::Off)
        }
    } else {
        let mode = match (has_think, rendered.think_prefilled) {
            (false, _) => ReasoningMode::Off,
            (true, true) => ReasoningMode::Prefilled,
            (true, false) => ReasoningMode::Detect,
        };
        (rendered.text, mode)
    };
    // Templates write BOS themselves.
    let ids = tokenizer.encode(&text, false)?;
    Ok(ChatPrompt { ids, mode })
}

fn to_chat_message(i: usize, m: &InputMessage) -> Result<ChatMessage, ApiError> {
    let mut c = ChatMessage::new(m.role.template_name(), text_of(i, m)?.unwrap_or_default());
    c.name = m.name.clone();
    c.tool_call_id = m.tool_call_id.clone();
    Ok(c)
}

/// The text of a message: its string, or its text parts joined.
fn text_of(i: usize, m: &InputMessage) -> Result<Option<String>, ApiError> {
    match &m.content {
        None => Ok(None),
        Some(MessageContent::Text(s)) => Ok(Some(s.clone())),
        Some(MessageContent::Parts(parts)) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (p.kind.as_str(), &p.text) {
                    ("text", Some(t)) => text.push_str(t),
                    (kind, _) => {
                        return Err(ApiError::invalid(
                            &format!("messages[{i}].content[{j}]"),
                            format!(
                            "content part of type {kind:?} is not supported: only text parts are"
                        ),
                        ))
                    }
                }
            }
            Ok(Some(text))
        }
    }
}
