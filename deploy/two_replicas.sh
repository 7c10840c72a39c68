#!/usr/bin/env bash
# Two dylora-serve replicas behind nginx on loopback, measured two ways, then
# one replica drained under load:
#   1. adapter affinity: nginx hashes the x-dylora-adapter metadata
#      (deploy/nginx/dylora-grpc.conf.template, consistent hashing);
#   2. round robin: the same replicas, no hash;
#   3. drain: affinity again, SIGTERM to replica 1 halfway through the load;
#      its exit status, and the failed requests the clients saw.
# Three adapters (a few training steps each: this measures caches, not
# accuracy), each under its own closed-loop dylora-client bench with ranks
# drawn from RANKS. Each replica's merged-weight cache holds CACHE_MB, fewer
# (adapter, rank) entries than the 3 x |RANKS| the traffic asks for, so where
# an adapter's requests land decides the hit rate. Every mode starts from
# fresh replicas (cold caches). Prints one table (the one in
# deploy/README.md). Benchmarks need a quiet machine: run nothing else.
#
#   deploy/two_replicas.sh            (after scripts/test.sh or a build)
# Environment: DYLORA_BUILD_DIR (default build), DURATION (s per mode, 30),
# RANKS (2,8), CACHE_MB (180: four merged MiniLM ranks), CONCURRENCY (per
# adapter, 2), BASE_PORT (18500).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${DYLORA_BUILD_DIR:-$ROOT/build}"
DURATION="${DURATION:-30}"
RANKS="${RANKS:-2,8}"
CACHE_MB="${CACHE_MB:-180}"
CONCURRENCY="${CONCURRENCY:-2}"
BASE_PORT="${BASE_PORT:-18500}"
ADAPTERS=(tenant-a tenant-b tenant-c)
SERVE="$BUILD/server/app/dylora-serve"
CLIENT="$BUILD/client/dylora-client"
TRAIN="$BUILD/trainer/dylora-train"
PROXY_PORT=$((BASE_PORT))
PORTS=($((BASE_PORT + 1)) $((BASE_PORT + 2)))
METRICS_PORTS=($((BASE_PORT + 11)) $((BASE_PORT + 12)))

log() { printf '[two-replicas] %s\n' "$*" >&2; }

for binary in "$SERVE" "$CLIENT" "$TRAIN"; do
  [[ -x "$binary" ]] || { log "missing $binary: build first (scripts/test.sh)"; exit 1; }
done
for tool in nginx curl; do
  command -v "$tool" >/dev/null || { log "missing $tool: run scripts/bootstrap.sh"; exit 1; }
done

WORK="$(mktemp -d /tmp/dylora-two-replicas.XXXXXX)"
REPLICA_PIDS=()
cleanup() {
  stop_nginx
  for pid in "${REPLICA_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

stop_nginx() {
  if [[ -f "$WORK/nginx/nginx.pid" ]]; then
    kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
    rm -f "$WORK/nginx/nginx.pid"
    sleep 0.5
  fi
}

# start_nginx affinity|round-robin
start_nginx() {
  local balance="" replicas=""
  [[ "$1" == affinity ]] && balance='hash $http_x_dylora_adapter consistent;'
  for port in "${PORTS[@]}"; do
    replicas+="server 127.0.0.1:$port max_fails=1 fail_timeout=5s; "
  done
  mkdir -p "$WORK/nginx"
  sed -e "s|@PREFIX@|$WORK/nginx|g" -e "s|@LISTEN@|$PROXY_PORT|g" \
    -e "s|@BALANCE@|$balance|g" -e "s|@REPLICAS@|$replicas|g" \
    "$ROOT/deploy/nginx/dylora-grpc.conf.template" >"$WORK/nginx/nginx.conf"
  nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -e "$WORK/nginx/error.log"
  wait_healthy "127.0.0.1:$PROXY_PORT"
}

wait_healthy() {
  for _ in $(seq 1 100); do
    "$CLIENT" --server "$1" --timeout-s 1 health >/dev/null 2>&1 && return
    sleep 0.2
  done
  log "$1 never became healthy"
  exit 1
}

start_replicas() {
  REPLICA_PIDS=()
  local adapter_flags=()
  for a in "${ADAPTERS[@]}"; do adapter_flags+=(--adapter "$a=$WORK/adapters/$a"); done
  for i in 0 1; do
    # One core each: the two replicas share this machine's two.
    "$SERVE" --host 127.0.0.1 --port "${PORTS[$i]}" --metrics-host 127.0.0.1 \
      --metrics-port "${METRICS_PORTS[$i]}" "${adapter_flags[@]}" --threads 1 \
      --merge-after 32 --merge-cache-mb "$CACHE_MB" --log-level warn \
      --drain-timeout-s 30 >"$WORK/replica-$i.log" 2>&1 &
    REPLICA_PIDS+=($!)
  done
  for port in "${PORTS[@]}"; do wait_healthy "127.0.0.1:$port"; done
}

stop_replicas() {
  for pid in "${REPLICA_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${REPLICA_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  REPLICA_PIDS=()
}

# Sum of a metric's samples (every label set) on replica $1; $3 filters the
# label set (a regex), e.g. 'adapter="tenant-a"'.
metric() {
  curl -sf "http://127.0.0.1:${METRICS_PORTS[$1]}/metrics" |
    awk -v name="$2" -v filter="${3:-}" '
      $1 ~ ("^" name "({|$)") && (filter == "" || $1 ~ filter) { sum += $NF }
      END { printf "%.0f\n", sum }'
}

# Runs one bench per adapter through the proxy for $1 seconds; their JSON
# reports land in $WORK/bench-<adapter>.json.
run_load() {
  local pids=()
  for a in "${ADAPTERS[@]}"; do
    "$CLIENT" --server "127.0.0.1:$PROXY_PORT" bench --adapter "$a" \
      --concurrency "$CONCURRENCY" --rank-mix "$RANKS" --duration-s "$1" \
      --json >"$WORK/bench-$a.json" 2>"$WORK/bench-$a.err" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
}

# Totals of the three bench reports: "<requests/s> <succeeded> <failed>".
load_totals() {
  python3 - "$WORK" "${ADAPTERS[@]}" <<'EOF'
import json, sys
work, adapters = sys.argv[1], sys.argv[2:]
rps = ok = failed = 0
for a in adapters:
    r = json.load(open(f"{work}/bench-{a}.json"))
    rps += r["requests_per_second"]; ok += r["succeeded"]; failed += r["failed"]
print(f"{rps:.1f} {ok} {failed}")
EOF
}

# Which replica served each adapter: "tenant-a:1 tenant-b:2 ..." (both: 1+2).
placement() {
  local out=""
  for a in "${ADAPTERS[@]}"; do
    local where=""
    for i in 0 1; do
      local n
      n="$(metric "$i" dylora_requests_total "adapter=\"$a\"")"
      [[ "$n" -gt 0 ]] && where+="${where:+(+)}$((i + 1))"
    done
    out+="$a:${where:-none} "
  done
  echo "${out% }"
}

log "work directory $WORK"
log "training ${#ADAPTERS[@]} adapters (4 steps each)"
seed=1
for a in "${ADAPTERS[@]}"; do
  "$TRAIN" --task sst2 --output "$WORK/adapters/$a" --max-steps 4 \
    --batch-size 8 --max-train-examples 64 --max-dev-examples 16 \
    --max-seq-len 32 --threads 1 --seed "$seed" >"$WORK/train-$a.log" 2>&1
  seed=$((seed + 1))
done

printf '| balancing | requests/s | failed | merge-cache hit rate | merges | evictions | adapter -> replica |\n'
printf '|---|---|---|---|---|---|---|\n'
for mode in affinity round-robin; do
  start_replicas
  start_nginx "$mode"
  log "$mode: ${DURATION}s of load, ranks $RANKS, ${CONCURRENCY} in flight per adapter"
  run_load "$DURATION"
  read -r rps ok failed <<<"$(load_totals)"
  hits=0 misses=0 merges=0 evictions=0
  for i in 0 1; do
    hits=$((hits + $(metric "$i" dylora_merge_cache_hits_total)))
    misses=$((misses + $(metric "$i" dylora_merge_cache_misses_total)))
    merges=$((merges + $(metric "$i" dylora_merges_total)))
    evictions=$((evictions + $(metric "$i" dylora_merge_cache_evictions_total)))
  done
  rate="$(awk -v h="$hits" -v m="$misses" 'BEGIN { printf "%.1f%%", h + m ? 100 * h / (h + m) : 0 }')"
  printf '| %s | %s | %s of %s | %s | %s | %s | %s |\n' "$mode" "$rps" "$failed" \
    "$((ok + failed))" "$rate" "$merges" "$evictions" "$(placement)"
  stop_nginx
  stop_replicas
done

log "drain: SIGTERM to replica 1 after $((DURATION / 2))s of ${DURATION}s of load"
start_replicas
start_nginx affinity
run_load "$DURATION" &
load_pid=$!
sleep $((DURATION / 2))
before="$(metric 1 dylora_requests_total)"
kill -TERM "${REPLICA_PIDS[0]}"
status=0
wait "${REPLICA_PIDS[0]}" || status=$?
wait "$load_pid"
after="$(metric 1 dylora_requests_total)"
read -r rps ok failed <<<"$(load_totals)"
printf '\nDrain: replica 1 exited with status %s; the clients saw %s failed of %s requests; replica 2 answered %s requests after the SIGTERM.\n' \
  "$status" "$failed" "$((ok + failed))" "$((after - before))"
for a in "${ADAPTERS[@]}"; do
  if [[ -s "$WORK/bench-$a.err" ]]; then log "$a: $(head -c 300 "$WORK/bench-$a.err")"; fi
done
if [[ "$status" != 0 || "$failed" != 0 ]]; then exit 1; fi
