"""Export a model to ONNX and prove the file computes what the torch model computes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from training.errors import TrainingError
from training.evaluate import median_latency_ms
from training.models.layers import INPUT_SIZE

OPSET = 17
ATOL = 1e-4


def export_onnx(model: nn.Module, path: str | Path, num_classes: int, check_batch: int = 8, seed: int = 0,
                latency_iters: int = 200) -> dict:
    """Writes ``path`` (input ``pixels`` (B, 1, 48, 48) in [0, 1], output ``logits``, dynamic B).

    Then runs onnxruntime and torch on the same random batch; the largest absolute logit
    difference must stay within ``ATOL``, otherwise TrainingError (the file is kept for
    inspection). Returns ``{"path", "max_abs_diff", "opset", "ort_latency_ms_batch1_1thread"}``:
    the ONNX file is what a deployment runs, so its single-core latency is the one that counts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    x = torch.rand(check_batch, 1, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(seed))
    x = x.to(next(model.parameters()).device)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated; the new one needs onnxscript, not a dependency.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (x[:1],), str(path), dynamo=False, opset_version=OPSET,
                              input_names=["pixels"], output_names=["logits"],
                              dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}})
            expected = model(x).cpu().numpy()
    finally:
        model.train(was_training)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"pixels": x.cpu().numpy()})[0]
    if got.shape != (check_batch, num_classes):
        raise TrainingError(f"{path}: ONNX output shape {got.shape}, expected {(check_batch, num_classes)}")
    max_abs_diff = float(np.abs(got - expected).max())
    if not max_abs_diff <= ATOL:
        raise TrainingError(f"{path}: onnxruntime logits differ from torch by {max_abs_diff:.2e} > {ATOL:.0e}; "
                            f"the exported graph is wrong, do not ship it")
    return {"path": str(path), "max_abs_diff": max_abs_diff, "opset": OPSET,
            "ort_latency_ms_batch1_1thread": ort_latency_ms(path, latency_iters)}


def ort_latency_ms(path: str | Path, iters: int = 200, warmup: int = 10) -> float:
    """Median onnxruntime latency of one image on one thread (a sequential, single-core session)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    return median_latency_ms(lambda: session.run(["logits"], {"pixels": x}), iters, warmup)
