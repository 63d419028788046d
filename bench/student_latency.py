"""Benchmark: size and CPU speed of every registered model (torch), and of the students in onnxruntime.

Per model: parameters, multiply-adds per image, latency per image at batch 1 on ONE thread
(median of --runs timed calls after --warmup; wall time and this process's CPU time), inference throughput at batch 64 on two
threads, and training throughput (forward + backward + AdamW step) at batch 64 on two
threads, which sizes ``--profile cpu``. Students are also exported to ONNX and timed in
onnxruntime (the deployment path). Targets (issue #5): student <= 2 M parameters and
<= 2 ms per image on one core. On a shared machine, other processes inflate the timings:
compare ratios from the same run. Prints a table and saves bench/results/student_latency.json.

    python bench/student_latency.py [--models student resnet18] [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import onnxruntime as ort
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from training.models import create_model, list_models
from training.onnx_export import export_onnx

REPO = Path(__file__).resolve().parent.parent
NUM_CLASSES = 7
OFFLINE_OPTIONS = {"mini_xception": {"weights": None}}  # same graph as the pretrained one


def median_seconds(call: Callable[[], object], runs: int, warmup: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process per call.

    With one thread, the CPU time is what the call would take on an idle core: it stays
    meaningful when other processes share the machine, while wall time grows with the load.
    """
    for _ in range(warmup):
        call()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def multiply_adds(model: torch.nn.Module) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 1, 48, 48))
    return counter.get_total_flops() / 2


def torch_timings(model: torch.nn.Module, runs: int, warmup: int) -> dict:
    one, batch = torch.rand(1, 1, 48, 48), torch.rand(64, 1, 48, 48)
    model.eval()
    with torch.inference_mode():
        torch.set_num_threads(1)
        latency, latency_cpu = median_seconds(lambda: model(one), runs, warmup)
        torch.set_num_threads(2)
        infer, _ = median_seconds(lambda: model(batch), max(runs // 20, 5), 2)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters())
    labels = torch.randint(0, NUM_CLASSES, (64,))

    def train_step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(batch), labels).backward()
        optimizer.step()

    train, _ = median_seconds(train_step, max(runs // 20, 5), 2)
    return {"latency_ms_b1_1thread": latency * 1e3, "cpu_ms_b1_1thread": latency_cpu * 1e3,
            "infer_img_s_b64_2threads": 64 / infer,
            "train_img_s_b64_2threads": 64 / train}


def onnxruntime_timings(model: torch.nn.Module, folder: Path, runs: int, warmup: int) -> dict:
    export = export_onnx(model, folder / f"{model.fer_meta['name']}.onnx", NUM_CLASSES)
    one, batch = torch.rand(1, 1, 48, 48).numpy(), torch.rand(64, 1, 48, 48).numpy()
    timings = {"onnx_max_abs_diff": export["max_abs_diff"]}
    sessions = {}
    for threads in (1, 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        sessions[threads] = ort.InferenceSession(export["path"], options, providers=["CPUExecutionProvider"])
    latency, latency_cpu = median_seconds(lambda: sessions[1].run(None, {"pixels": one}), runs, warmup)
    infer, _ = median_seconds(lambda: sessions[2].run(None, {"pixels": batch}), max(runs // 20, 5), 2)
    return {**timings, "ort_latency_ms_b1_1thread": latency * 1e3, "ort_cpu_ms_b1_1thread": latency_cpu * 1e3,
            "ort_infer_img_s_b64_2threads": 64 / infer}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=list_models(), help="registered names (default: all)")
    p.add_argument("--runs", type=int, default=200, help="timed calls at batch 1 (default 200)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "student_latency.json")
    args = p.parse_args()
    torch.manual_seed(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in tqdm(args.models, desc="models"):
            model = create_model(name, NUM_CLASSES, **OFFLINE_OPTIONS.get(name, {}))
            row = {"kind": model.fer_meta["kind"], "params": model.fer_meta["params"],
                   "mmacs": multiply_adds(model) / 1e6, **torch_timings(model, args.runs, args.warmup)}
            if row["kind"] == "student":
                row.update(onnxruntime_timings(model, Path(tmp), args.runs, args.warmup))
            results[name] = row
    header = f"{'model':22} {'kind':8} {'params':>10} {'MMACs':>7} {'ms b1 1t':>9} {'cpu ms':>7} {'img/s b64':>10} " \
             f"{'train img/s':>11} {'ORT ms b1':>10} {'ORT cpu ms':>10} {'ORT img/s':>10}"
    print(header)
    for name, r in results.items():
        ort_cols = (f"{r['ort_latency_ms_b1_1thread']:10.2f} {r['ort_cpu_ms_b1_1thread']:10.2f} "
                    f"{r['ort_infer_img_s_b64_2threads']:10.0f}") if "ort_latency_ms_b1_1thread" in r else ""
        print(f"{name:22} {r['kind']:8} {r['params']:10,} {r['mmacs']:7.1f} {r['latency_ms_b1_1thread']:9.2f} "
              f"{r['cpu_ms_b1_1thread']:7.2f} "
              f"{r['infer_img_s_b64_2threads']:10.0f} {r['train_img_s_b64_2threads']:11.0f} {ort_cols}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"torch_version": torch.__version__, "ort_version": ort.__version__,
                                    "runs": args.runs, "models": results}, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
