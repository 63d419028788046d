"""Adversarial fine-tuning methods compared on one distilled student, against the issue's targets.

Copies a finished run folder once per method (its distilled student, teachers and view bank
kept; the fine-tune and what follows dropped), sets the method in the copy's config, and lets
``training --resume`` redo only the fine-tune and its evaluation: the very code path of a
real run, the same starting weights for every method.

    training --manifest raw.jsonl --mode ce --epochs 0,6,0.25 --profile cpu --threads 2 --out runs/adv-base
    python bench/adversarial_methods.py --run runs/adv-base --mode ce --methods pgd,trades,anchored \\
        --threads 2 --out runs/adv-methods --results bench/results/adversarial_methods.json

``--method`` (repeatable) may carry profile settings after ``@``
(``--method pgd@adv_rebalance=false --method anchored@adv_weight=0.7,adv_rebalance=false``); the
token is the row's name.

Targets (issue 13): clean test accuracy within 4 points of the distilled student, every class's
recall at least half its distilled value, and a higher worst-case accuracy (FGSM, PGD, APGD-CE,
APGD-T) at 2/255 than the distilled student's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_seeds import crowd_labels, student_row  # noqa: E402

from training.profiles import Profile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "adversarial_methods.json"
#: what the fine-tune produced, dropped from the copy so that --resume redoes it
AFTER_DISTILLATION = ("adversarial", "adversarial_loss_per_epoch", "adversarial_seconds", "eval_manifest_test",
                      "params", "speed", "onnx")


def parse_method(token: str) -> dict:
    """``"pgd@adv_rebalance=false,adv_weight=0.7"`` -> the profile fields it sets (values as JSON)."""
    method, _, rest = token.partition("@")
    fields = {"adv_method": method}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--method {token!r}: write settings as KEY=VALUE after '@', e.g. pgd@adv_rebalance=false")
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value
    return fields


def prepare_copy(run: Path, dst: Path, mode: str, method: str) -> None:
    """``run`` as it was right after distilling ``mode``, with the profile fields of ``method``
    (:func:`parse_method`)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns(f"adversarial-{mode}.pt", f"student-{mode}.onnx*"))
    cfg = json.loads((dst / "config.json").read_text())
    fields = parse_method(method)
    unknown = set(fields) - {f.name for f in dataclasses.fields(Profile)}
    if unknown:
        raise SystemExit(f"--method {method!r}: {', '.join(sorted(unknown))} is not a profile field")
    cfg["profile"].update(fields)
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    metrics = json.loads((dst / "metrics.json").read_text())
    entry = metrics["students"][mode]
    if "distilled" not in entry:
        raise SystemExit(f"{run}: student {mode!r} has no distilled evaluation; finish the run first")
    for key in AFTER_DISTILLATION:
        entry.pop(key, None)
    (dst / "metrics.json").write_text(json.dumps(metrics, indent=2))


def judge(distilled: dict, adversarial: dict) -> dict:
    """The fine-tune's row: clean accuracy and its drop, the worst recall ratio, worst case at 2/255."""
    ratios = {c: (adversarial["test_recall"][c] / r if r > 0 else None) for c, r in distilled["test_recall"].items()}
    worst_ratio = min(v for v in ratios.values() if v is not None)
    before, after = distilled["robust"]["worst"]["2/255"], adversarial["robust"]["worst"]["2/255"]
    drop = round(distilled["test_acc"] - adversarial["test_acc"], 2)
    return {"test_acc": adversarial["test_acc"], "clean_drop_points": drop,
            "test_macro_f1": adversarial["test_macro_f1"], "val_acc_crowd": adversarial.get("val_acc_crowd"),
            "test_recall": adversarial["test_recall"], "recall_ratio": {c: None if v is None else round(v, 3)
                                                                         for c, v in ratios.items()},
            "worst_recall_ratio": round(worst_ratio, 3), "worst_2_255": after, "robust": adversarial["robust"],
            "targets": {"clean_within_4": drop <= 4.0, "every_recall_at_least_half": worst_ratio >= 0.5,
                        "worst_2_255_raised": after > before}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a finished training run folder")
    p.add_argument("--mode", default="ce", help="the student whose fine-tune is redone (default ce)")
    p.add_argument("--methods", help="comma-separated --adv-method values (default pgd,trades,anchored)")
    p.add_argument("--method", action="append", default=[], metavar="METHOD[@KEY=VALUE,...]",
                   help="one method with profile settings, e.g. pgd@adv_rebalance=false (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="folder for the per-method copies")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--votes", type=Path, help="crowd votes CSV: also score val against the crowd")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args()
    base = json.loads((args.run / "metrics.json").read_text())
    crowd = crowd_labels(args.votes, json.loads((args.run / "manifest_header.json").read_text())["classes"])
    distilled = student_row(base["students"][args.mode], args.run, args.mode, crowd)["distilled"]
    rows = {}
    methods = (args.methods.split(",") if args.methods else []) + args.method
    for method in methods or ["pgd", "trades", "anchored"]:
        dst = args.out / method
        prepare_copy(args.run, dst, args.mode, method)
        cmd = [sys.executable, "-m", "training.cli", "--resume", "--out", str(dst), "--threads", str(args.threads)]
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
        entry = json.loads((dst / "metrics.json").read_text())["students"][args.mode]
        row = student_row(entry, dst, args.mode, crowd)
        rows[method] = {"settings": entry["adversarial"]["settings"], "seconds": entry["adversarial_seconds"],
                        **judge(distilled, row["adversarial"]), "rebalance": entry["adversarial"].get("rebalance")}
        print(json.dumps({method: {k: rows[method][k] for k in ("test_acc", "clean_drop_points",
                                                                "worst_recall_ratio", "worst_2_255", "targets")}}),
              flush=True)
    result = {"command": "python bench/adversarial_methods.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
              "run": str(args.run), "mode": args.mode, "student": base["students"][args.mode].get("model"),
              "distilled": {"test_acc": distilled["test_acc"], "test_macro_f1": distilled["test_macro_f1"],
                            "test_recall": distilled["test_recall"], "val_acc_crowd": distilled.get("val_acc_crowd"),
                            "worst_2_255": distilled["robust"]["worst"]["2/255"], "robust": distilled["robust"]},
              "methods": rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.results}", file=sys.stderr)


if __name__ == "__main__":
    main()
