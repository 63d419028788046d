"""Curation signals: each scores every sample and records what it ran with.

A signal is registered here under its name; ``fercurate launch`` runs every registered
signal and ``fercurate status`` reports the ones recorded in ``dataset.info["signals"]``.
"""

from __future__ import annotations

from typing import Callable

import fiftyone as fo

from fercurate import schema

#: name -> function(dataset, recompute) that computes the signal's fields.
SIGNALS: dict[str, Callable[[fo.Dataset, bool], None]] = {}


def run_signals(ds: fo.Dataset, names: list[str] | None = None, recompute: bool = False) -> list[str]:
    """Run the named signals (default: all registered) in registration order."""
    chosen = list(SIGNALS) if names is None else names
    for name in chosen:
        SIGNALS[name](ds, recompute)
    return chosen


def computed(ds: fo.Dataset) -> dict[str, dict]:
    """What ``dataset.info`` records about each computed signal (when, with what)."""
    return dict(ds.info.get(schema.INFO_SIGNALS, {}))
