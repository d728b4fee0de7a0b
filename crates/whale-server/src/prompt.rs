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
use crate::tools::ToolSetup;
use whale_text::chat_template::{ToolCall, ToolCallFunction};
use whale_text::output::ReasoningMode;
use whale_text::{ChatMessage, RenderOptions, Tokenizer};

pub struct ChatPrompt {
    pub ids: Vec<u32>,
    pub mode: ReasoningMode,
    /// Text the prompt put at the start of the answer (a forced tool call's opener); the
    /// tool-call parser reads it before the model's output.
    pub answer_prefill: Option<String>,
}

pub fn chat_prompt(
    tokenizer: &Tokenizer,
    messages: &[InputMessage],
) -> Result<ChatPrompt, ApiError> {
    chat_prompt_with_tools(tokenizer, messages, None)
}

/// The prompt of a request that may offer tools (see `tools.rs` for how they are rendered).
pub fn chat_prompt_with_tools(
    tokenizer: &Tokenizer,
    messages: &[InputMessage],
    tools: Option<&ToolSetup>,
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
    let mut chat: Vec<ChatMessage> = turns
        .iter()
        .enumerate()
        .map(|(i, m)| to_chat_message(i, m))
        .collect::<Result<_, _>>()?;
    let mut opts = RenderOptions {
        add_generation_prompt: true,
        ..Default::default()
    };
    if let Some(t) = tools {
        if prefix && t.prefill.is_some() {
            return Err(ApiError::invalid(
                "tool_choice",
                "a forced tool call (tool_choice \"required\" or a named function) cannot continue a `prefix: true` message",
            ));
        }
        // A template that reads `tools` renders them itself; DeepSeek's do not.
        if template_reads_tools(tokenizer) {
            opts.tools = Some(t.tools.clone());
        } else {
            match chat.first_mut() {
                Some(first) if first.role == "system" => {
                    let text = first.content.get_or_insert_with(String::new);
                    text.push_str("\n\n");
                    text.push_str(&t.system_text);
                }
                _ => chat.insert(0, ChatMessage::system(t.system_text.clone())),
            }
        }
    }
    let forced = tools.and_then(|t| t.prefill.clone());
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
    } else if let Some(opener) = &forced {
        // The answer starts with the call; R1's opened think block is closed first.
        let close = if rendered.think_prefilled {
            "\n</think>\n\n"
        } else {
            ""
        };
        (
            format!("{}{close}{opener}", rendered.text),
            ReasoningMode::Off,
        )
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
    Ok(ChatPrompt {
        ids,
        mode,
        answer_prefill: forced,
    })
}

/// Whether the chat template uses a `tools` variable (a word, not part of `tool_calls`).
fn template_reads_tools(tokenizer: &Tokenizer) -> bool {
    let src = tokenizer.chat_template().unwrap_or_default();
    src.match_indices("tools").any(|(i, _)| {
        let before = src[..i].chars().next_back();
        let after = src[i + 5..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

fn to_chat_message(i: usize, m: &InputMessage) -> Result<ChatMessage, ApiError> {
    let text = text_of(i, m)?;
    let calls = m.tool_calls.as_deref().filter(|c| !c.is_empty());
    if calls.is_some() && m.role != Role::Assistant {
        return Err(ApiError::invalid(
            &format!("messages[{i}].tool_calls"),
            "only assistant messages can have tool_calls",
        ));
    }
    // DeepSeek's templates render calls only for an assistant turn whose content is None.
    let content = match (calls, text) {
        (Some(_), Some(t)) if t.is_empty() => None,
        (Some(_), None) => None,
        (_, t) => Some(t.unwrap_or_default()),
    };
    let mut c = ChatMessage::new(m.role.template_name(), "");
    c.content = content;
    c.name = m.name.clone();
    c.tool_call_id = m.tool_call_id.clone();
    c.tool_calls = calls.map(|calls| {
        calls
            .iter()
            .map(|tc| ToolCall {
                id: tc.id.clone(),
                kind: tc.kind.clone(),
                function: ToolCallFunction {
                    name: tc.function.name.clone(),
                    arguments: serde_json::Value::String(tc.function.arguments.clone()),
                },
            })
            .collect()
    });
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
