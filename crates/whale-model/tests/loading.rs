//! Loading checkpoints in every supported layout and dtype, and the errors for bad ones:
//! each message must name the problem (file, field or tensor, expected vs found).

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use std::collections::HashMap;
use std::path::Path;
use whale_model::{load_model, CausalLm};

fn tensors(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("model.safetensors"), &Device::Cpu).unwrap()
}

/// A copy of a fixture folder whose tensors went through `edit` and config through `cfg`.
fn variant(
    name: &str,
    edit: impl FnOnce(&mut HashMap<String, Tensor>),
    cfg: impl FnOnce(&mut serde_json::Value),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut t = tensors(name);
    edit(&mut t);
    candle_core::safetensors::save(&t, dir.path().join("model.safetensors")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(name).join("config.json")).unwrap()).unwrap();
    cfg(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    match load_model(dir, DType::F32, &Device::Cpu) {
        Ok(_) => panic!("expected an error loading {}", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn logits(model: &dyn CausalLm, name: &str) -> Vec<f32> {
    let out = model.forward_hidden(&input_ids(&golden(name)), None).unwrap();
    to_vec(&model.lm_head(&out.hidden).unwrap())
}

#[test]
fn half_precision_checkpoints_load_and_match_within_their_precision() {
    for name in ["deepseek_v3_tiny", "qwen2_tiny"] {
        let reference = floats(&golden(name)["logits"]);
        for (dtype, tol) in [(DType::F16, 0.05), (DType::BF16, 0.3)] {
            // Stored in half precision, computed in f32: the error is the weights' rounding.
            let dir = variant(name, |t| t.values_mut().for_each(|v| *v = v.to_dtype(dtype).unwrap()), |_| {});
            let model = load_model(dir.path(), DType::F32, &Device::Cpu).unwrap();
            let d = max_abs_diff(&logits(model.as_ref(), name), &reference);
            assert!(d < tol, "{name} stored as {dtype:?}: max |Δ| = {d}");
        }
    }
    // Computed in bf16 end to end. Measured: median |Δ| 0.012 (Qwen2), 0.020 (V2), 0.027 (V3).
    // Bf16 rounding flips about 1 in 144 MoE expert choices of the DeepSeek fixtures, and a
    // flipped token's logits move by up to ~6, so only the median is bounded for MoE models.
    for (name, max_tol) in [("qwen2_tiny", Some(0.2)), ("deepseek_v2_lite_tiny", None), ("deepseek_v3_tiny", None)] {
        let reference = floats(&golden(name)["logits"]);
        let model = load_model(&fixture(name), DType::BF16, &Device::Cpu).unwrap();
        let ours = logits(model.as_ref(), name);
        let mut d: Vec<f32> = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs()).collect();
        d.sort_by(|a, b| a.total_cmp(b));
        assert!(d[d.len() / 2] < 0.05, "{name} in bf16: median |Δ| = {}", d[d.len() / 2]);
        if let Some(tol) = max_tol {
            assert!(d[d.len() - 1] < tol, "{name} in bf16: max |Δ| = {}", d[d.len() - 1]);
        }
    }
}

#[test]
fn sharded_checkpoint_with_index_loads_identically() {
    let name = "deepseek_v2_lite_tiny";
    let dir = tempfile::tempdir().unwrap();
    let all = tensors(name);
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [("model-00001-of-00002.safetensors", a), ("model-00002-of-00002.safetensors", b)] {
        let shard: HashMap<String, Tensor> = part.iter().map(|n| ((*n).clone(), all[*n].clone())).collect();
        candle_core::safetensors::save(&shard, dir.path().join(file)).unwrap();
        for n in part {
            weight_map.insert((*n).clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.path().join("model.safetensors.index.json"), index.to_string()).unwrap();
    std::fs::copy(fixture(name).join("config.json"), dir.path().join("config.json")).unwrap();
    let sharded = load_model(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let single = load_model(&fixture(name), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(logits(sharded.as_ref(), name), logits(single.as_ref(), name));
}

#[test]
fn missing_tensor_is_named() {
    let dir = variant("deepseek_v3_tiny", |t| {
        t.remove("model.layers.2.mlp.experts.5.up_proj.weight");
    }, |_| {});
    let e = load_err(dir.path());
    assert!(e.contains("missing tensor `model.layers.2.mlp.experts.5.up_proj.weight`"), "{e}");
}

#[test]
fn shape_mismatch_names_tensor_expected_and_found() {
    let dir = variant("qwen2_tiny", |t| {
        t.insert("model.layers.1.self_attn.k_proj.weight".into(), Tensor::zeros((16, 64), DType::F32, &Device::Cpu).unwrap());
    }, |_| {});
    let e = load_err(dir.path());
    assert!(e.contains("`model.layers.1.self_attn.k_proj.weight` has shape [16, 64], expected [32, 64]"), "{e}");
}

#[test]
fn unsupported_tensor_dtype_is_named() {
    let dir = variant("qwen2_tiny", |t| {
        let w = t["model.norm.weight"].to_dtype(DType::I64).unwrap();
        t.insert("model.norm.weight".into(), w);
    }, |_| {});
    let e = load_err(dir.path());
    assert!(e.contains("`model.norm.weight` has unsupported dtype I64"), "{e}");
}

#[test]
fn unknown_model_type_lists_the_supported_ones() {
    let dir = variant("qwen2_tiny", |_| {}, |c| c["model_type"] = "gpt_neox".into());
    let e = load_err(dir.path());
    assert!(e.contains("unknown model_type \"gpt_neox\""), "{e}");
    assert!(e.contains("deepseek_v2, deepseek_v3, llama, qwen2"), "{e}");
}

#[test]
fn invalid_config_values_name_the_field() {
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("deepseek_v3_tiny", Box::new(|c| c["num_experts_per_tok"] = 9.into()), "`num_experts_per_tok`: must be in 1..=8"),
        ("deepseek_v3_tiny", Box::new(|c| c["n_group"] = 3.into()), "`n_group`: must divide n_routed_experts (8), found 3"),
        ("deepseek_v3_tiny", Box::new(|c| c["topk_group"] = 5.into()), "`topk_group`: must be in 1..=4"),
        ("deepseek_v3_tiny", Box::new(|c| c["qk_rope_head_dim"] = 7.into()), "`qk_rope_head_dim`: must be even"),
        ("deepseek_v3_tiny", Box::new(|c| c["scoring_func"] = "relu".into()), "`scoring_func`: expected \"softmax\" or \"sigmoid\", found \"relu\""),
        ("deepseek_v2_lite_tiny", Box::new(|c| c["topk_method"] = "random".into()), "`topk_method`"),
        ("deepseek_v3_tiny", Box::new(|c| c["rope_scaling"]["beta_slow"] = 0.0.into()), "`rope_scaling.beta_fast`: need beta_fast > beta_slow > 0"),
        ("deepseek_v2_lite_tiny", Box::new(|c| {
            c["rope_scaling"]["type"] = "ntk".into();
            c["rope_scaling"]["rope_type"] = "ntk".into();
        }), "unsupported rope scaling \"ntk\""),
        ("qwen2_tiny", Box::new(|c| c["num_key_value_heads"] = 3.into()), "`num_key_value_heads`: must divide num_attention_heads (4), found 3"),
        ("qwen2_tiny", Box::new(|c| c["hidden_act"] = "gelu".into()), "`hidden_act`: only \"silu\" is supported"),
        ("qwen2_tiny", Box::new(|c| c["use_sliding_window"] = true.into()), "`use_sliding_window`"),
    ];
    for (name, edit, expected) in cases {
        let dir = variant(name, |_| {}, edit);
        let e = load_err(dir.path());
        assert!(e.contains("invalid config value") && e.contains(expected), "{name}: {e}\nexpected to contain: {expected}");
    }
}

#[test]
fn missing_or_mistyped_config_fields_are_named() {
    let dir = variant("qwen2_tiny", |_| {}, |c| {
        c.as_object_mut().unwrap().remove("hidden_size");
    });
    let e = load_err(dir.path());
    assert!(e.contains("config.json") && e.contains("missing field `hidden_size`"), "{e}");
    let dir = variant("qwen2_tiny", |_| {}, |c| c["vocab_size"] = "many".into());
    let e = load_err(dir.path());
    assert!(e.contains("invalid type") && e.contains("many"), "{e}");
}

#[test]
fn truncated_and_garbage_safetensors_are_reported_not_panicked() {
    let src = std::fs::read(fixture("qwen2_tiny").join("model.safetensors")).unwrap();
    for (what, bytes) in [("truncated", src[..src.len() / 2].to_vec()), ("garbage", b"not a safetensors file at all".to_vec()), ("empty", vec![])] {
        let dir = variant("qwen2_tiny", |_| {}, |_| {});
        std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
        let e = load_err(dir.path());
        assert!(e.contains("model.safetensors: not a valid safetensors file"), "{what}: {e}");
    }
}

#[test]
fn bad_folders_and_indexes_say_what_is_wrong() {
    let e = load_err(Path::new("/nonexistent/whale-model"));
    assert!(e.contains("/nonexistent/whale-model") && e.contains("does not exist"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = load_err(empty.path());
    assert!(e.contains("has no config.json"), "{e}");
    let dir = variant("qwen2_tiny", |_| {}, |_| {});
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("no *.safetensors files"), "{e}");
    let index = serde_json::json!({"weight_map": {"lm_head.weight": "model-00009.safetensors"}});
    std::fs::write(dir.path().join("model.safetensors.index.json"), index.to_string()).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("model-00009.safetensors listed in the index does not exist"), "{e}");
}

#[test]
fn out_of_range_ids_and_overlong_contexts_are_rejected() {
    let model = load_model(&fixture("deepseek_v3_tiny"), DType::F32, &Device::Cpu).unwrap();
    let mut cache = model.new_cache();
    let bad = Tensor::new(&[[1u32, 512]], &Device::Cpu).unwrap();
    let e = model.forward(&bad, &mut cache).unwrap_err().to_string();
    assert!(e.contains("token id 512 is out of range: vocab_size is 512"), "{e}");
    let long = Tensor::zeros((1, 257), DType::U32, &Device::Cpu).unwrap();
    let e = model.forward(&long, &mut cache).unwrap_err().to_string();
    assert!(e.contains("context too long") && e.contains("257") && e.contains("256"), "{e}");
    assert_eq!(cache.seq_len(), 0, "a rejected request must leave the cache untouched");
    let other = load_model(&fixture("qwen2_tiny"), DType::F32, &Device::Cpu).unwrap();
    let mut wrong = other.new_cache();
    let e = model.forward(&Tensor::new(&[[1u32]], &Device::Cpu).unwrap(), &mut wrong).unwrap_err().to_string();
    assert!(e.contains("KV cache has 2 layers, the model 4"), "{e}");
}
