//! Prometheus text exposition for `GET /metrics`: the server's own counters (HTTP requests by
//! route and status, tokens and cost of finished requests) next to the engine's live stats
//! (queue depth, batch size, tokens/s, prefix-cache hit ratio and size).

use crate::api::common::UsageBody;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use whale_engine::StatsSnapshot;

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    /// (route, status) → requests.
    http: BTreeMap<(String, u16), u64>,
    prompt_tokens: u64,
    prompt_cache_hit_tokens: u64,
    completion_tokens: u64,
    reasoning_tokens: u64,
    /// currency → total cost of finished requests.
    cost: BTreeMap<String, f64>,
    completions: u64,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A panic while holding this lock cannot leave the counters inconsistent in a way
        // that matters, so a poisoned lock is used as it is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record_http(&self, route: &str, status: u16) {
        *self
            .lock()
            .http
            .entry((route.to_string(), status))
            .or_default() += 1;
    }

    /// Adds a finished generation's usage and cost.
    pub fn record_usage(&self, u: &UsageBody) {
        let mut c = self.lock();
        c.completions += 1;
        c.prompt_tokens += u.prompt_tokens as u64;
        c.prompt_cache_hit_tokens += u.prompt_cache_hit_tokens as u64;
        c.completion_tokens += u.completion_tokens as u64;
        c.reasoning_tokens += u.completion_tokens_details.reasoning_tokens as u64;
        *c.cost.entry(u.cost.currency.clone()).or_default() += u.cost.total;
    }

    pub fn render(&self, engine: &StatsSnapshot) -> String {
        let c = self.lock();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let one = |v: f64| vec![(String::new(), v)];
        let http: Vec<(String, f64)> = c
            .http
            .iter()
            .map(|((r, s), n)| {
                (
                    format!("{{route=\"{}\",status=\"{s}\"}}", escape(r)),
                    *n as f64,
                )
            })
            .collect();
        family(
            "whale_http_requests_total",
            "counter",
            "HTTP requests by route and status.",
            &http,
        );
        family(
            "whale_requests_completed_total",
            "counter",
            "Generations that finished and were billed.",
            &one(c.completions as f64),
        );
        family(
            "whale_prompt_tokens_total",
            "counter",
            "Prompt tokens of finished generations.",
            &one(c.prompt_tokens as f64),
        );
        family(
            "whale_prompt_cache_hit_tokens_total",
            "counter",
            "Prompt tokens served from the prefix cache.",
            &one(c.prompt_cache_hit_tokens as f64),
        );
        family(
            "whale_completion_tokens_total",
            "counter",
            "Generated tokens of finished generations.",
            &one(c.completion_tokens as f64),
        );
        family(
            "whale_reasoning_tokens_total",
            "counter",
            "Generated tokens inside think blocks.",
            &one(c.reasoning_tokens as f64),
        );
        let cost: Vec<(String, f64)> = c
            .cost
            .iter()
            .map(|(cur, v)| (format!("{{currency=\"{}\"}}", escape(cur)), *v))
            .collect();
        family(
            "whale_cost_total",
            "counter",
            "Billed cost of finished generations at the price table.",
            &cost,
        );
        let e = engine;
        family(
            "whale_engine_requests_submitted_total",
            "counter",
            "Requests accepted by the engine.",
            &one(e.requests_submitted as f64),
        );
        family(
            "whale_engine_requests_rejected_total",
            "counter",
            "Requests refused as overload.",
            &one(e.requests_rejected as f64),
        );
        family(
            "whale_engine_requests_cancelled_total",
            "counter",
            "Requests cancelled by their caller.",
            &one(e.requests_cancelled as f64),
        );
        family(
            "whale_engine_requests_failed_total",
            "counter",
            "Requests that failed in the engine.",
            &one(e.requests_failed as f64),
        );
        family(
            "whale_engine_prompt_tokens_total",
            "counter",
            "Prompt tokens admitted by the engine.",
            &one(e.prompt_tokens as f64),
        );
        family(
            "whale_engine_prompt_cache_hit_tokens_total",
            "counter",
            "Prompt tokens the engine loaded from the prefix cache.",
            &one(e.prompt_cache_hit_tokens as f64),
        );
        family(
            "whale_engine_completion_tokens_total",
            "counter",
            "Tokens the engine generated.",
            &one(e.completion_tokens as f64),
        );
        family(
            "whale_cache_hit_ratio",
            "gauge",
            "Share of engine prompt tokens served from the prefix cache.",
            &one(e.cache_hit_ratio()),
        );
        family(
            "whale_queue_depth",
            "gauge",
            "Requests waiting for a batch slot.",
            &one(e.queue_depth as f64),
        );
        family(
            "whale_running_requests",
            "gauge",
            "Requests in the running batch.",
            &one(e.running as f64),
        );
        family(
            "whale_batch_size",
            "gauge",
            "Sequences in the last forward step.",
            &one(e.last_batch_size as f64),
        );
        family(
            "whale_tokens_per_second",
            "gauge",
            "Tokens processed per second in the last step.",
            &one(e.tokens_per_second),
        );
        family(
            "whale_cache_ram_bytes",
            "gauge",
            "Prefix cache bytes in RAM.",
            &one(e.cache_ram_bytes as f64),
        );
        family(
            "whale_cache_disk_bytes",
            "gauge",
            "Prefix cache bytes on disk.",
            &one(e.cache_disk_bytes as f64),
        );
        // Disk blocks that failed their checksum/shape check and were dropped (recomputed).
        family(
            "whale_cache_corrupt_blocks_total",
            "counter",
            "Disk cache blocks found corrupted or torn, dropped and recomputed.",
            &one(e.cache_corrupt_blocks as f64),
        );
        let spec = if e.spec_drafted == 0 {
            0.0
        } else {
            e.spec_accepted as f64 / e.spec_drafted as f64
        };
        family(
            "whale_spec_acceptance_ratio",
            "gauge",
            "Accepted share of MTP draft tokens.",
            &one(spec),
        );
        out
    }
}

/// Label values may not contain `"`, `\` or newlines unescaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counts every request by its matched route (not the raw path, which clients control).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let resp = next.run(req).await;
    state.metrics().record_http(&route, resp.status().as_u16());
    resp
}
