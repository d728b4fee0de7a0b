#!/usr/bin/env bash
# End-to-end test of `whale serve` with the official `openai` Python client: builds whale,
# serves the tiny fixture model on 127.0.0.1 with an API key and a disk cache, runs the
# "fresh" checks, restarts the server on the same --cache-dir, and runs the "restart" checks
# (cache hits from disk). Needs python3 with `openai` (`pip install openai`).
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -c "import openai" 2>/dev/null || { echo "error: the openai package is missing: pip install openai" >&2; exit 1; }
cargo build -p whale-cli --bin whale
WHALE="${CARGO_TARGET_DIR:-target}/debug/whale"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

MODEL="$WORK/model"
mkdir -p "$MODEL"
cp tests/fixtures/deepseek_v3_tiny/{config.json,model.safetensors} tests/fixtures/tiny_chat_tokenizer/{tokenizer.json,tokenizer_config.json} "$MODEL/"
KEY="sk-whale-e2e"
echo "$KEY" > "$WORK/keys"
# Prices in USD (DeepSeek-R1's V3-era list prices), to check that --price-file is used.
echo '{"currency": "USD", "default": {"input_cache_hit": 0.14, "input_cache_miss": 0.55, "output": 2.19}}' > "$WORK/prices.json"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT/v1"

start_server() {
  "$WHALE" serve --model "$MODEL" --port "$PORT" --cache-dir "$WORK/cache" --api-key-file "$WORK/keys" \
    --price-file "$WORK/prices.json" \
    >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      cat "$WORK/server.log" >&2; echo "error: whale serve exited" >&2; exit 1
    fi
    sleep 0.1
  done
  cat "$WORK/server.log" >&2; echo "error: whale serve did not come up on port $PORT" >&2; exit 1
}

stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=""
}

start_server
# A second server on the same port fails at once, naming the port.
if "$WHALE" serve --model "$MODEL" --port "$PORT" 2>"$WORK/busy.log"; then
  echo "error: a second whale serve on port $PORT started" >&2; exit 1
fi
grep -q "port $PORT on 127.0.0.1 is in use; pass --port" "$WORK/busy.log" || { cat "$WORK/busy.log" >&2; exit 1; }
echo "ok - a busy port is refused with a clear message"
python3 tests/e2e/openai_client.py "$BASE" "$KEY" fresh
python3 tests/e2e/openai_tools.py "$BASE" "$KEY"
stop_server
ls "$WORK/cache" >/dev/null
start_server
python3 tests/e2e/openai_client.py "$BASE" "$KEY" restart
stop_server
echo "openai e2e: passed"
