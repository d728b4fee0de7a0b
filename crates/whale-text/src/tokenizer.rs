//! [`Tokenizer`]: text ⇄ token ids for Whale, wrapping the HF `tokenizers` crate.
//!
//! Why a wrapper: the model needs more than the BPE — which ids end generation (several, from
//! tokenizer_config/generation_config/config or GGUF), whether to prepend BOS, the chat
//! template, the `<think>`/`</think>` ids — and it must come from either an HF folder
//! (`tokenizer.json` + side files) or a GGUF header alone (see `gguf_vocab`).
//!
//! Regex engine: `tokenizers` is built with `fancy-regex` (pure Rust) instead of its default
//! `onig` (Oniguruma, a C library compiled by `onig_sys`). Both build on a fresh machine with
//! gcc, but fancy-regex keeps the build free of C code and bindings, and it reproduces all 52
//! golden strings and 3 chats of the R1-Distill fixture (which were made by HF's Python
//! tokenizers, i.e. onig) exactly — including `\s+(?!\S)` look-ahead, `(?i:...)`, NEL, U+2028,
//! control characters and non-ASCII digits. The trade-off: fancy-regex gives up (and the rest
//! of that text stays one piece) past its backtracking limit, which these split regexes do
//! not approach on realistic input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use whale_core::gguf::GgufFile;

use crate::chat_template::{ChatMessage, ChatTemplate, RenderOptions, RenderedChat};
use crate::error::TextError;
use crate::hf_config::load_side_config;
use crate::stream::StreamDecoder;

/// The special ids and flags that go with a vocabulary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos_id: Option<u32>,
    pub bos_token: Option<String>,
    /// Every id that ends generation.
    pub eos_ids: BTreeSet<u32>,
    pub eos_token: Option<String>,
    pub pad_id: Option<u32>,
    /// Prepend BOS when encoding with `add_special = true`.
    pub add_bos: bool,
    /// Append EOS when encoding with `add_special = true`.
    pub add_eos: bool,
}

/// A loaded tokenizer. Cheap to clone (shared).
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
}

struct Inner {
    hf: tokenizers::Tokenizer,
    source: PathBuf,
    special: SpecialTokens,
    chat_template: Option<String>,
    compiled_template: OnceLock<Result<ChatTemplate, String>>,
    think_start: Option<u32>,
    think_end: Option<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.inner.source)
            .field("vocab_size", &self.vocab_size())
            .field("special", &self.inner.special)
            .field("has_chat_template", &self.inner.chat_template.is_some())
            .finish()
    }
}

impl Tokenizer {
    /// Loads an HF `tokenizer.json`, plus the optional `tokenizer_config.json`,
    /// `chat_template.jinja`, `generation_config.json` and `config.json` beside it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TextError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| TextError::io(path, e))?;
        let hf = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
            match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                Err(json) => TextError::Json { path: path.to_path_buf(), message: json.to_string() },
                Ok(_) => TextError::invalid(path, e.to_string()),
            }
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let side = load_side_config(dir)?;

        let id_of = |t: &Option<String>| t.as_deref().and_then(|t| hf.token_to_id(t));
        let bos_id = id_of(&side.bos_token).or(side.bos_token_id);
        let mut eos_ids: BTreeSet<u32> = side.eos_token_ids.iter().copied().collect();
        eos_ids.extend(id_of(&side.eos_token));
        let special = SpecialTokens {
            bos_id,
            bos_token: side.bos_token.clone().or_else(|| bos_id.and_then(|i| hf.id_to_token(i))),
            eos_ids,
            eos_token: side.eos_token.clone(),
            pad_id: id_of(&side.pad_token),
            // Without an explicit flag the tokenizer.json post-processor decides alone.
            add_bos: side.add_bos_token.unwrap_or(false),
            add_eos: side.add_eos_token.unwrap_or(false),
        };
        Ok(Self::assemble(hf, path.to_path_buf(), special, side.chat_template))
    }

    /// Loads `tokenizer.json` (and its side files) from a model folder.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, TextError> {
        Self::from_file(dir.as_ref().join("tokenizer.json"))
    }

    /// Builds the tokenizer from the metadata of a GGUF file (only the header is read, so a
    /// partial download works too).
    pub fn from_gguf(path: impl AsRef<Path>) -> Result<Self, TextError> {
        let g = GgufFile::open_metadata(path)?;
        Self::from_gguf_file(&g)
    }

    /// Builds the tokenizer from an already opened GGUF file.
    pub fn from_gguf_file(g: &GgufFile) -> Result<Self, TextError> {
        let built = crate::gguf_vocab::build(g)?;
        Ok(Self::assemble(built.hf, g.path().to_path_buf(), built.special, built.chat_template))
    }

    /// Wraps an HF tokenizer built elsewhere.
    pub fn from_hf(
        hf: tokenizers::Tokenizer,
        special: SpecialTokens,
        chat_template: Option<String>,
    ) -> Self {
        Self::assemble(hf, PathBuf::from("<memory>"), special, chat_template)
    }

    fn assemble(
        hf: tokenizers::Tokenizer,
        source: PathBuf,
        special: SpecialTokens,
        chat_template: Option<String>,
    ) -> Self {
        let think_start = hf.token_to_id("<think>");
        let think_end = hf.token_to_id("</think>");
        Tokenizer {
            inner: Arc::new(Inner {
                hf,
                source,
                special,
                chat_template,
                compiled_template: OnceLock::new(),
                think_start,
                think_end,
            }),
        }
    }

    /// Token ids of `text`. Added/special tokens written in the text are recognised as such.
    /// With `add_special`, BOS (and EOS) are added as the tokenizer is configured to.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TextError> {
        let enc = self
            .inner
            .hf
            .encode_fast(text, add_special)
            .map_err(|e| TextError::Tokenize(format!("encoding failed: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        let s = &self.inner.special;
        if add_special {
            if let Some(bos) = s.bos_id.filter(|_| s.add_bos) {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
            if let Some(&eos) = s.eos_ids.iter().next().filter(|_| s.add_eos) {
                if ids.last() != Some(&eos) {
                    ids.push(eos);
                }
            }
        }
        Ok(ids)
    }

    /// Text of `ids`; with `skip_special`, special tokens (control tokens) are left out.
    /// Ids outside the vocabulary are ignored; bytes that are not valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TextError> {
        self.inner
            .hf
            .decode(ids, skip_special)
            .map_err(|e| TextError::Tokenize(format!("decoding failed: {e}")))
    }

    /// An incremental decoder for generated ids (see [`StreamDecoder`]).
    pub fn stream_decoder(&self, skip_special: bool) -> StreamDecoder {
        StreamDecoder::new(self.clone(), skip_special)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.hf.token_to_id(token)
    }
    /// The token's string as stored in the vocabulary (byte-level BPE tokens in their mapped
    /// form, e.g. `Ġworld`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.hf.id_to_token(id)
    }
    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.hf.get_vocab_size(true)
    }
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.inner.special
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.inner.special.bos_id
    }
    pub fn bos_token(&self) -> Option<&str> {
        self.inner.special.bos_token.as_deref()
    }
    pub fn eos_ids(&self) -> &BTreeSet<u32> {
        &self.inner.special.eos_ids
    }
    pub fn eos_token(&self) -> Option<&str> {
        self.inner.special.eos_token.as_deref()
    }
    pub fn pad_id(&self) -> Option<u32> {
        self.inner.special.pad_id
    }
    pub fn is_eos(&self, id: u32) -> bool {
        self.inner.special.eos_ids.contains(&id)
    }
    /// Whether `id` is a special (control) token, i.e. one `decode(.., true)` leaves out.
    pub fn is_special(&self, id: u32) -> bool {
        self.inner
            .hf
            .get_added_vocabulary()
            .simple_id_to_token(id)
            .is_some_and(|t| self.inner.hf.get_added_vocabulary().is_special_token(&t))
    }
    /// Id of `<think>`, if the vocabulary has it.
    pub fn think_start_id(&self) -> Option<u32> {
        self.inner.think_start
    }
    /// Id of `</think>`, if the vocabulary has it.
    pub fn think_end_id(&self) -> Option<u32> {
        self.inner.think_end
    }
    /// The Jinja chat template, if the tokenizer came with one.
    pub fn chat_template(&self) -> Option<&str> {
        self.inner.chat_template.as_deref()
    }
    /// Where the tokenizer was loaded from.
    pub fn source(&self) -> &Path {
        &self.inner.source
    }
    /// The underlying HF tokenizer.
    pub fn hf(&self) -> &tokenizers::Tokenizer {
        &self.inner.hf
    }

    /// Renders `messages` with the tokenizer's chat template. `bos_token`/`eos_token` default
    /// to the tokenizer's own when `opts` leaves them unset. The template is compiled once.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        opts: &RenderOptions,
    ) -> Result<RenderedChat, TextError> {
        let Some(source) = self.inner.chat_template.as_deref() else {
            return Err(TextError::NoChatTemplate);
        };
        let compiled = self
            .inner
            .compiled_template
            .get_or_init(|| {
                ChatTemplate::new(source).map_err(|e| match e {
                    TextError::Template(m) => m,
                    other => other.to_string(),
                })
            });
        let template = compiled.as_ref().map_err(|e| TextError::Template(e.clone()))?;
        let mut opts = opts.clone();
        if opts.bos_token.is_none() {
            opts.bos_token = self.bos_token().map(str::to_owned);
        }
        if opts.eos_token.is_none() {
            opts.eos_token = self.eos_token().map(str::to_owned);
        }
        template.render(messages, &opts)
    }

    /// Renders `messages` and encodes the prompt (without adding BOS: templates write it).
    pub fn encode_chat(
        &self,
        messages: &[ChatMessage],
        opts: &RenderOptions,
    ) -> Result<(RenderedChat, Vec<u32>), TextError> {
        let rendered = self.apply_chat_template(messages, opts)?;
        let ids = self.encode(&rendered.text, false)?;
        Ok((rendered, ids))
    }
}
