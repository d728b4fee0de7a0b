//! HF chat templates: conversation → prompt text, rendered with minijinja the way
//! transformers' `apply_chat_template` renders them with Jinja2.
//!
//! Why: every chat model ships its prompt format as a Jinja template (tokenizer_config.json or
//! `tokenizer.chat_template` in GGUF); rendering it faithfully is the only way to reproduce the
//! exact prompt the model was trained on. The template sees `messages` (role, content,
//! optional reasoning_content / tool_calls / tool_call_id / name), `add_generation_prompt`,
//! `tools` (None when absent), `documents` (None), `bos_token`, `eos_token`, and any extra
//! variables (e.g. `enable_thinking`). See `jinja_ext` for the Python-compatible helpers.
//!
//! DeepSeek-R1 specifics: later R1 templates end the generation prompt with `<think>\n`, i.e.
//! the model's reasoning is already opened by the prompt; [`RenderedChat::think_prefilled`]
//! says so, so the reasoning parser can start in reasoning mode.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde::{Deserialize, Serialize};

use crate::error::TextError;
use crate::jinja_ext;

const TEMPLATE_NAME: &str = "chat_template";

/// One message of a conversation (OpenAI / transformers shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// `None` renders as Python `None` (e.g. an assistant turn that only calls tools).
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: Some(content.into()),
            reasoning_content: None,
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
    /// A tool's output, answering the call with `tool_call_id`.
    pub fn tool(content: impl Into<String>, tool_call_id: Option<String>) -> Self {
        ChatMessage { tool_call_id, ..Self::new("tool", content) }
    }
}

/// A tool call made by the assistant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: ToolCallFunction,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    pub name: String,
    /// A JSON string (OpenAI) or an object (transformers); templates differ in which they use.
    pub arguments: serde_json::Value,
}

/// What else the template sees besides the messages.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Append the assistant-turn opener so the model answers next.
    pub add_generation_prompt: bool,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// Tool (function) JSON schemas; `None` renders as Python `None`.
    pub tools: Option<Vec<serde_json::Value>>,
    /// Further template variables (e.g. `enable_thinking`).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedChat {
    pub text: String,
    /// The prompt ends with an opened `<think>` (plus newlines): the model continues inside its
    /// reasoning.
    pub think_prefilled: bool,
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

fn template_error(e: minijinja::Error) -> TextError {
    // Display gives "<kind>: <detail> (in chat_template:<line>)".
    let mut msg = e.to_string();
    if let Some(source) = std::error::Error::source(&e) {
        msg.push_str(&format!(": {source}"));
    }
    TextError::Template(msg)
}

impl ChatTemplate {
    /// Compiles `source`; a syntax error names the line.
    pub fn new(source: &str) -> Result<Self, TextError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(template_error)?;
        env.set_syntax(syntax);
        jinja_ext::register(&mut env);
        env.add_template_owned(TEMPLATE_NAME, jinja_ext::strip_generation_tags(source))
            .map_err(template_error)?;
        Ok(ChatTemplate { env })
    }

    /// Renders the conversation.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        opts: &RenderOptions,
    ) -> Result<RenderedChat, TextError> {
        let tmpl = self.env.get_template(TEMPLATE_NAME).map_err(template_error)?;
        let mut ctx = std::collections::BTreeMap::<String, Value>::new();
        for (k, v) in &opts.extra {
            ctx.insert(k.clone(), Value::from(Serde(v)));
        }
        ctx.insert("messages".into(), Value::from(Serde(messages)));
        ctx.insert("add_generation_prompt".into(), Value::from(opts.add_generation_prompt));
        ctx.insert("tools".into(), Value::from(Serde(&opts.tools)));
        ctx.entry("documents".into()).or_insert(Value::from(()));
        let tok = |t: &Option<String>| t.as_deref().map_or(Value::from(""), Value::from);
        ctx.insert("bos_token".into(), tok(&opts.bos_token));
        ctx.insert("eos_token".into(), tok(&opts.eos_token));
        let text = tmpl.render(Value::from(ctx)).map_err(template_error)?;
        let think_prefilled = ends_with_open_think(&text);
        Ok(RenderedChat { text, think_prefilled })
    }
}

/// Whether `text` ends with `<think>` followed only by whitespace.
pub fn ends_with_open_think(text: &str) -> bool {
    text.trim_end().ends_with("<think>")
}
