"""Seconds per training step of each model of a profile, fp32 against bf16 autocast + channels-last.

What ``Profile.precision = "auto"`` buys on this machine: a step is a forward, the loss, a backward
and an AdamW update on a batch of the profile's size of random 48-px faces, as ``training.loop``
runs it. Median wall seconds of ``--steps`` steps after two warm-ups; run it on a quiet machine.

    python bench/step_precision.py --profile cpu --threads 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from training.models import create_model
from training.profiles import get_profile
from training.runtime import describe_machine

RESULTS = Path(__file__).parent / "results" / "step_precision.json"


def step_seconds(name: str, batch_size: int, bf16: bool, steps: int) -> float:
    torch.manual_seed(0)
    model = create_model(name, 7)
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch_size, 1, 48, 48).contiguous(memory_format=fmt)
    y = torch.randint(0, 7, (batch_size,))
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prof = get_profile(args.profile)
    rows = []
    for name in (*prof.teachers, prof.student):
        fp32 = step_seconds(name, prof.batch_size, False, args.steps)
        bf16 = step_seconds(name, prof.batch_size, True, args.steps)
        rows.append({"model": name, "fp32_s": round(fp32, 3), "bf16_channels_last_s": round(bf16, 3),
                     "speedup": round(fp32 / bf16, 2)})
        print(json.dumps(rows[-1]), flush=True)
    result = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "profile": prof.name,
              "batch_size": prof.batch_size, "threads": args.threads,
              "machine": describe_machine(torch.device("cpu")), "steps": rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
