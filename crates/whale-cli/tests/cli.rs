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
    let (ok, _, err) = whale(&["logits", "--model", m, "--ids", "1", "--device", "tpu"]);
    assert!(!ok && err.contains("--device \"tpu\" is not supported"), "{err}");
    if !cfg!(feature = "cuda") {
        let (ok, _, err) = whale(&["logits", "--model", m, "--ids", "1", "--device", "cuda:0"]);
        assert!(!ok && err.contains("built without CUDA"), "{err}");
    }
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

#[test]
fn tokenize_matches_the_golden_ids_and_decodes_back() {
    let dir = fixture("tokenizer_r1_distill");
    let g: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    let case = &g["strings"][0];
    let text = case["text"].as_str().unwrap();
    let tok = dir.join("tokenizer.json");
    let (ok, out, err) = whale(&["tokenize", "--tokenizer", tok.to_str().unwrap(), "--text", text, "--json"]);
    assert!(ok, "{err}");
    let ours: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ours["ids"], case["ids_with_bos"]);
    let (ok, out, err) = whale(&["tokenize", "--tokenizer", tok.to_str().unwrap(), "--text", text, "--no-special"]);
    assert!(ok, "{err}");
    let ids: Vec<u64> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(out.trim(), join(&ids));
    let (ok, out, err) = whale(&["tokenize", "--tokenizer", dir.to_str().unwrap(), "--decode", "--text", &join(&ids), "--json"]);
    assert!(ok, "{err}");
    let back: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(back["text"], case["decoded"]);
}

#[test]
fn tokenizer_and_model_path_errors_name_the_file() {
    let (ok, _, err) = whale(&["tokenize", "--tokenizer", "/no/tokenizer.json", "--text", "hi"]);
    assert!(!ok && err.contains("/no/tokenizer.json"), "{err}");
    let tmp = std::env::temp_dir().join(format!("whale-cli-test-{}.gguf", std::process::id()));
    std::fs::write(&tmp, b"GGUF").unwrap();
    let (ok, _, err) = whale(&["generate", "--model", tmp.to_str().unwrap(), "--prompt-ids", "1"]);
    std::fs::remove_file(&tmp).ok();
    // A 4-byte "GGUF" is a truncated file: the error names it.
    assert!(!ok && err.contains(tmp.to_str().unwrap()) && err.contains("truncated"), "{err}");
}

/// A model folder with a tokenizer: the tiny DeepSeek-V3 weights and the 512-token R1-style
/// tokenizer of `tests/fixtures/tiny_chat_tokenizer`.
fn chat_model() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("whale-cli-chat-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (src, name) in [("deepseek_v3_tiny", "config.json"), ("deepseek_v3_tiny", "model.safetensors"),
                        ("tiny_chat_tokenizer", "tokenizer.json"), ("tiny_chat_tokenizer", "tokenizer_config.json")] {
        std::fs::copy(fixture(src).join(name), dir.join(name)).unwrap();
    }
    dir
}

fn whale_stdin(args: &[&str], input: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_whale"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The child may fail (and close stdin) before reading everything: a broken pipe here is
    // part of what the caller is testing, not a test failure.
    if let Err(e) = child.stdin.take().unwrap().write_all(input.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn text_generation_goes_through_the_chat_template_and_splits_reasoning() {
    let dir = chat_model();
    let m = dir.to_str().unwrap();
    let (ok, out, err) = whale(&["generate", "--model", m, "--prompt", "What is 2 plus 3?", "--max-tokens", "12", "--temperature", "0", "--json"]);
    assert!(ok, "{err}");
    let text: Value = serde_json::from_str(&out).unwrap();
    // The same prompt rendered by hand: BOS, <｜User｜>, the text, <｜Assistant｜><think>\n.
    let (ok, rendered, err) = whale(&["tokenize", "--tokenizer", m, "--no-special", "--text", "<｜begin▁of▁sentence｜><｜User｜>What is 2 plus 3?<｜Assistant｜><think>\n", "--json"]);
    assert!(ok, "{err}");
    let rendered: Value = serde_json::from_str(&rendered).unwrap();
    let ids = join(&rendered["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect::<Vec<_>>());
    assert_eq!(text["usage"]["prompt_tokens"].as_u64().unwrap() as usize, rendered["ids"].as_array().unwrap().len());
    let (ok, out, err) = whale(&["generate", "--model", m, "--prompt-ids", &ids, "--max-tokens", "12", "--temperature", "0", "--json"]);
    assert!(ok, "{err}");
    let by_ids: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(text["ids"], by_ids["ids"]);
    // The template prefilled <think>: everything before a </think> is reasoning.
    let reasoning = text["reasoning_content"].as_str().unwrap();
    let content = text["content"].as_str().unwrap();
    assert!(!reasoning.is_empty() || !content.is_empty());
    assert_eq!(text["finish_reason"], "length");

    // A thinking budget of 3 forces </think> (id 511) after 3 reasoning tokens.
    let (ok, out, err) = whale(&["generate", "--model", m, "--prompt", "What is 2 plus 3?", "--max-tokens", "8", "--temperature", "0", "--thinking-budget", "3", "--json"]);
    assert!(ok, "{err}");
    let b: Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<u64> = b["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(ids[3], 511, "{ids:?}");
    assert_eq!(b["usage"]["reasoning_tokens"], 3);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn seeded_text_generation_is_reproducible_and_stop_strings_cut() {
    let dir = chat_model();
    let m = dir.to_str().unwrap();
    let gen = |seed: &str| {
        let (ok, out, err) = whale(&["generate", "--model", m, "--prompt", "hello", "--max-tokens", "16", "--seed", seed, "--json", "--top-logprobs", "2"]);
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let (a, b) = (gen("11"), gen("11"));
    assert_eq!(a["ids"], b["ids"]);
    assert_eq!(a["seed"], 11);
    assert_eq!(a["logprobs"].as_array().unwrap().len(), a["ids"].as_array().unwrap().len());
    // Stop at the text of the 5th generated token: the output ends before it.
    let text = a["text"].as_str().unwrap().to_string();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > 6 {
        let stop: String = chars[4..6].iter().collect();
        let (ok, out, err) = whale(&["generate", "--model", m, "--prompt", "hello", "--max-tokens", "16", "--seed", "11", "--json", "--stop", &stop]);
        assert!(ok, "{err}");
        let s: Value = serde_json::from_str(&out).unwrap();
        let shown = format!("{}{}", s["reasoning_content"].as_str().unwrap(), s["content"].as_str().unwrap());
        assert!(!shown.contains(&stop), "{shown:?} contains {stop:?}");
        assert_eq!(s["finish_reason"], "stop");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn chat_reads_turns_from_piped_stdin() {
    let dir = chat_model();
    let m = dir.to_str().unwrap();
    let save = dir.join("transcript.json");
    let input = format!("What is 2 plus 3?\n/system Be brief.\n/think off\nAnd 4 plus 4?\n/save {}\n/exit\nnever read\n", save.display());
    let (ok, out, err) = whale_stdin(&["chat", "--model", m, "--max-tokens", "10", "--temperature", "0"], &input);
    assert!(ok, "{err}");
    assert_eq!(err.matches("tok/s").count(), 2, "{err}");
    assert!(err.contains("[system message set]") && err.contains("[saved 5 messages"), "{err}");
    // First answer shows its reasoning in markers (stdout is not a terminal); the second,
    // after /think off, does not.
    assert!(out.starts_with("<think>\n"), "{out}");
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&save).unwrap()).unwrap();
    let roles: Vec<&str> = t["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
    assert_eq!(t["messages"][3]["content"], "And 4 plus 4?");
    // The greedy first answer equals `whale generate` on the same prompt.
    let (ok, g, err) = whale(&["generate", "--model", m, "--prompt", "What is 2 plus 3?", "--max-tokens", "10", "--temperature", "0", "--json"]);
    assert!(ok, "{err}");
    let g: Value = serde_json::from_str(&g).unwrap();
    assert_eq!(t["messages"][2]["content"], g["content"]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn chat_errors_are_clear() {
    let model = fixture("deepseek_v3_tiny");
    let (ok, _, err) = whale_stdin(&["chat", "--model", model.to_str().unwrap()], "hi\n");
    assert!(!ok && err.contains("has no tokenizer.json: pass --tokenizer PATH"), "{err}");
    let big = fixture("tokenizer_r1_distill");
    let (ok, _, err) = whale_stdin(&["chat", "--model", model.to_str().unwrap(), "--tokenizer", big.to_str().unwrap()], "hi\n");
    assert!(!ok && err.contains("tokens but the model's vocab_size is 512"), "{err}");
    let dir = chat_model();
    let long = "What is 2 plus 3? ".repeat(40);
    let (ok, _, err) = whale_stdin(&["chat", "--model", dir.to_str().unwrap()], &format!("{long}\n"));
    assert!(!ok && err.contains("but the context is 256"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// The prefix cache behind `whale chat`: the second turn re-uses the first turn's blocks in
/// RAM, and with `--cache-dir` a new process starts with the previous one's blocks.
#[test]
fn chat_turns_and_restarts_hit_the_prefix_cache() {
    let dir = chat_model();
    let m = dir.to_str().unwrap();
    let cache = dir.join("kv-cache");
    let system = "You are a careful assistant. Think about every question step by step, check each result twice, and answer in one short sentence.";
    let input = format!("/system {system}\nWhat is 2 plus 3?\nAnd 4 plus 4?\n/exit\n");
    let cached = |err: &str| -> Vec<usize> {
        err.lines()
            .filter_map(|l| l.split(" cached)").next()?.rsplit('(').next()?.parse().ok())
            .collect()
    };
    let args = ["chat", "--model", m, "--max-tokens", "6", "--temperature", "0", "--cache-dir", cache.to_str().unwrap()];
    let (ok, _, err) = whale_stdin(&args, &input);
    assert!(ok, "{err}");
    let first = cached(&err);
    assert_eq!(first.len(), 2, "{err}");
    assert_eq!(first[0], 0, "{err}");
    assert!(first[1] >= 64, "the second turn starts with the first turn's prompt: {err}");
    let (ok, _, err) = whale_stdin(&args, &input);
    assert!(ok, "{err}");
    let second = cached(&err);
    assert!(second[0] >= 64, "a restarted chat finds the blocks on disk: {err}");
    std::fs::remove_dir_all(dir).ok();
}

/// `whale eval` end to end on the tiny model: the report holds R1's metrics and settings,
/// every sample is recorded, a finished run resumes without redoing work, and an existing run
/// is not overwritten by accident.
#[test]
fn eval_writes_a_report_and_resumes() {
    let dir = chat_model();
    let m = dir.to_str().unwrap();
    let out = dir.join("eval-run");
    let o = out.to_str().unwrap();
    let args = ["eval", "--model", m, "--task", "arithmetic:2", "--problems", "3", "--samples", "2", "--max-tokens", "6", "--out", o];
    let (ok, stdout, err) = whale(&args);
    assert!(ok, "{err}");
    assert!(stdout.contains("pass@1") && stdout.contains("cons@2"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["settings"]["samples"], 2);
    assert_eq!(report["settings"]["temperature"].as_f64().unwrap() as f32, 0.6);
    assert_eq!(report["problems"].as_array().unwrap().len(), 3);
    let samples = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    assert_eq!(samples.lines().count(), 6);
    let first: Value = serde_json::from_str(samples.lines().next().unwrap()).unwrap();
    assert!(first["verdict"].is_string() && first["output"].is_string());

    let (ok, _, err) = whale(&args);
    assert!(!ok && err.contains("--resume"), "{err}");
    let mut resume = args.to_vec();
    resume.push("--resume");
    let (ok, _, err) = whale(&resume);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(out.join("samples.jsonl")).unwrap().lines().count(), 6, "nothing redone");
    let again: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(again["pass_at_1"], report["pass_at_1"]);

    let (ok, _, err) = whale(&["eval", "--model", m, "--task", "chess", "--out", o]);
    assert!(!ok && err.contains("unknown task"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// `whale grpo` end to end on the tiny model: metrics per step, rollout samples, a final
/// checkpoint that `whale generate` runs, and bad batch arithmetic refused up front.
#[test]
fn grpo_runs_and_writes_metrics_and_a_loadable_checkpoint() {
    let dir = chat_model();
    let m = dir.to_str().unwrap();
    let out = dir.join("grpo-run");
    let o = out.to_str().unwrap();
    let (ok, _, err) = whale(&["grpo", "--model", m, "--task", "arithmetic:2", "--steps", "2", "--prompts", "2", "--group", "3",
        "--micro-batch", "3", "--max-tokens", "5", "--lr", "1e-3", "--eval-every", "2", "--eval-problems", "3", "--out", o]);
    assert!(ok, "{err}");
    let lines: Vec<Value> = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for k in ["reward", "accuracy", "response_length", "kl", "clip_fraction", "entropy", "loss", "grad_norm"] {
        assert!(lines[1][k].is_number(), "{k} missing: {}", lines[1]);
    }
    assert!(lines[1]["eval_accuracy"].is_number());
    assert!(out.join("samples/step-1.jsonl").exists());
    let fin = out.join("final");
    let (ok, _, err) = whale(&["generate", "--model", fin.to_str().unwrap(), "--prompt", "2+2?", "--max-tokens", "4", "--temperature", "0"]);
    assert!(ok, "the final checkpoint runs: {err}");

    let (ok, _, err) = whale(&["grpo", "--model", m, "--task", "arithmetic:2", "--prompts", "3", "--group", "4", "--micro-batch", "5", "--out", o]);
    assert!(!ok && err.contains("3 prompts x 4 samples = 12") && err.contains("micro-batch 5"), "{err}");
    let (ok, _, err) = whale(&["grpo", "--model", m, "--task", "arithmetic:2", "--group", "1", "--out", o]);
    assert!(!ok && err.contains("at least 2 samples per prompt"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// `whale sft` from scratch on text, then chat SFT from that checkpoint; `whale
/// rejection-sample` and `whale distill` into a dense Qwen2 student (with logit KD, the
/// vocabularies match) from an SFT file. Losses are finite and fall on the repeated text.
#[test]
fn sft_rejection_sampling_and_distillation_run_end_to_end() {
    let dir = chat_model();
    let tokdir = fixture("tiny_chat_tokenizer");
    let text = dir.join("arith.txt");
    let mut t = String::new();
    for a in 1..30 {
        t += &format!("What is {a} plus 3? Let us think step by step. {a} + 3 = {}. The answer is {}.\n\n", a + 3, a + 3);
    }
    std::fs::write(&text, t).unwrap();
    let pre = dir.join("pre");
    let (ok, _, err) = whale(&["sft", "--init-config", fixture("deepseek_v3_tiny").join("config.json").to_str().unwrap(),
        "--tokenizer", tokdir.to_str().unwrap(), "--text", text.to_str().unwrap(), "--steps", "12", "--seq-len", "48",
        "--batch", "4", "--micro-batch", "2", "--lr", "3e-3", "--warmup-steps", "2", "--out", pre.to_str().unwrap()]);
    assert!(ok, "{err}");
    let m: Vec<Value> = std::fs::read_to_string(pre.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(m.len(), 12);
    assert!(m[11]["loss"].as_f64().unwrap() < m[0]["loss"].as_f64().unwrap() - 0.5, "{:?} -> {:?}", m[0]["loss"], m[11]["loss"]);
    assert!(m[11]["val_loss"].is_number());

    let data = dir.join("sft.jsonl");
    let mut lines = String::new();
    for a in 1..12 {
        lines += &serde_json::json!({"messages": [{"role": "user", "content": format!("What is {a} + 2?")},
            {"role": "assistant", "content": format!("\\boxed{{{}}}", a + 2), "reasoning_content": format!("{a} + 2 = {}", a + 2)}]}).to_string();
        lines += "\n";
    }
    std::fs::write(&data, lines).unwrap();
    let sft = dir.join("sft");
    let (ok, _, err) = whale(&["sft", "--model", pre.join("final").to_str().unwrap(), "--data", data.to_str().unwrap(), "--steps", "3",
        "--seq-len", "64", "--batch", "2", "--micro-batch", "2", "--out", sft.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(sft.join("final/model.safetensors").exists() && sft.join("final/tokenizer.json").exists());

    let rs = dir.join("rs.jsonl");
    let (ok, _, err) = whale(&["rejection-sample", "--model", sft.join("final").to_str().unwrap(), "--task", "arithmetic:2",
        "--problems", "3", "--samples", "2", "--max-tokens", "6", "--out", rs.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("of 6 samples were correct") && rs.exists(), "{err}");

    // The student: Qwen2 weights with the same 512-token vocabulary and tokenizer.
    let student = dir.join("student");
    std::fs::create_dir_all(&student).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("qwen2_tiny").join(f), student.join(f)).unwrap();
    }
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tokdir.join(f), student.join(f)).unwrap();
    }
    let out = dir.join("distill");
    let (ok, _, err) = whale(&["distill", "--teacher", sft.join("final").to_str().unwrap(), "--student", student.to_str().unwrap(),
        "--task", "arithmetic:2", "--data", data.to_str().unwrap(), "--kd-alpha", "0.5", "--steps", "3", "--seq-len", "64",
        "--batch", "2", "--micro-batch", "2", "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let last: Value = serde_json::from_str(std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().last().unwrap()).unwrap();
    assert!(last["kd_loss"].as_f64().unwrap().is_finite() && last["kd_loss"].as_f64().unwrap() >= 0.0, "{last}");
    // Sampling a random teacher finds nothing correct: a clear error, not an empty training run.
    let (ok, _, err) = whale(&["distill", "--teacher", sft.join("final").to_str().unwrap(), "--student", student.to_str().unwrap(),
        "--task", "arithmetic:2", "--problems", "2", "--samples", "1", "--max-tokens", "3", "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("no verified-correct answer"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// The `logits` rows of a model as f64s.
fn logits_of(model: &str, ids: &str) -> Vec<Vec<f64>> {
    let (ok, out, err) = whale(&["logits", "--model", model, "--ids", ids]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["logits"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect()
}

/// `whale quantize` to GGUF: the files run through Whale with the logits of the safetensors
/// folder (f32 exactly; f16 and Q8_0 within their rounding error), and the embedded tokenizer
/// encodes text and special tokens exactly as the folder's tokenizer.json.
#[test]
fn quantize_writes_gguf_that_reads_back() {
    let dir = chat_model();
    let m = dir.to_str().unwrap();
    let qwen = fixture("qwen2_tiny");
    let ids = "1,5,77,300,42,9,511,250";
    // The lossy types are checked on the dense Qwen2 model: on the random tiny MoE model,
    // rounding flips expert choices, which moves logits by more than the weights' error.
    // Q8_0 (8 bits per weight and per activation, one scale per 32) moves these logits by
    // about 2 % of their range, f16 by about 0.06 %.
    for (model, ty, rel) in [(m, "f32", 1e-6), (qwen.to_str().unwrap(), "f16", 0.002), (qwen.to_str().unwrap(), "q8_0", 0.04)] {
        let reference = logits_of(model, ids);
        let scale = reference.iter().flatten().fold(0f64, |a, x| a.max(x.abs()));
        let out = dir.join(format!("tiny.{ty}.gguf"));
        let (ok, _, err) = whale(&["quantize", model, out.to_str().unwrap(), "--type", ty]);
        assert!(ok && err.contains("wrote"), "{err}");
        let got = logits_of(out.to_str().unwrap(), ids);
        let max = got.iter().flatten().zip(reference.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
        assert!(max <= rel * scale, "{ty}: max |Δ logits| = {max} > {rel} × {scale}");
    }
    let gguf = dir.join("tiny.f32.gguf");
    let text = "<|User|>What is 2 + 3?<|Assistant|><think>\nadd them</think>5";
    let enc = |tok: &str| {
        let (ok, out, err) = whale(&["tokenize", "--tokenizer", tok, "--text", text, "--json"]);
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    assert_eq!(enc(gguf.to_str().unwrap()), enc(dir.join("tokenizer.json").to_str().unwrap()));

    let (ok, _, err) = whale(&["quantize", m, dir.join("x.gguf").to_str().unwrap(), "--type", "q3_xs"]);
    assert!(!ok && err.contains("q3_xs") && err.contains("q4_k_m"), "{err}");
    let (ok, _, err) = whale(&["quantize", dir.join("nope").to_str().unwrap(), dir.join("x.gguf").to_str().unwrap()]);
    assert!(!ok && err.contains("not a model folder"), "{err}");
    assert!(!dir.join("x.gguf").exists());
    std::fs::remove_dir_all(dir).ok();
}

/// docs/cli.md (made by docs/gen_cli_reference.py) names every flag of every command.
#[test]
fn cli_reference_lists_every_flag() {
    let doc = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md")).unwrap();
    let (ok, top, err) = whale(&["--help"]);
    assert!(ok, "{err}");
    let commands = top.split("Commands:").nth(1).unwrap().split("Options:").next().unwrap();
    let mut missing = Vec::new();
    for line in commands.lines() {
        let Some(cmd) = line.split_whitespace().next().filter(|c| *c != "help") else { continue };
        if !doc.contains(&format!("## whale {cmd}\n")) {
            missing.push(format!("the command `{cmd}`"));
            continue;
        }
        let (ok, help, err) = whale(&[cmd, "--help"]);
        assert!(ok, "{err}");
        let section = doc.split(&format!("## whale {cmd}\n")).nth(1).unwrap().split("\n## whale ").next().unwrap();
        for flag in help.split_whitespace().filter(|w| w.starts_with("--") && w.len() > 2) {
            let flag = flag.trim_end_matches(|c: char| !c.is_alphanumeric());
            if !section.contains(flag) {
                missing.push(format!("`whale {cmd} {flag}`"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/cli.md lacks {}; run python3 docs/gen_cli_reference.py", missing.join(", "));
}

/// `whale tokenizer train` makes a tokenizer folder that `whale tokenize` round-trips, with
/// R1's special tokens first; bad training files get errors that name them.
#[test]
fn tokenizer_train_makes_an_r1_tokenizer() {
    let dir = std::env::temp_dir().join(format!("whale-tok-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("corpus.txt");
    let mut t = String::new();
    for a in 0..300 {
        t += &format!("Question {a}: what is {a} times 3? Answer: {}.\n\n", a * 3);
    }
    std::fs::write(&text, t).unwrap();
    let out = dir.join("tok");
    let (ok, _, err) = whale(&["tokenizer", "train", text.to_str().unwrap(), "--out", out.to_str().unwrap(), "--vocab-size", "300", "--pre", "qwen2"]);
    assert!(ok && err.contains("tokens from 300 documents"), "{err}");
    let (ok, ids, err) = whale(&["tokenize", "--tokenizer", out.to_str().unwrap(), "--text", "Question 7: what is 7 times 3?", "--json"]);
    assert!(ok, "{err}");
    let ids: Value = serde_json::from_str(&ids).unwrap();
    assert_eq!(ids["ids"][0], 0, "BOS first: {ids}");
    let joined = join(&ids["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect::<Vec<_>>());
    let (ok, back, err) = whale(&["tokenize", "--tokenizer", out.to_str().unwrap(), "--text", &joined, "--decode", "--no-special"]);
    assert!(ok && back.contains("Question 7: what is 7 times 3?"), "{back} {err}");

    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"content\": \"x\"}\n").unwrap();
    let (ok, _, err) = whale(&["tokenizer", "train", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("bad.jsonl") && err.contains("field `text` is missing"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// The mistakes a new user makes first, each answered with what to do instead.
#[test]
fn beginner_mistakes_say_what_to_do() {
    // A model path that does not exist is refused before anything loads.
    let (ok, _, err) = whale(&["chat", "--model", "/no/such/model.gguf"]);
    assert!(!ok && err.contains("does not exist") && err.contains("leave --model out for the built-in whale-r1-tiny"), "{err}");
    // The weights file instead of its folder.
    let weights = fixture("qwen2_tiny").join("model.safetensors");
    let (ok, _, err) = whale(&["logits", "--model", weights.to_str().unwrap(), "--ids", "1"]);
    assert!(!ok && err.contains("expects the folder that holds it with its config.json"), "{err}");
    // A file that is neither GGUF nor a folder.
    let readme = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let (ok, _, err) = whale(&["logits", "--model", readme.to_str().unwrap(), "--ids", "1"]);
    assert!(!ok && err.contains("is neither a GGUF file") && err.contains("or a .gguf file"), "{err}");
    // A busy port names itself and the flag.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let (ok, _, err) = whale(&["serve", "--port", &port]);
    assert!(!ok && err.contains(&format!("port {port} on 127.0.0.1 is in use; pass --port")), "{err}");
    // A context that cannot be given is refused with the flag to change.
    let (ok, _, err) = whale(&["serve", "--ctx-size", "0", "--port", "0"]);
    assert!(!ok && err.contains("--ctx-size must be at least 1"), "{err}");
}

/// Without --model, the commands run the built-in model, which answers its task.
#[test]
fn the_built_in_model_answers_without_a_model_flag() {
    let (ok, out, err) = whale(&["generate", "--prompt", "What is 47 + 38?", "--temperature", "0", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("</think>") && text.trim_end().ends_with("\\boxed{85}"), "{text}");
}

/// A GGUF file is recognised by its magic, whatever its name.
#[test]
fn a_gguf_file_without_the_extension_still_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tmp.path().join("model.gguf");
    let (ok, _, err) = whale(&["quantize", fixture("qwen2_tiny").to_str().unwrap(), gguf.to_str().unwrap(), "--type", "f32", "--tokenizer", fixture("tiny_chat_tokenizer").to_str().unwrap()]);
    assert!(ok, "{err}");
    let renamed = tmp.path().join("model.bin");
    std::fs::rename(&gguf, &renamed).unwrap();
    let (ok, out, err) = whale(&["logits", "--model", renamed.to_str().unwrap(), "--ids", "1,2"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"logits\""));
}
