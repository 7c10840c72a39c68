"""What the interop tests share: ports, checks and a small trained adapter."""
import os
import socket
import subprocess


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def train_adapter(build, model, glue, output, steps=4, train_examples=64):
    """A DyLoRA adapter for SST-2 from a few dylora-train steps (what these
    tests check is interop, not accuracy)."""
    subprocess.run([os.path.join(build, "trainer", "dylora-train"), "--model", model,
                    "--task", "sst2", "--data-dir", glue, "--output", output,
                    "--max-steps", str(steps), "--batch-size", "8",
                    "--max-train-examples", str(train_examples), "--max-dev-examples", "16",
                    "--max-seq-len", "32", "--threads", "1"],
                   check=True, capture_output=True)
