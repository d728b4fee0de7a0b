#!/usr/bin/env python3
"""Bounded load test of `whale serve`: C concurrent streaming clients (default 32) send a fixed
number of requests (default 128) at temperature 0 and stop by themselves (also at --time-limit
seconds). Reports throughput, p50/p99 time to first token and inter-token latency, and
asserts zero errors and that every response equals a single-request run of the same prompt.

    # start a server (killed at the end) ...
    nice -n 10 python3 bench/serve_load.py --whale target/debug/whale \
        --model tests/fixtures/deepseek_v3_tiny --server-args "--tokenizer tests/fixtures/tiny_chat_tokenizer -t 2"
    # ... or target one already running on loopback
    python3 bench/serve_load.py --url http://127.0.0.1:8000 --model-name deepseek-reasoner

Exit status 1 when a request failed or a response differed. Loopback only.
"""
import argparse
import concurrent.futures as cf
import json
import shlex
import sys
import threading
import time

from serve_common import WhaleServer, check_loopback, client, ms, percentile, stream_timed

WORDS = ("river stone cloud lamp orange window seven garden copper violin north winter "
         "paper engine silver forest").split()


def prompts(n, words):
    """n distinct prompts of about `words` words each (distinct from the first word, so no
    two share a prefix-cache block)."""
    out = []
    for i in range(n):
        body = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(words))
        out.append(f"Request {i}: continue the list {body}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="target a running server (loopback) instead of starting one")
    ap.add_argument("--whale", default="target/debug/whale", help="the whale binary to start")
    ap.add_argument("--model", help="model folder or .gguf for the started server")
    ap.add_argument("--server-args", default="", help="more `whale serve` flags, e.g. \"-t 2 --max-batch 32\"")
    ap.add_argument("--model-name", default=None, help="the request's `model` (default: the first served)")
    ap.add_argument("--endpoint", choices=["chat", "completions"], default="chat")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--distinct", type=int, default=16, help="distinct prompts (each checked against a single run)")
    ap.add_argument("--prompt-words", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--time-limit", type=float, default=300, help="seconds; no request starts after it")
    ap.add_argument("--request-timeout", type=float, default=120)
    ap.add_argument("--json", action="store_true", help="print the summary as JSON too")
    ap.add_argument("--log", default=None, help="the started server's log file")
    a = ap.parse_args()
    if a.requests < 1 or a.concurrency < 1 or a.distinct < 1:
        sys.exit("error: --requests, --concurrency and --distinct must be at least 1")

    server = None
    if a.url:
        check_loopback(a.url)
        base = a.url
    else:
        if not a.model:
            sys.exit("error: give --url, or --model (and --whale) to start a server")
        # A queue deep enough for every client, so the test measures latency, not refusals.
        extra = shlex.split(a.server_args) + ["--max-queue", str(max(64, 2 * a.concurrency))]
        server = WhaleServer(a.whale, a.model, extra, log_path=a.log)
        base = server.base
    try:
        ok = run(a, base)
    finally:
        if server:
            server.stop()
    sys.exit(0 if ok else 1)


def run(a, base):
    cli = client(base, a.request_timeout)
    model = a.model_name or cli.models.list().data[0].id
    texts = prompts(a.distinct, a.prompt_words)

    # Single-request runs: the expected text of every prompt.
    t0 = time.perf_counter()
    expected, single_ttft = [], []
    for p in texts:
        text, _, ttft, _, _ = stream_timed(cli, a.endpoint, model, p, a.max_tokens)
        expected.append(text)
        single_ttft.append(ttft)
    single_s = time.perf_counter() - t0

    deadline = time.time() + a.time_limit
    lock = threading.Lock()
    results, errors, mismatches, skipped = [], [], [], 0

    def one(i):
        nonlocal skipped
        if time.time() > deadline:
            with lock:
                skipped += 1
            return
        k = i % len(texts)
        try:
            text, usage, ttft, gaps, total = stream_timed(cli, a.endpoint, model, texts[k], a.max_tokens)
        except Exception as e:  # every failure is counted and reported, none stops the run
            with lock:
                errors.append(f"request {i}: {type(e).__name__}: {e}")
            return
        with lock:
            results.append((ttft, gaps, total, usage.completion_tokens if usage else 0))
            if text != expected[k]:
                mismatches.append(f"request {i} (prompt {k}): {text!r} != single run {expected[k]!r}")

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(a.concurrency) as pool:
        list(pool.map(one, range(a.requests)))
    wall = time.perf_counter() - t0

    ttfts = [r[0] for r in results]
    gaps = [g for r in results for g in r[1]]
    tokens = sum(r[3] for r in results)
    summary = {
        "endpoint": a.endpoint, "model": model, "concurrency": a.concurrency, "requests": a.requests,
        "completed": len(results), "errors": len(errors), "mismatches": len(mismatches), "skipped": skipped,
        "max_tokens": a.max_tokens, "wall_s": round(wall, 3),
        "requests_per_s": round(len(results) / wall, 3), "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 2),
        "ttft_p50_ms": round(percentile(ttfts, 50) * 1000, 1), "ttft_p99_ms": round(percentile(ttfts, 99) * 1000, 1),
        "itl_p50_ms": round(percentile(gaps, 50) * 1000, 1), "itl_p99_ms": round(percentile(gaps, 99) * 1000, 1),
        "single_ttft_p50_ms": round(percentile(single_ttft, 50) * 1000, 1), "single_runs_s": round(single_s, 3),
    }
    print(f"{a.requests} requests ({a.distinct} distinct prompts, max_tokens {a.max_tokens}, temperature 0), "
          f"{a.concurrency} concurrent streaming clients, {a.endpoint} endpoint, model {model}")
    print("| metric | value |\n| --- | --- |")
    rows = [
        ("completed / errors / differing / not started", f"{len(results)} / {len(errors)} / {len(mismatches)} / {skipped}"),
        ("wall time", f"{wall:.2f} s"),
        ("throughput", f"{len(results) / wall:.2f} req/s, {tokens / wall:.1f} completion tokens/s"),
        ("TTFT p50 / p99", f"{ms(percentile(ttfts, 50))} / {ms(percentile(ttfts, 99))} ms"),
        ("inter-token latency p50 / p99", f"{ms(percentile(gaps, 50))} / {ms(percentile(gaps, 99))} ms"),
        ("TTFT p50, single requests", f"{ms(percentile(single_ttft, 50))} ms"),
    ]
    for k, v in rows:
        print(f"| {k} | {v} |")
    if a.json:
        print(json.dumps(summary))
    for e in errors[:10]:
        print("error:", e, file=sys.stderr)
    for m in mismatches[:10]:
        print("differs:", m, file=sys.stderr)
    ok = not errors and not mismatches and skipped == 0
    print("load test:", "passed" if ok else "FAILED")
    return ok


if __name__ == "__main__":
    main()
