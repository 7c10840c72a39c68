#!/usr/bin/env bash
# The main job on a fresh machine, with embedded defaults and no flags:
#   1. install everything (Debian packages, pinned LibTorch, the real
#      all-MiniLM-L6-v2) and build;
#   2. train a DyLoRA adapter (ranks 1..8) on SST-2 from ../shared/data and
#      evaluate every rank offline;
#   3. start dylora-serve with it, run `dylora-client sweep` over the SST-2 dev
#      set at every rank on the live server (accuracy and latency per rank),
#      then stop the server with SIGTERM (it drains and exits 0).
#   scripts/quickstart.sh [extra dylora-train flags...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${DYLORA_BUILD_DIR:-$ROOT/build}"
OUT="${DYLORA_QUICKSTART_DIR:-$ROOT/runs/quickstart-sst2}"
PORT="${DYLORA_QUICKSTART_PORT:-18001}"
METRICS_PORT="${DYLORA_QUICKSTART_METRICS_PORT:-18002}"
DATA="$ROOT/../shared/data/glue/SST-2/dev.tsv"
step() { printf '\n== %s\n' "$*"; }
start=$(date +%s)

step "1/5 installing dependencies (Debian packages, LibTorch, the real model)"
"$ROOT/scripts/bootstrap.sh"

step "2/5 building dylora-train, dylora-serve, dylora-client (ccache + a precompiled LibTorch header keep rebuilds short)"
cmake -S "$ROOT" -B "$BUILD" -G Ninja >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target dylora-train dylora-serve dylora-client

step "3/5 training DyLoRA r=1..8 on SST-2 (all-MiniLM-L6-v2, 1000 steps of 32, dylora-train's defaults), then every rank on the dev set"
"$BUILD/trainer/dylora-train" --task sst2 --output "$OUT" --overwrite \
  --max-steps 1000 --max-seq-len 64 --seed 1 "$@"

step "4/5 starting dylora-serve on 127.0.0.1:$PORT (metrics on :$METRICS_PORT) with the adapter as \"sst2\""
"$BUILD/server/app/dylora-serve" --host 127.0.0.1 --port "$PORT" \
  --metrics-host 127.0.0.1 --metrics-port "$METRICS_PORT" \
  --adapter "sst2=$OUT" --profile phone=2 --profile edge=4 --profile datacenter=8 \
  --log-level warn &
server_pid=$!
stop_server() {
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
}
trap stop_server EXIT
client=("$BUILD/client/dylora-client")
for _ in $(seq 120); do
  "${client[@]}" health --server "127.0.0.1:$PORT" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { echo "dylora-serve exited" >&2; exit 1; }
  sleep 0.5
done
"${client[@]}" health --server "127.0.0.1:$PORT"
"${client[@]}" infer --server "127.0.0.1:$PORT" --adapter sst2 --profile phone \
  "a gripping, beautifully acted film" "a tedious mess that never finds its footing"

step "5/5 the live rank table: every rank of the served adapter on the SST-2 dev set"
"${client[@]}" sweep --server "127.0.0.1:$PORT" --adapter sst2 --task sst2 --data "$DATA"

step "stopping dylora-serve (SIGTERM: drain, exit 0)"
trap - EXIT
kill -TERM "$server_pid"
wait "$server_pid"
printf '\nquickstart finished in %ss; adapter and rank_table.{csv,json,svg} in %s\n' \
  "$(( $(date +%s) - start ))" "$OUT"
