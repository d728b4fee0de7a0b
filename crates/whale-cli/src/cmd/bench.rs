//! `whale bench`: prefill and decode throughput, measured the way llama-bench does —
//! `pp N` is one forward over an N-token prompt, `tg N` is N single-token decode steps
//! through the KV cache — repeated, reported as mean ± standard deviation of tokens/s.
//! `--parallel 1,4,16` adds batched decoding the way llama-batched-bench measures it: N
//! sequences, each with its own cache, decoded together one token each per forward (the
//! engine's continuous batching), reported as the aggregate tokens/s of all N (`tg128 x4`).

use crate::model_args::ModelArgs;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use std::time::Instant;
use whale_model::{CausalLm, SeqStep};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt tokens for the prefill test (0 skips it).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    n_prompt: usize,
    /// Generated tokens for the decode test (0 skips it).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    n_gen: usize,
    /// Repetitions of each test.
    #[arg(short = 'r', long, default_value_t = 3)]
    repetitions: usize,
    /// Sequences decoded together in the decode test, comma-separated (1: the plain test).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    parallel: Vec<usize>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

struct Stat {
    test: String,
    samples: Vec<f64>,
}

impl Stat {
    fn mean(&self) -> f64 {
        self.samples.iter().sum::<f64>() / self.samples.len() as f64
    }

    fn std(&self) -> f64 {
        let m = self.mean();
        let n = self.samples.len();
        if n < 2 {
            return 0.0;
        }
        (self.samples.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    }
}

fn random_ids(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..vocab as u32)).collect()
}

/// Seconds for one forward over `n` prompt tokens into a fresh cache.
fn time_prefill(model: &dyn CausalLm, ids: &[u32]) -> Result<f64> {
    let mut cache = model.new_cache();
    let input = Tensor::from_vec(ids.to_vec(), (1, ids.len()), model.device())?;
    let start = Instant::now();
    model.forward_last(&input, &mut cache)?;
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds for `n` single-token decode steps after a one-token prompt.
fn time_decode(model: &dyn CausalLm, first: u32, n: usize) -> Result<f64> {
    let mut cache = model.new_cache();
    let mut next = first;
    let start = Instant::now();
    for _ in 0..n {
        let input = Tensor::from_vec(vec![next], (1, 1), model.device())?;
        let logits = model.forward_last(&input, &mut cache)?;
        next = whale_model::causal_lm::argmax_last(&logits)?[0];
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds for `n` decode steps of `seqs` sequences together (one token each per forward),
/// each after its own one-token prompt; every sequence follows its own greedy choice.
fn time_decode_parallel(model: &dyn CausalLm, firsts: &[u32], n: usize) -> Result<f64> {
    let mut caches: Vec<_> = firsts.iter().map(|_| model.new_cache()).collect();
    let mut next: Vec<u32> = firsts.to_vec();
    let start = Instant::now();
    for _ in 0..n {
        let mut steps: Vec<SeqStep<'_>> =
            caches.iter_mut().zip(&next).map(|(cache, id)| SeqStep { ids: std::slice::from_ref(id), cache, prompt: false }).collect();
        let logits = model.forward_seqs(&mut steps)?;
        next = whale_model::causal_lm::argmax_last(&logits)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

pub fn run(args: Args) -> Result<()> {
    if args.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    if args.parallel.iter().any(|&p| p == 0) {
        bail!("--parallel {:?}: every count must be at least 1", args.parallel);
    }
    let model = args.model.load()?;
    let info = model.info().clone();
    if args.n_prompt.max(args.n_gen + 1) > info.max_position_embeddings {
        bail!(
            "-p {} / -n {} exceed the model's context of {} tokens (max_position_embeddings); use smaller values",
            args.n_prompt,
            args.n_gen,
            info.max_position_embeddings
        );
    }
    let weights = if whale_model::gguf::is_gguf_path(&args.model.model) {
        whale_model::gguf::open_gguf(&args.model.model, args.model.dtype()?, &Device::Cpu)?.1
    } else {
        whale_core::Weights::from_dir(&args.model.model, args.model.dtype()?, &Device::Cpu)?
    };
    let threads = args.model.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let prompt = random_ids(args.n_prompt, info.vocab_size, 42);

    // One untimed warm-up of each test (page in the weights, size the thread pools).
    if args.n_prompt > 0 {
        time_prefill(model.as_ref(), &prompt)?;
    }
    if args.n_gen > 0 {
        time_decode(model.as_ref(), 1, args.n_gen.min(4))?;
    }
    let mut stats = Vec::new();
    if args.n_prompt > 0 {
        let samples = (0..args.repetitions)
            .map(|_| time_prefill(model.as_ref(), &prompt).map(|s| args.n_prompt as f64 / s))
            .collect::<Result<Vec<_>>>()?;
        stats.push(Stat { test: format!("pp{}", args.n_prompt), samples });
    }
    for &parallel in args.parallel.iter().filter(|_| args.n_gen > 0) {
        let samples = if parallel == 1 {
            (0..args.repetitions)
                .map(|_| time_decode(model.as_ref(), prompt.first().copied().unwrap_or(1), args.n_gen).map(|s| args.n_gen as f64 / s))
                .collect::<Result<Vec<_>>>()?
        } else {
            let firsts = random_ids(parallel, info.vocab_size, 7);
            time_decode_parallel(model.as_ref(), &firsts, args.n_gen.min(4))?;
            (0..args.repetitions)
                .map(|_| time_decode_parallel(model.as_ref(), &firsts, args.n_gen).map(|s| (parallel * args.n_gen) as f64 / s))
                .collect::<Result<Vec<_>>>()?
        };
        let test = if parallel == 1 { format!("tg{}", args.n_gen) } else { format!("tg{} x{parallel}", args.n_gen) };
        stats.push(Stat { test, samples });
    }

    let name = args.model.model.file_name().map_or_else(|| args.model.model.display().to_string(), |n| n.to_string_lossy().into_owned());
    let size_mib = weights.file_bytes() as f64 / (1024.0 * 1024.0);
    let params_m = weights.parameter_count() as f64 / 1e6;
    if args.json {
        for s in &stats {
            println!(
                "{}",
                serde_json::json!({
                    "model": name, "model_type": info.model_type, "size_mib": size_mib, "params_m": params_m,
                    "dtype": args.model.dtype, "threads": threads, "test": s.test,
                    "tokens_per_s_mean": s.mean(), "tokens_per_s_std": s.std(), "samples": s.samples,
                })
            );
        }
        return Ok(());
    }
    println!("| model | type | size | params | dtype | threads | test | t/s |");
    println!("|---|---|---:|---:|---|---:|---|---:|");
    for s in &stats {
        println!(
            "| {name} | {} | {size_mib:.2} MiB | {params_m:.2} M | {} | {threads} | {} | {:.2} ± {:.2} |",
            info.model_type,
            args.model.dtype,
            s.test,
            s.mean(),
            s.std()
        );
    }
    Ok(())
}
