//! The batching engine on the fixture models: concurrent requests give exactly the tokens of
//! one-at-a-time generation (itself checked against HF transformers), chunked prefill changes
//! nothing, the prefix cache hits in RAM and across restarts on disk and never serves a
//! corrupted block, overload is refused, a dropped stream cancels, and MTP speculative
//! decoding reproduces plain greedy decoding.

use candle_core::{DType, Device};
use candle_nn::VarMap;
use serde_json::Value;
use std::path::PathBuf;
use whale_core::config::ModelConfig;
use whale_core::Weights;
use whale_engine::{
    DiskConfig, Engine, EngineConfig, EngineHandle, FinishReason, GenerationOptions, Generator, PrefixCacheConfig,
    Request, SamplingParams, SubmitError,
};
use whale_model::{load_model, CausalLm, DeepSeekModel};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

fn model(name: &str) -> Box<dyn CausalLm> {
    load_model(&fixture(name), DType::F32, &Device::Cpu).unwrap()
}

fn golden(name: &str) -> (Vec<u32>, Vec<u32>) {
    let g: Value = serde_json::from_str(&std::fs::read_to_string(fixture(name).join("golden.json")).unwrap()).unwrap();
    let ids = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    (ids(&g["input_ids"][0]), ids(&g["greedy_new_tokens"][0]))
}

fn opts(max: usize) -> GenerationOptions {
    GenerationOptions { max_tokens: Some(max), ..Default::default() }
}

fn sampled(seed: u64) -> SamplingParams {
    SamplingParams { temperature: 0.8, top_p: 0.9, seed: Some(seed), ..Default::default() }
}

/// Tokens of one request generated alone, without the engine.
fn alone(m: &dyn CausalLm, prompt: &[u32], params: SamplingParams, max: usize) -> Vec<u32> {
    let mut g = Generator::new(m, prompt, params, opts(max)).unwrap();
    let mut out = vec![];
    while let Some(t) = g.next_token().unwrap() {
        out.push(t.token);
    }
    out
}

fn prompt(len: usize, salt: u32) -> Vec<u32> {
    (0..len as u32).map(|i| (i * 7 + salt * 13 + 3) % 500 + 2).collect()
}

fn engine(name: &str, cfg: EngineConfig) -> EngineHandle {
    Engine::start(model(name), cfg).unwrap()
}

#[test]
fn greedy_through_the_engine_matches_transformers() {
    for name in ["deepseek_v3_tiny", "qwen2_tiny"] {
        let (p, expected) = golden(name);
        let h = engine(name, EngineConfig::default());
        let (tokens, done) = h.submit(Request::new(p.clone(), SamplingParams::greedy(), opts(16))).unwrap().wait().unwrap();
        let got: Vec<u32> = tokens.iter().map(|t| t.token).collect();
        assert_eq!(got, expected, "{name}");
        assert_eq!(done.finish, FinishReason::Length);
        assert_eq!(done.usage.prompt_tokens, p.len());
        assert_eq!(done.usage.completion_tokens, 16);
        assert_eq!(done.usage.prompt_cache_hit_tokens, 0);
    }
}

#[test]
fn concurrent_requests_with_chunked_prefill_give_the_tokens_of_solo_runs() {
    let reference = model("deepseek_v3_tiny");
    // Prompts of different lengths (one much longer than the prefill chunk), greedy and
    // seeded sampling mixed, more requests than batch slots.
    let reqs: Vec<(Vec<u32>, SamplingParams, usize)> = vec![
        (prompt(5, 1), SamplingParams::greedy(), 12),
        (prompt(90, 2), sampled(7), 10),
        (prompt(17, 3), sampled(8), 14),
        (prompt(33, 4), SamplingParams::greedy(), 6),
        (prompt(2, 5), sampled(9), 9),
    ];
    let h = engine("deepseek_v3_tiny", EngineConfig { max_batch: 3, prefill_chunk: 16, ..Default::default() });
    let streams: Vec<_> =
        reqs.iter().map(|(p, s, n)| h.submit(Request::new(p.clone(), s.clone(), opts(*n))).unwrap()).collect();
    for ((p, s, n), stream) in reqs.iter().zip(streams) {
        let (tokens, done) = stream.wait().unwrap();
        let got: Vec<u32> = tokens.iter().map(|t| t.token).collect();
        assert_eq!(got, alone(reference.as_ref(), p, s.clone(), *n), "prompt of {} tokens", p.len());
        assert_eq!(done.usage.completion_tokens, *n);
    }
    let st = h.stats();
    assert_eq!(st.requests_finished, 5);
    assert!(st.forward_steps > 0);
}

#[test]
fn stop_ids_and_context_limit_end_requests() {
    let (p, expected) = golden("qwen2_tiny");
    let h = engine("qwen2_tiny", EngineConfig::default());
    let stop = expected[3];
    let o = GenerationOptions { max_tokens: Some(16), stop_ids: [stop].into(), ..Default::default() };
    let (tokens, done) = h.submit(Request::new(p.clone(), SamplingParams::greedy(), o)).unwrap().wait().unwrap();
    let first = expected.iter().position(|&t| t == stop).unwrap();
    assert_eq!(tokens.len(), first + 1);
    assert_eq!(done.finish, FinishReason::Stop);

    let limit = h.model_info().max_position_embeddings;
    let long = prompt(limit - 3, 9);
    let (tokens, done) = h.submit(Request::new(long, SamplingParams::greedy(), opts(50))).unwrap().wait().unwrap();
    assert_eq!(done.finish, FinishReason::ContextFull);
    // Three produced tokens fill positions limit-3 .. limit-1; the logits at limit-1 give a
    // fourth, which no position is left to hold.
    assert_eq!(tokens.len(), 4);
}

#[test]
fn bad_requests_are_refused_at_submit() {
    let h = engine("qwen2_tiny", EngineConfig::default());
    let err = |r: Request| h.submit(r).err().expect("refused").to_string();
    assert!(err(Request::new(vec![], SamplingParams::greedy(), opts(1))).contains("empty"));
    let too_long = prompt(h.model_info().max_position_embeddings, 1);
    assert!(err(Request::new(too_long, SamplingParams::greedy(), opts(1))).contains("context"));
    let e = err(Request::new(vec![1, 99999], SamplingParams::greedy(), opts(1)));
    assert!(e.contains("99999") && e.contains("vocabulary"), "{e}");
    let bad = SamplingParams { temperature: 5.0, ..Default::default() };
    assert!(err(Request::new(vec![1, 2], bad, opts(1))).contains("temperature"));
}

#[test]
fn overload_is_refused_and_dropping_a_stream_cancels() {
    let h = engine("qwen2_tiny", EngineConfig { max_batch: 1, max_queue: 2, ..Default::default() });
    // The first occupies the slot for a while; two wait; the fourth cannot even wait.
    let long = GenerationOptions { max_tokens: Some(200), ..Default::default() };
    let mut streams = vec![];
    let mut refused = 0;
    for i in 0..6 {
        match h.submit(Request::new(prompt(4, i), SamplingParams::greedy(), long.clone())) {
            Ok(s) => streams.push(s),
            Err(SubmitError::Overloaded { limit, .. }) => {
                assert_eq!(limit, 2);
                refused += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused >= 1, "a queue of 2 behind one running request must refuse some of 6");
    drop(streams);
    let t0 = std::time::Instant::now();
    while h.stats().requests_cancelled < (6 - refused) as u64 {
        assert!(t0.elapsed().as_secs() < 30, "cancellation not observed: {:?}", h.stats());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(h.stats().requests_finished, 0);
}

fn cache_cfg(dir: Option<&std::path::Path>, ram: usize) -> EngineConfig {
    EngineConfig {
        prefix_cache: Some(PrefixCacheConfig {
            ram_bytes: ram,
            disk: dir.map(|d| DiskConfig { dir: d.to_path_buf(), max_bytes: 1 << 30 }),
            fingerprint: "deepseek_v3_tiny-f32".into(),
        }),
        ..Default::default()
    }
}

#[test]
fn prefix_cache_hits_in_ram_give_identical_tokens() {
    let h = engine("deepseek_v3_tiny", cache_cfg(None, 1 << 30));
    let p = prompt(150, 3);
    let run = |p: &Vec<u32>| h.submit(Request::new(p.clone(), SamplingParams::greedy(), opts(8))).unwrap().wait().unwrap();
    let (a, da) = run(&p);
    assert_eq!(da.usage.prompt_cache_hit_tokens, 0);
    let (b, db) = run(&p);
    // Two full 64-token blocks and the 22-token tail of a 150-token prompt, but its last token:
    // that one is computed for the first logits.
    assert_eq!(db.usage.prompt_cache_hit_tokens, 149);
    assert_eq!(db.usage.prompt_cache_miss_tokens(), 1);
    let ids = |v: &[whale_engine::GeneratedToken]| v.iter().map(|t| t.token).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    for (x, y) in a.iter().zip(&b) {
        assert!((x.logprob - y.logprob).abs() < 1e-4, "logprob {} vs {}", x.logprob, y.logprob);
    }
    // A prompt sharing only the first block hits 64; the output of a conversation's first turn
    // (prompt + answer) is cached too, so a follow-up that extends it hits further.
    let mut q = p[..64].to_vec();
    q.extend(prompt(40, 8));
    assert_eq!(run(&q).1.usage.prompt_cache_hit_tokens, 64);
    let (long, _) = h.submit(Request::new(p.clone(), SamplingParams::greedy(), opts(50))).unwrap().wait().unwrap();
    let mut follow = p.clone();
    follow.extend(ids(&long)); // 199 tokens held (the last one never fed): 3 full blocks + 7
    follow.extend(prompt(20, 4));
    assert_eq!(run(&follow).1.usage.prompt_cache_hit_tokens, 199);
    let st = h.stats();
    assert!(st.cache_ram_bytes > 0);
    assert!(st.prompt_cache_hit_tokens >= 149 + 64 + 199);
}

#[test]
fn disk_cache_survives_a_restart_and_drops_corrupted_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let p = prompt(140, 5);
    let submit = |h: &EngineHandle| h.submit(Request::new(p.clone(), SamplingParams::greedy(), opts(6))).unwrap().wait().unwrap();
    let first = {
        let h = engine("deepseek_v3_tiny", cache_cfg(Some(dir.path()), 1 << 30));
        let (t, d) = submit(&h);
        assert_eq!(d.usage.prompt_cache_hit_tokens, 0);
        assert!(h.stats().cache_disk_bytes > 0);
        t.iter().map(|t| t.token).collect::<Vec<_>>()
    };
    // A new engine (as after a restart) with an empty RAM tier reads the blocks from disk.
    let h = engine("deepseek_v3_tiny", cache_cfg(Some(dir.path()), 1 << 30));
    let (t, d) = submit(&h);
    assert_eq!(d.usage.prompt_cache_hit_tokens, 128);
    assert_eq!(t.iter().map(|t| t.token).collect::<Vec<_>>(), first);
    drop(h);

    // Corrupt the second block of the prompt (flip a byte in the middle of a file) and truncate
    // another file: both are detected, dropped and recomputed, never served.
    let files: Vec<PathBuf> = walk(dir.path()).into_iter().filter(|f| f.extension().is_some_and(|e| e == "kvb")).collect();
    assert!(files.len() >= 2);
    let keys = whale_engine::prefix_cache::chain("deepseek_v3_tiny-f32", &p);
    let second = files.iter().find(|f| f.file_stem().unwrap().to_string_lossy() == keys[1].hex()).unwrap();
    let mut bytes = std::fs::read(second).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(second, &bytes).unwrap();
    let h = engine("deepseek_v3_tiny", cache_cfg(Some(dir.path()), 1 << 30));
    let (t, d) = submit(&h);
    assert_eq!(d.usage.prompt_cache_hit_tokens, 64, "block 0 is fine, block 1 is corrupted");
    assert_eq!(h.stats().cache_corrupt_blocks, 1);
    assert_eq!(t.iter().map(|t| t.token).collect::<Vec<_>>(), first);
    // The recomputed block was written again, so the next run hits both, and the partial
    // block after them from RAM (tails are never written to disk): all but the last token.
    let (_, d) = submit(&h);
    assert_eq!(d.usage.prompt_cache_hit_tokens, 139);
}

#[test]
fn a_torn_block_behind_a_corrupted_one_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let p = prompt(200, 6);
    let submit = |h: &EngineHandle| h.submit(Request::new(p.clone(), SamplingParams::greedy(), opts(4))).unwrap().wait().unwrap();
    let first = submit(&engine("deepseek_v3_tiny", cache_cfg(Some(dir.path()), 1 << 30))).0;
    let keys = whale_engine::prefix_cache::chain("deepseek_v3_tiny-f32", &p);
    let file = |i: usize| walk(dir.path()).into_iter().find(|f| f.file_stem().unwrap().to_string_lossy() == keys[i].hex()).unwrap();
    // Block 1 corrupted, block 2 torn: the chain stops at 1, so block 2's file is never read.
    let mut b1 = std::fs::read(file(1)).unwrap();
    b1[100] ^= 1;
    std::fs::write(file(1), &b1).unwrap();
    let b2 = std::fs::read(file(2)).unwrap();
    std::fs::write(file(2), &b2[..b2.len() / 2]).unwrap();
    let (t, d) = submit(&engine("deepseek_v3_tiny", cache_cfg(Some(dir.path()), 1 << 30)));
    assert_eq!(d.usage.prompt_cache_hit_tokens, 64);
    assert_eq!(t.iter().map(|t| t.token).collect::<Vec<_>>(), first.iter().map(|t| t.token).collect::<Vec<_>>());
    // Both were rewritten whole when recomputed, so after another restart all three hit.
    assert_eq!(std::fs::read(file(2)).unwrap().len(), b2.len());
    let h = engine("deepseek_v3_tiny", cache_cfg(Some(dir.path()), 1 << 30));
    assert_eq!(submit(&h).1.usage.prompt_cache_hit_tokens, 192);
    assert_eq!(h.stats().cache_corrupt_blocks, 0);
}

#[test]
fn disk_tier_respects_its_byte_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cache_cfg(Some(dir.path()), 1 << 30);
    // One block of the tiny V3 model: 4 layers x 64 tokens x 40 latent values x 4 bytes.
    let block = 4 * 64 * 40 * 4;
    cfg.prefix_cache.as_mut().unwrap().disk.as_mut().unwrap().max_bytes = (3 * block + 3 * 512) as u64;
    let h = engine("deepseek_v3_tiny", cfg);
    for salt in 0..4 {
        h.submit(Request::new(prompt(130, 20 + salt), SamplingParams::greedy(), opts(1))).unwrap().wait().unwrap();
    }
    let total: u64 = walk(dir.path()).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    assert!(total <= (3 * block + 3 * 512) as u64, "{total} bytes on disk");
    assert_eq!(h.stats().cache_disk_bytes, total);
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn mtp_model() -> DeepSeekModel {
    let path = fixture("deepseek_v3_tiny").join("config.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["num_nextn_predict_layers"] = 1.into();
    let ModelConfig::DeepSeek(cfg) = ModelConfig::from_json_str(&json.to_string(), &path).unwrap() else { unreachable!() };
    let varmap = VarMap::new();
    let w = Weights::for_training(&varmap, 0.2, DType::F32, &Device::Cpu);
    DeepSeekModel::new(&cfg, &w).unwrap()
}

#[test]
fn mtp_speculative_decoding_reproduces_greedy_decoding() {
    let m = mtp_model();
    assert_eq!(m.info().mtp_depth, 1);
    let prompts = [prompt(9, 1), prompt(40, 2), prompt(3, 3)];
    let expected: Vec<Vec<u32>> = prompts.iter().map(|p| alone(&m, p, SamplingParams::greedy(), 24)).collect();
    let h = Engine::start(Box::new(m), EngineConfig { prefill_chunk: 16, ..Default::default() }).unwrap();
    let streams: Vec<_> =
        prompts.iter().map(|p| h.submit(Request::new(p.clone(), SamplingParams::greedy(), opts(24))).unwrap()).collect();
    let mut drafted = 0;
    for (s, want) in streams.into_iter().zip(&expected) {
        let (tokens, done) = s.wait().unwrap();
        assert_eq!(&tokens.iter().map(|t| t.token).collect::<Vec<_>>(), want);
        assert_eq!(done.usage.completion_tokens, 24);
        let spec = done.speculative.expect("greedy request on an MTP model is decoded speculatively");
        assert!(spec.drafted > 0 && spec.accepted <= spec.drafted);
        drafted += spec.drafted;
    }
    assert_eq!(h.stats().spec_drafted as usize, drafted);
    // Sampled requests are not speculative.
    let (_, done) = h.submit(Request::new(prompt(5, 1), sampled(3), opts(4))).unwrap().wait().unwrap();
    assert!(done.speculative.is_none());
}
