#!/usr/bin/env bash
# The public-domain text of the perplexity comparison: the book of Genesis (King James
# Version, 1,533 verses, one per line, verse references removed), from Debian's bible-kjv.
#   bash bench/make_ppl_text.sh OUT.txt
set -euo pipefail
out="${1:?usage: make_ppl_text.sh OUT.txt}"
command -v bible >/dev/null || { apt-get update -q && apt-get install -y -q bible-kjv; }
bible -f "Gen1:1-50:26" | sed 's/^[^ ]* //' > "$out"
echo "wrote $out ($(wc -w < "$out") words)"
