"""The ``training`` command line (placeholder until the training package lands)."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="training",
        description="Train a small, robust emotion model from a fercurate manifest: several teacher "
                    "networks, Emotion-Aware Dynamic Distillation into a hybrid CNN-Transformer student, "
                    "then adversarial fine-tuning. Not implemented yet in this version.",
        epilog="usage once available: fercurate export --view clean_v1 | training",
    )
    p.add_argument("--manifest", help="manifest file (default: read JSON lines from stdin)")
    return p


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("training: not implemented in this version of fercurate; only --help is available", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
