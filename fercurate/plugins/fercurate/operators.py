"""The review operators: accept / reject / undo fixes, set a label, freeze a version, open a queue.

Each operator reads its parameters, resolves which samples they name, and calls one
function of :mod:`fercurate.fixes` or :mod:`fercurate.versions`; the decisions, the audit
trail and the versions are the package's business. The same operators run from the
backtick palette, from the review panel's bulk buttons and from Python
(``fiftyone.operators.execute_operator``).
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fercurate import config, fixes, manifest, policy, queues, schema, versions
from fercurate.errors import FercurateError

ALL_PENDING = "all pending"
SELECTED, VIEW = "selected samples", "current view"
POLICY_LABELS = {"none": "none", "class_weights": "class weights (effective number of samples)",
                 "oversample": "oversample minority classes"}

QUEUE_LABELS = schema.QUEUE_LABELS


# --- parameters shared by the operators -------------------------------------------------

def curator_input(inputs: types.Object) -> None:
    inputs.str("curator", label="Curator", default=config.curator(),
               description="recorded with every decision ($FERCURATE_CURATOR, else the OS user)")


def curator_of(ctx) -> str:
    return ctx.params.get("curator") or config.curator()


def kind_input(inputs: types.Object, default: str = ALL_PENDING) -> None:
    choices = types.Dropdown(label="Fixes")
    choices.add_choice(ALL_PENDING, label="every pending fix")
    for kind in schema.FIX_KINDS:
        choices.add_choice(kind, label=f"{kind} ({QUEUE_LABELS[kind]})")
    inputs.enum("kind", choices.values(), default=default, view=choices)


def kinds_of(ctx) -> list[str] | None:
    """``None`` (every pending fix) or the one kind the user chose."""
    kind = ctx.params.get("kind", ALL_PENDING)
    return None if kind == ALL_PENDING else [kind]


def queue_input(inputs: types.Object) -> None:
    """The ``queue`` parameter: one review queue (fix kind), label issues by default."""
    choices = types.Dropdown(label="Queue")
    for kind in schema.FIX_KINDS:
        choices.add_choice(kind, label=QUEUE_LABELS[kind])
    inputs.enum("queue", choices.values(), default=schema.RELABEL, view=choices)


def target_input(ctx, inputs: types.Object) -> None:
    choices = types.RadioGroup(label="Samples")
    choices.add_choice(SELECTED, label=f"the {len(ctx.selected)} selected samples")
    choices.add_choice(VIEW, label="every sample of the current view")
    inputs.enum("target", choices.values(), default=SELECTED if ctx.selected else VIEW, view=choices)


def chosen_target(ctx) -> str:
    """The target the user chose; by default the selection when there is one."""
    return ctx.params.get("target") or (SELECTED if ctx.selected else VIEW)


def target_view(ctx):
    """The samples the operator acts on: the App's selection or the whole current view."""
    if chosen_target(ctx) == SELECTED:
        if not ctx.selected:
            raise FercurateError("no samples are selected; select samples in the grid or choose 'current view'")
        return ctx.dataset.select(ctx.selected)
    return ctx.view


def target_ids(ctx) -> list[str]:
    """The ids of :func:`target_view`."""
    if chosen_target(ctx) == SELECTED and ctx.selected:
        return list(ctx.selected)  # no query: the one-decision path stays fast
    return target_view(ctx).values("id")


def changeable(counts: dict, kinds: list[str] | None, statuses: tuple[str, ...]) -> int:
    """How many fixes in ``counts`` (``fixes.counts`` of the targets) have one of ``statuses``."""
    chosen = schema.FIX_KINDS if kinds is None else kinds
    return sum(counts.get(k, {}).get(s, 0) for k in chosen for s in statuses)


def add_summary(inputs: types.Object, message: str, bulk: bool) -> None:
    view = types.Warning(label=message) if bulk else types.Notice(label=message)
    inputs.view("summary", view)


def finish(ctx, message: str) -> None:
    ctx.ops.notify(message, variant="success")
    ctx.ops.reload_samples()


# --- decide ------------------------------------------------------------------------------

class _Decide(foo.Operator):
    """Accept or reject the fixes of the selected samples or of the current view."""

    action = schema.ACCEPT
    verb = "accept"

    def resolve_input(self, ctx):
        inputs = types.Object()
        kind_input(inputs)
        target_input(ctx, inputs)
        curator_input(inputs)
        try:
            counts = queues.counts(target_view(ctx))
        except FercurateError as error:
            inputs.view("summary", types.Error(label=str(error)))
            return types.Property(inputs, view=types.View(label=f"{self.verb.capitalize()} fixes"))
        kinds = kinds_of(ctx)
        # "all pending" changes pending fixes only; a named kind changes every fix of that kind
        # not already in the target status (a change of mind).
        target = schema.ACCEPTED if self.action == schema.ACCEPT else schema.REJECTED
        statuses = (schema.PENDING,) if kinds is None else tuple(s for s in schema.FIX_STATUSES if s != target)
        n = changeable(counts, kinds, statuses)
        add_summary(inputs, f"This will {self.verb} {n} fix(es).", chosen_target(ctx) == VIEW)
        return types.Property(inputs, view=types.View(label=f"{self.verb.capitalize()} fixes"))

    def execute(self, ctx):
        ids = target_ids(ctx)
        changed = fixes.decide(ctx.dataset, ids, self.action, kinds=kinds_of(ctx), curator=curator_of(ctx))
        finish(ctx, f"{self.verb}ed {changed} fix(es) on {len(ids)} sample(s)")
        return {"changed": changed, "samples": len(ids)}


class AcceptFixes(_Decide):
    action, verb = schema.ACCEPT, "accept"

    @property
    def config(self):
        return foo.OperatorConfig(name="accept_fixes", label="fercurate: accept fixes", dynamic=True,
                                  description="accept the proposed fixes of the selected samples or of the view")


class RejectFixes(_Decide):
    action, verb = schema.REJECT, "reject"

    @property
    def config(self):
        return foo.OperatorConfig(name="reject_fixes", label="fercurate: reject fixes", dynamic=True,
                                  description="reject the proposed fixes of the selected samples or of the view")


class UndoFixes(foo.Operator):
    """Put fixes back to the status they had before their latest decision."""

    @property
    def config(self):
        return foo.OperatorConfig(name="undo_fixes", label="fercurate: undo decisions", dynamic=True,
                                  description="undo the latest decision on the fixes of the selection or the view")

    def resolve_input(self, ctx):
        inputs = types.Object()
        kind_input(inputs, default=ALL_PENDING)
        target_input(ctx, inputs)
        curator_input(inputs)
        try:
            counts = queues.counts(target_view(ctx))
        except FercurateError as error:
            inputs.view("summary", types.Error(label=str(error)))
            return types.Property(inputs, view=types.View(label="Undo decisions"))
        n = changeable(counts, kinds_of(ctx), (schema.ACCEPTED, schema.REJECTED))
        add_summary(inputs, f"This will undo the latest decision on {n} decided fix(es).",
                    chosen_target(ctx) == VIEW)
        return types.Property(inputs, view=types.View(label="Undo decisions"))

    def execute(self, ctx):
        ids = target_ids(ctx)
        changed = fixes.undo(ctx.dataset, ids, kinds=kinds_of(ctx), curator=curator_of(ctx))
        finish(ctx, f"undid {changed} decision(s) on {len(ids)} sample(s)")
        return {"changed": changed, "samples": len(ids)}


class DecideByScore(foo.Operator):
    """Accept a whole queue's strongest fixes (score at most T) or reject its weakest (score at
    least T): the bulk decision for thousands of faces, with the count shown before it runs."""

    @property
    def config(self):
        return foo.OperatorConfig(name="decide_by_score", label="fercurate: accept / reject a queue by score",
                                  dynamic=True,
                                  description="accept a queue's pending fixes with score <= T (strongest evidence) "
                                              "or reject those with score >= T (weakest)")

    def resolve_input(self, ctx):
        inputs = types.Object()
        queue_input(inputs)
        action = types.RadioGroup(label="Decision")
        action.add_choice(schema.ACCEPT, label="accept fixes with score at most the threshold (strongest evidence)")
        action.add_choice(schema.REJECT, label="reject fixes with score at least the threshold (weakest evidence)")
        inputs.enum("action", action.values(), default=schema.ACCEPT, view=action)
        inputs.float("threshold", label="Score threshold", default=0.3, min=0.0, max=1.0,
                     description="a fix's score: lower = stronger case for the fix")
        curator_input(inputs)
        try:
            ids, pending = self._targets(ctx)
        except FercurateError as error:
            inputs.view("summary", types.Error(label=str(error)))
            return types.Property(inputs, view=types.View(label="Decide a queue by score"))
        verb = "accept" if ctx.params.get("action", schema.ACCEPT) == schema.ACCEPT else "reject"
        side = "≤" if verb == "accept" else "≥"
        add_summary(inputs, f"This will {verb} {len(ids)} of the {pending} pending "
                            f"'{QUEUE_LABELS[self._kind(ctx)]}' fixes (score {side} {self._threshold(ctx):.3f}).",
                    True)
        return types.Property(inputs, view=types.View(label="Decide a queue by score"))

    @staticmethod
    def _kind(ctx) -> str:
        return ctx.params.get("queue") or schema.RELABEL

    @staticmethod
    def _threshold(ctx) -> float:
        value = ctx.params.get("threshold")
        return 0.3 if value is None else float(value)

    def _targets(self, ctx) -> tuple[list[str], int]:
        """(ids the decision changes, pending fixes of the queue) over the whole dataset."""
        kind, t = self._kind(ctx), self._threshold(ctx)
        accept = ctx.params.get("action", schema.ACCEPT) == schema.ACCEPT
        ids = queues.pending_by_score(ctx.dataset, kind, at_most=t if accept else None,
                                      at_least=None if accept else t)
        return ids, queues.counts(ctx.dataset)[kind][schema.PENDING]

    def execute(self, ctx):
        kind, action = self._kind(ctx), ctx.params.get("action", schema.ACCEPT)
        ids, _ = self._targets(ctx)
        changed = fixes.decide(ctx.dataset, ids, action, kinds=[kind], curator=curator_of(ctx)) if ids else 0
        finish(ctx, f"{action}ed {changed} '{QUEUE_LABELS[kind]}' fix(es) by score")
        return {"changed": changed, "kind": kind, "action": action, "threshold": self._threshold(ctx)}


# --- set a label by hand -----------------------------------------------------------------

def dataset_classes(ds) -> list[str]:
    """Every class a sample may be set to: the dataset's class list, else the labels it uses."""
    return list(ds.info.get(schema.INFO_CLASSES) or ds.distinct(f"{schema.GROUND_TRUTH}.label"))


class SetLabel(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="set_label", label="fercurate: set label", dynamic=True,
                                  description="relabel the selected samples to any class (recorded as a manual fix)")

    def resolve_input(self, ctx):
        inputs = types.Object()
        classes = types.Dropdown(label="Label")
        for name in dataset_classes(ctx.dataset):
            classes.add_choice(name, label=name)
        inputs.enum("label", classes.values(), required=True, view=classes)
        curator_input(inputs)
        n = len(ctx.selected)
        message = f"This will set the label of {n} selected sample(s)." if n else "Select samples in the grid first."
        inputs.view("summary", types.Notice(label=message) if n else types.Warning(label=message))
        return types.Property(inputs, view=types.View(label="Set label"))

    def execute(self, ctx):
        if not ctx.selected:
            raise FercurateError("no samples are selected; select the samples to relabel in the grid")
        label = ctx.params["label"]
        changed = fixes.set_label(ctx.dataset, list(ctx.selected), label, curator=curator_of(ctx))
        finish(ctx, f"set label '{label}' on {changed} sample(s)")
        return {"changed": changed, "label": label}


# --- freeze a version --------------------------------------------------------------------

class FreezeVersion(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="freeze_version", label="fercurate: freeze version", dynamic=True,
                                  description="write an immutable version of the curated dataset and a saved view")

    def resolve_input(self, ctx):
        inputs = types.Object()
        name = inputs.str("name", label="Version name", required=True, default=versions.next_name(ctx.dataset))
        if ctx.params.get("name") in versions.version_names(ctx.dataset):
            name.invalid = True
            name.error_message = f"version '{ctx.params['name']}' exists; versions are immutable, pick another name"
        policy = types.RadioGroup(label="Rebalancing policy")
        for value in manifest.POLICIES:
            policy.add_choice(value, label=POLICY_LABELS.get(value, value))
        inputs.enum("policy", policy.values(), default="none", view=policy)
        curator_input(inputs)
        pending = changeable(queues.counts(ctx.dataset), None, (schema.PENDING,))
        message = (f"{pending} fix(es) are still pending: those samples keep their original label and are kept."
                   if pending else "Every proposed fix has been decided.")
        inputs.view("summary", types.Warning(label=message) if pending else types.Notice(label=message))
        return types.Property(inputs, view=types.View(label="Freeze version"))

    def execute(self, ctx):
        name = ctx.params.get("name") or versions.next_name(ctx.dataset)
        version = versions.freeze(ctx.dataset, name, policy=ctx.params.get("policy", "none"),
                                  curator=curator_of(ctx))
        ctx.ops.notify(f"froze version '{name}'", variant="success")
        ctx.ops.reload_dataset()  # the new saved view appears in the App's view menu
        return {"name": name, "version": version}


# --- auto-accept -------------------------------------------------------------------------

class AutoAccept(foo.Operator):
    """Accept only the pending fixes an auto-accept policy passes (one score threshold per kind)."""

    @property
    def config(self):
        return foo.OperatorConfig(name="auto_accept", label="fercurate: auto-accept confident fixes",
                                  description="accept the pending fixes above each kind's confidence threshold, "
                                              "as curator auto:<policy>; the rest stay pending for review")

    def resolve_input(self, ctx):
        inputs = types.Object()
        choices = types.Dropdown(label="Policy")
        for name, pol in policy.POLICIES.items():
            choices.add_choice(name, label=f"{name}: {pol.description}")
        inputs.enum("policy", choices.values(), default="default", view=choices)
        kind_input(inputs)
        target_input(ctx, inputs)
        try:
            found = fixes.auto_candidates(target_view(ctx), ctx.params.get("policy", "default"), kinds_of(ctx))
        except FercurateError as error:
            inputs.view("summary", types.Error(label=str(error)))
            return types.Property(inputs, view=types.View(label="Auto-accept fixes"))
        detail = ", ".join(f"{QUEUE_LABELS[k]} {len(v)}" for k, v in found.items() if v) or "nothing passes"
        add_summary(inputs, f"This will accept {sum(map(len, found.values()))} fix(es): {detail}.", True)
        return types.Property(inputs, view=types.View(label="Auto-accept fixes"))

    def execute(self, ctx):
        name = ctx.params.get("policy", "default")
        view = ctx.dataset.select(ctx.selected) if chosen_target(ctx) == SELECTED and ctx.selected else ctx.view
        done = fixes.decide_auto(ctx.dataset, name, kinds=kinds_of(ctx), view=view)
        finish(ctx, f"auto-accepted {sum(done.values())} fix(es) as {policy.get(name).curator}")
        return {"accepted": done, "curator": policy.get(name).curator}


# --- open a review queue -----------------------------------------------------------------

def show_queue(ctx, kind: str) -> None:
    """Set the App's view to the queue of ``kind`` (its saved view when there is one)."""
    name = schema.QUEUE_VIEWS[kind]
    if ctx.dataset.has_saved_view(name):
        ctx.ops.set_view(name=name)
    else:
        ctx.ops.set_view(view=queues.queue_view(ctx.dataset, kind))


class OpenQueue(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="open_queue", label="fercurate: open review queue",
                                  description="show a review queue in the grid, pending and strongest evidence first")

    def resolve_input(self, ctx):
        inputs = types.Object()
        queue_input(inputs)
        return types.Property(inputs, view=types.View(label="Open review queue"))

    def execute(self, ctx):
        kind = ctx.params.get("queue", schema.RELABEL)
        show_queue(ctx, kind)
        return {"queue": kind, "view": schema.QUEUE_VIEWS[kind]}


OPERATORS = (AcceptFixes, RejectFixes, DecideByScore, UndoFixes, SetLabel, FreezeVersion, AutoAccept, OpenQueue)
