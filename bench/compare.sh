#!/usr/bin/env bash
# dylora against its peers, in one window, on the same SST-2 dev sentences and
# the same number of intra-op threads:
#   1. our engine in-process: build/bench/encoder_bench (backbone, merged rank
#      8, truncated rank 8, mixed ranks; padding-free, on weights prepacked
#      for oneDNN as dylora-serve runs fp32) at batches 1/8/32;
#   2. our server: dylora-serve on loopback with the adapter pre-merged at its
#      r_max, driven by `dylora-client bench` (one sentence per request) at
#      concurrency 1 and 8, then stopped with SIGTERM (must exit 0); once per
#      --precision (fp32, then int8), each with its own server;
#   3. the peers (bench/peers/peers_bench.py, in .deps/peers-venv, set up on
#      first use by bench/peers/setup_venv.sh): HF transformers + PEFT eager,
#      ONNX Runtime fp32 and dynamic int8 on the merged model;
# then prints one table, every figure as a ratio to the best peer (served rows
# also to ONNX Runtime at the same precision).
# Take figures on a quiet machine: the script warns when the load average says
# otherwise.
#
#   bench/compare.sh [--seconds S] [--threads N] [--adapter DIR] [--out DIR]
#                    [--port P] [--batch-sizes 1,8,32] [--concurrency 1,8]
#                    [--precisions fp32,int8]
#                    [--variants backbone:packed,merged8:packed,...]
#                    [--onnx-cache DIR] [--check-sentences N]
#   --seconds S     timed wall time per cell (default 3; 0.5 for a smoke test)
#   --threads N     intra-op threads for every engine (default 2)
#   --adapter DIR   adapter directory (default runs/quickstart-sst2)
#   --out DIR       where everything is written (default logs/compare/<timestamp>)
#   --port P        first dylora-serve's gRPC port on 127.0.0.1 (default 18551;
#                   metrics on P+1; the next precision's server on P+2/P+3)
#   --batch-sizes   in-process batch sizes (default 1,8,32)
#   --concurrency   dylora-client bench concurrencies (default 1,8)
#   --precisions    dylora-serve --precision values, one server each, in this
#                   order (default fp32,int8)
#   --variants      encoder_bench variants (default backbone:padded,
#                   backbone:packed,backbone:prepacked,merged8:prepacked,
#                   rank8:prepacked,mixed:prepacked; backbone:padded is
#                   encoder_bench's ratio baseline and the layout the peers
#                   use; *:prepacked is dylora-serve's fp32 path)
#   --onnx-cache    where the exported .onnx files are kept between runs
#                   (default .deps/peers-onnx, git-ignored)
#   --check-sentences N  dev sentences of the peers' logit/accuracy check
#                   (default 0: all 872)
# DYLORA_BUILD_DIR overrides build/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${DYLORA_BUILD_DIR:-$ROOT/build}"
VENV="${DYLORA_PEERS_VENV:-$ROOT/.deps/peers-venv}"
MODEL="$ROOT/.deps/models/all-MiniLM-L6-v2"
DATA="$ROOT/../shared/data/glue/SST-2/dev.tsv"

seconds=3
threads=2
adapter="$ROOT/runs/quickstart-sst2"
out=""
port=18551
batch_sizes="1,8,32"
concurrency="1,8"
precisions="fp32,int8"
variants="backbone:padded,backbone:packed,backbone:prepacked,merged8:prepacked,rank8:prepacked,mixed:prepacked"
onnx_cache="$ROOT/.deps/peers-onnx"
check_sentences=0

usage() { sed -n '2,41p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { printf 'compare.sh: error: %s\n' "$*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (see --help)"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) need_value "$@"; seconds="$2"; shift 2 ;;
    --threads) need_value "$@"; threads="$2"; shift 2 ;;
    --adapter) need_value "$@"; adapter="$2"; shift 2 ;;
    --out) need_value "$@"; out="$2"; shift 2 ;;
    --port) need_value "$@"; port="$2"; shift 2 ;;
    --batch-sizes) need_value "$@"; batch_sizes="$2"; shift 2 ;;
    --concurrency) need_value "$@"; concurrency="$2"; shift 2 ;;
    --precisions) need_value "$@"; precisions="$2"; shift 2 ;;
    --variants) need_value "$@"; variants="$2"; shift 2 ;;
    --onnx-cache) need_value "$@"; onnx_cache="$2"; shift 2 ;;
    --check-sentences) need_value "$@"; check_sentences="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

if ! [[ "$seconds" =~ ^[0-9]*\.?[0-9]+$ ]] || ! awk -v s="$seconds" 'BEGIN{exit !(s > 0)}'; then
  die "--seconds must be a positive number, got '$seconds'"
fi
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$threads'"
[[ "$precisions" =~ ^(fp32|int8)(,(fp32|int8))*$ ]] || die "--precisions: comma-separated fp32/int8, e.g. fp32,int8"
[[ "$precisions" != *fp32*fp32* && "$precisions" != *int8*int8* ]] || die "--precisions: each precision once, got '$precisions'"
n_precisions=$(($(tr -cd , <<<"$precisions" | wc -c) + 1))
if ! [[ "$port" =~ ^[1-9][0-9]{0,4}$ ]] || ((port + 2 * n_precisions > 65536)); then
  die "--port: a port number with room for $((2 * n_precisions)) ports (P..P+$((2 * n_precisions - 1))), got '$port'"
fi
[[ "$batch_sizes" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--batch-sizes: comma-separated positive integers"
[[ "$concurrency" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--concurrency: comma-separated positive integers"
[[ "$variants" =~ ^[a-z0-9]+:[a-z]+(,[a-z0-9]+:[a-z]+)*$ ]] || die "--variants: comma-separated encoder_bench variants, e.g. merged8:packed"
[[ "$check_sentences" =~ ^[0-9]+$ ]] || die "--check-sentences must be a count, got '$check_sentences'"

# ---- preconditions: binaries, model, data, adapter
missing=()
for bin in bench/encoder_bench server/app/dylora-serve client/dylora-client; do
  [[ -x "$BUILD/$bin" ]] || missing+=("$BUILD/$bin")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  die "missing ${missing[*]}; build them first: scripts/test.sh, or
  cmake --build $BUILD --target encoder_bench dylora-serve dylora-client"
fi
[[ -f "$MODEL/config.json" && -f "$MODEL/model.safetensors" ]] ||
  die "no model in $MODEL: run scripts/bootstrap.sh"
[[ -f "$DATA" ]] || die "no SST-2 dev set at $DATA"
adapter="$(cd "$adapter" 2>/dev/null && pwd)" || die "--adapter: no such directory"
[[ -f "$adapter/adapter_config.json" && -f "$adapter/adapter_model.safetensors" ]] ||
  die "$adapter is not an adapter directory (adapter_config.json, adapter_model.safetensors)"

out="${out:-$ROOT/logs/compare/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
start=$(date +%s)
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
cpu="$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)"
cpu="${cpu:-$(uname -m)}"
ncpu="$(nproc)"
load_start="$(loadavg)"
busy=""
if awk -v l="${load_start%% *}" -v n="$ncpu" 'BEGIN{exit !(l > 0.25 * n)}'; then
  busy="load average $load_start on $ncpu CPUs at start: the machine is not quiet, these figures are not comparable"
fi

step "dylora vs peers -> $out"
echo "CPU: $cpu; nproc: $ncpu; load average: $load_start"
echo "threads: $threads intra-op (inter-op 1) everywhere; ~${seconds} s per cell"
echo "adapter: $adapter"
echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -z "$busy" ]] || echo "WARNING: $busy"

step "1/5 peers venv ($VENV)"
DYLORA_PEERS_VENV="$VENV" "$ROOT/bench/peers/setup_venv.sh"
PY="$VENV/bin/python"
r_max="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["r"])' "$adapter/adapter_config.json")"
echo "venv ready; adapter r_max $r_max"

step "2/5 ours in-process: encoder_bench ($variants; batches $batch_sizes)"
filter="encoder/batch:(${batch_sizes//,/|})/(${variants//,/|})/"
if ! OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" "$BUILD/bench/encoder_bench" \
  --benchmark_filter="$filter" --benchmark_min_time="$seconds" \
  --benchmark_out="$out/encoder_bench.json" --benchmark_out_format=json \
  --benchmark_color=false 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g' | tee "$out/encoder_bench.txt"; then
  die "encoder_bench failed (see $out/encoder_bench.txt)"
fi
grep -q "^intra-op threads: $threads;" "$out/encoder_bench.txt" ||
  die "encoder_bench did not run with $threads intra-op threads (see $out/encoder_bench.txt)"

step "3/5 ours served: dylora-serve --precision $precisions (127.0.0.1, ports from $port), dylora-client bench at concurrency $concurrency"
sentences="$out/sst2_dev_sentences.txt"
tail -n +2 "$DATA" | cut -f1 >"$sentences"
server_pid=""
stop_server() {
  if [[ -n "${server_pid:-}" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM
scrape() { curl -sf "http://127.0.0.1:$1/metrics" >"$2" || rm -f "$2"; }
# CPU ticks (utime + stime) per server thread: how many threads really compute.
thread_ticks() {
  local t
  for t in /proc/"$server_pid"/task/*; do
    printf '%s %s %s\n' "${t##*/}" "$(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{print $12 + $13}')" \
      "$(tr -c 'A-Za-z0-9_.:\n-' '_' <"$t/comm" 2>/dev/null)"
  done >"$1"
}
# One server per precision, on its own pair of ports (gRPC, metrics), so that a
# socket of the previous one can never be in the way.
# Files: dylora-serve_<prec>.log, serve_<prec>_warmup.log,
# serve_<prec>_c<N>.json/.log, serve_<prec>_metrics_<i>.txt and
# serve_<prec>_threads_<i>.txt (i = 0 after warm-up, then one per concurrency).
serve_bench() {
  local prec="$1" grpc_port="$2"
  local metrics_port=$((grpc_port + 1)) tag="serve_$1" c i merged rc
  local client=("$BUILD/client/dylora-client" --server "127.0.0.1:$grpc_port")
  local log="$out/dylora-serve_$prec.log"
  echo "-- precision $prec: dylora-serve on 127.0.0.1:$grpc_port (metrics :$metrics_port)"
  "$BUILD/server/app/dylora-serve" --host 127.0.0.1 --port "$grpc_port" \
    --metrics-host 127.0.0.1 --metrics-port "$metrics_port" --model "$MODEL" \
    --adapter "sst2=$adapter" --prewarm-ranks "$r_max" --threads "$threads" --workers 1 \
    --precision "$prec" --log-level warn >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 240); do
    "${client[@]}" health >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null ||
      die "dylora-serve ($prec) exited at start:$(printf '\n'; tail -n 20 "$log")"
    sleep 0.5
  done
  "${client[@]}" health >/dev/null 2>&1 || die "dylora-serve ($prec) not SERVING after 120 s"
  # --prewarm-ranks merges (and, for int8, quantizes) on the merger's thread:
  # wait until rank r_max is cached.
  merged=0
  for _ in $(seq 240); do
    if "${client[@]}" adapters --json 2>/dev/null | "$PY" -c '
import json, sys
a = [x for x in json.load(sys.stdin)["adapters"] if x["name"] == "sst2"]
sys.exit(0 if a and int(sys.argv[1]) in a[0]["merged_ranks"] else 1)' "$r_max"; then
      merged=1
      break
    fi
    sleep 0.5
  done
  [[ $merged -eq 1 ]] || die "rank $r_max of the adapter was not merged ($prec) after 120 s"
  echo "dylora-serve (pid $server_pid, $prec) serving sst2 with rank $r_max merged"
  local bench=("${client[@]}" bench --adapter sst2 --rank-mix "$r_max" --file "$sentences")
  "${bench[@]}" --concurrency 8 --requests 64 --json >/dev/null 2>"$out/${tag}_warmup.log" ||
    die "warm-up requests failed ($prec; see $out/${tag}_warmup.log)"
  scrape "$metrics_port" "$out/${tag}_metrics_0.txt"
  thread_ticks "$out/${tag}_threads_0.txt"
  i=0
  for c in ${concurrency//,/ }; do
    i=$((i + 1))
    "${bench[@]}" --concurrency "$c" --duration-s "$seconds" --json \
      >"$out/${tag}_c$c.json" 2>"$out/${tag}_c$c.log" ||
      die "dylora-client bench ($prec) at concurrency $c failed (see $out/${tag}_c$c.log)"
    scrape "$metrics_port" "$out/${tag}_metrics_$i.txt"
    thread_ticks "$out/${tag}_threads_$i.txt"
    "$PY" -c '
import json, sys
s = json.load(open(sys.argv[1]))
l = s["latency_seconds"]
print("%s concurrency %d: %.1f sentences/s, p50 %.2f ms, p99 %.2f ms, %d requests, %d failed"
      % (sys.argv[2], s["concurrency"], s["texts_per_second"], l["p50"] * 1e3, l["p99"] * 1e3,
         s["requests"], s["failed"]))' "$out/${tag}_c$c.json" "$prec"
  done
  echo "stopping dylora-serve ($prec, SIGTERM)"
  kill -TERM "$server_pid"
  rc=0
  wait "$server_pid" || rc=$?
  server_pid=""
  [[ $rc -eq 0 ]] || die "dylora-serve ($prec) exited with $rc after SIGTERM (see $log)"
  echo "dylora-serve ($prec) exited 0"
}
k=0
for prec in ${precisions//,/ }; do
  serve_bench "$prec" $((port + 2 * k))
  k=$((k + 1))
done
trap - EXIT

step "4/5 peers: hf_peft_eager, ort_fp32, ort_int8 (batches $batch_sizes)"
warmup="$(awk -v s="$seconds" 'BEGIN{print (s < 1 ? s : 1)}')"
if ! "$PY" "$ROOT/bench/peers/peers_bench.py" --model "$MODEL" --adapter "$adapter" \
  --data "$DATA" --threads "$threads" --batch-sizes "$batch_sizes" \
  --seconds "$seconds" --warmup-seconds "$warmup" --work-dir "$onnx_cache" \
  --check-sentences "$check_sentences" --out "$out/peers.json" 2>&1 | tee "$out/peers.txt"; then
  die "peers_bench.py failed (see $out/peers.txt)"
fi

step "5/5 the table ($out/compare.txt)"
"$PY" - "$out/meta.json" <<EOF
import json, sys
json.dump({
    "cpu": """$cpu""", "nproc": $ncpu, "threads": $threads, "seconds": $seconds,
    "adapter": "$adapter", "r_max": $r_max, "port": $port,
    "batch_sizes": [$batch_sizes], "concurrencies": [$concurrency],
    "precisions": "$precisions".split(","),
    "variants": "$variants".split(","),
    "loadavg_start": "$load_start", "loadavg_end": "$(loadavg)",
    "busy_warning": "$busy",
    "commit": "$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)",
}, open(sys.argv[1], "w"), indent=2)
EOF
"$PY" "$ROOT/bench/peers/compare_report.py" "$out"
printf '\ncompare.sh finished in %ss; everything is in %s\n' "$(($(date +%s) - start))" "$out"
