"""Read and validate a fercurate manifest before any training starts.

The format is defined once, in :mod:`fercurate.manifest` (imported here: it needs neither
FiftyOne nor torch). Every problem a user can cause (a truncated or garbled stream, a wrong
format version, an unknown class, a missing image, an empty split) is raised as one
:class:`~training.errors.TrainingError` naming the source and the line, so a long run never
starts on bad data.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from fercurate.manifest import (FORMAT, HEADER_KEYS, POLICIES, READABLE_VERSIONS, SAMPLE_KEYS, SAMPLE_KEYS_V2,
                                content_hash)

from training.errors import TrainingError

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Splits that must hold at least one sample (val falls back to a slice of train).
REQUIRED_SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class Sample:
    """One manifest line: ``label`` is the curated label, ``original_label`` the raw one."""

    filepath: str
    label: str
    original_label: str
    split: str
    weight: float
    id: str
    #: P(true label | image, given label) in the header's class order, when the version has it
    soft_label: tuple[float, ...] | None = None
    #: sha256 of the image's bytes when the version was frozen (format version 2)
    sha256: str | None = None


@dataclass
class Manifest:
    """A validated manifest: its header, the samples, and where it came from."""

    header: dict
    samples: list[Sample]
    source: str
    text: str = field(repr=False, default="")

    @property
    def classes(self) -> list[str]:
        return list(self.header["classes"])

    @property
    def policy(self) -> dict:
        return dict(self.header["policy"])

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]


def read_manifest(lines: Iterable[str], source: str) -> Manifest:
    """Parse and validate manifest lines (each keeping its trailing newline).

    ``source`` names the file (or ``<stdin>``) in error messages.
    """
    lines = list(lines)
    if not lines or not lines[0].strip():
        raise TrainingError(f"{source}: empty manifest; produce one with `fercurate export --view NAME`")
    header = _parse_header(lines[0], source)
    classes = header["classes"]
    keys = SAMPLE_KEYS + (SAMPLE_KEYS_V2 if header["format_version"] >= 2 else ())
    samples = [_parse_sample(line, i, source, classes, keys) for i, line in enumerate(lines[1:], start=2)]
    _check_complete(header, lines[1:], source)
    _check_splits(samples, header, source)
    return Manifest(header=header, samples=samples, source=source, text="".join(lines))


def read_manifest_file(path: str) -> Manifest:
    """Read a manifest file (``training --manifest FILE``)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return read_manifest(f, path)
    except OSError as e:
        raise TrainingError(f"{path}: cannot read the manifest ({e.strerror}); check --manifest") from None
    except UnicodeDecodeError:
        raise TrainingError(f"{path}: not UTF-8 text; a manifest is JSON lines from `fercurate export`") from None


def _parse_json(line: str, lineno: int, source: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise TrainingError(f"{source}:{lineno}: garbled line, not JSON ({e.msg}); re-export the manifest") from None
    if not isinstance(record, dict):
        raise TrainingError(f"{source}:{lineno}: expected a JSON object, got {type(record).__name__}")
    return record


def _parse_header(line: str, source: str) -> dict:
    header = _parse_json(line, 1, source)
    if header.get("format") != FORMAT:
        raise TrainingError(f"{source}:1: not a fercurate manifest (format={header.get('format')!r}, "
                            f"expected {FORMAT!r}); produce one with `fercurate export --view NAME`")
    if header.get("format_version") not in READABLE_VERSIONS:
        raise TrainingError(f"{source}:1: manifest format_version {header.get('format_version')!r} is not "
                            f"supported (this training reads versions {', '.join(map(str, READABLE_VERSIONS))}); "
                            "re-export with a matching fercurate")
    missing = [k for k in HEADER_KEYS if k not in header]
    if missing:
        raise TrainingError(f"{source}:1: header lacks {', '.join(missing)}; re-export the manifest")
    classes = header["classes"]
    if (not isinstance(classes, list) or len(classes) < 2 or len(set(classes)) != len(classes)
            or not all(isinstance(c, str) and c for c in classes)):
        raise TrainingError(f"{source}:1: 'classes' must be a list of at least 2 distinct names, got {classes!r}")
    policy = header["policy"]
    if not isinstance(policy, dict) or policy.get("name") not in POLICIES:
        raise TrainingError(f"{source}:1: unknown policy {policy!r}; expected a name in {', '.join(POLICIES)}")
    if not isinstance(header["num_samples"], int) or header["num_samples"] < 0:
        raise TrainingError(f"{source}:1: 'num_samples' must be a non-negative integer")
    return header


def _parse_sample(line: str, lineno: int, source: str, classes: list[str],
                  keys: tuple[str, ...] = SAMPLE_KEYS) -> Sample:
    record = _parse_json(line, lineno, source)
    missing = [k for k in keys if k not in record]
    if missing:
        raise TrainingError(f"{source}:{lineno}: sample lacks {', '.join(missing)}; re-export the manifest")
    for key in ("label", "original_label"):
        if record[key] not in classes:
            raise TrainingError(f"{source}:{lineno}: unknown class {record[key]!r} in '{key}'; "
                                f"the header's classes are {', '.join(classes)}")
    if record["split"] not in SPLITS:
        raise TrainingError(f"{source}:{lineno}: unknown split {record['split']!r}; expected one of {', '.join(SPLITS)}")
    weight = record["weight"]
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight > 0:
        raise TrainingError(f"{source}:{lineno}: 'weight' must be a positive number, got {weight!r}")
    path = record["filepath"]
    if not isinstance(path, str) or not os.path.isfile(path):
        raise TrainingError(f"{source}:{lineno}: image file not found: {path}; "
                            "the manifest points at files that moved or were deleted")
    return Sample(filepath=path, label=record["label"], original_label=record["original_label"],
                  split=record["split"], weight=float(weight), id=str(record["id"]),
                  soft_label=_parse_soft_label(record.get("soft_label"), lineno, source, classes),
                  sha256=_parse_sha256(record.get("sha256"), lineno, source))


def _parse_sha256(value, lineno: int, source: str) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
        raise TrainingError(f"{source}:{lineno}: 'sha256' must be 64 lowercase hex digits, got {value!r}; "
                            "re-export the manifest")
    return value


def _parse_soft_label(value, lineno: int, source: str, classes: list[str]) -> tuple[float, ...] | None:
    """An optional distribution over the header's classes (non-negative, summing to ~1)."""
    if value is None:
        return None
    ok = (isinstance(value, list) and len(value) == len(classes)
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value))
    if not ok or abs(sum(value) - 1.0) > 1e-2:
        raise TrainingError(f"{source}:{lineno}: 'soft_label' must be {len(classes)} non-negative numbers summing "
                            f"to 1 (one per class of the header), got {value!r}; re-export the manifest")
    return tuple(float(v) for v in value)


def _check_complete(header: dict, sample_lines: list[str], source: str) -> None:
    """A stream cut short or altered shows as a count or hash mismatch."""
    n = len(sample_lines)
    if n != header["num_samples"]:
        raise TrainingError(f"{source}:{n + 1}: truncated or padded stream: the header announces "
                            f"{header['num_samples']} samples, the stream has {n}; re-export the manifest")
    if content_hash(sample_lines) != header["content_hash"]:
        raise TrainingError(f"{source}:{n + 1}: content_hash mismatch (the sample lines were altered or cut); "
                            "re-export the manifest")


def _check_splits(samples: list[Sample], header: dict, source: str) -> None:
    counts = Counter(s.split for s in samples)
    for split in REQUIRED_SPLITS:
        if counts[split] == 0:
            raise TrainingError(f"{source}:1: split {split!r} is empty; training needs samples in "
                                f"{' and '.join(REQUIRED_SPLITS)} (val may be empty)")
