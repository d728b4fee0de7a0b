//! Shared helpers for the model tests: fixture paths and golden-file readers.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use whale_model::causal_lm::argmax_last;
use whale_model::{CausalLm, SeqStep};
use std::path::PathBuf;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

pub fn golden(name: &str) -> Value {
    let path = fixture(name).join("golden.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

pub fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        other => panic!("not a number: {other}"),
    }
}

pub fn ids2(v: &Value) -> Vec<Vec<u32>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()).collect()
}

pub fn input_ids(g: &Value) -> Tensor {
    let ids = ids2(&g["input_ids"]);
    let (b, t) = (ids.len(), ids[0].len());
    Tensor::from_vec(ids.concat(), (b, t), &Device::Cpu).unwrap()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn to_vec(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Prefill both prompts, then decode one token at a time, each sequence through its own
/// KV cache, both in one batched forward per step.
pub fn greedy_with_cache(model: &dyn CausalLm, prompt: &Tensor, steps: usize) -> Vec<Vec<u32>> {
    let rows = prompt.to_vec2::<u32>().unwrap();
    let mut caches: Vec<_> = rows.iter().map(|_| model.new_cache()).collect();
    let mut inputs = rows.clone();
    let mut out = vec![Vec::new(); rows.len()];
    for _ in 0..steps {
        let mut batch: Vec<SeqStep> =
            inputs.iter().zip(caches.iter_mut()).map(|(ids, cache)| SeqStep { ids, cache, prompt: false }).collect();
        let logits = model.forward_seqs(&mut batch).unwrap();
        let next = argmax_last(&logits).unwrap();
        for ((o, input), &n) in out.iter_mut().zip(inputs.iter_mut()).zip(&next) {
            o.push(n);
            *input = vec![n];
        }
    }
    for c in &caches {
        assert_eq!(c.seq_len(), prompt.dim(1).unwrap() + steps - 1);
    }
    out
}
