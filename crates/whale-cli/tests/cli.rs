//! The `whale` binary from the shell: its JSON outputs against the HF goldens, and its
//! error messages for bad input.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

fn golden(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("golden.json")).unwrap()).unwrap()
}

fn whale(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_whale")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn seq0_ids(g: &Value) -> Vec<u64> {
    g["input_ids"][0].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()
}

fn join(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

#[test]
fn logits_command_prints_the_reference_logits() {
    for name in ["deepseek_v3_tiny", "qwen2_tiny"] {
        let g = golden(name);
        let model = fixture(name);
        let (ok, out, err) = whale(&["logits", "--model", model.to_str().unwrap(), "--ids", &join(&seq0_ids(&g))]);
        assert!(ok, "{err}");
        let ours: Value = serde_json::from_str(&out).unwrap();
        let rows = ours["logits"].as_array().unwrap();
        assert_eq!(rows.len(), 24);
        let mut max = 0f64;
        for (r, gr) in rows.iter().zip(g["logits"][0].as_array().unwrap()) {
            for (a, b) in r.as_array().unwrap().iter().zip(gr.as_array().unwrap()) {
                max = max.max((a.as_f64().unwrap() - b.as_f64().unwrap()).abs());
            }
        }
        assert!(max < 1e-4, "{name}: max |Δ| = {max}");
    }
}

#[test]
fn generate_json_prints_the_reference_greedy_tokens() {
    for name in ["deepseek_v3_tiny", "deepseek_v2_lite_tiny", "qwen2_tiny"] {
        let g = golden(name);
        let model = fixture(name);
        let (ok, out, err) = whale(&[
            "generate", "--model", model.to_str().unwrap(), "--prompt-ids", &join(&seq0_ids(&g)),
            "--max-tokens", "16", "--temperature", "0", "--json",
        ]);
        assert!(ok, "{err}");
        let ours: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(ours["ids"], g["greedy_new_tokens"][0], "{name}");
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_code() {
    let (ok, _, err) = whale(&["logits", "--model", "/no/such/model", "--ids", "1,2"]);
    assert!(!ok && err.contains("/no/such/model") && err.contains("does not exist"), "{err}");
    let model = fixture("qwen2_tiny");
    let m = model.to_str().unwrap();
    let (ok, _, err) = whale(&["logits", "--model", m, "--ids", "1,x"]);
    assert!(!ok && err.contains("\"x\" is not a token id"), "{err}");
    let (ok, _, err) = whale(&["logits", "--model", m, "--ids", "1,99999"]);
    assert!(!ok && err.contains("token id 99999 is out of range: vocab_size is 512"), "{err}");
    let (ok, _, err) = whale(&["logits", "--model", m, "--ids", "1", "--dtype", "f8"]);
    assert!(!ok && err.contains("--dtype \"f8\" is not supported"), "{err}");
    let (ok, _, err) = whale(&["bench", "--model", m, "-p", "512"]);
    assert!(!ok && err.contains("exceed the model's context of 256 tokens"), "{err}");
}

#[test]
fn bench_reports_prefill_and_decode_rates() {
    let model = fixture("qwen2_tiny");
    let (ok, out, err) = whale(&["bench", "--model", model.to_str().unwrap(), "-p", "32", "-n", "8", "-r", "2", "--json"]);
    assert!(ok, "{err}");
    let rows: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["test"], "pp32");
    assert_eq!(rows[1]["test"], "tg8");
    for r in &rows {
        assert!(r["tokens_per_s_mean"].as_f64().unwrap() > 0.0);
        assert_eq!(r["samples"].as_array().unwrap().len(), 2);
    }
}
