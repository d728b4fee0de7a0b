//! Loading errors: every one names the file (or key, or template line) and says what is
//! wrong; none panics.

mod common;

use std::io::Write;

use common::{fixture_dir, gguf_bytes, GgufWriter};
use whale_core::gguf::GgufFile;
use whale_text::{ChatMessage, ChatTemplate, RenderOptions, TextError, Tokenizer};

const TINY_TOKENIZER_JSON: &str = r#"{"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null,
  "decoder": null, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}}"#;

fn write(dir: &std::path::Path, name: &str, content: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(content).unwrap();
    p
}

#[test]
fn missing_tokenizer_file_names_the_path() {
    let e = Tokenizer::from_file("/no/such/dir/tokenizer.json").unwrap_err();
    assert!(matches!(e, TextError::Io { .. }));
    let msg = e.to_string();
    assert!(msg.starts_with("/no/such/dir/tokenizer.json: cannot read tokenizer file"), "{msg}");
    let msg = Tokenizer::from_dir("/no/such/model").unwrap_err().to_string();
    assert!(msg.contains("/no/such/model/tokenizer.json"), "{msg}");
    let msg = Tokenizer::from_gguf("/no/such/model.gguf").unwrap_err().to_string();
    assert!(msg.starts_with("/no/such/model.gguf: "), "{msg}");
}

#[test]
fn invalid_json_is_reported_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "tokenizer.json", b"{\"version\": \"1.0\",\n  \"model\": [1, 2,,]}");
    let e = Tokenizer::from_file(&p).unwrap_err();
    assert!(matches!(e, TextError::Json { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{}: invalid JSON: ", p.display())), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn valid_json_that_is_not_a_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "tokenizer.json", b"{\"hello\": 1}");
    let e = Tokenizer::from_file(&p).unwrap_err();
    assert!(matches!(e, TextError::InvalidTokenizer { .. }), "{e}");
    assert!(e.to_string().contains("not a valid tokenizer"), "{e}");
}

#[test]
fn side_files_are_optional_but_must_be_valid() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tokenizer.json", TINY_TOKENIZER_JSON.as_bytes());
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.vocab_size(), 2);
    assert!(tok.chat_template().is_none() && tok.bos_id().is_none() && tok.eos_ids().is_empty());
    let e = tok.apply_chat_template(&[], &RenderOptions::default()).unwrap_err();
    assert!(matches!(e, TextError::NoChatTemplate));

    let bad = write(dir.path(), "tokenizer_config.json", b"{ not json");
    let msg = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{}: invalid JSON", bad.display())), "{msg}");

    // A list-form chat_template, token objects, and eos ids from generation_config + config.
    write(
        dir.path(),
        "tokenizer_config.json",
        br#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
            "bos_token": {"content": "a", "__type": "AddedToken"}, "eos_token": "b", "add_bos_token": true}"#,
    );
    write(dir.path(), "generation_config.json", br#"{"eos_token_id": [1, 7]}"#);
    write(dir.path(), "config.json", br#"{"eos_token_id": 9, "bos_token_id": 0}"#);
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.chat_template(), Some("D"));
    assert_eq!(tok.bos_id(), Some(0));
    assert_eq!(tok.eos_ids().iter().copied().collect::<Vec<_>>(), vec![1, 7, 9]);
    assert_eq!(tok.encode("b", true).unwrap(), vec![0, 1]);
    assert_eq!(tok.encode("b", false).unwrap(), vec![1]);

    // chat_template.jinja wins over tokenizer_config.json.
    write(dir.path(), "chat_template.jinja", b"J{{ messages | length }}");
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    let r = tok.apply_chat_template(&[ChatMessage::user("x")], &RenderOptions::default()).unwrap();
    assert_eq!(r.text, "J1");
}

#[test]
fn bad_gguf_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "model.gguf", b"{\"not\": \"gguf\"} padding padding");
    let e = Tokenizer::from_gguf(&p).unwrap_err();
    assert!(matches!(e, TextError::Gguf(_)));
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{}: not a GGUF file", p.display())), "{msg}");
}

#[test]
fn truncated_gguf() {
    let bytes = gguf_bytes();
    for cut in [10, 100, 5000, bytes.len() / 2, bytes.len() - 100] {
        let e = GgufFile::metadata_from_bytes(bytes[..cut].to_vec(), "cut.gguf").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("cut.gguf: "), "{msg}");
        assert!(msg.contains("truncated") || msg.contains("claims"), "cut {cut}: {msg}");
    }
    // Through the file API too.
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "half.gguf", &bytes[..bytes.len() / 3]);
    let msg = Tokenizer::from_gguf(&p).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{}: ", p.display())), "{msg}");
}

#[test]
fn huge_array_count_in_gguf() {
    let mut bytes = gguf_bytes();
    let key = b"tokenizer.ggml.tokens";
    let at = bytes.windows(key.len()).position(|w| w == key).expect("key present") + key.len();
    // key, then u32 type (array), u32 element type (string), u64 count.
    assert_eq!(&bytes[at..at + 8], &[9, 0, 0, 0, 8, 0, 0, 0]);
    bytes[at + 8..at + 16].copy_from_slice(&(u64::MAX / 3).to_le_bytes());
    let msg = GgufFile::metadata_from_bytes(bytes, "huge.gguf").unwrap_err().to_string();
    assert!(msg.contains("value of `tokenizer.ggml.tokens`") && msg.contains("claims"), "{msg}");
}

#[test]
fn unsupported_gguf_model_and_pre() {
    let g = GgufWriter::default()
        .string("tokenizer.ggml.model", "bert")
        .strings("tokenizer.ggml.tokens", &["a"])
        .file("bert.gguf");
    let msg = Tokenizer::from_gguf_file(&g).unwrap_err().to_string();
    assert!(msg.starts_with("bert.gguf: unsupported GGUF tokenizer model"), "{msg}");
    assert!(msg.contains("\"bert\"") && msg.contains("gpt2"), "{msg}");

    let g = GgufWriter::default()
        .string("tokenizer.ggml.model", "gpt2")
        .string("tokenizer.ggml.pre", "falcon")
        .strings("tokenizer.ggml.tokens", &["a"])
        .strings("tokenizer.ggml.merges", &[])
        .file("falcon.gguf");
    let msg = Tokenizer::from_gguf_file(&g).unwrap_err().to_string();
    assert!(msg.contains("tokenizer.ggml.pre = \"falcon\"") && msg.contains("deepseek-v3"), "{msg}");
}

#[test]
fn gguf_vocab_inconsistencies() {
    let base = || {
        GgufWriter::default()
            .string("tokenizer.ggml.model", "gpt2")
            .string("tokenizer.ggml.pre", "qwen2")
    };
    let msg = Tokenizer::from_gguf_file(&base().file("m.gguf")).unwrap_err().to_string();
    assert_eq!(msg, "m.gguf: metadata key `tokenizer.ggml.tokens` is missing");

    let g = base()
        .strings("tokenizer.ggml.tokens", &["a", "b"])
        .i32s("tokenizer.ggml.token_type", &[1])
        .file("m.gguf");
    let msg = Tokenizer::from_gguf_file(&g).unwrap_err().to_string();
    assert!(msg.contains("token_type has 1 entries but tokenizer.ggml.tokens has 2"), "{msg}");

    let g = base()
        .strings("tokenizer.ggml.tokens", &["a", "b"])
        .strings("tokenizer.ggml.merges", &["a b"])
        .file("m.gguf");
    let msg = Tokenizer::from_gguf_file(&g).unwrap_err().to_string();
    assert!(msg.starts_with("m.gguf: not a valid tokenizer: cannot build the BPE model"), "{msg}");

    let g = base()
        .strings("tokenizer.ggml.tokens", &["a", "b"])
        .strings("tokenizer.ggml.merges", &["ab"])
        .file("m.gguf");
    let msg = Tokenizer::from_gguf_file(&g).unwrap_err().to_string();
    assert!(msg.contains("tokenizer.ggml.merges[0] = \"ab\""), "{msg}");

    let g = base()
        .strings("tokenizer.ggml.tokens", &["a", "b"])
        .strings("tokenizer.ggml.merges", &[])
        .u32("tokenizer.ggml.bos_token_id", 5)
        .file("m.gguf");
    let msg = Tokenizer::from_gguf_file(&g).unwrap_err().to_string();
    assert!(msg.contains("bos_token_id = 5 is outside the vocabulary (2 tokens)"), "{msg}");

    let g = base()
        .strings("tokenizer.ggml.tokens", &["a", "b"])
        .strings("tokenizer.ggml.merges", &[])
        .string("tokenizer.ggml.eos_token_id", "1")
        .file("m.gguf");
    let msg = Tokenizer::from_gguf_file(&g).unwrap_err().to_string();
    assert!(msg.contains("`tokenizer.ggml.eos_token_id`: expected an integer"), "{msg}");
}

#[test]
fn template_syntax_error_names_the_line() {
    let e = ChatTemplate::new("line one\n{% if %}\n").unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("chat template: syntax error"), "{msg}");
    assert!(msg.contains("chat_template:2"), "{msg}");
}

#[test]
fn template_render_error_carries_the_jinja_message() {
    let t = ChatTemplate::new(
        "{% for m in messages %}\n{% if m.role == 'tool' %}\n{{ raise_exception('Tools are not supported') }}\n{% endif %}\n{% endfor %}",
    )
    .unwrap();
    let ok = t.render(&[ChatMessage::user("hi")], &RenderOptions::default()).unwrap();
    assert_eq!(ok.text, "");
    let msg = t
        .render(&[ChatMessage::tool("{}", None)], &RenderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("Tools are not supported") && msg.contains("chat_template:3"), "{msg}");

    let t = ChatTemplate::new("{{ messages[0].content + 1 }}").unwrap();
    let msg = t.render(&[ChatMessage::user("x")], &RenderOptions::default()).unwrap_err();
    assert!(msg.to_string().contains("chat_template:1"), "{msg}");
}

#[test]
fn the_fixture_dir_exists() {
    // Guards against a checkout without tests/fixtures (the goldens would not run).
    assert!(fixture_dir().join("tokenizer.json").is_file(), "{}", fixture_dir().display());
}
