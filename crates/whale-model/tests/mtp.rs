//! The multi-token-prediction module: created for training, saved, reloaded, and called
//! with and without its own cache. (No released tiny checkpoint has MTP weights, so these
//! tests check consistency between Whale's own paths; the block inside is the same code the
//! golden tests check.)

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::*;
use whale_core::config::{DeepSeekConfig, ModelConfig};
use whale_core::Weights;
use whale_model::{load_model, CausalLm, DeepSeekModel};

fn config_with_mtp() -> (serde_json::Value, DeepSeekConfig) {
    let path = fixture("deepseek_v3_tiny").join("config.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["num_nextn_predict_layers"] = 1.into();
    let cfg = match ModelConfig::from_json_str(&json.to_string(), &path).unwrap() {
        ModelConfig::DeepSeek(c) => c,
        _ => unreachable!(),
    };
    (json, cfg)
}

fn fresh_model() -> (VarMap, DeepSeekModel, serde_json::Value) {
    let (json, cfg) = config_with_mtp();
    let varmap = VarMap::new();
    // std 0.2 so the random model's logits are not flat.
    let w = Weights::for_training(&varmap, 0.2, DType::F32, &Device::Cpu);
    let model = DeepSeekModel::new(&cfg, &w).unwrap();
    (varmap, model, json)
}

#[test]
fn training_forward_mtp_logits_match_forward_mtp() {
    let (_vm, model, _) = fresh_model();
    assert_eq!(model.info().mtp_depth, 1);
    let ids = input_ids(&golden("deepseek_v3_tiny"));
    let out = model.forward_train(&ids).unwrap();
    assert_eq!(out.logits.dims(), &[2, 24, 512]);
    assert_eq!(out.mtp_logits.len(), 1);
    assert_eq!(out.mtp_logits[0].dims(), &[2, 23, 512]);
    // MoE routing of the 3 MoE layers plus the MTP block (layer index 4).
    let layers: Vec<usize> = out.routing.iter().map(|(l, _)| *l).collect();
    assert_eq!(layers, vec![1, 2, 3, 4]);

    let hidden = model.forward_hidden(&ids, None).unwrap().hidden;
    let (logits, _) = model
        .forward_mtp(1, &hidden.narrow(1, 0, 23).unwrap(), &ids.narrow(1, 1, 23).unwrap(), None)
        .unwrap();
    let d = max_abs_diff(&to_vec(&logits), &to_vec(&out.mtp_logits[0]));
    assert!(d < 1e-5, "max |Δ| = {d}");

    // With its own cache, one position at a time (as a speculative drafter runs it), for
    // each sequence separately.
    for seq in 0..2 {
        let h = hidden.narrow(0, seq, 1).unwrap();
        let ids1 = ids.narrow(0, seq, 1).unwrap();
        let mut cache = model.new_mtp_cache().unwrap();
        let mut rows = Vec::new();
        for p in 0..23 {
            let (l, _) = model
                .forward_mtp(1, &h.narrow(1, p, 1).unwrap(), &ids1.narrow(1, p + 1, 1).unwrap(), Some(&mut cache))
                .unwrap();
            rows.push(l);
        }
        let expected = to_vec(&out.mtp_logits[0].narrow(0, seq, 1).unwrap());
        let d = max_abs_diff(&to_vec(&Tensor::cat(&rows, 1).unwrap()), &expected);
        assert!(d < 1e-4, "sequence {seq}: cached MTP max |Δ| = {d}");
    }
    assert!(model.forward_mtp(2, &hidden, &ids, None).unwrap_err().to_string().contains("1 MTP module"));
}

#[test]
fn mtp_weights_round_trip_through_a_checkpoint() {
    let (varmap, model, json) = fresh_model();
    let dir = tempfile::tempdir().unwrap();
    varmap.save(dir.path().join("model.safetensors")).unwrap();
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    let loaded = load_model(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(loaded.info().mtp_depth, 1);
    let ids = input_ids(&golden("deepseek_v3_tiny"));
    let a = model.forward_train(&ids).unwrap();
    let b = loaded.forward_train(&ids).unwrap();
    // The trainable model runs the composed (differentiable) RMSNorm/RoPE, the loaded one
    // the fused kernels: equal up to f32 summation order (measured 1e-5).
    let d = max_abs_diff(&to_vec(&a.logits), &to_vec(&b.logits));
    assert!(d < 1e-4, "main logits after reload: max |Δ| = {d}");
    let d = max_abs_diff(&to_vec(&a.mtp_logits[0]), &to_vec(&b.mtp_logits[0]));
    assert!(d < 1e-4, "MTP logits after reload: max |Δ| = {d}");
}

#[test]
fn checkpoints_without_mtp_weights_load_without_the_module() {
    // The config says 1 MTP layer, the file has none (as in many conversions).
    let (json, _) = config_with_mtp();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("deepseek_v3_tiny").join("model.safetensors"), dir.path().join("model.safetensors")).unwrap();
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    let model = load_model(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.info().mtp_depth, 0);
    assert!(model.new_mtp_cache().is_none());
}
