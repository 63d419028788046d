"""Benchmark: review decisions through the plugin's operators, and freeze + export, on a full dataset.

Times, through FiftyOne's operator execution API (what the App's buttons call):

* one decision: ``accept_fixes`` / ``reject_fixes`` on one selected sample;
* the review panel's Accept / Reject buttons (decide, find the next pending sample of the
  queue, refresh the panel's state);
* a bulk accept of 1,000 selected samples (undone, untimed, between runs);
* ``fercurate.versions.freeze`` + ``fercurate.export.export`` of the whole dataset,
  and the same export through the CLI (``fercurate export --view``, a fresh process).

Medians of ``--runs`` runs after one warm-up. The dataset must exist (``fercurate ingest``).
Without signal fields, ``--plant`` writes fix-producing findings in FER2013-like
proportions (label issues 10 %, duplicate pairs 1.5 %, non-faces 1 %, low quality 1 %;
seeded) and proposes fixes, so the timings cover a realistic number of fixes.

    python bench/review.py [NAME] [--plant] [--runs 7] [--bulk 1000]

Results go to stdout and bench/results/review.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fercurate import export, fixes, queues, schema, versions  # first: sets FiftyOne's environment

import fiftyone as fo  # noqa: E402
import fiftyone.operators as foo  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PLUGIN = "@fercurate/review"
TARGETS_MS = {"one_decision": 200, "bulk_1000": 5000, "freeze_export": 30000}


def plant_findings(ds: fo.Dataset, seed: int = 0) -> dict[str, int]:
    """Signal fields with realistic proportions, then ``fixes.propose``; returns pending per kind."""
    rng = np.random.default_rng(seed)
    ids, labels = ds.values(["id", f"{schema.GROUND_TRUTH}.label"])
    classes = list(ds.info.get(schema.INFO_CLASSES) or schema.EMOTIONS)
    n = len(ids)
    order = rng.permutation(n)
    issues, pairs = order[: n // 10], order[n // 10: n // 10 + int(n * 0.015)]
    nonface, blurry = order[-n // 100:], order[-2 * (n // 100): -n // 100]

    probs = rng.dirichlet(np.ones(len(classes)), size=len(issues))
    suggested = {}
    for row, i in zip(probs, issues):
        k = (classes.index(labels[i]) + 1 + int(rng.integers(len(classes) - 1))) % len(classes)
        row[k] += 2.0   # confident enough to be a relabel (proposals.LABEL_RULE), not a drop_ambiguous
        suggested[ids[i]] = k
    probs /= probs.sum(1, keepdims=True)
    set_values(ds, {
        schema.IS_LABEL_ISSUE: {ids[i]: True for i in issues},
        schema.LABEL_QUALITY: {ids[i]: float(rng.uniform(0, 0.3)) for i in issues},
        schema.SUGGESTED_LABEL: {s: fo.Classification(label=classes[k], confidence=float(p[k]))
                                 for (s, k), p in zip(suggested.items(), probs)},
        schema.OOF_PROBS: {ids[i]: p.tolist() for i, p in zip(issues, probs)},
    })
    group = {ids[i]: f"g{j // 2}" for j, i in enumerate(pairs)}
    set_values(ds, {
        schema.DUP_GROUP: group, schema.DUP_KIND: {s: "exact" for s in group},
        schema.DUP_KEEPER: {ids[i]: j % 2 == 0 for j, i in enumerate(pairs)},
        schema.IS_DUPLICATE: {ids[i]: j % 2 == 1 for j, i in enumerate(pairs)},
        schema.DUP_SCORE: {s: 0.0 for s in group},
        schema.DUP_LABEL_CONFLICT: {s: False for s in group}, schema.DUP_CROSS_SPLIT: {s: False for s in group},
        schema.IS_NON_FACE: {ids[i]: True for i in nonface}, schema.FACE_SCORE: {ids[i]: 0.0 for i in nonface},
        schema.IS_UNUSABLE: {ids[i]: True for i in nonface}, schema.USABILITY: {ids[i]: 0.1 for i in nonface},
        schema.USABILITY_REASONS: {ids[i]: ["no_face", "graphic"] for i in nonface},
        schema.IS_LOW_QUALITY: {ids[i]: True for i in blurry},
        schema.QUALITY_SCORE: {ids[i]: float(rng.uniform(0, 0.2)) for i in blurry},
        schema.QUALITY_ISSUES: {ids[i]: ["blurry"] for i in blurry},
    })
    return fixes.propose(ds)


def set_values(ds: fo.Dataset, values: dict[str, dict]) -> None:
    for field, by_id in values.items():
        ds.set_values(field, by_id, key_field="id")


def run_operator(name: str, ds: fo.Dataset, selected: list[str], params: dict) -> float:
    """Seconds one operator execution takes (what a click in the App costs on the server)."""
    t = time.perf_counter()
    result = foo.execute_operator(f"{PLUGIN}/{name}", {"dataset": ds.name, "selected": selected,
                                                        "params": {"curator": "bench", **params}})
    elapsed = time.perf_counter() - t
    assert result.result["changed"] == len(selected), result.result
    return elapsed


def pending_of(ds: fo.Dataset, kind: str) -> list[str]:
    return queues.queue_view(ds, kind).match(
        fo.ViewField(f"{schema.fix_field(kind)}.{schema.FIX_STATUS}") == schema.PENDING).values("id")


def time_single(ds: fo.Dataset, runs: int) -> dict:
    ids = iter(pending_of(ds, schema.RELABEL))
    times = {"accept": [], "reject": []}
    for _ in range(runs + 1):  # the first pair is a warm-up
        for op, key in (("accept_fixes", "accept"), ("reject_fixes", "reject")):
            times[key].append(run_operator(op, ds, [next(ids)], {"kind": schema.RELABEL, "target": "selected samples"}))
    return {k: ms(v[1:]) for k, v in times.items()}


def time_panel(ds: fo.Dataset, runs: int) -> dict:
    """The review panel's Accept / Reject click: decide, move to the next pending sample, re-render."""
    state: dict = {}

    def event(method: str) -> float:
        params = {"panel_id": "bench", "__method__": method, "panel_state": state, "state": state}
        t = time.perf_counter()
        foo.execute_operator(f"{PLUGIN}/review_panel", {"dataset": ds.name, "params": params})
        return time.perf_counter() - t

    load = event("on_load")
    times = {"accept": [], "reject": []}
    for _ in range(runs + 1):
        for key in times:
            times[key].append(event(key))
    return {"on_load": ms([load]), **{k: ms(v[1:]) for k, v in times.items()}}


def time_bulk(ds: fo.Dataset, runs: int, size: int) -> dict:
    chosen = pending_of(ds, schema.RELABEL)[:size]
    if len(chosen) < size:
        raise SystemExit(f"only {len(chosen)} pending relabel fixes; need {size} (use --plant)")
    times = []
    for _ in range(runs + 1):
        times.append(run_operator("accept_fixes", ds, chosen, {"kind": "all pending", "target": "selected samples"}))
        fixes.undo(ds, chosen, kinds=[schema.RELABEL], curator="bench")  # back to pending, untimed
    return {"samples": size, **ms(times[1:])}


def time_freeze_export(ds: fo.Dataset, runs: int) -> dict:
    freeze_s, export_s, cli_s, lines = [], [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(runs):
            name = versions.next_name(ds, prefix="bench_v")
            t = time.perf_counter()
            versions.freeze(ds, name, policy="class_weights", curator="bench")
            freeze_s.append(time.perf_counter() - t)
            out = Path(tmp) / f"{name}.jsonl"
            t = time.perf_counter()
            export.export(ds, name, out)
            export_s.append(time.perf_counter() - t)
            lines = sum(1 for _ in out.open())
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "fercurate.cli", "export", "--view", name, "--dataset", ds.name,
                            "--out", str(out.with_suffix(".cli.jsonl"))], check=True, env=os.environ.copy())
            cli_s.append(time.perf_counter() - t)
    total = [f + e for f, e in zip(freeze_s, export_s)]
    return {"freeze": ms(freeze_s), "export": ms(export_s), "freeze_plus_export": ms(total),
            "cli_export_process": ms(cli_s), "manifest_lines": lines}


def ms(seconds: list[float]) -> dict:
    return {"median_ms": round(1000 * statistics.median(seconds), 1),
            "min_ms": round(1000 * min(seconds), 1), "max_ms": round(1000 * max(seconds), 1), "runs": len(seconds)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", default="fer2013")
    p.add_argument("--plant", action="store_true", help="plant signal findings first (no signals computed)")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--freeze-runs", type=int, default=3)
    p.add_argument("--bulk", type=int, default=1000)
    args = p.parse_args()

    fo.config.plugins_dir = str(REPO / "plugins")
    ds = fo.load_dataset(args.name)
    t = time.perf_counter()
    proposed = plant_findings(ds) if args.plant else fixes.propose(ds)
    results = {
        "benchmark": "review", "command": "python bench/review.py " + " ".join(sys.argv[1:]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset": ds.name, "samples": len(ds), "pending_fixes": proposed,
        "propose_s": round(time.perf_counter() - t, 1),
        "one_decision": time_single(ds, args.runs),
        "panel_click": time_panel(ds, args.runs),
        "bulk_accept": time_bulk(ds, args.runs, args.bulk),
        "freeze_export": time_freeze_export(ds, args.freeze_runs),
        "targets_ms": TARGETS_MS,
        "machine": f"{os.cpu_count()} cores, shared with other jobs (timings are upper bounds)",
    }
    print(json.dumps(results, indent=2))
    out = REPO / "bench" / "results" / "review.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
