"""The ``fercurate`` command line: ingest, score, review in the App, report.

Every command that fails on bad input prints one line naming the file or field and
what to do, and exits with status 2; set FERCURATE_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from importlib import resources
from pathlib import Path

from fercurate import __version__, cli_inspect, cli_review, config
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
      FIFTYONE_PLUGINS_DIR=$(fercurate plugin-path)   the review panel in your own FiftyOne session
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

    cli_inspect.add_inspect_commands(sub)
    cli_review.add_review_commands(sub)

    s = sub.add_parser("plugin-path", help="print the folder of fercurate's FiftyOne plugin (for your own App)",
                       description="fercurate's review plugin ships inside the package. 'fercurate launch' loads "
                                   "it; to use it from your own FiftyOne session: "
                                   "export FIFTYONE_PLUGINS_DIR=$(fercurate plugin-path)")
    s.set_defaults(func=cmd_plugin_path)

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
    from fercurate.signals import FAILED, run_signals

    path, name = find_source(args.name, args.source)
    if not args.no_app and not app.port_is_free(args.port):
        raise FercurateError(f"port {args.port} is in use (another App?); pass --port N with a free port")
    ds = _ingest(path, name, args.layout, args.update)
    outcome: dict[str, str] = {}
    run_signals(ds, keep_going=True, outcome=outcome)
    _propose(ds)
    print("signals: " + "; ".join(f"{n} {o}" for n, o in outcome.items()))
    broken = [n for n, o in outcome.items() if o.startswith(FAILED)]
    if broken:
        raise SignalsFailed(f"signal(s) {', '.join(broken)} failed (above); the others are kept: fix the cause and "
                            f"run 'fercurate compute {name}' (FERCURATE_DEBUG=1 shows the traceback)")
    if args.no_app:
        print(f"open it later with: fercurate launch {args.name}" + (f" --source {args.source}" if args.source else ""))
        return 0
    session = app.start(ds, args.port)
    print(f"FiftyOne App: {app.url_for(name, args.port)}  (Ctrl-C to stop)", flush=True)
    app.serve_until_stopped(session)
    print("App stopped.")
    return 0


class SignalsFailed(FercurateError):
    """A signal broke during launch; the run goes on, then exits non-zero."""


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


def cmd_plugin_path(args: argparse.Namespace) -> int:
    print(config.plugins_dir())
    return 0


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
    except SignalsFailed as e:
        print(f"fercurate: error: {e}", file=sys.stderr)
        return 1
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
