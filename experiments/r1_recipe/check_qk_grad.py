#!/usr/bin/env python3
"""Evidence for the blocking bug: after training, did the attention-score parameters get any
gradient? Parameters that start at a constant and get no weight decay stay exactly there when
their gradient is always zero:
- Qwen2: q_proj / k_proj / v_proj biases start at 0 (only v should move if scores get no gradient);
- DeepSeek MLA: q_a_layernorm.weight (query path only) starts at 1; kv_a_layernorm.weight feeds
  both the keys and the values, so it moves through the values either way.
Usage: check_qk_grad.py CHECKPOINT/model.safetensors"""
import json, struct, sys
import numpy as np

def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(meta["shape"])
    return out

w = load(sys.argv[1])
for name in sorted(w):
    t = w[name]
    if "layers.0." in name and "_proj.bias" in name:
        print(f"{name:50s} max|x|   = {np.abs(t).max():.3e}")
    if "layers.0." in name and ("q_a_layernorm" in name or "kv_a_layernorm" in name):
        print(f"{name:50s} max|x-1| = {np.abs(t - 1).max():.3e}")
