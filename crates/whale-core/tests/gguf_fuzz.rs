//! Hostile-input robustness of the GGUF reader: mutated and truncated GGUF files must give
//! a `GgufError`, never a panic, and must never make the reader allocate much more than the
//! file's own size.
//!
//! A deterministic mutation fuzzer (no external fuzzing engine, so it runs in `cargo test`):
//! seeds are the committed corpus in `tests/fixtures/gguf_corpus/` (small valid files written
//! by `GgufWriter`, plus inputs that once broke a reader) and files built here; each round
//! applies 1-4 random mutations (bit flips, interesting bytes, huge u64/u32 counts written
//! over length and count fields, truncation, insertion, deletion, chunk duplication), then
//! parses the result with both `from_bytes` and `metadata_from_bytes` and reads every
//! metadata value and tensor it reports. A counting global allocator records the largest
//! single allocation and the peak bytes in use during each parse.
//!
//! To add the current seeds to the corpus: `cargo test -p whale-core --test gguf_fuzz -- --ignored`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use whale_core::gguf::{GgmlType, GgufArray, GgufFile, GgufValue, GgufWriter, TensorData};

// ---- allocation accounting (per thread, so parallel tests do not disturb each other) -----

struct Counting;
thread_local! {
    static IN_USE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(n: usize) {
    let _ = IN_USE.try_with(|u| {
        let v = u.get() + n;
        u.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
    let _ = LARGEST.try_with(|l| l.set(l.get().max(n)));
}
fn note_free(n: usize) {
    let _ = IN_USE.try_with(|u| u.set(u.get().saturating_sub(n)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note_alloc(l.size());
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note_free(l.size());
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note_free(l.size());
        note_alloc(new);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// (peak bytes in use above the starting level, largest single allocation) while `f` runs.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let base = IN_USE.with(|u| u.get());
    PEAK.with(|p| p.set(base));
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, PEAK.with(|p| p.get()) - base, LARGEST.with(|l| l.get()))
}

// ---- seeds ------------------------------------------------------------------------------

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_corpus")
}

fn build(f: impl FnOnce(&mut GgufWriter)) -> Vec<u8> {
    let mut w = GgufWriter::new();
    f(&mut w);
    let mut out = Vec::new();
    w.write_to(&mut out).unwrap();
    out
}

/// Small valid files covering every value type, nesting, alignment and several tensor types.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use GgufArray as A;
    use GgufValue as V;
    vec![
        ("empty.gguf", build(|_| {})),
        (
            "metadata.gguf",
            build(|w| {
                w.add_metadata("general.architecture", V::String("qwen2".into())).unwrap();
                w.add_metadata("qwen2.block_count", V::U32(2)).unwrap();
                w.add_metadata("f", V::F32(0.5)).unwrap();
                w.add_metadata("b", V::Bool(true)).unwrap();
                w.add_metadata("i64", V::I64(-3)).unwrap();
                w.add_metadata("u16", V::U16(9)).unwrap();
                w.add_metadata("tokenizer.ggml.tokens", V::Array(A::String(vec!["a".into(), "bc".into(), "".into()])))
                    .unwrap();
                w.add_metadata("tokenizer.ggml.scores", V::Array(A::F32(vec![0.0, -1.0, 2.5]))).unwrap();
                w.add_metadata("tokenizer.ggml.token_type", V::Array(A::I32(vec![1, 1, 3]))).unwrap();
                w.add_metadata("nested", V::Array(A::Array(vec![A::U8(vec![1, 2]), A::Array(vec![A::U64(vec![7])])])))
                    .unwrap();
            }),
        ),
        (
            "tensors.gguf",
            build(|w| {
                w.add_metadata("general.architecture", V::String("llama".into())).unwrap();
                w.add_tensor("token_embd.weight", &[32, 2], GgmlType::Q8_0, TensorData::Bytes(vec![1; 68])).unwrap();
                w.add_tensor("output_norm.weight", &[3], GgmlType::F32, TensorData::Bytes(vec![0; 12])).unwrap();
                w.add_tensor("blk.0.ffn_up.weight", &[256, 1], GgmlType::Q4_K, TensorData::Bytes(vec![9; 144])).unwrap();
                w.add_tensor("f16", &[2, 2, 2], GgmlType::F16, TensorData::Bytes(vec![0x3c; 16])).unwrap();
            }),
        ),
        (
            "aligned64.gguf",
            build(|w| {
                w.set_alignment(64).unwrap();
                w.add_metadata("s", V::String("x".repeat(40))).unwrap();
                w.add_tensor("a", &[5], GgmlType::F32, TensorData::Bytes(vec![2; 20])).unwrap();
                w.add_tensor("b", &[7], GgmlType::I8, TensorData::Bytes(vec![3; 7])).unwrap();
            }),
        ),
    ]
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = match std::fs::read_dir(corpus_dir()) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    assert!(files.len() >= 4, "the committed corpus in {} is missing", corpus_dir().display());
    files.extend(seeds().into_iter().map(|(n, b)| (format!("built:{n}"), b)));
    files
}

// ---- mutation ---------------------------------------------------------------------------

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, fast, no dependency.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING_U64: &[u64] = &[
    0,
    1,
    7,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    1 << 62,
    i64::MAX as u64,
    u64::MAX,
    u64::MAX - 7,
];

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = [0u8, 0xff, 0x7f, 0x80, 1, 9, 12, 13][rng.below(8)];
            }
            // Counts, lengths, dims and offsets are u64s: overwrite one with a hostile value,
            // preferably at an 8-aligned or field-like position.
            2 | 3 if len >= 8 => {
                let i = rng.below(len - 7);
                let v = INTERESTING_U64[rng.below(INTERESTING_U64.len())];
                data[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            4 if len >= 4 => {
                let i = rng.below(len - 3);
                let v = [0u32, 13, 9, 0xffff_ffff, 39, 100, 4, 5][rng.below(8)];
                data[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            5 => data.truncate(rng.below(len + 1)),
            6 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(16.min(len - i));
                data.drain(i..i + n);
            }
            _ => {
                let i = rng.below(len + 1);
                let n = rng.below(32);
                let chunk: Vec<u8> = if len > 0 && rng.below(2) == 0 {
                    let s = rng.below(len);
                    data[s..(s + n).min(len)].to_vec()
                } else {
                    (0..n).map(|_| rng.next() as u8).collect()
                };
                data.splice(i..i, chunk);
            }
        }
    }
}

/// Parses `bytes` both ways and touches everything a caller could read; returns the error
/// message (or "ok"). Panics propagate to the caller.
fn exercise(bytes: &[u8]) -> String {
    let strict = GgufFile::from_bytes(bytes.to_vec(), "fuzz.gguf");
    let loose = GgufFile::metadata_from_bytes(bytes.to_vec(), "fuzz.gguf");
    for f in [&strict, &loose].into_iter().flatten() {
        for (k, v) in f.metadata() {
            let _ = (k.len(), v.value_type(), v.type_description());
            let _ = f.get_str(k);
            let _ = f.get_u32(k);
            let _ = f.get_u64(k);
            let _ = f.get_i32(k);
            let _ = f.get_f32(k);
            let _ = f.get_bool(k);
            let _ = f.get_str_array(k);
            let _ = f.get_f32_array(k);
            let _ = f.get_i32_array(k);
        }
        for t in f.tensors() {
            let _ = (t.n_elements(), t.shape());
            if let Ok(d) = f.tensor_data(t) {
                assert_eq!(Some(d.len() as u64), t.n_bytes);
            }
        }
    }
    match strict {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

fn check_one(name: &str, round: usize, bytes: &[u8]) {
    let r = std::panic::catch_unwind(|| measure(|| exercise(bytes)));
    match r {
        Err(_) => {
            let dump = std::env::temp_dir().join(format!("gguf-fuzz-crash-{round}.gguf"));
            let _ = std::fs::write(&dump, bytes);
            panic!("GGUF reader panicked on a mutant of {name} (round {round}); input saved to {}", dump.display());
        }
        Ok((msg, peak, largest)) => {
            // Two owned copies of the input are made by `exercise` itself; beyond that the
            // reader may use a small multiple of the file size (typed arrays, strings, infos).
            let limit = 64 * bytes.len() + (1 << 20);
            assert!(
                peak <= limit && largest <= limit,
                "{name} round {round}: parsing {} bytes used {peak} bytes at peak (largest block {largest}), limit {limit}; error: {msg}",
                bytes.len()
            );
            if msg != "ok" {
                assert!(msg.starts_with("fuzz.gguf: "), "error must name the file: {msg}");
            }
        }
    }
}

#[test]
fn corpus_files_parse_cleanly_or_fail_with_errors() {
    for (name, bytes) in corpus() {
        check_one(&name, 0, &bytes);
    }
    for (name, bytes) in seeds() {
        let f = GgufFile::from_bytes(bytes, name).unwrap_or_else(|e| panic!("seed {name} must be valid: {e}"));
        for t in f.tensors() {
            f.tensor_data(t).unwrap();
        }
    }
}

#[test]
fn mutated_files_never_panic_or_allocate_hugely() {
    let corpus = corpus();
    let rounds: usize = std::env::var("WHALE_GGUF_FUZZ_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut outcomes = std::collections::HashMap::<String, usize>::new();
    for round in 0..rounds {
        let (name, seed) = &corpus[rng.below(corpus.len())];
        let mut bytes = seed.clone();
        mutate(&mut rng, &mut bytes);
        check_one(name, round, &bytes);
        let msg = exercise(&bytes);
        let kind = msg.split(':').nth(1).unwrap_or("ok").trim().split(' ').next().unwrap_or("").to_string();
        *outcomes.entry(kind).or_default() += 1;
    }
    // The fuzzer must reach past the header: some mutants parse, many fail in different ways.
    assert!(outcomes.len() >= 5, "mutations too shallow: {outcomes:?}");
}

#[test]
fn mutants_also_survive_the_mmap_path() {
    let dir = std::env::temp_dir().join(format!("whale-gguf-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = corpus();
    let mut rng = Rng(42);
    for round in 0..300 {
        let (_, seed) = &corpus[rng.below(corpus.len())];
        let mut bytes = seed.clone();
        mutate(&mut rng, &mut bytes);
        let p = dir.join("m.gguf");
        std::fs::write(&p, &bytes).unwrap();
        let r = std::panic::catch_unwind(|| {
            let _ = GgufFile::open(&p).map(|f| f.tensors().iter().map(|t| f.tensor_data(t).map(|d| d.len())).count());
            let _ = GgufFile::open_metadata(&p).map(|f| f.metadata().count());
        });
        assert!(r.is_ok(), "open() panicked on mmap mutant round {round}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hand_made_hostile_headers_are_clean_errors() {
    let mut h = b"GGUF".to_vec();
    h.extend_from_slice(&3u32.to_le_bytes());
    let with = |n_t: u64, n_kv: u64, rest: &[u8]| {
        let mut v = h.clone();
        v.extend_from_slice(&n_t.to_le_bytes());
        v.extend_from_slice(&n_kv.to_le_bytes());
        v.extend_from_slice(rest);
        v
    };
    let mut huge_string = 3u64.to_le_bytes().to_vec();
    huge_string.extend_from_slice(b"key");
    huge_string.extend_from_slice(&8u32.to_le_bytes());
    huge_string.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut huge_array = 1u64.to_le_bytes().to_vec();
    huge_array.extend_from_slice(b"a");
    huge_array.extend_from_slice(&9u32.to_le_bytes());
    huge_array.extend_from_slice(&4u32.to_le_bytes());
    huge_array.extend_from_slice(&(1u64 << 61).to_le_bytes());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "expected magic"),
        (b"GGUF".to_vec(), "truncated"),
        (with(u64::MAX, 0, &[]), "tensor count"),
        (with(0, u64::MAX, &[]), "metadata KV count"),
        (with(0, 1, &huge_string), "value of `key`"),
        (with(0, 1, &huge_array), "claims 2305843009213693952 entries"),
    ];
    for (bytes, needle) in cases {
        let e = GgufFile::from_bytes(bytes.clone(), "h.gguf").unwrap_err().to_string();
        assert!(e.contains(needle), "expected `{needle}` in: {e}");
        check_one("hand-made", 0, &bytes);
    }
}

#[test]
#[ignore = "writes the seed files into the committed corpus directory"]
fn regenerate_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}
