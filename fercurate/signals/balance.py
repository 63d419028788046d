"""balance: class counts per split as ingested and after the proposed fixes, and a plan
to rebalance the training split.

The proposed fixes are whatever the other signals have written so far: a sample flagged
``is_duplicate``, ``is_unusable`` or ``is_low_quality`` is dropped, one flagged
``is_label_issue`` is relabelled to ``suggested_label.label``. A field that does not exist
yet proposes nothing, so this signal runs first or last alike; because it reads those
fields, its fingerprint hashes their values, and any change to them makes it stale.

The plan is computed on the train split after the fixes (val and test are left as they
are: rebalancing them would change what the numbers measure), in ``dataset.info["balance"]``:

- loss weights, by the "effective number of samples" of Cui et al., "Class-Balanced Loss
  Based on Effective Number of Samples" (CVPR 2019): a class with n samples weighs
  ``(1 - beta) / (1 - beta**n)``, normalised so the weights average 1 over the classes
  present. beta -> 0 gives equal weights, beta -> 1 inverse frequency; beta = 0.9999 is
  the value the paper found best on its most imbalanced sets. ``weighting =
  "inverse_frequency"`` gives ``N / (C * n)`` instead (scikit-learn's "balanced"). A class
  without samples gets weight 0 (there is nothing to weigh);
- oversampling: every class is repeated up to ``oversample_to`` ("median" or "max") of
  the class counts; ``repeat`` is the factor (>= 1) to apply to each class.

A class is under-represented when its train count after the fixes is below
``minority_ratio`` times the median class count (on FER2013: disgust, 436 train images
against a median of 4,097); ``flagged`` counts those classes plus the classes without
any train image.

A grouped bar chart (before vs after the fixes, one panel per split) is written to
``<FERCURATE_HOME>/reports/<dataset>/balance.png``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import fiftyone as fo
import numpy as np

from fercurate import config, schema
from fercurate.errors import FercurateError
from fercurate.signals import register
from fercurate.signals.base import SampleTable, Signal, SignalResult

#: flags whose samples a fix drops
DROP_FLAGS: tuple[str, ...] = (schema.IS_DUPLICATE, schema.IS_UNUSABLE, schema.IS_LOW_QUALITY)
WEIGHTINGS = ("effective_number", "inverse_frequency")
TARGETS = ("median", "max")


@dataclass
class BalanceParams:
    #: "effective_number" (Cui et al. 2019) or "inverse_frequency"
    weighting: str = "effective_number"
    #: beta of the effective number of samples
    beta: float = 0.9999
    #: class count every train class is oversampled up to: "median" or "max"
    oversample_to: str = "median"
    #: a class below this fraction of the median train class count is under-represented
    minority_ratio: float = 0.5


@dataclass
class FixInputs:
    """The other signals' proposals, one value per sample in table order (None: no field)."""

    drop: dict[str, list | None]
    relabel_flag: list | None
    relabel_to: list | None

    def to_json(self) -> str:
        return json.dumps([self.drop, self.relabel_flag, self.relabel_to], sort_keys=True, default=str)


def read_fix_inputs(ds: fo.Dataset, table: SampleTable) -> FixInputs:
    def column(path: str) -> list | None:
        if not ds.has_sample_field(path.split(".")[0]):
            return None
        ids, values = ds.values(["id", path])
        by_id = dict(zip(ids, values))
        return [by_id.get(i) for i in table.ids]

    return FixInputs({f: column(f) for f in DROP_FLAGS}, column(schema.IS_LABEL_ISSUE),
                     column(f"{schema.SUGGESTED_LABEL}.label"))


def labels_after_fixes(table: SampleTable, fixes: FixInputs) -> tuple[list[str | None], dict]:
    """Each sample's label once the fixes are applied (None: dropped), and what changed."""
    labels: list[str | None] = list(table.labels)
    dropped = {f: 0 for f in DROP_FLAGS}
    for i in range(len(labels)):
        reasons = [f for f, values in fixes.drop.items() if values is not None and values[i] is True]
        if reasons:
            labels[i] = None
            dropped[reasons[0]] += 1  # counted once, under the first reason in DROP_FLAGS order
    relabelled = 0
    if fixes.relabel_flag is not None and fixes.relabel_to is not None:
        for i, (flag, new) in enumerate(zip(fixes.relabel_flag, fixes.relabel_to)):
            if labels[i] is not None and flag is True and new and new != labels[i]:
                labels[i] = new
                relabelled += 1
    return labels, {"dropped": dropped, "dropped_total": sum(dropped.values()), "relabelled": relabelled,
                    "fields_missing": [f for f, v in fixes.drop.items() if v is None]
                    + ([schema.IS_LABEL_ISSUE] if fixes.relabel_flag is None else [])}


def count_by_split(labels: list[str | None], splits: list[str], classes: list[str]) -> dict[str, dict[str, int]]:
    """{split: {class: n}} with every class listed (zeros included); None labels skipped."""
    counts: dict[str, dict[str, int]] = {}
    for split in [s for s in schema.SPLITS if s in splits] + sorted(set(splits) - set(schema.SPLITS)):
        counts[split] = {c: 0 for c in classes}
    for label, split in zip(labels, splits):
        if label is not None:
            counts[split][label] = counts[split].get(label, 0) + 1
    return counts


def class_weights(counts: dict[str, int], weighting: str, beta: float) -> dict[str, float]:
    """Per-class loss weights averaging 1 over the classes present (module docstring)."""
    n = np.array(list(counts.values()), dtype=np.float64)
    present = n > 0
    raw = np.zeros_like(n)
    if weighting == "effective_number":
        raw[present] = (1.0 - beta) / (1.0 - np.power(beta, n[present]))
    else:
        raw[present] = n[present].sum() / (present.sum() * n[present])
    if present.any():
        raw[present] /= raw[present].mean()
    return {c: round(float(w), 4) for c, w in zip(counts, raw)}


def oversampling_plan(counts: dict[str, int], target: str) -> dict:
    present = [n for n in counts.values() if n > 0]
    goal = int(np.median(present)) if target == "median" and present else max(present, default=0)
    return {"target": target, "target_count": goal,
            "repeat": {c: round(max(1.0, goal / n), 3) if n else 0.0 for c, n in counts.items()},
            "counts_after_oversampling": {c: max(n, goal) if n else 0 for c, n in counts.items()}}


def minority_classes(counts: dict[str, int], ratio: float) -> list[str]:
    """Classes with samples, but fewer than ``ratio`` times the median class count."""
    present = [n for n in counts.values() if n > 0]
    if not present:
        return []
    bar = ratio * float(np.median(present))
    return [c for c, n in counts.items() if 0 < n < bar]


def draw_chart(before: dict, after: dict, classes: list[str], title: str, path: Path) -> Path:
    """Grouped bars (as ingested vs after fixes) per class, one panel per split."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(before)
    fig, axes = plt.subplots(1, max(1, len(splits)), figsize=(4.2 * max(1, len(splits)), 3.8), squeeze=False)
    x = np.arange(len(classes))
    for ax, split in zip(axes[0], splits):
        b = [before[split].get(c, 0) for c in classes]
        a = [after[split].get(c, 0) for c in classes]
        ax.bar(x - 0.2, b, 0.4, label="as ingested", color="#9aa5b1")
        ax.bar(x + 0.2, a, 0.4, label="after fixes", color="#2b6cb0")
        for xi, v in zip(x, a):
            ax.text(xi + 0.2, v, str(v), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, classes, rotation=45, ha="right")
        ax.set_title(f"{split} ({sum(b)} -> {sum(a)})")
        ax.set_ylabel("images")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@register
class BalanceSignal(Signal):
    """Class counts per split before and after the proposed fixes, and a rebalancing plan."""

    name = "balance"
    requires = ()
    uses_labels = True

    def default_params(self) -> BalanceParams:
        return BalanceParams()

    def fingerprint(self, table: SampleTable, upstream: dict[str, str]) -> str:
        """Also hashes the fix fields it reads, so a changed proposal makes it stale."""
        h = hashlib.sha256(super().fingerprint(table, upstream).encode())
        ds = fo.load_dataset(table.dataset_name)
        ds.reload()  # the other signals may have added fields through another handle
        h.update(read_fix_inputs(ds, table).to_json().encode())
        return h.hexdigest()

    def check_params(self) -> BalanceParams:
        p: BalanceParams = self.params
        if p.weighting not in WEIGHTINGS:
            raise FercurateError(f"balance: weighting '{p.weighting}' unknown; use one of {', '.join(WEIGHTINGS)}")
        if p.oversample_to not in TARGETS:
            raise FercurateError(f"balance: oversample_to '{p.oversample_to}' unknown; use one of {', '.join(TARGETS)}")
        if not 0.0 <= p.beta < 1.0:
            raise FercurateError(f"balance: beta {p.beta} must be in [0, 1)")
        return p

    def compute(self, ds: fo.Dataset, table: SampleTable, work_dir: Path) -> SignalResult:
        p = self.check_params()
        after_labels, changes = labels_after_fixes(table, read_fix_inputs(ds, table))
        before = count_by_split(table.labels, table.splits, table.classes)
        after = count_by_split(after_labels, table.splits, table.classes)
        basis = schema.TRAIN if schema.TRAIN in after else next(iter(after), None)
        train = after.get(basis, {c: 0 for c in table.classes})
        weights = class_weights(train, p.weighting, p.beta)
        plan = oversampling_plan(train, p.oversample_to)
        minority = minority_classes(train, p.minority_ratio)
        absent = [c for c, n in train.items() if n == 0]
        chart = draw_chart(before, after, table.classes, f"{ds.name}: images per class",
                           config.reports_dir(ds.name) / "balance.png")
        info = {"counts_before": before, "counts_after": after, "fixes": changes, "basis_split": basis,
                "weights": weights, "weighting": {"method": p.weighting, "beta": p.beta},
                "oversampling": plan, "minority_classes": minority, "absent_classes": absent,
                "chart": str(chart)}

        def finish(ds: fo.Dataset) -> None:
            ds.info[schema.INFO_BALANCE] = info
            ds.save()
        return SignalResult({"total": len(table), "flagged": len(minority) + len(absent), "top": [], **info},
                            finish=finish)
