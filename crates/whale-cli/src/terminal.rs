//! Printing generated text as it streams: reasoning dimmed on a terminal (inside
//! `<think>`…`</think>` markers when piped, so scripts can still tell it apart) and
//! optionally collapsed to a one-line note; the answer in plain text.

use std::io::{IsTerminal, Write};
use whale_text::output::OutputDelta;

pub struct Printer {
    color: bool,
    show_reasoning: bool,
    in_reasoning: bool,
    hidden_note_shown: bool,
    at_line_start: bool,
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

impl Printer {
    pub fn stdout(show_reasoning: bool) -> Self {
        Self {
            color: std::io::stdout().is_terminal(),
            show_reasoning,
            in_reasoning: false,
            hidden_note_shown: false,
            at_line_start: true,
        }
    }

    pub fn set_show_reasoning(&mut self, show: bool) {
        self.show_reasoning = show;
    }

    fn write(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        // A closed pipe (e.g. `| head`) is not worth a panic; the next read of stdin ends us.
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
        self.at_line_start = s.ends_with('\n');
    }

    pub fn delta(&mut self, d: &OutputDelta) {
        if !d.reasoning.is_empty() {
            if !self.in_reasoning {
                self.in_reasoning = true;
                if self.show_reasoning {
                    self.write(if self.color { DIM } else { "<think>\n" });
                }
            }
            if self.show_reasoning {
                self.write(&d.reasoning);
            } else if !self.hidden_note_shown {
                self.hidden_note_shown = true;
                self.write(if self.color { "\x1b[2m(thinking… /think on shows it)\x1b[0m\n" } else { "(thinking…)\n" });
            }
        }
        if !d.content.is_empty() {
            self.close_reasoning();
            self.write(&d.content);
        }
    }

    fn close_reasoning(&mut self) {
        if self.in_reasoning {
            self.in_reasoning = false;
            if self.show_reasoning {
                let nl = if self.at_line_start { "" } else { "\n" };
                let close = if self.color { format!("{nl}{RESET}\n") } else { format!("{nl}</think>\n\n") };
                self.write(&close);
            }
        }
    }

    /// Ends one answer: closes an unfinished think block, ends the line.
    pub fn end(&mut self) {
        self.close_reasoning();
        if !self.at_line_start {
            self.write("\n");
        }
        self.hidden_note_shown = false;
    }
}
