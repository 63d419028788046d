"""The manifest reader refuses every bad input on one line that names the line, before training."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from fercurate.manifest import content_hash, dumps
from tests.training_manifests import manifest_lines, write_manifest
from training import cli
from training.data import load_manifest_splits
from training.errors import TrainingError
from training.manifest import read_manifest, read_manifest_file


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("manifest")
    return root, manifest_lines(root / "img", per_class=2)


def _rehash(lines: list[str]) -> list[str]:
    """Header fixed up so that only the planted defect is wrong."""
    header = json.loads(lines[0])
    header["num_samples"] = len(lines) - 1
    header["content_hash"] = content_hash(lines[1:])
    return [dumps(header)] + lines[1:]


def _edit_sample(lines: list[str], index: int, **changes) -> list[str]:
    record = json.loads(lines[index])
    record.update(changes)
    return _rehash(lines[:index] + [dumps(record)] + lines[index + 1:])


def _edit_header(lines: list[str], **changes) -> list[str]:
    header = json.loads(lines[0])
    header.update(changes)
    return [dumps(header)] + lines[1:]


def test_a_valid_manifest_reads_with_its_splits(good):
    _, lines = good
    m = read_manifest(lines, "m.jsonl")
    assert m.classes[0] == "angry" and len(m.samples) == 3 * 7 * 2
    assert {s.split for s in m.samples} == {"train", "val", "test"}
    assert m.text == "".join(lines)


BAD_INPUTS = {
    "truncated stream": (lambda ls: ls[:-3], r"m\.jsonl:\d+: truncated .*announces 42 samples, the stream has 39"),
    "cut mid-line": (lambda ls: ls[:-1] + [ls[-1][:20]], r"m\.jsonl:43: garbled line"),
    "altered line": (lambda ls: ls[:5] + [ls[5].replace('"weight":1.0', '"weight":2.0')] + ls[6:],
                     r"m\.jsonl:43: content_hash mismatch"),
    "garbled JSON": (lambda ls: _rehash(ls[:3] + ["{not json\n"] + ls[4:]), r"m\.jsonl:4: garbled line, not JSON"),
    "wrong format": (lambda ls: _edit_header(ls, format="something-else"), r"m\.jsonl:1: not a fercurate manifest"),
    "wrong version": (lambda ls: _edit_header(ls, format_version=99), r"m\.jsonl:1: manifest format_version 99"),
    "header lacks a key": (lambda ls: [dumps({k: v for k, v in json.loads(ls[0]).items() if k != "policy"})] + ls[1:],
                           r"m\.jsonl:1: header lacks policy"),
    "unknown class": (lambda ls: _edit_sample(ls, 6, label="contempt"), r"m\.jsonl:7: unknown class 'contempt' in 'label'"),
    "unknown original class": (lambda ls: _edit_sample(ls, 2, original_label="bored"), r"m\.jsonl:3: unknown class 'bored'"),
    "missing image": (lambda ls: _edit_sample(ls, 9, filepath="/nonexistent/face.png"),
                      r"m\.jsonl:10: image file not found: /nonexistent/face\.png"),
    "unknown split": (lambda ls: _edit_sample(ls, 2, split="holdout"), r"m\.jsonl:3: unknown split 'holdout'"),
    "bad weight": (lambda ls: _edit_sample(ls, 2, weight=-1), r"m\.jsonl:3: 'weight' must be a positive number"),
    "empty train": (lambda ls: _rehash([ls[0]] + [x for x in ls[1:] if '"split":"train"' not in x]),
                    r"m\.jsonl:1: split 'train' is empty"),
    "empty test": (lambda ls: _rehash([ls[0]] + [x for x in ls[1:] if '"split":"test"' not in x]),
                   r"m\.jsonl:1: split 'test' is empty"),
    "empty stream": (lambda ls: [], r"m\.jsonl: empty manifest"),
    "soft label of the wrong length": (lambda ls: _edit_sample(ls, 4, soft_label=[0.5, 0.5]),
                                       r"m\.jsonl:5: 'soft_label' must be 7 non-negative numbers summing to 1"),
    "soft label not a distribution": (lambda ls: _edit_sample(ls, 4, soft_label=[0.9] + [0.1] * 6),
                                      r"m\.jsonl:5: 'soft_label' must be 7"),
}


@pytest.mark.parametrize("defect", list(BAD_INPUTS))
def test_every_bad_input_is_one_line_naming_the_line(good, defect):
    _, lines = good
    corrupt, pattern = BAD_INPUTS[defect]
    with pytest.raises(TrainingError, match=pattern) as err:
        read_manifest(corrupt(list(lines)), "m.jsonl")
    assert "\n" not in str(err.value)


def test_an_empty_val_split_falls_back_to_a_stratified_slice_of_train(tmp_path):
    lines = manifest_lines(tmp_path / "img", per_class=10, splits=("train", "test"))
    m = read_manifest(lines, "m.jsonl")
    splits, carved = load_manifest_splits(m, val_fraction=0.2, seed=3)
    assert carved and len(splits["val"]) == 14 and len(splits["train"]) == 56
    assert sorted(splits["val"].labels.bincount().tolist()) == [2] * 7
    assert not set(splits["val"].paths) & set(splits["train"].paths)
    again, _ = load_manifest_splits(m, val_fraction=0.2, seed=3)
    assert again["val"].paths == splits["val"].paths


def test_cli_prints_a_bad_manifest_on_one_line_and_exits_2(good, tmp_path, capsys):
    _, lines = good
    path = write_manifest(tmp_path / "bad.jsonl", _edit_sample(list(lines), 6, label="contempt"))
    assert cli.main(["--manifest", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("training: error:") and "bad.jsonl:7: unknown class" in err and "\n" not in err
    assert not (tmp_path / "run").exists()   # nothing started


def test_cli_gives_an_in_process_caller_its_signal_handlers_back(good, tmp_path):
    """main() turns SIGTERM into a checkpointing stop while it runs, and only then: a notebook
    or test runner that calls it keeps its own handlers (pytest's run left them replaced)."""
    import signal
    _, lines = good
    mine = lambda signum, frame: None  # noqa: E731
    before = {sig: signal.signal(sig, mine) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        path = write_manifest(tmp_path / "bad.jsonl", _edit_sample(list(lines), 6, label="contempt"))
        assert cli.main(["--manifest", str(path), "--out", str(tmp_path / "run")]) == 2
        assert signal.getsignal(signal.SIGTERM) is mine and signal.getsignal(signal.SIGINT) is mine
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def test_cli_reads_the_manifest_from_a_pipe(good, monkeypatch):
    _, lines = good
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(lines)))
    manifest, _ = cli._read_manifests(cli.build_parser().parse_args([]))
    assert manifest.source == "<stdin>" and len(manifest.samples) == 42


def test_a_missing_manifest_file_is_a_one_line_error(tmp_path):
    with pytest.raises(TrainingError, match="cannot read the manifest"):
        read_manifest_file(str(tmp_path / "nope.jsonl"))
