//! `whale chat`: a multi-turn conversation in the terminal. Streams the answer, shows the
//! reasoning dimmed (`/think off` collapses it), prints tokens/s after each answer; Ctrl-C
//! stops the current answer, not the program. With stdin piped, every line is one user
//! turn, so conversations can be scripted and tested.

use crate::engine_args::EngineArgs;
use crate::model_args::ModelArgs;
use crate::sampling_args::{SamplingArgs, TextArgs};
use crate::session::{tokenizer_for, TextModel, TurnOptions};
use crate::terminal::Printer;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use whale_text::chat_template::{ChatMessage, RenderOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    text: TextArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 2048)]
    max_tokens: usize,
    /// Start with the reasoning collapsed (`/think on` shows it).
    #[arg(long)]
    hide_reasoning: bool,
}

const HELP: &str = "commands: /think on|off  /reset  /system TEXT  /save FILE  /help  /exit";

struct Chat {
    tm: TextModel,
    args: Args,
    messages: Vec<ChatMessage>,
    printer: Printer,
    cancel: Arc<AtomicBool>,
}

pub fn run(args: Args) -> Result<()> {
    let params = args.sampling.params()?;
    let tokenizer = tokenizer_for(&args.model.model, args.text.tokenizer.as_deref())?;
    if tokenizer.chat_template().is_none() {
        bail!("{} has no chat template: `whale chat` needs one (use `whale generate --raw` for plain text)", tokenizer.source().display());
    }
    let tm = TextModel::with_engine(args.model.load()?, tokenizer, args.engine.config(&args.model)?)?;
    let interactive = std::io::stdin().is_terminal();
    let cancel = Arc::new(AtomicBool::new(false));
    let generating = Arc::new(AtomicBool::new(false));
    {
        let (cancel, generating) = (cancel.clone(), generating.clone());
        // Ctrl-C while answering stops the answer; at the prompt it leaves.
        ctrlc::set_handler(move || {
            if generating.load(Ordering::SeqCst) {
                cancel.store(true, Ordering::SeqCst);
            } else {
                eprintln!();
                std::process::exit(130);
            }
        })
        .context("installing the Ctrl-C handler")?;
    }
    let mut chat = Chat { tm, printer: Printer::stdout(!args.hide_reasoning), messages: Vec::new(), args, cancel };
    if let Some(s) = chat.args.text.system.clone() {
        chat.messages.push(ChatMessage::system(s));
    }
    if interactive {
        eprintln!("whale chat — {} ({HELP})", chat.args.model.model.display());
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            print!("> ");
            std::io::stdout().flush().ok();
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("reading stdin")?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('/') {
            if !chat.command(line)? {
                break;
            }
            continue;
        }
        generating.store(true, Ordering::SeqCst);
        let result = chat.answer(line, &params);
        generating.store(false, Ordering::SeqCst);
        if let Err(e) = result {
            // A failed turn (e.g. the conversation outgrew the context) leaves the history
            // as it was; the user decides what to do.
            if !interactive {
                return Err(e); // main prints it
            }
            eprintln!("error: {e:#}");
        }
    }
    Ok(())
}

impl Chat {
    /// Handles a `/command`; returns false to leave.
    fn command(&mut self, line: &str) -> Result<bool> {
        let (cmd, rest) = line.split_once(' ').map_or((line, ""), |(c, r)| (c, r.trim()));
        match cmd {
            "/exit" | "/quit" => return Ok(false),
            "/help" => eprintln!("{HELP}"),
            "/reset" => {
                self.messages.retain(|m| m.role == "system");
                eprintln!("[conversation cleared]");
            }
            "/system" => {
                self.messages.retain(|m| m.role != "system");
                if !rest.is_empty() {
                    self.messages.insert(0, ChatMessage::system(rest));
                }
                eprintln!("[system message {}]", if rest.is_empty() { "removed" } else { "set" });
            }
            "/think" => match rest {
                "on" => self.printer.set_show_reasoning(true),
                "off" => self.printer.set_show_reasoning(false),
                _ => eprintln!("usage: /think on|off"),
            },
            "/save" => {
                if rest.is_empty() {
                    eprintln!("usage: /save FILE");
                } else {
                    save(Path::new(rest), &self.messages)?;
                    eprintln!("[saved {} messages to {rest}]", self.messages.len());
                }
            }
            other => eprintln!("unknown command {other}; {HELP}"),
        }
        Ok(true)
    }

    fn answer(&mut self, user: &str, params: &whale_engine::SamplingParams) -> Result<()> {
        let mut messages = self.messages.clone();
        messages.push(ChatMessage::user(user));
        let opts = RenderOptions { add_generation_prompt: true, ..Default::default() };
        let (rendered, prompt) = self.tm.tokenizer.encode_chat(&messages, &opts)?;
        let mode = self.tm.reasoning_mode(rendered.think_prefilled);
        let turn_opts = TurnOptions {
            max_tokens: Some(self.args.max_tokens),
            stops: self.args.text.stop.clone(),
            thinking_budget: self.args.text.thinking_budget,
        };
        self.cancel.store(false, Ordering::SeqCst);
        let printer = &mut self.printer;
        let turn = self.tm.turn(&prompt, mode, params.clone(), &turn_opts, &self.cancel, |d| printer.delta(d))?;
        self.printer.end();
        eprintln!(
            "[{} prompt tokens ({} cached), {} tokens ({} reasoning), {:.1} tok/s{}]",
            turn.prompt_tokens,
            turn.cached_tokens,
            turn.completion_tokens(),
            turn.reasoning_tokens,
            turn.tokens_per_second(),
            if turn.finish_reason == "cancelled" { ", stopped" } else { "" }
        );
        // R1 convention: the next turn sees the answer only, not the reasoning; the saved
        // transcript keeps both.
        let mut reply = ChatMessage::assistant(turn.content);
        reply.reasoning_content = (!turn.reasoning.is_empty()).then_some(turn.reasoning);
        messages.push(reply);
        self.messages = messages;
        Ok(())
    }
}

/// Writes the transcript atomically (temp file, then rename) so a crash never leaves half a file.
fn save(path: &Path, messages: &[ChatMessage]) -> Result<()> {
    let json = serde_json::to_string_pretty(&serde_json::json!({ "messages": messages }))?;
    let tmp = path.with_extension("tmp-whale");
    std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
