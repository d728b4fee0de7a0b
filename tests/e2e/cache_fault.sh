#!/usr/bin/env bash
# Fault test of the disk prefix cache with real `whale serve` processes: SIGKILL while the
# cache is written, damaged blocks and a half-written temp file, restart, answers and usage
# checked against a fresh run (see cache_fault.py). Python 3 stdlib only; loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build -p whale-cli --bin whale
WHALE="${CARGO_TARGET_DIR:-target}/debug/whale"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
MODEL="$WORK/model"
mkdir -p "$MODEL"
cp tests/fixtures/deepseek_v3_tiny/{config.json,model.safetensors} tests/fixtures/tiny_chat_tokenizer/{tokenizer.json,tokenizer_config.json} "$MODEL/"
# The script kills every server it starts, also on failure; `timeout` bounds the whole run.
timeout 300 python3 tests/e2e/cache_fault.py "$WHALE" "$MODEL" "$WORK" || {
  status=$?
  for log in "$WORK"/*.log; do [ -f "$log" ] && { echo "== $log"; tail -20 "$log"; } >&2; done
  exit "$status"
}
