//! How a problem becomes a prompt. `Chat`: the model's chat template with R1's recommended
//! math instruction ("reason step by step, final answer in \boxed{}") and no system prompt;
//! `R1Zero`: a plain-text User/Assistant template in the shape of R1-Zero's (reasoning in
//! `<think>`, answer in `<answer>`), for base models without a chat template. Both end with
//! an open `<think>` so the model starts by reasoning, as R1's usage notes advise.

use crate::EvalError;
use whale_text::chat_template::{ChatMessage, RenderOptions};
use whale_text::tokenizer::Tokenizer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    Chat,
    /// The chat template with the question alone, no instruction: for models trained on bare
    /// questions (the built-in model, `whale demo`).
    ChatPlain,
    R1Zero,
}

impl PromptStyle {
    /// The `--prompt-style` values, in the order of [`Self::STYLES`].
    pub const NAMES: [&'static str; 3] = ["chat", "chat-plain", "r1-zero"];
    const STYLES: [PromptStyle; 3] = [PromptStyle::Chat, PromptStyle::ChatPlain, PromptStyle::R1Zero];

    /// The `--prompt-style` value (one of [`Self::NAMES`]); `None` (not given) picks by the
    /// tokenizer.
    pub fn from_flag(flag: Option<&str>, t: &Tokenizer) -> Result<Self, EvalError> {
        let Some(flag) = flag else { return Ok(Self::for_tokenizer(t)) };
        match Self::NAMES.iter().position(|n| *n == flag) {
            Some(i) => Ok(Self::STYLES[i]),
            None => {
                let [a, b, c] = Self::NAMES;
                Err(EvalError::Task(format!("--prompt-style {flag:?}: use {a}, {b} or {c}")))
            }
        }
    }

    /// `Chat` when the tokenizer has a template, else `R1Zero`.
    pub fn for_tokenizer(t: &Tokenizer) -> Self {
        if t.chat_template().is_some() {
            PromptStyle::Chat
        } else {
            PromptStyle::R1Zero
        }
    }
}

pub const MATH_INSTRUCTION: &str = "Please reason step by step, and put your final answer within \\boxed{}.";

/// The R1-Zero-style template, `{question}` filled in.
pub fn r1_zero_text(question: &str) -> String {
    format!(
        "A conversation between User and Assistant. The User asks a question and the Assistant solves it: \
         first it thinks the problem through, then it answers. The thinking goes between <think> and </think>, \
         the answer between <answer> and </answer>.\nUser: {question}\nAssistant: <think>\n"
    )
}

/// The user turn of a chat prompt in `style`; rejection-sampled SFT data records the same turn,
/// so a model is fine-tuned on the prompt that produced the answer. (R1-Zero's prompt is not a
/// chat: its SFT records carry the bare question.)
pub fn user_content(style: PromptStyle, question: &str) -> String {
    match style {
        PromptStyle::Chat => format!("{question}\n{MATH_INSTRUCTION}"),
        PromptStyle::ChatPlain | PromptStyle::R1Zero => question.to_string(),
    }
}

/// The prompt's token ids and whether it ends inside an open think block.
pub fn build_prompt(tok: &Tokenizer, style: PromptStyle, question: &str) -> Result<(Vec<u32>, bool), EvalError> {
    match style {
        PromptStyle::Chat | PromptStyle::ChatPlain => {
            let msg = ChatMessage::user(user_content(style, question));
            let opts = RenderOptions { add_generation_prompt: true, ..Default::default() };
            let (rendered, mut ids) = tok.encode_chat(&[msg], &opts)?;
            let mut open = rendered.think_prefilled;
            if !open {
                // Older templates do not open the think block: do it, as R1's notes advise.
                ids.extend(tok.encode("<think>\n", false)?);
                open = true;
            }
            Ok((ids, open))
        }
        PromptStyle::R1Zero => Ok((tok.encode(&r1_zero_text(question), true)?, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Tokenizer {
        Tokenizer::from_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_chat_tokenizer")).unwrap()
    }

    #[test]
    fn styles_differ_only_in_the_instruction_and_the_template() {
        let tok = tokenizer();
        let text = |style| {
            let (ids, open) = build_prompt(&tok, style, "What is 2 + 3?").unwrap();
            assert!(open, "every style opens the think block");
            tok.decode(&ids, false).unwrap()
        };
        let chat = text(PromptStyle::Chat);
        let plain = text(PromptStyle::ChatPlain);
        assert!(chat.contains(&format!("What is 2 + 3?\n{MATH_INSTRUCTION}")), "{chat}");
        assert!(plain.contains("What is 2 + 3?") && !plain.contains(MATH_INSTRUCTION), "{plain}");
        assert_eq!(chat.replace(&format!("\n{MATH_INSTRUCTION}"), ""), plain);
        assert!(text(PromptStyle::R1Zero).ends_with("Assistant: <think>\n"));
        assert_eq!(PromptStyle::from_flag(Some("chat-plain"), &tok).unwrap(), PromptStyle::ChatPlain);
        assert_eq!(PromptStyle::from_flag(None, &tok).unwrap(), PromptStyle::Chat);
        assert!(PromptStyle::from_flag(Some("plain"), &tok).unwrap_err().to_string().contains("chat, chat-plain or r1-zero"));
    }
}
