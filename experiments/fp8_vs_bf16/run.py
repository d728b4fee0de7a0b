#!/usr/bin/env python3
"""FP8 vs BF16 (vs F32) training of a small DeepSeek-V3-architecture model with `whale train`.

Same seed, same data order, same hyper-parameters; only `train.precision` differs:
  f32   plain f32 GEMMs (the reference the other two drift from)
  bf16  GEMM operands rounded to bf16, products accumulated in f32
  fp8   V3 §3.3 simulated: E4M3 activations in 1x128 tiles, weights in 128x128 blocks, output
        gradient in 1x128 tiles, f32 accumulation; the head stays f32 (docs/train.md)
Master weights, gradients and AdamW moments are f32 in all three.

Model: model_config.json here (V3 architecture: MLA with q-LoRA, 1 dense + 3 MoE layers with
8 routed experts (top-2, 4 groups, 2 kept) + 1 shared, sigmoid gate with the aux-loss-free
bias; hidden 128, vocab 512, no MTP). Data: the text files given (default: every file in
/usr/share/common-licenses, the Debian license texts: GPL, Apache, Artistic, BSD, ...),
tokenized by the 512-token fixture tokenizer, windows of 128 tokens, 1 % of documents held out.

Writes results.json (every step's loss per precision, val losses, relative differences) and
results.md (the summary table) beside this file.

Usage: python experiments/fp8_vs_bf16/run.py [--whale target/debug/whale] [--steps 300]
       [--precisions bf16,fp8,f32] [--batch 8] [--lr 2e-3] [--eval-every 50]
       [--val-sequences 16] [--text FILE ...] [--results-dir DIR]
"""
import argparse
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

RUN_TOML = """out = "{out}"

[model]
config = "{config}"
init_std = 0.02

[data]
sources = {sources}
tokenizer = "{tokenizer}"
validation_fraction = 0.01
format = "text"

[train]
steps = {steps}
batch_size = {batch}
seq_len = 128
seed = 0
precision = "{precision}"
eval_every = {eval_every}
val_sequences = {val_sequences}
progress = false

[optim]
lr = {lr}

[schedule]
kind = "cosine"
warmup_steps = 20

[checkpoint]
every = 0
keep = 1
"""


def rel(a, b):
    return abs(a - b) / abs(b)


def smooth(xs, k=20):
    return [statistics.fmean(xs[max(0, i - k + 1): i + 1]) for i in range(len(xs))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--whale", default=str(ROOT / "target/debug/whale"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--precisions", default="bf16,fp8,f32")
    ap.add_argument("--batch", type=int, default=8, help="sequences of 128 tokens per step")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--val-sequences", type=int, default=16)
    ap.add_argument("--text", nargs="*", default=None)
    ap.add_argument("--work", default="/tmp/whale_fp8_vs_bf16")
    ap.add_argument("--results-dir", default=str(HERE), help="where results.json/results.md go")
    ap.add_argument("--summarize-only", action="store_true", help="read the runs already in --work instead of training")
    args = ap.parse_args()
    sources = args.text or sorted(f for f in glob.glob("/usr/share/common-licenses/*") if os.path.isfile(f))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    runs = {}
    for p in args.precisions.split(","):
        out = work / p
        toml = work / f"{p}.toml"
        toml.write_text(RUN_TOML.format(
            out=out, config=HERE / "model_config.json", sources=json.dumps([str(s) for s in sources]),
            tokenizer=ROOT / "tests/fixtures/tiny_chat_tokenizer", steps=args.steps, precision=p, batch=args.batch, lr=args.lr,
            eval_every=args.eval_every, val_sequences=args.val_sequences))
        t0 = time.time()
        load0 = open("/proc/loadavg").read().split()[0]
        if args.summarize_only:
            if not (out / "metrics.jsonl").exists():
                continue
        else:
            if out.exists():
                subprocess.run(["rm", "-rf", str(out)], check=True)
            r = subprocess.run([args.whale, "train", "--config", str(toml)], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"{p}: whale train failed\n{r.stderr}")
        recs = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
        runs[p] = {
            "loss": [x["loss"] for x in recs],
            "val": {x["step"]: x["val_loss"] for x in recs if x.get("val_loss") is not None},
            "tokens_per_s_median": statistics.median(x["tokens_per_s"] for x in recs),
            "wall_s": None if args.summarize_only else time.time() - t0,
            "load_start": load0,
        }
        print(f"{p}: loss {recs[0]['loss']:.4f} -> {recs[-1]['loss']:.4f}, {time.time() - t0:.0f} s", file=sys.stderr)

    steps = args.steps
    summary = {}
    pairs = [("fp8", "bf16"), ("bf16", "f32"), ("fp8", "f32")]
    for a, b in pairs:
        if a not in runs or b not in runs:
            continue
        la, lb = runs[a]["loss"], runs[b]["loss"]
        sa, sb = smooth(la), smooth(lb)
        raw = [rel(x, y) for x, y in zip(la, lb)]
        sm = [rel(x, y) for x, y in zip(sa, sb)]
        tail = slice(steps // 2, steps)
        val = {s: rel(runs[a]["val"][s], runs[b]["val"][s]) for s in runs[b]["val"] if s in runs[a]["val"]}
        summary[f"{a}_vs_{b}"] = {
            "final_loss": [la[-1], lb[-1]],
            "final_rel": raw[-1],
            "mean_rel_second_half": statistics.fmean(raw[tail]),
            "max_rel_second_half": max(raw[tail]),
            "smoothed20_final_rel": sm[-1],
            "smoothed20_max_rel_second_half": max(sm[tail]),
            "val_rel": val,
            "rel_at_steps": {s: raw[s - 1] for s in (1, 10, 50, 100, 150, 200, 250, 300) if s <= steps},
        }
    meta = {
        "whale": args.whale,
        "steps": steps,
        "batch": f"{args.batch} x 128 tokens",
        "lr": args.lr,
        "sources": [str(s) for s in sources],
        "machine": platform.processor() or platform.machine(),
        "nproc": os.cpu_count(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    (results / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1))

    lines = [
        "# FP8 vs BF16 training, small DeepSeek-V3-architecture model (`whale train`)",
        "",
        f"Made by `python experiments/fp8_vs_bf16/run.py --steps {steps} --batch {args.batch} --lr {args.lr}` "
        f"on {meta['date_utc']} UTC "
        f"({meta['nproc']}-core VM). Raw numbers: `results.json`.",
        "",
        "Relative difference |loss_a - loss_b| / loss_b of the training loss at the same step "
        "(same seed, same batches); 'smoothed' uses a 20-step trailing mean of each curve.",
        "",
        f"| a vs b | final loss a / b | rel. at last step | mean rel. steps {steps // 2 + 1}-{steps} "
        f"| max rel. steps {steps // 2 + 1}-{steps} | smoothed rel. at last step | smoothed max rel. second half "
        "| val loss rel. (step: rel) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for k, s in summary.items():
        val = ", ".join(f"{st}: {v * 100:.3f} %" for st, v in s["val_rel"].items())
        lines.append(
            f"| {k.replace('_vs_', ' vs ')} | {s['final_loss'][0]:.4f} / {s['final_loss'][1]:.4f} | "
            f"{s['final_rel'] * 100:.3f} % | {s['mean_rel_second_half'] * 100:.3f} % | {s['max_rel_second_half'] * 100:.3f} % | "
            f"{s['smoothed20_final_rel'] * 100:.3f} % | {s['smoothed20_max_rel_second_half'] * 100:.3f} % | {val} |"
        )
    lines += ["", "| precision | loss step 1 | loss step " f"{steps} | median tokens/s | wall s | load avg at start |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for p, r in runs.items():
        lines.append(f"| {p} | {r['loss'][0]:.4f} | {r['loss'][-1]:.4f} | {r['tokens_per_s_median']:.0f} | {r['wall_s'] if r['wall_s'] is None else round(r['wall_s'])} | {r['load_start']} |")
    (results / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
