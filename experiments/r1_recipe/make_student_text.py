#!/usr/bin/env python3
"""The student's base-pretraining text: the stage-2 corpus with every other document's
reasoning removed ("Q:47+38=?\nA:85"), so the shared student base has seen both styles."""
import sys
src, dst = sys.argv[1], sys.argv[2]
out = []
for i, d in enumerate(d.strip() for d in open(src).read().split("\n\n")):
    if not d:
        continue
    if i % 2 == 1:
        lines = d.split("\n")
        d = f"{lines[0]}\nA:{lines[-1]}"
    out.append(d)
open(dst, "w").write("\n\n".join(out) + "\n\n")
