#!/usr/bin/env python3
"""Data for the R1-recipe experiment: arithmetic with worked, digit-by-digit reasoning.

Writes into DIR:
  pretrain.txt      plain-text worked examples ("Q: ... A: <think>...</think> N"), 1..D digits
  sft.jsonl         a few R1-format chat examples ({"prompt","reasoning","answer": "\\boxed{N}"})
  sft_answers.jsonl the same problems with the answer only (no reasoning) -- for the no-CoT student
  grpo_train.jsonl  {"question","answer"} training prompts for GRPO / rejection sampling
  test.jsonl        held-out {"question","answer"}; no question of it appears anywhere else
"""
import json, random, sys, os

def digits_of(n):
    return [int(c) for c in str(n)][::-1]

def add_trace(a, b):
    da, db = digits_of(a), digits_of(b)
    n = max(len(da), len(db))
    carry, res, lines = 0, "", []
    for i in range(n):
        x = da[i] if i < len(da) else 0
        y = db[i] if i < len(db) else 0
        s = x + y + carry
        res = str(s % 10) + res
        lines.append(f"{x}+{y}+{carry}={s}{ARROW}{res}{SEP}c{s // 10}")
        carry = s // 10
    if carry:
        res = "1" + res
        lines.append(f"carry 1{ARROW}{res}")
    return lines, int(res)

def sub_trace(a, b):
    """a - b for a >= b, column by column with borrows."""
    da, db = digits_of(a), digits_of(b)
    borrow, res, lines = 0, "", []
    for i in range(len(da)):
        x = da[i]
        y = db[i] if i < len(db) else 0
        v = x - y - borrow
        if v < 0:
            lines.append(f"{x}-{y}-{borrow}={v}+10={v + 10}{ARROW}{str(v + 10) + res}{SEP}b1")
            v += 10
            borrow = 1
        else:
            lines.append(f"{x}-{y}-{borrow}={v}{ARROW}{str(v) + res}{SEP}b0")
            borrow = 0
        res = str(v) + res
    return lines, int(res)

def solve(a, op, b):
    """(reasoning text, value)."""
    if op == "+":
        lines, v = add_trace(a, b)
        head = f"{a}+{b}:"
    else:
        if a >= b:
            lines, v = sub_trace(a, b)
            head = f"{a}-{b}:"
        else:
            lines, v = sub_trace(b, a)
            v = -v
            head = f"{a}<{b}{SO}-({b}-{a}):"
    lines.append(f"so{EQ}{v}")
    assert v == (a + b if op == "+" else a - b), (a, op, b, v)
    return head + "\n" + "\n".join(lines), v

def problem(rng, digits):
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    hi = 10 ** digits
    return rng.randrange(lo, hi), rng.choice("+-"), rng.randrange(lo, hi)

# Format. COMPACT (the default): no space before any number. The 512-token tokenizer has merges
# "Ġ10".."Ġ39" (a space + a number), so " 15" is one token but " 47" two ("Ġ4" "7"): with spaces,
# a third of the operands and partial results come as opaque one-token numbers, which the first
# run (SPACED=1) did not learn to read.
SPACED = os.environ.get("SPACED") == "1"
ARROW, SEP, SO, EQ = (" -> ", " ", " so ", " ") if SPACED else ("->", ",", ",", "=")

def question(a, op, b):
    if SPACED:
        return f"What is {a} {op} {b}?"  # the built-in task's wording
    return f"{a}{op}{b}=?"

def main():
    out = sys.argv[1]
    task_digits = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    n_pretrain = int(sys.argv[3]) if len(sys.argv) > 3 else 40000
    n_sft = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    pure = len(sys.argv) > 5 and sys.argv[5] == "pure"   # pretraining text only at the task size
    os.makedirs(out, exist_ok=True)
    rng = random.Random(7)
    # Held-out test problems first: everything else avoids them. They also avoid every problem
    # of an earlier data set given with EXCLUDE=path (its "Q: What is a op b?" lines).
    excluded = set()
    if os.environ.get("EXCLUDE"):
        for line in open(os.environ["EXCLUDE"]):
            if line.startswith("Q: What is "):  # a SPACED=1 file
                a, op, b = line[len("Q: What is "):].strip().rstrip("?").split()
                excluded.add((int(a), op, int(b)))
    test, seen = [], set()
    while len(test) < 500:
        p = problem(rng, task_digits)
        if p not in seen and p not in excluded:
            seen.add(p); test.append(p)
    banned = set(seen)
    def fresh(d):
        while True:
            p = problem(rng, d)
            if p not in banned:
                return p
    # Pretraining text: curriculum mixture of 1..task_digits digits, most at the task size.
    sp = " " if SPACED else ""
    with open(os.path.join(out, "pretrain.txt"), "w") as f:
        for _ in range(n_pretrain):
            r = rng.random()
            d = task_digits if pure else 1 if r < 0.1 else 2 if r < 0.35 else task_digits
            a, op, b = fresh(min(d, task_digits))
            cot, v = solve(a, op, b)
            f.write(f"Q:{sp}{question(a, op, b)}\nA:{sp}<think>\n{cot}\n</think>\n{v}\n\n")
    instr = "Please reason step by step, and put your final answer within \\boxed{}."
    with open(os.path.join(out, "sft.jsonl"), "w") as f, open(os.path.join(out, "sft_answers.jsonl"), "w") as g:
        for _ in range(n_sft):
            a, op, b = fresh(task_digits)
            cot, v = solve(a, op, b)
            prompt = f"{question(a, op, b)}\n{instr}"
            f.write(json.dumps({"prompt": prompt, "reasoning": cot, "answer": f"\\boxed{{{v}}}"}) + "\n")
            g.write(json.dumps({"prompt": prompt, "answer": f"\\boxed{{{v}}}"}) + "\n")
    with open(os.path.join(out, "grpo_train.jsonl"), "w") as f:
        for _ in range(4000):
            a, op, b = fresh(task_digits)
            f.write(json.dumps({"question": question(a, op, b), "answer": str(a + b if op == "+" else a - b)}) + "\n")
    with open(os.path.join(out, "test.jsonl"), "w") as f:
        for a, op, b in test:
            f.write(json.dumps({"question": question(a, op, b), "answer": str(a + b if op == "+" else a - b)}) + "\n")
    # Self-check of the traces.
    for _ in range(2000):
        a, op, b = problem(rng, rng.randint(1, 4)); solve(a, op, b)

if __name__ == "__main__":
    main()
