//! The engine thread: continuous batching over one model.
//!
//! Every step it takes in new requests (up to `max_batch` running), drops those whose caller
//! went away, and runs one forward over all running sequences together: one token for each
//! decoding sequence plus prompt chunks for prefilling ones, at most `prefill_chunk` prompt
//! tokens per step in total, so a long prompt is spread over several steps while the others
//! keep producing tokens. Requests join and leave at these token boundaries. Greedy requests
//! on a model with an MTP module are decoded speculatively, one forward each (see
//! `speculative.rs`).

use crate::chooser::TokenChooser;
use crate::event::Event;
use crate::handle::{EngineConfig, EngineError};
use crate::prefix_cache::PrefixCache;
use crate::sequence::Sequence;
use crate::speculative::{self, SpecState};
use crate::stats::EngineStats;
use crate::{GenerateError, Request};
use candle_core::DType;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;
use whale_model::{CausalLm, SeqStep};

pub(crate) struct Job {
    pub id: u64,
    pub req: Request,
    pub events: UnboundedSender<Event>,
    /// Where the request's prompt cache hits are published when it starts.
    pub cache_hit: Arc<std::sync::atomic::AtomicU64>,
}

pub(crate) struct Scheduler {
    model: Box<dyn CausalLm>,
    cfg: EngineConfig,
    stats: Arc<EngineStats>,
    waiting: Arc<AtomicUsize>,
    queue: VecDeque<Job>,
    running: Vec<Sequence>,
    prefix: Option<PrefixCache>,
}

impl Scheduler {
    pub fn new(
        model: Box<dyn CausalLm>,
        cfg: EngineConfig,
        stats: Arc<EngineStats>,
        waiting: Arc<AtomicUsize>,
    ) -> Result<Self, EngineError> {
        let prefix = match &cfg.prefix_cache {
            Some(pc) => Some(PrefixCache::new(pc, &model.new_cache(), model.device())?),
            None => None,
        };
        let s = Scheduler { model, cfg, stats, waiting, queue: VecDeque::new(), running: Vec::new(), prefix };
        s.publish_cache_stats();
        Ok(s)
    }

    pub fn run(mut self, rx: mpsc::Receiver<Job>) {
        loop {
            if self.running.is_empty() && self.queue.is_empty() {
                match rx.recv() {
                    Ok(job) => self.queue.push_back(job),
                    Err(_) => return, // every handle is gone
                }
            }
            while let Ok(job) = rx.try_recv() {
                self.queue.push_back(job);
            }
            self.admit();
            self.retire();
            if !self.running.is_empty() {
                self.step();
                self.retire();
            }
            EngineStats::set(&self.stats.queue_depth, self.queue.len());
            EngineStats::set(&self.stats.running, self.running.len());
        }
    }

    /// Moves queued requests into free batch slots, loading their cached prefixes.
    fn admit(&mut self) {
        while self.running.len() < self.cfg.max_batch {
            let Some(job) = self.queue.pop_front() else { break };
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            if job.events.is_closed() {
                EngineStats::add(&self.stats.requests_cancelled, 1);
                continue;
            }
            match self.start(job.id, job.req, job.events.clone()) {
                Ok(seq) => {
                    job.cache_hit.store(seq.cache_hit as u64, Ordering::Release);
                    self.running.push(seq)
                }
                Err(e) => {
                    EngineStats::add(&self.stats.requests_failed, 1);
                    let _ = job.events.send(Event::Error(e.to_string()));
                }
            }
        }
    }

    fn start(&mut self, id: u64, req: Request, events: UnboundedSender<Event>) -> Result<Sequence, GenerateError> {
        let greedy = req.params.is_greedy();
        let chooser = TokenChooser::new(req.params, &req.prompt, req.options.thinking_budget, req.constraint, req.options.stop_ids)?;
        let mut cache = self.model.new_cache();
        let mut cache_hit = 0;
        if req.use_prefix_cache {
            if let Some(prefix) = self.prefix.as_mut() {
                // At least one prompt token is always computed: its logits give the first token.
                match prefix.load_prefix(&req.prompt, req.prompt.len() - 1, &mut cache) {
                    Ok(n) => cache_hit = n,
                    Err(e) => {
                        tracing::warn!("prefix cache lookup failed, computing the prompt: {e}");
                        cache.reset();
                    }
                }
            }
        }
        let spec = match self.model.new_mtp_cache() {
            Some(mtp) if self.cfg.speculative && greedy => Some(SpecState::new(mtp, cache_hit)),
            _ => None,
        };
        EngineStats::add(&self.stats.prompt_tokens, req.prompt.len());
        EngineStats::add(&self.stats.prompt_cache_hit_tokens, cache_hit);
        Ok(Sequence {
            id,
            events,
            cache,
            chooser,
            prompt_len: req.prompt.len(),
            tokens: req.prompt,
            cache_hit,
            max_tokens: req.options.max_tokens,
            max_positions: crate::handle::context_limit(self.model.info(), &self.cfg),
            finished: None,
            use_prefix_cache: req.use_prefix_cache,
            prompt_stored: false,
            spec,
        })
    }

    /// One forward over the batch (plus one per speculative sequence).
    fn step(&mut self) {
        let started = Instant::now();
        let mut budget = self.cfg.prefill_chunk;
        // (index in `running`, tokens to feed)
        let mut plan: Vec<(usize, usize)> = Vec::new();
        for (i, seq) in self.running.iter_mut().enumerate() {
            if seq.spec.is_some() || seq.finished.is_some() {
                continue;
            }
            let n = match seq.pending() {
                1 => 1,
                p => p.min(budget),
            };
            if n == 0 || seq.check_limits(n) {
                continue;
            }
            if n > 1 {
                budget -= n;
            }
            plan.push((i, n));
        }
        let mut processed = 0;
        let planned = plan.len();
        if !plan.is_empty() {
            processed += plan.iter().map(|p| p.1).sum::<usize>();
            let running = &self.running;
            let parts = split_plan(plan, |&(i, n)| n == 1 && !running[i].feeding_prompt());
            for part in parts {
                if let Err(e) = self.forward_plan(&part) {
                    for &(i, _) in &part {
                        self.fail(i, &e);
                    }
                }
            }
        }
        for i in 0..self.running.len() {
            if self.running[i].spec.is_none() || self.running[i].finished.is_some() {
                continue;
            }
            let chunk = budget.max(1);
            match speculative::step(&mut self.running[i], self.model.as_ref(), chunk) {
                Ok(n) => {
                    processed += n;
                    if n > 1 && self.running[i].pending() > 0 {
                        budget = budget.saturating_sub(n);
                    }
                }
                Err(e) => self.fail(i, &e),
            }
        }
        for seq in self.running.iter_mut() {
            if !seq.prompt_stored && seq.produced() > 0 {
                seq.prompt_stored = true;
                if seq.use_prefix_cache {
                    if let Some(prefix) = self.prefix.as_mut() {
                        let held = seq.prompt_len.min(seq.cache.seq_len());
                        if let Err(e) = prefix.store(&seq.tokens[..held], &seq.cache) {
                            tracing::warn!("prefix cache store failed: {e}");
                        }
                    }
                }
            }
        }
        self.publish_cache_stats();
        EngineStats::add(&self.stats.forward_steps, 1);
        EngineStats::set(&self.stats.last_batch_size, planned + self.running.iter().filter(|s| s.spec.is_some()).count());
        let secs = started.elapsed().as_secs_f64();
        if secs > 0.0 && processed > 0 {
            self.stats.tokens_per_second_bits.store((processed as f64 / secs).to_bits(), Ordering::Relaxed);
        }
    }

    fn forward_plan(&mut self, plan: &[(usize, usize)]) -> Result<(), GenerateError> {
        let logits = {
            let mut planned = plan.iter().peekable();
            let mut steps: Vec<SeqStep<'_>> = Vec::with_capacity(plan.len());
            for (i, seq) in self.running.iter_mut().enumerate() {
                let Some(&(_, n)) = planned.next_if(|p| p.0 == i) else { continue };
                let fed = seq.cache.seq_len();
                let prompt = seq.feeding_prompt();
                steps.push(SeqStep { ids: &seq.tokens[fed..fed + n], cache: &mut seq.cache, prompt });
            }
            self.model.forward_seqs(&mut steps)?.to_dtype(DType::F32)?.to_vec2::<f32>()?
        };
        for (row, &(i, _)) in plan.iter().enumerate() {
            let seq = &mut self.running[i];
            if seq.pending() == 0 {
                let mut l = logits[row].clone();
                seq.take_token(&mut l)?;
                EngineStats::add(&self.stats.completion_tokens, 1);
            }
        }
        Ok(())
    }

    fn fail(&mut self, i: usize, e: &GenerateError) {
        let seq = &mut self.running[i];
        if seq.finished.is_none() {
            tracing::error!("request {} failed: {e}", seq.id);
            let _ = seq.events.send(Event::Error(e.to_string()));
            // Marked finished with no Done event: `retire` drops it silently.
            seq.finished = Some(crate::FinishReason::Stop);
            seq.events = tokio::sync::mpsc::unbounded_channel().0;
            EngineStats::add(&self.stats.requests_failed, 1);
        }
    }

    /// Sends `Done` for finished sequences, stores their blocks, and drops them and the
    /// cancelled ones.
    fn retire(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            let seq = &self.running[i];
            let cancelled = seq.is_cancelled();
            if seq.finished.is_none() && !cancelled {
                i += 1;
                continue;
            }
            let seq = self.running.swap_remove(i);
            if seq.use_prefix_cache {
                if let Some(prefix) = self.prefix.as_mut() {
                    let held = seq.cache.seq_len().min(seq.tokens.len());
                    if let Err(e) = prefix.store(&seq.tokens[..held], &seq.cache) {
                        tracing::warn!("prefix cache store failed: {e}");
                    }
                }
            }
            if let Some(spec) = &seq.spec {
                EngineStats::add(&self.stats.spec_drafted, spec.drafted);
                EngineStats::add(&self.stats.spec_accepted, spec.accepted);
                EngineStats::add(&self.stats.completion_tokens, seq.produced());
            }
            if cancelled {
                EngineStats::add(&self.stats.requests_cancelled, 1);
            } else {
                EngineStats::add(&self.stats.requests_finished, 1);
                let _ = seq.events.send(Event::Done(seq.completion()));
            }
        }
    }

    fn publish_cache_stats(&self) {
        if let Some(p) = &self.prefix {
            EngineStats::set(&self.stats.cache_ram_bytes, p.ram_bytes());
            self.stats.cache_disk_bytes.store(p.disk_bytes(), Ordering::Relaxed);
            self.stats.cache_corrupt_blocks.store(p.corrupt_blocks(), Ordering::Relaxed);
        }
    }
}

/// A step's plan as the forwards it runs: decodes and prompt chunks apart when both are
/// planned. Decode rows take other kernels than prompt rows (`whale_quant::decode_kernels`),
/// and a decode must be computed the same way whatever else is in the step. `is_decode`:
/// whether a planned `(sequence, tokens)` is one generated token (a prompt's last token
/// alone is not).
fn split_plan(plan: Vec<(usize, usize)>, is_decode: impl Fn(&(usize, usize)) -> bool) -> Vec<Vec<(usize, usize)>> {
    let (decodes, prompts): (Vec<_>, Vec<_>) = plan.iter().partition(|p| is_decode(p));
    if decodes.is_empty() || prompts.is_empty() {
        vec![plan]
    } else {
        vec![decodes, prompts]
    }
}
