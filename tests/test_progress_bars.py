"""Non-interactive runs (CI, nohup, a pipe) get progress bars that redraw every few seconds,
not every step, and FiftyOne's own bars are off; a terminal keeps the live bars."""

from __future__ import annotations

import os
import subprocess
import sys

LOOP = ("{first}import {pkg}, io, time, tqdm, fiftyone as fo\n"
        "buf = io.StringIO()\n"
        "for _ in tqdm.tqdm(range(300), file=buf): time.sleep(0.004)\n"
        "print(buf.getvalue().count('\\r'), fo.config.show_progress_bars)")


def redraws(pkg: str, first: str = "", **env) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("TQDM_MININTERVAL", "FIFTYONE_SHOW_PROGRESS_BARS")}
    done = subprocess.run([sys.executable, "-c", LOOP.format(pkg=pkg, first=first)], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120)   # stderr is a pipe: not a terminal
    assert done.returncode == 0, done.stderr[-1500:]
    n, fiftyone_bars = done.stdout.split()
    return int(n), fiftyone_bars


def test_piped_runs_redraw_rarely_and_fiftyone_bars_are_off():
    for pkg in ("fercurate", "training"):
        n, fiftyone_bars = redraws(pkg)
        assert n <= 3 and fiftyone_bars == "False", (pkg, n)


def test_bars_imported_before_fercurate_are_tamed_too():
    # `import torch` imports tqdm, which reads TQDM_* only then: a bench script importing torch first
    n, _ = redraws("training", first="import torch\n")
    assert n <= 3, n


def test_an_explicit_setting_wins():
    n, fiftyone_bars = redraws("fercurate", TQDM_MININTERVAL="0", FIFTYONE_SHOW_PROGRESS_BARS="true")
    assert n > 50 and fiftyone_bars == "True"
