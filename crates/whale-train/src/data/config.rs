//! The `[data]` table of run.toml: where the training text comes from and how it becomes
//! token sequences.
//!
//! ```toml
//! [data]
//! sources = ["books.txt", "train.jsonl",            # listed files (no globbing)
//!            { path = "shard-0000.parquet", text_field = "content" }]
//! text_field = "text"          # JSONL key / Parquet column holding the document text
//! text_split = "blank_line"    # plain text: "blank_line" | "line" | "file" (one file = one doc)
//! validation_fraction = 0.01   # share of documents held out (chosen by content hash)
//! add_eos = true               # EOS after every document (the packing separator)
//! add_bos = false              # BOS before every document
//! tokenizer = "tok/"           # tokenizer.json or a folder holding one (optional here)
//! shard_dir = "cache/tokens"   # where token shards are cached (default: the run's cache dir)
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// The on-disk format of a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// UTF-8 text; documents split as [`TextSplit`] says.
    Text,
    /// One JSON object per line; the document is the string at `text_field`.
    Jsonl,
    /// An Apache Parquet file; the document is the string column `text_field`.
    Parquet,
}

impl Format {
    /// The format a file's extension implies: `.jsonl`/`.ndjson` → JSONL, `.parquet` →
    /// Parquet, `.txt`/`.text`/`.md` → text. Anything else must be named explicitly.
    pub fn from_extension(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "parquet" => Some(Format::Parquet),
            "txt" | "text" | "md" => Some(Format::Text),
            _ => None,
        }
    }
}

/// How a plain-text file is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextSplit {
    /// Documents are separated by one or more blank (whitespace-only) lines.
    #[default]
    BlankLine,
    /// Every non-empty line is a document.
    Line,
    /// The whole file is one document.
    File,
}

/// One source: a bare path, or a table overriding the format / field / split for that file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SourceSpec {
    Path(PathBuf),
    Table {
        path: PathBuf,
        #[serde(default)]
        format: Option<Format>,
        #[serde(default)]
        text_field: Option<String>,
        #[serde(default)]
        text_split: Option<TextSplit>,
    },
}

/// A source with every setting decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedSource {
    pub path: PathBuf,
    pub format: Format,
    /// The JSONL key / Parquet column (unused for text).
    pub text_field: String,
    /// How text files are cut into documents (unused for JSONL/Parquet).
    pub text_split: TextSplit,
}

/// The `[data]` table of run.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Source files, in order. Their documents are concatenated in this order.
    pub sources: Vec<SourceSpec>,
    /// Format for sources whose extension does not tell it.
    #[serde(default)]
    pub format: Option<Format>,
    /// Default JSONL key / Parquet column holding the text.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Default document split for plain-text sources.
    #[serde(default)]
    pub text_split: TextSplit,
    /// Fraction of documents held out for validation, in [0, 1).
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// Salt of the hash that picks validation documents (change it to draw another split).
    #[serde(default)]
    pub split_seed: u64,
    /// Append the tokenizer's EOS after every document (the separator between packed documents).
    #[serde(default = "default_true")]
    pub add_eos: bool,
    /// Prepend the tokenizer's BOS before every document.
    #[serde(default)]
    pub add_bos: bool,
    /// Use this token (by its text) as the document separator instead of the tokenizer's EOS.
    #[serde(default)]
    pub eos_token: Option<String>,
    /// Tokenizer (`tokenizer.json` or a folder holding one); the trainer may default it to
    /// the model's own.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Where token shards are cached; `prepare`'s `cache_dir` when unset.
    #[serde(default)]
    pub shard_dir: Option<PathBuf>,
}

fn default_text_field() -> String {
    "text".to_owned()
}
fn default_validation_fraction() -> f64 {
    0.01
}
fn default_true() -> bool {
    true
}

impl DataConfig {
    /// A config reading `sources` with every other setting at its default.
    pub fn new(sources: Vec<PathBuf>) -> Self {
        DataConfig {
            sources: sources.into_iter().map(SourceSpec::Path).collect(),
            format: None,
            text_field: default_text_field(),
            text_split: TextSplit::default(),
            validation_fraction: default_validation_fraction(),
            split_seed: 0,
            add_eos: true,
            add_bos: false,
            eos_token: None,
            tokenizer: None,
            shard_dir: None,
        }
    }

    /// Makes relative paths (sources, tokenizer, shard_dir) relative to `base`, the folder of
    /// the run.toml they were written in.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for s in &mut self.sources {
            match s {
                SourceSpec::Path(p) => fix(p),
                SourceSpec::Table { path, .. } => fix(path),
            }
        }
        if let Some(t) = &mut self.tokenizer {
            fix(t);
        }
        if let Some(d) = &mut self.shard_dir {
            fix(d);
        }
    }

    /// Checks the values; `file` names the run.toml in errors.
    pub fn validate(&self, file: &Path) -> Result<(), TrainError> {
        if self.sources.is_empty() {
            return Err(TrainError::config(
                file,
                "data.sources",
                "no source files listed",
            ));
        }
        let f = self.validation_fraction;
        if !(0.0..1.0).contains(&f) {
            return Err(TrainError::config(
                file,
                "data.validation_fraction",
                format!("expected a number in [0, 1), found {f}"),
            ));
        }
        if self.text_field.is_empty() {
            return Err(TrainError::config(
                file,
                "data.text_field",
                "must not be empty",
            ));
        }
        self.resolved_sources(file).map(|_| ())
    }

    /// Every source with its format, field and split decided.
    pub fn resolved_sources(&self, file: &Path) -> Result<Vec<ResolvedSource>, TrainError> {
        self.sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (path, format, field, split) = match s {
                    SourceSpec::Path(p) => (p, None, None, None),
                    SourceSpec::Table {
                        path,
                        format,
                        text_field,
                        text_split,
                    } => (path, *format, text_field.clone(), *text_split),
                };
                let format = format
                    .or_else(|| Format::from_extension(path))
                    .or(self.format)
                    .ok_or_else(|| {
                        TrainError::config(
                            file,
                            format!("data.sources[{i}]"),
                            format!(
                                "cannot tell the format of {} from its extension; set \
                                 format = \"text\" | \"jsonl\" | \"parquet\"",
                                path.display()
                            ),
                        )
                    })?;
                Ok(ResolvedSource {
                    path: path.clone(),
                    format,
                    text_field: field.unwrap_or_else(|| self.text_field.clone()),
                    text_split: split.unwrap_or(self.text_split),
                })
            })
            .collect()
    }
}
