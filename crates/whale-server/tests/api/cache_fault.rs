//! Faults in the disk tier of the prefix cache, seen through the HTTP API: a torn or
//! corrupted block is detected, dropped, recomputed and billed as a miss (never served); a
//! write cut short by a kill (a leftover temp file, a missing final block) is ignored after a
//! restart; and answers after a restart equal those of a fresh, cache-less server at
//! temperature 0. The engine's own tests cover the tier directly; these check that `usage`
//! and `/metrics` report what happened.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use whale_engine::prefix_cache::{chain, BLOCK_TOKENS};
use whale_engine::{DiskConfig, EngineConfig, PrefixCacheConfig};

const FINGERPRINT: &str = "fault-test";

fn disk_config(dir: Option<&Path>) -> EngineConfig {
    EngineConfig {
        prefix_cache: Some(PrefixCacheConfig {
            ram_bytes: 64 << 20,
            disk: dir.map(|d| DiskConfig {
                dir: d.to_path_buf(),
                max_bytes: 1 << 30,
            }),
            fingerprint: FINGERPRINT.into(),
        }),
        ..Default::default()
    }
}

/// A prompt of three full cache blocks and a bit (the tiny model's context is 256).
fn messages() -> Value {
    let system = "Check every step twice and answer briefly. ".repeat(12);
    json!([{"role": "system", "content": system}, {"role": "user", "content": "What is 2+2?"}])
}

fn body() -> Value {
    chat_body(json!({"messages": messages(), "max_tokens": 8, "temperature": 0}))
}

/// The prompt's token ids, as the server computes them, and the disk files of its blocks.
fn prompt_blocks(s: &Server, cache: &Path) -> (usize, Vec<PathBuf>) {
    let msgs: Vec<whale_server::api::chat::InputMessage> =
        serde_json::from_value(messages()).unwrap();
    let ids = whale_server::prompt::chat_prompt(s.state.tokenizer(), &msgs)
        .unwrap()
        .ids;
    let dir = cache.join(FINGERPRINT);
    let files = chain(FINGERPRINT, &ids)
        .iter()
        .map(|k| dir.join(format!("{}.kvb", k.hex())))
        .collect();
    (ids.len(), files)
}

async fn ask(s: &Server) -> (String, Value) {
    let (status, v) = post(&s.app, "/v1/chat/completions", &body()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let m = &v["choices"][0]["message"];
    let text = format!("{}|{}", m["reasoning_content"], m["content"]);
    (text, v["usage"].clone())
}

fn hit(u: &Value) -> u64 {
    u["prompt_cache_hit_tokens"].as_u64().unwrap()
}

#[tokio::test]
async fn corrupted_torn_and_half_written_blocks_are_misses_and_never_served() {
    let cache = tempfile::tempdir().unwrap();
    let fresh = ask(&server_with(disk_config(None), |_| {})).await.0;

    let s = server_with(disk_config(Some(cache.path())), |_| {});
    let (prompt_len, files) = prompt_blocks(&s, cache.path());
    assert!(
        files.len() >= 3,
        "{prompt_len} prompt tokens: need 3 full blocks"
    );
    let (first, u) = ask(&s).await;
    assert_eq!(
        first, fresh,
        "a cold disk-cached server answers as a cache-less one"
    );
    assert_eq!(hit(&u), 0);
    // The blocks are written before the response ends (the engine stores, then sends Done).
    assert!(
        files.iter().all(|f| f.exists()),
        "every prompt block is on disk"
    );
    drop(s);

    // Fault 1, flipped bits in block 1 (a corrupted disk); fault 2, block 2 cut short under its
    // final name (a torn write by a tool that does not rename atomically); fault 3, a kill
    // during the write of block 3's successor: a half-written temp file beside the blocks.
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&files[1], &bytes).unwrap();
    let torn = std::fs::read(&files[2]).unwrap();
    std::fs::write(&files[2], &torn[..torn.len() / 3]).unwrap();
    let tmp = cache.path().join(FINGERPRINT).join(format!(
        "{}.4242.tmp",
        files[0].file_stem().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, &torn[..100]).unwrap();

    // Restart: block 0 is served from disk; block 1 fails its checksum, so it and every later
    // block are computed again; the usage bills them as misses.
    let s = server_with(disk_config(Some(cache.path())), |_| {});
    assert!(
        !tmp.exists(),
        "a leftover temp file is removed when the cache opens"
    );
    let (after, u) = ask(&s).await;
    assert_eq!(after, fresh, "a corrupted block is recomputed, not served");
    assert_eq!(hit(&u), BLOCK_TOKENS as u64, "only block 0 survives");
    assert_eq!(
        u["prompt_cache_miss_tokens"].as_u64().unwrap(),
        (prompt_len - BLOCK_TOKENS) as u64
    );
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], BLOCK_TOKENS);
    let (_, metrics) = get(&s.app, "/metrics").await;
    assert!(
        metrics.contains("whale_cache_corrupt_blocks_total 1\n"),
        "block 1 is counted as corrupt (block 2 is never read: the chain stops at 1): {metrics}"
    );
    // The recomputed blocks were written again (whole files with a valid checksum), and the
    // partial block after them is in RAM: all but the last prompt token hit.
    let (again, u) = ask(&s).await;
    assert_eq!(again, fresh);
    assert_eq!(hit(&u), (prompt_len - 1) as u64);
    drop(s);

    // And after one more restart every block comes from disk.
    let s = server_with(disk_config(Some(cache.path())), |_| {});
    let (restarted, u) = ask(&s).await;
    assert_eq!(restarted, fresh);
    assert_eq!(hit(&u), (prompt_len / BLOCK_TOKENS * BLOCK_TOKENS) as u64);
}

#[tokio::test]
async fn a_truncated_first_block_is_a_full_miss() {
    let cache = tempfile::tempdir().unwrap();
    let s = server_with(disk_config(Some(cache.path())), |_| {});
    let (prompt_len, files) = prompt_blocks(&s, cache.path());
    let (first, _) = ask(&s).await;
    drop(s);
    // A kill between create and fsync can leave a zero-length or header-only file.
    std::fs::write(&files[0], b"WKVB").unwrap();
    let s = server_with(disk_config(Some(cache.path())), |_| {});
    let (after, u) = ask(&s).await;
    assert_eq!(after, first);
    assert_eq!(hit(&u), 0);
    assert_eq!(
        u["prompt_cache_miss_tokens"].as_u64().unwrap(),
        prompt_len as u64
    );
    assert_eq!(u["cost"]["input_cache_hit"].as_f64().unwrap(), 0.0);
}
