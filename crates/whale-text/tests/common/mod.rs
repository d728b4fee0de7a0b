//! Shared helpers of the whale-text integration tests: fixture paths, the goldens, the
//! gzipped vocab-only GGUF, and a tiny GGUF writer for synthetic vocabularies.

#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;
use whale_core::gguf::GgufFile;
use whale_text::Tokenizer;

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tokenizer_r1_distill")
}

pub fn golden() -> &'static Value {
    static G: OnceLock<Value> = OnceLock::new();
    G.get_or_init(|| {
        let bytes = std::fs::read(fixture_dir().join("golden.json")).expect("golden.json");
        serde_json::from_slice(&bytes).expect("golden.json parses")
    })
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// The tokenizer loaded from tokenizer.json (+ tokenizer_config.json).
pub fn hf_tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_dir(fixture_dir()).expect("tokenizer.json loads"))
}

pub fn gguf_bytes() -> Vec<u8> {
    let gz = std::fs::read(fixture_dir().join("vocab_only.gguf.gz")).expect("vocab_only.gguf.gz");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut out).expect("gunzip");
    out
}

/// The tokenizer built from the GGUF header alone.
pub fn gguf_tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let g = GgufFile::metadata_from_bytes(gguf_bytes(), "vocab_only.gguf").expect("GGUF parses");
        Tokenizer::from_gguf_file(&g).expect("tokenizer from GGUF")
    })
}

/// A minimal GGUF v3 writer (metadata only, no tensors).
#[derive(Default)]
pub struct GgufWriter {
    kv: Vec<u8>,
    n: u64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl GgufWriter {
    fn key(&mut self, k: &str, ty: u32) {
        put_str(&mut self.kv, k);
        self.kv.extend(ty.to_le_bytes());
        self.n += 1;
    }
    pub fn string(mut self, k: &str, v: &str) -> Self {
        self.key(k, 8);
        put_str(&mut self.kv, v);
        self
    }
    pub fn u32(mut self, k: &str, v: u32) -> Self {
        self.key(k, 4);
        self.kv.extend(v.to_le_bytes());
        self
    }
    pub fn bool(mut self, k: &str, v: bool) -> Self {
        self.key(k, 7);
        self.kv.push(v as u8);
        self
    }
    pub fn strings(mut self, k: &str, v: &[&str]) -> Self {
        self.key(k, 9);
        self.kv.extend(8u32.to_le_bytes());
        self.kv.extend((v.len() as u64).to_le_bytes());
        for s in v {
            put_str(&mut self.kv, s);
        }
        self
    }
    pub fn f32s(mut self, k: &str, v: &[f32]) -> Self {
        self.key(k, 9);
        self.kv.extend(6u32.to_le_bytes());
        self.kv.extend((v.len() as u64).to_le_bytes());
        for x in v {
            self.kv.extend(x.to_le_bytes());
        }
        self
    }
    pub fn i32s(mut self, k: &str, v: &[i32]) -> Self {
        self.key(k, 9);
        self.kv.extend(5u32.to_le_bytes());
        self.kv.extend((v.len() as u64).to_le_bytes());
        for x in v {
            self.kv.extend(x.to_le_bytes());
        }
        self
    }
    pub fn build(self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.extend(self.n.to_le_bytes());
        out.extend(self.kv);
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out
    }
    pub fn file(self, name: &str) -> GgufFile {
        GgufFile::from_bytes(self.build(), name).expect("synthetic GGUF parses")
    }
}
