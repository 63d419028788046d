"""Benchmark: every curation signal on the full FER2013, one fresh process per signal.

Ingests FER2013 into a fresh FERCURATE_HOME (own MongoDB), then runs each signal in run
order with ``fercurate compute DATASET SIGNAL`` in its own process, recording wall time
and peak RSS (the process and its workers). Targets (issue #3): all signals <= 15 min on
this 2-core machine, duplicates <= 1 min. Prints JSON and saves bench/results/signals.json.

    python bench/signals.py [--source ../shared/data/fer2013] [--home DIR] [--signals a b]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEAK = ("import resource,runpy,sys; sys.argv=['fercurate']+sys.argv[1:]; "
        "rc=0\ntry:\n runpy.run_module('fercurate.cli', run_name='__main__')\nexcept SystemExit as e:\n rc=e.code or 0\n"
        "r=resource.getrusage; print('PEAK_MB', max(r(resource.RUSAGE_SELF).ru_maxrss, "
        "r(resource.RUSAGE_CHILDREN).ru_maxrss)/1024, file=sys.stderr); sys.exit(rc)")


def run(args: list[str], env: dict) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = [float(line.split()[1]) for line in out.stderr.splitlines() if line.startswith("PEAK_MB")]
    if out.returncode:
        tail = [l for l in out.stderr.splitlines() if l.strip() and not l.startswith("PEAK_MB")][-3:]
        sys.exit(f"{' '.join(args)} failed: {' | '.join(tail)}")
    return wall, (peak[0] if peak else float("nan")), out.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "fer2013")
    p.add_argument("--home", help="FERCURATE_HOME to use (default: a fresh temporary one)")
    p.add_argument("--signals", nargs="*", help="signals to time (default: all, in run order)")
    args = p.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="fercurate-bench-signals-")
    env = {**os.environ, "FERCURATE_HOME": home, "HF_HUB_OFFLINE": "1"}
    wall, peak, _ = run(["ingest", str(args.source), "--name", "fer2013"], env)
    results = {"ingest": {"seconds": round(wall, 1), "peak_mb": round(peak)}}
    sys.path.insert(0, str(REPO))
    from fercurate.signals import resolve
    for name in args.signals or resolve(None):
        wall, peak, _ = run(["compute", "fer2013", name], env)
        results[name] = {"seconds": round(wall, 1), "peak_mb": round(peak)}
        print(f"{name}: {wall:.1f} s, peak {peak:.0f} MB", file=sys.stderr, flush=True)
    total = sum(v["seconds"] for k, v in results.items() if k != "ingest")
    _, _, report = run(["report", "fer2013", "--json"], env)
    out = {"source": str(args.source), "home": home, "per_signal": results,
           "signals_total_s": round(total, 1), "targets": {"all_signals_s": 900, "duplicates_s": 60},
           "summaries": json.loads(report)["signals"]}
    print(json.dumps({k: v for k, v in out.items() if k != "summaries"}, indent=2))
    (REPO / "bench" / "results").mkdir(exist_ok=True)
    (REPO / "bench" / "results" / "signals.json").write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
