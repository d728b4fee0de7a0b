//! A model that writes a fixed text: the tiny fixture's shapes and caches, but logits that
//! pick the script's next token (then EOS). It lets the HTTP tests check how exact model
//! outputs (tool calls, say) come out of the API, which random fixture weights never write.
//!
//! One request at a time: the script position is global, reset by each prefill (a forward of
//! more than one token; the tests run without a prefix cache, so every prompt is prefilled).

use candle_core::{DType, Device, Tensor};
use std::sync::Mutex;
use whale_model::{CausalLm, DecoderOutput, ModelInfo, Result, SeqStep};
use whale_nn::KvCache;

pub struct Scripted {
    inner: Box<dyn CausalLm>,
    info: ModelInfo,
    script: Vec<u32>,
    at: Mutex<usize>,
}

impl Scripted {
    /// `script`: the ids to write; EOS follows.
    pub fn new(inner: Box<dyn CausalLm>, script: Vec<u32>, eos: u32) -> Self {
        Self::with_vocab(inner, script, eos, None)
    }

    /// `vocab`: a vocabulary size other than the fixture's (to serve a larger tokenizer; the
    /// logits are made here, so any size works).
    pub fn with_vocab(
        inner: Box<dyn CausalLm>,
        mut script: Vec<u32>,
        eos: u32,
        vocab: Option<usize>,
    ) -> Self {
        script.push(eos);
        let mut info = inner.info().clone();
        if let Some(v) = vocab {
            info.vocab_size = v;
            info.eos_token_ids = vec![eos];
        }
        // No real attention runs, so the fixture's 256-position limit does not apply.
        info.max_position_embeddings = 4096;
        info.mtp_depth = 0;
        Scripted {
            inner,
            info,
            script,
            at: Mutex::new(0),
        }
    }
}

impl CausalLm for Scripted {
    fn info(&self) -> &ModelInfo {
        &self.info
    }
    fn device(&self) -> &Device {
        self.inner.device()
    }
    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
    fn new_cache(&self) -> KvCache {
        self.inner.new_cache()
    }
    fn forward_hidden(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<DecoderOutput> {
        self.inner.forward_hidden(ids, cache)
    }
    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.inner.lm_head(hidden)
    }

    fn forward_seqs(&self, steps: &mut [SeqStep<'_>]) -> Result<Tensor> {
        let vocab = self.info.vocab_size;
        let mut rows = Vec::with_capacity(steps.len() * vocab);
        let mut at = self.at.lock().unwrap();
        for step in steps.iter_mut() {
            // Zero K/V for the new positions keep the cache's length right for the engine.
            let cache = &mut *step.cache;
            for l in 0..cache.num_layers() {
                let parts = cache
                    .layer(l)
                    .span_shapes(step.ids.len())
                    .iter()
                    .map(|s| Tensor::zeros(s.as_slice(), cache.dtype(), self.device()))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                cache.layer_mut(l).import(&parts)?;
            }
            if step.ids.len() > 1 {
                *at = 0;
            }
            let next = self.script[(*at).min(self.script.len() - 1)];
            *at += 1;
            rows.extend((0..vocab as u32).map(|t| if t == next { 10.0f32 } else { -10.0 }));
        }
        Ok(Tensor::from_vec(rows, (steps.len(), vocab), self.device())?)
    }
}
