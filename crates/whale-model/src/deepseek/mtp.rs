//! Multi-token prediction (V3 §2.2): module k combines the previous depth's hidden state
//! with the embedding of the token k positions ahead,
//! `h' = eh_proj([enorm(Emb(t_{i+k})) ; hnorm(h^{k-1}_i)])`, runs one full decoder block
//! and predicts token `i + k + 1` through `shared_head.norm` and the (shared) output head.
//!
//! Concatenation order: embedding first, then hidden. The paper's equation writes
//! `[h ; emb]`, but the released V3 checkpoint's `eh_proj` was trained with the embedding
//! first (vLLM and SGLang, which serve those weights with the reported 85-90 % acceptance,
//! concatenate in that order), so Whale follows the checkpoint.
//!
//! `h^0` is the main model's final-normed hidden state (what its output head sees), as in
//! those servers; deeper modules take the previous module's block output.

use super::mla::Mla;
use super::moe::DeepSeekFfn;
use crate::block::{Block, Segment};
use candle_core::{Tensor, D};
use whale_core::{Result, Weights};
use whale_nn::moe::Routing;
use whale_nn::{Embedding, LayerCache, Linear, RmsNorm};

pub struct Mtp {
    enorm: RmsNorm,
    hnorm: RmsNorm,
    eh_proj: Linear,
    pub block: Block<Mla, DeepSeekFfn>,
    head_norm: RmsNorm,
    /// The checkpoint may store its own copies of the shared embedding and head.
    embed: Option<Embedding>,
    head: Option<Linear>,
}

pub struct MtpOutput {
    pub logits: Tensor,
    pub hidden: Tensor,
    pub routing: Option<Routing>,
}

impl Mtp {
    /// `w` is the module's prefix (`model.layers.{num_hidden_layers + k - 1}`).
    pub fn new(w: &Weights, hidden: usize, vocab: usize, eps: f64, block: Block<Mla, DeepSeekFfn>) -> Result<Self> {
        let own = |name: &str| w.is_checkpoint() && w.contains(name);
        let embed = if own("embed_tokens.weight") { Some(Embedding::load(w, "embed_tokens", vocab, hidden)?) } else { None };
        let head = if own("shared_head.head.weight") {
            Some(Linear::load(&w.pp("shared_head"), "head", hidden, vocab, false)?)
        } else {
            None
        };
        Ok(Self {
            enorm: RmsNorm::load(w, "enorm", hidden, eps)?,
            hnorm: RmsNorm::load(w, "hnorm", hidden, eps)?,
            eh_proj: Linear::load(w, "eh_proj", 2 * hidden, hidden, false)?,
            block,
            head_norm: RmsNorm::load(&w.pp("shared_head"), "norm", hidden, eps)?,
            embed,
            head,
        })
    }

    /// `hidden: (T, d)`, `next_ids: (T,)` (segments concatenated) → logits `(T, vocab)` and
    /// the block output `(T, d)`.
    pub fn forward(
        &self,
        hidden: &Tensor,
        next_ids: &Tensor,
        main_embed: &Embedding,
        main_head: &Linear,
        segs: &[Segment],
        caches: &mut [Option<&mut LayerCache>],
    ) -> Result<MtpOutput> {
        let n = next_ids.dim(0)?;
        let emb = self.embed.as_ref().unwrap_or(main_embed).forward(&next_ids.reshape((1, n))?)?.squeeze(0)?;
        let x = Tensor::cat(&[&self.enorm.forward(&emb)?, &self.hnorm.forward(hidden)?], D::Minus1)?;
        let x = self.eh_proj.forward(&x)?;
        let (h, routing) = self.block.forward(&x, segs, caches)?;
        let logits = self.head.as_ref().unwrap_or(main_head).forward(&self.head_norm.forward(&h)?)?;
        Ok(MtpOutput { logits, hidden: h, routing })
    }
}
