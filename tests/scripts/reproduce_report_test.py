#!/usr/bin/env python3
"""Tests of scripts/reproduce_report.py and scripts/reproduce.sh.

The report is generated from hand-made results (fixtures/: MRPC with seeds
1 and 2, complete; SST-2 with one seed, LoRA r=4 missing, the three
ablations, the long run and three runs of the defaults sweep: base, qv and
lr5e-3) and its numbers are checked against values computed here by hand. reproduce.sh is checked without a built trainer:
--list, --dry-run, --report, its error when the binary is missing, and
real runs with a small stand-in for dylora-train.

    python3 tests/scripts/reproduce_report_test.py   (from any directory)
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REPORT = ROOT / "scripts" / "reproduce_report.py"
SHELL = ROOT / "scripts" / "reproduce.sh"
FIXTURES = HERE / "fixtures"
SVG = "{http://www.w3.org/2000/svg}"


def section(text, title):
    """The Markdown from the heading `title` to the next heading of its level."""
    level = title.split(" ")[0]
    start = text.index(title + "\n")
    end = text.find("\n" + level + " ", start + len(title))
    return text[start:] if end < 0 else text[start:end]


def table_row(text, label):
    """The cells of the first table row whose first cell is `label`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{text}")


def fmt_cell(values):
    """mean ± std (n) x 100, as the report should write it, by hand."""
    values = [100 * v for v in values]
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return f"{mean:.1f} ± {std:.1f} ({n})"


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="reproduce-report-"))
        self.addCleanup(shutil.rmtree, self.tmp)
        self.results = self.tmp / "results"
        shutil.copytree(FIXTURES, self.results)
        self.out = self.tmp / "docs" / "reproduction.md"
        self.figures = self.tmp / "docs" / "figures"

    def report(self, *extra, out=None, figures=None):
        out, figures = out or self.out, figures or self.figures
        done = subprocess.run(
            [sys.executable, str(REPORT), "--results", str(self.results),
             "--out", str(out), "--figures", str(figures), *extra],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        return out.read_text(encoding="utf-8")

    def test_cells_are_mean_std_n_over_seeds(self):
        mrpc = section(self.report(), "### MRPC (accuracy ×100; seeds 1, 2)")
        dylora = table_row(mrpc, "DyLoRA (one training, r 1..8)")
        self.assertEqual(dylora[1], fmt_cell([0.80, 0.82]))  # 81.0 ± 1.4 (2)
        self.assertEqual(dylora[5], fmt_cell([0.83, 0.84]))
        lora = table_row(mrpc, "LoRA trained at that rank")
        self.assertEqual(lora[1], fmt_cell([0.79, 0.80]))
        self.assertEqual(lora[3], "")  # r=3: never trained on its own
        # r=8 of LoRA-per-rank is the truncated run's rank 8 (trained once).
        self.assertEqual(lora[8], fmt_cell([0.86, 0.86]))
        trunc = table_row(mrpc, "LoRA r=8, truncated")
        self.assertEqual(trunc[1], fmt_cell([0.70, 0.68]))

    def test_single_seed_cells_are_plain_values(self):
        sst2 = section(self.report(), "### SST-2 (accuracy ×100; seed 1)")
        self.assertEqual(table_row(sst2, "DyLoRA (one training, r 1..8)")[1], "85.0")
        lora = table_row(sst2, "LoRA trained at that rank")
        self.assertEqual(lora[1:5], ["85.2", "86.6", "", ""])  # r=4 not run yet

    def test_best_lora_rank_per_task(self):
        best = section(self.report(), "### Best LoRA rank per task (Table 1)")
        self.assertEqual(table_row(best, "MRPC")[-1], "r=8")
        self.assertIn("r=8 on every task here", best)

    def test_table5_ratio_is_the_mean_of_per_seed_ratios(self):
        cost = section(self.report(), "## Table 5: the cost of the LoRA rank search")
        row = table_row(cost, "MRPC")
        # Seed 1: (100 + 110 + 120 + 130) / 115 = 4.0; seed 2: 420 / 140 = 3.0.
        ratio = ((100 + 110 + 120 + 130) / 115 + (90 + 100 + 110 + 120) / 140) / 2
        self.assertEqual(row[4], f"{ratio:.2f}×")
        self.assertEqual(row[2:4], ["440", "128"])  # means of 460/420, 115/140
        dylora_vs_r8 = (115 / 130 + 140 / 120) / 2
        self.assertEqual(row[5], f"{dylora_vs_r8:.2f}×")
        self.assertIn("SST-2 seed 1: no LoRA r=4 yet.", cost)

    def test_ablations_and_long_run(self):
        text = self.report()
        ablations = section(text, "## Ablations (Tables 4 and 7)")
        self.assertEqual(table_row(ablations, "nested dropout (sum loss over ranks)")[-1],
                         "2560")
        self.assertIn("DyLoRA, frozen, geometric p_B (p=0.15): +1.2 points at r=1", ablations)
        self.assertIn("8.00× its training time", ablations)
        long = section(text, "## The long SST-2 run")
        self.assertIn("r=8: 88.6 against the target ≥ 89.0: missed by 0.4 points.", long)
        self.assertIn("r=1: 88.2 against the target ≥ 88.0: met (+0.2 points).", long)

    def test_honest_reading_is_computed(self):
        reading = section(self.report(), "## An honest reading")
        self.assertIn("**MRPC** (accuracy, 2 seeds): DyLoRA against LoRA trained at "
                      "that rank: below at r=2 by 1.5 points (81.0 vs 82.5)", reading)
        self.assertIn("above at r=1 by 1.5 points (81.0 vs 79.5)", reading)
        self.assertIn("LoRA r=8 truncated goes from 88.0 at r=8 to 76.0 at r=1 "
                      "(-12.0 points)", reading)
        self.assertEqual(table_row(reading, "MRPC")[1], "+12.0 (above)")
        self.assertEqual(table_row(reading, "SST-2")[2], "-1.0 (below)")  # 87.0 vs 88.0
        self.assertIn("**SST-2** (accuracy, 1 seed): DyLoRA against LoRA trained at "
                      "that rank: within noise at r=1;", reading)
        self.assertIn("On these runs it holds on 0 of 2 tasks; not on SST-2, MRPC.", reading)

    def test_missing_runs_of_the_expected_matrix(self):
        text = self.report("--expected", "sst2-lora-r4-s1,mrpc-dylora-s1,cola-dylora-s3")
        missing = section(text, "## Missing runs")
        self.assertIn("2 of 3 runs of the matrix have no result yet", missing)
        self.assertIn("- SST-2: `sst2-lora-r4-s1`", missing)
        self.assertIn("- CoLA: `cola-dylora-s3`", missing)
        self.assertNotIn("`mrpc-dylora-s1`", missing.split("Results outside")[0])
        ids = self.tmp / "expected.txt"
        ids.write_text("mrpc-dylora-s1\nrte-dylora-s1\n")
        missing = section(self.report("--expected-file", str(ids)), "## Missing runs")
        self.assertIn("1 of 2 runs", missing)
        self.assertIn("`rte-dylora-s1`", missing)

    def test_notes_are_kept_and_output_is_byte_identical(self):
        first = self.report()
        notes = "Checked by hand: MRPC seed 2 looks noisy.\n\n| a | b |"
        edited = re.sub(r"(<!-- notes -->\n).*?(\n<!-- /notes -->)",
                        lambda m: m.group(1) + notes + m.group(2), first, flags=re.S)
        self.assertNotEqual(edited, first)
        self.out.write_text(edited, encoding="utf-8")
        second = self.report()
        self.assertEqual(second, edited)  # only the notes differ from the first
        svgs = {p.name: p.read_bytes() for p in self.figures.glob("*.svg")}
        third = self.report()
        self.assertEqual(third.encode(), second.encode())
        self.assertEqual({p.name: p.read_bytes() for p in self.figures.glob("*.svg")}, svgs)
        # Elsewhere too: no absolute paths, no timestamps.
        other = self.tmp / "other"
        fresh = self.report(out=other / "r.md", figures=other / "figures")
        self.assertEqual(fresh, first)
        for name, data in svgs.items():
            self.assertEqual((other / "figures" / name).read_bytes(), data)

    def test_svg_figures_parse_with_their_series(self):
        text = self.report()
        self.assertIn("![MRPC: accuracy by rank](figures/mrpc.svg)", text)
        for task, bars in (("mrpc", True), ("sst2", False)):
            root = ET.parse(self.figures / f"{task}.svg").getroot()
            self.assertEqual(root.tag, SVG + "svg")
            series = [g for g in root.iter(SVG + "g") if g.get("class") == "series"]
            self.assertEqual([g.get("data-series") for g in series],
                             ["DyLoRA", "LoRA trained at that rank", "LoRA r=8 truncated"])
            # DyLoRA: 8 ranks; LoRA per rank: 1, 2, 4, 8 (SST-2: r=4 missing).
            markers = [len(list(g.iter(SVG + "circle"))) for g in series[:1]]
            self.assertEqual(markers, [8])
            squares = len(list(series[1].iter(SVG + "rect")))
            self.assertEqual(squares, 4 if task == "mrpc" else 3)
            error_bars = [p for p in root.iter(SVG + "path") if p.get("class") == "error-bar"]
            self.assertEqual(bool(error_bars), bars)
            self.assertIn("rank r", [t.text for t in root.iter(SVG + "text")])

    def test_partial_and_broken_results_do_not_crash(self):
        for path in self.results.glob("*.json"):
            if path.name != "mrpc-lora-r2-s1.json":
                path.unlink()
        (self.results / "broken.json").write_text("{not json")
        text = self.report("--expected", "mrpc-lora-r2-s1,mrpc-dylora-s1")
        self.assertIn("No task has a complete LoRA search", text)
        self.assertIn("No ablation runs yet.", text)
        self.assertIn("No long run yet.", text)
        self.assertIn("`broken.json`", section(text, "## Missing runs"))
        self.assertIn("`mrpc-dylora-s1`", section(text, "## Missing runs"))
        for path in self.results.glob("*.json"):
            path.unlink()
        self.assertIn("No results yet.", self.report())

    # -- The defaults sweep ----------------------------------------------------
    SWEEP_IDS = ("sst2-sweep-base-s1", "sst2-sweep-qv-s1", "sst2-sweep-lr5e-3-s1")

    def sweep_fixture(self, run_id):
        return json.loads((self.results / f"{run_id}.json").read_text())

    def write_result(self, run):
        (self.results / f"{run['id']}.json").write_text(json.dumps(run, indent=2))

    def sweep_table(self, text, task="SST-2"):
        sweep = section(text, "## Defaults sweep")
        start = sweep.index(f"### {task} (")
        return sweep[start:]

    def test_sweep_section_comes_before_the_task_tables(self):
        text = self.report()
        self.assertLess(text.index("## How it was produced"), text.index("## Defaults sweep"))
        self.assertLess(text.index("## Defaults sweep"),
                        text.index("## Tables 1 and 2: every rank, per task"))
        sweep = section(text, "## Defaults sweep")
        self.assertIn("dev set only", sweep)
        self.assertIn("README", sweep)
        self.assertIn("### SST-2 (accuracy ×100; seed 1; max 400 steps)", sweep)
        self.assertIn("| variant | differs from base | r=1 | r=2 | r=3 | r=4 | r=5 | r=6 "
                      "| r=7 | r=8 | min | spread | train time |", sweep)

    def test_sweep_differs_from_base(self):
        table = self.sweep_table(self.report())
        self.assertEqual(table_row(table, "base")[1], "—")
        self.assertEqual(table_row(table, "qv")[1], "targets query,value")
        self.assertEqual(table_row(table, "lr5e-3")[1], "lr 0.005, head_lr 0.005")
        # A run of another kind of change, made here: the three dropouts.
        run = self.sweep_fixture("sst2-sweep-base-s1")
        run["id"] = "sst2-sweep-no-dropout-s1"
        run["hyper"].update(hidden_dropout=0.0, attention_dropout=0.0,
                            classifier_dropout=0.0)
        self.write_result(run)
        table = self.sweep_table(self.report())
        self.assertEqual(table_row(table, "no-dropout")[1],
                         "hidden_dropout 0, attention_dropout 0, classifier_dropout 0")

    def test_sweep_row_order(self):
        def variants(text):
            return [line.split("|")[1].strip() for line in
                    self.sweep_table(text).splitlines() if line.startswith("| ")][1:]
        # Base first, then by id ...
        self.assertEqual(variants(self.report()), ["base", "lr5e-3", "qv"])
        # ... or in the order of the expected matrix.
        text = self.report("--expected", "sst2-sweep-qv-s1,sst2-sweep-lr1e-3-s1,"
                           "sst2-sweep-lr5e-3-s1,sst2-sweep-base-s1")
        self.assertEqual(variants(text), ["base", "qv", "lr5e-3"])

    def test_sweep_min_spread_and_time_by_hand(self):
        text = self.report()
        table = self.sweep_table(text)
        expected = {}
        for run_id in self.SWEEP_IDS:
            run = self.sweep_fixture(run_id)
            values = [100 * r["metrics"]["accuracy"] for r in run["ranks"]]
            expected[run_id] = (min(values), max(values) - min(values))
        for run_id, variant, low, spread, time in (
                ("sst2-sweep-base-s1", "base", "84.0", "2.8", "4m10s"),
                ("sst2-sweep-qv-s1", "qv", "85.2", "0.9", "3m00s"),
                ("sst2-sweep-lr5e-3-s1", "lr5e-3", "83.0", "4.4", "4m11s")):
            row = table_row(table, variant)
            self.assertEqual(f"{expected[run_id][0]:.1f}", low)
            self.assertEqual(f"{expected[run_id][1]:.1f}", spread)
            self.assertEqual(row[-3:], [low, spread, time], variant)
        self.assertEqual(table_row(table, "qv")[2:10],
                         ["85.2", "85.4", "85.5", "85.7", "85.8", "85.9", "86.0", "86.1"])
        self.assertIn("Highest worst-rank value (min): **qv**, 85.2, with a spread of "
                      "0.9 points.", table)
        self.assertIn("(every rank within a point of the best): qv.", table)
        # 85.2 - 84.0 and 83.0 - 84.0; one seed: within noise means within 0.5.
        self.assertIn("- qv: min +1.2 points vs base (85.2 vs 84.0, above); "
                      "spread 0.9 vs 2.8 points.", table)
        self.assertIn("- lr5e-3: min -1.0 points vs base (83.0 vs 84.0, below); "
                      "spread 4.4 vs 2.8 points.", table)

    def test_sweep_runs_are_neither_unused_nor_outside_the_matrix(self):
        missing = section(self.report(), "## Missing runs")
        self.assertNotIn("Results in no table", missing)
        for run_id in self.SWEEP_IDS:
            self.assertNotIn(run_id, missing)
        missing = section(self.report("--expected", ",".join(
            self.SWEEP_IDS + ("sst2-sweep-lr1e-3-s1",))), "## Missing runs")
        self.assertIn("1 of 4 runs of the matrix have no result yet", missing)
        self.assertIn("- SST-2: `sst2-sweep-lr1e-3-s1`", missing)
        self.assertNotIn("Results in no table", missing)
        for run_id in self.SWEEP_IDS:
            self.assertNotIn(run_id, missing)

    def test_sweep_over_seeds_and_without_base(self):
        for run_id, shift in (("sst2-sweep-base-s1", 0.02), ("sst2-sweep-qv-s1", -0.01)):
            run = self.sweep_fixture(run_id)
            run["id"], run["seed"] = run_id.replace("-s1", "-s2"), 2
            for entry in run["ranks"]:
                entry["metrics"]["accuracy"] += shift
            self.write_result(run)
        table = self.sweep_table(self.report())
        self.assertIn("### SST-2 (accuracy ×100; seeds 1, 2; max 400 steps)", table)
        base, qv = table_row(table, "base"), table_row(table, "qv")
        self.assertEqual(base[2], fmt_cell([0.840, 0.860]))   # r=1
        self.assertEqual(base[-3], fmt_cell([0.840, 0.860]))  # min
        self.assertEqual(qv[-3], fmt_cell([0.852, 0.842]))
        self.assertEqual(qv[-2], "0.9 ± 0.0 (2)")  # the shift keeps the spread
        # qv's and base's mins over seeds 1 and 2: 84.7 vs 85.0.
        self.assertIn("- qv: min -0.3 points vs base (84.7 vs 85.0, within noise)", table)
        # lr5e-3 has seed 1 only: compared on seed 1.
        self.assertIn("- lr5e-3: min -1.0 points vs base (83.0 vs 84.0, below)", table)
        for seed in (1, 2):
            (self.results / f"sst2-sweep-base-s{seed}.json").unlink()
        text = self.report()
        table = self.sweep_table(text)
        self.assertEqual(table_row(table, "qv")[1], "(no base run)")
        self.assertEqual(table_row(table, "lr5e-3")[1], "(no base run)")
        self.assertIn("No base run yet", table)
        self.assertNotIn("Results in no table", section(text, "## Missing runs"))


# A stand-in for dylora-train: writes a result.json for its flags (accuracy
# 0.80 + rank / 100), or fails when $FAKE_FAIL is in its output path.
FAKE_TRAINER = """#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
def flag(name, default=None):
    return args[args.index(name) + 1] if name in args else default
out = flag("--output")
if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in out:
    sys.exit("failing on purpose")
os.makedirs(out, exist_ok=True)
r_min, r_max = int(flag("--r-min")), int(flag("--r-max"))
result = {"format": "dylora-run/1", "task": flag("--task"), "method": flag("--method"),
          "seed": int(flag("--seed")), "r_min": r_min, "r_max": r_max,
          "hyper": {}, "train_seconds": 1.0, "threads": 1, "metric": "accuracy",
          "ranks": [{"rank": r, "metrics": {"accuracy": 0.8 + r / 100}}
                    for r in range(r_min, r_max + 1)]}
with open(os.path.join(out, "result.json"), "w") as f:
    json.dump(result, f)
"""


class ReproduceShTest(unittest.TestCase):
    """reproduce.sh without a built trainer, on a temporary results folder."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="reproduce-sh-"))
        self.addCleanup(shutil.rmtree, self.tmp)
        shutil.copytree(FIXTURES, self.tmp / "results")
        self.env = dict(os.environ,
                        DYLORA_BUILD_DIR=str(self.tmp / "no-build"),
                        DYLORA_RESULTS_DIR=str(self.tmp / "results"),
                        DYLORA_REPORT=str(self.tmp / "docs" / "reproduction.md"),
                        DYLORA_FIGURES_DIR=str(self.tmp / "docs" / "figures"))

    def sh(self, *args, code=0):
        done = subprocess.run(["bash", str(SHELL), *args], env=self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, code, done.stdout + done.stderr)
        return done

    def test_syntax(self):
        done = subprocess.run(["bash", "-n", str(SHELL)], capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_list_marks_done_and_pending(self):
        out = self.sh("--list").stdout
        rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
        for fixture in FIXTURES.glob("*.json"):
            self.assertTrue(rows[fixture.stem].endswith("done"), fixture.stem)
        self.assertTrue(rows["sst2-lora-r4-s1"].endswith("pending"))
        self.assertIn("mrpc-lora-r8trunc-s3", rows)
        self.assertNotIn("mrpc-lora-r8-s1", rows)  # rank 8 is trained once
        total, done, pending = map(int, re.search(
            r"(\d+) runs: (\d+) done, (\d+) pending", out).groups())
        self.assertEqual((done, total), (len(list(FIXTURES.glob("*.json"))), len(rows)))
        self.assertEqual(done + pending, total)

    def test_filters(self):
        out = self.sh("--list", "--tasks", "mrpc", "--seeds", "2").stdout
        ids = [line.split()[0] for line in out.splitlines()[1:-1]]
        self.assertEqual(ids, ["mrpc-dylora-s2", "mrpc-lora-r1-s2", "mrpc-lora-r2-s2",
                               "mrpc-lora-r4-s2", "mrpc-lora-r8trunc-s2"])
        out = self.sh("--list", "--only", "sst2-ablation-*").stdout
        self.assertEqual(len(out.splitlines()), 5)  # header, 3 runs, footer
        self.sh("--tasks", "mnli", "--list", code=2)

    def test_dry_run_needs_no_binary(self):
        (self.tmp / "results" / "sst2-long-dylora-s1.json").unlink()
        out = self.sh("--dry-run", "--only", "mrpc-lora-r4-s3|sst2-long-dylora-s1|"
                      "mrpc-dylora-s1").stdout
        self.assertIn("# mrpc-dylora-s1: done", out)
        lines = out.splitlines()
        lora = next(l for l in lines if "--output" in l and "mrpc-lora-r4-s3" in l)
        for flag in ("--task mrpc", "--seed 3", "--method lora", "--r-min 4 --r-max 4",
                     "--overwrite"):
            self.assertIn(flag, lora)
        long = next(l for l in lines if "--output" in l and "sst2-long-dylora-s1" in l)
        self.assertIn("--resume --checkpoint-every", long)
        self.assertIn("reproduce_report.py", lines[-1])
        self.assertFalse((self.tmp / "docs").exists())  # printed, not run

    def test_missing_binary_is_explained(self):
        done = self.sh("--only", "sst2-lora-r4-s1", code=2)
        self.assertIn("scripts/test.sh", done.stderr)

    def test_runs_are_recorded_resumably(self):
        """With a stand-in trainer: progress lines, results/<id>.json with id
        and group, a failed run reported (exit 1) and done runs skipped."""
        self.env.update(DYLORA_BUILD_DIR=str(self.tmp / "build"),
                        DYLORA_RUNS_DIR=str(self.tmp / "runs"),
                        DYLORA_LOGS_DIR=str(self.tmp / "logs"),
                        FAKE_FAIL="mrpc-lora-r2-s3")
        trainer = self.tmp / "build" / "trainer" / "dylora-train"
        trainer.parent.mkdir(parents=True)
        trainer.write_text(FAKE_TRAINER)
        trainer.chmod(0o755)
        done = self.sh("--only", "mrpc-*-s3", code=1)
        self.assertIn("[1/5] mrpc-dylora-s3: training", done.stdout)
        self.assertRegex(done.stdout, r"\[1/5\] mrpc-dylora-s3: done in \d+s "
                         r"\(accuracy r1 0\.810 \.\. r8 0\.880\); ETA \d+s for 4 more")
        self.assertIn("[5/5] mrpc-lora-r8trunc-s3: done in", done.stdout)
        self.assertIn("1 run(s) failed: mrpc-lora-r2-s3", done.stderr)
        results = self.tmp / "results"
        recorded = json.loads((results / "mrpc-lora-r1-s3.json").read_text())
        self.assertEqual((recorded["id"], recorded["group"], recorded["seed"]),
                         ("mrpc-lora-r1-s3", "table1", 3))
        self.assertFalse((results / "mrpc-lora-r2-s3.json").exists())
        self.assertEqual([p.name for p in results.iterdir() if p.name.startswith(".")], [])
        log = (self.tmp / "logs" / "mrpc-lora-r4-s3.log").read_text()
        self.assertIn("--r-min 4 --r-max 4", log)
        del self.env["FAKE_FAIL"]
        again = self.sh("--only", "mrpc-*-s3").stdout
        self.assertIn("5 runs selected: 4 done, 1 to run", again)
        self.assertIn("[1/1] mrpc-lora-r2-s3: done in", again)
        self.assertTrue((self.tmp / "docs" / "reproduction.md").exists())

    def test_report_gets_the_matrix(self):
        self.sh("--report")
        text = (self.tmp / "docs" / "reproduction.md").read_text(encoding="utf-8")
        missing = section(text, "## Missing runs")
        self.assertIn("`sst2-lora-r4-s1`", missing)
        self.assertIn("`mrpc-lora-r8trunc-s3`", missing)
        self.assertTrue((self.tmp / "docs" / "figures" / "mrpc.svg").exists())

    def test_help(self):
        self.assertIn("--dry-run", self.sh("--help").stdout)


if __name__ == "__main__":
    unittest.main()
