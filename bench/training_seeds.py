"""Students per mode and seed on one manifest: wall time, accuracy on both label sets, robustness.

Runs ``training --mode MODES --seed S`` once per seed (teachers trained once per run, then one
student per mode; an existing run folder is resumed), then writes one JSON with a row per run
and, per mode, the mean and standard deviation over seeds:

    python bench/make_manifest.py ../shared/data/fer2013 > raw.jsonl
    python bench/training_seeds.py --manifest raw.jsonl --modes eadd --seeds 0 --profile cpu --threads 2 \\
        --votes ../shared/data/ferplus-val/votes.csv --out runs/seeds --results bench/results/training_cpu.json

Runs made by other commands on the same manifest (another mode against the same teachers,
``training --teachers-from``) join the table with ``--add-run RUN``; runs of two manifests are
never pooled.

Accuracy is on the manifest's test split against its labels (FER2013's own for ``raw``,
which are noisy: read them beside the crowd figure) and, with ``--votes``, on val against
the crowd plurality, overall and per emotion the crowd names (val chose no checkpoint: the
runs train fixed epochs). Wall times are
the ``training`` processes' own (``metrics.json`` ``wall_s``), so run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from crowd import read_votes  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "training_seeds.json"


def pct(v: float | None) -> float | None:
    return None if v is None else round(100 * v, 2)


def crowd_labels(votes_csv: Path | None, classes: list[str]) -> dict[str, str]:
    """relpath (test/<class>/<file>) -> crowd plurality, for the images the crowd gave one of the classes."""
    if votes_csv is None:
        return {}
    votes = read_votes(votes_csv)
    return {r: c for r, c in zip(votes.relpath, votes.crowd_label) if c in classes}


def crowd_accuracy(predictions_csv: Path, crowd: dict[str, str]) -> dict | None:
    """Accuracy of a predictions CSV against the crowd plurality, on the images the crowd labelled,
    and the recall of each emotion the crowd names (what EADD's per-emotion teacher weights aim at:
    an accuracy gain can hide a rare emotion the student stopped naming)."""
    if not crowd or not predictions_csv.is_file():
        return None
    per: dict[str, list[int]] = {}   # crowd's class -> [hits, images]
    with open(predictions_csv, newline="") as f:
        for row in csv.DictReader(f):
            rel = "/".join(Path(row["filepath"]).parts[-3:])   # votes name files as test/<class>/<file>
            if rel in crowd:
                tally = per.setdefault(crowd[rel], [0, 0])
                tally[0] += row["predicted"] == crowd[rel]
                tally[1] += 1
    hits, n = sum(h for h, _ in per.values()), sum(k for _, k in per.values())
    return {"accuracy": pct(hits / n) if n else None, "n_images": n,
            "recall": {c: pct(h / k) for c, (h, k) in sorted(per.items())},
            "n_per_class": {c: k for c, (_, k) in sorted(per.items())}}


def prefix_accuracy(predictions_csv: Path, prefix: str) -> dict | None:
    """Accuracy against the CSV's own labels on the images whose file name starts with ``prefix``
    (FER2013: PrivateTest_ in an ``--eval-manifest`` made by ``make_manifest.py --test-all``)."""
    if not predictions_csv.is_file():
        return None
    with open(predictions_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if Path(r["filepath"]).name.startswith(prefix)]
    return {"accuracy": pct(sum(r["predicted"] == r["label"] for r in rows) / len(rows)) if rows else None,
            "n_images": len(rows)}


def student_row(s: dict, out: Path, mode: str, crowd: dict[str, str]) -> dict:
    d, a = s["distilled"], s.get("adversarial", {})

    def state(r: dict, tag: str) -> dict:
        if not r:
            return {}
        rob = r["robust"]
        eval_csv = out / "predictions" / f"{tag}-{mode}-eval-test.csv"
        return {"test_acc": pct(r["test"]["curated"]["accuracy"]), "test_acc_raw_labels": pct(r["test"]["raw"]["accuracy"]),
                "test_macro_f1": pct(r["test"]["curated"]["macro_f1"]),
                "test_recall": {c: pct(v) for c, v in r["test"]["curated"]["per_class_recall"].items()},
                "val_acc": pct(r["val"]["curated"]["accuracy"]),
                "val_acc_crowd": crowd_accuracy(out / "predictions" / f"{tag}-{mode}-val.csv", crowd),
                # a curated run's val and test hold only the images curation kept; its --eval-manifest
                # (make_manifest.py --test-all) scores every image, comparable with a raw run
                **({"eval_manifest": {"val_acc_crowd": crowd_accuracy(eval_csv, crowd),
                                      "test_acc_raw_labels": prefix_accuracy(eval_csv, "PrivateTest_")}}
                   if eval_csv.is_file() else {}),
                "robust": {k: rob[k] for k in ("n_images", "pgd", "apgd_ce", "apgd_t_dlr", "fgsm", "clean", "worst", "masking")
                           if k in rob}}

    return {"params": s.get("params"), "distill_seconds": s.get("distill_seconds"),
            "adversarial_seconds": s.get("adversarial_seconds"),
            "distilled": state(d, "student"), "adversarial": state(a, "robust"),
            "latency_ms_torch_b1_1thread": s.get("speed", {}).get("latency_ms_batch1_1thread"),
            "latency_ms_onnx_b1_1thread": s.get("onnx", {}).get("ort_latency_ms_batch1_1thread")}


def summarize(out: Path, votes: Path | None) -> dict:
    m = json.loads((out / "metrics.json").read_text())
    crowd = crowd_labels(votes, sorted(m["manifest"]["split_counts"]["test"]))
    return {"run": str(out), "seed": m["seed"], "profile": m["profile"], "version": m["manifest"]["version"],
            "content_hash": m["manifest"]["content_hash"], "split_counts": m["manifest"].get("split_counts"),
            "wall_s": m.get("wall_s"),
            "view_bank": m.get("view_bank"), "teachers_from": m.get("teachers_from"), "precision": m.get("precision"),
            "machines": m.get("machines"),
            "teachers": {n: {"params": t["params"], "epochs": t["epochs"], "train_seconds": t.get("train_seconds"),
                             "test_acc": pct(t["test"]["curated"]["accuracy"]),
                             "test_macro_f1": pct(t["test"]["curated"]["macro_f1"]),
                             "strength_val_f1": t.get("strength_val_f1")}
                         for n, t in m["teachers"].items()},
            "students": {mode: student_row(s, out, mode, crowd) for mode, s in m["students"].items()
                         if "onnx" in s}}


#: by_mode metric -> where it sits in a student row; the eval_manifest ones score a curated run on
#: every val face (vs the crowd) and every PrivateTest face (vs FER2013's labels), like a raw run
METRICS = {"distilled_test_acc": ("distilled", "test_acc"),
           "distilled_val_acc_crowd": ("distilled", "val_acc_crowd"),
           "distilled_test_macro_f1": ("distilled", "test_macro_f1"),
           "distilled_all_val_acc_crowd": ("distilled", "eval_manifest", "val_acc_crowd"),
           "distilled_privatetest_acc_raw_labels": ("distilled", "eval_manifest", "test_acc_raw_labels"),
           "adversarial_test_acc": ("adversarial", "test_acc"),
           "adversarial_all_val_acc_crowd": ("adversarial", "eval_manifest", "val_acc_crowd"),
           "adversarial_privatetest_acc_raw_labels": ("adversarial", "eval_manifest", "test_acc_raw_labels")}


#: by_mode metric -> the crowd score whose per-emotion recall it pools: every voted val face,
#: through the run's --eval-manifest (give raw runs one too, so raw and curated read alike)
RECALLS = {"distilled_all_val_crowd_recall": ("distilled", "eval_manifest", "val_acc_crowd"),
           "adversarial_all_val_crowd_recall": ("adversarial", "eval_manifest", "val_acc_crowd")}


def _lookup(student: dict, path: tuple[str, ...], key: str = "accuracy"):
    v = student
    for step in path:
        v = v.get(step) if isinstance(v, dict) else None
    return v.get(key) if isinstance(v, dict) else v


def _stats(pairs: list[tuple[int, float | None]]) -> dict | None:
    """{mean, std, n, seeds} over the seeds that have a value."""
    pairs = [(seed, v) for seed, v in pairs if v is not None]
    vals = [v for _, v in pairs]
    if not vals:
        return None
    return {"mean": round(statistics.mean(vals), 2), "std": round(statistics.stdev(vals), 2) if len(vals) > 1 else None,
            "n": len(vals), "seeds": [seed for seed, _ in pairs]}


def aggregate(rows: list[dict]) -> dict:
    """mode -> {metric: {mean, std, n, seeds}} over the runs (seeds) that finished it; the
    per-emotion recalls against the crowd as {metric: {emotion: {mean, std, n, seeds}}}."""
    out: dict = {}
    for mode in sorted({m for r in rows for m in r["students"]}):
        runs = [r for r in rows if mode in r["students"]]
        entry = {}
        for name, path in METRICS.items():
            if (stats := _stats([(r["seed"], _lookup(r["students"][mode], path)) for r in runs])) is not None:
                entry[name] = stats
        for name, path in RECALLS.items():
            recalls = [(r["seed"], _lookup(r["students"][mode], path, "recall") or {}) for r in runs]
            per_class = {c: _stats([(seed, rec.get(c)) for seed, rec in recalls])
                         for c in sorted({c for _, rec in recalls for c in rec})}
            if per_class:
                entry[name] = per_class
        out[mode] = entry
    return out


def check_poolable(rows: list[dict]) -> None:
    """Seeds are pooled per mode only over runs of one manifest (mixing raw and curated would
    average two different experiments), and each (mode, seed) once (a run given twice would
    count twice and shrink the spread)."""
    hashes = {r["content_hash"] for r in rows}
    if len(hashes) > 1:
        runs = ", ".join(f"{r['run']} ({str(r['content_hash'])[:19]}…)" for r in rows)
        raise SystemExit(f"training_seeds: the runs were trained on different manifests: {runs}; "
                         "summarize each manifest's runs into its own --results")
    seen: dict[tuple[str, int], str] = {}
    for r in rows:
        for mode in r["students"]:
            if (mode, r["seed"]) in seen:
                raise SystemExit(f"training_seeds: {r['run']} and {seen[mode, r['seed']]} both hold a {mode} student "
                                 f"of seed {r['seed']}; give each run once")
            seen[mode, r["seed"]] = r["run"]


def format_table(by_mode: dict) -> str:
    """One line per mode and metric: mean ± std (n seeds), for the terminal."""
    lines = []
    for mode, entry in by_mode.items():
        for name, v in entry.items():
            if name in RECALLS:
                cells = ", ".join(f"{c} {s['mean']:.1f}" for c, s in v.items() if s)
                lines.append(f"{mode:5s} {name:42s} {cells}")
                continue
            spread = f" ± {v['std']:.2f}" if v["std"] is not None else ""
            lines.append(f"{mode:5s} {name:42s} {v['mean']:6.2f}{spread} (n={v['n']})")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--modes", default="eadd", help="comma-separated, as training --mode (default eadd)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--device", help="training --device (default: its auto)")
    p.add_argument("--training-args", default="", metavar="ARGS",
                   help="more options for every training run, e.g. '--epochs 1,1,1' (not on resume)")
    p.add_argument("--votes", type=Path, help="crowd votes CSV: also score val against the crowd")
    p.add_argument("--same-teachers", action="store_true", help="seeds after the first reuse the first seed's "
                   "trained teachers (training --teachers-from): the seeds then vary the students only")
    p.add_argument("--out", type=Path, default=Path("runs/seeds"))
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--summarize-only", action="store_true")
    p.add_argument("--add-run", type=Path, action="append", default=[], metavar="RUN",
                   help="also summarize this finished run folder (e.g. another mode's run on the same "
                        "manifest and teachers, made by another command); repeatable")
    args = p.parse_args()
    version = json.loads(args.manifest.open().readline()).get("version", "manifest")
    folders = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        out = args.out / f"{version}-{args.profile}-s{seed}"
        folders.append(out)
        if args.summarize_only:
            continue
        cmd = [sys.executable, "-m", "training.cli", "--profile", args.profile, "--mode", args.modes, "--out", str(out)]
        cmd += ["--resume"] if (out / "config.json").is_file() else ["--manifest", str(args.manifest),
                                                                      "--seed", str(seed)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.device:
            cmd += ["--device", args.device]
        if "--resume" not in cmd:
            cmd += shlex.split(args.training_args)
            if args.same_teachers and len(folders) > 1:
                cmd += ["--teachers-from", str(folders[0])]
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        code = subprocess.run(cmd).returncode
        if code:
            then = (f"{out} keeps its checkpoints: run this command again to resume it"
                    if (out / "config.json").is_file() else "it trained nothing: mend the error above and run again")
            raise SystemExit(f"training_seeds: training seed {seed} stopped (exit status {code}); {then}")
    for extra in args.add_run:
        if not (extra / "metrics.json").is_file():
            raise SystemExit(f"training_seeds: --add-run {extra}: no metrics.json there; give the --out of a "
                             "finished training run")
    rows = [summarize(f, args.votes) for f in [*folders, *args.add_run] if (f / "metrics.json").is_file()]
    check_poolable(rows)
    result = {"command": shlex.join(["python", "bench/training_seeds.py", *sys.argv[1:]]), "runs": rows,
              "by_mode": aggregate(rows)}
    args.results.parent.mkdir(exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    print(format_table(result["by_mode"]))


if __name__ == "__main__":
    main()
