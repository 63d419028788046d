"""The three student ablations (ce, kd, eadd) on a raw and a curated manifest, compared on both test sets.

Runs ``training --ablations`` once per manifest (each evaluated also on the other's test
split through ``--eval-manifest``), then tabulates the runs' ``metrics.json`` into one JSON
file and a markdown table:

    fercurate export --view raw --out raw.jsonl
    fercurate export --view clean_v1 --out clean_v1.jsonl
    python bench/training_ablations.py --raw raw.jsonl --curated clean_v1.jsonl --profile cpu \
        --parallel --threads 1 --out runs/ablations

Existing run folders are resumed (``--resume``), so an interrupted benchmark continues; pass
``--summarize-only`` to rebuild the table from finished runs. ``--runs DIR...`` tabulates any
finished run folders instead (e.g. one ``training --mode kd,eadd --teachers ...`` run per
teacher set), one row per student, with the teachers each was distilled from. Wall times are those of each
``training`` process, so run it on an otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "training_ablations.json"
RUNS_RESULTS = Path(__file__).parent / "results" / "training_runs.json"   # --runs DIR...


def training_command(manifest: Path, other: Path, out: Path, profile: str, threads: int | None) -> list[str]:
    """``training --ablations`` for one manifest, resumed when its run folder exists."""
    cmd = [sys.executable, "-m", "training.cli", "--profile", profile, "--ablations", "--out", str(out),
           "--eval-manifest", str(other)]
    cmd += ["--resume"] if (out / "config.json").is_file() else ["--manifest", str(manifest)]
    if threads:
        cmd += ["--threads", str(threads)]
    return cmd


def run_all(commands: dict[str, list[str]], parallel: bool) -> dict[str, float]:
    """Runs the commands (one after the other, or all at once); returns each one's wall seconds."""
    walls: dict[str, float] = {}
    pending = dict(commands)
    while pending:
        batch = pending if parallel else dict([next(iter(pending.items()))])
        t0 = time.perf_counter()
        procs = {}
        for key, cmd in batch.items():
            print("+", " ".join(cmd), file=sys.stderr, flush=True)
            procs[key] = subprocess.Popen(cmd)
        for key, proc in procs.items():
            if proc.wait() != 0:
                sys.exit(f"training_ablations: {' '.join(commands[key])} exited with {proc.returncode}; "
                         "rerun this command to resume it")
            walls[key] = time.perf_counter() - t0
            del pending[key]
    return walls


def summarize(out: Path, wall_s: float | None) -> dict:
    """The numbers of one run folder that the comparison needs (accuracies in %)."""
    m = json.loads((out / "metrics.json").read_text())
    pct = lambda v: None if v is None else round(100 * v, 2)  # noqa: E731
    own, other = m["manifest"]["version"], m["eval_manifest"]["version"]
    row = {"manifest": m["manifest"], "eval_manifest": m["eval_manifest"], "profile": m["profile"], "run": str(out),
           "wall_s": round(wall_s, 1) if wall_s else None, "teachers": {}, "students": {}}
    for name, t in m["teachers"].items():
        row["teachers"][name] = {"params": t["params"], f"test_acc_{own}": pct(t["test"]["curated"]["accuracy"])}
    for mode, s in m["students"].items():
        if "onnx" not in s:          # not finished
            continue
        adv = s["adversarial"]
        row["students"][mode] = {
            "params": s["params"],
            f"distilled_test_acc_{own}": pct(s["distilled"]["test"]["curated"]["accuracy"]),
            f"distilled_test_acc_{own}_raw_labels": pct(s["distilled"]["test"]["raw"]["accuracy"]),
            f"robust_test_acc_{own}": pct(adv["test"]["curated"]["accuracy"]),
            f"robust_test_acc_{own}_raw_labels": pct(adv["test"]["raw"]["accuracy"]),
            f"robust_test_acc_{other}": pct(s["eval_manifest_test"]["curated"]["accuracy"]),
            f"robust_test_acc_{other}_raw_labels": pct(s["eval_manifest_test"]["raw"]["accuracy"]),
            "macro_f1_distilled": pct(s["distilled"]["test"]["curated"]["macro_f1"]),
            "pgd4_before": pct(s["distilled"]["robust"]["pgd"].get("4/255")),
            "pgd4_after": pct(adv["robust"]["pgd"].get("4/255")),
            # the per-image worst case over every attack (APGD included when the profile runs it)
            "worst4_before": pct(s["distilled"]["robust"].get("worst", {}).get("4/255")),
            "worst4_after": pct(adv["robust"].get("worst", {}).get("4/255")),
            "masking_before": s["distilled"]["robust"].get("masking"),
            "masking_after": adv["robust"].get("masking"),
            "robust_subset": adv["robust"]["n_images"],
            "latency_ms_b1_1thread": round(s["speed"]["latency_ms_batch1_1thread"], 2),
        }
    return row


def _predictions(out: Path, name: str) -> dict[str, dict]:
    with open(out / "predictions" / name, newline="") as f:
        return {r["filepath"]: r for r in csv.DictReader(f)}


def shared_test_accuracy(runs: dict[str, Path]) -> dict:
    """Accuracy of every student state on the test images that all runs kept (in %).

    Curation drops test images too, so each run's own test split differs; on the shared
    images both models answer the same questions. Scored against the labels of the curated
    run (``label``) and against the original labels (``original_label``).
    """
    tables: dict[str, dict[str, dict]] = {}
    for key, out in runs.items():
        for path in sorted((out / "predictions").glob("*-test.csv")):
            if path.name.endswith("-eval-test.csv"):
                continue
            tables[f"{key}/{path.stem.removesuffix('-test')}"] = _predictions(out, path.name)
    if not tables:
        return {}
    shared = set.intersection(*(set(t) for t in tables.values()))
    reference = next(table for name, table in tables.items() if name.startswith("curated/"))  # its labels
    result = {"n_images": len(shared)}
    for name, table in tables.items():
        result[name] = {
            "curated_labels": round(100 * sum(table[f]["predicted"] == reference[f]["label"] for f in shared) / len(shared), 2),
            "original_labels": round(100 * sum(table[f]["predicted"] == reference[f]["original_label"] for f in shared)
                                     / len(shared), 2),
        }
    return result


def markdown(rows: dict) -> str:
    lines = ["| trained on | student | distilled: own test | robust: own test | robust: other test "
             "| PGD 4/255 before → after |", "|---|---|---:|---:|---:|---:|"]
    for key, row in rows.items():
        if key == "shared_test":
            continue
        own, other = row["manifest"]["version"], row["eval_manifest"]["version"]
        for mode, s in row["students"].items():
            lines.append(f"| {own} | {mode} | {s[f'distilled_test_acc_{own}']} | {s[f'robust_test_acc_{own}']} "
                         f"| {s[f'robust_test_acc_{other}']} ({other}) | {s['pgd4_before']} → {s['pgd4_after']} |")
    shared = rows.get("shared_test") or {}
    if shared:
        lines += ["", f"On the {shared['n_images']} test images both versions kept (student-* = distilled, "
                  "robust-* = after adversarial fine-tuning):", "",
                  "| run/state | curated labels | original labels |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['curated_labels']} | {v['original_labels']} |" for k, v in shared.items() if k != "n_images"]
    return "\n".join(lines)


def runs_markdown(rows: list[dict]) -> str:
    """One line per student of the given run folders (accuracies on each run's own test split, in %)."""
    lines = ["| run | trained on | teachers (test acc) | student | distilled | robust | robust: other test "
             "| PGD 4/255 before → after | torch ms/img |", "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        own, other = row["manifest"]["version"], row["eval_manifest"]["version"]
        teachers = ", ".join(f"{n} {t[f'test_acc_{own}']}" for n, t in row["teachers"].items()) or "–"
        for mode, s in row["students"].items():
            lines.append(f"| {Path(row['run']).name} | {own} | {teachers} | {mode} | {s[f'distilled_test_acc_{own}']} "
                         f"| {s[f'robust_test_acc_{own}']} | {s[f'robust_test_acc_{other}']} ({other}) "
                         f"| {s['pgd4_before']} → {s['pgd4_after']} | {s['latency_ms_b1_1thread']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", type=Path, help="manifest of the uncurated version (fercurate export --view raw)")
    p.add_argument("--curated", type=Path, help="manifest of a frozen curated version")
    p.add_argument("--runs", type=Path, nargs="+", metavar="DIR", help="only tabulate these finished run folders")
    p.add_argument("--results", type=Path, help=f"where the JSON goes (default {RESULTS.name}, "
                   f"with --runs {RUNS_RESULTS.name}, in {RESULTS.parent})")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--out", type=Path, default=Path("runs/ablations"))
    p.add_argument("--threads", type=int, help="torch threads per training process")
    p.add_argument("--parallel", action="store_true", help="train both at once (e.g. with --threads 1 on 2 cores: "
                   "one thread per process wastes less time on synchronisation than two)")
    p.add_argument("--summarize-only", action="store_true")
    args = p.parse_args()
    if args.results is None:
        args.results = RUNS_RESULTS if args.runs else RESULTS
    if args.runs:
        rows = [summarize(d, None) for d in args.runs]
        args.results.parent.mkdir(exist_ok=True)
        args.results.write_text(json.dumps(rows, indent=1) + "\n")
        print(runs_markdown(rows))
        return
    if not (args.raw and args.curated):
        p.error("give --raw and --curated manifests (or --runs DIR... to tabulate finished runs)")
    walls = {}
    if not args.summarize_only:
        commands = {key: training_command(manifest, other, args.out / key, args.profile, args.threads)
                    for key, manifest, other in (("curated", args.curated, args.raw), ("raw", args.raw, args.curated))}
        walls = run_all(commands, args.parallel)
    rows = {key: summarize(args.out / key, walls.get(key)) for key in ("curated", "raw")}
    rows["shared_test"] = shared_test_accuracy({key: args.out / key for key in ("curated", "raw")})
    args.results.parent.mkdir(exist_ok=True)
    args.results.write_text(json.dumps(rows, indent=1) + "\n")
    print(json.dumps(rows, indent=1))
    print(markdown(rows))


if __name__ == "__main__":
    main()
