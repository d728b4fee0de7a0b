//! End-to-end training on the tiny DeepSeek-V3 fixture (4 layers, 8 routed experts, vocab
//! 512) with the fixture tokenizer: overfitting, bit-identical resume, HF-loadable
//! checkpoints, corrupted checkpoints, config errors, precision modes, MoE balancing, MTP,
//! data sources and plots. Each run is a few dozen tiny steps (seconds).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use whale_train::{RunConfig, Trainer};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A small repetitive corpus: easy to overfit, enough tokens for a few dozen windows.
fn corpus() -> String {
    let mut s = String::new();
    for i in 0..40 {
        s += &format!(
            "doc {i}: the whale sings {} songs to the sea and the sea answers back\n\n",
            i % 4
        );
    }
    s
}

/// Writes `dir/run.toml` (with `extra` appended) and the corpus; returns the run.toml path.
fn setup(dir: &Path, model_config: &Path, extra: &str) -> PathBuf {
    std::fs::write(dir.join("corpus.txt"), corpus()).unwrap();
    let toml = format!(
        r#"out = "run"

[model]
config = "{}"

[data]
sources = ["corpus.txt"]
tokenizer = "{}"
validation_fraction = 0.1

[train]
steps = 6
batch_size = 4
micro_batch = 2
seq_len = 16
seed = 7
eval_every = 3
val_sequences = 4
progress = false

[optim]
lr = 3e-3

[schedule]
warmup_steps = 2

[checkpoint]
every = 3
keep = 2
{extra}"#,
        model_config.display(),
        fixtures().join("tiny_chat_tokenizer").display()
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn tiny_config() -> PathBuf {
    fixtures().join("deepseek_v3_tiny/config.json")
}

fn load(path: &Path, overrides: &[&str]) -> RunConfig {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    RunConfig::load(path, &o).unwrap()
}

#[test]
fn overfits_a_tiny_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), &tiny_config(), "");
    let cfg = load(
        &toml,
        &[
            "train.steps=40",
            "checkpoint.every=0",
            "train.eval_every=0",
            "schedule.kind=\"constant\"",
        ],
    );
    let mut t = Trainer::new(cfg, &toml, false).unwrap();
    let first_val = t.evaluate().unwrap().unwrap();
    let recs = t.run().unwrap();
    let (first, last) = (recs[0].loss, recs.last().unwrap().loss);
    assert!(first > 5.0, "starts near ln(512) = 6.24, got {first}");
    assert!(last < 0.4 * first, "loss {first} -> {last}");
    let last_val = recs.last().unwrap().val_loss.unwrap();
    assert!(
        last_val < 0.5 * first_val,
        "val loss {first_val} -> {last_val}"
    );
    // Expert loads are logged per MoE layer (layers 1..=3 of the fixture).
    let layers: Vec<usize> = recs[0].expert_load.iter().map(|l| l.layer).collect();
    assert_eq!(layers, vec![1, 2, 3]);
    // The gate biases moved by the aux-loss-free rule (γ = 1e-3 per step), not by AdamW.
    let biases = t.params().gate_biases();
    let b = biases[0].1.to_vec1::<f32>().unwrap();
    assert!(b.iter().any(|x| x.abs() > 1e-4), "{b:?}");
    assert!(b.iter().all(|x| x.abs() <= 40.0 * 1e-3 + 1e-6), "{b:?}");
    // metrics.jsonl holds one line per step.
    let m = whale_train::metrics::read(&dir.path().join("run/metrics.jsonl")).unwrap();
    assert_eq!(m.len(), 40);
}

#[test]
fn resume_is_bit_identical() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ta = setup(a.path(), &tiny_config(), "");
    let tb = setup(b.path(), &tiny_config(), "");
    // Uninterrupted: 6 steps.
    let mut full = Trainer::new(load(&ta, &[]), &ta, false).unwrap();
    let full_recs = full.run().unwrap();
    // Interrupted after the step-3 checkpoint, then resumed in a fresh trainer.
    {
        let mut first = Trainer::new(load(&tb, &[]), &tb, false).unwrap();
        for _ in 0..3 {
            first.train_step().unwrap();
        }
        first.save_checkpoint().unwrap();
        // Steps past the checkpoint that the crash loses.
        first.train_step().unwrap();
    }
    // Starting afresh over those checkpoints is refused.
    let e = Trainer::new(load(&tb, &[]), &tb, false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`out`") && e.contains("--resume"), "{e}");
    let mut resumed = Trainer::new(load(&tb, &[]), &tb, true).unwrap();
    assert_eq!(resumed.step, 3);
    let rest = resumed.run().unwrap();
    assert_eq!(rest.len(), 3);
    for (x, y) in full_recs[3..].iter().zip(&rest) {
        assert_eq!(x.step, y.step);
        assert_eq!(
            x.loss.to_bits(),
            y.loss.to_bits(),
            "step {}: {} vs {}",
            x.step,
            x.loss,
            y.loss
        );
        assert_eq!(
            x.grad_norm.to_bits(),
            y.grad_norm.to_bits(),
            "step {}",
            x.step
        );
        assert_eq!(x.val_loss.map(f64::to_bits), y.val_loss.map(f64::to_bits));
    }
    for ((n, va), (_, vb)) in full.params().all().iter().zip(resumed.params().all()) {
        let (x, y) = (
            va.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vb.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(
            x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{n} differs"
        );
    }
    // The resumed metrics file describes one history: steps 1..=6, once each.
    let m = whale_train::metrics::read(&b.path().join("run/metrics.jsonl")).unwrap();
    // (The interrupted trainer was stepped by hand, which writes no metrics.)
    assert_eq!(m.iter().map(|r| r.step).collect::<Vec<_>>(), vec![4, 5, 6]);
}

#[test]
fn checkpoint_loads_with_whale_model_and_keeps_the_last_k() {
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), &tiny_config(), "");
    let cfg = load(&toml, &["checkpoint.every=2"]);
    let mut t = Trainer::new(cfg, &toml, false).unwrap();
    t.run().unwrap();
    let steps: Vec<u64> = whale_train::checkpoint::list(&t.checkpoint_root())
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(steps, vec![4, 6], "keep = 2");
    let ck = t.checkpoint_root().join("step-00000006");
    assert!(ck.join("tokenizer.json").exists());
    let model = whale_model::load_model(&ck, DType::F32, &Device::Cpu).unwrap();
    let ids = Tensor::new(&[[3u32, 17, 40, 5]], &Device::Cpu).unwrap();
    let loaded = model.forward_train(&ids).unwrap().logits;
    let live = t
        .params()
        .model()
        .unwrap()
        .forward_train(&ids)
        .unwrap()
        .logits;
    let diff = max_abs(&(loaded - live).unwrap());
    // The loaded model precomputes MLA's absorbed weights; the live one splits them per call.
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn corrupted_checkpoint_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), &tiny_config(), "");
    let e = Trainer::new(load(&toml, &["train.steps=3"]), &toml, true)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no checkpoint to resume from"), "{e}");
    let mut t = Trainer::new(load(&toml, &["train.steps=3"]), &toml, false).unwrap();
    t.run().unwrap();
    let weights = t.checkpoint_root().join("step-00000003/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x40;
    std::fs::write(&weights, bytes).unwrap();
    let err = Trainer::new(load(&toml, &["train.steps=3"]), &toml, true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("checksum mismatch"),
        "{err}"
    );
}

#[test]
fn bad_run_toml_keys_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), &tiny_config(), "");
    let err = |extra: &[&str]| {
        let o: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        RunConfig::load(&toml, &o).err().unwrap().to_string()
    };
    let e = err(&["optim.lrr=1"]);
    assert!(
        e.contains("optim.lrr") && e.contains("unknown field"),
        "{e}"
    );
    let e = err(&["train.steps=\"many\""]);
    assert!(
        e.contains("invalid `train.steps`") && e.contains("expected u64"),
        "{e}"
    );
    let e = err(&["train.micro_batch=3"]);
    assert!(
        e.contains("train.micro_batch") && e.contains("divide"),
        "{e}"
    );
    let e = err(&["optim.beta2=1.5"]);
    assert!(e.contains("optim.beta2"), "{e}");
    let e = err(&["schedule.kind=\"linear\""]);
    assert!(
        e.contains("invalid `schedule.kind`") && e.contains("unknown variant `linear`"),
        "{e}"
    );
    let e = err(&["trian.steps=3"]);
    assert!(e.contains("trian") && e.contains("unknown key"), "{e}");
    let e = RunConfig::load(&toml, &["train.seq_len=4096".to_string()])
        .map(|c| Trainer::new(c, &toml, false));
    let e = e.unwrap().err().unwrap().to_string();
    assert!(
        e.contains("train.seq_len") && e.contains("max_position_embeddings"),
        "{e}"
    );
    let e = err(&["data.validation_fraction=1.5"]);
    assert!(e.contains("data.validation_fraction"), "{e}");
    let e = err(&["model.checkpoint=\"x\""]);
    assert!(e.contains("`model`") && e.contains("not both"), "{e}");
    // A valid-looking GPU name is checked when the report is made.
    let cfg = load(&toml, &["cost.gpu=\"tpu\""]);
    let model = whale_core::config::ModelConfig::from_file(&tiny_config()).unwrap();
    let e = whale_train::trainer::cost_report(&cfg, &toml, &model, 0, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cost.gpu") && e.contains("tpu"), "{e}");
}

#[test]
fn the_example_in_docs_train_md_parses() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/train.md");
    let text = std::fs::read_to_string(&docs).unwrap();
    let block = text
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let cfg = RunConfig::parse(block, &docs.with_file_name("run.toml"), &[]).unwrap();
    assert_eq!(cfg.train.steps, 200);
    assert!(cfg.model.config.unwrap().exists());
}

#[test]
fn precisions_train_and_stay_close_to_f32() {
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), &tiny_config(), "");
    let mut first = Vec::new();
    for p in ["f32", "bf16", "fp8"] {
        let cfg = load(
            &toml,
            &[
                "train.steps=3",
                "checkpoint.every=0",
                &format!("train.precision=\"{p}\""),
                &format!("out=\"run-{p}\""),
            ],
        );
        let mut t = Trainer::new(cfg, &toml, false).unwrap();
        let recs = t.run().unwrap();
        assert!(recs.iter().all(|r| r.loss.is_finite()), "{p}");
        first.push(recs[0].loss);
    }
    // Same initial weights and batch: the first loss differs only by GEMM rounding.
    for (p, l) in ["bf16", "fp8"].iter().zip(&first[1..]) {
        let rel = (l - first[0]).abs() / first[0];
        assert!(rel > 0.0 && rel < 0.01, "{p}: {l} vs f32 {}", first[0]);
    }
}

#[test]
fn mtp_and_balance_losses_are_trained() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_config()).unwrap()).unwrap();
    cfg["num_nextn_predict_layers"] = 1.into();
    let mtp_cfg = dir.path().join("config.json");
    std::fs::write(&mtp_cfg, cfg.to_string()).unwrap();
    let toml = setup(
        dir.path(),
        &mtp_cfg,
        "\n[moe]\nseq_aux_alpha = 0.01\n\n[mtp]\nloss_weight = 0.3\n",
    );
    let mut t = Trainer::new(
        load(&toml, &["train.steps=20", "checkpoint.every=0"]),
        &toml,
        false,
    )
    .unwrap();
    let recs = t.run().unwrap();
    let (m0, m1) = (
        recs[0].mtp_loss.unwrap(),
        recs.last().unwrap().mtp_loss.unwrap(),
    );
    assert!(m1 < m0, "MTP loss {m0} -> {m1}");
    // λ · CE ≈ 0.3 · ln(512) at the start.
    assert!((m0 / 0.3 - 512f64.ln()).abs() < 0.5, "{m0}");
    let aux = recs[0].aux_loss.unwrap();
    assert!(aux > 0.0 && aux < 0.1, "{aux}");
    // The MTP block's gate (layer 4) is balanced too.
    assert!(recs[0].expert_load.iter().any(|l| l.layer == 4));
    let err = Trainer::new(load(&toml, &["mtp.depth=2", "out=\"run2\""]), &toml, false)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("mtp.depth"), "{err}");
}

#[test]
fn jsonl_sources_cache_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), &tiny_config(), "");
    let lines: String = corpus()
        .split("\n\n")
        .filter(|s| !s.is_empty())
        .map(|s| serde_json::json!({ "text": s }).to_string() + "\n")
        .collect();
    std::fs::write(dir.path().join("docs.jsonl"), lines).unwrap();
    let cfg = load(&toml, &["data.sources=[\"docs.jsonl\", \"corpus.txt\"]"]);
    let t = Trainer::new(cfg.clone(), &toml, false).unwrap();
    let meta = t.shards().meta.clone();
    assert_eq!(meta.train_docs + meta.val_docs, 80);
    assert!(meta.val_docs > 0 && meta.val_docs < 40, "{meta:?}");
    // The same settings reuse the cache folder.
    let dir1 = t.shards().dir.clone();
    drop(t);
    let t = Trainer::new(cfg, &toml, false).unwrap();
    assert_eq!(t.shards().dir, dir1);
    // A bad record names the file and line.
    std::fs::write(
        dir.path().join("bad.jsonl"),
        "{\"text\": \"ok\"}\n{\"txt\": 1}\n",
    )
    .unwrap();
    let err = Trainer::new(load(&toml, &["data.sources=[\"bad.jsonl\"]"]), &toml, false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("bad.jsonl") && err.contains("line 2") && err.contains("`text`"),
        "{err}"
    );
}

#[test]
fn plots_and_cost_report() {
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), &tiny_config(), "");
    let mut t = Trainer::new(load(&toml, &["checkpoint.every=0"]), &toml, false).unwrap();
    t.run().unwrap();
    let pngs = whale_train::plot::plot_run(&dir.path().join("run")).unwrap();
    let names: Vec<String> = pngs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "loss.png",
        "lr.png",
        "grad_norm.png",
        "tokens_per_s.png",
        "expert_load.png",
        "dead_experts.png",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    for p in &pngs {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{}", p.display());
    }
    let report = t.cost_report().unwrap();
    assert!(report.tokens_per_s.unwrap() > 0.0);
    assert_eq!(report.target_tokens, (6 * 4 * 16) as f64);
    assert!(report.render().contains("GPU-hours"));
}

#[test]
fn other_families_and_checkpoints_train() {
    // Qwen2 (the R1-Distill family) from a config, DeepSeek-V2-Lite (softmax gate, no
    // correction bias) from its checkpoint folder.
    let dir = tempfile::tempdir().unwrap();
    let toml = setup(dir.path(), &fixtures().join("qwen2_tiny/config.json"), "");
    let cfg = load(&toml, &["train.steps=10", "checkpoint.every=0"]);
    let recs = Trainer::new(cfg, &toml, false).unwrap().run().unwrap();
    assert!(
        recs[9].loss < recs[0].loss,
        "{} -> {}",
        recs[0].loss,
        recs[9].loss
    );
    assert!(recs[0].expert_load.is_empty());

    let v2 = fixtures().join("deepseek_v2_lite_tiny");
    let text = std::fs::read_to_string(&toml).unwrap();
    let line = text.lines().find(|l| l.starts_with("config = ")).unwrap();
    let text = text.replace(
        line,
        &format!("checkpoint = {:?}", v2.display().to_string()),
    );
    let v2_toml = dir.path().join("run-v2.toml");
    std::fs::write(&v2_toml, text).unwrap();
    let cfg = load(
        &v2_toml,
        &["train.steps=10", "checkpoint.every=0", "out=\"run-v2\""],
    );
    let mut t = Trainer::new(cfg, &v2_toml, false).unwrap();
    let before = t.evaluate().unwrap().unwrap();
    let recs = t.run().unwrap();
    assert!(
        recs[9].val_loss.unwrap() < before,
        "{before} -> {:?}",
        recs[9].val_loss
    );
    assert!(t.params().gate_biases().is_empty());
    assert!(recs[0].aux_loss.unwrap() > 0.0);
    assert!(!recs[0].expert_load.is_empty());
}
