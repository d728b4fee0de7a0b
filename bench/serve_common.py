"""Shared by bench/serve_load.py and bench/serve_ttft.py: start (and always kill) a
`whale serve` on 127.0.0.1, stream one request with the `openai` client and time it, and
percentiles. Python 3 stdlib + `openai`.
"""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WhaleServer:
    """A `whale serve` child on a free loopback port; `stop()` (or the context manager) kills
    it. `nice` lowers its priority, as benchmarks on a shared machine should."""

    def __init__(self, binary, model, extra=(), log_path=None, nice=10, startup_s=300):
        self.port = free_port()
        cmd = [binary, "serve", "--model", model, "--host", "127.0.0.1", "--port", str(self.port), *extra]
        if nice:
            cmd = ["nice", "-n", str(nice), *cmd]
        self.log = open(log_path or os.devnull, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + startup_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                sys.exit(f"error: whale serve exited with {self.proc.returncode} ({' '.join(cmd)}); log: {log_path}")
            try:
                urllib.request.urlopen(f"{self.base}/health", timeout=1).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        sys.exit(f"error: whale serve did not answer /health within {startup_s} s; log: {log_path}")

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def check_loopback(url):
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost", "[::1]"):
        sys.exit(f"error: {url} is not a loopback address; these benchmarks only target 127.0.0.1")


def client(base_url, timeout):
    from openai import OpenAI

    return OpenAI(base_url=f"{base_url.rstrip('/')}/v1", api_key=os.environ.get("WHALE_API_KEY", "none"),
                  timeout=timeout, max_retries=0)


def stream_timed(cli, endpoint, model, prompt, max_tokens, temperature=0.0, extra=None):
    """One streamed request. Returns (text, usage, ttft_s, gaps_s, total_s): `gaps_s` are the
    times between successive chunks that carry text (inter-token latency; a chunk is one
    token unless the server held text back for a stop string or a tag)."""
    t0 = time.perf_counter()
    args = dict(model=model, max_tokens=max_tokens, temperature=temperature, stream=True,
                stream_options={"include_usage": True}, **(extra or {}))
    if endpoint == "chat":
        stream = cli.chat.completions.create(messages=[{"role": "user", "content": prompt}], **args)
    else:
        stream = cli.completions.create(prompt=prompt, **args)
    text, usage, stamps = [], None, []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            piece = chunk_text(c, endpoint)
            if piece:
                stamps.append(time.perf_counter())
                text.append(piece)
    total = time.perf_counter() - t0
    ttft = (stamps[0] - t0) if stamps else total
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return "".join(text), usage, ttft, gaps, total


def chunk_text(choice, endpoint):
    if endpoint != "chat":
        return choice.text or ""
    d = choice.delta
    # reasoning_content is DeepSeek's extension: the openai client keeps it as an extra field.
    reasoning = getattr(d, "reasoning_content", None) or (d.model_extra or {}).get("reasoning_content")
    return (reasoning or "") + (d.content or "")


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100); NaN for an empty list."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def ms(x):
    return f"{x * 1000:.1f}"
