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
    R1Zero,
}

impl PromptStyle {
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

/// The prompt's token ids and whether it ends inside an open think block.
pub fn build_prompt(tok: &Tokenizer, style: PromptStyle, question: &str) -> Result<(Vec<u32>, bool), EvalError> {
    match style {
        PromptStyle::Chat => {
            let msg = ChatMessage::user(format!("{question}\n{MATH_INSTRUCTION}"));
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
