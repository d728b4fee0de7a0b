//! Function calling: the request's `tools` / `tool_choice` (OpenAI's shape, which DeepSeek's
//! API takes) → what the prompt needs, and the parsed calls → OpenAI's `tool_calls`.
//!
//! Rendering: a chat template that reads `tools` gets them as a template variable (as
//! transformers passes them). DeepSeek-V3's and R1's templates do not: they only render past
//! calls and tool outputs, so for them the tool list goes into the system prompt, with the
//! call format the template itself uses for past calls (see `tool_parser`). DeepSeek's
//! hosted API does something of the kind server-side; its exact wording is not public, so this
//! text is Whale's own.
//!
//! `tool_choice`: `"none"` renders no tools and parses nothing; `"auto"` (the default with
//! tools) lets the model choose; `"required"` and a named function prefill the answer with
//! the call opener (closing R1's think block first, as chat-prefix completion does), so the
//! model can only continue a call.

use crate::api::chat::{ChatCompletionRequest, ToolChoice, ToolDef};
use crate::error::ApiError;
use crate::tool_parser::{CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP};
use serde::Serialize;
use serde_json::Value;

/// DeepSeek's limit on functions per request.
pub const MAX_TOOLS: usize = 128;

/// What the prompt needs for a request with tools.
#[derive(Debug, Clone)]
pub struct ToolSetup {
    /// The `tools` array as the template sees it.
    pub tools: Vec<Value>,
    /// The tool list as system-prompt text, for templates that do not read `tools`.
    pub system_text: String,
    /// Text that starts the answer (a forced call), or `None` when the model chooses.
    pub prefill: Option<String>,
}

/// `None` when the request has no tools or `tool_choice` is `"none"`.
pub fn setup(req: &ChatCompletionRequest) -> Result<Option<ToolSetup>, ApiError> {
    let tools = req.tools.as_deref().unwrap_or_default();
    if tools.len() > MAX_TOOLS {
        return Err(ApiError::invalid(
            "tools",
            format!(
                "{} tools given; at most {MAX_TOOLS} are allowed",
                tools.len()
            ),
        ));
    }
    for (i, t) in tools.iter().enumerate() {
        validate(i, t)?;
    }
    let choice = req.tool_choice.clone().unwrap_or(ToolChoice::Mode(
        if tools.is_empty() { "none" } else { "auto" }.into(),
    ));
    let prefill = match &choice {
        ToolChoice::Mode(m) if m == "none" => return Ok(None),
        ToolChoice::Mode(m) if m == "auto" => None,
        ToolChoice::Mode(m) if m == "required" => {
            Some(format!("{CALLS_BEGIN}{CALL_BEGIN}function{SEP}"))
        }
        ToolChoice::Mode(m) => {
            return Err(ApiError::invalid(
                "tool_choice",
                format!("tool_choice {m:?} is not one of \"none\", \"auto\", \"required\""),
            ))
        }
        ToolChoice::Named(n) => {
            if n.kind != "function" {
                return Err(ApiError::invalid(
                    "tool_choice.type",
                    "tool_choice.type must be \"function\"",
                ));
            }
            if !tools.iter().any(|t| t.function.name == n.function.name) {
                return Err(ApiError::invalid(
                    "tool_choice.function.name",
                    format!(
                        "tool_choice names {:?}, which is not in `tools`",
                        n.function.name
                    ),
                ));
            }
            Some(format!(
                "{CALLS_BEGIN}{CALL_BEGIN}function{SEP}{}\n```json\n",
                n.function.name
            ))
        }
    };
    if tools.is_empty() {
        return Err(ApiError::invalid(
            "tool_choice",
            "tool_choice needs `tools`",
        ));
    }
    let values = tools
        .iter()
        .map(|t| serde_json::to_value(t).map_err(|e| ApiError::Internal(e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok(Some(ToolSetup {
        tools: values,
        system_text: system_text(tools),
        prefill,
    }))
}

fn validate(i: usize, t: &ToolDef) -> Result<(), ApiError> {
    if t.kind != "function" {
        return Err(ApiError::invalid(
            &format!("tools[{i}].type"),
            format!("tool type {:?} is not supported: only \"function\"", t.kind),
        ));
    }
    let name = &t.function.name;
    // OpenAI's rule; it also keeps names one line, as the call format needs.
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(ApiError::invalid(
            &format!("tools[{i}].function.name"),
            format!("function name {name:?} must be 1-64 characters of a-z, A-Z, 0-9, _ and -"),
        ));
    }
    if let Some(p) = &t.function.parameters {
        if !p.is_object() {
            return Err(ApiError::invalid(
                &format!("tools[{i}].function.parameters"),
                "parameters must be a JSON Schema object",
            ));
        }
    }
    Ok(())
}

/// The tool list in the system prompt, showing the exact call format to use.
fn system_text(tools: &[ToolDef]) -> String {
    // Short on purpose: every prompt with tools pays for this text.
    let mut s = format!(
        "## Tools\nTo call functions, answer with:\n{CALLS_BEGIN}{CALL_BEGIN}function{SEP}NAME\n```json\nARGUMENTS\n```{CALL_END}{CALLS_END}\n(one call block per call, all inside the outer markers)\n"
    );
    for t in tools {
        let f = &t.function;
        s.push_str(&format!("\n### {}\n", f.name));
        if let Some(d) = f.description.as_deref().filter(|d| !d.is_empty()) {
            s.push_str(d);
            s.push('\n');
        }
        if let Some(params) = &f.parameters {
            s.push_str(&format!("Parameters: {params}\n"));
        }
    }
    s
}

/// An OpenAI tool call in a response message.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutputToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OutputFunction,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutputFunction {
    pub name: String,
    pub arguments: String,
}

/// A streamed tool call: each call goes out whole, in one delta, at its `index`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeltaToolCall {
    pub index: usize,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OutputFunction,
}

/// A call id unique within the process (OpenAI's `call_...`).
pub fn call_id() -> String {
    crate::api::common::response_id("call").replacen('-', "_", 1)
}

pub fn output_call(c: crate::tool_parser::ParsedCall) -> OutputToolCall {
    OutputToolCall {
        id: call_id(),
        kind: "function",
        function: OutputFunction {
            name: c.name,
            arguments: c.arguments,
        },
    }
}
