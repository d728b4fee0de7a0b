//! One training step of whale-train against PyTorch + HF transformers
//! (`tests/fixtures/train_goldens/*.json`, made by `tests/fixtures/gen/gen_train_goldens.py`):
//! the loss, every parameter's gradient and the parameters after one AdamW step, on the
//! fixture DeepSeek-V3 and Qwen2 models and a fixed batch of 4 windows of 33 tokens.
//!
//! The run matches the goldens' setup: main next-token cross-entropy only (no sequence-wise
//! balance loss, no MTP), no gradient clipping, constant lr 1e-3 without warmup, AdamW
//! β 0.9/0.95, ε 1e-8, weight decay 0.1 on matrices, and the aux-loss-free bias update off
//! (HF keeps `e_score_correction_bias` as a buffer: no gradient, no step).
//!
//! Tolerances:
//! - loss: 1e-5 relative;
//! - gradients: each tensor's L2 norm within 1e-4 relative, and every sampled entry within
//!   1e-4 × that tensor's norm (one micro-batch and two accumulated micro-batches);
//! - AdamW alone (torch's gradients in, at the sampled entries): 1e-6 relative + 1e-9;
//! - after a whole `train_step_on` (Whale's own gradients): entries whose torch gradient is
//!   at least 100× the tensor's largest sampled gradient error within 1e-6 relative + 1e-8;
//!   the rest (the first Adam step is about lr·sign(g), so a gradient within noise of zero
//!   may flip) within 2·lr; each tensor's update norm within 1e-3 relative.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use serde::Deserialize;
use whale_train::optim::{AdamW, AdamWConfig};
use whale_train::params::Param;
use whale_train::{RunConfig, Trainer};

#[derive(Deserialize)]
struct Golden {
    input_ids: Vec<Vec<u32>>,
    seq_len: usize,
    lr: f64,
    betas: [f64; 2],
    eps: f64,
    weight_decay: f64,
    loss: f64,
    /// Parameters torch gave no gradient (AdamW skips them: no decay either).
    params_without_grad: Vec<String>,
    params: BTreeMap<String, ParamGolden>,
}

#[derive(Deserialize)]
struct ParamGolden {
    shape: Vec<usize>,
    decay: bool,
    grad_norm: f64,
    update_norm: f64,
    idx: Vec<usize>,
    before: Vec<f32>,
    grad: Vec<f32>,
    after: Vec<f32>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn golden(model: &str) -> Golden {
    let path = fixtures().join(format!("train_goldens/{model}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A trainer on the fixture checkpoint `model`, set up like the goldens.
fn trainer(dir: &Path, model: &str, g: &Golden, micro_batch: usize) -> Trainer {
    let mut corpus = String::new();
    for i in 0..40 {
        corpus += &format!("doc {i}: the whale sings {} songs to the sea\n\n", i % 4);
    }
    std::fs::write(dir.join("corpus.txt"), corpus).unwrap();
    let toml = format!(
        r#"out = "run"

[model]
checkpoint = "{}"

[data]
sources = ["corpus.txt"]
tokenizer = "{}"

[train]
steps = 1
batch_size = {}
micro_batch = {micro_batch}
seq_len = {}
eval_every = 0
progress = false

[optim]
lr = {:e}
beta1 = {}
beta2 = {}
eps = {:e}
weight_decay = {}
grad_clip = 0.0

[schedule]
kind = "constant"
warmup_steps = 0

[moe]
bias_update_speed = 0.0
seq_aux_alpha = 0.0
"#,
        fixtures().join(model).display(),
        fixtures().join("tiny_chat_tokenizer").display(),
        g.input_ids.len(),
        g.seq_len,
        g.lr,
        g.betas[0],
        g.betas[1],
        g.eps,
        g.weight_decay,
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, toml).unwrap();
    let cfg = RunConfig::load(&path, &[]).unwrap();
    Trainer::new(cfg, &path, false).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
}

/// Compares the gradients of one batch with the goldens; returns each tensor's largest
/// sampled absolute gradient error.
fn check_gradients(t: &Trainer, g: &Golden, label: &str) -> BTreeMap<String, f64> {
    let bg = t.gradients_on(&g.input_ids).unwrap();
    let loss_rel = (bg.loss - g.loss).abs() / g.loss.abs();
    assert!(
        loss_rel <= 1e-5,
        "{label}: loss {} vs HF {} (rel {loss_rel:e})",
        bg.loss,
        g.loss
    );
    let names: Vec<&str> = t.trainable().iter().map(|p| p.name.as_str()).collect();
    let golden_names: Vec<&str> = g.params.keys().map(|s| s.as_str()).collect();
    assert_eq!(names, golden_names, "{label}: trainable parameters");
    let (mut worst_norm, mut worst_entry) = (0f64, 0f64);
    let mut errors = BTreeMap::new();
    for p in t.trainable() {
        let pg = &g.params[&p.name];
        assert_eq!(p.var.dims(), pg.shape.as_slice(), "{}", p.name);
        let grad = match bg.grads.get(p.var.as_tensor()) {
            Some(x) => flat(x),
            None => vec![0.0; p.var.elem_count()],
        };
        let n = norm(&grad);
        let norm_rel = (n - pg.grad_norm).abs() / pg.grad_norm.max(1e-30);
        assert!(
            norm_rel <= 1e-4,
            "{label}: {} gradient norm {n:e} vs HF {:e} (rel {norm_rel:e})",
            p.name,
            pg.grad_norm
        );
        let mut max_err = 0f64;
        for (k, &i) in pg.idx.iter().enumerate() {
            let err = (grad[i] as f64 - pg.grad[k] as f64).abs();
            max_err = max_err.max(err);
            assert!(
                err <= 1e-4 * pg.grad_norm,
                "{label}: {}[{i}] gradient {} vs HF {} (norm {:e})",
                p.name,
                grad[i],
                pg.grad[k],
                pg.grad_norm
            );
        }
        worst_norm = worst_norm.max(norm_rel);
        worst_entry = worst_entry.max(max_err / pg.grad_norm.max(1e-30));
        errors.insert(p.name.clone(), max_err);
    }
    eprintln!(
        "{label}: loss {:.7} vs HF {:.7} (rel {loss_rel:.1e}); {} tensors, worst gradient norm rel {worst_norm:.1e}, worst entry / norm {worst_entry:.1e}",
        bg.loss,
        g.loss,
        errors.len()
    );
    errors
}

/// Whale's AdamW on torch's gradients at the sampled entries (one Var per tensor) must give
/// torch's parameters after the step.
fn check_adamw_alone(g: &Golden, label: &str) {
    let dev = Device::Cpu;
    let cfg = AdamWConfig {
        beta1: g.betas[0],
        beta2: g.betas[1],
        eps: g.eps,
        weight_decay: g.weight_decay,
    };
    let mut worst = 0f64;
    for (name, pg) in &g.params {
        if g.params_without_grad.contains(name) {
            assert_eq!(
                pg.before, pg.after,
                "{label}: torch stepped {name} without a gradient"
            );
            continue;
        }
        let var = Var::from_vec(pg.before.clone(), pg.before.len(), &dev).unwrap();
        let grad = Tensor::new(pg.grad.as_slice(), &dev).unwrap();
        // d/dθ Σ θ·g = g exactly, so this GradStore holds torch's gradient bit for bit.
        let grads = (var.as_tensor() * &grad)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let mut opt = AdamW::new(
            vec![Param {
                name: name.clone(),
                var: var.clone(),
                decay: pg.decay,
            }],
            cfg,
        )
        .unwrap();
        opt.step(&grads, g.lr).unwrap();
        for (k, (&w, &h)) in flat(var.as_tensor()).iter().zip(&pg.after).enumerate() {
            let err = (w as f64 - h as f64).abs();
            worst = worst.max(err / (h as f64).abs().max(1e-3));
            assert!(
                err <= 1e-6 * (h as f64).abs() + 1e-9,
                "{label}: AdamW {name}[{}] {w} vs torch {h}",
                pg.idx[k]
            );
        }
    }
    eprintln!("{label}: AdamW alone on torch's gradients, worst error / |θ| {worst:.1e}");
}

fn check_step(t: &mut Trainer, g: &Golden, grad_errors: &BTreeMap<String, f64>, label: &str) {
    let before: Vec<(String, Vec<f32>)> = t
        .params()
        .all()
        .iter()
        .map(|(n, v)| (n.clone(), flat(v.as_tensor())))
        .collect();
    let rec = t.train_step_on(g.input_ids.clone()).unwrap();
    let total: f64 = g
        .params
        .values()
        .map(|p| p.grad_norm.powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        (rec.grad_norm - total).abs() <= 1e-4 * total,
        "{label}: grad_norm {} vs HF {total}",
        rec.grad_norm
    );
    assert_eq!(rec.lr, g.lr);
    let (mut undecided, mut sampled, mut worst_update) = (0usize, 0usize, 0f64);
    for ((name, var), (bname, b)) in t.params().all().iter().zip(&before) {
        assert_eq!(name, bname);
        let after = flat(var.as_tensor());
        let Some(pg) = g.params.get(name) else {
            // The V3 gate bias: no gradient, and the balancing rule is off here.
            assert!(name.ends_with("e_score_correction_bias"), "{name}");
            assert_eq!(&after, b, "{label}: {name} moved");
            continue;
        };
        let diff: Vec<f32> = after.iter().zip(b).map(|(a, b)| a - b).collect();
        let un = norm(&diff);
        let rel = (un - pg.update_norm).abs() / pg.update_norm.max(1e-12);
        worst_update = worst_update.max(rel);
        assert!(
            rel <= 1e-3,
            "{label}: {name} update norm {un:e} vs HF {:e}",
            pg.update_norm
        );
        let noise = grad_errors[name];
        for (k, &i) in pg.idx.iter().enumerate() {
            let (w, h) = (after[i] as f64, pg.after[k] as f64);
            sampled += 1;
            let gk = (pg.grad[k] as f64).abs();
            let tol = if gk >= 100.0 * noise {
                // AdamW's first update is lr·g/(|g| + eps): a gradient error δ moves it by up
                // to lr·eps·δ/(|g| - δ + eps)², which matters where |g| is within a few
                // hundred eps (the tensor's measured gradient error stands for δ).
                1e-6 * h.abs() + 1e-8 + g.lr * g.eps * noise / (gk - noise + g.eps).powi(2)
            } else {
                undecided += 1;
                2.0 * g.lr
            };
            assert!(
                (w - h).abs() <= tol,
                "{label}: {name}[{i}] after the step {w} vs HF {h} (grad {})",
                pg.grad[k]
            );
        }
    }
    eprintln!(
        "{label}: after one step, {sampled} sampled entries ({undecided} with a gradient within 100x noise of 0), worst update norm rel {worst_update:.1e}"
    );
}

fn run(model: &str) {
    let g = golden(model);
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), model, &g, g.input_ids.len());
    let errors = check_gradients(&t, &g, model);
    let dir2 = tempfile::tempdir().unwrap();
    let half = trainer(dir2.path(), model, &g, g.input_ids.len() / 2);
    check_gradients(&half, &g, &format!("{model} (2 micro-batches)"));
    check_adamw_alone(&g, model);
    check_step(&mut t, &g, &errors, model);
}

#[test]
fn deepseek_v3_step_matches_hf_transformers() {
    run("deepseek_v3_tiny");
}

#[test]
fn qwen2_step_matches_hf_transformers() {
    run("qwen2_tiny");
}

#[test]
fn a_batch_of_the_wrong_shape_is_refused() {
    let g = golden("qwen2_tiny");
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), "qwen2_tiny", &g, 4);
    let short: Vec<Vec<u32>> = g.input_ids.iter().map(|w| w[..10].to_vec()).collect();
    let err = t.train_step_on(short).err().unwrap().to_string();
    assert!(err.contains("4 windows of 33 tokens"), "{err}");
    assert!(t.gradients_on(&g.input_ids[..2]).is_err());
}
