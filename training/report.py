"""``report.md``: the run's tables and plots, written from metrics.json alone (so it can be rebuilt)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _acc(split: dict | None, which: str) -> float | None:
    return None if not split else split[which]["accuracy"]


def plot_strength(strength: dict[str, dict[str, float]], classes: list[str], path: Path) -> None:
    """Teacher x class heatmap of the EADD strength (val per-class F1)."""
    names = list(strength)
    m = np.array([[strength[n][c] for c in classes] for n in names])
    fig, ax = plt.subplots(figsize=(1 + 0.9 * len(classes), 1 + 0.5 * len(names)))
    ax.imshow(m, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(classes)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if m[i, j] < 0.5 else "black")
    ax.set_title("teacher strength s[t,c] (val per-class F1)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_losses(metrics: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, t in metrics["teachers"].items():
        if t.get("loss_per_epoch"):
            ax.plot(t["loss_per_epoch"], "--", label=f"teacher {name}")
    for mode, s in metrics["students"].items():
        if s.get("distill_loss_per_epoch"):
            ax.plot(s["distill_loss_per_epoch"], label=f"student {mode}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _header(metrics: dict) -> list[str]:
    m = metrics["manifest"]
    lines = ["# Training report", "",
             f"Manifest: dataset `{m['dataset']}`, version `{m['version']}`, {m['num_samples']} samples, "
             f"`{m['content_hash']}`, policy `{m['policy'].get('name')}`. Profile `{metrics['profile']}`, "
             f"seed {metrics['seed']}, device `{metrics['device']}`, world size {metrics['world_size']}.", "",
             f"Split sizes used: {', '.join(f'{k} {v}' for k, v in metrics['split_sizes'].items())}."]
    if metrics.get("soft_label_weight"):
        w = metrics["soft_label_weight"]
        lines.append(f"Trained on soft labels: target = {1 - w:g} x the label + {w:g} x the manifest's soft_label "
                     "(adversarial fine-tuning on the labels alone).")
    if metrics["val_from_train"]["carved"]:
        lines.append(f"**The manifest has no val split**: val is a seeded stratified "
                     f"{metrics['val_from_train']['fraction']:.0%} slice of train (removed from training).")
    lines += ["", "Accuracies are given twice: **curated** = against the manifest's labels, **raw** = against the "
              "`original_label`s. FER2013's raw test labels are noisy, so a model trained on cleaned labels may "
              "look worse on raw labels while being better.", ""]
    for msg in metrics.get("log", []):
        if msg.startswith("warning") or "no val split" in msg:
            lines.append(f"> {msg}")
    return lines


def _teacher_table(metrics: dict) -> list[str]:
    if not metrics["teachers"]:
        return []
    lines = ["## Teachers", "", "| teacher | params | trained here | val acc curated | test acc curated | test acc raw "
             "| test macro-F1 |", "|---|---:|---|---:|---:|---:|---:|"]
    adopted = metrics.get("teachers_from")
    for name, t in metrics["teachers"].items():
        if "test" not in t:
            continue
        epochs = t.get("epochs")
        span = "" if not epochs else f"{epochs:g} epoch{'s' * (epochs != 1)}"
        trained = "–" if epochs is None else (span or "no (used as shipped)")
        if t.get("pretrained") and epochs:
            trained = f"fine-tuned {span}"
        if adopted and epochs:
            trained = f"no: {trained} in seed {adopted['seed']}'s run"
        lines.append(f"| {name} | {t['params']:,} | {trained} | {_pct(_acc(t['val'], 'curated'))} | {_pct(_acc(t['test'], 'curated'))} "
                     f"| {_pct(_acc(t['test'], 'raw'))} | {_pct(t['test']['curated']['macro_f1'])} |")
    if adopted:
        lines += ["", f"The teachers are those of `{adopted['run']}` (seed {adopted['seed']}, `--teachers-from`): trained "
                  "there, evaluated here; the students of both runs learn from the very same teachers."]
    return lines + ["", "![teacher strength](plots/teacher-strength.png)", ""]


def _time_table(metrics: dict) -> list[str]:
    """Where the wall time went (seconds of training per stage, summed over resumes)."""
    # adopted teachers (--teachers-from) keep the training time of the run that trained them: not this run's
    where = f" (in `{metrics['teachers_from']['run']}`, not this run)" if metrics.get("teachers_from") else ""
    rows = [(f"teacher {n}{where}", t.get("train_seconds")) for n, t in metrics["teachers"].items()]
    if metrics.get("view_bank"):
        rows.append((f"view bank: teachers' logits on {metrics['view_bank']['views']} views", metrics["view_bank"]["seconds"]))
    for mode, st in metrics["students"].items():
        rows += [(f"student {mode}: distillation", st.get("distill_seconds")),
                 (f"student {mode}: adversarial fine-tuning", st.get("adversarial_seconds"))]
    rows = [(k, v) for k, v in rows if v is not None]
    if not rows:
        return []
    lines = ["## Time", "", "| stage | seconds |", "|---|---:|"] + [f"| {k} | {v:,.0f} |" for k, v in rows]
    if metrics.get("wall_s") is not None:
        lines.append(f"| **whole run** (loading, evaluation and export included) | **{metrics['wall_s']:,.0f}** |")
    return lines + [""]


def _rebalance_lines(metrics: dict) -> list[str]:
    """The class offsets the rebalance added after the fine-tune (training.rebalance), per student."""
    lines = []
    for mode, s in metrics["students"].items():
        offsets = s.get("adversarial", {}).get("rebalance", {}).get("class_offsets")
        if offsets:
            shown = ", ".join(f"{c} {v:+.2f}" for c, v in offsets.items())
            lines.append(f"- {mode}: logit offsets added after the fine-tune so each class is predicted on val as "
                         f"often as before it (`--adv-rebalance`): {shown}")
    return ["", *lines] if lines else []


def _student_tables(metrics: dict, classes: list[str]) -> list[str]:
    lines = ["## Students (ablations)", "",
             "`ce` = student alone on hard labels, `kd` = uniform multi-teacher KD, `eadd` = Emotion-Aware Dynamic "
             "Distillation. *distilled* = after distillation, *robust* = after adversarial fine-tuning.", "",
             "| mode | stage | test acc curated | test acc raw | test macro-F1 curated | val acc curated |",
             "|---|---|---:|---:|---:|---:|"]
    for mode, s in metrics["students"].items():
        for stage in ("distilled", "adversarial"):
            if stage in s:
                r = s[stage]
                lines.append(f"| {mode} | {'robust' if stage == 'adversarial' else stage} | {_pct(_acc(r['test'], 'curated'))} "
                             f"| {_pct(_acc(r['test'], 'raw'))} | {_pct(r['test']['curated']['macro_f1'])} "
                             f"| {_pct(_acc(r['val'], 'curated'))} |")
    lines += collapse_warnings(metrics, classes)
    lines += ["", "### Per-class test recall (curated labels, after adversarial fine-tuning)", "",
              "| mode | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for mode, s in metrics["students"].items():
        if "adversarial" in s:
            rec = s["adversarial"]["test"]["curated"]["per_class_recall"]
            lines.append(f"| {mode} | " + " | ".join(_pct(rec[c]) for c in classes) + " |")
    lines += _rebalance_lines(metrics)
    lines += _robust_table(metrics) + _speed_table(metrics) + _eval_manifest_table(metrics) + [""]
    for mode, s in metrics["students"].items():
        if "adversarial" in s:
            lines += [f"![confusion {mode}]({s['adversarial']['confusion_png']})"]
    lines += _mistakes_section(metrics)
    return lines + ["", "![training loss](plots/losses.png)", ""]


#: A model that gives one class to more than this share of the test images has collapsed.
COLLAPSE_SHARE = 0.8


def collapse_warnings(metrics: dict, classes: list[str]) -> list[str]:
    """A warning line for every student state that predicts one class for most test images.

    Such a model can look robust (its answer does not move under attack) while being useless;
    an over-eager adversarial fine-tune produces exactly that.
    """
    lines = []
    for mode, s in metrics["students"].items():
        for stage in ("distilled", "adversarial"):
            if stage not in s:
                continue
            predicted = np.asarray(s[stage]["test"]["curated"]["confusion_matrix"]).sum(axis=0)
            top = int(predicted.argmax())
            share = predicted[top] / max(1, predicted.sum())
            if share > COLLAPSE_SHARE:
                name = "robust" if stage == "adversarial" else stage
                fix = ("lower the adversarial lr or eps (`--adv-eps`) and retrain" if stage == "adversarial" else
                       "train longer (`--epochs`) or check the labels and the policy")
                lines.append(f"- **Warning:** `{mode}` ({name}) predicts {classes[top]} for {share:.0%} of the test "
                             f"images: it has collapsed; {fix}.")
    return [""] + lines if lines else []


#: robust-accuracy columns, in the order the report shows them, and their headers
ATTACK_COLUMNS = {"fgsm": "FGSM", "pgd": "PGD", "apgd_ce": "APGD-CE", "apgd_t_dlr": "APGD-T", "worst": "worst"}


def _robust_table(metrics: dict) -> list[str]:
    rows = []
    for mode, s in metrics["students"].items():
        for stage in ("distilled", "adversarial"):
            if stage in s:
                rows.append((mode, "robust" if stage == "adversarial" else stage, s[stage]["robust"]))
    if not rows:
        return []
    r0 = rows[0][2]
    eps = list(r0["fgsm"])
    attacks = [a for a in ATTACK_COLUMNS if a in r0]
    n_test = metrics["split_sizes"]["test"]
    which = "all test images" if r0["n_images"] >= n_test else f"a seeded random subset of {r0['n_images']} of the {n_test} test images"
    how = f"PGD {r0['pgd_steps']} steps × {r0.get('pgd_restarts', 1)} start(s)"
    if r0.get("apgd_steps"):
        how += f", APGD {r0['apgd_steps']} steps"
    lines = ["", f"### Robust accuracy (curated labels, {which}; {how})", "",
             "| mode | stage | clean | " + " | ".join(f"{ATTACK_COLUMNS[a]} {e}" for a in attacks for e in eps) + " |",
             "|---|---|---:|" + "---:|" * (len(attacks) * len(eps))]
    for mode, stage, r in rows:
        lines.append(f"| {mode} | {stage} | {_pct(r['clean'])} | "
                     + " | ".join(_pct(r[a][e]) for a in attacks for e in eps) + " |")
    masked = [(mode, stage, r["masking"]) for mode, stage, r in rows if r.get("masking")]
    if "worst" in r0:
        lines += ["", "*worst*: an image counts only if it survives every attack above; that is the robust accuracy."]
    for mode, stage, at in masked:
        lines.append(f"- **Warning:** `{mode}` ({stage}): at {', '.join(at)} a stronger or one-step attack beats PGD "
                     "by more than 3 points: its PGD robustness is gradient masking, not robustness; trust *worst*.")
    return lines


def _speed_table(metrics: dict) -> list[str]:
    lines = ["", "### Size and speed (final student, CPU; indicative on a shared machine)", "",
             "| mode | params | torch ms/img | ONNX Runtime ms/img | torch throughput img/s | ONNX max abs diff |",
             "|---|---:|---:|---:|---:|---:|"]
    for mode, s in metrics["students"].items():
        if "speed" in s:
            sp = s["speed"]
            ort_ms = s["onnx"].get("ort_latency_ms_batch1_1thread")
            lines.append(f"| {mode} | {s['params']:,} | {sp['latency_ms_batch1_1thread']:.2f} | "
                         f"{'–' if ort_ms is None else f'{ort_ms:.2f}'} | "
                         f"{sp['throughput_img_s']:.0f} (batch {sp['throughput_batch']}, {sp['throughput_threads']} thread{'s' * (sp['throughput_threads'] != 1)}) "
                         f"| {s['onnx']['max_abs_diff']:.2e} |")
    lines += ["", "Latencies: median of one image (batch 1) on one thread; the ONNX file is what a deployment runs."]
    return lines


def _mistakes_section(metrics: dict) -> list[str]:
    """The final students' most confident test mistakes: on FER2013 often label errors, not model errors."""
    shown = [(mode, s["adversarial"]) for mode, s in metrics["students"].items()
             if "mistakes_png" in s.get("adversarial", {})]
    if not shown:
        return []
    lines = ["", "### Most confident test mistakes (final students, curated labels)", "",
             "The faces each student gets wrong with the highest confidence. On FER2013 many are mislabeled: "
             "look at them, and send those back to review (their paths are in `metrics.json` under "
             "`confident_mistakes`, every prediction in `predictions/`) before trusting the accuracy.", ""]
    for mode, r in shown:
        lines.append(f"![most confident mistakes {mode}]({r['mistakes_png']})")
    return lines


def _eval_manifest_table(metrics: dict) -> list[str]:
    if "eval_manifest" not in metrics:
        return []
    em = metrics["eval_manifest"]
    lines = ["", f"### Test split of the evaluation manifest `{em['version']}` ({em['source']})", "",
             "The students on every test image of that manifest, against its labels.", "",
             "| mode | stage | images | test acc curated | test acc raw | macro-F1 curated |", "|---|---|---:|---:|---:|---:|"]
    for mode, s in metrics["students"].items():
        stages = [("distilled", s.get("distilled", {}).get("eval_manifest_test")), ("robust", s.get("eval_manifest_test"))]
        for stage, r in stages:
            if r is not None:
                lines.append(f"| {mode} | {stage} | {r.get('n_images', '–')} | {_pct(_acc(r, 'curated'))} "
                             f"| {_pct(_acc(r, 'raw'))} | {_pct(r['curated']['macro_f1'])} |")
    return lines


def write_report(out: Path, metrics: dict, classes: list[str]) -> Path:
    """Writes plots and report.md into the run folder; returns the report's path."""
    (out / "plots").mkdir(exist_ok=True)
    strengths = {n: t["strength_val_f1"] for n, t in metrics["teachers"].items() if "strength_val_f1" in t}
    if strengths:
        plot_strength(strengths, classes, out / "plots" / "teacher-strength.png")
    plot_losses(metrics, out / "plots" / "losses.png")
    lines = _header(metrics) + _teacher_table(metrics) + _student_tables(metrics, classes) + _time_table(metrics)
    lines += ["", "Files: `metrics.json` (every number), `predictions/*.csv` (per image: path, curated label, raw label, "
              "prediction, probabilities), `student-<mode>.onnx`, `checkpoints/`, `config.json`, `manifest_header.json`.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
