#!/usr/bin/env python3
"""Training throughput, Whale (`whale train`) vs PyTorch eager (HF transformers), in one run.

Shapes: train_bench_configs.json (shared/fixtures/: tiny DeepSeek-V3 with MLA + 16 routed
experts, and Qwen2; batch 8 x 256 tokens, float32, 2 threads). For each config:

- Whale: `whale train` from fresh weights (seed 0, N(0, 0.02)), batch 8, seq_len 256,
  precision f32, AdamW (lr 1e-4, betas 0.9/0.95, weight decay 0.1), no clipping, no
  sequence-wise balance loss (HF has none; the aux-loss-free bias update stays on, it is
  cheap), RAYON_NUM_THREADS=2, WARMUP + TIMED steps. tokens/s = 8*256 / median step time of
  the TIMED steps, from `metrics.jsonl` (`tokens_per_s` is measured around one optimizer step:
  forward, backward, AdamW, bias update; not data loading, eval or checkpoints).
- PyTorch: `AutoModelForCausalLM.from_config` (sdpa attention, torch.manual_seed(0), HF
  init), `torch.set_num_threads(2)`, `torch.optim.AdamW` (same hyper-parameters); one step =
  forward on window[:, :256], mean CE against window[:, 1:], backward, AdamW step, zero_grad;
  median of TIMED steps after WARMUP.
- Both train on the same token windows: the corpus is tokenized once by the Whale run (its
  shard cache `train.bin`, little-endian u32), and PyTorch reads consecutive 257-token windows
  from that file. Ids are < 512 (the fixture tokenizer), inside the 8192-token vocabulary.

The corpus is the license texts in /usr/share/common-licenses (or --text FILE).
The machine load (/proc/loadavg) is printed before and after each measurement: this is a
shared 2-core VM, so compare the two columns of one run, never across runs.

Usage: python bench/train_vs_pytorch.py [--whale target/debug/whale] [--configs JSON]
       [--warmup 3] [--timed 10] [--only dsv3|qwen2] [--json OUT.json]
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def corpus(path, out):
    if path:
        text = Path(path).read_text(errors="replace")
    else:
        files = sorted(f for f in glob.glob("/usr/share/common-licenses/*") if os.path.isfile(f))
        if not files:
            sys.exit("no /usr/share/common-licenses: pass --text FILE")
        text = "\n\n".join(Path(f).read_text(errors="replace") for f in files)
    out.write_text(text)
    return len(text)


def run_whale(whale, name, cfg, work, text, batch, seq_len, steps, threads):
    d = work / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg, indent=1))
    (d / "run.toml").write_text(
        f"""out = "run"

[model]
config = "config.json"

[data]
sources = ["{text}"]
tokenizer = "{ROOT / 'tests/fixtures/tiny_chat_tokenizer'}"
validation_fraction = 0.0

[train]
steps = {steps}
batch_size = {batch}
seq_len = {seq_len}
seed = 0
precision = "f32"
eval_every = 0
progress = false

[optim]
lr = 1e-4
weight_decay = 0.1
grad_clip = 0.0

[moe]
seq_aux_alpha = 0.0
"""
    )
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    t0 = time.time()
    p = subprocess.run([whale, "train", "--config", str(d / "run.toml")], cwd=d, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"whale train failed:\n{p.stderr}")
    wall = time.time() - t0
    recs = [json.loads(l) for l in (d / "run/metrics.jsonl").read_text().splitlines()]
    bins = glob.glob(str(d / "run/cache/*/train.bin"))
    return recs, wall, Path(bins[0])


def run_torch(cfg, windows, warmup, timed):
    conf = AutoConfig.for_model(**{k: v for k, v in cfg.items() if k != "architectures"})
    conf.architectures = cfg["architectures"]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(conf, attn_implementation="sdpa", dtype=torch.float32)
    model.train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
    )
    vocab = conf.vocab_size
    times, losses = [], []
    for w in windows[: warmup + timed]:
        x = torch.from_numpy(w.astype(np.int64))
        t0 = time.perf_counter()
        logits = model(input_ids=x[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, vocab), x[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    return times[warmup:], losses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--whale", default=str(ROOT / "target/debug/whale"))
    ap.add_argument("--configs", default=str(ROOT.parent / "shared/fixtures/train_bench_configs.json"))
    ap.add_argument("--text", default=None)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--timed", type=int, default=10)
    ap.add_argument("--only", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    spec = json.loads(Path(args.configs).read_text())
    batch, seq_len, threads = spec["batch"], spec["seq_len"], spec["threads"]
    torch.set_num_threads(threads)
    steps = args.warmup + args.timed
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        text = work / "corpus.txt"
        chars = corpus(args.text, text)
        for name, cfg in spec["configs"].items():
            if args.only and name != args.only:
                continue
            load0 = loadavg()
            recs, wall, train_bin = run_whale(args.whale, name, cfg, work, text, batch, seq_len, steps, threads)
            load1 = loadavg()
            w_times = [r["tokens"] / r["tokens_per_s"] for r in recs[args.warmup:]]
            tokens = np.fromfile(train_bin, dtype="<u4")
            n_win = (len(tokens) - 1) // seq_len
            windows = []
            for s in range(steps):
                rows_ = [tokens[((s * batch + i) % n_win) * seq_len:][: seq_len + 1] for i in range(batch)]
                windows.append(np.stack(rows_))
            t_times, t_losses = run_torch(cfg, windows, args.warmup, args.timed)
            load2 = loadavg()
            row = {
                "model": name,
                "whale_step_s": statistics.median(w_times),
                "whale_tok_s": batch * seq_len / statistics.median(w_times),
                "whale_steps_s": w_times,
                "whale_loss": [recs[0]["loss"], recs[-1]["loss"]],
                "torch_step_s": statistics.median(t_times),
                "torch_tok_s": batch * seq_len / statistics.median(t_times),
                "torch_steps_s": t_times,
                "torch_loss": [t_losses[0], t_losses[-1]],
                "load_before_whale": load0,
                "load_before_torch": load1,
                "load_after": load2,
                "corpus_tokens": int(len(tokens)),
            }
            rows.append(row)
            print(f"# {name}: whale {row['whale_tok_s']:.0f} tok/s, torch {row['torch_tok_s']:.0f} tok/s "
                  f"(load {load0} / {load1} / {load2})", file=sys.stderr)
    print(f"\nbatch {batch} x {seq_len} tokens, float32, {threads} threads; median of {args.timed} steps after "
          f"{args.warmup} warm-up; torch {torch.__version__}, transformers {transformers.__version__}; corpus {chars} chars\n")
    print("| model | Whale step s | Whale tok/s | PyTorch step s | PyTorch tok/s | Whale / PyTorch | loss first -> last (Whale; PyTorch) | load avg (before Whale / before PyTorch / after) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['whale_step_s']:.3f} | {r['whale_tok_s']:.0f} | {r['torch_step_s']:.3f} | "
              f"{r['torch_tok_s']:.0f} | {r['whale_tok_s'] / r['torch_tok_s']:.2f}x | "
              f"{r['whale_loss'][0]:.3f} -> {r['whale_loss'][1]:.3f}; {r['torch_loss'][0]:.3f} -> {r['torch_loss'][1]:.3f} | "
              f"{r['load_before_whale']} / {r['load_before_torch']} / {r['load_after']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "spec": spec}, indent=1))


if __name__ == "__main__":
    main()
