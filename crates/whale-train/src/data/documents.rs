//! Reading documents (one string each) out of text, JSONL and Parquet source files.
//!
//! Every reader streams: memory holds one document (or one Parquet batch), never the file.
//! Errors name the file, the line (text/JSONL) or row (Parquet) and the field.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::data::config::{Format, ResolvedSource, TextSplit};
use crate::data::parquet_reader::ParquetTextReader;
use crate::error::TrainError;

/// One document and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub text: String,
    /// 1-based line (text, JSONL) or 0-based row (Parquet) where the document starts.
    pub location: u64,
}

/// Iterates the documents of one source file.
pub struct DocumentReader {
    inner: Inner,
}

enum Inner {
    Text(TextReader),
    Jsonl(JsonlReader),
    // Boxed: the Parquet reader is far larger than the line readers.
    Parquet(Box<ParquetTextReader>),
}

impl DocumentReader {
    pub fn open(src: &ResolvedSource) -> Result<Self, TrainError> {
        let inner = match src.format {
            Format::Text => Inner::Text(TextReader::open(&src.path, src.text_split)?),
            Format::Jsonl => Inner::Jsonl(JsonlReader::open(&src.path, &src.text_field)?),
            Format::Parquet => Inner::Parquet(Box::new(ParquetTextReader::open(
                &src.path,
                &src.text_field,
            )?)),
        };
        Ok(DocumentReader { inner })
    }

    /// How far through the file the reader is, in [0, 1] (bytes for text/JSONL, rows for
    /// Parquet) — for progress bars.
    pub fn fraction_done(&self) -> f64 {
        match &self.inner {
            Inner::Text(r) => r.lines.fraction_done(),
            Inner::Jsonl(r) => r.lines.fraction_done(),
            Inner::Parquet(r) => r.fraction_done(),
        }
    }
}

impl Iterator for DocumentReader {
    type Item = Result<Document, TrainError>;
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Text(r) => r.next_doc().transpose(),
            Inner::Jsonl(r) => r.next_doc().transpose(),
            Inner::Parquet(r) => r.next_doc().transpose(),
        }
    }
}

/// Lines of a file as UTF-8, counting lines and bytes.
struct Lines {
    path: PathBuf,
    reader: BufReader<File>,
    buf: Vec<u8>,
    line_no: u64,
    bytes_read: u64,
    total_bytes: u64,
}

impl Lines {
    fn open(path: &Path) -> Result<Self, TrainError> {
        let file = File::open(path).map_err(|e| TrainError::io(path, e))?;
        let total_bytes = file.metadata().map_err(|e| TrainError::io(path, e))?.len();
        Ok(Lines {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            buf: Vec::new(),
            line_no: 0,
            bytes_read: 0,
            total_bytes,
        })
    }

    /// The next line without its `\n` / `\r\n`, or None at the end of the file.
    fn next_line(&mut self) -> Result<Option<&str>, TrainError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| TrainError::io(&self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        self.bytes_read += n as u64;
        let mut line = &self.buf[..];
        if let Some(l) = line.strip_suffix(b"\n") {
            line = l.strip_suffix(b"\r").unwrap_or(l);
        }
        match std::str::from_utf8(line) {
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(TrainError::data(
                &self.path,
                format!(
                    "line {}: not valid UTF-8 (at byte {} of the line)",
                    self.line_no,
                    e.valid_up_to()
                ),
            )),
        }
    }

    fn fraction_done(&self) -> f64 {
        if self.total_bytes == 0 {
            1.0
        } else {
            self.bytes_read as f64 / self.total_bytes as f64
        }
    }
}

/// Plain text cut into documents by blank lines, by line, or one document per file.
struct TextReader {
    lines: Lines,
    split: TextSplit,
    done: bool,
}

impl TextReader {
    fn open(path: &Path, split: TextSplit) -> Result<Self, TrainError> {
        Ok(TextReader {
            lines: Lines::open(path)?,
            split,
            done: false,
        })
    }

    fn next_doc(&mut self) -> Result<Option<Document>, TrainError> {
        if self.done {
            return Ok(None);
        }
        match self.split {
            TextSplit::Line => loop {
                let line_no = self.lines.line_no + 1;
                match self.lines.next_line()? {
                    None => {
                        self.done = true;
                        return Ok(None);
                    }
                    Some(l) if l.trim().is_empty() => continue,
                    Some(l) => {
                        return Ok(Some(Document {
                            text: l.to_owned(),
                            location: line_no,
                        }))
                    }
                }
            },
            TextSplit::BlankLine | TextSplit::File => {
                let whole_file = self.split == TextSplit::File;
                let mut text = String::new();
                let mut start = 0;
                loop {
                    let line_no = self.lines.line_no + 1;
                    match self.lines.next_line()? {
                        None => {
                            self.done = true;
                            break;
                        }
                        Some(l) if !whole_file && l.trim().is_empty() => {
                            if !text.is_empty() {
                                break;
                            }
                        }
                        Some(l) => {
                            if text.is_empty() && start == 0 {
                                start = line_no;
                            } else {
                                text.push('\n');
                            }
                            text.push_str(l);
                        }
                    }
                }
                if whole_file {
                    // Keep the document's blank lines but not the file's trailing ones.
                    let trimmed = text.trim_end().len();
                    text.truncate(trimmed);
                }
                Ok((!text.trim().is_empty()).then_some(Document {
                    text,
                    location: start.max(1),
                }))
            }
        }
    }
}

/// One JSON object per line; the document is the string at `field`.
struct JsonlReader {
    lines: Lines,
    field: String,
}

impl JsonlReader {
    fn open(path: &Path, field: &str) -> Result<Self, TrainError> {
        Ok(JsonlReader {
            lines: Lines::open(path)?,
            field: field.to_owned(),
        })
    }

    fn next_doc(&mut self) -> Result<Option<Document>, TrainError> {
        loop {
            let Some(line) = self.lines.next_line()? else {
                return Ok(None);
            };
            if line.trim().is_empty() {
                continue;
            }
            // Parse before naming the line: `line` borrows the reader's buffer.
            let parsed = serde_json::from_str::<serde_json::Value>(line);
            let line_no = self.lines.line_no;
            let path = &self.lines.path;
            let err = |msg: String| TrainError::data(path, format!("line {line_no}: {msg}"));
            let value = parsed.map_err(|e| err(format!("not valid JSON: {e}")))?;
            let serde_json::Value::Object(mut obj) = value else {
                return Err(err(format!(
                    "expected a JSON object, found {}",
                    json_kind(&value)
                )));
            };
            match obj.remove(&self.field) {
                Some(serde_json::Value::String(text)) => {
                    return Ok(Some(Document {
                        text,
                        location: line_no,
                    }));
                }
                Some(serde_json::Value::Null) => {
                    return Err(err(format!(
                        "field `{}` is null, expected a string",
                        self.field
                    )))
                }
                Some(other) => {
                    return Err(err(format!(
                        "field `{}` is {}, expected a string",
                        self.field,
                        json_kind(&other)
                    )))
                }
                None => {
                    let keys: Vec<&str> = obj.keys().map(String::as_str).take(10).collect();
                    return Err(err(format!(
                        "field `{}` is missing (keys present: {})",
                        self.field,
                        keys.join(", ")
                    )));
                }
            }
        }
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
