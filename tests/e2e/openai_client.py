#!/usr/bin/env python3
"""End-to-end test of `whale serve` with the official `openai` Python package.

Run by run_openai_e2e.sh against a real server on 127.0.0.1 (the tiny fixture model):

  phase "fresh":   models, chat (non-stream and stream, identical at temperature 0),
                   reasoning_content, usage with cache hits on a repeated prefix, the cost
                   extension (--price-file), stop strings, text completions, error statuses, API keys.
  phase "restart": the same server restarted with the same --cache-dir: the very first
                   request of the long prompt already hits, so the hits came from disk.

Usage: openai_client.py BASE_URL API_KEY PHASE
"""

import sys

import openai
from openai import OpenAI

# More than one 64-token cache block, so a repeat is a cache hit.
SYSTEM = "You are a careful assistant. Answer briefly and check every step twice. " * 4
MODEL = "deepseek-reasoner"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok - {what}")


def extra(obj, name):
    """A field the openai package does not model (DeepSeek's and Whale's extensions)."""
    value = getattr(obj, name, None)
    if value is None and getattr(obj, "model_extra", None):
        value = obj.model_extra.get(name)
    return value


def long_chat(client, **kw):
    return client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is 2+2?"}],
        max_tokens=8,
        temperature=0,
        **kw,
    )


def fresh(client, base_url):
    ids = [m.id for m in client.models.list().data]
    check(MODEL in ids, f"models list {ids} contains {MODEL}")

    msgs = [{"role": "user", "content": "Hello there"}]
    whole = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=24, temperature=0)
    m = whole.choices[0].message
    reasoning = extra(m, "reasoning_content")
    check(isinstance(reasoning, str) and reasoning, "non-stream chat has reasoning_content")
    check(whole.choices[0].finish_reason in ("stop", "length"), "finish_reason is stop or length")
    u = whole.usage
    check(u.total_tokens == u.prompt_tokens + u.completion_tokens, "usage totals add up")
    cost = extra(u, "cost")
    check(cost and cost["currency"] == "USD" and cost["total"] > 0, f"usage.cost {cost} at the --price-file prices")
    expect = (u.prompt_tokens - extra(u, "prompt_cache_hit_tokens")) * 0.55 + extra(u, "prompt_cache_hit_tokens") * 0.14
    expect = (expect + u.completion_tokens * 2.19) / 1e6
    check(abs(cost["total"] - expect) < 1e-12, "cost = tokens x price per million")

    stream = client.chat.completions.create(
        model=MODEL, messages=msgs, max_tokens=24, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    s_reasoning, s_content, s_usage, finish = "", "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            s_usage = chunk.usage
        for c in chunk.choices:
            s_reasoning += extra(c.delta, "reasoning_content") or ""
            s_content += c.delta.content or ""
            finish = c.finish_reason or finish
    check((s_reasoning, s_content) == (reasoning, m.content or ""), "stream equals non-stream at temperature 0")
    check(finish == whole.choices[0].finish_reason, "stream finish_reason matches")
    check(s_usage is not None and s_usage.completion_tokens == u.completion_tokens, "stream usage chunk")

    first = long_chat(client)
    second = long_chat(client)
    hit = extra(second.usage, "prompt_cache_hit_tokens")
    check(hit and hit >= 64, f"repeated prefix hits the cache ({hit} tokens)")
    check(second.usage.prompt_tokens_details.cached_tokens == hit, "prompt_tokens_details.cached_tokens")
    miss = extra(second.usage, "prompt_cache_miss_tokens")
    check(hit + miss == second.usage.prompt_tokens, "hit + miss = prompt tokens")
    check(extra(second.usage, "cost")["total"] < extra(first.usage, "cost")["total"], "cache hits are cheaper")

    stop = reasoning[4:7]
    cut = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=24, temperature=0, stop=[stop])
    check(extra(cut.choices[0].message, "reasoning_content") == reasoning[: reasoning.index(stop)], "stop string cuts")
    check(cut.choices[0].finish_reason == "stop", "stop string gives finish_reason stop")

    text = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8, temperature=0)
    check(text.object == "text_completion" and text.usage.completion_tokens <= 8, "text completion")

    try:
        client.chat.completions.create(model="gpt-9", messages=msgs)
        check(False, "unknown model fails")
    except openai.NotFoundError as e:
        check(e.status_code == 404, "unknown model is 404")
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "word " * 400}])
        check(False, "context too long fails")
    except openai.BadRequestError as e:
        check("256 tokens" in str(e), "context too long is 400 and names the limit")
    try:
        client.chat.completions.create(model=MODEL, messages=msgs, temperature=5)
        check(False, "temperature 5 fails")
    except openai.BadRequestError as e:
        check("temperature" in str(e), "out-of-range temperature is 400")
    bad = OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0)
    try:
        bad.models.list()
        check(False, "a wrong key fails")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, "a wrong API key is 401")


def restart(client):
    first = long_chat(client)
    hit = extra(first.usage, "prompt_cache_hit_tokens")
    check(hit and hit >= 64, f"after a restart the first repeat hits the disk cache ({hit} tokens)")


def main():
    base_url, key, phase = sys.argv[1:4]
    client = OpenAI(base_url=base_url, api_key=key, max_retries=0)
    {"fresh": lambda: fresh(client, base_url), "restart": lambda: restart(client)}[phase]()
    print(f"phase {phase}: all checks passed")


if __name__ == "__main__":
    main()
