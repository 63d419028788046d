"""The run folder: the resolved configuration and the manifest trained on, written once and
checked on ``--resume`` (see :mod:`training.run` for the layout)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from training.errors import TrainingError
from training.manifest import Manifest
from training.profiles import Profile
from training.runtime import write_json


@dataclass
class RunConfig:
    out: str
    profile: Profile
    modes: tuple[str, ...] = ("eadd",)
    seed: int = 0
    device: str = "auto"
    teachers_explicit: bool = False
    stop_after_steps: int | None = None   # simulate an interruption (tests, time-boxed jobs)
    teachers_from: str | None = None      # another run folder whose trained teachers this run reuses

    def to_dict(self) -> dict:
        return {"profile": self.profile.to_dict(), "modes": list(self.modes), "seed": self.seed,
                "teachers_explicit": self.teachers_explicit, "teachers_from": self.teachers_from}


#: command-line option -> the saved config's fields it sets (profile fields unless "modes"/"seed")
RESUME_CHECKED: dict[str, tuple[str, ...]] = {
    "profile": ("name",), "teachers": ("teachers",), "soft_labels": ("soft_label_weight",),
    "epochs": ("teacher_epochs", "student_epochs", "adv_epochs"), "adv_method": ("adv_method",),
    "adv_rebalance": ("adv_rebalance",),
    "adv_eps": ("adv_eps",), "adv_steps": ("adv_steps",), "trades_beta": ("trades_beta",),
    "mode": ("modes",), "ablations": ("modes",), "seed": ("seed",),
    "robust_images": ("robust_max_images",), "apgd_steps": ("robust_apgd_steps",),
    "teachers_from": ("teachers_from",),
}
#: saved-config keys that live at the top level, not in the profile
_TOP_LEVEL = ("modes", "seed", "teachers_from")


def read_run_json(path: Path, option: str) -> dict:
    """One JSON object of a run folder, or a one-line :class:`TrainingError` naming the file: a
    folder half-copied, hand-edited or written by something else must not end in a traceback."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainingError(f"{option}: {path} is missing, so {path.parent} is not a whole training run; "
                            "give the --out of one") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TrainingError(f"{option}: {path} is not readable JSON ({e}); restore it from the run or "
                            "start a new run with another --out") from None
    if not isinstance(data, dict):
        raise TrainingError(f"{option}: {path} holds no JSON object; restore it from the run or start a new run "
                            "with another --out")
    return data


def saved_config(out: Path, option: str) -> dict:
    """The run's config.json, checked to hold what :func:`prepare_run_folder` wrote."""
    saved = read_run_json(out / "config.json", option)
    missing = [k for k in ("profile", "modes", "seed") if k not in saved]
    if missing or not isinstance(saved.get("profile"), dict):
        raise TrainingError(f"{option}: {out / 'config.json'} lacks {', '.join(missing) or 'a profile object'}; "
                            "it was not written by `training`: start a new run with another --out")
    return saved


def resume_conflicts(out: Path, cfg: RunConfig, given: set[str]) -> list[str]:
    """The options in ``given`` (command-line dests) whose value differs from the run in ``out``,
    as ``"--seed 1 (the run: 0)"``: --resume continues with the saved settings, so a different
    value would be silently ignored; the caller refuses instead."""
    config_path = out / "config.json"
    if not config_path.is_file():
        return []
    saved = saved_config(out, "--resume")
    now = cfg.to_dict()

    def value(d: dict, key: str):
        v = d.get(key) if key in _TOP_LEVEL else d["profile"].get(key)
        return list(v) if isinstance(v, (list, tuple)) else v

    found = []
    for option, keys in RESUME_CHECKED.items():
        if option not in given:
            continue
        differs = [k for k in keys if value(now, k) != value(saved, k)]
        if differs:
            show = ", ".join(f"{k} {value(now, k)} (the run: {value(saved, k)})" for k in differs)
            found.append(f"--{option.replace('_', '-')}: {show}")
    return found


def prepare_run_folder(out: Path, manifest: Manifest | None, cfg: RunConfig, resume: bool) -> tuple[Manifest, RunConfig]:
    """Creates (or, on resume, checks and reloads) the run folder; returns the manifest and config to use."""
    from training.manifest import read_manifest_file

    config_path = out / "config.json"
    if resume:
        if not config_path.is_file():
            raise TrainingError(f"--resume: {out} holds no run (no config.json); drop --resume to start one")
        saved = saved_config(out, "--resume")
        header = read_run_json(out / "manifest_header.json", "--resume")
        if manifest is None:
            manifest = read_manifest_file(str(out / "manifest.jsonl"))
        elif manifest.header["content_hash"] != header.get("content_hash"):
            raise TrainingError(f"--resume: the manifest given ({manifest.header['content_hash'][:19]}…) is not the one "
                                f"{out} was trained on ({str(header.get('content_hash'))[:19]}…); pass the same "
                                "manifest or none")
        prof = dict(saved["profile"])
        try:
            prof["teachers"] = tuple(prof["teachers"])
            prof["robust_eps"] = tuple(prof["robust_eps"])
            profile = Profile(**prof)
        except (KeyError, TypeError) as e:
            raise TrainingError(f"--resume: the profile in {config_path} does not fit this version of training ({e}); "
                                "start a new run with another --out") from None
        cfg = RunConfig(out=cfg.out, profile=profile, modes=tuple(saved["modes"]), seed=saved["seed"],
                        device=cfg.device, teachers_explicit=saved.get("teachers_explicit", False),
                        stop_after_steps=cfg.stop_after_steps, teachers_from=saved.get("teachers_from"))
        return manifest, cfg
    if manifest is None:
        raise TrainingError("no manifest: pass --manifest FILE or pipe `fercurate export --view NAME | training`")
    if config_path.exists():
        raise TrainingError(f"{out} already holds a run; pass --resume to continue it or --out elsewhere")
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "predictions").mkdir(exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    write_json(config_path, cfg.to_dict())
    write_json(out / "manifest_header.json", manifest.header)
    (out / "manifest.jsonl").write_text(manifest.text, encoding="utf-8")
    return manifest, cfg


def adopt_teachers(source: Path, out: Path, manifest: Manifest, names: list[str], seed: int, carved: bool) -> dict:
    """Copies the finished teacher checkpoints of run ``source`` into ``out`` so this run loads
    them instead of training its own: students of several seeds (or modes) against the very same
    teachers, which is what an ablation over students needs. The source must have trained the
    same teachers on the same manifest (and, when val was carved from train, with the same seed,
    or the teachers would have seen this run's val). Returns what to record in metrics.json."""
    import shutil

    import torch

    config_path = source / "config.json"
    if not config_path.is_file():
        raise TrainingError(f"--teachers-from {source}: not a run folder (no config.json); give the --out of a "
                            "finished training run")
    header = read_run_json(source / "manifest_header.json", f"--teachers-from {source}")
    if header.get("content_hash") != manifest.header.get("content_hash"):
        raise TrainingError(f"--teachers-from {source}: its teachers were trained on another manifest "
                            f"({str(header.get('content_hash'))[:19]}…, this one {manifest.header['content_hash'][:19]}…); "
                            "train on the same manifest or drop --teachers-from")
    saved = saved_config(source, f"--teachers-from {source}")
    if carved and saved["seed"] != seed:
        raise TrainingError(f"--teachers-from {source}: that run carved val from train with seed {saved['seed']}, "
                            f"this one with seed {seed}, so its teachers saw part of this run's val; use a manifest "
                            "with a val split, or --seed " + str(saved["seed"]))
    for name in names:
        src = source / "checkpoints" / f"teacher-{name}.pt"
        dst = out / "checkpoints" / src.name
        if dst.is_file():
            continue
        if not src.is_file() or not torch.load(src, map_location="cpu", weights_only=False).get("done"):
            raise TrainingError(f"--teachers-from {source}: teacher {name} is not trained there (no finished "
                                f"{src.name}); finish that run (training --resume --out {source}) or drop the option")
        shutil.copyfile(src, dst)
    # the teachers' logits on the view bank too: training.stages.student_inputs uses them only when
    # their key (teachers, views, seed, precision, train split) matches this run, e.g. another
    # --mode of the same seed, which then skips recomputing the bank (15 min of a cpu run)
    logits, logits_dst = source / "checkpoints" / "teacher-logits.pt", out / "checkpoints" / "teacher-logits.pt"
    if logits.is_file() and not logits_dst.is_file():
        shutil.copyfile(logits, logits_dst)
    return {"run": str(source), "seed": saved["seed"]}
