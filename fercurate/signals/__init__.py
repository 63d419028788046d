"""Curation signals: each scores every sample and records what it ran with.

Signals register in :data:`SIGNALS` (in the order they run). ``fercurate launch`` runs
all of them, ``fercurate compute NAME...`` the chosen ones (plus what they require);
a signal whose inputs and parameters are unchanged since its last complete run is
skipped unless ``recompute`` is set. See :mod:`fercurate.signals.base` for the contract.
"""

from __future__ import annotations

import os
import shutil
import time

import fiftyone as fo

from fercurate import given_labels, schema
from fercurate.dataset import now_iso
from fercurate.errors import FercurateError
from fercurate.signals.base import SampleTable, Signal, SignalResult, clear_other_work, work_dir_for, write_result

#: name -> Signal class, in run order (a signal's requirements come before it).
SIGNALS: dict[str, type[Signal]] = {}


def register(cls: type[Signal]) -> type[Signal]:
    SIGNALS[cls.name] = cls
    return cls


def _run_order() -> list[str]:
    """Every registered signal, built-in ones in ``builtin.ORDER``, then the rest as registered.

    Imports the signal modules so they register (kept lazy: they import torch etc.).
    """
    from fercurate.signals.builtin import ORDER
    return [n for n in ORDER if n in SIGNALS] + [n for n in SIGNALS if n not in ORDER]


def resolve(names: list[str] | None) -> list[str]:
    """The requested signals plus everything they require, in run order."""
    order = _run_order()
    if names is None:
        return order
    unknown = [n for n in names if n not in SIGNALS]
    if unknown:
        raise FercurateError(f"unknown signal(s) {', '.join(unknown)}; choose from {', '.join(SIGNALS)}")
    wanted: set[str] = set()

    def add(n: str) -> None:
        if n not in wanted:
            wanted.add(n)
            for r in SIGNALS[n].requires:
                add(r)
    for n in names:
        add(n)
    return [n for n in order if n in wanted]


#: how a signal's turn ended, as ``run_signals`` reports it in ``outcome``
RAN, UP_TO_DATE, SKIPPED, FAILED = "ran", "up to date", "skipped", "failed"


def run_signals(ds: fo.Dataset, names: list[str] | None = None, recompute: bool = False,
                log=print, keep_going: bool = False, outcome: dict[str, str] | None = None) -> list[str]:
    """Run the named signals (default: all); returns the names that actually computed.

    With ``keep_going`` (as ``fercurate launch`` does), a signal that cannot run on this
    dataset (a FercurateError, e.g. too few images per class for cross-validation) is
    reported and skipped, along with the signals that need it, and the rest still run; a
    signal that breaks otherwise (a bug, a full disk) is recorded as failed and the rest
    still run. ``outcome`` (when given) receives each signal's ending: ``"ran"``, ``"up to
    date"``, ``"skipped: <why>"`` or ``"failed: <error>"``.
    """
    outcome = {} if outcome is None else outcome
    order = resolve(names)
    given_labels.protect(ds)         # datasets ingested before the lock get it now
    given_labels.check_unedited(ds)  # labels edited behind the audit log are reported, not re-scored
    table = SampleTable.load(ds)
    fingerprints: dict[str, str] = {}
    ran: list[str] = []
    failed: set[str] = set()
    for name in order:
        signal = SIGNALS[name]()
        if failed & set(signal.requires):
            outcome[name] = f"{SKIPPED}: it needs {', '.join(sorted(failed & set(signal.requires)))}"
            log(f"{name}: {outcome[name]}")
            failed.add(name)
            continue
        fp = signal.fingerprint(table, fingerprints)
        fingerprints[name] = fp
        record = computed(ds).get(name, {})
        if not recompute and record.get("fingerprint") == fp:
            outcome[name] = UP_TO_DATE
            log(f"{name}: up to date (computed {record.get('computed_at')})")
            continue
        work = work_dir_for(ds, name, fp)
        if recompute and work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        clear_other_work(work)
        log(f"{name}: computing on {len(table)} samples ...")
        t0 = time.perf_counter()
        try:
            result = signal.compute(ds, table, work)   # writes nothing: a refusal leaves the record as it was
            if not isinstance(result, SignalResult):
                raise TypeError(f"signal '{name}': compute must return a SignalResult (the runner writes its "
                                f"fields), not {type(result).__name__}")
            _mark_writing(ds, name, record)
            write_result(ds, table, result)
        except FercurateError as e:
            if not keep_going:
                raise
            outcome[name] = f"{SKIPPED}: {e}"
            log(f"{name}: skipped: {e}")
            failed.add(name)
            continue
        except Exception as e:  # noqa: BLE001  (KeyboardInterrupt is not an Exception: a kill stops the run)
            if not keep_going or os.environ.get("FERCURATE_DEBUG"):
                raise
            outcome[name] = f"{FAILED}: {type(e).__name__}: {e}"
            log(f"{name}: {outcome[name]}")
            failed.add(name)
            continue
        seconds = round(time.perf_counter() - t0, 1)
        ds.reload()
        signals = dict(ds.info.get(schema.INFO_SIGNALS, {}))
        signals[name] = {"state": COMPLETE, "fingerprint": fp, "params": signal.params_dict(),
                         "computed_at": now_iso(), "seconds": seconds, "summary": result.summary}
        ds.info[schema.INFO_SIGNALS] = signals
        ds.save()
        log(f"{name}: done in {seconds} s")
        outcome[name] = RAN
        ran.append(name)
    return ran


#: a signal's record while its compute may be writing fields, and after its last write
WRITING, COMPLETE = "writing", "complete"


def _mark_writing(ds: fo.Dataset, name: str, record: dict) -> None:
    """Record, after ``compute`` returned and before the first write, that the signal's
    fields are being rewritten.

    The fingerprint goes, so a run killed at any point after this (mid-write, or with
    half its fields reset) is redone by the next run instead of passing as up to date;
    the fixes it proposes are left as they are until it completes (:func:`interrupted`).
    """
    ds.reload()
    signals = dict(ds.info.get(schema.INFO_SIGNALS, {}))
    signals[name] = {**{k: v for k, v in record.items() if k != "fingerprint"}, "state": WRITING,
                     "started_at": now_iso()}
    ds.info[schema.INFO_SIGNALS] = signals
    ds.save()


def computed(ds: fo.Dataset) -> dict[str, dict]:
    """What ``dataset.info`` records about each signal whose last run completed (when,
    with what); a run that was interrupted while writing is in :func:`interrupted`."""
    return {n: r for n, r in ds.info.get(schema.INFO_SIGNALS, {}).items() if r.get("state", COMPLETE) == COMPLETE}


def interrupted(ds: fo.Dataset) -> list[str]:
    """Signals whose last run stopped after it began writing its fields: their fields may
    be half old, half new until they are computed again."""
    return [n for n, r in ds.info.get(schema.INFO_SIGNALS, {}).items() if r.get("state", COMPLETE) != COMPLETE]
