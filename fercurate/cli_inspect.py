"""``fercurate signals / report / status``: what the signals found and where a dataset stands.

Read-only commands: they print what the runner recorded (``dataset.info``) and the fix
counts, and change nothing.
"""

from __future__ import annotations

import argparse
import json


def add_inspect_commands(sub) -> None:
    s = sub.add_parser("signals", help="list the available curation signals")
    s.set_defaults(func=cmd_signals)

    s = sub.add_parser("report", help="per signal: how many images are flagged, and the top examples",
                       description="Print, for each computed signal, the number of flagged images and the most "
                                   "suspect examples: score, sample id (what 'decide --ids' and 'set-label --ids' "
                                   "take), label, file.")
    s.add_argument("name", help="dataset name")
    s.add_argument("--top", type=int, default=5, help="examples per signal (default %(default)s)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("status", help="counts per split and class, and which signals are computed",
                       description="Without NAME, list fercurate's datasets.")
    s.add_argument("name", nargs="?", help="dataset name")
    s.add_argument("--json", action="store_true", help="print JSON instead of tables")
    s.set_defaults(func=cmd_status)


def cmd_signals(args: argparse.Namespace) -> int:
    from fercurate.signals import SIGNALS, resolve
    resolve(None)
    for name, cls in SIGNALS.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        notes = [f"needs {', '.join(cls.requires)}"] if cls.requires else []
        print(f"{name:<14} {doc}" + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from fercurate import dataset
    from fercurate.signals import computed, interrupted
    ds = dataset.load(args.name)
    sig = computed(ds)
    if args.json:
        print(json.dumps({"dataset": ds.name, "samples": len(ds),
                          "signals": {n: s.get("summary", {}) for n, s in sig.items()}}, indent=2, default=str))
        return 0
    for name in interrupted(ds):
        print(f"{name}: interrupted while writing its fields; run 'fercurate compute {ds.name} {name}' "
              "(its proposed fixes are kept as they were)")
    if not sig:
        print(f"no signals computed for '{ds.name}' yet; run 'fercurate compute {ds.name}'")
        return 0
    for name, rec in sig.items():
        summary = rec.get("summary", {})
        print(f"{name}: {summary_line(summary)}  (computed {rec.get('computed_at')}, {rec.get('seconds')} s)")
        if summary.get("warning"):
            print(f"    warning: {summary['warning']}")
        if summary.get("estimated_label_noise"):
            print(f"    labels estimated right: {noise_line(summary['estimated_label_noise'])}")
        for ex in summary.get("top", [])[: args.top]:
            score = ex.get("score")
            score = f"{score:.3f}" if isinstance(score, (int, float)) else score
            print(f"    {score}  {ex.get('id', '?')}  {ex.get('label', ''):<9} {ex.get('filepath', '')}")
    return 0


def summary_line(summary: dict) -> str:
    """'flagged F of N' plus the signal's own counts, on one line."""
    head = f"flagged {summary.get('flagged', '?')} of {summary.get('total', '?')}"
    extras = [f"{k}={v}" for k, v in summary.items()
              if k not in {"flagged", "total", "top", "warning"} and isinstance(v, (int, float, str)) and len(str(v)) < 40]
    return head + (f"; {', '.join(extras)}" if extras else "")


def noise_line(noise: dict) -> str:
    """'fear 46 % (else sad 27 %), ...': per class, the share of its labels estimated right
    and what the wrong ones mostly are, noisiest class first."""
    parts = []
    for name, est in sorted(noise.items(), key=lambda kv: kv[1]["right"]):
        other = next(iter(est["else"].items()), None)
        parts.append(f"{name} {est['right']:.0%}" + (f" (else {other[0]} {other[1]:.0%})" if other else ""))
    return ", ".join(parts)


def cmd_status(args: argparse.Namespace) -> int:
    from fercurate import dataset, schema
    from fercurate.signals import computed, interrupted

    if not args.name:
        names = dataset.list_datasets()
        if args.json:
            print(json.dumps(names))
        else:
            print("\n".join(names) if names else "no fercurate datasets yet; run 'fercurate launch fer2013'")
        return 0
    ds = dataset.load(args.name)
    counts = dataset.counts(ds)
    from fercurate import queues, versions
    info = {
        "dataset": ds.name, "samples": len(ds), "classes": ds.info.get(schema.INFO_CLASSES, []),
        "source": ds.info.get(schema.INFO_SOURCE, {}), "counts": counts,
        "signals": computed(ds), "interrupted_signals": interrupted(ds), "last_ingest": ds.info.get(schema.INFO_INGEST_REPORT, {}),
        "fixes": queues.counts(ds), "versions": [v["name"] for v in versions.list_versions(ds)],
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"dataset {ds.name}: {len(ds)} samples, source {info['source'].get('path', '?')} "
          f"({info['source'].get('layout', '?')}), ingested {info['source'].get('ingested_at', '?')}")
    print(format_counts(counts, info["classes"]))
    sig = info["signals"]
    if sig:
        for sname, s in sig.items():
            print(f"signal {sname:<13} computed {s.get('computed_at', '?')}: {summary_line(s.get('summary', {}))}")
    elif not info["interrupted_signals"]:
        print(f"signals: none computed yet (run 'fercurate compute {ds.name}')")
    from fercurate import given_labels
    edited = given_labels.edits(ds)
    if edited:
        print(f"labels: {len(edited)} given label(s) edited outside fercurate (e.g. {edited[0][0]}: "
              f"'{edited[0][1]}' -> '{edited[0][2]}'); 'fercurate ingest {ds.name} --update' restores them")
    for sname in info["interrupted_signals"]:
        print(f"signal {sname:<13} interrupted while writing its fields: run 'fercurate compute {ds.name} {sname}'")
    for kind, by_status in info["fixes"].items():
        if any(by_status.values()):
            print(f"fixes  {kind:<15} " + ", ".join(f"{n} {s}" for s, n in by_status.items()))
    print(f"versions: {', '.join(info['versions'])}")
    return 0


def format_counts(counts: dict[str, dict[str, int]], classes: list[str]) -> str:
    from fercurate import schema
    splits = [s for s in schema.SPLITS if s in counts] + sorted(set(counts) - set(schema.SPLITS))
    classes = list(classes) or sorted({c for d in counts.values() for c in d})
    width = max([len(c) for c in classes] + [5])
    lines = [f"{'class':<{width}} " + " ".join(f"{s:>7}" for s in splits) + f" {'total':>7}"]
    for c in classes + ["all"]:
        row = [sum(counts[s].values()) if c == "all" else counts[s].get(c, 0) for s in splits]
        lines.append(f"{c:<{width}} " + " ".join(f"{n:>7}" for n in row) + f" {sum(row):>7}")
    return "\n".join(lines)
