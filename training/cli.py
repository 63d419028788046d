"""The ``training`` command line: manifest in, run folder (report, metrics, ONNX student) out."""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading
from pathlib import Path

from training.errors import TrainingError

EPILOG = """\
examples:
  fercurate export --view clean_v2 | training --profile cpu --out runs/clean_v2
  training --manifest clean_v2.jsonl --profile smoke --out /tmp/smoke
  training --manifest clean_v2.jsonl --ablations --teachers vgg48,convnext_atto_48 --out runs/ablate
  training --manifest clean_v2.jsonl --mode kd,eadd --teachers vgg48,mini_xception --out runs/x
  training --manifest clean_v2.jsonl --eval-manifest raw.jsonl --out runs/clean_vs_raw
  training --resume --out runs/clean_v2            # continue after an interruption
  torchrun --nproc_per_node 4 -m training.cli --manifest m.jsonl --profile paper --device cuda --out runs/gpu

stages: validate manifest -> train teachers -> measure teacher strength per emotion on val
        -> distill the student (--mode) -> adversarial fine-tuning (PGD) -> evaluate, export ONNX, report.md
profiles: smoke (seconds, tests); cpu (full FER2013 on 2 cores with native bf16 (AMX): one --mode ~1 h,
          --ablations ~2 h; about 3x that in fp32, e.g. on AVX2-only CPUs);
          paper (full schedule, for GPUs). Under torchrun pass --manifest (stdin is not shared by the ranks).
exit codes: 0 done, 2 bad input (one-line message), 3 interrupted: --stop-after-steps, Ctrl-C or SIGTERM
            write a checkpoint first (resume with --resume --out DIR)
"""


def build_parser() -> argparse.ArgumentParser:
    from training.eadd import MODES
    from training.profiles import ADV_METHODS, PROFILES

    p = argparse.ArgumentParser(
        prog="training", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Train a small, robust emotion model from a fercurate manifest: teacher networks, "
                    "Emotion-Aware Dynamic Distillation (EADD) into a hybrid CNN-Transformer student, then "
                    "adversarial fine-tuning. The manifest is read from --manifest, or from stdin when it is piped.")
    p.add_argument("--manifest", metavar="FILE", help="manifest from `fercurate export` (default: stdin when piped)")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<dataset>-<version>-<profile>)")
    p.add_argument("--profile", default="cpu", choices=list(PROFILES), help="schedule and budget (default: cpu)")
    modes = p.add_mutually_exclusive_group()
    modes.add_argument("--mode", default="eadd", metavar="MODE[,MODE]",
                       help=f"{' | '.join(MODES)}: ce = student alone, kd = uniform multi-teacher KD, eadd = "
                            "emotion-aware weighting (default); several comma-separated (e.g. kd,eadd) train "
                            "one student each against the same teachers")
    modes.add_argument("--ablations", action="store_true", help="train all three students (ce, kd, eadd) "
                       "against the same trained teachers")
    p.add_argument("--teachers", metavar="A,B", help="comma-separated teacher names (default: the profile's; "
                   "see --list-models)")
    p.add_argument("--teachers-from", metavar="RUN", help="reuse the trained teachers of run folder RUN (same "
                   "manifest and teachers) instead of training them: students of other seeds or modes against "
                   "the very same teachers")
    p.add_argument("--eval-manifest", metavar="FILE", help="also evaluate the final students on this manifest's "
                   "test split (e.g. raw vs curated on the same test images)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint, "
                   "with the settings and manifest copy it was started with (stdin is not read)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: cuda if available")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice; "
                   "on a busy shared machine 1 is often faster)")
    p.add_argument("--epochs", metavar="T,S,A", help="override epochs: teachers,student,adversarial "
                   "(fractions allowed, e.g. 2,4,0.5)")
    adv = p.add_argument_group("adversarial fine-tuning (default: the profile's)")
    adv.add_argument("--adv-method", choices=ADV_METHODS, help="pgd: PGD-AT mixed with clean data; "
                     "trades: CE + beta*KL to the attacked prediction; anchored: clean and attacked predictions "
                     "pulled to the frozen distilled student's (keeps more clean accuracy, a little less robust)")
    adv.add_argument("--adv-eps", type=float, metavar="N", help="L-inf radius in grey levels, N/255 (e.g. 4)")
    adv.add_argument("--adv-steps", type=int, metavar="K", help="attack iterations per training batch")
    adv.add_argument("--adv-rebalance", action=argparse.BooleanOptionalAction,
                     help="after the fine-tune, shift each class's logit so the student predicts every class as "
                          "often as before it, on val, without labels (default on; keeps rare classes such as "
                          "disgust, which adversarial training otherwise stops predicting)")
    adv.add_argument("--trades-beta", type=float, metavar="B", help="weight of the TRADES KL term (default 6)")
    rob = p.add_argument_group("robust evaluation (default: the profile's)")
    rob.add_argument("--robust-images", type=int, metavar="N", help="attack a seeded random N of the test images "
                     "(0 = all of them)")
    rob.add_argument("--apgd-steps", type=int, metavar="K", help="APGD-CE and targeted APGD-DLR iterations "
                     "(0 = PGD and FGSM only)")
    p.add_argument("--soft-labels", type=float, nargs="?", const=0.5, metavar="W",
                   help="train on each sample's soft_label (the noise model's P(true label | image, given label), "
                        "in manifests of datasets scored by label_issues): the CE target becomes "
                        "(1-W)*onehot(label) + W*soft_label (W default 0.5; off unless given)")
    p.add_argument("--stop-after-steps", type=int, metavar="N", help="checkpoint and stop after N optimizer steps "
                   "(time-boxed jobs; continue with --resume)")
    p.add_argument("--list-models", action="store_true", help="list registered teachers and students, then exit")
    return p


def _parse_epochs(text: str | None) -> dict:
    if text is None:
        return {}
    try:
        t, s, a = (float(v) for v in text.split(","))
    except ValueError:
        raise TrainingError(f"--epochs {text!r}: give three numbers teachers,student,adversarial, e.g. 2,4,0.5") from None
    if min(t, s, a) < 0:
        raise TrainingError(f"--epochs {text!r}: epochs cannot be negative")
    return {"teacher_epochs": t, "student_epochs": s, "adv_epochs": a}


def _parse_modes(text: str) -> tuple[str, ...]:
    from training.eadd import MODES

    modes = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise TrainingError(f"--mode {text!r}: choose from {', '.join(MODES)} (comma-separated for several, e.g. kd,eadd)")
    return modes


def _adversarial_overrides(args: argparse.Namespace) -> dict:
    if args.adv_eps is not None and not 0 < args.adv_eps <= 32:
        raise TrainingError(f"--adv-eps {args.adv_eps}: give the radius in grey levels, between 0 and 32 (e.g. 4 = 4/255)")
    if args.adv_steps is not None and args.adv_steps < 1:
        raise TrainingError(f"--adv-steps {args.adv_steps}: give at least 1 attack step")
    if args.trades_beta is not None and args.trades_beta < 0:
        raise TrainingError(f"--trades-beta {args.trades_beta}: the KL weight cannot be negative")
    if args.robust_images is not None and args.robust_images < 0:
        raise TrainingError(f"--robust-images {args.robust_images}: give a number of images, or 0 for all")
    if args.apgd_steps is not None and args.apgd_steps < 0:
        raise TrainingError(f"--apgd-steps {args.apgd_steps}: give 0 (no APGD) or more iterations")
    robust = {} if args.robust_images is None else {"robust_max_images": args.robust_images or None}
    return {"adv_method": args.adv_method, "adv_steps": args.adv_steps, "trades_beta": args.trades_beta,
            "adv_rebalance": args.adv_rebalance,
            "adv_eps": None if args.adv_eps is None else args.adv_eps / 255, "robust_apgd_steps": args.apgd_steps,
            **robust}


def _stdin_lines():
    """stdin as UTF-8 lines kept byte-exact (no newline translation), so the content hash can match."""
    if not hasattr(sys.stdin, "buffer"):
        return sys.stdin
    stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", newline="")
    try:
        return list(stream)
    except UnicodeDecodeError:
        raise TrainingError("<stdin>: not UTF-8 text; pipe the output of `fercurate export --view NAME`") from None


def _read_manifests(args: argparse.Namespace):
    from training.manifest import read_manifest, read_manifest_file

    manifest = None
    if args.manifest:
        manifest = read_manifest_file(args.manifest)
    elif args.resume:
        pass   # the run folder keeps a copy of the manifest it was started with
    elif not sys.stdin.isatty():
        manifest = read_manifest(_stdin_lines(), "<stdin>")
    else:
        raise TrainingError("no manifest: pass --manifest FILE or pipe `fercurate export --view NAME | training`")
    eval_manifest = read_manifest_file(args.eval_manifest) if args.eval_manifest else None
    return manifest, eval_manifest


def given_options(argv: list[str] | None) -> set[str]:
    """The dests of the options written on the command line (defaults suppressed)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def run_from_args(args: argparse.Namespace, given: set[str] | None = None) -> int:
    from training.eadd import MODES
    from training.models import list_models
    from training.profiles import get_profile, with_overrides
    from training.run import RunConfig, RunInterrupted, run_pipeline

    if args.list_models:
        print("teachers:", ", ".join(list_models("teacher")))
        print("students:", ", ".join(list_models("student")))
        return 0
    if args.threads is not None:
        if args.threads < 1:
            raise TrainingError(f"--threads {args.threads}: give a positive number")
        import torch
        torch.set_num_threads(args.threads)
    if args.resume and not args.out:
        raise TrainingError("--resume needs --out DIR, the run folder to continue")
    profile = get_profile(args.profile)
    teachers = tuple(t.strip() for t in args.teachers.split(",") if t.strip()) if args.teachers else None
    if args.soft_labels is not None and not 0 < args.soft_labels <= 1:
        raise TrainingError(f"--soft-labels {args.soft_labels}: give the soft label's weight W, 0 < W <= 1 (e.g. 0.5)")
    profile = with_overrides(profile, teachers=teachers, soft_label_weight=args.soft_labels,
                             **_parse_epochs(args.epochs), **_adversarial_overrides(args))
    manifest, eval_manifest = _read_manifests(args)
    out = args.out or f"runs/{manifest.header['dataset']}-{manifest.header['version']}-{profile.name}"
    cfg = RunConfig(out=out, profile=profile, modes=MODES if args.ablations else _parse_modes(args.mode),
                    seed=args.seed if args.seed is not None else 0, device=args.device,
                    teachers_explicit=teachers is not None, stop_after_steps=args.stop_after_steps,
                    teachers_from=args.teachers_from)
    if args.resume:
        from training.run_folder import resume_conflicts
        conflicts = resume_conflicts(Path(out), cfg, given or set())
        if conflicts:
            raise TrainingError(f"--resume continues {out} with the settings it was started with, and "
                                f"{'; '.join(conflicts)} differ: drop them, or start a new run with another --out")
    try:
        run_pipeline(cfg, manifest, eval_manifest, resume=args.resume)
    except RunInterrupted as e:
        print(f"training: {e}; continue with: training --resume --out {out}", file=sys.stderr)
        return 3
    if os.environ.get("RANK", "0") == "0":
        print(f"training: done; report: {out}/report.md", file=sys.stderr)
    return 0


def _stop_on_sigterm() -> dict[int, object]:
    """SIGTERM (schedulers, preemption, `kill`) and SIGINT checkpoint and stop like Ctrl-C does.

    SIGINT is set explicitly too: a job started with ``&`` by a script inherits it as ignored.
    Returns the handlers it replaced, so an in-process caller (a notebook, a test) gets its own back.
    """
    def handler(signum, frame):
        raise KeyboardInterrupt

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = _stop_on_sigterm() if threading.current_thread() is threading.main_thread() else {}
    try:
        return _main(args, argv)
    finally:
        for sig, old in previous.items():
            if old is not None:       # None: the old handler was not set from Python; nothing to restore
                signal.signal(sig, old)


def _main(args: argparse.Namespace, argv: list[str] | None) -> int:
    try:
        return run_from_args(args, given_options(argv))
    except TrainingError as e:
        print(f"training: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Outside a training stage (loading, evaluating): nothing half-done to save; the
        # checkpoints of the finished stages are on disk.
        where = f"training --resume --out {args.out}" if args.out else "the same command"
        print(f"training: interrupted outside a training stage; continue with: {where}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
