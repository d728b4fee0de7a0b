#!/usr/bin/env python3
"""HF transformers loads a checkpoint written by `whale train`, and its logits match `whale logits`.

For the checkpoint folder CKPT (config.json, model.safetensors, tokenizer files):
  1. `AutoModelForCausalLM.from_pretrained(CKPT, dtype=float32, attn_implementation="eager",
     output_loading_info=True)`: no missing, unexpected or mismatched tensors, and every tensor
     of model.safetensors (the V3 `e_score_correction_bias` buffers included) arrives in the
     model bit for bit;
  2. for each id sequence: HF's logits (one batched forward) vs `whale logits --model CKPT --ids ..`
     at every position: max |diff| <= ATOL + RTOL * |HF| (default 1e-4 and 1e-4, the tolerance
     of the inference goldens in tests/fixtures/README.md), and the same argmax at every position
     where HF's top-2 margin is above 1e-3.

Usage: hf_load_checkpoint.py --whale PATH_TO_WHALE --checkpoint CKPT [--atol 1e-4] [--rtol 1e-4]
Prints one `ok - ...` line per check; exits non-zero on the first failure.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

SEQS = [
    [5, 17, 42, 99, 3, 250, 7, 7, 7, 480, 12, 301, 64, 128, 2, 511, 9, 33, 77, 400],
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
]


def check(cond, what):
    if not cond:
        print(f"FAIL - {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok - {what}")


def whale_logits(whale, ckpt, ids):
    out = subprocess.run(
        [whale, "logits", "--model", str(ckpt), "--ids", ",".join(map(str, ids)), "-t", "1"],
        check=True,
        capture_output=True,
        text=True,
    )
    return torch.tensor(json.loads(out.stdout)["logits"], dtype=torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--whale", required=True)
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--rtol", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ckpt = args.checkpoint

    model, info = AutoModelForCausalLM.from_pretrained(
        ckpt, dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    model.eval()
    name = type(model).__name__
    for key in ["missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"]:
        check(not info.get(key), f"{name}: no {key.replace('_', ' ')} ({list(info.get(key) or [])[:5]})")

    saved = load_file(str(ckpt / "model.safetensors"))
    state = model.state_dict()
    bad = [k for k, v in saved.items() if k not in state or not torch.equal(state[k], v.to(state[k].dtype))]
    check(not bad, f"all {len(saved)} tensors of model.safetensors are in the HF model bit for bit ({bad[:5]})")

    vocab = model.config.vocab_size
    seqs = [[i % vocab for i in s] for s in SEQS]
    with torch.no_grad():
        hf = model(input_ids=torch.tensor(seqs)).logits.float()
    worst = 0.0
    for b, ids in enumerate(seqs):
        w = whale_logits(args.whale, ckpt, ids)
        h = hf[b]
        check(tuple(w.shape) == tuple(h.shape), f"seq {b}: whale logits shape {tuple(w.shape)}")
        diff = (w - h).abs()
        excess = (diff - (args.atol + args.rtol * h.abs())).max().item()
        worst = max(worst, diff.max().item())
        check(
            excess <= 0,
            f"seq {b}: max |whale - HF| = {diff.max().item():.2e} (logit std {h.std().item():.3f}) within {args.atol:g} + {args.rtol:g}|HF|",
        )
        top2 = h.topk(2, dim=-1).values
        clear = (top2[:, 0] - top2[:, 1]) > 1e-3
        same = (w.argmax(-1) == h.argmax(-1)) | ~clear
        check(bool(same.all()), f"seq {b}: same argmax at all {int(clear.sum())} positions with a clear top-1")
    print(f"hf load: {name} from {ckpt} matches whale logits (max |diff| {worst:.2e})")


if __name__ == "__main__":
    main()
