#!/usr/bin/env python3
"""The `openai` package against `whale serve`'s function calling and FIM (run by
run_openai_e2e.sh, tiny fixture model). The fixture's random weights never write a real
call, so this checks the wire format: the client's typed `tools` / `tool_choice` requests are
accepted, whole and streamed responses parse and agree, past calls and tool outputs are
accepted, and `suffix` on a
tokenizer without FIM tokens is a 400 naming them. The parsing of real calls is tested in
crates/whale-server/tests/api/tools.rs with a scripted model (forced calls too: their
prefilled opener does not fit the fixture's 256-token context with its 512-token vocabulary).

Usage: openai_tools.py BASE_URL API_KEY
"""
import sys

import openai
from openai import OpenAI

MODEL = "deepseek-reasoner"
# Name only: the fixture's 512-token vocabulary spends ~150 tokens on the tool prompt, and its
# context is 256 tokens.
TOOLS = [{"type": "function", "function": {"name": "get_weather"}}]
MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok - {what}")


def main():
    base, key = sys.argv[1:3]
    c = OpenAI(base_url=base, api_key=key, timeout=60, max_retries=0)
    r = c.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="auto",
                                  max_tokens=16, temperature=0)
    check(r.choices[0].finish_reason in ("stop", "length", "tool_calls"), "tools + tool_choice auto accepted")
    chunks = list(c.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="auto",
                                            max_tokens=16, temperature=0, stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    check(text == (r.choices[0].message.content or ""), "streamed with tools equals the whole answer")
    r = c.chat.completions.create(model=MODEL, max_tokens=4, temperature=0, messages=[
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"}])
    check(r.usage.prompt_tokens > 0, "a conversation with a past call and a tool output is accepted")
    try:
        c.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice={
            "type": "function", "function": {"name": "nope"}})
        raise AssertionError("an unknown forced function was accepted")
    except openai.BadRequestError as e:
        check("nope" in str(e), "a forced call of an unknown function is a 400")
    try:
        c.completions.create(model=MODEL, prompt="def f(", suffix="return x", max_tokens=4)
        raise AssertionError("FIM without FIM tokens was accepted")
    except openai.BadRequestError as e:
        check("<|fim_prefix|>" in str(e) and "fim" in str(e), "FIM without FIM tokens is a 400 naming them")
    print("openai tools/FIM e2e: passed")


if __name__ == "__main__":
    main()
