#!/usr/bin/env python3
"""Peer baselines for dylora's encoder: the same SST-2 dev sentences through

  hf_peft_eager  transformers + PEFT LoRA (not merged), PyTorch eager, fp32,
                 plus the adapter's classification head (logits out);
  ort_fp32       the PEFT model merged (merge_and_unload) + head, exported to
                 ONNX once, ONNX Runtime CPUExecutionProvider, all graph
                 optimizations;
  ort_int8       that ONNX model after onnxruntime.quantization
                 .quantize_dynamic (int8 weights, uint8 activations
                 quantized at run time), same session options.

Batches are consecutive dev sentences in dataset order, the way
build/bench/encoder_bench builds them (batch i of size n starts at sentence
i*n, wrapping around; --batches-per-size of them, cycled), tokenized with the
model's tokenizer and padded per batch to its longest row (at most
--max-length tokens). Tokenization is done up front and is not timed, as in
encoder_bench. Each (peer, batch size) cell runs a warm-up, then as many
batches as fit in --seconds of wall time; it reports sentences/s and the p50
and p99 latency of one batch.

Before timing, the whole dev set runs once at batch 32 through every peer:
ort_fp32 logits must match hf_peft_eager (max abs diff printed, checked
against --max-fp32-diff), and int8 is compared with fp32 (argmax agreement,
accuracy of each against the dev labels).

Runs in the venv of bench/peers/setup_venv.sh:
  .deps/peers-venv/bin/python bench/peers/peers_bench.py --out peers.json
"""

import argparse
import csv
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEERS = ("hf_peft_eager", "ort_fp32", "ort_int8")
# PoolingMode / HeadKind names of core/model/heads.cc.
POOLED_HEADS = ("mean", "cls", "max", "mean_sqrt_len")


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=str(ROOT / ".deps/models/all-MiniLM-L6-v2"),
                   help="backbone directory (Hugging Face layout)")
    p.add_argument("--adapter", default=str(ROOT / "runs/quickstart-sst2"),
                   help="dylora adapter directory (PEFT-compatible)")
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/glue/SST-2/dev.tsv"),
                   help="SST-2 dev.tsv (sentence<TAB>label, with a header)")
    p.add_argument("--threads", type=int, default=2,
                   help="intra-op threads (torch.set_num_threads, ORT intra_op_num_threads); "
                        "inter-op threads are 1")
    p.add_argument("--batch-sizes", default="1,8,32")
    p.add_argument("--batches-per-size", type=int, default=32,
                   help="distinct batches per size, cycled (encoder_bench: 32)")
    p.add_argument("--seconds", type=float, default=3.0, help="timed wall time per cell")
    p.add_argument("--warmup-seconds", type=float, default=1.0,
                   help="untimed wall time per cell before it (at least 2 batches)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per sentence at most")
    p.add_argument("--peers", default=",".join(PEERS), help="subset of " + ",".join(PEERS))
    p.add_argument("--work-dir", default=None,
                   help="where the .onnx files are cached (default: a temporary directory)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--int8-per-channel", action=argparse.BooleanOptionalAction, default=True,
                   help="per-channel int8 weight scales (default; on SST-2 it keeps int8 "
                        "within ~2%% argmax disagreement of fp32, per-tensor ~5%%)")
    p.add_argument("--int8-reduce-range", action=argparse.BooleanOptionalAction, default=False,
                   help="7-bit weights (avoids u8s8 saturation on CPUs without VNNI)")
    p.add_argument("--check-sentences", type=int, default=0,
                   help="dev sentences for the agreement check (0: all)")
    p.add_argument("--max-fp32-diff", type=float, default=1e-3,
                   help="fail when ort_fp32 and hf_peft_eager logits differ by more")
    p.add_argument("--out", default=None, help="JSON results file")
    return p.parse_args()


ARGS = parse_args()
# Thread pools are sized when the libraries load: set the environment first.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import logging  # noqa: E402
import warnings  # noqa: E402

# Known, harmless notices: PEFT does not know adapter_config.json's "dylora"
# block; the TorchScript exporter is deprecated in torch 2.9 (still the one
# that handles dynamic axes of BERT reliably); ORT suggests pre-processing.
warnings.filterwarnings("ignore", message=r"Unexpected keyword arguments \['dylora'\]")
warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export")
logging.getLogger().setLevel(logging.ERROR)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(ARGS.threads)
torch.set_num_interop_threads(1)

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import peft  # noqa: E402
import safetensors.torch  # noqa: E402
import transformers  # noqa: E402
from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model_state_dict  # noqa: E402


def log(msg):
    print(f"[peers] {msg}", file=sys.stderr, flush=True)


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------- data


def read_sst2(path):
    sentences, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        si, li = header.index("sentence"), header.index("label")
        for row in reader:
            sentences.append(row[si])
            labels.append(int(row[li]))
    return sentences, np.array(labels)


def encode(tokenizer, texts):
    enc = tokenizer(texts, padding="longest", truncation=True,
                    max_length=ARGS.max_length, return_tensors="np")
    feeds = {k: enc[k].astype(np.int64)
             for k in ("input_ids", "attention_mask", "token_type_ids")}
    return feeds


def make_batches(tokenizer, sentences, size, count):
    """Batch i: sentences i*size .. i*size+size-1 (mod the dev set)."""
    batches = []
    n = len(sentences)
    for i in range(count):
        texts = [sentences[(i * size + r) % n] for r in range(size)]
        batches.append(encode(tokenizer, texts))
    return batches


# ---------------------------------------------------------------- model


class PooledClassifier(nn.Module):
    """Backbone + dylora's classification head (core/model/heads.cc).

    The attribute names (`bert`/`roberta`, `classifier`) are the ones the
    adapter's tensor names use under base_model.model., so PEFT loads the
    directory as is."""

    def __init__(self, family, encoder, head, hidden, num_labels):
        super().__init__()
        self.family = family
        setattr(self, family, encoder)
        self.head = head
        if head == "roberta":
            self.classifier = nn.Module()
            self.classifier.dense = nn.Linear(hidden, hidden)
            self.classifier.out_proj = nn.Linear(hidden, num_labels)
        else:
            self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = getattr(self, self.family)(input_ids=input_ids, attention_mask=attention_mask,
                                         token_type_ids=token_type_ids)
        h = out.last_hidden_state
        if self.head == "pooler":
            return self.classifier(out.pooler_output)
        if self.head == "roberta":
            x = torch.tanh(self.classifier.dense(h[:, 0]))
            return self.classifier.out_proj(x)
        if self.head == "cls":
            return self.classifier(h[:, 0])
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        if self.head == "max":
            pooled = h.masked_fill(m == 0, float("-inf")).amax(1)
        else:
            total = (h * m).sum(1)
            count = m.sum(1).clamp_min(1e-9)
            pooled = total / (count if self.head == "mean" else count.sqrt())
        return self.classifier(pooled)


def adapter_info(adapter_dir):
    cfg = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    tensors = safetensors.torch.load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))
    dy = cfg.get("dylora") or {}
    head = dy.get("head", "pooler")
    families = {k.split(".")[2] for k in tensors if ".lora_" in k}
    if len(families) != 1:
        raise SystemExit(f"adapter {adapter_dir}: expected one backbone family, got {families}")
    weight = "classifier.out_proj.weight" if head == "roberta" else "classifier.weight"
    num_labels = tensors[f"base_model.model.{weight}"].shape[0]
    return cfg, tensors, head, families.pop(), num_labels


def build_peft_model(attn_implementation):
    cfg, tensors, head, family, num_labels = adapter_info(ARGS.adapter)
    encoder = transformers.AutoModel.from_pretrained(
        ARGS.model, add_pooling_layer=(head == "pooler"),
        attn_implementation=attn_implementation, torch_dtype=torch.float32)
    hidden = encoder.config.hidden_size
    model = PooledClassifier(family, encoder, head, hidden, num_labels)
    lora = LoraConfig.from_pretrained(ARGS.adapter)
    lora.task_type = None  # a plain PeftModel around our module, not SEQ_CLS
    lora.inference_mode = True
    peft_model = PeftModel.from_pretrained(model, ARGS.adapter, config=lora)
    peft_model.eval()
    # Every tensor of the file must have landed, unchanged.
    loaded = get_peft_model_state_dict(peft_model)
    if set(loaded) != set(tensors):
        raise SystemExit(
            "PEFT did not load the adapter as written: missing "
            f"{sorted(set(tensors) - set(loaded))[:4]}, unexpected "
            f"{sorted(set(loaded) - set(tensors))[:4]}")
    for k, t in tensors.items():
        if not torch.equal(loaded[k].float(), t.float()):
            raise SystemExit(f"PEFT loaded {k} with other values")
    return peft_model, cfg


# ---------------------------------------------------------------- ONNX


def file_digest(paths):
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def onnx_files(work_dir):
    key = hashlib.sha256(json.dumps({
        "adapter": file_digest([Path(ARGS.adapter) / "adapter_config.json",
                                Path(ARGS.adapter) / "adapter_model.safetensors"]),
        "model": file_digest([Path(ARGS.model) / "config.json"]),
        "model_size": (Path(ARGS.model) / "model.safetensors").stat().st_size,
        "opset": ARGS.opset,
        "versions": [torch.__version__, transformers.__version__, peft.__version__,
                     onnx.__version__, ort.__version__],
        "script": file_digest([__file__]),
    }, sort_keys=True).encode()).hexdigest()[:16]
    d = Path(work_dir) / f"onnx-{key}"
    d.mkdir(parents=True, exist_ok=True)
    q = f"int8-{'perchannel' if ARGS.int8_per_channel else 'pertensor'}" + (
        "-reducerange" if ARGS.int8_reduce_range else "")
    return d / "merged_fp32.onnx", d / f"merged_{q}.onnx"


def export_onnx(fp32_path, example):
    """Merged rank-r_max model + head to ONNX (dynamic batch and sequence)."""
    if fp32_path.exists():
        log(f"ONNX fp32: cached {fp32_path}")
        return
    t0 = time.perf_counter()
    # Eager attention traces to plain MatMul/Softmax, which ORT's attention
    # fusion recognizes; sdpa would trace to the same math.
    peft_model, _ = build_peft_model("eager")
    merged = peft_model.merge_and_unload()
    merged.eval()
    args = tuple(torch.from_numpy(example[k])
                 for k in ("input_ids", "attention_mask", "token_type_ids"))
    axes = {"batch": 0, "sequence": 1}
    dynamic = {name: {v: k for k, v in axes.items()}
               for name in ("input_ids", "attention_mask", "token_type_ids")}
    dynamic["logits"] = {0: "batch"}
    tmp = fp32_path.with_suffix(".tmp")
    with torch.inference_mode():
        torch.onnx.export(
            merged, args, str(tmp), dynamo=False, opset_version=ARGS.opset,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"], dynamic_axes=dynamic, do_constant_folding=True)
    onnx.checker.check_model(str(tmp))
    tmp.rename(fp32_path)
    log(f"ONNX fp32: exported {fp32_path} in {time.perf_counter() - t0:.1f} s")


def quantize(fp32_path, int8_path):
    if int8_path.exists():
        log(f"ONNX int8: cached {int8_path}")
        return
    t0 = time.perf_counter()
    tmp = int8_path.with_suffix(".tmp")
    quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8,
                     per_channel=ARGS.int8_per_channel, reduce_range=ARGS.int8_reduce_range)
    tmp.rename(int8_path)
    log(f"ONNX int8: quantized {int8_path} in {time.perf_counter() - t0:.1f} s")


def ort_session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = ARGS.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------- runners


def torch_runner(model):
    def run(feeds):
        with torch.inference_mode():
            return model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    return run


def ort_runner(session):
    names = [i.name for i in session.get_inputs()]

    def run(feeds):
        return session.run(None, {n: feeds[n] for n in names})[0]
    return run


def as_numpy(logits):
    return logits.detach().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)


def measure(run, batches, seconds, warmup_seconds):
    i = 0
    t_end = time.perf_counter() + warmup_seconds
    while i < 2 or time.perf_counter() < t_end:
        run(batches[i % len(batches)])
        i += 1
    lat, sentences, real_tokens = [], 0, 0
    i = 0
    start = time.perf_counter()
    t_end = start + seconds
    while True:
        b = batches[i % len(batches)]
        t0 = time.perf_counter()
        run(b)
        t1 = time.perf_counter()
        lat.append(t1 - t0)
        sentences += b["input_ids"].shape[0]
        real_tokens += int(b["attention_mask"].sum())
        i += 1
        if t1 >= t_end:
            break
    elapsed = time.perf_counter() - start
    lat_ms = np.array(lat) * 1e3
    return {
        "batches": len(lat),
        "sentences": sentences,
        "seconds": elapsed,
        "sentences_per_second": sentences / elapsed,
        "tokens_per_second": real_tokens / elapsed,
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "mean_ms": float(lat_ms.mean()),
    }


def gemm_peak(n, seconds):
    """fp32 GEMM GFLOP/s of torch.mm on n x n matrices at ARGS.threads: the
    issue's yardstick for how much of the machine a forward uses."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    count, start = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2.0 * n ** 3 * count / elapsed / 1e9


def linear_flops_per_token(model_dir):
    """FLOPs of one token through every encoder linear (4 h^2 + 2 h i per
    layer, a multiply-add counted as 2); attention scores are left out."""
    c = json.loads((Path(model_dir) / "config.json").read_text())
    h, i, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    return 2 * layers * (4 * h * h + 2 * h * i)


def main():
    peers = [p for p in ARGS.peers.split(",") if p]
    for p in peers:
        if p not in PEERS:
            raise SystemExit(f"unknown peer {p} (one of {', '.join(PEERS)})")
    sizes = [int(s) for s in ARGS.batch_sizes.split(",") if s]
    tokenizer = transformers.AutoTokenizer.from_pretrained(ARGS.model)
    sentences, labels = read_sst2(ARGS.data)
    if ARGS.check_sentences > 0:
        check_n = min(ARGS.check_sentences, len(sentences))
    else:
        check_n = len(sentences)
    log(f"{len(sentences)} SST-2 dev sentences; {ARGS.threads} intra-op threads; "
        f"{cpu_model()}, nproc {os.cpu_count()}")

    tmp_ctx = None
    work_dir = ARGS.work_dir
    if work_dir is None:
        tmp_ctx = tempfile.TemporaryDirectory(prefix="dylora-peers-")
        work_dir = tmp_ctx.name
    fp32_path, int8_path = onnx_files(work_dir)

    peft_model, adapter_cfg = build_peft_model(None)  # transformers' default (sdpa)
    base = peft_model.get_base_model()
    attn_impl = getattr(getattr(base, base.family).config, "_attn_implementation", "?")
    check_batches = [encode(tokenizer, sentences[i:i + 32]) for i in range(0, check_n, 32)]
    runners = {"hf_peft_eager": torch_runner(peft_model)}
    if "ort_fp32" in peers or "ort_int8" in peers:
        # Traced on 4 sentences of different lengths (padding inside).
        export_onnx(fp32_path, encode(tokenizer, sentences[:4]))
        quantize(fp32_path, int8_path)
        runners["ort_fp32"] = ort_runner(ort_session(fp32_path))
        runners["ort_int8"] = ort_runner(ort_session(int8_path))

    # Agreement over the dev set at batch 32.
    logits = {}
    for name, run in runners.items():
        logits[name] = np.concatenate([as_numpy(run(b)) for b in check_batches])
    y = labels[:check_n]
    rank8 = None
    for v in (adapter_cfg.get("dylora") or {}).get("rank_metrics", {}).get("values", []):
        if v.get("rank") == adapter_cfg.get("r"):
            rank8 = v.get("value")
    agreement = {
        "sentences": check_n,
        "batch_size": 32,
        "accuracy": {k: float((v.argmax(1) == y).mean()) for k, v in logits.items()},
        # Comparable only over the whole dev set.
        "adapter_recorded_accuracy_at_r_max": rank8 if check_n == len(sentences) else None,
    }
    if "ort_fp32" in logits:
        diff = float(np.abs(logits["ort_fp32"] - logits["hf_peft_eager"]).max())
        agreement["max_abs_diff_ort_fp32_vs_hf_peft_eager"] = diff
        agreement["argmax_agreement_ort_fp32_vs_hf_peft_eager"] = float(
            (logits["ort_fp32"].argmax(1) == logits["hf_peft_eager"].argmax(1)).mean())
        agreement["max_abs_diff_ort_int8_vs_ort_fp32"] = float(
            np.abs(logits["ort_int8"] - logits["ort_fp32"]).max())
        agreement["argmax_agreement_ort_int8_vs_ort_fp32"] = float(
            (logits["ort_int8"].argmax(1) == logits["ort_fp32"].argmax(1)).mean())
    print_agreement(agreement)
    if agreement.get("max_abs_diff_ort_fp32_vs_hf_peft_eager", 0.0) > ARGS.max_fp32_diff:
        raise SystemExit(
            f"ort_fp32 logits differ from hf_peft_eager by "
            f"{agreement['max_abs_diff_ort_fp32_vs_hf_peft_eager']:.3g} "
            f"(> --max-fp32-diff {ARGS.max_fp32_diff}): the export is wrong")

    results = []
    for size in sizes:
        batches = make_batches(tokenizer, sentences, size, ARGS.batches_per_size)
        for name in peers:
            r = measure(runners[name], batches, ARGS.seconds, ARGS.warmup_seconds)
            r = {"peer": name, "batch_size": size, **r}
            results.append(r)
            log(f"{name:14s} batch {size:3d}: {r['sentences_per_second']:9.1f} sentences/s, "
                f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms ({r['batches']} batches)")

    peak = gemm_peak(2048, max(ARGS.seconds, 1.0))
    log(f"fp32 GEMM peak (torch.mm 2048^3, {ARGS.threads} threads): {peak:.1f} GFLOP/s")
    tokens = [len(ids) for ids in tokenizer(sentences, truncation=True,
                                             max_length=ARGS.max_length)["input_ids"]]
    report = {
        "tool": "bench/peers/peers_bench.py",
        "gemm_peak": {"n": 2048, "gflops": peak},
        "linear_flops_per_token": linear_flops_per_token(ARGS.model),
        "mean_tokens_per_sentence": float(np.mean(tokens)),
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "threads": {"intra_op": ARGS.threads, "inter_op": 1},
        "model": ARGS.model,
        "adapter": ARGS.adapter,
        "rank": adapter_cfg.get("r"),
        "data": ARGS.data,
        "batch_sizes": sizes,
        "batches_per_size": ARGS.batches_per_size,
        "seconds_per_cell": ARGS.seconds,
        "warmup_seconds_per_cell": ARGS.warmup_seconds,
        "max_length": ARGS.max_length,
        "timed": "model forward on pre-tokenized, per-batch padded inputs (tokenization excluded)",
        "hf_peft_eager": {"attn_implementation": attn_impl, "merged": False, "dtype": "float32"},
        "onnx": {"fp32": str(fp32_path), "int8": str(int8_path), "opset": ARGS.opset,
                 "exporter": "torch.onnx.export(dynamo=False)",
                 "graph_optimization_level": "ORT_ENABLE_ALL",
                 "provider": "CPUExecutionProvider"},
        "int8": {"method": "onnxruntime.quantization.quantize_dynamic",
                 "weight_type": "QInt8", "activations": "uint8, dynamic",
                 "per_channel": ARGS.int8_per_channel,
                 "reduce_range": ARGS.int8_reduce_range},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__,
                     "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                     "numpy": np.__version__},
        "agreement": agreement,
        "results": results,
    }
    print_table(results)
    if ARGS.out:
        Path(ARGS.out).parent.mkdir(parents=True, exist_ok=True)
        Path(ARGS.out).write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {ARGS.out}")
    if tmp_ctx is not None:
        tmp_ctx.cleanup()


def print_agreement(a):
    print(f"agreement over {a['sentences']} SST-2 dev sentences (batches of {a['batch_size']}):")
    if "max_abs_diff_ort_fp32_vs_hf_peft_eager" in a:
        print(f"  ort_fp32 vs hf_peft_eager: max |logit diff| "
              f"{a['max_abs_diff_ort_fp32_vs_hf_peft_eager']:.3g}, argmax agreement "
              f"{a['argmax_agreement_ort_fp32_vs_hf_peft_eager']:.4f}")
        print(f"  ort_int8 vs ort_fp32:      max |logit diff| "
              f"{a['max_abs_diff_ort_int8_vs_ort_fp32']:.3g}, argmax agreement "
              f"{a['argmax_agreement_ort_int8_vs_ort_fp32']:.4f}")
    acc = "  ".join(f"{k} {v:.4f}" for k, v in a["accuracy"].items())
    rec = a.get("adapter_recorded_accuracy_at_r_max")
    print(f"  accuracy vs labels: {acc}"
          + (f"  (adapter_config.json records {rec:.4f} at r_max)" if rec is not None else ""))


def print_table(results):
    best = {}
    for r in results:
        best[r["batch_size"]] = max(best.get(r["batch_size"], 0.0), r["sentences_per_second"])
    print(f"{'peer':<15}{'batch':>6}{'sent/s':>11}{'vs best':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for r in results:
        print(f"{r['peer']:<15}{r['batch_size']:>6}{r['sentences_per_second']:>11.1f}"
              f"{r['sentences_per_second'] / best[r['batch_size']]:>8.2f}x"
              f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}")


if __name__ == "__main__":
    main()
