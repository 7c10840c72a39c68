#!/usr/bin/env python3
"""Writes the reproduction report from the run results alone.

    reproduce_report.py --results results --out docs/reproduction.md \
        --figures docs/figures [--expected id,id,... | --expected-file FILE]

Reads every <results>/*.json (one dylora-train run each, format
"dylora-run/1" plus the "id" and "group" that scripts/reproduce.sh adds) and
writes a Markdown report (the defaults sweep, Tables 1/2, 5, the ablations
of Tables 4 and 7, the long SST-2 run, computed readings, missing runs) and
one SVG figure per task. Deterministic: the same inputs give byte-identical outputs (no
timestamps, sorted inputs, fixed number formats). The block between
<!-- notes --> and <!-- /notes --> of an existing report is kept.

Python 3.11 standard library only.
"""
import argparse
import html
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

TASK_ORDER = ["sst2", "mrpc", "rte", "stsb", "cola"]
TASK_NAMES = {"sst2": "SST-2", "mrpc": "MRPC", "rte": "RTE", "stsb": "STS-B",
              "cola": "CoLA", "qnli": "QNLI", "mnli": "MNLI", "qqp": "QQP"}
MAIN_GROUPS = ("table1", "table2")
KIND_ORDER = ("sweep", "main", "ablation", "long")  # the budget table's row order
SEARCH_RANKS = (1, 2, 4, 8)  # the LoRA search of Table 5, as run here
MAX_RANK = 64  # the paper's largest; a result beyond it is not believed
# Two values closer than this (in points, i.e. metric x 100) are "within
# noise" when one of them comes from a single seed (no std to compare with).
SINGLE_SEED_TOLERANCE = 0.5
# The long SST-2 run's targets (accuracy x 100), per rank.
LONG_TARGETS = {"sst2": {8: 89.0, 1: 88.0}}
NOTES_BEGIN, NOTES_END = "<!-- notes -->", "<!-- /notes -->"
DEFAULT_NOTES = ("_A human's commentary goes here; this block is kept when "
                 "the report is regenerated._")
# The defaults sweep: runs <task>-sweep-<variant>-s<seed>, each compared with
# <task>-sweep-base-s<seed> on these settings (in this order), then on every
# hyper field (HYPER_ORDER first, any other in name order).
SWEEP_BASE = "base"
SWEEP_SETTINGS = ("targets", "head", "update_mode", "rank_distribution", "alpha",
                  "r_min", "r_max", "method")
HYPER_ORDER = ("lr", "head_lr", "up_lr_ratio", "rank_lr_exponent", "batch_size", "epochs", "max_steps", "warmup_ratio",
               "weight_decay", "max_grad_norm", "grad_accumulation", "max_seq_len",
               "hidden_dropout", "attention_dropout", "classifier_dropout")
SWEEP_FLAT_SPREAD = 1.0  # points: "every rank within a point of the best"
ROW_LABELS = {"dylora": "DyLoRA (one training, r 1..8)",
              "lora": "LoRA trained at that rank",
              "trunc": "LoRA r=8, truncated"}


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------
@dataclass
class Run:
    id: str
    group: str
    task: str
    method: str
    seed: int
    r_min: int
    r_max: int
    update_mode: str
    rank_distribution: str
    metric: str
    values: dict  # rank -> primary metric x 100
    train_seconds: float
    eval_seconds: float
    steps: int
    threads: int
    hyper: dict
    raw: dict


def infer_group(run_id):
    """For a result without "group" (copied by hand): read it off the id."""
    if "-ablation-" in run_id:
        return "ablation"
    if "-long-" in run_id:
        return "long"
    if "-sweep-" in run_id:
        return "sweep"
    return "table2"


def field_of(raw, key, kind, default=None):
    """raw[key] checked against `kind` (a result file is read as untrusted:
    a wrong type makes the file unreadable, not the report crash)."""
    value = raw.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{key!r} is {value!r}, not {kind.__name__}")
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{key!r} is {value!r}")
    return value


def rank_values(raw, metric):
    """rank -> primary metric x 100, from the "ranks" list."""
    values = {}
    for entry in field_of(raw, "ranks", list):
        if not isinstance(entry, dict):
            raise ValueError(f"a rank entry is {entry!r}")
        metrics = field_of(entry, "metrics", dict)
        rank = field_of(entry, "rank", int)
        if not 0 <= rank <= MAX_RANK:
            raise ValueError(f"rank {rank} is outside 0..{MAX_RANK}")
        if metric in metrics:
            values[rank] = 100.0 * field_of(metrics, metric, float)
    return values


def parse_run(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("format") != "dylora-run/1":
        raise ValueError("not a dylora-run/1 result")
    run_id = field_of(raw, "id", str, path.stem)
    metric = field_of(raw, "metric", str)
    return Run(id=run_id, group=field_of(raw, "group", str, infer_group(run_id)),
               task=field_of(raw, "task", str), method=field_of(raw, "method", str),
               seed=field_of(raw, "seed", int), r_min=field_of(raw, "r_min", int),
               r_max=field_of(raw, "r_max", int),
               update_mode=field_of(raw, "update_mode", str, "frozen"),
               rank_distribution=field_of(raw, "rank_distribution", str, "uniform"),
               metric=metric, values=rank_values(raw, metric),
               train_seconds=field_of(raw, "train_seconds", float, 0.0),
               eval_seconds=field_of(raw, "eval_seconds", float, 0.0),
               steps=field_of(raw, "steps", int, 0), threads=field_of(raw, "threads", int, 0),
               hyper=field_of(raw, "hyper", dict, {}), raw=raw)


def load_runs(results_dir):
    """All readable runs, sorted by id, and (file, reason) for the rest."""
    runs, problems = [], []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            runs.append(parse_run(path))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            problems.append((path.name, f"{type(error).__name__}: {error}"))
    runs.sort(key=lambda r: r.id)
    return runs, problems


def task_key(task):
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


# ---------------------------------------------------------------------------
# Statistics and formatting
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # None for a single seed
    n: int


def stat(values):
    values = list(values)
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stat(statistics.fmean(values), std, len(values))


def seed_stat(by_seed):
    """Stat of a {seed: value} dict, in seed order."""
    return stat(by_seed[s] for s in sorted(by_seed)) if by_seed else None


def fmt(x, sign=False):
    x = 0.0 if round(x, 1) == 0 else x  # no "-0.0"
    return f"{x:+.1f}" if sign else f"{x:.1f}"


def fmt_cell(s):
    if s is None:
        return ""
    if s.n == 1:
        return fmt(s.mean)
    return f"{fmt(s.mean)} ± {fmt(s.std)} ({s.n})"


def fmt_seconds(seconds):
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s // 60 % 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def fmt_value(v):
    if isinstance(v, bool):  # before float/int: bool is an int in Python
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    return str(v)


def distinct(values):
    """The distinct values, joined: "32" or "16 / 32"."""
    seen = sorted({fmt_value(v) for v in values if v is not None})
    return " / ".join(seen) if seen else "?"


def join_ranks(ranks):
    ranks = [str(r) for r in ranks]
    if len(ranks) <= 1:
        return "r=" + "".join(ranks)
    return "r=" + ", ".join(ranks[:-1]) + " and " + ranks[-1]


def tolerance(a, b):
    """How far apart two cells may be and still be "within noise"."""
    if a.n > 1 and b.n > 1:
        return max(a.std, b.std)
    return SINGLE_SEED_TOLERANCE


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def seeds_text(seeds):
    seeds = sorted(set(seeds))
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def metric_label(metric):
    return f"{metric} ×100"


# ---------------------------------------------------------------------------
# The per-task view of the main runs (Tables 1, 2 and 5)
# ---------------------------------------------------------------------------
@dataclass
class TaskRuns:
    task: str
    metric: str
    runs: list
    # row ("dylora", "lora", "trunc") -> rank -> seed -> value
    rows: dict = field(default_factory=dict)

    def cell(self, row, rank):
        return seed_stat(self.rows.get(row, {}).get(rank, {}))

    def seeds(self):
        return sorted({r.seed for r in self.runs})


def main_row(run):
    if run.method == "dylora":
        return "dylora"
    if run.method == "lora":
        return "lora" if run.r_min == run.r_max else "trunc"
    return None


def build_task(task, runs):
    t = TaskRuns(task, runs[0].metric, runs, {"dylora": {}, "lora": {}, "trunc": {}})
    for run in runs:
        row = main_row(run)
        ranks = run.values if row != "lora" else {run.r_max: run.values.get(run.r_max)}
        for rank, value in ranks.items():
            if value is not None:
                t.rows[row].setdefault(rank, {})[run.seed] = value
    # One training serves as LoRA r=8 too: its top rank is a LoRA-per-rank
    # entry unless that rank was also trained on its own.
    for run in runs:
        if main_row(run) == "trunc" and run.r_max in run.values:
            t.rows["lora"].setdefault(run.r_max, {}).setdefault(run.seed,
                                                                run.values[run.r_max])
    return t


def split_runs(runs):
    """(tasks, sweep runs per task, ablation runs, long runs, unused (id, why))
    from all runs."""
    by_task, sweep_runs, ablations, longs, unused = {}, {}, [], [], []
    for run in runs:
        if run.group == "ablation":
            ablations.append(run)
        elif run.group == "long":
            longs.append(run)
        elif run.group == "sweep":
            sweep_runs.setdefault(run.task, []).append(run)
        elif run.group in MAIN_GROUPS and main_row(run):
            by_task.setdefault(run.task, []).append(run)
        else:
            unused.append((run.id, f"group {run.group}, method {run.method}"))
    tasks = {}
    for task in sorted(by_task, key=task_key):
        # One metric per task table: the first run's (they all agree unless
        # a result came from another version of the trainer).
        metric = by_task[task][0].metric
        unused += [(r.id, f"metric {r.metric}, not {metric}")
                   for r in by_task[task] if r.metric != metric]
        tasks[task] = build_task(task, [r for r in by_task[task] if r.metric == metric])
    sweeps = {}
    for task in sorted(sweep_runs, key=task_key):
        # One metric per sweep table too: the base run's (else the first's).
        runs_of = sweep_runs[task]
        bases = [r for r in runs_of if sweep_variant(r) == SWEEP_BASE]
        metric = (bases or runs_of)[0].metric
        unused += [(r.id, f"metric {r.metric}, not {metric}")
                   for r in runs_of if r.metric != metric]
        sweeps[task] = [r for r in runs_of if r.metric == metric]
    return tasks, sweeps, ablations, longs, unused


def rank_columns(runs):
    top = max([8] + [r for run in runs for r in run.values])
    return list(range(1, top + 1))


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------
def budget_text(hyper):
    """--max-steps overrides --epochs in dylora-train."""
    max_steps = hyper.get("max_steps")
    if isinstance(max_steps, (int, float)) and max_steps > 0:
        return f"max {fmt_value(max_steps)} steps"
    return f"{fmt_value(hyper.get('epochs', '?'))} epochs"


def section_produced(runs):
    lines = ["## How it was produced", "",
             "`scripts/reproduce.sh` trained every run below with `dylora-train` "
             "(all-MiniLM-L6-v2, frozen backbone, GLUE dev sets) and wrote one "
             "`results/<id>.json` per run; `scripts/reproduce.sh --report` "
             "(`python3 scripts/reproduce_report.py --results results --out "
             "docs/reproduction.md --figures docs/figures`) regenerated this page "
             "from those files alone.", ""]
    if not runs:
        return lines + ["No results yet.", ""]
    total = sum(r.train_seconds + r.eval_seconds for r in runs)
    threads = {}
    for r in runs:
        threads[r.threads] = threads.get(r.threads, 0) + 1
    lines.append(f"- {len(runs)} runs, {fmt_seconds(total)} of training and "
                 "evaluation in all (as recorded by the runs).")
    lines.append("- Intra-op threads per run: " + ", ".join(
        f"{t} ({n} runs)" for t, n in sorted(threads.items())) + ".")
    settings = [("alpha", [r.raw.get("alpha") for r in runs]),
                ("targets", [r.raw.get("targets") for r in runs]),
                ("head", [r.raw.get("head") for r in runs])]
    settings += [(key.replace("_", " "), [r.hyper.get(key) for r in runs])
                 for key in ("warmup_ratio", "weight_decay", "max_grad_norm",
                             "grad_accumulation", "hidden_dropout",
                             "attention_dropout", "classifier_dropout")]
    lines.append("- Common settings: " + "; ".join(
        f"{name} {distinct(values)}" for name, values in settings
        if any(v is not None for v in values)) + ".")
    lines += ["", "Budgets per task, from the runs' own `hyper` fields:", ""]
    rows = []
    groups = {}
    for r in runs:
        kind = "main" if r.group in MAIN_GROUPS else r.group
        order = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        groups.setdefault((task_key(r.task), order, kind), []).append(r)
    for (_, _, kind), rs in sorted(groups.items()):
        h = [r.hyper for r in rs]
        rows.append([TASK_NAMES.get(rs[0].task, rs[0].task), kind, str(len(rs)),
                     ", ".join(map(str, sorted({r.seed for r in rs}))),
                     distinct(budget_text(x) for x in h),
                     distinct(r.steps for r in rs),
                     distinct(x.get("batch_size") for x in h),
                     distinct(x.get("lr") for x in h),
                     distinct(x.get("head_lr") for x in h),
                     distinct(x.get("max_seq_len") for x in h),
                     distinct(r.raw.get("train_examples") for r in rs) + " / "
                     + distinct(r.raw.get("dev_examples") for r in rs)])
    lines += md_table(["task", "group", "runs", "seeds", "budget", "steps", "batch",
                       "lr", "head lr", "max len", "train / dev examples"], rows)
    return lines + [""]


def sweep_variant(run):
    """The id's part between "<task>-sweep-" and "-s<seed>" (the whole id
    when it is not of that form)."""
    m = re.fullmatch(re.escape(run.task) + r"-sweep-(.+)-s" + re.escape(str(run.seed)),
                     run.id)
    return m.group(1) if m else run.id


_UNSET = object()


def sweep_settings(run):
    """name -> value of what a sweep run may vary, in the report's order."""
    values = {"targets": run.raw.get("targets", _UNSET),
              "head": run.raw.get("head", _UNSET),
              "update_mode": run.update_mode,
              "rank_distribution": run.rank_distribution,
              "alpha": run.raw.get("alpha", _UNSET),
              "r_min": run.r_min, "r_max": run.r_max, "method": run.method}
    for key in HYPER_ORDER:
        values[key] = run.hyper.get(key, _UNSET)
    # Runs from before --up-lr-ratio trained both factors at one rate.
    if values["up_lr_ratio"] is _UNSET:
        values["up_lr_ratio"] = 1.0
    # ... and before --rank-lr-exponent at one rate for every rank.
    if values["rank_lr_exponent"] is _UNSET:
        values["rank_lr_exponent"] = 0.0
    for key in sorted(set(run.hyper) - set(HYPER_ORDER)):
        values[key] = run.hyper[key]
    return values


def settings_diff(run, base):
    """What `run` sets otherwise than `base`: "lr 0.005, head_lr 0.005"."""
    mine, theirs = sweep_settings(run), sweep_settings(base)
    keys = [*SWEEP_SETTINGS, *HYPER_ORDER]
    keys += sorted((set(mine) | set(theirs)) - set(keys))
    parts = []
    for key in keys:
        a, b = mine.get(key, _UNSET), theirs.get(key, _UNSET)
        if (a is _UNSET) == (b is _UNSET) and (a is _UNSET or a == b):
            continue
        parts.append(f"{key} {'(not recorded)' if a is _UNSET else fmt_value(a)}")
    return ", ".join(parts) if parts else "(same settings as base)"


@dataclass
class SweepRow:
    """One variant of a sweep task, over its seeds."""
    name: str
    runs: dict = field(default_factory=dict)  # seed -> Run

    def cell(self, rank):
        return seed_stat({s: r.values[rank] for s, r in self.runs.items()
                          if rank in r.values})

    def mins(self):  # seed -> the run's worst rank's value
        return {s: min(r.values.values()) for s, r in self.runs.items() if r.values}

    def spreads(self):  # seed -> its best rank's value minus its worst's, in points
        return {s: max(r.values.values()) - min(r.values.values())
                for s, r in self.runs.items() if r.values}

    def diff_text(self, bases):
        if self.name == SWEEP_BASE:
            return "—"
        texts = [settings_diff(r, bases[s]) if s in bases else "(no base run)"
                 for s, r in sorted(self.runs.items())]
        return " / ".join(dict.fromkeys(texts)).replace("|", "\\|")

    def train_time(self):
        seconds = [r.train_seconds for _, r in sorted(self.runs.items())]
        return fmt_seconds(statistics.fmean(seconds)) if any(seconds) else ""


def sweep_rows(runs, expected):
    """The variants of one sweep task: base first, then in the order of the
    expected matrix, then the rest by id."""
    rows = {}
    for run in runs:
        rows.setdefault(sweep_variant(run), SweepRow(sweep_variant(run))).runs[run.seed] = run
    where = {run_id: n for n, run_id in enumerate(expected or [])}

    def order(row):
        ids = sorted(r.id for r in row.runs.values())
        at = [where[i] for i in ids if i in where]
        return (row.name != SWEEP_BASE, not at, min(at, default=0), ids[0])

    return sorted(rows.values(), key=order)


def section_sweep(sweeps, expected):
    lines = ["## Defaults sweep", "",
             "One DyLoRA training per setting, each changing the base run "
             "(`<task>-sweep-base-s<seed>`) in one respect; README's recommended "
             "defaults are chosen from these tables (README links here). The sweep "
             "is scored on the dev set only, the set the other tables report on: "
             "there is no held-out split behind the choice, so the chosen setting's "
             "numbers are optimistic for it. Cells are the primary metric ×100 "
             "(`mean ± std (n seeds)`, or the plain value for one seed); “min” is a "
             "training's worst rank, “spread” its best rank minus its worst (points), "
             "both per training and then over seeds; “differs from base” is read "
             "off the runs' recorded settings.", ""]
    if not sweeps:
        return lines + ["No sweep runs yet.", ""]
    for task, runs in sweeps.items():
        rows = sweep_rows(runs, expected)
        bases = next((row.runs for row in rows if row.name == SWEEP_BASE), {})
        ranks = sorted({k for r in runs for k in range(r.r_min, r.r_max + 1)}
                       | {k for r in runs for k in r.values})
        lines += [f"### {TASK_NAMES.get(task, task)} ({metric_label(runs[0].metric)}; "
                  f"{seeds_text(r.seed for r in runs)}; "
                  f"{distinct(budget_text(r.hyper) for r in runs)})", ""]
        table = [[row.name, row.diff_text(bases)]
                 + [fmt_cell(row.cell(k)) for k in ranks]
                 + [fmt_cell(seed_stat(row.mins())), fmt_cell(seed_stat(row.spreads())),
                    row.train_time()] for row in rows]
        lines += md_table(["variant", "differs from base", *[f"r={k}" for k in ranks],
                           "min", "spread", "train time"], table)
        lines += [""] + sweep_sentences(rows, bases) + [""]
    return lines


def sweep_sentences(rows, bases):
    scored = [(row, seed_stat(row.mins()), seed_stat(row.spreads()))
              for row in rows if row.mins()]
    if not scored:
        return ["No sweep run has a metric yet."]
    # As shown: values equal to one decimal tie.
    top = max(float(fmt(m.mean)) for _, m, _ in scored)
    leaders = [(row, m, s) for row, m, s in scored if float(fmt(m.mean)) == top]
    names = " and ".join(f"**{row.name}**" for row, _, _ in leaders)
    if len(leaders) == 1:
        lines = [f"Highest worst-rank value (min): {names}, {fmt(top)}, with a spread "
                 f"of {fmt(leaders[0][2].mean)} points."]
    else:
        lines = [f"Highest worst-rank value (min): {names} tie at {fmt(top)}, with "
                 "spreads of " + " and ".join(fmt(s.mean) for _, _, s in leaders)
                 + " points."]
    flat = [row.name for row, _, s in scored if float(fmt(s.mean)) <= SWEEP_FLAT_SPREAD]
    lines.append(f"Spread ≤ {fmt(SWEEP_FLAT_SPREAD)} point (every rank within a point "
                 f"of the best): {', '.join(flat)}." if flat else
                 f"No variant has a spread ≤ {fmt(SWEEP_FLAT_SPREAD)} point.")
    base = next((row for row in rows if row.name == SWEEP_BASE), None)
    if base is None or not base.mins():
        return lines + ["No base run yet: no change can be measured against it."]
    lines += ["", "Each change against the base (same seeds; “within noise” as in "
              "“An honest reading” below):", ""]
    for row in rows:
        if row is base or not row.mins():
            continue
        common = sorted(set(row.mins()) & set(base.mins()))
        if not common:
            lines.append(f"- {row.name}: no base run of the same seed to compare with.")
            continue

        def over(values):
            return seed_stat({s: values[s] for s in common})

        diff, verdict = compare(over(row.mins()), over(base.mins()))
        lines.append(f"- {row.name}: min {fmt(diff, True)} points vs base "
                     f"({fmt(over(row.mins()).mean)} vs {fmt(over(base.mins()).mean)}, "
                     f"{verdict}); spread {fmt(over(row.spreads()).mean)} vs "
                     f"{fmt(over(base.spreads()).mean)} points.")
    return lines


def task_table(t, ranks):
    rows = []
    for row in ("dylora", "lora", "trunc"):
        if t.rows[row]:
            rows.append([ROW_LABELS[row]] + [fmt_cell(t.cell(row, r)) for r in ranks])
    return md_table(["", *[f"r={r}" for r in ranks]], rows)


def section_tasks(tasks, ranks, figure_links):
    lines = ["## Tables 1 and 2: every rank, per task", "",
             "Dev-set primary metric ×100. Cells are `mean ± std (n seeds)` over "
             "seeds, or the plain value for one seed; blank where not run. "
             "“LoRA trained at that rank” at r=8 is the r=8 evaluation of the "
             "LoRA r=8 run (trained once).", ""]
    if not tasks:
        return lines + ["No Table 1/2 runs yet.", ""]
    for t in tasks.values():
        lines += [f"### {TASK_NAMES.get(t.task, t.task)} ({metric_label(t.metric)}; "
                  f"{seeds_text(t.seeds())})", ""]
        lines += task_table(t, ranks) + [""]
        if t.task in figure_links:
            lines += [f"![{TASK_NAMES.get(t.task, t.task)}: {t.metric} by rank]"
                      f"({figure_links[t.task]})", ""]
    lines += ["### Best LoRA rank per task (Table 1)", ""]
    rows, best = [], {}
    for t in tasks.values():
        cells = {r: t.cell("lora", r) for r in SEARCH_RANKS}
        done = {r: c for r, c in cells.items() if c}
        if done:
            # Ties go to the smaller rank: it is the cheaper adapter.
            best[t.task] = max(done, key=lambda r: (done[r].mean, -r))
        rows.append([TASK_NAMES.get(t.task, t.task), t.metric]
                    + [fmt_cell(cells[r]) for r in SEARCH_RANKS]
                    + [f"r={best[t.task]}" if t.task in best else ""])
    lines += md_table(["task", "metric", *[f"r={r}" for r in SEARCH_RANKS], "best"], rows)
    lines += ["", best_rank_sentence(best), ""]
    return lines


def best_rank_sentence(best):
    if not best:
        return "No LoRA-per-rank runs yet."
    ranks = sorted(set(best.values()))
    names = ", ".join(f"{TASK_NAMES.get(t, t)} r={r}" for t, r in best.items())
    if len(best) < 2:
        return f"Best LoRA rank: {names} (one task only: nothing to compare yet)."
    if len(ranks) > 1:
        return (f"The best LoRA rank differs per task ({names}), as Table 1 of the "
                "paper finds: a rank search per task would be needed.")
    return (f"The best LoRA rank is r={ranks[0]} on every task here ({names}): "
            "Table 1's per-task difference does not show on these runs.")


def search_cost(t, seed):
    """(LoRA search seconds, DyLoRA seconds, LoRA r=8 seconds), or the
    list of what is missing for this seed."""
    runs = [r for r in t.runs if r.seed == seed]
    dylora = [r for r in runs if main_row(r) == "dylora"]
    lora = {}
    for r in runs:
        if main_row(r) == "lora" or (main_row(r) == "trunc" and r.r_max not in lora):
            lora[r.r_max] = r
    missing = [f"LoRA r={k}" for k in SEARCH_RANKS if k not in lora]
    if not dylora:
        missing.insert(0, "DyLoRA")
    missing += [f"a training time for {r.id}" for r in [*dylora[:1], *lora.values()]
                if r.train_seconds <= 0]
    if missing:
        return missing
    search = sum(lora[k].train_seconds for k in SEARCH_RANKS)
    return search, dylora[0].train_seconds, lora[SEARCH_RANKS[-1]].train_seconds


def section_cost(tasks):
    ranks = ",".join(str(r) for r in SEARCH_RANKS)
    lines = ["## Table 5: the cost of the LoRA rank search", "",
             f"Training seconds (`train_seconds`, evaluation excluded) of the LoRA "
             f"search over ranks {{{ranks}}} (one training per rank) against one "
             "DyLoRA training, per seed; the table shows means over the seeds that "
             "have every run, and the mean of the per-seed ratios. The paper finds "
             f"about 7× for 7 ranks; with {len(SEARCH_RANKS)} ranks of equal cost "
             f"the ratio would be about {len(SEARCH_RANKS)}×. The last column is "
             "Appendix A's point: one DyLoRA training costs about one LoRA "
             "training (paper, MRPC: 408 s vs 400 s).", ""]
    rows, notes = [], []
    for t in tasks.values():
        costs = {}
        for seed in t.seeds():
            cost = search_cost(t, seed)
            if isinstance(cost, list):
                notes.append(f"- {TASK_NAMES.get(t.task, t.task)} seed {seed}: "
                             f"no {', '.join(cost)} yet.")
            else:
                costs[seed] = cost
        if not costs:
            continue
        c = [costs[s] for s in sorted(costs)]
        rows.append([TASK_NAMES.get(t.task, t.task),
                     ", ".join(str(s) for s in sorted(costs)),
                     f"{statistics.fmean(x[0] for x in c):.0f}",
                     f"{statistics.fmean(x[1] for x in c):.0f}",
                     f"{statistics.fmean(x[0] / x[1] for x in c):.2f}×",
                     f"{statistics.fmean(x[1] / x[2] for x in c):.2f}×"])
    if rows:
        lines += md_table(["task", "seeds", f"LoRA search r={ranks} (s)",
                           "DyLoRA (s)", "search / DyLoRA", "DyLoRA / LoRA r=8"], rows)
    else:
        lines.append("No task has a complete LoRA search and DyLoRA run yet.")
    if notes:
        lines += ["", "Not in the table:", ""] + notes
    return lines + [""]


def variant_label(run):
    if run.method == "nested-dropout":
        return "nested dropout (sum loss over ranks)"
    update = "full update" if run.update_mode == "full" else "frozen"
    dist = run.rank_distribution
    if dist.startswith("geometric:"):
        dist = f"geometric p_B (p={dist.split(':', 1)[1]})"
    else:
        dist = f"{dist} p_B"
    return f"{run.method if run.method != 'dylora' else 'DyLoRA'}, {update}, {dist}"


def variant_order(run):
    if run.method == "nested-dropout":
        return 2
    if run.rank_distribution.startswith("geometric"):
        return 1
    # DyLoRA with uniform p_B in the other update mode than the main run's.
    return 0 if run.method == "dylora" else 3


PAPER_ABLATION = {0: "Table 4 compares frozen and full update",
                  1: "Table 4: geometric p_B favours the lowest ranks",
                  2: "Table 7: the per-rank loss beats the sum loss, at a fraction "
                     "of its cost"}


@dataclass
class Variant:
    label: str
    order: int
    values: dict = field(default_factory=dict)   # rank -> seed -> value
    seconds: dict = field(default_factory=dict)  # seed -> train seconds
    hyper: list = field(default_factory=list)

    def add(self, run):
        for rank, v in run.values.items():
            self.values.setdefault(rank, {})[run.seed] = v
        self.seconds[run.seed] = run.train_seconds
        self.hyper.append(json.dumps(run.hyper, sort_keys=True))

    def cell(self, rank):
        return seed_stat(self.values.get(rank, {}))


def section_ablations(ablations, tasks, ranks):
    lines = ["## Ablations (Tables 4 and 7)", ""]
    if not ablations:
        return lines + ["No ablation runs yet.", ""]
    for task in sorted({r.task for r in ablations}, key=task_key):
        runs = [r for r in ablations if r.task == task]
        seeds = sorted({r.seed for r in runs})
        main_runs = [r for r in (tasks[task].runs if task in tasks else [])
                     if main_row(r) == "dylora"]
        ref = Variant(f"{variant_label(main_runs[0]) if main_runs else 'DyLoRA'}"
                      " (the main run)", -1)
        for r in main_runs:
            if r.seed in seeds:
                ref.add(r)
        variants = {}
        for r in sorted(runs, key=lambda r: (variant_order(r), r.id)):
            variants.setdefault(variant_label(r), Variant(variant_label(r),
                                                          variant_order(r))).add(r)
        metric = runs[0].metric
        lines += [f"### {TASK_NAMES.get(task, task)} ({metric_label(metric)}; "
                  f"{seeds_text(seeds)})", ""]
        rows = []
        for v in [ref, *variants.values()]:
            secs = stat(v.seconds[s] for s in sorted(v.seconds))
            rows.append([v.label] + [fmt_cell(v.cell(r)) for r in ranks]
                        + [f"{secs.mean:.0f}" if secs else ""])
        lines += md_table(["", *[f"r={r}" for r in ranks], "train s"], rows) + [""]
        lines += [ablation_sentence(ref, v, ranks) for v in variants.values()] + [""]
    return lines


def ablation_sentence(ref, v, ranks):
    both = [r for r in ranks if ref.cell(r) and v.cell(r)]
    if not both:
        return f"- {v.label}: no main DyLoRA run to compare with yet."
    diffs = {r: v.cell(r).mean - ref.cell(r).mean for r in both}
    lo, hi = both[0], both[-1]
    text = (f"- {v.label}: {fmt(diffs[lo], True)} points at r={lo}, "
            f"{fmt(diffs[hi], True)} at r={hi}, "
            f"{fmt(statistics.fmean(diffs.values()), True)} on average over "
            f"{len(both)} ranks against the main run")
    common = sorted(set(ref.seconds) & set(v.seconds))
    if common and all(ref.seconds[s] > 0 for s in common):
        ratio = statistics.fmean(v.seconds[s] / ref.seconds[s] for s in common)
        text += f"; {ratio:.2f}× its training time"
    if set(v.hyper) != set(ref.hyper):
        text += " (note: the two budgets differ)"
    if v.order in PAPER_ABLATION:
        text += f". Paper, {PAPER_ABLATION[v.order]}"
    return text + "."


def section_long(longs, tasks, ranks):
    lines = ["## The long SST-2 run", ""]
    if not longs:
        return lines + ["No long run yet.", ""]
    for task in sorted({r.task for r in longs}, key=task_key):
        runs = [r for r in longs if r.task == task]
        long = Variant("DyLoRA, long run", -1)
        for r in runs:
            long.add(r)
        h = runs[0].hyper
        lines.append(f"### {TASK_NAMES.get(task, task)} ({metric_label(runs[0].metric)}; "
                     f"{budget_text(h)}, {distinct(r.steps for r in runs)} steps, "
                     f"max length {fmt_value(h.get('max_seq_len', '?'))}, "
                     f"{fmt_seconds(statistics.fmean(r.train_seconds for r in runs))} "
                     "of training)")
        lines.append("")
        rows = [[f"{long.label} ({update_mode_text(runs)}, "
                 f"{seeds_text(r.seed for r in runs)})"]
                + [fmt_cell(long.cell(r)) for r in ranks]]
        if task in tasks and tasks[task].rows["dylora"]:
            main = [r for r in tasks[task].runs if main_row(r) == "dylora"]
            rows.append([f"DyLoRA, main run ({update_mode_text(main)}, "
                         f"{distinct(r.steps for r in main)} steps)"]
                        + [fmt_cell(tasks[task].cell("dylora", r)) for r in ranks])
        targets = LONG_TARGETS.get(task, {})
        if targets:
            rows.append(["target"] + [f"≥ {fmt(targets[r])}" if r in targets else ""
                                      for r in ranks])
        lines += md_table(["", *[f"r={r}" for r in ranks]], rows) + [""]
        for rank in sorted(targets, reverse=True):
            lines.append(target_sentence(rank, long.cell(rank), targets[rank]))
        lines.append("")
    return lines


def update_mode_text(runs):
    """"frozen update" / "full update" (as the runs recorded it)."""
    return f"{distinct(r.update_mode for r in runs)} update"


def target_sentence(rank, cell, target):
    if cell is None:
        return f"- r={rank}: not evaluated (target ≥ {fmt(target)})."
    gap = cell.mean - target
    verdict = (f"met ({fmt(gap, True)} points)" if gap >= 0
               else f"missed by {fmt(-gap)} points")
    return f"- r={rank}: {fmt(cell.mean)} against the target ≥ {fmt(target)}: {verdict}."


def dylora_vs_lora(t):
    """The sentence comparing DyLoRA with LoRA trained at each rank."""
    within, below, above = [], [], []
    for rank in sorted(t.rows["lora"]):
        dy, lo = t.cell("dylora", rank), t.cell("lora", rank)
        if not dy or not lo:
            continue
        diff = dy.mean - lo.mean
        entry = (rank, diff, dy.mean, lo.mean)
        if abs(diff) <= tolerance(dy, lo):
            within.append(rank)
        else:
            (below if diff < 0 else above).append(entry)
    if not (within or below or above):
        return "no rank has both a DyLoRA and a LoRA-per-rank result yet"
    parts = []
    if within:
        parts.append(f"within noise at {join_ranks(within)}")
    for name, entries in (("below", below), ("above", above)):
        if entries:
            parts.append(f"{name} at " + ", ".join(
                f"r={r} by {fmt(abs(d))} points ({fmt(a)} vs {fmt(b)})"
                for r, d, a, b in entries))
    return "DyLoRA against LoRA trained at that rank: " + "; ".join(parts)


def truncation_sentence(t):
    """How LoRA trained at its top rank degrades when truncated, and how
    DyLoRA does at the lowest rank."""
    trunc = t.rows["trunc"]
    if not trunc:
        return "no truncated LoRA run yet"
    top, low = max(trunc), min(trunc)
    t_top, t_low = t.cell("trunc", top), t.cell("trunc", low)
    # The lowest rank from which on every rank stays within noise of the top.
    holds = top
    for rank in sorted(trunc, reverse=True):
        cell = t.cell("trunc", rank)
        if abs(cell.mean - t_top.mean) > tolerance(cell, t_top):
            break
        holds = rank
    drop = t_top.mean - t_low.mean
    text = (f"LoRA r={top} truncated goes from {fmt(t_top.mean)} at r={top} to "
            f"{fmt(t_low.mean)} at r={low} ({fmt(-drop, True)} points)")
    text += (f" and stays within noise of its r={top} value down to r={holds}"
             if holds < top else f" and is already off its r={top} value at r={top - 1}")
    dy_low = t.cell("dylora", low)
    if dy_low:
        text += (f"; DyLoRA at r={low} is {fmt(dy_low.mean)}, "
                 f"{fmt(dy_low.mean - t_low.mean, True)} points against it")
    return text


def section_reading(tasks, notes):
    lines = ["## An honest reading", "",
             "Computed from the tables above. “Within noise” means within one "
             "standard deviation (the larger of the two cells') when both cells "
             f"have several seeds, else within {fmt(SINGLE_SEED_TOLERANCE)} points.",
             ""]
    for t in tasks.values():
        n = len(t.seeds())
        trunc = truncation_sentence(t)
        lines.append(f"- **{TASK_NAMES.get(t.task, t.task)}** ({t.metric}, "
                     f"{n} seed{'s' if n != 1 else ''}): {dylora_vs_lora(t)}. "
                     f"{trunc[0].upper()}{trunc[1:]}.")
    if not tasks:
        lines.append("Nothing to read yet.")
    lines += ["", "### Summary per task", ""]
    rows, verdicts = [], {}
    for t in tasks.values():
        low, top = min(t.rows["trunc"], default=1), max(t.rows["trunc"], default=8)
        low_claim = compare(t.cell("dylora", low), t.cell("trunc", low))
        top_claim = compare(t.cell("dylora", top), t.cell("lora", top))
        rows.append([TASK_NAMES.get(t.task, t.task), claim_text(low_claim),
                     claim_text(top_claim)])
        if low_claim and top_claim:
            verdicts[t.task] = low_claim[1] == "above" and top_claim[1] != "below"
    lines += md_table(["task", "DyLoRA − truncated LoRA at its lowest rank",
                       "DyLoRA − LoRA at r=8"], rows)
    lines += ["", "Table 2's claim holds where the first column is above (DyLoRA "
              "keeps its accuracy where truncated LoRA loses it) and the second is "
              "within noise or above (competitive with LoRA at r=8). "
              + claim_sentence(verdicts),
              "", "### Notes", "", NOTES_BEGIN, notes, NOTES_END, ""]
    return lines


def claim_sentence(verdicts):
    if not verdicts:
        return "No task has the runs to check it yet."
    held = [TASK_NAMES.get(t, t) for t, ok in verdicts.items() if ok]
    failed = [TASK_NAMES.get(t, t) for t, ok in verdicts.items() if not ok]
    text = f"On these runs it holds on {len(held)} of {len(verdicts)} tasks"
    text += f" ({', '.join(held)})" if held else ""
    text += f"; not on {', '.join(failed)}" if failed else ""
    return text + "."


def compare(a, b):
    """(a - b, "within noise" | "above" | "below"), or None when one is missing."""
    if not a or not b:
        return None
    diff = a.mean - b.mean
    verdict = ("within noise" if abs(diff) <= tolerance(a, b)
               else "above" if diff > 0 else "below")
    return diff, verdict


def claim_text(claim):
    return "not run yet" if claim is None else f"{fmt(claim[0], True)} ({claim[1]})"


def section_missing(expected, runs, problems, unused):
    lines = ["## Missing runs", ""]
    have = {r.id for r in runs}
    if expected is None:
        lines.append("No expected matrix was given (`scripts/reproduce.sh --report` "
                     "passes it); the tables above show what exists.")
    else:
        missing = [i for i in expected if i not in have]
        if missing:
            lines.append(f"{len(missing)} of {len(expected)} runs of the matrix "
                         "have no result yet:")
            lines.append("")
            by_task = {}
            for run_id in missing:
                by_task.setdefault(run_id.split("-", 1)[0], []).append(run_id)
            for task, ids in sorted(by_task.items(), key=lambda kv: task_key(kv[0])):
                lines.append(f"- {TASK_NAMES.get(task, task)}: "
                             + ", ".join(f"`{i}`" for i in ids))
        else:
            lines.append(f"All {len(expected)} runs of the matrix have results.")
        extra = sorted(have - set(expected))
        if extra:
            lines += ["", "Results outside the matrix (used where they fit): "
                      + ", ".join(f"`{i}`" for i in extra)]
    if problems:
        lines += ["", "Unreadable result files:", ""]
        lines += [f"- `{name}`: {why}" for name, why in problems]
    if unused:
        lines += ["", "Results in no table:", ""]
        lines += [f"- `{run_id}`: {why}" for run_id, why in unused]
    return lines + [""]


# ---------------------------------------------------------------------------
# SVG
# ---------------------------------------------------------------------------
SERIES_STYLE = {  # row -> (legend, colour, marker, dashed line)
    "dylora": ("DyLoRA", "#1f77b4", "circle", False),
    "lora": ("LoRA trained at that rank", "#d62728", "square", True),
    "trunc": ("LoRA r=8 truncated", "#2ca02c", "triangle", False),
}
WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 64, 230, 44, 52  # margins: the legend sits right


def nice_ticks(lo, hi, count=6):
    """Round tick values covering [lo, hi]."""
    raw = (hi - lo) / (count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks = []
    while not ticks or ticks[-1] < hi - 1e-9:
        ticks.append(round(first + len(ticks) * step, 6))
    return ticks


def marker(shape, x, y, colour):
    if shape == "square":
        return (f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" '
                f'fill="{colour}"/>')
    if shape == "triangle":
        return (f'<polygon points="{x:.1f},{y - 5:.1f} {x - 5:.1f},{y + 4:.1f} '
                f'{x + 5:.1f},{y + 4:.1f}" fill="{colour}"/>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>'


def svg_figure(title, y_label, ranks, series):
    """series: [(row, [(rank, Stat)])]; returns the SVG text."""
    spans = [(s.mean - (s.std or 0), s.mean + (s.std or 0))
             for _, points in series for _, s in points]
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    pad = max((hi - lo) * 0.05, 0.5)
    ticks = nice_ticks(lo - pad, hi + pad)
    y0, y1 = ticks[0], ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step_x = plot_w / len(ranks)

    def px(rank, offset=0.0):
        return LEFT + (rank - ranks[0] + 0.5) * step_x + offset

    def py(value):
        return TOP + plot_h * (1 - (value - y0) / (y1 - y0))

    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
           f"<title>{html.escape(title)}</title>",
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{LEFT + plot_w / 2:.1f}" y="24" text-anchor="middle" '
           f'font-size="15">{html.escape(title)}</text>']
    out += svg_axes(ranks, ticks, y_label, px, py, plot_w, plot_h)
    for index, (row, points) in enumerate(series):
        # Series side by side at a rank, so that error bars do not overlap.
        offset = (index - (len(series) - 1) / 2) * 6
        out += svg_series(row, points, lambda r: px(r, offset), py)
    has_bars = any(s.std for _, points in series for _, s in points)
    out += svg_legend([row for row, _ in series], has_bars)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def svg_axes(ranks, ticks, y_label, px, py, plot_w, plot_h):
    bottom = TOP + plot_h
    out = ['<g class="ticks" font-size="11" fill="#333">']
    for rank in ranks:
        x = px(rank)
        out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" '
                   'stroke="#333"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{rank}</text>')
    for tick in ticks:
        y = py(tick)
        out.append(f'<line x1="{LEFT - 5}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    out.append("</g>")
    # The axes after the grid, so that the bottom grid line does not hide one.
    out += ['<g class="axes" stroke="#333" fill="none">',
            f'<line x1="{LEFT}" y1="{bottom}" x2="{LEFT + plot_w}" y2="{bottom}"/>',
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>', "</g>"]
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{bottom + 40}" '
               'text-anchor="middle">rank r</text>')
    mid = TOP + plot_h / 2
    out.append(f'<text x="16" y="{mid:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 16 {mid:.1f})">{html.escape(y_label)}</text>')
    return out


def svg_series(row, points, px, py):
    name, colour, shape, dashed = SERIES_STYLE[row]
    out = [f'<g class="series" data-series="{html.escape(name)}">']
    path = " ".join(f"{'M' if i == 0 else 'L'}{px(r):.1f},{py(s.mean):.1f}"
                    for i, (r, s) in enumerate(points))
    dash = ' stroke-dasharray="5,4"' if dashed else ""
    out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
    for rank, s in points:
        x = px(rank)
        if s.std:
            top, low = py(s.mean + s.std), py(s.mean - s.std)
            out.append(f'<path class="error-bar" d="M{x:.1f},{top:.1f} L{x:.1f},{low:.1f} '
                       f'M{x - 4:.1f},{top:.1f} L{x + 4:.1f},{top:.1f} '
                       f'M{x - 4:.1f},{low:.1f} L{x + 4:.1f},{low:.1f}" '
                       f'stroke="{colour}" stroke-width="1.2" fill="none"/>')
        out.append(marker(shape, x, py(s.mean), colour))
    out.append("</g>")
    return out


def svg_legend(rows, has_bars):
    x = WIDTH - RIGHT + 16
    out = ['<g class="legend">']
    for i, row in enumerate(rows):
        name, colour, shape, dashed = SERIES_STYLE[row]
        y = TOP + 12 + i * 22
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        out.append(f'<line x1="{x}" y1="{y}" x2="{x + 28}" y2="{y}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/>')
        out.append(marker(shape, x + 14, y, colour))
        out.append(f'<text x="{x + 36}" y="{y + 4}">{html.escape(name)}</text>')
    if has_bars:
        out.append(f'<text x="{x}" y="{TOP + 12 + len(rows) * 22 + 6}" font-size="10" '
                   'fill="#555">bars: ± std over seeds</text>')
    out.append("</g>")
    return out


def task_figure(t, ranks):
    series = []
    for row in ("dylora", "lora", "trunc"):
        points = [(r, t.cell(row, r)) for r in ranks if t.cell(row, r)]
        if points:
            series.append((row, points))
    if not series:
        return None
    title = f"{TASK_NAMES.get(t.task, t.task)}: {t.metric} by rank (dev set)"
    return svg_figure(title, metric_label(t.metric), ranks, series)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def read_notes(out_path):
    """The human's notes from an existing report, or the placeholder."""
    try:
        text = Path(out_path).read_text(encoding="utf-8")
    except OSError:
        return DEFAULT_NOTES
    begin, end = text.find(NOTES_BEGIN), text.find(NOTES_END)
    if begin < 0 or end < begin:
        return DEFAULT_NOTES
    return text[begin + len(NOTES_BEGIN):end].strip("\n")


def write_atomically(path, text):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def build_report(runs, problems, expected, notes, figure_links):
    tasks, sweeps, ablations, longs, unused = split_runs(runs)
    ranks = rank_columns(runs)
    lines = ["# Reproducing DyLoRA (arXiv 2210.07558) on all-MiniLM-L6-v2", "",
             "Generated by `scripts/reproduce_report.py` from `results/*.json`; "
             "edit only the notes block, the rest is rewritten.", ""]
    lines += section_produced(runs)
    lines += section_sweep(sweeps, expected)
    lines += section_tasks(tasks, ranks, figure_links)
    lines += section_cost(tasks)
    lines += section_ablations(ablations, tasks, ranks)
    lines += section_long(longs, tasks, ranks)
    lines += section_reading(tasks, notes)
    lines += section_missing(expected, runs, problems, unused)
    return "\n".join(lines).rstrip("\n") + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results", help="folder of run JSON files")
    parser.add_argument("--out", default="docs/reproduction.md", help="Markdown report")
    parser.add_argument("--figures", default="docs/figures", help="folder for the SVGs")
    parser.add_argument("--expected", help="comma-separated run ids of the matrix")
    parser.add_argument("--expected-file", help="run ids of the matrix, one a line")
    return parser.parse_args(argv)


def expected_ids(args):
    if args.expected is not None:
        return [i for i in args.expected.split(",") if i]
    if args.expected_file is not None:
        text = Path(args.expected_file).read_text(encoding="utf-8")
        return [line.strip() for line in text.splitlines() if line.strip()]
    return None


def main(argv=None):
    args = parse_args(argv)
    out, figures = Path(args.out), Path(args.figures)
    runs, problems = load_runs(args.results)
    tasks = split_runs(runs)[0]
    ranks = rank_columns(runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    links = {}
    for t in tasks.values():
        svg = task_figure(t, ranks)
        if svg:
            path = figures / f"{t.task}.svg"
            write_atomically(path, svg)
            links[t.task] = Path(os.path.relpath(path, out.parent)).as_posix()
    report = build_report(runs, problems, expected_ids(args),
                                read_notes(out), links)
    write_atomically(out, report)
    print(f"wrote {out} ({len(runs)} runs) and {len(links)} figure(s) in {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
