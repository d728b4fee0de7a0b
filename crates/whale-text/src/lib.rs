//! Text around the model: tokenizers, chat templates, and the streaming views of generated
//! text (the `<think>` reasoning split, stop strings).

pub mod reasoning;
pub mod stop;
