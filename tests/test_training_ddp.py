"""Multi-process training that has run: torchrun with 2 CPU processes (gloo) on a tiny manifest.

Both ranks must end every stage with bit-identical weights (DDP averages their gradients;
each rank hashes its weights and rank 0 records the gathered hashes), rank 0 alone writes
the run folder, and the steps per epoch count the global batch (batch x 2 processes).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import torch

from tests.training_manifests import manifest_lines, write_manifest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_cpu_processes_train_one_model_and_rank0_writes_the_run(tmp_path):
    from training.profiles import get_profile

    lines = manifest_lines(tmp_path / "img", per_class=6)      # 42 images per split
    manifest = write_manifest(tmp_path / "tiny.jsonl", lines)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "training.cli", "--manifest", str(manifest), "--profile", "smoke", "--mode", "ce",
           "--out", str(out), "--threads", "1", "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["ddp"]["backend"] == "gloo"
    stages = metrics["ddp"]["stages"]
    assert set(stages) == {"student-ce", "adversarial-ce"}
    for stage, check in stages.items():
        assert check["agree"] and len(check["digests"]) == 2 and len(set(check["digests"])) == 1, stage
    # rank 0 alone wrote the run: one report, one set of checkpoints, one ONNX export
    assert (out / "report.md").is_file() and (out / "student-ce.onnx").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["adversarial-ce.pt", "student-ce.pt"]
    assert done.stderr.count("training: done; report:") == 1
    # the global batch is batch x 2: half the steps per epoch of one process
    prof = get_profile("smoke")
    student = torch.load(out / "checkpoints" / "student-ce.pt", weights_only=False)
    per_epoch = math.ceil(42 / (prof.batch_size * 2))
    assert student["total_steps"] == round(prof.student_epochs * per_epoch)


def test_a_single_process_records_no_ddp_check(tmp_path):
    from training import cli

    manifest = write_manifest(tmp_path / "tiny.jsonl", manifest_lines(tmp_path / "img", per_class=4))
    out = tmp_path / "run"
    assert cli.main(["--manifest", str(manifest), "--profile", "smoke", "--mode", "ce", "--out", str(out),
                     "--threads", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 1 and "ddp" not in metrics
