#!/usr/bin/env bash
# Reproduces the DyLoRA paper's claims (arXiv 2210.07558, Tables 1, 2, 4, 5
# and 7) on all-MiniLM-L6-v2 with dylora-train, resumably:
#   results/<id>.json          one file per finished run (committed)
#   runs/reproduce/<id>/       its training directory (git-ignored)
#   logs/reproduce/<id>.log    its dylora-train output (git-ignored)
#   docs/reproduction.md, docs/figures/<task>.svg   the report, regenerated
#                              from results/ by scripts/reproduce_report.py
# A run whose results/<id>.json exists is skipped, so running the script
# again continues where a killed one stopped; the long SST-2 run also
# resumes from its newest checkpoint.
#
#   scripts/reproduce.sh [options]
#     --list            print the run matrix with done/pending, run nothing
#     --only PATTERN    only run ids matching PATTERN (a shell glob matching
#                       the whole id, or an extended regex found in it)
#     --tasks a,b       only these tasks (sst2, mrpc, rte, stsb, cola)
#     --seeds 1,2       only these seeds
#     --jobs N          runs at a time (default 1: the runs share the cores)
#     --threads N       intra-op threads per run (default: all cores; with
#                       --jobs N: cores / N)
#     --dry-run         print the commands instead of running them
#     --report          only regenerate docs/reproduction.md and its figures
#     --help            this text
# Environment: DYLORA_BUILD_DIR (default build), DYLORA_DATA_DIR (default
# ../shared/data/glue), DYLORA_MODEL_DIR (default: dylora-train's), and
# DYLORA_RESULTS_DIR, DYLORA_REPORT, DYLORA_FIGURES_DIR, DYLORA_RUNS_DIR,
# DYLORA_LOGS_DIR for the outputs, DYLORA_LR, DYLORA_HEAD_LR,
# DYLORA_BATCH_SIZE, DYLORA_TARGETS, DYLORA_HEAD, DYLORA_EXTRA_FLAGS for the
# common hyper-parameters (see below).
#
# Cost on 2 cores: estimated at about 10 hours for the whole matrix before
# dylora-train grouped batches by length, which made a step about 2.5x
# cheaper (0.29 s per step of 32 on SST-2 with every linear layer adapted);
# sentence pairs at length 128 cost more. The measured times land in
# results/ and in the report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# ===========================================================================
# The run matrix: edit here.
# ===========================================================================
TASKS=(sst2 mrpc rte stsb cola)

# Seeds per task: one for the large SST-2, three for the small (noisy) tasks.
declare -A TASK_SEEDS=(
  [sst2]="1"
  [mrpc]="1 2 3"
  [rte]="1 2 3"
  [stsb]="1 2 3"
  [cola]="1 2 3"
)

# Training budget per task (dylora-train flags). Every run of a task uses
# the same budget, so its rows compare like with like; per-task
# hyper-parameters (e.g. --lr) may go here too.
declare -A TASK_BUDGET=(
  [sst2]="--max-steps 1000 --max-seq-len 64"
  [mrpc]="--epochs 3 --max-seq-len 128"
  [rte]="--epochs 3 --max-seq-len 128"
  [stsb]="--epochs 3 --max-seq-len 128"
  [cola]="--epochs 3 --max-seq-len 64"
)

# Runs per task and seed; the id is <task>-<variant>-s<seed>. DyLoRA trains
# the product's recipe (full update, chosen by the sweep); the paper's frozen
# update is an ablation (at 3 epochs it barely moves on the small tasks).
# LoRA r=8 is trained once, as lora-r8trunc: its rank-8 evaluation is the
# "LoRA trained at r=8" entry of Table 1, its ranks 1..7 are Table 2's
# truncated baseline.
# Every run of the matrix trains at one rate (--lr 5e-4, the same at every
# rank) so DyLoRA and LoRA compare like for like, with the paper's uniform
# p_B; dylora-train's own defaults (lr 1e-3 at r_max scaled by
# (b/8)^0.5, geometric p_B) are the product recipe from the sweep.
MAIN_VARIANTS=(
  # variant      group   dylora-train flags
  "dylora        table2  --method dylora --r-min 1 --r-max 8 --update-mode full --rank-distribution uniform --lr 5e-4 --rank-lr-exponent 0"
  "lora-r1       table1  --method lora --r-min 1 --r-max 1 --lr 5e-4"
  "lora-r2       table1  --method lora --r-min 2 --r-max 2 --lr 5e-4"
  "lora-r4       table1  --method lora --r-min 4 --r-max 4 --lr 5e-4"
  "lora-r8trunc  table2  --method lora --r-min 1 --r-max 8 --lr 5e-4"
)

# The defaults sweep (dev only): one DyLoRA run per setting on SST-2 at the
# quickstart's budget, each varying the base in one respect (later rounds
# combine what helped). README's
# defaults come from this table (docs/reproduction.md, "Defaults sweep").
SWEEP_TASK=sst2
SWEEP_SEEDS="1"
SWEEP_BUDGET="--max-steps 400 --max-seq-len 64 --batch-size 32"
SWEEP_BASE="--method dylora --r-min 1 --r-max 8 --targets query,key,value,attention.output,intermediate,output --lr 2e-3 --head-lr 2e-3 --update-mode frozen --head auto --rank-distribution uniform --rank-lr-exponent 0"
SWEEP_VARIANTS=(
  # variant             flags replacing the base's
  "sweep-base"
  "sweep-qv             --targets query,value"
  "sweep-lr1e-3         --lr 1e-3 --head-lr 1e-3"
  "sweep-lr5e-3         --lr 5e-3 --head-lr 5e-3"
  "sweep-headlr1e-2     --head-lr 1e-2"
  "sweep-full-update    --update-mode full"
  "sweep-no-dropout     --hidden-dropout 0 --attention-dropout 0 --classifier-dropout 0"
  "sweep-pooler-head    --head pooler"
  # Round 2: the two changes that helped, together, then more of them.
  "sweep-full-headlr1e-2          --update-mode full --head-lr 1e-2"
  "sweep-full-headlr1e-2-lr3e-3   --update-mode full --head-lr 1e-2 --lr 3e-3"
  "sweep-full-headlr1e-2-batch64  --update-mode full --head-lr 1e-2 --batch-size 64"
  "sweep-full-headlr1e-2-qv       --update-mode full --head-lr 1e-2 --targets query,value"
  # Round 3: batches grouped by length make a step about 2.5x cheaper, so
  # the 5-minute quickstart budget holds 1000 steps.
  "sweep-1000-full-headlr1e-2     --max-steps 1000 --update-mode full --head-lr 1e-2"
  "sweep-1000-frozen-headlr1e-2   --max-steps 1000 --head-lr 1e-2"
  # Round 4: rank 1 lags in full mode (its row trains at scale alpha/b but
  # serves at alpha/1): more rank-1 draws, or a gentler adapter rate.
  "sweep-1000-full-headlr1e-2-geometric  --max-steps 1000 --update-mode full --head-lr 1e-2 --rank-distribution geometric:0.15"
  "sweep-1000-full-headlr1e-2-lr1e-3     --max-steps 1000 --update-mode full --head-lr 1e-2 --lr 1e-3"
  # Round 5: the gentler rate helped every rank; gentler still, and with
  # more rank-1 draws.
  "sweep-1000-full-headlr1e-2-lr5e-4     --max-steps 1000 --update-mode full --head-lr 1e-2 --lr 5e-4"
  "sweep-1000-full-headlr1e-2-lr1e-3-geometric  --max-steps 1000 --update-mode full --head-lr 1e-2 --lr 1e-3 --rank-distribution geometric:0.15"
  # Round 6, from the chosen defaults (lr 5e-4): more rank-1 draws; a faster head.
  "sweep-1000-full-headlr1e-2-lr5e-4-geometric  --max-steps 1000 --update-mode full --head-lr 1e-2 --lr 5e-4 --rank-distribution geometric:0.15"
  "sweep-1000-full-headlr2e-2-lr5e-4            --max-steps 1000 --update-mode full --head-lr 2e-2 --lr 5e-4"
  # Round 7: rank 1 and rank 8 still sit below 0.86. The same compute as
  # 2000 steps of 16 (twice the updates; a step costs about its tokens).
  "sweep-2000x16-full-headlr1e-2-lr5e-4         --max-steps 2000 --batch-size 16 --update-mode full --head-lr 1e-2 --lr 5e-4"
  # Round 8: a faster head cost rank 1 (2e-2 < 1e-2); a slower one.
  "sweep-1000-full-headlr5e-3-lr5e-4            --max-steps 1000 --update-mode full --head-lr 5e-3 --lr 5e-4"
  # Round 9: LoRA+ (the up factors train faster than the down ones).
  "sweep-1000-full-headlr1e-2-lr5e-4-up2        --max-steps 1000 --update-mode full --head-lr 1e-2 --lr 5e-4 --up-lr-ratio 2"
  "sweep-1000-full-headlr1e-2-lr2.5e-4-up8      --max-steps 1000 --update-mode full --head-lr 1e-2 --lr 2.5e-4 --up-lr-ratio 8"
  # Round 10: rank 1 wants a gentler rate (lr 1e-3 -> 5e-4 helped it), rank 8
  # a faster one (1e-3 gave it 0.870); --rank-lr-exponent gives each rank
  # its own: a step at rank b trains at lr * (b/8)^exponent.
  "sweep-1000-full-headlr1e-2-lr1e-3-rankexp0.5    --max-steps 1000 --update-mode full --head-lr 1e-2 --lr 1e-3 --rank-lr-exponent 0.5"
  "sweep-1000-full-headlr1e-2-lr1.5e-3-rankexp1    --max-steps 1000 --update-mode full --head-lr 1e-2 --lr 1.5e-3 --rank-lr-exponent 1"
  # Round 11: exponent 0.5 lifted every rank but rank 1 (0.859); give rank 1
  # more draws too (geometric 0.1: rank 1 drawn 2.1x as often as rank 8).
  "sweep-1000-full-headlr1e-2-lr1e-3-rankexp0.5-geometric0.1  --max-steps 1000 --update-mode full --head-lr 1e-2 --lr 1e-3 --rank-lr-exponent 0.5 --rank-distribution geometric:0.1"
  # Chosen (dylora-train's defaults since): 0.865 .. 0.878, every rank at
  # or above LoRA trained at that rank alone where measured (r1 0.859).
)

# Ablations (Tables 4 and 7) on one task, with that task's budget; the
# reference row is the task's main DyLoRA run.
ABLATION_TASK=sst2
ABLATION_SEEDS="1"
ABLATION_VARIANTS=(
  # variant                  group     dylora-train flags
  "ablation-frozen-update    ablation  --method dylora --r-min 1 --r-max 8 --update-mode frozen --rank-distribution uniform --lr 5e-4 --rank-lr-exponent 0"
  "ablation-geometric        ablation  --method dylora --r-min 1 --r-max 8 --update-mode full --rank-distribution geometric:0.15 --lr 5e-4 --rank-lr-exponent 0"
  "ablation-nested-dropout   ablation  --method nested-dropout --r-min 1 --r-max 8 --lr 5e-4"
)

# The long SST-2 run: every epoch of the 65k examples, checkpointed and
# resumed (--resume) when the script runs again after being killed.
LONG_TASK=sst2
LONG_SEEDS="1"
LONG_BUDGET="--epochs 3 --max-seq-len 64"
LONG_CHECKPOINT_EVERY=250
# It trains the matrix's DyLoRA (full update, uniform p_B, lr 5e-4 at every
# rank: the product recipe before sweep rounds 10-11) for three epochs.
LONG_VARIANTS=(
  # variant     group  dylora-train flags
  "long-dylora  long   --method dylora --r-min 1 --r-max 8 --update-mode full --rank-distribution uniform --lr 5e-4 --rank-lr-exponent 0"
)

# Common hyper-parameters; empty: dylora-train's default (not passed).
LR="${DYLORA_LR:-}"
HEAD_LR="${DYLORA_HEAD_LR:-}"
BATCH_SIZE="${DYLORA_BATCH_SIZE:-}"
TARGETS="${DYLORA_TARGETS:-}"          # e.g. query,value
HEAD="${DYLORA_HEAD:-}"                # auto|pooler|cls|mean|max|mean_sqrt_len
EXTRA_FLAGS="${DYLORA_EXTRA_FLAGS:-}"  # anything else, e.g. "--hidden-dropout 0"

# ===========================================================================
# Paths.
# ===========================================================================
BUILD="${DYLORA_BUILD_DIR:-$ROOT/build}"
TRAIN_BIN="$BUILD/trainer/dylora-train"
DATA_DIR="${DYLORA_DATA_DIR:-$ROOT/../shared/data/glue}"
[[ -d "$DATA_DIR" ]] && DATA_DIR="$(cd "$DATA_DIR" && pwd)"
MODEL_DIR="${DYLORA_MODEL_DIR:-}"
RESULTS="${DYLORA_RESULTS_DIR:-$ROOT/results}"
REPORT="${DYLORA_REPORT:-$ROOT/docs/reproduction.md}"
FIGURES="${DYLORA_FIGURES_DIR:-$ROOT/docs/figures}"
RUNS="${DYLORA_RUNS_DIR:-$ROOT/runs/reproduce}"
LOGS="${DYLORA_LOGS_DIR:-$ROOT/logs/reproduce}"

die() { echo "reproduce.sh: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

# ===========================================================================
# The matrix as records: MATRIX (ids in run order) and, per id, its group,
# task, seed and dylora-train flags (before the per-run output flags).
# ===========================================================================
MATRIX=()
declare -A RUN_GROUP RUN_TASK RUN_SEED RUN_FLAGS RUN_LONG

common_flags() {
  local flags=""
  [[ -n "$LR" ]] && flags+=" --lr $LR"
  [[ -n "$HEAD_LR" ]] && flags+=" --head-lr $HEAD_LR"
  [[ -n "$BATCH_SIZE" ]] && flags+=" --batch-size $BATCH_SIZE"
  [[ -n "$TARGETS" ]] && flags+=" --targets $TARGETS"
  [[ -n "$HEAD" ]] && flags+=" --head $HEAD"
  [[ -n "$EXTRA_FLAGS" ]] && flags+=" $EXTRA_FLAGS"
  echo "$flags"
}

# add_runs TASK SEED BUDGET LONG VARIANT...: one record per variant line.
add_runs() {
  local task=$1 seed=$2 budget=$3 long=$4 line variant group flags id
  shift 4
  for line in "$@"; do
    read -r variant group flags <<<"$line"
    id="$task-$variant-s$seed"
    MATRIX+=("$id")
    RUN_GROUP[$id]=$group
    RUN_TASK[$id]=$task
    RUN_SEED[$id]=$seed
    RUN_FLAGS[$id]="--task $task --seed $seed $budget $flags$(common_flags)"
    RUN_LONG[$id]=$long
  done
}

# Order: the defaults sweep, then every task's first seed (an interrupted reproduction already covers
# every task), then the ablations, the further seeds, and last the long run
# (an hour, but resumable).
build_matrix() {
  local task seed seeds sweep
  mapfile -t sweep < <(sweep_lines)
  for seed in $SWEEP_SEEDS; do
    add_runs "$SWEEP_TASK" "$seed" "" 0 "${sweep[@]}"  # budget in the lines
  done
  for task in "${TASKS[@]}"; do
    read -ra seeds <<<"${TASK_SEEDS[$task]}"
    add_runs "$task" "${seeds[0]}" "${TASK_BUDGET[$task]}" 0 "${MAIN_VARIANTS[@]}"
  done
  for seed in $ABLATION_SEEDS; do
    add_runs "$ABLATION_TASK" "$seed" "${TASK_BUDGET[$ABLATION_TASK]}" 0 \
      "${ABLATION_VARIANTS[@]}"
  done
  for task in "${TASKS[@]}"; do
    read -ra seeds <<<"${TASK_SEEDS[$task]}"
    for seed in "${seeds[@]:1}"; do
      add_runs "$task" "$seed" "${TASK_BUDGET[$task]}" 0 "${MAIN_VARIANTS[@]}"
    done
  done
  for seed in $LONG_SEEDS; do
    add_runs "$LONG_TASK" "$seed" "$LONG_BUDGET" 1 "${LONG_VARIANTS[@]}"
  done
}

# override_flags BASE OVERRIDES: BASE's "--flag value" pairs with those that
# OVERRIDES names replaced, and OVERRIDES' new flags appended.
override_flags() {
  local -a base over
  read -ra base <<<"$1"
  read -ra over <<<"$2"
  local -A value
  local order=() i
  for ((i = 0; i < ${#base[@]}; i += 2)); do
    order+=("${base[i]}"); value[${base[i]}]=${base[i + 1]}
  done
  for ((i = 0; i < ${#over[@]}; i += 2)); do
    [[ -v value[${over[i]}] ]] || order+=("${over[i]}")
    value[${over[i]}]=${over[i + 1]}
  done
  local out="" flag
  for flag in "${order[@]}"; do out+=" $flag ${value[$flag]}"; done
  echo "${out# }"
}

# The sweep's variant lines in add_runs' form (variant group flags).
sweep_lines() {
  local line variant overrides
  for line in "${SWEEP_VARIANTS[@]}"; do
    read -r variant overrides <<<"$line"
    echo "$variant sweep $(override_flags "$SWEEP_BUDGET $SWEEP_BASE" "$overrides")"
  done
}

contains() {  # contains WORD LIST...: is WORD one of LIST?
  local word=$1 item
  shift
  for item in "$@"; do [[ "$item" == "$word" ]] && return 0; done
  return 1
}

# ===========================================================================
# Options.
# ===========================================================================
MODE=run ONLY="" JOBS=1 THREADS="" DRY_RUN=0 ONLY_TASKS=() ONLY_SEEDS=()
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --list) MODE=list ;;
    --report) MODE=report ;;
    --dry-run) DRY_RUN=1 ;;
    --only) need_value "$@"; ONLY=$2; shift ;;
    --tasks) need_value "$@"; IFS=, read -ra ONLY_TASKS <<<"$2"; shift ;;
    --seeds) need_value "$@"; IFS=, read -ra ONLY_SEEDS <<<"$2"; shift ;;
    --jobs) need_value "$@"; JOBS=$2; shift ;;
    --threads) need_value "$@"; THREADS=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "--jobs wants a positive integer, not '$JOBS'"
[[ -z "$THREADS" || "$THREADS" =~ ^[1-9][0-9]*$ ]] ||
  die "--threads wants a positive integer, not '$THREADS'"
for t in "${ONLY_TASKS[@]}"; do
  contains "$t" "${TASKS[@]}" || die "unknown task '$t' (known: ${TASKS[*]})"
done
for s in "${ONLY_SEEDS[@]}"; do
  [[ "$s" =~ ^[0-9]+$ ]] || die "--seeds wants numbers, not '$s'"
done
# Runs side by side share the cores instead of each taking all of them.
if [[ -z "$THREADS" && "$JOBS" -gt 1 ]]; then
  THREADS=$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))
fi

build_matrix

selected() {  # selected ID: does the id pass --only, --tasks and --seeds?
  local id=$1
  ((${#ONLY_TASKS[@]} == 0)) || contains "${RUN_TASK[$id]}" "${ONLY_TASKS[@]}" || return 1
  ((${#ONLY_SEEDS[@]} == 0)) || contains "${RUN_SEED[$id]}" "${ONLY_SEEDS[@]}" || return 1
  [[ -z "$ONLY" ]] && return 0
  # shellcheck disable=SC2053  # the glob is meant to be unquoted
  [[ "$id" == $ONLY ]] && return 0
  [[ "$id" =~ $ONLY ]] 2>/dev/null
}

is_done() { [[ -f "$RESULTS/$1.json" ]]; }

SELECTED=()
for id in "${MATRIX[@]}"; do selected "$id" && SELECTED+=("$id"); done

# ===========================================================================
# Commands.
# ===========================================================================
# train_command ID: the dylora-train command line, one word per line.
train_command() {
  local id=$1 flags
  read -ra flags <<<"${RUN_FLAGS[$id]}"
  printf '%s\n' "$TRAIN_BIN" "${flags[@]}" --data-dir "$DATA_DIR" \
    --output "$RUNS/$id"
  [[ -n "$MODEL_DIR" ]] && printf '%s\n' --model "$MODEL_DIR"
  [[ -n "$THREADS" ]] && printf '%s\n' --threads "$THREADS"
  if [[ "${RUN_LONG[$id]}" == 1 ]]; then
    # Starts fresh when there is no checkpoint yet.
    printf '%s\n' --resume --checkpoint-every "$LONG_CHECKPOINT_EVERY"
  else
    # A short run killed half-way starts over.
    printf '%s\n' --overwrite
  fi
}

report_command() {
  local IFS=,
  printf '%s\n' python3 "$ROOT/scripts/reproduce_report.py" --results "$RESULTS" \
    --out "$REPORT" --figures "$FIGURES" --expected "${MATRIX[*]}"
}

print_command() {  # print_command WORD...: on one line, quoted where needed
  local word out=""
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then out+="$word "
    else printf -v out '%s%q ' "$out" "$word"; fi
  done
  echo "${out% }"
}

run_report() {
  local cmd
  mapfile -t cmd < <(report_command)
  if [[ "$DRY_RUN" == 1 ]]; then print_command "${cmd[@]}"; return 0; fi
  mkdir -p "$(dirname "$REPORT")" "$FIGURES"
  "${cmd[@]}"
}

# ===========================================================================
# One run, in a background subshell: train, then record results/<id>.json.
# ===========================================================================
STATE=""  # a temp dir: durations and failures written by the subshells

duration() {  # duration SECONDS: 45s, 3m12s, 1h05m
  local s=$1
  if ((s >= 3600)); then printf '%dh%02dm' $((s / 3600)) $((s / 60 % 60))
  elif ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60))
  else printf '%ds' "$s"; fi
}

# record_result ID: copies runs/reproduce/<id>/result.json to results/<id>.json
# with "id" and "group" added (temp file + mv: never a half-written result)
# and prints the rank summary, e.g. "accuracy r1 0.861 .. r8 0.872".
record_result() {
  local id=$1 dest="$RESULTS/$1.json" tmp="$RESULTS/.$1.json.tmp"
  python3 - "$RUNS/$id/result.json" "$tmp" "$id" "${RUN_GROUP[$id]}" <<'EOF' || return 1
import json, sys
src, tmp, run_id, group = sys.argv[1:5]
with open(src) as f:
    run = json.load(f)
# The summary first: a result without a metric per rank is not recorded.
metric, ranks = run["metric"], run["ranks"]
ends = [f"r{r['rank']} {r['metrics'][metric]:.3f}" for r in (ranks[0], ranks[-1])]
with open(tmp, "w") as f:
    json.dump({"id": run_id, "group": group, **run}, f, indent=2)
    f.write("\n")
print(metric, " .. ".join(dict.fromkeys(ends)))
EOF
  mv -f "$tmp" "$dest"
}

# eta: the mean duration of the finished runs times the runs still to go.
eta() {
  local done_count total=0 d left
  done_count=$(wc -l <"$STATE/durations")
  ((done_count > 0)) || return 0
  while read -r _ d; do total=$((total + d)); done <"$STATE/durations"
  left=$((PENDING_COUNT - done_count - $(wc -l <"$STATE/failed")))
  ((left > 0)) || return 0
  echo "; ETA $(duration $((total * left / done_count / JOBS))) for $left more"
}

run_one() {  # run_one ID K: the K-th of PENDING_COUNT runs
  local id=$1 tag="[$2/$PENDING_COUNT] $1" start cmd trainer="" rc=0 summary
  # Ctrl-C reaches the whole process group: only the parent acts on it
  # (the subshell would otherwise inherit the parent's INT trap reset to the
  # default and die, leaving the trainer behind) and relays it as SIGTERM.
  trap '' INT
  trap '[[ -n "$trainer" ]] && kill -TERM "$trainer" 2>/dev/null; exit 143' TERM
  mapfile -t cmd < <(train_command "$id")
  start=$(date +%s)
  echo "$tag: training (log: ${LOGS#"$ROOT"/}/$id.log) ..."
  mkdir -p "$RUNS" "$LOGS" "$RESULTS"
  rm -f "$RUNS/$id/result.json"  # a stale one must not pass for this run's
  { print_command "${cmd[@]}"; echo; } >"$LOGS/$id.log"
  "${cmd[@]}" >>"$LOGS/$id.log" 2>&1 &
  trainer=$!
  wait "$trainer" || rc=$?
  local took=$(( $(date +%s) - start ))
  if ((rc != 0)); then
    echo "$id" >>"$STATE/failed"
    echo "$tag: FAILED (exit $rc) after $(duration "$took"); see $LOGS/$id.log:" >&2
    tail -n 5 "$LOGS/$id.log" | tr '\r' '\n' | tail -n 5 | sed 's/^/    /' >&2
    return 1
  fi
  if ! summary=$(record_result "$id" 2>>"$LOGS/$id.log"); then
    echo "$id" >>"$STATE/failed"
    echo "$tag: FAILED: no usable $RUNS/$id/result.json (is dylora-train up to date?)" >&2
    return 1
  fi
  echo "$id $took" >>"$STATE/durations"
  echo "$tag: done in $(duration "$took") ($summary)$(eta)"
}

# ===========================================================================
# Modes.
# ===========================================================================
list_matrix() {
  local id status done_count=0
  printf '%-32s %-9s %-5s %-5s %s\n' ID GROUP TASK SEED STATUS
  for id in "${SELECTED[@]}"; do
    if is_done "$id"; then status="done"; done_count=$((done_count + 1))
    elif compgen -G "$RUNS/$id/checkpoints/step-*" >/dev/null; then
      status="pending (checkpoint)"
    else status=pending; fi
    printf '%-32s %-9s %-5s %-5s %s\n' "$id" "${RUN_GROUP[$id]}" \
      "${RUN_TASK[$id]}" "${RUN_SEED[$id]}" "$status"
  done
  echo "${#SELECTED[@]} runs: $done_count done, $(( ${#SELECTED[@]} - done_count )) pending"
}

dry_run() {
  local id cmd
  for id in "${SELECTED[@]}"; do
    if is_done "$id"; then echo "# $id: done ($RESULTS/$id.json)"; continue; fi
    mapfile -t cmd < <(train_command "$id")
    echo "# $id (group ${RUN_GROUP[$id]}; then $RUNS/$id/result.json -> $RESULTS/$id.json)"
    print_command "${cmd[@]}"
  done
  run_report
}

stop_runs() {
  echo "reproduce.sh: stopping (finished runs are kept; run again to continue)" >&2
  local pid
  for pid in $(jobs -p); do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
  [[ -n "$STATE" ]] && rm -rf "$STATE"
  exit 130
}

run_matrix() {
  local pending=() id k=0 running=0
  for id in "${SELECTED[@]}"; do is_done "$id" || pending+=("$id"); done
  PENDING_COUNT=${#pending[@]}
  echo "${#SELECTED[@]} runs selected: $(( ${#SELECTED[@]} - PENDING_COUNT )) done," \
    "$PENDING_COUNT to run (--jobs $JOBS)"
  if ((PENDING_COUNT > 0)) && [[ ! -x "$TRAIN_BIN" ]]; then
    die "$TRAIN_BIN not found: build it with scripts/test.sh (or" \
      "scripts/quickstart.sh), or set DYLORA_BUILD_DIR"
  fi
  if ((PENDING_COUNT > 0)) && [[ ! -d "$DATA_DIR" ]]; then
    die "GLUE data not found at $DATA_DIR (set DYLORA_DATA_DIR)"
  fi
  STATE=$(mktemp -d)
  : >"$STATE/durations"
  : >"$STATE/failed"
  trap stop_runs INT TERM
  for id in "${pending[@]}"; do
    if ((running >= JOBS)); then wait -n || true; running=$((running - 1)); fi
    k=$((k + 1))
    run_one "$id" "$k" &
    running=$((running + 1))
  done
  wait || true
  trap - INT TERM
  local failed
  mapfile -t failed <"$STATE/failed"
  rm -rf "$STATE"
  if ((PENDING_COUNT > ${#failed[@]})) || ((PENDING_COUNT == 0)); then
    echo "regenerating the report ($REPORT)"
    run_report || echo "reproduce.sh: the report failed (see above)" >&2
  fi
  if ((${#failed[@]} > 0)); then
    echo "reproduce.sh: ${#failed[@]} run(s) failed: ${failed[*]}" >&2
    exit 1
  fi
}

case "$MODE" in
  list) list_matrix ;;
  report) run_report ;;
  run) if [[ "$DRY_RUN" == 1 ]]; then dry_run; else run_matrix; fi ;;
esac
