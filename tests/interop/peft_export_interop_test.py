#!/usr/bin/env python3
"""A device profile's slice, exported by dylora-serve and loaded with plain
Hugging Face PEFT, answers what the server answers at that rank.

Trains a small adapter with dylora-train (all-MiniLM-L6-v2, its declared mean
pooling), serves it with a `phone=2` profile, runs `dylora-client export
--profile phone` and `dylora-client infer --profile phone --json`, then loads
the exported directory with `PeftModel.from_pretrained` on the same
checkpoint and computes the logits with PEFT's modules: the encoder with the
rank-2 LoRA, mean pooling over real tokens, PEFT's saved classifier. They
must equal the server's within 1e-4.

Needs the tooling venv (.deps/pytools, tests/fixtures/requirements.txt:
torch, transformers, peft): about 3 GB of wheels, so CI does not build it
and the test is skipped (exit 77) where the interpreter lacks them.

Usage: peft_export_interop_test.py <build dir> <model dir> <glue dir>
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from interop_util import check, free_port, train_adapter

# Before transformers is imported: nothing may come from a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
except ImportError as error:
    print(f"the tooling venv is not available ({error}): skipped")
    sys.exit(77)

TEXTS = ["a gripping, beautifully acted film", "a tedious mess",
         "it 's a charming and often affecting journey ."]


def peft_logits(model_dir, slice_dir):
    """The slice's logits computed by PEFT's modules alone."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    model = PeftModel.from_pretrained(base, slice_dir).eval()
    config = json.load(open(os.path.join(slice_dir, "adapter_config.json")))
    check(config["r"] == 2, f"exported r {config['r']}")
    check(model.peft_config["default"].r == 2, "PEFT read r = 2")
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
        hidden = out.hidden_states[-1]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)  # the checkpoint's mean pooling
        # PEFT's own copy of the classifier (modules_to_save), as loaded.
        return model.base_model.model.classifier(pooled)


def main():
    build, model_dir, glue = sys.argv[1:4]
    client = os.path.join(build, "client", "dylora-client")
    work = tempfile.mkdtemp(prefix="dylora-peft-export-")
    server = None
    try:
        adapter = os.path.join(work, "sst2")
        train_adapter(build, model_dir, glue, adapter, steps=20, train_examples=160)
        port = free_port()
        server = subprocess.Popen(
            [os.path.join(build, "server", "app", "dylora-serve"), "--model", model_dir,
             "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "-1",
             "--adapter", f"sst2={adapter}", "--profile", "phone=2", "--log-level", "warn"])
        address = f"127.0.0.1:{port}"
        deadline = time.time() + 120
        while subprocess.run([client, "--server", address, "health"],
                             capture_output=True).returncode != 0:
            check(time.time() < deadline, "dylora-serve did not become healthy")
            time.sleep(0.5)

        slice_dir = os.path.join(work, "phone")
        exported = subprocess.run([client, "--server", address, "export", "--adapter", "sst2",
                                   "--profile", "phone", "-o", slice_dir, "--json"],
                                  check=True, capture_output=True, text=True)
        check(json.loads(exported.stdout)["rank"] == 2, exported.stdout)
        served = subprocess.run([client, "--server", address, "infer", "--adapter", "sst2",
                                 "--profile", "phone", "--json", *TEXTS],
                                check=True, capture_output=True, text=True)
        reply = json.loads(served.stdout)
        check(reply["requests"][0]["rank"] == 2, "served at rank 2")
        served_logits = torch.tensor([p["logits"] for p in reply["predictions"]])

        theirs = peft_logits(model_dir, slice_dir)
        difference = (theirs - served_logits).abs().max().item()
        print(f"PEFT vs dylora-serve at rank 2: max |logit difference| {difference:.2e}")
        check(difference <= 1e-4, f"logits differ by {difference}")

        server.send_signal(signal.SIGTERM)
        check(server.wait(timeout=60) == 0, "exit 0 after SIGTERM")
        server = None
        print("PEFT export interop: OK")
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
