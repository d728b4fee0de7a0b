#!/usr/bin/env bash
# End-to-end test: checkpoints written by `whale train` load in HF transformers, whose logits
# match `whale logits` (tests/e2e/hf_load_checkpoint.py). Builds whale, trains the tiny
# DeepSeek-V3 config and the tiny Qwen2 config from fresh weights for 4 steps each (f32, then
# the V3 model again in fp8, whose checkpoint is f32 master weights too), and checks each
# run's last checkpoint.
#
# Needs a python with torch, transformers and safetensors (`pip install torch transformers`).
# PYTHON selects it (default python3). About 10 s after the build on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c "import torch, transformers, safetensors" 2>/dev/null || {
  echo "error: $PYTHON lacks torch/transformers/safetensors: pip install torch transformers" >&2
  exit 1
}
cargo build -p whale-cli --bin whale
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$(pwd)/$TARGET" ;; esac
WHALE="$TARGET/debug/whale"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# A small public-domain-style corpus made here, so the test needs no data files.
for i in $(seq 1 60); do
  echo "Paragraph $i. The whale swims past the harbour at dawn, and the gulls count $((i % 7)) boats."
  echo
done > "$WORK/corpus.txt"

train() { # name model_config precision
  local name="$1" config="$2" precision="$3"
  cat > "$WORK/$name.toml" <<EOF
out = "$WORK/$name"

[model]
config = "$(pwd)/$config"

[data]
sources = ["$WORK/corpus.txt"]
tokenizer = "$(pwd)/tests/fixtures/tiny_chat_tokenizer"

[train]
steps = 4
batch_size = 4
seq_len = 32
precision = "$precision"
eval_every = 0
progress = false

[optim]
lr = 3e-3
EOF
  "$WHALE" train --config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 || { cat "$WORK/$name.log" >&2; exit 1; }
  ls -d "$WORK/$name"/checkpoints/step-* | tail -1
}

for spec in "v3:tests/fixtures/deepseek_v3_tiny/config.json:f32" \
            "qwen2:tests/fixtures/qwen2_tiny/config.json:f32" \
            "v3_fp8:tests/fixtures/deepseek_v3_tiny/config.json:fp8"; do
  IFS=: read -r name config precision <<<"$spec"
  ckpt="$(train "$name" "$config" "$precision")"
  echo "# $name: whale train ($precision, 4 steps) -> $ckpt"
  "$PYTHON" tests/e2e/hf_load_checkpoint.py --whale "$WHALE" --checkpoint "$ckpt"
done
echo "hf load e2e: passed"
