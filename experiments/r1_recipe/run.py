#!/usr/bin/env python3
"""Issue #7: the R1 recipe end to end on a 2-core CPU, driving the `whale` binary.

  pretrain (whale train) -> SFT cold start (whale sft --data) -> GRPO (whale grpo)
  -> eval before/after (whale eval, k samples, pass@1 with 95% CI)
  -> rejection sampling of the GRPO model (whale rejection-sample)
  -> distillation into a small dense Qwen2 student (whale distill) vs. the same student
     trained on answers alone (whale sft), both evaluated.

Every heavy command runs under `nice -n 10` with one thread. Each stage is skipped when its
output exists, so the script can be re-run to resume. Run from anywhere:

    python3 experiments/r1_recipe/run.py            # everything
    python3 experiments/r1_recipe/run.py --only eval_sft   # one stage

Outputs: experiments/r1_recipe/runs/ (not committed: checkpoints), and the small results
(reports, metrics, plots) copied into experiments/r1_recipe/results/.
"""
import argparse, json, os, shutil, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
WHALE = os.path.join(ROOT, "target", "debug", "whale")
RUNS = os.path.join(HERE, "runs")
RES = os.path.join(HERE, "results")
DATA = os.path.join(RUNS, "data")
TOK = os.path.join(ROOT, "tests", "fixtures", "tiny_chat_tokenizer")
ENV = dict(os.environ, RAYON_NUM_THREADS="1")

# ---- settings (see RESULTS.md for why these values) ----
DIGITS = 2                 # task: 2-digit a+b / a-b (3 digits was the first plan; see RESULTS.md)
# After the softmax-backward fix: one pretraining stage from scratch on the compact 2-digit text
# (pretrain_fix.toml; the old two-stage pretrain.toml -> pretrain2.toml runs are in
# results_before_fix/). SFT starts from the step-PRETRAIN_CKPT checkpoint, picked so that
# SFT pass@1 lands in the 20-50 % band (see RESULTS.md).
PRETRAIN_STEPS = 500
PRETRAIN_CKPT = int(os.environ.get("PRETRAIN_CKPT", "500"))
STUDENT_BASE_STEPS = 600   # student_pretrain.toml: the shared base of both Qwen2 students
SFT = dict(steps=150, batch=8, lr=1e-3)
# The cold-start set: 3,000 chat examples (runs/data_sft3000/sft.jsonl; same generator, seed and
# held-out set as runs/data). 300 examples x 60 steps left the model unable to copy the operands
# out of the chat prompt (pass@1 0.3 %; see RESULTS.md).
SFT_DATA = os.path.join(RUNS, "data_sft3000")
GRPO = dict(steps=60, prompts=8, group=8, lr=1e-4, beta=0.04, temperature=1.0, max_tokens=160)
EVAL = dict(problems=500, samples=4, max_tokens=160)
RS = dict(problems=1200, samples=2, per_problem=1)
STUDENT = dict(steps=300, batch=8, lr=2e-3)


def log(msg):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    with open(os.path.join(RUNS, "commands.log"), "a") as f:
        f.write(line + "\n")


def whale(*args, heavy=True, out_log=None):
    cmd = (["nice", "-n", "10"] if heavy else []) + [WHALE] + [str(a) for a in args]
    log("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd))
    t0 = time.time()
    with open(out_log or os.devnull, "a") as lf:
        p = subprocess.run(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=lf, text=True)
    log(f"  ({time.time() - t0:.0f} s, rc {p.returncode})")
    if p.stdout.strip():
        print(p.stdout, flush=True)
    if p.returncode != 0:
        sys.exit(f"whale {args[0]} failed; see {out_log}")
    return p.stdout


def r(*p):
    return os.path.join(RUNS, *p)


def stage_data():
    data3 = os.path.join(RUNS, "data3")
    if not os.path.exists(os.path.join(data3, "pretrain.txt")):
        # Stage-1 text: 3-digit-heavy, in the first ("spaced") format.
        subprocess.run([sys.executable, os.path.join(HERE, "gen_data.py"), data3, "3", "40000", "300"], check=True,
                       env=dict(os.environ, SPACED="1"))
    if os.path.exists(os.path.join(DATA, "test.jsonl")):
        return
    # The task's held-out set avoids every problem of the stage-1 text too.
    subprocess.run([sys.executable, os.path.join(HERE, "gen_data.py"), DATA, str(DIGITS), "40000", "300", "pure"],
                   check=True, env=dict(os.environ, EXCLUDE=os.path.join(data3, "pretrain.txt")))
    subprocess.run([sys.executable, os.path.join(HERE, "gen_data.py"), SFT_DATA, str(DIGITS), "40000", "3000", "pure"],
                   check=True, env=dict(os.environ, EXCLUDE=os.path.join(data3, "pretrain.txt")))
    subprocess.run([sys.executable, os.path.join(HERE, "make_student_text.py"), os.path.join(DATA, "pretrain.txt"),
                    os.path.join(DATA, "student_pretrain.txt")], check=True)


def latest_ckpt(run):
    d = os.path.join(run, "checkpoints")
    return os.path.join(d, sorted(os.listdir(d))[-1])


def stage_pretrain():
    for run, toml, steps in [("pretrain", "pretrain_fix.toml", PRETRAIN_STEPS),
                             ("student_base", "student_pretrain.toml", STUDENT_BASE_STEPS)]:
        if not os.path.exists(r(run, "checkpoints")) or not any(
                s.endswith(f"{steps:08d}") for s in os.listdir(r(run, "checkpoints"))):
            whale("train", "--config", os.path.join(HERE, toml), "--steps", steps, out_log=r(f"{run}.log"))
        whale("plot", r(run), heavy=False)


def stage_sft():
    if os.path.exists(r("sft", "final", "model.safetensors")):
        return
    whale("sft", "--model", r("pretrain", "checkpoints", f"step-{PRETRAIN_CKPT:08d}"), "--data", os.path.join(SFT_DATA, "sft.jsonl"), "--out", r("sft"),
          "--steps", SFT["steps"], "--batch", SFT["batch"], "--micro-batch", SFT["batch"], "--seq-len", 256,
          "--lr", SFT["lr"], "--warmup-steps", 5, "--eval-every", 25, out_log=r("sft.log"))
    whale("plot", r("sft"), heavy=False)


def evaluate(name, model):
    out = r("eval", name)
    if os.path.exists(os.path.join(out, "report.json")):
        return json.load(open(os.path.join(out, "report.json")))
    if os.path.exists(out):
        shutil.rmtree(out)
    whale("eval", "--model", model, "-t", 1, "--task", os.path.join(DATA, "test.jsonl"), "--problems", EVAL["problems"],
          "--samples", EVAL["samples"], "--max-tokens", EVAL["max_tokens"], "--max-batch", 32, "--out", out, out_log=r(f"eval-{name}.log"))
    return json.load(open(os.path.join(out, "report.json")))


def stage_grpo():
    if not os.path.exists(r("grpo", "final", "model.safetensors")):
        g = GRPO
        whale("grpo", "--model", r("sft", "final"), "-t", 1, "--task", os.path.join(DATA, "grpo_train.jsonl"),
              "--steps", g["steps"], "--prompts", g["prompts"], "--group", g["group"], "--micro-batch", 16,
              "--lr", g["lr"], "--beta", g["beta"], "--temperature", g["temperature"], "--max-tokens", g["max_tokens"],
              "--rewards", "accuracy,format", "--save-every", 0, "--eval-every", 10, "--max-batch", 32, "--eval-problems", 100,
              "--out", r("grpo"), out_log=r("grpo.log"))
    whale("plot", r("grpo"), heavy=False)
    plot_grpo_curves()


def plot_grpo_curves(run="grpo"):
    """Reward / accuracy / response length / KL curves of the GRPO run (whale plot draws only
    the loss, lr, grad-norm and throughput charts of a run; see RESULTS.md)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    recs = [json.loads(l) for l in open(r(run, "metrics.jsonl")) if l.strip()]
    steps = [m["step"] + 1 for m in recs]
    def smooth(xs, w=5):
        return [sum(xs[max(0, i - w + 1):i + 1]) / len(xs[max(0, i - w + 1):i + 1]) for i in range(len(xs))]
    fig, ax = plt.subplots(2, 2, figsize=(10, 7))
    for a, key, title in [(ax[0][0], "reward", "reward (accuracy + format)"), (ax[0][1], "accuracy", "rollout accuracy"),
                          (ax[1][0], "response_length", "response length (tokens)"), (ax[1][1], "kl", "KL to reference")]:
        ys = [m[key] for m in recs]
        a.plot(steps, ys, alpha=0.35, label="per step")
        a.plot(steps, smooth(ys), label="5-step mean")
        a.set_title(title); a.set_xlabel("GRPO step"); a.grid(alpha=0.3)
    ev = [(m["step"] + 1, m["eval_accuracy"]) for m in recs if "eval_accuracy" in m]
    if ev:
        ax[0][1].plot([e[0] for e in ev], [e[1] for e in ev], "o-", label="held-out greedy (100)")
    ax[0][1].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(r(run, "plots"), exist_ok=True)
    fig.savefig(r(run, "plots", "grpo_curves.png"), dpi=90)


def stage_rejection():
    out = r("distill", "traces.jsonl")
    if not os.path.exists(out):
        whale("rejection-sample", "--model", r("grpo", "final"), "-t", 1, "--task", os.path.join(DATA, "grpo_train.jsonl"),
              "--problems", RS["problems"], "--samples", RS["samples"], "--per-problem", RS["per_problem"],
              "--max-tokens", GRPO["max_tokens"], "--max-batch", 32, "--out", out, out_log=r("rejection.log"))
    # The no-reasoning control: the very same problems and answers, reasoning removed.
    with open(out) as f, open(r("distill", "answers_only.jsonl"), "w") as g:
        for line in f:
            rec = json.loads(line)
            rec["messages"][1]["reasoning_content"] = ""
            g.write(json.dumps(rec) + "\n")


def stage_students():
    init = latest_ckpt(r("student_base"))  # the shared Qwen2 base (stage_pretrain)
    s = STUDENT
    common = ["--steps", s["steps"], "--batch", s["batch"], "--micro-batch", s["batch"], "--seq-len", 256,
              "--lr", s["lr"], "--warmup-steps", 10, "--eval-every", 50]
    if not os.path.exists(r("student_distill", "final", "model.safetensors")):
        whale("distill", "--teacher", r("grpo", "final"), "--student", init, "--task", os.path.join(DATA, "grpo_train.jsonl"),
              "--data", r("distill", "traces.jsonl"), "--out", r("student_distill"), *common, out_log=r("student_distill.log"))
    if not os.path.exists(r("student_answers", "final", "model.safetensors")):
        whale("sft", "--model", init, "--data", r("distill", "answers_only.jsonl"), "--out", r("student_answers"), *common,
              out_log=r("student_answers.log"))
    for n in ["student_distill", "student_answers"]:
        whale("plot", r(n), heavy=False)


def collect():
    os.makedirs(RES, exist_ok=True)
    for run in ["pretrain", "student_base", "sft", "grpo", "student_distill", "student_answers"]:
        src = r(run)
        if not os.path.exists(src):
            continue
        dst = os.path.join(RES, run)
        os.makedirs(dst, exist_ok=True)
        for f in ["metrics.jsonl", "grpo_config.json", "sft_config.json", "cost.json"]:
            if os.path.exists(os.path.join(src, f)):
                shutil.copy(os.path.join(src, f), dst)
        if os.path.exists(os.path.join(src, "plots")):
            shutil.copytree(os.path.join(src, "plots"), os.path.join(dst, "plots"), dirs_exist_ok=True)
        if os.path.exists(os.path.join(src, "samples")):
            shutil.copytree(os.path.join(src, "samples"), os.path.join(dst, "samples"), dirs_exist_ok=True)
    if os.path.exists(r("eval")):
        for name in os.listdir(r("eval")):
            d = os.path.join(RES, "eval", name)
            os.makedirs(d, exist_ok=True)
            shutil.copy(r("eval", name, "report.json"), d)
            # A few samples to read.
            with open(r("eval", name, "samples.jsonl")) as f, open(os.path.join(d, "samples_head.jsonl"), "w") as g:
                for i, line in enumerate(f):
                    if i >= 12:
                        break
                    rec = json.loads(line); rec.pop("ids", None); rec.pop("prompt_ids", None)
                    g.write(json.dumps(rec) + "\n")
    shutil.copy(r("commands.log"), RES)
    table = []
    for name in ["sft", "grpo", "student_distill", "student_answers"]:
        p = r("eval", name, "report.json")
        if os.path.exists(p):
            rep = json.load(open(p))
            table.append((name, rep["pass_at_1"], rep["pass_at_1_ci95"], rep["pass_at_k"], rep["cons_at_k"], rep["mean_response_tokens"]))
    print("\nmodel               pass@1        95% CI         pass@k   cons@k   mean tokens")
    for n, p1, ci, pk, cons, toks in table:
        print(f"{n:18} {100*p1:6.1f}%  [{100*(p1-ci):5.1f}, {100*(p1+ci):5.1f}]  {pk}  {100*cons:5.1f}%  {toks:6.1f}")


STAGES = ["data", "pretrain", "sft", "eval_sft", "grpo", "eval_grpo", "rejection", "students", "eval_students", "collect"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=STAGES, nargs="*")
    a = ap.parse_args()
    os.makedirs(RUNS, exist_ok=True)
    if not os.path.exists(WHALE):
        subprocess.run(["nice", "-n", "10", "cargo", "build", "-p", "whale-cli"], cwd=ROOT, check=True)
    for st in a.only or STAGES:
        log(f"== stage {st}")
        if st == "data": stage_data()
        elif st == "pretrain": stage_pretrain()
        elif st == "sft": stage_sft()
        elif st == "eval_sft": evaluate("sft", r("sft", "final"))
        elif st == "grpo": stage_grpo()
        elif st == "eval_grpo": evaluate("grpo", r("grpo", "final"))
        elif st == "rejection": stage_rejection()
        elif st == "students": stage_students()
        elif st == "eval_students":
            evaluate("student_distill", r("student_distill", "final"))
            evaluate("student_answers", r("student_answers", "final"))
        elif st == "collect": collect()


if __name__ == "__main__":
    main()
