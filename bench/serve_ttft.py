#!/usr/bin/env python3
"""Time to first token of `whale serve` for a long prompt (default 1,000 tokens) cold, warm
from the RAM prefix cache, and warm from the disk cache after a restart; and aggregate decode
throughput at 1, 4 and 16 concurrent streaming requests. Prints a side-by-side table, with a
`llama-server` column when --llama-server (and --llama-model) are given.

    nice -n 10 python3 bench/serve_ttft.py --model /work/models/gemma/gemma-3-270m-q4_k_m.gguf -t 2
    nice -n 10 python3 bench/serve_ttft.py --model tests/fixtures/deepseek_v3_tiny \
        --server-args "--tokenizer tests/fixtures/tiny_chat_tokenizer" --prompt-tokens 200 -t 2

Prompts are token ids sent to /v1/completions (exact lengths, no chat template needed, and
the same ids for both servers). Each repetition uses a prompt of its own, so "cold" is cold.
TTFT is measured with max_tokens 1: the time until the first token's chunk arrives. Every
server it starts listens on 127.0.0.1 and is stopped before it exits.
"""
import argparse
import concurrent.futures as cf
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from serve_common import WhaleServer, client, free_port, ms, percentile, stream_timed


class LlamaServer:
    """An optional llama-server child (loopback), for the comparison column."""

    def __init__(self, binary, model, threads, ctx, parallel, startup_s=300):
        import urllib.request

        self.port = free_port()
        cmd = ["nice", "-n", "10", binary, "-m", model, "--host", "127.0.0.1", "--port", str(self.port),
               "-t", str(threads), "-c", str(ctx * parallel), "--parallel", str(parallel)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + startup_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"error: llama-server exited with {self.proc.returncode}")
            try:
                if urllib.request.urlopen(f"{self.base}/health", timeout=1).status == 200:
                    return
            except Exception:
                time.sleep(0.2)
        self.stop()
        sys.exit("error: llama-server did not come up")

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def id_prompts(n, length, vocab_lo, vocab_hi, seed):
    rng = random.Random(seed)
    return [[rng.randrange(vocab_lo, vocab_hi) for _ in range(length)] for _ in range(n)]


def ttft(cli, model, ids):
    """(seconds to the first token, prompt tokens the server reports as cache hits)."""
    _, usage, first, _, _ = stream_timed(cli, "completions", model, ids, 1)
    return first, getattr(usage, "prompt_cache_hit_tokens", None) if usage else None


def decode_throughput(cli, model, prompts, concurrency, max_tokens):
    """Aggregate completion tokens/s of `concurrency` simultaneous streamed requests."""
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        outs = list(pool.map(lambda p: stream_timed(cli, "completions", model, p, max_tokens), prompts[:concurrency]))
    wall = time.perf_counter() - t0
    tokens = sum(o[1].completion_tokens for o in outs if o[1] is not None)
    gaps = [g for o in outs for g in o[3]]
    return tokens / wall, tokens, percentile(gaps, 50)


def measure(name, start, a, prompts, decode_prompts, restartable):
    """Runs every measurement against servers made by `start(cache_dir)`; returns rows."""
    rows = {}
    with tempfile.TemporaryDirectory() as cache:
        srv = start(cache)
        try:
            cli = client(srv.base, a.request_timeout)
            model = cli.models.list().data[0].id
            ttft(cli, model, prompts[-1][:16])  # warm-up: threads, allocator; not a measured prompt
            cold = [ttft(cli, model, p) for p in prompts[: a.reps]]
            warm = [ttft(cli, model, p) for p in prompts[: a.reps]]
            rows["ttft_cold"] = cold
            rows["ttft_ram"] = warm
            for c in a.concurrency:
                rows[f"decode_{c}"] = decode_throughput(cli, model, decode_prompts, c, a.decode_tokens)
        finally:
            srv.stop()
        if restartable:
            srv = start(cache)
            try:
                cli = client(srv.base, a.request_timeout)
                ttft(cli, model, prompts[-1][:16])
                rows["ttft_disk"] = [ttft(cli, model, p) for p in prompts[: a.reps]]
            finally:
                srv.stop()
    print(f"{name}: measured", file=sys.stderr)
    return rows


def fmt_ttft(runs):
    if not runs:
        return "n/a"
    xs = [t for t, _ in runs]
    hits = sorted({h for _, h in runs if h is not None})
    hit = f", {'/'.join(map(str, hits))} hit" if hits else ""
    return f"{ms(statistics.median(xs))} ms (min {ms(min(xs))}{hit})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--whale", default="target/debug/whale")
    ap.add_argument("--model", required=True, help="model folder or .gguf for whale serve")
    ap.add_argument("--server-args", default="", help="more `whale serve` flags")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3, help="prompts per TTFT measurement (median reported)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--decode-tokens", type=int, default=64, help="max_tokens of each decode-throughput request")
    ap.add_argument("--vocab", type=int, nargs=2, default=[300, 500], metavar=("LO", "HI"),
                    help="prompt ids are drawn from [LO, HI) (stay clear of special tokens)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--request-timeout", type=float, default=600)
    ap.add_argument("--llama-server", help="path to llama-server for a comparison column")
    ap.add_argument("--llama-model", help="the GGUF llama-server loads (default: --model)")
    ap.add_argument("--log", default=None, help="whale serve's log file")
    a = ap.parse_args()

    prompts = id_prompts(a.reps + 1, a.prompt_tokens, *a.vocab, a.seed)
    decode_prompts = id_prompts(max(a.concurrency), 16, *a.vocab, a.seed + 1)
    batch = max(a.concurrency)

    def whale(cache):
        extra = ["-t", str(a.threads), "--cache-dir", cache, "--max-batch", str(batch), *shlex.split(a.server_args)]
        return WhaleServer(a.whale, a.model, extra, log_path=a.log)

    columns = [("whale", measure("whale", whale, a, prompts, decode_prompts, True))]
    if a.llama_server:
        llama_model = a.llama_model or a.model

        def llama(_cache):
            return LlamaServer(a.llama_server, llama_model, a.threads, a.prompt_tokens + a.decode_tokens + 64, batch)

        columns.append(("llama-server", measure("llama-server", llama, a, prompts, decode_prompts, False)))

    print(f"prompt {a.prompt_tokens} tokens (ids), {a.reps} prompts per TTFT row (median, min), "
          f"-t {a.threads}, decode rows: {a.decode_tokens} max tokens per request, 16-token prompts")
    print("| metric | " + " | ".join(n for n, _ in columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    labels = [("ttft_cold", "TTFT cold"), ("ttft_ram", "TTFT warm (RAM prefix cache)"),
              ("ttft_disk", "TTFT warm from disk, after a restart")]
    for key, label in labels:
        print(f"| {label} | " + " | ".join(fmt_ttft(r.get(key)) for _, r in columns) + " |")
    for c in a.concurrency:
        cells = []
        for _, r in columns:
            tps, tokens, itl = r[f"decode_{c}"]
            cells.append(f"{tps:.1f} tok/s ({tokens} tokens, ITL p50 {ms(itl)} ms)")
        print(f"| decode, {c} concurrent | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
