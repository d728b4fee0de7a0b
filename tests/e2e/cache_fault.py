#!/usr/bin/env python3
"""Fault test of `whale serve`'s disk prefix cache with real processes.

1. A cache-less server gives the reference answers (temperature 0).
2. A server with --cache-dir gets a burst of requests and is killed with SIGKILL as soon as its
   first block reaches the disk, so it dies while it is writing its cache.
3. Every block on disk is then damaged (half flipped bits, half truncated) and a half-written
   temp file is added: what a kill in the middle of a write, or a bad disk, leaves.
4. A restarted server must remove the temp file, report every prompt as a cache miss, count
   the corrupt blocks in /metrics, and answer exactly as the reference.
5. It is SIGKILLed again after answering; a third server must then hit every full block from
   disk (blocks are whole on disk before a response ends) and still answer as the reference.

Usage: cache_fault.py WHALE_BINARY MODEL_DIR WORK_DIR. Loopback only; every server it starts is
killed before it exits; every request has a timeout.
"""
import concurrent.futures as cf
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

BLOCK = 64
PROMPTS = 12
MAX_TOKENS = 12


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, whale, model, log, cache_dir=None):
        self.port = free_port()
        args = [whale, "serve", "--model", model, "--port", str(self.port), "-t", "2"]
        if cache_dir:
            args += ["--cache-dir", cache_dir]
        self.log = open(log, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"error: whale serve exited with {self.proc.returncode}; see {log}")
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        sys.exit(f"error: whale serve did not come up; see {log}")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def post(self, path, body, timeout=60):
        req = urllib.request.Request(f"{self.url}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def metric(self, name):
        text = urllib.request.urlopen(f"{self.url}/metrics", timeout=10).read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} missing from /metrics")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()

    def stop(self):
        self.kill()


def body(i):
    # A distinct first block per prompt (the case number leads), three full blocks in all.
    system = f"Case {i}. " + "Check every step twice and answer briefly. " * 12
    return {"model": "deepseek-reasoner", "temperature": 0, "max_tokens": MAX_TOKENS,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": f"What is {i} + {i}?"}]}


def answer(resp):
    m = resp["choices"][0]["message"]
    return m.get("reasoning_content"), m["content"]


def cache_files(cache_dir, suffix):
    out = []
    for root, _, files in os.walk(cache_dir):
        out += [os.path.join(root, f) for f in files if f.endswith(suffix)]
    return sorted(out)


def main():
    whale, model, work = sys.argv[1:4]
    cache = os.path.join(work, "cache")
    servers = []
    try:
        ref = Server(whale, model, os.path.join(work, "ref.log"))
        servers.append(ref)
        reference = [answer(ref.post("/v1/chat/completions", body(i))) for i in range(PROMPTS)]
        ref.stop()

        victim = Server(whale, model, os.path.join(work, "victim.log"), cache)
        servers.append(victim)
        pool = cf.ThreadPoolExecutor(PROMPTS)
        futures = [pool.submit(victim.post, "/v1/chat/completions", body(i), 30) for i in range(PROMPTS)]
        deadline = time.time() + 60
        while not cache_files(cache, ".kvb") and time.time() < deadline:
            time.sleep(0.001)
        victim.kill()
        pool.shutdown(wait=True)
        finished = sum(1 for f in futures if f.exception() is None)
        blocks = cache_files(cache, ".kvb")
        assert blocks, "no block reached the disk before the kill"
        print(f"ok - SIGKILL while writing: {finished}/{PROMPTS} answered, {len(blocks)} blocks on disk, "
              f"{len(cache_files(cache, '.tmp'))} temp files left")

        for n, path in enumerate(blocks):
            data = bytearray(open(path, "rb").read())
            if n % 2 == 0:
                data[len(data) // 2] ^= 0x10
            else:
                data = data[: len(data) // 3]
            open(path, "wb").write(bytes(data))
        half = os.path.join(os.path.dirname(blocks[0]), os.path.basename(blocks[0]) + ".999.tmp")
        open(half, "wb").write(b"WKVB" + b"\0" * 100)

        again = Server(whale, model, os.path.join(work, "again.log"), cache)
        servers.append(again)
        assert not cache_files(cache, ".tmp"), "temp files are removed when the cache opens"
        for i in range(PROMPTS):
            r = again.post("/v1/chat/completions", body(i))
            u = r["usage"]
            assert answer(r) == reference[i], f"prompt {i}: {answer(r)} != {reference[i]}"
            assert u["prompt_cache_hit_tokens"] == 0, f"prompt {i}: damaged blocks served: {u}"
            assert u["prompt_cache_miss_tokens"] == u["prompt_tokens"], u
        corrupt = again.metric("whale_cache_corrupt_blocks_total")
        assert corrupt >= 1, "the damaged blocks are counted"
        print(f"ok - after restart: damaged blocks dropped ({corrupt:.0f} counted), every prompt a miss, "
              f"answers equal a fresh run")
        full = []
        for i in range(PROMPTS):
            u = again.post("/v1/chat/completions", body(i))["usage"]
            assert u["prompt_cache_hit_tokens"] > 0, f"prompt {i}: recomputed blocks were not re-cached: {u}"
            full.append((u["prompt_tokens"] - 1) // BLOCK * BLOCK)
        again.kill()

        third = Server(whale, model, os.path.join(work, "third.log"), cache)
        servers.append(third)
        for i in range(PROMPTS):
            r = third.post("/v1/chat/completions", body(i))
            assert answer(r) == reference[i], f"prompt {i} after the second kill"
            assert r["usage"]["prompt_cache_hit_tokens"] == full[i], (i, r["usage"], full[i])
        assert third.metric("whale_cache_corrupt_blocks_total") == 0
        print("ok - after a second SIGKILL every full block is served from disk, answers unchanged")
        print("cache fault e2e: passed")
    finally:
        for s in servers:
            s.stop()


if __name__ == "__main__":
    main()
