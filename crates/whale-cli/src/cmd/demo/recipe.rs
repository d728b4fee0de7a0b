//! The demo's sizes, in two scales: the full run (under 30 minutes on 2 cores, a model that
//! learns something) and `--quick` (the same chain with tiny step counts, under 3 minutes: a
//! smoke test of every stage, not a result). Also the model configs and run.toml files the
//! training stages read, written into the run folder so every stage can be rerun by hand.

use anyhow::{Context, Result};
use serde_json::json;
use std::path::Path;

pub struct Recipe {
    pub pretrain_docs: usize,
    pub sft_examples: usize,
    pub teacher: Dense,
    pub experts: usize,
    pub pretrain_steps: usize,
    pub seq_len: usize,
    pub sft_steps: usize,
    pub eval_problems: usize,
    pub eval_samples: usize,
    pub grpo_steps: usize,
    pub grpo_prompts: usize,
    pub grpo_group: usize,
    pub student: Dense,
    pub student_steps: usize,
    pub rejection_problems: usize,
    pub rejection_samples: usize,
    pub distill_steps: usize,
    /// Most tokens per answer; a 2-digit trace with its answer takes about 60.
    pub max_tokens: usize,
}

/// Width and depth of a model.
pub struct Dense {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
}

impl Recipe {
    pub fn new(quick: bool) -> Recipe {
        if quick {
            Recipe {
                pretrain_docs: 2000,
                sft_examples: 200,
                teacher: Dense { hidden: 64, layers: 2, heads: 4, intermediate: 128 },
                experts: 4,
                pretrain_steps: 40,
                seq_len: 128,
                sft_steps: 15,
                eval_problems: 16,
                eval_samples: 2,
                grpo_steps: 2,
                grpo_prompts: 4,
                grpo_group: 4,
                student: Dense { hidden: 64, layers: 2, heads: 4, intermediate: 128 },
                student_steps: 30,
                rejection_problems: 32,
                rejection_samples: 4,
                distill_steps: 15,
                max_tokens: 80,
            }
        } else {
            Recipe {
                pretrain_docs: 20000,
                sft_examples: 2000,
                teacher: Dense { hidden: 128, layers: 4, heads: 4, intermediate: 384 },
                experts: 8,
                pretrain_steps: 500,
                seq_len: 256,
                sft_steps: 150,
                eval_problems: 200,
                eval_samples: 4,
                grpo_steps: 30,
                grpo_prompts: 8,
                grpo_group: 8,
                student: Dense { hidden: 96, layers: 3, heads: 4, intermediate: 256 },
                student_steps: 500,
                rejection_problems: 500,
                rejection_samples: 4,
                distill_steps: 300,
                max_tokens: 120,
            }
        }
    }

    /// A DeepSeek-V3-architecture teacher: MLA (with q-LoRA), DeepSeekMoE after one dense
    /// layer (sigmoid gate with the aux-loss-free bias, one shared expert) and one MTP module.
    pub fn teacher_config(&self, vocab: usize) -> serde_json::Value {
        let d = &self.teacher;
        let head = d.hidden / d.heads;
        json!({
            "architectures": ["DeepseekV3ForCausalLM"],
            "model_type": "deepseek_v3",
            "vocab_size": vocab,
            "hidden_size": d.hidden,
            "intermediate_size": d.intermediate,
            "moe_intermediate_size": d.intermediate / 4,
            "num_hidden_layers": d.layers,
            "num_attention_heads": d.heads,
            "num_key_value_heads": d.heads,
            "q_lora_rank": d.hidden / 2,
            "kv_lora_rank": d.hidden / 4,
            "qk_nope_head_dim": head / 2,
            "qk_rope_head_dim": head / 2,
            "v_head_dim": head,
            "n_routed_experts": self.experts,
            "n_shared_experts": 1,
            "num_experts_per_tok": 2,
            "n_group": self.experts / 2,
            "topk_group": self.experts / 4,
            "norm_topk_prob": true,
            "routed_scaling_factor": 1.0,
            "first_k_dense_replace": 1,
            "num_nextn_predict_layers": 1,
            "hidden_act": "silu",
            "max_position_embeddings": 512,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "rope_scaling": null,
            "attention_bias": false,
            "tie_word_embeddings": false,
            "bos_token_id": 0,
            "eos_token_id": 1,
        })
    }

    /// The dense Qwen2 student (the R1-Distill family's architecture).
    pub fn student_config(&self, vocab: usize) -> serde_json::Value {
        let d = &self.student;
        json!({
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "vocab_size": vocab,
            "hidden_size": d.hidden,
            "intermediate_size": d.intermediate,
            "num_hidden_layers": d.layers,
            "num_attention_heads": d.heads,
            "num_key_value_heads": d.heads / 2,
            "hidden_act": "silu",
            "max_position_embeddings": 512,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": false,
            "use_sliding_window": false,
            "bos_token_id": 0,
            "eos_token_id": 1,
        })
    }

    /// A run.toml for `whale train` in `dir`, paths relative to it.
    pub fn run_toml(&self, steps: usize, mtp: bool) -> String {
        let mut t = format!(
            "# Written by `whale demo`; rerun with `whale train --config run.toml` (keys: docs/train.md).\n\
             out = \".\"\n\n[model]\nconfig = \"config.json\"\n\n\
             [data]\nsources = [\"../data/pretrain.txt\"]\ntokenizer = \"../tokenizer\"\ntext_split = \"blank_line\"\nvalidation_fraction = 0.02\n\n\
             [train]\nsteps = {steps}\nbatch_size = 8\nmicro_batch = 8\nseq_len = {}\neval_every = {}\nval_sequences = 8\n\n\
             [optim]\nlr = 3e-3\nweight_decay = 0.1\n\n\
             [schedule]\nkind = \"wsd\"\nwarmup_steps = {}\ndecay_fraction = 0.3\n\n\
             [checkpoint]\nevery = {steps}\nkeep = 1\n",
            self.seq_len,
            (steps / 5).max(1),
            (steps / 20).max(2),
        );
        if mtp {
            t.push_str("\n[mtp]\ndepth = 1\nloss_weight = 0.3\n");
        }
        t
    }
}

pub fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(v)? + "\n").with_context(|| format!("writing {}", path.display()))
}
