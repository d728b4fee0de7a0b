//! `whale demo --quick` end to end (what the README promises a new user): every stage runs,
//! leaves its artifacts, and the served conversation answers with usage and cost. `--quick`
//! trains for seconds, so this checks the chain, not the accuracy (the full demo's measured
//! results are in models/whale-r1-tiny/README.md).

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn whale(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_whale")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn quick_demo_runs_every_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = out.to_str().unwrap();
    let (ok, stdout, stderr) = whale(&["demo", "--quick", "--out", o, "-t", "2"]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");

    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for stage in [
        "data", "tokenizer", "pretrain", "sft", "eval sft", "grpo", "eval grpo", "student base",
        "rejection sampling", "distill", "quantize", "eval student", "serve",
    ] {
        assert!(summary.contains(&format!("| {stage} |")), "no {stage} row in\n{summary}");
    }
    // Each stage is printed as the command that reruns it.
    for cmd in ["$ whale tokenizer train", "$ whale train --config", "$ whale sft", "$ whale grpo", "$ whale distill", "$ whale quantize"] {
        assert!(stdout.contains(cmd), "{cmd} not printed");
    }
    for name in ["sft", "grpo", "student"] {
        let r: Value = serde_json::from_str(&std::fs::read_to_string(out.join("eval").join(name).join("report.json")).unwrap()).unwrap();
        let p = r["pass_at_1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{name}: pass@1 {p}");
    }
    for run in ["pretrain", "sft", "grpo", "student", "distill"] {
        assert!(out.join(run).join("plots").join("loss.png").is_file(), "no loss plot for {run}");
    }
    // The GGUF student runs on its own (its tokenizer is embedded).
    let gguf = out.join("student-q8_0.gguf");
    let (ok, _, stderr) = whale(&["generate", "--model", gguf.to_str().unwrap(), "--prompt", "What is 12 + 34?", "--max-tokens", "8", "--temperature", "0"]);
    assert!(ok, "{stderr}");
    // Six turns over HTTP, each with DeepSeek's usage fields and a price.
    assert_eq!(stdout.matches("\n  usage: ").count(), 6, "{stdout}");
    assert!(stdout.contains("CNY"), "{stdout}");
    assert!(Path::new(&out.join("cache")).is_dir(), "the prefix cache's disk tier is under the run folder");

    // A second run refuses to overwrite without --force, and --force replaces only a demo's folder.
    let (ok, _, stderr) = whale(&["demo", "--quick", "--out", o]);
    assert!(!ok && stderr.contains("pass --force"), "{stderr}");
    let other = tmp.path().join("not-a-demo");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("precious.txt"), "keep me").unwrap();
    let (ok, _, stderr) = whale(&["demo", "--quick", "--force", "--out", other.to_str().unwrap()]);
    assert!(!ok && stderr.contains("not a `whale demo` folder"), "{stderr}");
    assert_eq!(std::fs::read_to_string(other.join("precious.txt")).unwrap(), "keep me");
}

#[test]
fn until_stops_after_the_named_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let (ok, stdout, stderr) = whale(&["demo", "--quick", "--until", "tokenizer", "--out", out.to_str().unwrap()]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("| data |") && summary.contains("| tokenizer |") && !summary.contains("| pretrain |"), "{summary}");
    assert!(out.join("tokenizer/tokenizer.json").is_file() && !out.join("pretrain").exists());
    let (ok, _, stderr) = whale(&["demo", "--quick", "--until", "pretraining", "--out", tmp.path().join("x").to_str().unwrap()]);
    assert!(!ok && stderr.contains("pretrain"), "{stderr}");
}
