//! Gemma 3 through a small GGUF file written here (random weights, llama.cpp's gemma3
//! names and metadata): the sliding window and its KV cache. Token-by-token decoding and
//! chunked prefill must give the logits of one full forward (1e-4), at positions past the
//! window too, and the window must change exactly the logits of positions that have keys
//! outside it.
//!
//! Whale's numbers for the real Gemma 3 270M (coherent text, perplexity) are in
//! docs/benchmarks.md; no HF golden is possible here without PyTorch.

use candle_core::{DType, Device, Tensor};
use whale_core::gguf::{GgmlType, GgufValue, GgufWriter, TensorData};
use whale_model::gguf::load_gguf;
use whale_model::{CausalLm, SeqStep};

const VOCAB: usize = 40;
const HIDDEN: usize = 32;
const FF: usize = 48;
const LAYERS: usize = 6;
const HEADS: usize = 2;
const HEAD_DIM: usize = 16;
const WINDOW: u32 = 4;

/// Deterministic values in [-scale, scale].
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn write_model(path: &std::path::Path, window: u32) {
    let mut w = GgufWriter::new();
    let u = |v: usize| GgufValue::U32(v as u32);
    for (k, v) in [
        ("general.architecture", GgufValue::String("gemma3".into())),
        ("gemma3.context_length", u(64)),
        ("gemma3.embedding_length", u(HIDDEN)),
        ("gemma3.block_count", u(LAYERS)),
        ("gemma3.feed_forward_length", u(FF)),
        ("gemma3.attention.head_count", u(HEADS)),
        ("gemma3.attention.head_count_kv", u(1)),
        ("gemma3.attention.key_length", u(HEAD_DIM)),
        ("gemma3.attention.value_length", u(HEAD_DIM)),
        ("gemma3.attention.layer_norm_rms_epsilon", GgufValue::F32(1e-6)),
        ("gemma3.rope.freq_base", GgufValue::F32(1e6)),
        ("gemma3.attention.sliding_window", GgufValue::U32(window)),
    ] {
        w.add_metadata(k, v).unwrap();
    }
    let mut seed = 0;
    let mut add = |w: &mut GgufWriter, name: String, shape: &[usize], scale: f32, offset: f32| {
        seed += 1;
        let n: usize = shape.iter().product();
        let data: Vec<u8> = values(n, seed, scale).iter().flat_map(|x| (x + offset).to_le_bytes()).collect();
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        w.add_tensor(name, &dims, GgmlType::F32, TensorData::Bytes(data)).unwrap();
    };
    add(&mut w, "token_embd.weight".into(), &[VOCAB, HIDDEN], 0.5, 0.0);
    add(&mut w, "output_norm.weight".into(), &[HIDDEN], 0.2, 1.0);
    for i in 0..LAYERS {
        let b = format!("blk.{i}.");
        for n in ["attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"] {
            add(&mut w, format!("{b}{n}.weight"), &[HIDDEN], 0.2, 1.0);
        }
        for n in ["attn_q_norm", "attn_k_norm"] {
            add(&mut w, format!("{b}{n}.weight"), &[HEAD_DIM], 0.2, 1.0);
        }
        add(&mut w, format!("{b}attn_q.weight"), &[HEADS * HEAD_DIM, HIDDEN], 0.3, 0.0);
        add(&mut w, format!("{b}attn_k.weight"), &[HEAD_DIM, HIDDEN], 0.3, 0.0);
        add(&mut w, format!("{b}attn_v.weight"), &[HEAD_DIM, HIDDEN], 0.3, 0.0);
        add(&mut w, format!("{b}attn_output.weight"), &[HIDDEN, HEADS * HEAD_DIM], 0.3, 0.0);
        add(&mut w, format!("{b}ffn_gate.weight"), &[FF, HIDDEN], 0.3, 0.0);
        add(&mut w, format!("{b}ffn_up.weight"), &[FF, HIDDEN], 0.3, 0.0);
        add(&mut w, format!("{b}ffn_down.weight"), &[HIDDEN, FF], 0.3, 0.0);
    }
    w.write(path).unwrap();
}

fn model(window: u32) -> Box<dyn CausalLm> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("whale-gemma3-{}-{n}-w{window}.gguf", std::process::id()));
    write_model(&path, window);
    let m = load_gguf(&path, DType::F32, &Device::Cpu).unwrap();
    std::fs::remove_file(&path).ok();
    m
}

const IDS: [u32; 11] = [2, 7, 19, 33, 4, 11, 25, 38, 1, 16, 9];

/// `(t, vocab)` logits of one full forward.
fn full(m: &dyn CausalLm) -> Vec<Vec<f32>> {
    let ids = Tensor::new(&IDS[..], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let h = m.forward_hidden(&ids, None).unwrap().hidden;
    m.lm_head(&h).unwrap().squeeze(0).unwrap().to_vec2().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn cached_decoding_and_chunked_prefill_match_the_full_forward() {
    let m = model(WINDOW);
    let want = full(m.as_ref());
    // One token at a time through the cache.
    let mut cache = m.new_cache();
    for (i, &id) in IDS.iter().enumerate() {
        let got = m.forward_seqs(&mut [SeqStep { ids: &[id], cache: &mut cache, prompt: false }]).unwrap();
        let d = max_diff(&got.squeeze(0).unwrap().to_vec1().unwrap(), &want[i]);
        assert!(d < 1e-4, "position {i}: max |Δ| = {d}");
    }
    // Chunks of 3, 5 and 3 tokens: the second and third start past the window.
    let mut cache = m.new_cache();
    let mut at = 0;
    for len in [3, 5, 3] {
        let got = m.forward_seqs(&mut [SeqStep { ids: &IDS[at..at + len], cache: &mut cache, prompt: false }]).unwrap();
        at += len;
        let d = max_diff(&got.squeeze(0).unwrap().to_vec1().unwrap(), &want[at - 1]);
        assert!(d < 1e-4, "chunk ending at {at}: max |Δ| = {d}");
    }
}

/// Batched decoding (the fused decode attention): three sequences at different depths, two
/// past the window, each decode one token together and get the full forward's logits, and
/// the same bits as when decoding alone.
#[test]
fn batched_decode_steps_match_the_full_forward_and_decoding_alone() {
    let m = model(WINDOW);
    let want = full(m.as_ref());
    let depths = [2usize, 6, 10];
    let prefilled = || -> Vec<_> {
        depths
            .iter()
            .map(|&d| {
                let mut c = m.new_cache();
                m.forward_seqs(&mut [SeqStep { ids: &IDS[..d], cache: &mut c, prompt: false }]).unwrap();
                c
            })
            .collect()
    };
    let mut caches = prefilled();
    let mut steps: Vec<SeqStep<'_>> = caches.iter_mut().zip(depths).map(|(cache, d)| SeqStep { ids: &IDS[d..d + 1], cache, prompt: false }).collect();
    let got: Vec<Vec<f32>> = m.forward_seqs(&mut steps).unwrap().to_vec2().unwrap();
    for (row, &d) in got.iter().zip(&depths) {
        let diff = max_diff(row, &want[d]);
        assert!(diff < 1e-4, "sequence at depth {d}: max |Δ| = {diff}");
    }
    for (i, (mut cache, &d)) in prefilled().into_iter().zip(&depths).enumerate() {
        let alone = m.forward_seqs(&mut [SeqStep { ids: &IDS[d..d + 1], cache: &mut cache, prompt: false }]).unwrap();
        assert_eq!(alone.squeeze(0).unwrap().to_vec1::<f32>().unwrap(), got[i], "depth {d}: batched and alone differ");
    }
}

#[test]
fn the_window_changes_only_positions_with_keys_outside_it() {
    let narrow = full(model(WINDOW).as_ref());
    let wide = full(model(64).as_ref());
    for (p, (a, b)) in narrow.iter().zip(&wide).enumerate() {
        let d = max_diff(a, b);
        if p < WINDOW as usize {
            assert!(d < 1e-5, "position {p} sees all its keys in both: max |Δ| = {d}");
        } else {
            assert!(d > 1e-3, "position {p} has keys outside the window, yet the logits agree (max |Δ| = {d})");
        }
    }
}
