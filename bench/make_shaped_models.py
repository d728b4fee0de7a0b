#!/usr/bin/env python3
"""Random-weight HF checkpoints with the shapes of the speed benchmarks, and their GGUF files
made by `whale quantize` (so the side-by-side also checks that llama.cpp loads Whale's files).

Speed depends on shapes, not on weight values: weights are N(0, 0.02) in f16, norms are 1.
Shapes (docs/benchmarks.md):
  qwen2-1.5b  exactly DeepSeek-R1-Distill-Qwen-1.5B: hidden 1536, 28 layers, 12 heads,
              2 KV heads, intermediate 8960, vocab 151936; the R1-Distill tokenizer
              (tests/fixtures/tokenizer_r1_distill)
  dsv2-small  DeepSeek-V2 architecture, MLA + MoE: hidden 1024, 12 layers, 16 heads,
              q_lora 768, kv_lora 512, 32 routed experts + 2 shared, 4 per token, vocab
              102400; the 512-token test tokenizer padded to the vocabulary

Usage: python3 bench/make_shaped_models.py OUT_DIR [--only qwen2-1.5b|dsv2-small] [--types q4_k_m,q8_0]
Needs numpy and safetensors (pip install numpy safetensors) and a built `whale`
(WHALE=path, default target/release/whale or target/debug/whale).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parent.parent
STD = 0.02

QWEN2 = dict(
    architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=1536, intermediate_size=8960,
    num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
    max_position_embeddings=131072, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
    hidden_act="silu", torch_dtype="float16", bos_token_id=151646, eos_token_id=151643,
)

DSV2 = dict(
    architectures=["DeepseekV2ForCausalLM"], model_type="deepseek_v2", hidden_size=1024,
    intermediate_size=5472, moe_intermediate_size=704, num_hidden_layers=12, num_attention_heads=16,
    num_key_value_heads=16, q_lora_rank=768, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
    v_head_dim=128, n_routed_experts=32, n_shared_experts=2, num_experts_per_tok=4, first_k_dense_replace=1,
    moe_layer_freq=1, n_group=1, topk_group=1, topk_method="greedy", scoring_func="softmax",
    norm_topk_prob=False, routed_scaling_factor=1.0, vocab_size=102400, max_position_embeddings=4096,
    rms_norm_eps=1e-6, rope_theta=10000.0, rope_scaling=None, attention_bias=False,
    tie_word_embeddings=False, hidden_act="silu", torch_dtype="float16", bos_token_id=0, eos_token_id=1,
)


def rnd(rng, *shape):
    return (rng.standard_normal(shape, dtype=np.float32) * STD).astype(np.float16)


def ones(*shape):
    return np.ones(shape, dtype=np.float16)


def mlp(t, rng, p, hidden, inter):
    t[p + "gate_proj.weight"] = rnd(rng, inter, hidden)
    t[p + "up_proj.weight"] = rnd(rng, inter, hidden)
    t[p + "down_proj.weight"] = rnd(rng, hidden, inter)


def qwen2_tensors(c, rng):
    H, L, V = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = H // nh
    t = {"model.embed_tokens.weight": rnd(rng, V, H), "model.norm.weight": ones(H), "lm_head.weight": rnd(rng, V, H)}
    for i in range(L):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = ones(H)
        t[p + "post_attention_layernorm.weight"] = ones(H)
        for n, rows in [("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd)]:
            t[p + f"self_attn.{n}_proj.weight"] = rnd(rng, rows, H)
            t[p + f"self_attn.{n}_proj.bias"] = rnd(rng, rows)
        t[p + "self_attn.o_proj.weight"] = rnd(rng, H, nh * hd)
        mlp(t, rng, p + "mlp.", H, c["intermediate_size"])
    return t


def dsv2_tensors(c, rng):
    H, L, V = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    nh, nope, rope, v = c["num_attention_heads"], c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    ql, kvl = c["q_lora_rank"], c["kv_lora_rank"]
    t = {"model.embed_tokens.weight": rnd(rng, V, H), "model.norm.weight": ones(H), "lm_head.weight": rnd(rng, V, H)}
    for i in range(L):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = ones(H)
        t[p + "post_attention_layernorm.weight"] = ones(H)
        a = p + "self_attn."
        t[a + "q_a_proj.weight"] = rnd(rng, ql, H)
        t[a + "q_a_layernorm.weight"] = ones(ql)
        t[a + "q_b_proj.weight"] = rnd(rng, nh * (nope + rope), ql)
        t[a + "kv_a_proj_with_mqa.weight"] = rnd(rng, kvl + rope, H)
        t[a + "kv_a_layernorm.weight"] = ones(kvl)
        t[a + "kv_b_proj.weight"] = rnd(rng, nh * (nope + v), kvl)
        t[a + "o_proj.weight"] = rnd(rng, H, nh * v)
        if i < c["first_k_dense_replace"]:
            mlp(t, rng, p + "mlp.", H, c["intermediate_size"])
            continue
        t[p + "mlp.gate.weight"] = rnd(rng, c["n_routed_experts"], H)
        for e in range(c["n_routed_experts"]):
            mlp(t, rng, p + f"mlp.experts.{e}.", H, c["moe_intermediate_size"])
        mlp(t, rng, p + "mlp.shared_experts.", H, c["moe_intermediate_size"] * c["n_shared_experts"])
    return t


MODELS = {
    "qwen2-1.5b": (QWEN2, qwen2_tensors, ROOT / "tests/fixtures/tokenizer_r1_distill"),
    "dsv2-small": (DSV2, dsv2_tensors, ROOT / "tests/fixtures/tiny_chat_tokenizer"),
}


def whale_binary():
    if "WHALE" in os.environ:
        return os.environ["WHALE"]
    for p in ["target/release/whale", "target/debug/whale"]:
        if (ROOT / p).exists():
            return str(ROOT / p)
    sys.exit("error: no whale binary; build one (cargo build -p whale-cli) or set WHALE=path")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--only", choices=sorted(MODELS))
    ap.add_argument("--types", default="q4_k_m,q8_0")
    args = ap.parse_args()
    whale = whale_binary()
    for name, (cfg, make, tok) in MODELS.items():
        if args.only and name != args.only:
            continue
        hf = args.out / f"hf-{name}"
        if not (hf / "model.safetensors").exists():
            hf.mkdir(parents=True, exist_ok=True)
            print(f"{name}: writing random weights to {hf}", flush=True)
            save_file(make(cfg, np.random.default_rng(0)), str(hf / "model.safetensors"))
            (hf / "config.json").write_text(json.dumps(cfg, indent=2))
            for f in ["tokenizer.json", "tokenizer_config.json"]:
                if (tok / f).exists():
                    shutil.copy(tok / f, hf / f)
        for ty in args.types.split(","):
            out = args.out / f"{name}-{ty}.gguf"
            if not out.exists():
                subprocess.run([whale, "quantize", str(hf), str(out), "--type", ty], check=True)
            print(out)


if __name__ == "__main__":
    main()
