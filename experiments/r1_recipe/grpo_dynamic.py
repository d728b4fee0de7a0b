#!/usr/bin/env python3
"""Issue #7, third round: a brief SFT cold start, then GRPO with DAPO's dynamic sampling, on
the `whale demo` teacher; then distillation of the GRPO model's verified traces into the demo's
Qwen2 student base, against the same student trained on the same answers without the traces.

  whale demo --until student-base (or --demo DIR: reuse a demo run folder's pretrained teacher
  and student base) -> whale sft (60 steps: "briefly") -> whale eval -> whale grpo (P=16 prompts x
  G=8 samples, --dynamic-sampling 2, lr 1e-4, no KL, T 1.0) -> whale eval
  -> whale rejection-sample -> whale distill vs. whale sft on answers only -> whale eval

Evaluation is R1's: held-out `addsub:2` test problems x 4 samples at temperature 0.6, top-p 0.95,
pass@1 with its 95 % CI (normal approximation over problems), and greedy. Each stage is skipped
when its output exists, so a stopped run resumes. Every command is logged with its wall time in
OUT/commands.log; the small results (reports, metrics, plots, summary) go to
experiments/r1_recipe/results/grpo_dynamic/.

    python3 experiments/r1_recipe/grpo_dynamic.py --out /tmp/r1 [--demo runs/demo] [--whale target/debug/whale]
"""
import argparse, json, os, shutil, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
RES = os.path.join(HERE, "results", "grpo_dynamic")
TASK, STYLE, MAX_TOKENS = "addsub:2", "chat-plain", 96
SFT = ["--steps", 60, "--seq-len", 256, "--lr", 1e-3, "--warmup-steps", 5, "--eval-every", 20]
GRPO = ["--steps", 120, "--prompts", 16, "--group", 8, "--micro-batch", 16, "--lr", 1e-4, "--beta", 0,
        "--temperature", 1.0, "--dynamic-sampling", 2, "--max-tokens", MAX_TOKENS, "--max-batch", 64,
        "--save-every", 20, "--keep", 6, "--eval-every", 20, "--eval-problems", 100, "--prompt-style", STYLE]
EVAL = ["--problems", 200, "--max-tokens", MAX_TOKENS, "--prompt-style", STYLE]
REJECTION = ["--problems", 500, "--samples", 4, "--per-problem", 1, "--max-tokens", MAX_TOKENS, "--prompt-style", STYLE]
STUDENT = ["--steps", 300, "--seq-len", 256, "--lr", 2e-3, "--warmup-steps", 5, "--eval-every", 100]


class Run:
    def __init__(self, args):
        self.bin, self.out = os.path.abspath(args.whale), os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.demo = os.path.abspath(args.demo) if args.demo else os.path.join(self.out, "demo")

    def p(self, *parts):
        return os.path.join(self.out, *parts)

    def log(self, msg):
        line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(self.p("commands.log"), "a") as f:
            f.write(line + "\n")

    def whale(self, *args):
        cmd = ["nice", "-n", "5", self.bin] + [str(a) for a in args]
        self.log("$ " + " ".join(cmd[3:]))
        t0 = time.time()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        self.log(f"  done in {time.time() - t0:.1f} s")

    def eval(self, model, name, greedy=True):
        kinds = [("", ["--samples", 4])] + ([("_greedy", ["--samples", 1, "--temperature", 0])] if greedy else [])
        for kind, extra in kinds:
            out = self.p("eval", name + kind)
            if not os.path.exists(os.path.join(out, "report.json")):
                self.whale("eval", "--model", model, "--task", TASK, *EVAL, *extra, "--out", out)


def checkpoint(run_dir):
    ck = os.path.join(run_dir, "checkpoints")
    return os.path.join(ck, sorted(os.listdir(ck))[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run folder (checkpoints; not committed)")
    ap.add_argument("--demo", help="a `whale demo` run folder to take the pretrained teacher and student base from")
    ap.add_argument("--whale", default=os.path.join(ROOT, "target", "debug", "whale"))
    r = Run(ap.parse_args())

    if not os.path.isdir(os.path.join(r.demo, "pretrain", "checkpoints")):
        # Through the student base: the demo's own SFT/GRPO stages come along (about 25 minutes).
        r.whale("demo", "--until", "student-base", "--out", r.demo)
    teacher = checkpoint(os.path.join(r.demo, "pretrain"))
    r.log(f"teacher base: {teacher}")

    if not os.path.exists(r.p("sft", "final", "model.safetensors")):
        r.whale("sft", "--model", teacher, "--data", os.path.join(r.demo, "data", "sft.jsonl"), "--out", r.p("sft"), *SFT)
    r.eval(r.p("sft", "final"), "sft")
    if not os.path.exists(r.p("grpo", "final", "model.safetensors")):
        r.whale("grpo", "--model", r.p("sft", "final"), "--task", TASK, "--out", r.p("grpo"), *GRPO)
    r.eval(r.p("grpo", "final"), "grpo")
    for ck in sorted(os.listdir(r.p("grpo", "checkpoints"))):
        r.eval(r.p("grpo", "checkpoints", ck), f"grpo_{ck}", greedy=False)

    # Distillation: the GRPO model's verified traces vs. the same problems' answers alone.
    student_base = os.path.join(r.demo, "student")
    if os.path.isdir(os.path.join(student_base, "checkpoints")):
        traces = r.p("distill", "traces.jsonl")
        if not os.path.exists(traces):
            os.makedirs(r.p("distill"), exist_ok=True)
            r.whale("rejection-sample", "--model", r.p("grpo", "final"), "--task", TASK, *REJECTION, "--out", traces)
        answers = r.p("distill", "answers_only.jsonl")
        with open(traces) as f, open(answers, "w") as g:
            for line in f:
                rec = json.loads(line)
                rec["messages"][1]["reasoning_content"] = ""
                g.write(json.dumps(rec) + "\n")
        base = checkpoint(student_base)
        if not os.path.exists(r.p("student_distill", "final", "model.safetensors")):
            r.whale("distill", "--teacher", r.p("grpo", "final"), "--student", base, "--task", TASK, "--data", traces,
                    "--out", r.p("student_distill"), *STUDENT)
        if not os.path.exists(r.p("student_answers", "final", "model.safetensors")):
            r.whale("sft", "--model", base, "--data", answers, "--out", r.p("student_answers"), *STUDENT)
        r.eval(r.p("student_distill", "final"), "student_distill")
        r.eval(r.p("student_answers", "final"), "student_answers")
    else:
        r.log(f"no student base in {student_base} (run a full `whale demo` there): distillation skipped")

    for run in ["sft", "grpo", "student_distill", "student_answers"]:
        if os.path.isdir(r.p(run)):
            r.whale("plot", r.p(run))
    collect(r)


def collect(r):
    os.makedirs(RES, exist_ok=True)
    rows = []
    for name in sorted(os.listdir(r.p("eval"))):
        rep = json.load(open(r.p("eval", name, "report.json")))
        keep = {k: rep[k] for k in ["pass_at_1", "pass_at_1_ci95", "pass_at_k", "cons_at_k", "mean_response_tokens", "unparseable_share"]}
        keep["settings"] = rep["settings"]
        json.dump(keep, open(os.path.join(RES, f"eval_{name}.json"), "w"), indent=1)
        rows.append((name, rep))
    for run in ["sft", "grpo", "student_distill", "student_answers"]:
        if os.path.isdir(r.p(run)):
            dst = os.path.join(RES, run)
            os.makedirs(dst, exist_ok=True)
            for f in ["metrics.jsonl", "grpo_config.json", "sft_config.json"]:
                if os.path.exists(r.p(run, f)):
                    shutil.copy(r.p(run, f), dst)
            if os.path.isdir(r.p(run, "plots")):
                shutil.copytree(r.p(run, "plots"), os.path.join(dst, "plots"), dirs_exist_ok=True)
    shutil.copy(r.p("commands.log"), RES)
    with open(os.path.join(RES, "summary.md"), "w") as f:
        f.write("| model | pass@1 (T 0.6, 4 samples) | 95 % CI | pass@4 | cons@4 | greedy |\n|---|---:|---:|---:|---:|---:|\n")
        by = dict(rows)
        for name, rep in rows:
            if name.endswith("_greedy"):
                continue
            g = by.get(name + "_greedy")
            greedy = "-" if g is None else "%.1f %%" % (100 * g["pass_at_1"])
            f.write(f"| {name} | {100 * rep['pass_at_1']:.1f} % | ± {100 * rep['pass_at_1_ci95']:.1f} | "
                    f"{100 * rep['pass_at_k']['4']:.1f} % | {100 * rep['cons_at_k']:.1f} % | {greedy} |\n")
    print(open(os.path.join(RES, "summary.md")).read())


if __name__ == "__main__":
    sys.exit(main())
