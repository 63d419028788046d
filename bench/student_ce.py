"""Which student architecture learns FER2013 fastest: each registered student trained alone (CE)
for a few epochs with ``training``'s own loop, on the same manifest, seed and precision.

A quick screen, not a finished model: it is what chose ``conv_transformer_student`` as the
default student. Accuracy is on the manifest's test split against its labels (FER2013's own for
``raw``); seconds are training only, so run it on a quiet machine.

    python bench/make_manifest.py ../shared/data/fer2013 > raw.jsonl
    python bench/student_ce.py --manifest raw.jsonl --students conv_transformer_student,hybrid_student \\
        --epochs 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from training import evaluate
from training.data import load_manifest_splits
from training.loop import train_stage, weighted_ce
from training.manifest import read_manifest_file
from training.models import create_model
from training.profiles import get_profile
from training.runtime import Context, resolve_precision

RESULTS = Path(__file__).parent / "results" / "student_ce.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True)
    p.add_argument("--students", default="conv_transformer_student,hybrid_student")
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--profile", default="cpu", help="lr, weight decay, batch size and precision come from it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prof = get_profile(args.profile)
    manifest = read_manifest_file(args.manifest)
    splits, _ = load_manifest_splits(manifest, prof.val_fraction, args.seed)
    device = torch.device("cpu")
    rows = []
    for name in args.students.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "checkpoints").mkdir()
            ctx = Context(out=Path(tmp), device=device, seed=args.seed, classes=manifest.classes,
                          policy={"name": "none"}, bf16=resolve_precision(prof.precision, device))
            torch.manual_seed(args.seed)
            model = create_model(name, len(manifest.classes))
            t0 = time.perf_counter()
            hist = train_stage(ctx, name, model, splits["train"], args.epochs, prof.lr, prof.weight_decay,
                               prof.batch_size, 10**9, weighted_ce)
            seconds = time.perf_counter() - t0
        probs = evaluate.predict_probs(model, splits["test"])
        test = evaluate.split_metrics(probs, splits["test"], manifest.classes)
        rows.append({"student": name, "params": evaluate.count_parameters(model), "epochs": args.epochs,
                     "train_seconds": round(seconds, 1), "test_acc": round(100 * test["curated"]["accuracy"], 2),
                     "test_macro_f1": round(100 * test["curated"]["macro_f1"], 2),
                     "loss_per_epoch": [round(x, 4) for x in hist["losses"]]})
        print(json.dumps(rows[-1]), flush=True)
    result = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
              "profile": prof.name, "precision": "bf16" if ctx.bf16 else "fp32", "seed": args.seed,
              "threads": args.threads, "n_train": len(splits["train"]), "n_test": len(splits["test"]), "runs": rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
