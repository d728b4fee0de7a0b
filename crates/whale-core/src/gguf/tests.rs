//! Unit tests of the GGUF reader on small byte buffers built here: every value type, tensor
//! infos and alignment, and the hostile inputs (bad magic, versions, truncation, huge counts,
//! unknown types, out-of-bounds tensors) that must become errors, never panics.

use super::*;

/// A little GGUF writer for tests.
struct B {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<u8>,
    n_tensors: u64,
    version: u32,
}

fn s(out: &mut Vec<u8>, x: &str) {
    out.extend((x.len() as u64).to_le_bytes());
    out.extend(x.as_bytes());
}

impl B {
    fn new() -> Self {
        B { kv: vec![], n_kv: 0, tensors: vec![], n_tensors: 0, version: 3 }
    }
    /// A KV pair with a raw type id and raw value bytes.
    fn raw(mut self, key: &str, ty: u32, value: &[u8]) -> Self {
        s(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }
    fn string(self, key: &str, v: &str) -> Self {
        let mut b = vec![];
        s(&mut b, v);
        self.raw(key, 8, &b)
    }
    fn u32(self, key: &str, v: u32) -> Self {
        self.raw(key, 4, &v.to_le_bytes())
    }
    fn str_array(self, key: &str, v: &[&str]) -> Self {
        let mut b = 8u32.to_le_bytes().to_vec();
        b.extend((v.len() as u64).to_le_bytes());
        for x in v {
            s(&mut b, x);
        }
        self.raw(key, 9, &b)
    }
    fn tensor(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        s(&mut self.tensors, name);
        self.tensors.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend(d.to_le_bytes());
        }
        self.tensors.extend(ty.to_le_bytes());
        self.tensors.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }
    /// Header + padding to `align` + `data`.
    fn build_with(self, align: usize, data: &[u8]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.tensors);
        while !out.len().is_multiple_of(align) {
            out.push(0);
        }
        out.extend(data);
        out
    }
    fn build(self) -> Vec<u8> {
        self.build_with(32, &[])
    }
}

fn parse(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes(bytes, "test.gguf")
}

fn err(bytes: Vec<u8>) -> String {
    match parse(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("test.gguf: "), "error does not name the file: {msg}");
            msg
        }
    }
}

#[test]
fn every_value_type_round_trips() {
    let mut arr_u16 = 2u32.to_le_bytes().to_vec();
    arr_u16.extend(3u64.to_le_bytes());
    for x in [1u16, 2, 65535] {
        arr_u16.extend(x.to_le_bytes());
    }
    // An array of arrays of i32: [[7], []].
    let mut nested = 9u32.to_le_bytes().to_vec();
    nested.extend(2u64.to_le_bytes());
    nested.extend(5u32.to_le_bytes());
    nested.extend(1u64.to_le_bytes());
    nested.extend(7i32.to_le_bytes());
    nested.extend(5u32.to_le_bytes());
    nested.extend(0u64.to_le_bytes());
    let f = parse(
        B::new()
            .raw("u8", 0, &[200])
            .raw("i8", 1, &[0xff])
            .raw("u16", 2, &40000u16.to_le_bytes())
            .raw("i16", 3, &(-2i16).to_le_bytes())
            .u32("u32", 4_000_000_000)
            .raw("i32", 5, &(-5i32).to_le_bytes())
            .raw("f32", 6, &1.5f32.to_le_bytes())
            .raw("bool", 7, &[1])
            .string("str", "héllo")
            .raw("u64", 10, &u64::MAX.to_le_bytes())
            .raw("i64", 11, &i64::MIN.to_le_bytes())
            .raw("f64", 12, &0.25f64.to_le_bytes())
            .str_array("strs", &["a", "", "ü"])
            .raw("u16s", 9, &arr_u16)
            .raw("nested", 9, &nested)
            .build(),
    )
    .unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.get("u8"), Some(&GgufValue::U8(200)));
    assert_eq!(f.get("i8"), Some(&GgufValue::I8(-1)));
    assert_eq!(f.get_as::<u16>("u16").unwrap(), 40000);
    assert_eq!(f.get_as::<i16>("i16").unwrap(), -2);
    assert_eq!(f.get_u32("u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_i32("i32").unwrap(), -5);
    assert_eq!(f.get_f32("f32").unwrap(), 1.5);
    assert!(f.get_bool("bool").unwrap());
    assert_eq!(f.get_str("str").unwrap(), "héllo");
    assert_eq!(f.get_u64("u64").unwrap(), u64::MAX);
    assert_eq!(f.get_as::<i64>("i64").unwrap(), i64::MIN);
    assert_eq!(f.get_as::<f64>("f64").unwrap(), 0.25);
    assert_eq!(f.get_str_array("strs").unwrap(), &["a", "", "ü"]);
    assert_eq!(f.get("u16s"), Some(&GgufValue::Array(GgufArray::U16(vec![1, 2, 65535]))));
    assert_eq!(
        f.get("nested"),
        Some(&GgufValue::Array(GgufArray::Array(vec![
            GgufArray::I32(vec![7]),
            GgufArray::I32(vec![])
        ])))
    );
    let keys: Vec<_> = f.metadata().map(|(k, _)| k).collect();
    assert_eq!(keys[..3], ["u8", "i8", "u16"]);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.data_offset() % 32, 0);
}

#[test]
fn typed_accessors_name_key_and_types() {
    let f = parse(B::new().u32("n", 7).string("s", "x").u32("big", u32::MAX).build()).unwrap();
    // Integer widths convert when the value fits.
    assert_eq!(f.get_as::<u64>("n").unwrap(), 7);
    assert_eq!(f.get_as::<u8>("n").unwrap(), 7);
    let e = f.get_str("n").unwrap_err().to_string();
    assert_eq!(e, "test.gguf: metadata key `n`: expected string, found u32 value 7");
    let e = f.get_u32("s").unwrap_err().to_string();
    assert!(e.contains("key `s`: expected an integer that fits in u32, found string"), "{e}");
    let e = f.get_i32("big").unwrap_err().to_string();
    assert!(e.contains("fits in i32, found u32 value 4294967295"), "{e}");
    let e = f.get_str_array("s").unwrap_err().to_string();
    assert!(e.contains("expected array of string, found string"), "{e}");
    let e = f.get_str("nope").unwrap_err().to_string();
    assert_eq!(e, "test.gguf: metadata key `nope` is missing");
    assert_eq!(f.get_opt::<&str>("nope").unwrap(), None);
    assert!(f.get_opt::<&str>("n").is_err());
}

#[test]
fn version_2_is_read() {
    let mut b = B::new().u32("a", 1);
    b.version = 2;
    assert_eq!(parse(b.build()).unwrap().version(), 2);
}

#[test]
fn tensor_infos_alignment_and_data() {
    let data: Vec<u8> = (0..64u8).collect();
    // F32 [2,3] = 24 bytes at 0; Q8_0 [32] = 34 bytes at 32 (alignment 16 → 32 is aligned).
    let bytes = B::new()
        .u32("general.alignment", 16)
        .tensor("a", &[3, 2], 0, 0)
        .tensor("b", &[32], 8, 32)
        .build_with(16, &[data.clone(), vec![0; 2]].concat());
    let f = parse(bytes).unwrap();
    assert_eq!(f.alignment(), 16);
    assert_eq!(f.data_offset() % 16, 0);
    let a = f.tensor("a").unwrap();
    assert_eq!(a.shape(), vec![2, 3]);
    assert_eq!(a.ggml_type, Some(GgmlType::F32));
    assert_eq!(a.n_bytes, Some(24));
    assert_eq!(f.tensor_data(a).unwrap(), &data[..24]);
    let b = f.tensor("b").unwrap();
    assert_eq!((b.ggml_type, b.n_bytes, b.n_elements()), (Some(GgmlType::Q8_0), Some(34), 32));
    assert_eq!(f.tensor_data(b).unwrap()[..2], [32, 33]);
    assert_eq!(f.tensors().len(), 2);
}

#[test]
fn bad_magic() {
    let mut b = B::new().build();
    b[..4].copy_from_slice(b"GGML");
    assert_eq!(
        err(b),
        "test.gguf: not a GGUF file: expected magic \"GGUF\" (47 47 55 46), found 47 47 4d 4c"
    );
    assert!(err(vec![]).contains("found an empty file"));
    assert!(err(b"GG".to_vec()).contains("found 47 47"));
}

#[test]
fn unsupported_versions() {
    for (v, want) in [(1u32, "unsupported GGUF version 1"), (4, "unsupported GGUF version 4")] {
        let mut b = B::new();
        b.version = v;
        assert!(err(b.build()).contains(want));
    }
    let mut b = B::new();
    b.version = 3u32.swap_bytes();
    assert!(err(b.build()).contains("big-endian"));
}

#[test]
fn truncation_anywhere_is_an_error() {
    let full = B::new()
        .string("k", "value")
        .str_array("arr", &["x", "yy"])
        .tensor("t", &[4], 0, 0)
        .build_with(32, &[0; 16]);
    assert!(parse(full.clone()).is_ok());
    // Every cut is an error naming the file (never a panic): inside the header it is a
    // truncation, inside the data the tensor's bytes are missing.
    for cut in 0..full.len() {
        match parse(full[..cut].to_vec()) {
            Ok(_) => panic!("cut at {cut} accepted"),
            Err(e) => assert!(e.to_string().starts_with("test.gguf: "), "{e}"),
        }
    }
    let e = err(full[..60].to_vec());
    assert!(e.contains("truncated: key of metadata KV pair #1 needs 3 bytes at offset 58"), "{e}");
}

#[test]
fn truncated_string_names_the_key() {
    let mut b = B::new().string("general.name", "abcdef").build();
    // Header 24 bytes, key 8 + 12, type 4, string length 8: the value's bytes start at 56.
    b.truncate(58);
    let e = err(b);
    assert!(e.contains("value of `general.name`") && e.contains("truncated"), "{e}");
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    // KV count far beyond what the file could hold.
    let mut b = B::new().u32("a", 1).build();
    b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    let e = err(b);
    assert!(e.contains("metadata KV count") && e.contains("18446744073709551615"), "{e}");
    // Tensor count.
    let mut b = B::new().build();
    b[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(err(b).contains("tensor count"));
    // Array length.
    let mut arr = 4u32.to_le_bytes().to_vec();
    arr.extend((1u64 << 60).to_le_bytes());
    let e = err(B::new().raw("tokenizer.ggml.scores", 9, &arr).build());
    assert!(e.contains("value of `tokenizer.ggml.scores`") && e.contains("claims"), "{e}");
    // String length.
    let mut sv = (u64::MAX - 3).to_le_bytes().to_vec();
    sv.extend(b"abc");
    let e = err(B::new().raw("general.name", 8, &sv).build());
    assert!(e.contains("value of `general.name`") && e.contains("truncated"), "{e}");
    // Array of strings whose count is plausible in bytes but not in 8-byte lengths.
    let mut arr = 8u32.to_le_bytes().to_vec();
    arr.extend(100u64.to_le_bytes());
    arr.extend([0u8; 64]);
    assert!(err(B::new().raw("toks", 9, &arr).build()).contains("claims 100 entries"));
}

#[test]
fn unknown_value_types() {
    let e = err(B::new().raw("weird", 13, &[0; 8]).build());
    assert!(e.contains("value of `weird`") && e.contains("unknown value type 13"), "{e}");
    let mut arr = 77u32.to_le_bytes().to_vec();
    arr.extend(0u64.to_le_bytes());
    assert!(err(B::new().raw("arr", 9, &arr).build()).contains("unknown value type 77"));
}

#[test]
fn deep_nesting_is_refused() {
    let mut v = vec![];
    for _ in 0..100 {
        v.extend(9u32.to_le_bytes());
        v.extend(1u64.to_le_bytes());
    }
    v.extend(4u32.to_le_bytes());
    v.extend(0u64.to_le_bytes());
    let e = err(B::new().raw("deep", 9, &v).build());
    assert!(e.contains("nested deeper"), "{e}");
}

#[test]
fn invalid_keys_and_duplicates() {
    let mut b = B::new().u32("ab", 1).build();
    b[32] = 0xff; // first byte of the key "ab"
    assert!(err(b).contains("not valid UTF-8"));
    assert!(err(B::new().u32("a", 1).u32("a", 2).build()).contains("`a` appears twice"));
    let e = err(B::new().tensor("t", &[1], 0, 0).tensor("t", &[1], 0, 32).build_with(32, &[0; 64]));
    assert!(e.contains("tensor `t` appears twice"), "{e}");
}

#[test]
fn bad_alignment() {
    assert!(err(B::new().u32("general.alignment", 0).build()).contains("power of two"));
    assert!(err(B::new().u32("general.alignment", 24).build()).contains("power of two"));
    let e = err(B::new().string("general.alignment", "32").build());
    assert!(e.contains("`general.alignment`: expected u32, found string"), "{e}");
}

#[test]
fn bad_tensors() {
    // Past the end of the file.
    let e = err(B::new().tensor("w", &[16], 0, 0).build_with(32, &[0; 63]));
    assert!(e.contains("tensor `w`") && e.contains("past the end"), "{e}");
    // Offset overflowing u64.
    let e = err(B::new().tensor("w", &[1], 0, u64::MAX - 31).build());
    assert!(e.contains("past the end"), "{e}");
    // Unaligned offset.
    assert!(err(B::new().tensor("w", &[1], 0, 3).build_with(32, &[0; 8])).contains("multiple of"));
    // Too many dimensions, overflowing shape, block size mismatch.
    assert!(err(B::new().tensor("w", &[1; 5], 0, 0).build()).contains("at most 4"));
    assert!(err(B::new().tensor("w", &[u64::MAX, 4], 0, 0).build()).contains("overflows"));
    assert!(err(B::new().tensor("w", &[31], 8, 0).build_with(32, &[0; 64])).contains("block size"));
    // Unknown type: an error when opening strictly, accepted when reading metadata only.
    let bytes = B::new().u32("a", 1).tensor("w", &[4], 31, 0).build();
    assert!(err(bytes.clone()).contains("unknown ggml type id 31"));
    let f = GgufFile::metadata_from_bytes(bytes, "m.gguf").unwrap();
    assert_eq!(f.get_u32("a").unwrap(), 1);
    assert!(f.tensor_data(&f.tensors()[0]).is_err());
}

#[test]
fn metadata_only_accepts_a_partial_download() {
    let mut bytes = B::new().string("k", "v").tensor("w", &[1024], 0, 0).build_with(32, &[0; 100]);
    bytes.truncate(bytes.len() - 50);
    assert!(GgufFile::from_bytes(bytes.clone(), "p.gguf").is_err());
    let f = GgufFile::metadata_from_bytes(bytes, "p.gguf").unwrap();
    assert_eq!(f.get_str("k").unwrap(), "v");
    let e = f.tensor_data(f.tensor("w").unwrap()).unwrap_err().to_string();
    assert!(e.starts_with("p.gguf: tensor `w`: 4096 bytes"), "{e}");
}

#[test]
fn open_missing_file_names_the_path() {
    let e = GgufFile::open("/nonexistent/dir/model.gguf").unwrap_err().to_string();
    assert!(e.starts_with("/nonexistent/dir/model.gguf: "), "{e}");
}

#[test]
fn open_maps_a_file() {
    let dir = std::env::temp_dir().join(format!("whale-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("t.gguf");
    std::fs::write(&p, B::new().string("general.architecture", "qwen2").build()).unwrap();
    let f = GgufFile::open(&p).unwrap();
    assert_eq!(f.get_str("general.architecture").unwrap(), "qwen2");
    assert_eq!(f.path(), p);
    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert!(GgufFile::open(&empty).unwrap_err().to_string().contains("empty file"));
    std::fs::remove_dir_all(&dir).ok();
}
