#!/usr/bin/env python3
"""Whale beside llama.cpp on the same GGUF files, threads and test sizes, in one run.

For each model file and thread count, runs `llama-bench -o json` and `whale bench --json`
(prefill ppN and decode tgN, mean ± std over repetitions) back to back, and prints a markdown
table with the ratio Whale / llama.cpp. Optionally compares perplexity on a text file
(`llama-perplexity` vs `whale perplexity`, same context size and chunk count), and batched
decoding (`--parallel 4,16`: `llama-batched-bench` vs `whale bench --parallel`, S sequences
decoding together, aggregate tokens/s of all S, and each tool's ratio to its own single stream).

llama.cpp is not part of Whale: build it by hand from its public source (see
../shared/anchors/README.md) and pass the folder holding its binaries.

Usage:
  python3 bench/llama_side_by_side.py --llama-bin LLAMA_BUILD/bin --model A.gguf [--model B.gguf ...]
      [--threads 1,2] [-p 512] [-n 128] [-r 3] [--ppl-text FILE --ppl-chunks 8] [--parallel 4,16]
      [--whale target/debug/whale] [--json OUT.json]
"""
import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p


def llama_bench(bin_dir, model, threads, p, n, r):
    out = run([str(bin_dir / "llama-bench"), "-m", str(model), "-t", str(threads), "-p", str(p), "-n", str(n),
               "-r", str(r), "-o", "json"]).stdout
    rows = {}
    for e in json.loads(out):
        test = f"pp{e['n_prompt']}" if e["n_gen"] == 0 else f"tg{e['n_gen']}"
        rows[test] = (e["avg_ts"], e["stddev_ts"])
    return rows


def whale_bench(whale, model, threads, p, n, r):
    out = run([whale, "bench", "--model", str(model), "-t", str(threads), "-p", str(p), "-n", str(n), "-r", str(r),
               "--json"]).stdout
    rows = {}
    for line in out.splitlines():
        if line.strip().startswith("{"):
            e = json.loads(line)
            rows[e["test"]] = (e["tokens_per_s_mean"], e["tokens_per_s_std"])
    return rows


def llama_batched(bin_dir, model, threads, n, parallel):
    """Aggregate decode tokens/s of S sequences (a 1-token prompt each, n tokens each) per S."""
    out = run([str(bin_dir / "llama-batched-bench"), "-m", str(model), "-t", str(threads), "-tb", str(threads),
               "-c", str((n + 8) * max(parallel)), "-b", "2048", "-ub", "512", "-npp", "1", "-ntg", str(n),
               "-npl", ",".join(map(str, parallel)), "--output-format", "jsonl"]).stdout
    return {e["pl"]: e["speed_tg"] for e in (json.loads(l) for l in out.splitlines() if l.startswith("{"))}


def whale_batched(whale, model, threads, n, r, parallel):
    out = run([whale, "bench", "--model", str(model), "-t", str(threads), "-p", "0", "-n", str(n), "-r", str(r),
               "--parallel", ",".join(map(str, parallel)), "--json"]).stdout
    rows = {}
    for e in (json.loads(l) for l in out.splitlines() if l.strip().startswith("{")):
        s = int(e["test"].split(" x")[1]) if " x" in e["test"] else 1
        rows[s] = e["tokens_per_s_mean"]
    return rows


def llama_ppl(bin_dir, model, text, ctx, chunks, threads):
    p = run([str(bin_dir / "llama-perplexity"), "-m", str(model), "-f", str(text), "-c", str(ctx),
             "--chunks", str(chunks), "-t", str(threads)])
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", p.stdout + p.stderr)
    if not m:
        sys.exit(f"error: no final estimate in llama-perplexity's output:\n{(p.stdout + p.stderr)[-2000:]}")
    return float(m.group(1)), float(m.group(2))


def whale_ppl(whale, model, text, ctx, chunks, threads):
    p = run([whale, "perplexity", "--model", str(model), "--text", str(text), "-c", str(ctx), "--chunks", str(chunks),
             "-t", str(threads), "--json"])
    e = json.loads([l for l in p.stdout.splitlines() if l.strip().startswith("{")][-1])
    return e["ppl"], e["ppl_stderr"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-bin", type=Path, required=True, help="folder with llama-bench (and llama-perplexity)")
    ap.add_argument("--model", type=Path, action="append", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--whale", default=os.environ.get("WHALE", str(ROOT / "target/debug/whale")))
    ap.add_argument("--ppl-text", type=Path)
    ap.add_argument("--ppl-ctx", type=int, default=512)
    ap.add_argument("--ppl-chunks", type=int, default=8)
    ap.add_argument("--parallel", help="batched decoding with these sequence counts, e.g. 4,16 (1 is added)")
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    args = ap.parse_args()
    if not (args.llama_bin / "llama-bench").exists():
        sys.exit(f"error: {args.llama_bin}/llama-bench not found; pass the folder of a llama.cpp build's binaries")

    results = []
    print("| model | threads | test | llama.cpp t/s | Whale t/s | Whale / llama.cpp |")
    print("|---|---:|---|---:|---:|---:|")
    for model in args.model:
        for t in [int(x) for x in args.threads.split(",")]:
            ll = llama_bench(args.llama_bin, model, t, args.p, args.n, args.r)
            wh = whale_bench(args.whale, model, t, args.p, args.n, args.r)
            for test in [f"pp{args.p}", f"tg{args.n}"]:
                if test not in ll or test not in wh:
                    continue
                (lm, ls), (wm, ws) = ll[test], wh[test]
                print(f"| {model.name} | {t} | {test} | {lm:.2f} ± {ls:.2f} | {wm:.2f} ± {ws:.2f} | {wm / lm:.2f}x |",
                      flush=True)
                results.append(dict(model=model.name, threads=t, test=test, llama=[lm, ls], whale=[wm, ws]))
    if args.parallel:
        par = sorted({1, *[int(x) for x in args.parallel.split(",")]})
        print()
        print(f"Batched decoding, tg{args.n} per sequence, aggregate tokens/s of S sequences (x: over the same tool's S = 1):")
        print()
        print("| model | threads | S | llama.cpp t/s | Whale t/s | Whale / llama.cpp |")
        print("|---|---:|---:|---:|---:|---:|")
        for model in args.model:
            for t in [int(x) for x in args.threads.split(",")]:
                if not (args.llama_bin / "llama-batched-bench").exists():
                    sys.exit(f"error: {args.llama_bin}/llama-batched-bench not found (build the llama-batched-bench target)")
                ll = llama_batched(args.llama_bin, model, t, args.n, par)
                wh = whale_batched(args.whale, model, t, args.n, args.r, par)
                for s in par:
                    lm, wm = ll[s], wh[s]
                    print(f"| {model.name} | {t} | {s} | {lm:.2f} ({lm / ll[1]:.2f}x) | {wm:.2f} ({wm / wh[1]:.2f}x) | "
                          f"{wm / lm:.2f}x |", flush=True)
                    results.append(dict(model=model.name, threads=t, test=f"tg{args.n} x{s}", llama=[lm, 0], whale=[wm, 0]))
    if args.ppl_text:
        print()
        print(f"Perplexity of {args.ppl_text.name}, -c {args.ppl_ctx}, {args.ppl_chunks} chunks:")
        print()
        print("| model | llama.cpp PPL | Whale PPL | relative difference |")
        print("|---|---:|---:|---:|")
        t = max(int(x) for x in args.threads.split(","))
        for model in args.model:
            lp, le = llama_ppl(args.llama_bin, model, args.ppl_text, args.ppl_ctx, args.ppl_chunks, t)
            wp, we = whale_ppl(args.whale, model, args.ppl_text, args.ppl_ctx, args.ppl_chunks, t)
            print(f"| {model.name} | {lp:.4f} ± {le:.4f} | {wp:.4f} ± {we:.4f} | {100 * (wp - lp) / lp:+.2f} % |", flush=True)
            results.append(dict(model=model.name, test="ppl", llama=[lp, le], whale=[wp, we]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
