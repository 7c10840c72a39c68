#!/usr/bin/env python3
"""NVIDIA's own KServe v2 client (tritonclient.grpc) against dylora-serve,
unchanged: the proof that inference.GRPCInferenceService follows the
specification's messages and field numbers.

Starts the real dylora-serve binary with an adapter that dylora-train makes
in a few steps, then uses tritonclient for: server live/ready/metadata,
model ready/metadata (adapter and backbone), and ModelInfer with BYTES
inputs (TEXT, TEXT_PAIR), the `rank` / `profile` request parameters and FP32
outputs. Runs from the interop venv (.deps/interop,
tests/interop/requirements.txt), where a missing tritonclient is a failure;
skipped (exit 77) only under another interpreter without it
(DYLORA_INTEROP_REQUIRED unset).

Usage: tritonclient_interop_test.py <build dir> <model dir> <glue dir>
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from interop_util import check, free_port, train_adapter

try:
    import numpy as np
    import tritonclient.grpc as triton
except ImportError as error:
    if os.environ.get("DYLORA_INTEROP_REQUIRED") == "1":
        print(f"the interop venv lacks its client: {error}")
        sys.exit(1)
    print("tritonclient is not installed for this interpreter: skipped")
    sys.exit(77)


def main():
    build, model, glue = sys.argv[1:4]
    work = tempfile.mkdtemp(prefix="dylora-triton-")
    server = None
    try:
        adapter = os.path.join(work, "sst2")
        train_adapter(build, model, glue, adapter)
        port = free_port()
        server = subprocess.Popen(
            [os.path.join(build, "server", "app", "dylora-serve"), "--model", model,
             "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "-1",
             "--backbone-name", "minilm", "--adapter", f"sst2={adapter}",
             "--profile", "phone=2", "--log-level", "warn"])
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        deadline = time.time() + 120
        while True:
            try:
                if client.is_server_ready():
                    break
            except triton.InferenceServerException:
                pass
            check(time.time() < deadline, "dylora-serve did not become ready")
            time.sleep(0.5)

        check(client.is_server_live(), "server live")
        metadata = client.get_server_metadata()
        check(metadata.name == "dylora-serve", f"server name {metadata.name}")
        check(client.is_model_ready("sst2"), "adapter ready")
        check(client.is_model_ready("minilm"), "backbone ready")
        check(not client.is_model_ready("nope"), "unknown model not ready")
        model_metadata = client.get_model_metadata("sst2")
        check([i.name for i in model_metadata.inputs] == ["TEXT", "TEXT_PAIR"], "inputs")
        check({o.name for o in model_metadata.outputs} == {"logits", "probabilities"},
              "outputs")

        texts = np.array([b"a gripping, beautifully acted film", b"a tedious mess"],
                         dtype=np.object_)
        text = triton.InferInput("TEXT", [2], "BYTES")
        text.set_data_from_numpy(texts)
        outputs = [triton.InferRequestedOutput("logits"),
                   triton.InferRequestedOutput("probabilities")]
        result = client.infer("sst2", [text], outputs=outputs, parameters={"rank": 3})
        logits = result.as_numpy("logits")
        probabilities = result.as_numpy("probabilities")
        check(logits.shape == (2, 2) and logits.dtype == np.float32, f"logits {logits.shape}")
        check(np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5), "probabilities")
        parameters = result.get_response().parameters
        check(parameters["rank"].int64_param == 3, "rank parameter echoed")
        check(parameters["rank_source"].string_param == "rank", "rank source")

        at_rank_8 = client.infer("sst2", [text], parameters={"rank": 8}).as_numpy("logits")
        check(not np.allclose(logits, at_rank_8), "rank changes the answer")
        phone = client.infer("sst2", [text], parameters={"profile": "phone"})
        check(phone.get_response().parameters["rank"].int64_param == 2, "profile phone -> 2")

        pair = triton.InferInput("TEXT_PAIR", [2], "BYTES")
        pair.set_data_from_numpy(np.array([b"it is great", b"it is bad"], dtype=np.object_))
        check(client.infer("sst2", [text, pair]).as_numpy("logits").shape == (2, 2), "pairs")

        embedding = client.infer("minilm", [text]).as_numpy("embedding")
        check(embedding.shape == (2, 384), f"embedding {embedding.shape}")
        check(np.allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-4), "unit norm")

        try:
            client.infer("sst2", [text], parameters={"rank": 99})
            raise AssertionError("rank 99 accepted")
        except triton.InferenceServerException as error:
            check("StatusCode.INVALID_ARGUMENT" in str(error.status()), str(error))
            check("[1, 8]" in error.message(), error.message())

        server.send_signal(signal.SIGTERM)
        check(server.wait(timeout=60) == 0, "exit 0 after SIGTERM")
        server = None
        print("tritonclient interop: OK")
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
