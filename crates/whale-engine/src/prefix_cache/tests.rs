//! The prefix cache on synthetic caches: whole blocks and tails load exactly what was
//! stored, a tail serves only the prefix it shares with the prompt, and the tail tier keeps
//! to its byte cap.

use super::*;
use candle_core::Tensor;
use whale_nn::{KvCache, LayerCache};

const LAYERS: usize = 2;

fn empty() -> KvCache {
    KvCache::new((0..LAYERS).map(|_| LayerCache::Latent { latent: whale_nn::kv_cache::SeqBuffer::new(1), width: 3 }).collect(), DType::F32)
}

/// A cache whose value at (layer, position, j) is a function of the token at that position,
/// so a wrong or shifted load shows.
fn filled(tokens: &[u32]) -> KvCache {
    let mut c = empty();
    for l in 0..LAYERS {
        let v: Vec<f32> = tokens.iter().flat_map(|&t| (0..3).map(move |j| (t * 10 + j) as f32 + l as f32 * 0.5)).collect();
        let t = Tensor::from_vec(v, (1, tokens.len(), 3), &Device::Cpu).unwrap();
        c.layer_mut(l).import(&[t]).unwrap();
    }
    c
}

fn values(c: &KvCache) -> Vec<Vec<f32>> {
    (0..LAYERS).map(|l| c.layer(l).export(0, c.seq_len()).unwrap()[0].flatten_all().unwrap().to_vec1().unwrap()).collect()
}

fn cache(ram: usize) -> PrefixCache {
    let cfg = PrefixCacheConfig { ram_bytes: ram, disk: None, fingerprint: "test".into() };
    PrefixCache::new(&cfg, &empty(), &Device::Cpu).unwrap()
}

fn tokens(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 7 + salt) % 1000).collect()
}

#[test]
fn a_repeated_prompt_loads_its_tail_up_to_the_limit() {
    let mut pc = cache(1 << 20);
    let p = tokens(150, 1);
    assert_eq!(pc.store(&p, &filled(&p)).unwrap(), 2, "two full blocks");
    let mut c = empty();
    // All but the last token (the engine computes that one for the first logits).
    assert_eq!(pc.load_prefix(&p, 149, &mut c).unwrap(), 149);
    assert_eq!(values(&c), values(&filled(&p[..149])));
    // A prompt ending inside block 1 gets block 0: block 1's key needs all its tokens.
    let mut c = empty();
    assert_eq!(pc.load_prefix(&p[..120], 120, &mut c).unwrap(), 64);
    // A prompt of whole blocks, repeated: the last block loads but for its last token.
    let q = tokens(128, 7);
    pc.store(&q, &filled(&q)).unwrap();
    let mut c = empty();
    assert_eq!(pc.load_prefix(&q, 127, &mut c).unwrap(), 127);
    assert_eq!(values(&c), values(&filled(&q[..127])));
}

#[test]
fn a_tail_serves_prompts_it_covers_or_that_extend_it() {
    let mut pc = cache(1 << 20);
    let p = tokens(100, 2);
    pc.store(&p, &filled(&p)).unwrap();
    // Same first block, and 10 more tokens of the tail, then a different token: only the
    // block (a partial overlap with a tail is not used).
    let mut q = p[..74].to_vec();
    q.extend(tokens(30, 500));
    let mut c = empty();
    assert_eq!(pc.load_prefix(&q, q.len() - 1, &mut c).unwrap(), 64);
    assert_eq!(values(&c), values(&filled(&q[..64])));
    // A prompt that extends the whole cached sequence (a conversation's next turn).
    let mut e = p.clone();
    e.extend(tokens(20, 600));
    let mut c = empty();
    assert_eq!(pc.load_prefix(&e, e.len() - 1, &mut c).unwrap(), 100);
    assert_eq!(values(&c), values(&filled(&p)));
    // A prompt the tail covers: a shorter one of the same tokens.
    let mut c = empty();
    assert_eq!(pc.load_prefix(&p[..90], 89, &mut c).unwrap(), 89);
    // A tail stored under another first block never matches.
    let mut r = tokens(64, 9);
    r.extend(&p[64..]);
    let mut c = empty();
    assert_eq!(pc.load_prefix(&r, r.len() - 1, &mut c).unwrap(), 0);
    // A shorter prompt than anything cached (no full block) still hits the tail under the root.
    let s = tokens(40, 3);
    pc.store(&s, &filled(&s)).unwrap();
    let mut c = empty();
    assert_eq!(pc.load_prefix(&s, 39, &mut c).unwrap(), 39);
    assert_eq!(values(&c), values(&filled(&s[..39])));
}

#[test]
fn a_longer_tail_replaces_the_one_it_extends() {
    let mut pc = cache(1 << 20);
    let p = tokens(90, 4);
    pc.store(&p[..70], &filled(&p[..70])).unwrap();
    let one = pc.ram_bytes();
    pc.store(&p, &filled(&p)).unwrap();
    // The 6-token tail is gone, the 26-token one holds it: 20 more positions.
    assert_eq!(pc.ram_bytes() - one, 20 * 3 * 4 * LAYERS);
    let mut c = empty();
    assert_eq!(pc.load_prefix(&p[..80], 80, &mut c).unwrap(), 80);
    assert_eq!(values(&c), values(&filled(&p[..80])));
}

#[test]
fn the_tail_tier_keeps_to_its_cap() {
    // A quarter of 4 KiB for tails: one 30-token tail is 720 bytes, so one fits, not two.
    let mut pc = cache(4096);
    let (a, b) = (tokens(30, 5), tokens(30, 6));
    pc.store(&a, &filled(&a)).unwrap();
    pc.store(&b, &filled(&b)).unwrap();
    assert!(pc.tails.bytes() <= 1024);
    assert_eq!(pc.tails.len(), 1);
    // The most recent survives.
    let mut c = empty();
    assert_eq!(pc.load_prefix(&b, 29, &mut c).unwrap(), 29);
    let mut c = empty();
    assert_eq!(pc.load_prefix(&a, 29, &mut c).unwrap(), 0);
}
