"""Proposed fixes and the curator's decisions on them.

Every signal's finding becomes a *proposed fix* on the sample, one document per kind
(``schema.fix_field(kind)``): relabel to the suggested label, drop an image whose label
is disputed with no clear answer, drop a duplicate (the group's keeper stays), drop a
non-face, drop a low-quality image, use the aligned crop. The rules that decide what is
proposed are :mod:`fercurate.proposals`; this module writes them and the decisions.
A fix carries its evidence and a status (pending / accepted / rejected) with who decided
and when. The given label is never overwritten: ``curated_label`` and ``curated_drop``
are derived from the accepted fixes and rewritten in the same step as each decision.

Every decision is also appended to the audit log (:mod:`fercurate.decisions`) before the
sample changes, so nothing a curator did is lost to a crash, two curators deciding the
same fix both stay on record (the later one is the fix's status, with their name on
it), and any decision can be undone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import fiftyone as fo
from fiftyone import ViewField as F

from fercurate import config, decisions, policy, schema
from fercurate.errors import FercurateError
from fercurate.proposals import PROPOSERS, SOURCE_SIGNAL, Proposal

FIX_FIELDS = {kind: schema.fix_field(kind) for kind in schema.FIX_KINDS}


# --- proposing ------------------------------------------------------------------------

def _fix_doc(kind: str, p: Proposal) -> fo.DynamicEmbeddedDocument:
    return fo.DynamicEmbeddedDocument(**{
        schema.FIX_STATUS: schema.PENDING, schema.FIX_SCORE: None if p.score is None else float(p.score),
        schema.FIX_PROPOSED_BY: p.proposed_by, schema.FIX_CURATOR: None, schema.FIX_DECIDED_AT: None,
        **p.evidence})


def refreshed(kind: str, current: list, proposals: list[Proposal | None]) -> list:
    """Each sample's fix of ``kind`` once ``proposals`` are applied: a decided fix stays as it
    is, a pending one is replaced by the new proposal (or withdrawn when there is none)."""
    return [cur if cur is not None and cur[schema.FIX_STATUS] != schema.PENDING
            else (_fix_doc(kind, p) if p is not None else None)
            for cur, p in zip(current, proposals)]


def declare_fields(ds: fo.Dataset) -> None:
    """Declare the fix documents' keys, so the App's sidebar can filter on them."""
    have = ds.get_field_schema(flat=True)
    for field in FIX_FIELDS.values():
        if field not in have:
            ds.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=fo.DynamicEmbeddedDocument)
        for key, ftype in ((schema.FIX_STATUS, fo.StringField), (schema.FIX_SCORE, fo.FloatField),
                           (schema.FIX_PROPOSED_BY, fo.StringField), (schema.FIX_CURATOR, fo.StringField),
                           (schema.FIX_DECIDED_AT, fo.StringField)):
            if f"{field}.{key}" not in have:
                ds.add_sample_field(f"{field}.{key}", ftype)
    for kind, key, ftype in ((schema.RELABEL, schema.FIX_TARGET, fo.StringField),
                             (schema.DROP_AMBIGUOUS, schema.FIX_RUNNER_UP, fo.StringField),
                             *((k, x, fo.FloatField) for k in (schema.RELABEL, schema.DROP_AMBIGUOUS)
                               for x in (schema.FIX_CONFIDENCE, schema.FIX_MARGIN, schema.FIX_GIVEN_PROB))):
        if f"{FIX_FIELDS[kind]}.{key}" not in have:
            ds.add_sample_field(f"{FIX_FIELDS[kind]}.{key}", ftype)
    if schema.CURATED_LABEL not in have:
        ds.add_sample_field(schema.CURATED_LABEL, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    if schema.CURATED_DROP not in have:
        ds.add_sample_field(schema.CURATED_DROP, fo.BooleanField)


def propose(ds: fo.Dataset) -> dict[str, int]:
    """Turn the signals' fields into fix documents; returns pending fixes per kind.

    Idempotent. A decided fix (or a label set by hand) is kept as it is: re-running a
    signal never undoes a curator's work. A pending fix is refreshed with the new
    evidence, or withdrawn when its signal no longer proposes it. The fixes of a signal
    that was interrupted while writing its fields stay as they are (its fields may be
    half-written) until it has run again.
    """
    from fercurate.signals import interrupted
    declare_fields(ds)
    ids = ds.values("id")
    pending: dict[str, int] = {}
    half_written = set(interrupted(ds))
    for kind, field in FIX_FIELDS.items():
        current = ds.values(field)
        if SOURCE_SIGNAL[kind] in half_written:
            pending[kind] = sum(1 for c in current if c is not None and c[schema.FIX_STATUS] == schema.PENDING)
            continue
        new = refreshed(kind, current, PROPOSERS[kind](ds))
        changed = {i: n for i, c, n in zip(ids, current, new) if not _same(c, n)}
        if changed:
            ds.set_values(field, changed, key_field="id")
        pending[kind] = sum(1 for n in new if n is not None and n[schema.FIX_STATUS] == schema.PENDING)
    _write_curated(ds, ds)
    from fercurate.queues import save_queue_views   # queues reads what this module writes
    save_queue_views(ds)
    return pending


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a.to_dict() == b.to_dict()


# --- curated label --------------------------------------------------------------------

def curated(fixes: dict[str, dict | None], given: str | None) -> tuple[str | None, bool]:
    """(label, dropped) after the accepted fixes of one sample."""
    relabel = fixes.get(schema.RELABEL)
    label = relabel[schema.FIX_TARGET] if relabel and relabel[schema.FIX_STATUS] == schema.ACCEPTED else given
    dropped = any((fixes.get(k) or {}).get(schema.FIX_STATUS) == schema.ACCEPTED for k in schema.DROP_KINDS)
    return label, dropped


def _fix_columns(view) -> tuple[list[str], list[str | None], dict[str, list]]:
    ids, given = view.values(["id", f"{schema.GROUND_TRUTH}.label"])
    cols = {kind: [d.to_dict() if d is not None else None for d in view.values(field)]
            for kind, field in FIX_FIELDS.items()}
    return ids, given, cols


def _write_curated(ds: fo.Dataset, view) -> None:
    """Rewrite the curated fields of the samples in ``view`` whose fixes or given label
    changed them (a re-proposal over the whole dataset usually writes nothing)."""
    ids, given, cols = _fix_columns(view)
    have_label, have_drop = view.values([f"{schema.CURATED_LABEL}.label", schema.CURATED_DROP])
    labels, drops = {}, {}
    for i, sid in enumerate(ids):
        label, dropped = curated({k: cols[k][i] for k in cols}, given[i])
        if label != have_label[i]:
            labels[sid] = fo.Classification(label=label) if label else None
        if dropped != have_drop[i]:
            drops[sid] = dropped
    if labels:
        ds.set_values(schema.CURATED_LABEL, labels, key_field="id")
    if drops:
        ds.set_values(schema.CURATED_DROP, drops, key_field="id")


# --- deciding -------------------------------------------------------------------------

def check_kinds(kinds: Iterable[str] | None) -> list[str] | None:
    if kinds is None:
        return None
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in schema.FIX_KINDS]
    if unknown:
        raise FercurateError(f"unknown fix kind(s) {', '.join(unknown)}; choose from {', '.join(schema.FIX_KINDS)}")
    return kinds


def _apply(ds: fo.Dataset, changes: list[decisions.Change]) -> int:
    """Log the changes, then write the fix documents and the curated fields."""
    if not changes:
        return 0
    decisions.append(ds, changes)
    by_kind: dict[str, dict[str, fo.DynamicEmbeddedDocument | None]] = defaultdict(dict)
    for c in changes:
        by_kind[c.kind][c.sample_id] = fo.DynamicEmbeddedDocument(**c.after) if c.after is not None else None
    for kind, values in by_kind.items():
        ds.set_values(FIX_FIELDS[kind], values, key_field="id")
    _write_curated(ds, ds.select(sorted({c.sample_id for c in changes})))
    return len(changes)


def _existing_ids(ds: fo.Dataset, ids: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(ids))
    found = ds.select(ids).values("id")
    if len(found) != len(ids):
        missing = sorted(set(ids) - set(found))
        raise FercurateError(f"{len(missing)} sample id(s) not in dataset '{ds.name}', e.g. {missing[0]}")
    return ids


def decide(ds: fo.Dataset, ids: Iterable[str], action: str, kinds: Iterable[str] | None = None,
           curator: str | None = None, only_pending: bool | None = None) -> int:
    """Accept or reject fixes of the given samples; returns how many fixes changed.

    ``kinds=None`` decides every *pending* fix of those samples (a bulk pass over a
    queue); naming kinds decides those fixes whatever their status (a change of mind),
    unless ``only_pending`` (a bulk pass over one queue's kind). A fix already in the
    requested status is left alone (nothing to record).
    """
    if action not in (schema.ACCEPT, schema.REJECT):
        raise FercurateError(f"unknown action '{action}'; choose {schema.ACCEPT} or {schema.REJECT}")
    kinds = check_kinds(kinds)
    only_pending = kinds is None if only_pending is None else only_pending
    ids = _existing_ids(ds, ids)
    curator = curator or config.curator()
    status = schema.ACCEPTED if action == schema.ACCEPT else schema.REJECTED
    at = decisions.now()
    view = ds.select(ids, ordered=True)
    sample_ids, _, cols = _fix_columns(view)
    changes = []
    for kind in kinds or schema.FIX_KINDS:
        for sid, before in zip(sample_ids, cols[kind]):
            if before is None or before[schema.FIX_STATUS] == status \
                    or (only_pending and before[schema.FIX_STATUS] != schema.PENDING):
                continue
            after = {**before, schema.FIX_STATUS: status, schema.FIX_CURATOR: curator, schema.FIX_DECIDED_AT: at}
            changes.append(decisions.Change(sid, kind, action, before, after, curator, at))
    return _apply(ds, changes)


def auto_candidates(view, policy_name: str = "default", kinds: Iterable[str] | None = None) -> dict[str, list[str]]:
    """{kind: ids of the samples in ``view`` whose pending fix of that kind the policy passes}
    for every kind the policy covers (of ``kinds``, default all): what an auto-accept would
    change, so the App can show the count before it runs."""
    pol = policy.get(policy_name)
    out: dict[str, list[str]] = {}
    for kind in check_kinds(kinds) or list(schema.FIX_KINDS):
        field = FIX_FIELDS[kind]
        if kind not in pol.max_score or not view.has_sample_field(field):
            continue
        out[kind] = view.match((F(f"{field}.{schema.FIX_STATUS}") == schema.PENDING)
                               & (F(f"{field}.{schema.FIX_SCORE}") <= pol.max_score[kind])).values("id")
    return out


def decide_auto(ds: fo.Dataset, policy_name: str = "default", ids: Iterable[str] | None = None,
                kinds: Iterable[str] | None = None, view=None) -> dict[str, int]:
    """Accept the pending fixes that the auto-accept policy passes (of ``ids`` or ``view``,
    default every sample; of ``kinds``, default every kind the policy covers), as curator
    ``auto:<policy>``. Returns the fixes accepted per kind; the rest stay pending for a person."""
    pol = policy.get(policy_name)
    if ids is not None:
        view = ds.select(_existing_ids(ds, ids))
    found = auto_candidates(view if view is not None else ds, policy_name, kinds)
    return {kind: decide(ds, chosen, schema.ACCEPT, [kind], curator=pol.curator) if chosen else 0
            for kind, chosen in found.items()}


def set_label(ds: fo.Dataset, ids: Iterable[str], label: str, curator: str | None = None) -> int:
    """Set the curated label by hand (any class of the dataset), accepted at once."""
    classes = list(ds.info.get(schema.INFO_CLASSES) or ds.default_classes or [])
    if classes and label not in classes:
        raise FercurateError(f"'{label}' is not a class of dataset '{ds.name}'; choose from {', '.join(classes)}")
    ids = _existing_ids(ds, ids)
    curator = curator or config.curator()
    at = decisions.now()
    sample_ids, _, cols = _fix_columns(ds.select(ids, ordered=True))
    changes = []
    for sid, before in zip(sample_ids, cols[schema.RELABEL]):
        after = {schema.FIX_STATUS: schema.ACCEPTED, schema.FIX_SCORE: None, schema.FIX_PROPOSED_BY: "manual",
                 schema.FIX_TARGET: label, schema.FIX_CURATOR: curator, schema.FIX_DECIDED_AT: at}
        if before is not None:
            after = {**before, **{k: v for k, v in after.items() if k != schema.FIX_SCORE},
                     schema.FIX_PROPOSED_BY: "manual"}
        changes.append(decisions.Change(sid, schema.RELABEL, schema.SET_LABEL, before, after, curator, at))
    return _apply(ds, changes)


def undo(ds: fo.Dataset, ids: Iterable[str], kinds: Iterable[str] | None = None, curator: str | None = None) -> int:
    """Take back the latest (not yet undone) decision on each fix: the fix returns to what
    it was before it. Repeated undos walk further back. Returns how many fixes changed."""
    kinds = check_kinds(kinds)
    ids = _existing_ids(ds, ids)
    curator = curator or config.curator()
    at = decisions.now()
    changes = []
    for record in decisions.latest_effective(ds, ids, kinds or schema.FIX_KINDS):
        changes.append(decisions.Change(record["sample_id"], record["kind"], schema.UNDO, record["after"],
                                        record["before"], curator, at, undoes=record["_id"]))
    return _apply(ds, changes)
