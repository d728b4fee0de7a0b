//! The engine's front door. [`Engine::start`] moves the model onto its own thread (the one
//! owner of the model and its caches); callers hold a cloneable [`EngineHandle`], submit
//! [`Request`]s and read each request's [`Event`]s from a [`RequestStream`]. Dropping the
//! stream cancels the request at the next token boundary.
//!
//! Overload is refused, not buffered: at most `max_queue` requests may wait for a batch slot;
//! beyond that `submit` fails with [`SubmitError::Overloaded`] at once.

use crate::event::{Completion, Event};
use crate::prefix_cache::PrefixCacheConfig;
use crate::scheduler::{Job, Scheduler};
use crate::stats::{EngineStats, StatsSnapshot};
use crate::{GenerateError, GeneratedToken, Request};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::mpsc as tmpsc;
use whale_model::{CausalLm, ModelInfo};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most sequences decoded together in one forward.
    pub max_batch: usize,
    /// Most requests waiting for a slot before new ones are refused.
    pub max_queue: usize,
    /// Most prompt tokens prefilled per step across the batch: a long prompt is cut into
    /// chunks so that running sequences keep decoding while it is prefilled.
    pub prefill_chunk: usize,
    /// `None` disables prefix caching.
    pub prefix_cache: Option<PrefixCacheConfig>,
    /// Decode greedy requests with the model's MTP module as the drafter, when it has one.
    pub speculative: bool,
    /// Most tokens per sequence, prompt and output together; `None`: the model's
    /// `max_position_embeddings`. A lower limit bounds each sequence's KV cache.
    pub max_context: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_batch: 8, max_queue: 64, prefill_chunk: 256, prefix_cache: None, speculative: true, max_context: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the engine is overloaded: {waiting} requests are already waiting (limit {limit}); retry later")]
    Overloaded { waiting: usize, limit: usize },
    #[error(transparent)]
    Invalid(#[from] GenerateError),
    #[error("the engine has stopped (its model thread ended)")]
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid engine configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Cache(#[from] crate::prefix_cache::CacheError),
    #[error("could not start the engine thread: {0}")]
    Spawn(#[from] std::io::Error),
}

pub struct Engine;

impl Engine {
    /// Starts the engine thread, which owns `model` until every handle is dropped.
    pub fn start(model: Box<dyn CausalLm>, cfg: EngineConfig) -> Result<EngineHandle, EngineError> {
        if cfg.max_batch == 0 || cfg.max_queue == 0 || cfg.prefill_chunk == 0 {
            return Err(EngineError::Config(format!(
                "max_batch ({}), max_queue ({}) and prefill_chunk ({}) must all be at least 1",
                cfg.max_batch, cfg.max_queue, cfg.prefill_chunk
            )));
        }
        if cfg.max_context == Some(0) {
            return Err(EngineError::Config("max_context must be at least 1 token".into()));
        }
        // Callers see the context the engine enforces, which may be below the model's.
        let mut info = model.info().clone();
        info.max_position_embeddings = context_limit(&info, &cfg);
        let info = Arc::new(info);
        let stats = Arc::new(EngineStats::default());
        let waiting = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel::<Job>();
        let scheduler = Scheduler::new(model, cfg.clone(), stats.clone(), waiting.clone())?;
        std::thread::Builder::new().name("whale-engine".into()).spawn(move || scheduler.run(rx))?;
        Ok(EngineHandle {
            inner: Arc::new(Inner { tx, stats, waiting, info, max_queue: cfg.max_queue, next_id: AtomicU64::new(0) }),
        })
    }
}

/// The most tokens a sequence may hold: the model's context, or `cfg.max_context` if lower.
pub(crate) fn context_limit(info: &ModelInfo, cfg: &EngineConfig) -> usize {
    cfg.max_context.map_or(info.max_position_embeddings, |c| c.min(info.max_position_embeddings))
}

struct Inner {
    tx: mpsc::Sender<Job>,
    stats: Arc<EngineStats>,
    waiting: Arc<AtomicUsize>,
    info: Arc<ModelInfo>,
    max_queue: usize,
    next_id: AtomicU64,
}

/// A cloneable way to reach the engine from any thread or task.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

impl EngineHandle {
    pub fn model_info(&self) -> &ModelInfo {
        &self.inner.info
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Validates the request and queues it. No model work happens on the caller's thread.
    pub fn submit(&self, req: Request) -> Result<RequestStream, SubmitError> {
        let limit = self.inner.info.max_position_embeddings;
        if req.prompt.is_empty() {
            return Err(GenerateError::EmptyPrompt.into());
        }
        if req.prompt.len() >= limit {
            return Err(GenerateError::PromptTooLong { prompt: req.prompt.len(), limit }.into());
        }
        let vocab = self.inner.info.vocab_size;
        if let Some(&bad) = req.prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(GenerateError::TokenOutOfRange { token: bad, vocab }.into());
        }
        req.params.validate().map_err(GenerateError::from)?;
        if let Some((&token, _)) = req.params.logit_bias.iter().find(|(&t, _)| t as usize >= vocab) {
            return Err(GenerateError::from(crate::SamplingError::BiasTokenOutOfRange { token, vocab }).into());
        }
        let waiting = self.inner.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.inner.max_queue {
            self.inner.waiting.fetch_sub(1, Ordering::SeqCst);
            EngineStats::add(&self.inner.stats.requests_rejected, 1);
            return Err(SubmitError::Overloaded { waiting, limit: self.inner.max_queue });
        }
        let (events, rx) = tmpsc::unbounded_channel();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let cache_hit = Arc::new(AtomicU64::new(CACHE_HIT_UNKNOWN));
        if self.inner.tx.send(Job { id, req, events, cache_hit: cache_hit.clone() }).is_err() {
            self.inner.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::Stopped);
        }
        EngineStats::add(&self.inner.stats.requests_submitted, 1);
        Ok(RequestStream { id, rx, cache_hit })
    }
}

/// `RequestStream::cache_hit` before the request has been admitted.
pub(crate) const CACHE_HIT_UNKNOWN: u64 = u64::MAX;

/// The events of one request. Dropping it cancels the request.
pub struct RequestStream {
    id: u64,
    rx: tmpsc::UnboundedReceiver<Event>,
    /// Set by the engine thread when the request is admitted, so a caller that cancels early
    /// (a stop string) still knows the prompt's cache hits without a `Done` event.
    cache_hit: Arc<AtomicU64>,
}

impl RequestStream {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Prompt tokens served from the prefix cache, once the request has started (`None`
    /// while it still waits for a batch slot). The same number as `Done`'s usage.
    pub fn prompt_cache_hit_tokens(&self) -> Option<usize> {
        match self.cache_hit.load(Ordering::Acquire) {
            CACHE_HIT_UNKNOWN => None,
            n => Some(n as usize),
        }
    }

    /// The next event (async); `None` after the final one.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event, blocking the thread (not for use inside an async runtime).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        self.rx.blocking_recv()
    }

    /// Blocks until the request is done: all its tokens and the completion.
    pub fn wait(mut self) -> Result<(Vec<GeneratedToken>, Completion), String> {
        let mut tokens = Vec::new();
        while let Some(ev) = self.blocking_recv() {
            match ev {
                Event::Token(t) => tokens.push(t),
                Event::Done(c) => return Ok((tokens, c)),
                Event::Error(e) => return Err(e),
            }
        }
        Err("the engine stopped before the request finished".into())
    }
}
