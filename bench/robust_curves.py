"""Robust-accuracy eps-curves of one trained student at the strength issue 13 asks for.

A training run's own evaluation is budgeted (the ``cpu`` profile: 500 test images, PGD 5 steps,
APGD 10). This re-evaluates the distilled and the fine-tuned student of a finished run folder on
a seeded 1,000 test images with PGD-20 x 3 restarts beside torchattacks' APGD-CE and targeted
APGD-DLR (100 steps each), eps in {1, 2, 4, 8}/255, and says where they disagree (masking).

The attacks are nested (``training.adversarial.robust_accuracy(nested=True)``): each attack only
attacks the images it has not broken at a smaller eps. Robust accuracy keeps its definition (no
adversarial example found inside the eps ball: one found at a smaller eps lies inside it too), the
curves never rise with eps, and the strong attacks become affordable on a CPU.

    python bench/robust_curves.py --run runs/raw/raw-cpu-s0 --mode eadd --threads 2 \\
        --results bench/results/robust_curves.json

The results file keeps one entry per run and mode; ``--stage`` evaluates one student state, and a
later call adds the other to the entry (each stage records the command that measured it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from training import adversarial, rebalance
from training.data import load_split
from training.evaluate import predict_probs, split_metrics
from training.manifest import read_manifest_file
from training.models import create_model
from training.runtime import describe_machine
from training.stages import robust_subset

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "robust_curves.json"
STAGES = ("distilled", "adversarial")
#: a loaded student whose test accuracy differs from the run's own record by more is not that student
ACC_TOLERANCE = 0.1


def load_students(run: Path, mode: str, classes: list[str], metrics: dict) -> dict[str, torch.nn.Module]:
    """{"distilled": ..., "adversarial": ...}: the run's two states of ``mode``, the fine-tuned one
    with the class offsets its rebalance added (they live in the run's ``metrics``, not the checkpoint)."""
    config = json.loads((run / "config.json").read_text())
    entry = metrics.get("students", {}).get(mode)
    if not entry or "adversarial" not in entry:
        raise SystemExit(f"{run}: no finished student {mode!r} (metrics.json has "
                         f"{sorted(metrics.get('students', {}))}); finish the run with training --resume")
    students = {}
    for stage, ckpt in (("distilled", f"student-{mode}.pt"), ("adversarial", f"adversarial-{mode}.pt")):
        path = run / "checkpoints" / ckpt
        if not path.is_file():
            raise SystemExit(f"{run}: no {path.name} in checkpoints/ (a run folder copied without its checkpoints?); "
                             "give the folder the run wrote")
        model = create_model(config["profile"]["student"], len(classes))
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["model"])
        offsets = entry[stage].get("rebalance", {}).get("class_offsets")
        if offsets:
            rebalance.add_class_offsets(model, np.array([offsets[c] for c in classes], dtype=np.float32))
        students[stage] = model.eval()
    return students


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a finished training run folder (its --out)")
    p.add_argument("--mode", required=True, help="which student of the run: ce, kd or eadd")
    p.add_argument("--images", type=int, default=1000, help="seeded random test images (0 = all; default 1000)")
    p.add_argument("--eps", default="1,2,4,8", help="eps in grey levels /255 (default 1,2,4,8)")
    p.add_argument("--pgd-steps", type=int, default=20)
    p.add_argument("--pgd-restarts", type=int, default=3)
    p.add_argument("--apgd-steps", type=int, default=100)
    p.add_argument("--stage", action="append", choices=STAGES, help="only this student state (repeatable; default "
                   "both); a later call adds the other to the same entry, so a long evaluation can run in two parts")
    p.add_argument("--seed", type=int, default=0, help="seed of the image subset (default 0)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--results", type=Path, default=RESULTS, help=f"JSON to update (default {RESULTS.relative_to(ROOT)})")
    args = p.parse_args()
    try:
        eps = tuple(int(e) for e in args.eps.split(","))
    except ValueError:
        p.error(f"--eps {args.eps!r}: give whole grey levels separated by commas, e.g. 1,2,4,8")
    torch.set_num_threads(args.threads)
    run = args.run.resolve()
    if not (run / "manifest.jsonl").is_file():
        raise SystemExit(f"--run {args.run}: not a training run folder (no manifest.jsonl); give a training --out")
    manifest = read_manifest_file(str(run / "manifest.jsonl"))
    classes = manifest.classes
    test = load_split(manifest.split("test"), classes, "test")
    metrics = json.loads((run / "metrics.json").read_text())
    students = load_students(run, args.mode, classes, metrics)
    x, y = robust_subset(test, args.images or None, args.seed)
    entry = {"run": str(run), "mode": args.mode, "n_images": len(y), "test_images": len(test), "subset_seed": args.seed,
             "command": "python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "machine": describe_machine(torch.device("cpu")), "threads": args.threads, "stages": {}}
    for stage in args.stage or STAGES:
        model = students[stage]
        acc = split_metrics(predict_probs(model, test, desc=f"{stage} test"), test, classes)["curated"]["accuracy"] * 100
        recorded = metrics["students"][args.mode][stage]["test"]["curated"]["accuracy"] * 100
        if abs(acc - recorded) > ACC_TOLERANCE:
            raise SystemExit(f"{run}: the loaded {stage} {args.mode} student scores {acc:.2f} % on test, the run "
                             f"recorded {recorded:.2f} %: checkpoint and metrics.json do not belong together")
        start = time.perf_counter()
        result = adversarial.robust_accuracy(model, x, y, eps, args.pgd_steps, pgd_restarts=args.pgd_restarts,
                                             apgd_steps=args.apgd_steps, n_classes=len(classes), nested=True)
        entry["stages"][stage] = {"test_acc": round(acc, 2), "seconds": round(time.perf_counter() - start, 1),
                                  "robust": result, "command": entry["command"], "measured_at": entry["measured_at"]}
        print(format_stage(stage, result), flush=True)
    results = json.loads(args.results.read_text()) if args.results.is_file() else {"entries": []}
    results["entries"] = merge_entry(results["entries"], entry)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.results}")


def merge_entry(entries: list[dict], entry: dict) -> list[dict]:
    """``entries`` with ``entry`` in place of the one of its run and mode; that one's other stages
    are kept when they were measured the same way (images, seed, attacks), dropped otherwise."""
    def settings(e: dict) -> tuple:
        r = next(iter(e["stages"].values()))["robust"]
        return (e["n_images"], e["subset_seed"], r["pgd_steps"], r["pgd_restarts"], r["apgd_steps"], tuple(r["worst"]))

    rest = []
    for old in entries:
        if (old["run"], old["mode"]) != (entry["run"], entry["mode"]):
            rest.append(old)
        elif old["stages"] and settings(old) == settings(entry):
            entry["stages"] = {**old["stages"], **entry["stages"]}
    return rest + [entry]


def format_stage(stage: str, r: dict) -> str:
    attacks = [a for a in ("fgsm", "pgd", "apgd_ce", "apgd_t_dlr", "worst") if a in r]
    lines = [f"{stage}: clean {r['clean'] * 100:.1f} % on {r['n_images']} images; masking at {r['masking'] or 'no eps'}"]
    for a in attacks:
        lines.append(f"  {a:<11}" + "  ".join(f"{e} {v * 100:5.1f}" for e, v in r[a].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
