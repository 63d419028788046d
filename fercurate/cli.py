"""The ``fercurate`` command line: ingest, score, review in the App, report.

Every command that fails on bad input prints one line naming the file or field and
what to do, and exits with status 2; set FERCURATE_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from importlib import resources
from pathlib import Path

from fercurate import __version__, cli_review, config
from fercurate.errors import FercurateError

KAGGLE_HINT = ("download FER2013 (Kaggle 'msambare/fer2013' image folders, or the original fer2013.csv) "
               "and pass --source PATH or put it in {where}")
SAMPLE_NAME_SUFFIX = "-sample"

EPILOG = textwrap.dedent("""\
    typical session:
      fercurate launch fer2013 --source ~/data/fer2013   ingest, score, open the App
      fercurate status fer2013                           counts and computed signals
      fercurate compute fer2013 duplicates --recompute   re-run one signal
      fercurate report fer2013                           flagged counts and top examples
      (review the proposed fixes in the App's "fercurate review" panel, or with 'fercurate decide')
      fercurate freeze clean_v1 --policy class_weights   freeze the decisions as a version
      fercurate export --view clean_v1 | training        stream its manifest into training

    where things live:
      FERCURATE_HOME   data folder: database, caches, crops, reports (default ~/.local/share/fercurate)
      FERCURATE_DATA   where 'launch NAME' looks for NAME/ (default $FERCURATE_HOME/data)
      FIFTYONE_DATABASE_URI   an external MongoDB (e.g. mongodb://host:27017) instead of the bundled one
    """)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fercurate",
        description="Find and fix mislabeled, duplicated and non-face images in facial-emotion datasets, "
                    "review the fixes in the FiftyOne App, and export clean versions for training.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"fercurate {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    layouts_help = ("source layout: fer2013_folder (Kaggle train/<class>/*.jpg, test/<class>/*.jpg), "
                    "fer2013_csv (emotion,pixels,Usage), kdef (AF01/AF01AFS.JPG), "
                    "tree (<split>/<class>/* or <class>/*); detected when omitted")

    s = sub.add_parser("launch", help="ingest a dataset, compute its signals and open the FiftyOne App",
                       description="Find the data, ingest it (once), run every curation signal and serve the "
                                   "FiftyOne App on 127.0.0.1 until Ctrl-C. Data is looked for at --source, then "
                                   "$FERCURATE_DATA/NAME. Without FER2013 on disk, 'launch fer2013' runs on a small "
                                   "sample of real FER2013 faces shipped with fercurate.")
    s.add_argument("name", help="dataset name: fer2013, kdef, or your own name (then --source is required)")
    s.add_argument("--source", type=Path, help="folder or csv holding the data")
    s.add_argument("--layout", help=layouts_help)
    s.add_argument("--no-app", action="store_true", help="ingest and score, but do not start the App")
    s.add_argument("--port", type=int, default=config.DEFAULT_APP_PORT, help="App port (default %(default)s)")
    s.add_argument("--update", action="store_true", help="apply changes found in the source (added/removed/relabelled files)")
    s.set_defaults(func=cmd_launch)

    s = sub.add_parser("ingest", help="read a dataset from disk into a persistent FiftyOne dataset",
                       description="Ingest PATH as dataset NAME. Re-ingesting an unchanged source adds nothing; "
                                   "a changed source is reported and applied only with --update. Unreadable "
                                   "images are skipped and listed in a report.")
    s.add_argument("source", type=Path, help="folder or csv holding the data")
    s.add_argument("--name", help="dataset name (default: fer2013 / kdef / the folder's name)")
    s.add_argument("--layout", help=layouts_help)
    s.add_argument("--update", action="store_true", help="apply changes found in the source")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("compute", help="compute chosen curation signals (skipped when up to date)",
                       description="Run the named signals (and the signals they need) on dataset NAME. A signal "
                                   "whose inputs and parameters are unchanged since its last complete run is "
                                   "skipped; --recompute forces it. An interrupted run keeps finished chunks: "
                                   "run the same command again to continue.")
    s.add_argument("name", help="dataset name")
    s.add_argument("signals", nargs="*", metavar="SIGNAL", help="signals to run (default: all); see 'fercurate signals'")
    s.add_argument("--recompute", action="store_true", help="recompute even when up to date")
    s.set_defaults(func=cmd_compute)

    s = sub.add_parser("signals", help="list the available curation signals")
    s.set_defaults(func=cmd_signals)

    s = sub.add_parser("report", help="per signal: how many images are flagged, and the top examples",
                       description="Print, for each computed signal, the number of flagged images and the most "
                                   "suspect examples (id, label, score, file).")
    s.add_argument("name", help="dataset name")
    s.add_argument("--top", type=int, default=5, help="examples per signal (default %(default)s)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("status", help="counts per split and class, and which signals are computed",
                       description="Without NAME, list fercurate's datasets.")
    s.add_argument("name", nargs="?", help="dataset name")
    s.add_argument("--json", action="store_true", help="print JSON instead of tables")
    s.set_defaults(func=cmd_status)

    cli_review.add_review_commands(sub)

    s = sub.add_parser("delete", help="delete a dataset with its decisions and versions (not its image files)")
    s.add_argument("name", help="dataset name")
    s.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    s.set_defaults(func=cmd_delete)
    return p


def bundled_sample(name: str) -> Path | None:
    path = Path(str(resources.files("fercurate") / "sample_data" / name))
    return path if path.is_dir() else None


def find_source(name: str, source: Path | None) -> tuple[Path, str]:
    """(path of the data, dataset name to use): --source, $FERCURATE_DATA/NAME, the sample."""
    if source is not None:
        if not source.exists():
            raise FercurateError(f"{source}: does not exist; pass the folder or csv that holds {name}")
        return source, name
    default = config.data_root() / name
    if default.exists():
        return default, name
    sample = bundled_sample(name)
    if sample is None:
        raise FercurateError(f"no data for '{name}' at {default}; pass --source PATH")
    print(f"FER2013 not found at {default}: {KAGGLE_HINT.format(where=default)}. "
          f"Running on the bundled sample of real FER2013 faces as '{name}{SAMPLE_NAME_SUFFIX}'.")
    return sample, name + SAMPLE_NAME_SUFFIX


def layout_candidates(name: str, layout: str | None) -> tuple[str, ...] | None:
    from fercurate.sources import LAYOUTS_FOR_NAME
    if layout:
        return (layout,)
    return LAYOUTS_FOR_NAME.get(name)


# --- commands -------------------------------------------------------------------------

def _ingest(path: Path, name: str, layout: str | None, update: bool):
    from fercurate import dataset
    from fercurate.sources import READERS, detect_layout, read_source

    candidates = layout_candidates(name.removesuffix(SAMPLE_NAME_SUFFIX), layout)
    if layout and layout not in READERS:
        raise FercurateError(f"--layout {layout}: unknown; choose one of {', '.join(READERS)}")
    chosen = candidates[0] if candidates and len(candidates) == 1 else detect_layout(path, candidates)
    scan = read_source(path, chosen)
    report = dataset.ingest(scan, name, update=update)
    verb = "created" if report.created else ("updated" if report.applied else "unchanged")
    print(f"dataset '{name}' {verb}: {report.samples} samples from {scan.root} ({scan.layout})")
    if report.skipped:
        print(f"skipped {len(report.skipped)} unreadable or non-image files; list in {report.report_path}")
    if report.diff and not report.created:
        if report.applied:
            print(f"applied source changes: {report.diff.summary()}")
        else:
            print(f"the source changed since it was ingested ({report.diff.summary()}); "
                  "re-run with --update to apply (details in the report)")
    return dataset.load(name)


def cmd_launch(args: argparse.Namespace) -> int:
    from fercurate import app
    from fercurate.signals import run_signals

    path, name = find_source(args.name, args.source)
    if not args.no_app and not app.port_is_free(args.port):
        raise FercurateError(f"port {args.port} is in use (another App?); pass --port N with a free port")
    ds = _ingest(path, name, args.layout, args.update)
    run_signals(ds, keep_going=True)
    _propose(ds)
    if args.no_app:
        print(f"open it later with: fercurate launch {args.name}" + (f" --source {args.source}" if args.source else ""))
        return 0
    session = app.start(ds, args.port)
    print(f"FiftyOne App: {app.url_for(name, args.port)}  (Ctrl-C to stop)", flush=True)
    app.serve_until_stopped(session)
    print("App stopped.")
    return 0


def cmd_compute(args: argparse.Namespace) -> int:
    from fercurate import dataset
    from fercurate.signals import run_signals
    ds = dataset.load(args.name)
    run_signals(ds, args.signals or None, recompute=args.recompute)
    _propose(ds)
    return 0


def _propose(ds) -> None:
    """Refresh the proposed fixes from the signals (decided fixes are kept)."""
    from fercurate import fixes
    pending = fixes.propose(ds)
    print("proposed fixes pending review: " + ", ".join(f"{k} {n}" for k, n in pending.items()))


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
    from fercurate.signals import computed
    ds = dataset.load(args.name)
    sig = computed(ds)
    if args.json:
        print(json.dumps({"dataset": ds.name, "samples": len(ds),
                          "signals": {n: s.get("summary", {}) for n, s in sig.items()}}, indent=2, default=str))
        return 0
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
            print(f"    {score}  {ex.get('label', ''):<9} {ex.get('filepath', '')}")
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


def cmd_ingest(args: argparse.Namespace) -> int:
    name = args.name or _default_name(args.source)
    _ingest(args.source, name, args.layout, args.update)
    return 0


def _default_name(source: Path) -> str:
    from fercurate.sources import detect_layout
    layout = detect_layout(source)
    if layout.startswith("fer2013"):
        return "fer2013"
    if layout == "kdef":
        return "kdef"
    return source.resolve().stem.lower()


def cmd_status(args: argparse.Namespace) -> int:
    from fercurate import dataset, schema
    from fercurate.signals import computed

    if not args.name:
        names = dataset.list_datasets()
        if args.json:
            print(json.dumps(names))
        else:
            print("\n".join(names) if names else "no fercurate datasets yet; run 'fercurate launch fer2013'")
        return 0
    ds = dataset.load(args.name)
    counts = dataset.counts(ds)
    from fercurate import fixes, versions
    info = {
        "dataset": ds.name, "samples": len(ds), "classes": ds.info.get(schema.INFO_CLASSES, []),
        "source": ds.info.get(schema.INFO_SOURCE, {}), "counts": counts,
        "signals": computed(ds), "last_ingest": ds.info.get(schema.INFO_INGEST_REPORT, {}),
        "fixes": fixes.counts(ds), "versions": [v["name"] for v in versions.list_versions(ds)],
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
    else:
        print(f"signals: none computed yet (run 'fercurate compute {ds.name}')")
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


def cmd_delete(args: argparse.Namespace) -> int:
    from fercurate import dataset
    ds = dataset.load(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise FercurateError(f"refusing to delete '{args.name}' without a terminal; pass --yes")
        if input(f"delete dataset '{args.name}' ({len(ds)} samples, image files are kept)? [y/N] ").strip().lower() != "y":
            print("kept.")
            return 1
    dataset.delete(args.name)
    print(f"deleted dataset '{args.name}'")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FercurateError as e:
        print(f"fercurate: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fercurate: interrupted; finished work is kept, re-run to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. 'fercurate export ... | head': the reader left, nothing to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush stays quiet
        return 141
    except Exception as e:  # a bug or an environment problem: still one line unless debugging
        if os.environ.get("FERCURATE_DEBUG"):
            raise
        if (isinstance(e, ConnectionError) or type(e).__module__.startswith("pymongo")) \
                and os.environ.get("FIFTYONE_DATABASE_URI"):
            print(f"fercurate: error: cannot use MongoDB at FIFTYONE_DATABASE_URI={os.environ['FIFTYONE_DATABASE_URI']} "
                  f"({type(e).__name__}); check that the server runs and is reachable, or unset the variable "
                  "to use the bundled database", file=sys.stderr)
            return 2
        if isinstance(e, ConnectionError) or type(e).__name__.startswith("Service"):
            print(f"fercurate: error: the bundled MongoDB did not start ({type(e).__name__}: {e}); see "
                  f"{config.database_dir() / 'log' / 'mongo.log'}, or set FIFTYONE_DATABASE_URI to an "
                  "existing MongoDB server", file=sys.stderr)
            return 2
        print(f"fercurate: error: {type(e).__name__}: {e} (set FERCURATE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
