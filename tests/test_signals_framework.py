"""The signal runner: skip when unchanged, recompute on demand or on change, resume, order."""

from dataclasses import dataclass

import fiftyone as fo
import numpy as np
from PIL import Image
import pytest

from fercurate import dataset, given_labels, schema
from fercurate.errors import FercurateError
from fercurate.signals import computed, interrupted, resolve, run_signals
from fercurate.signals.base import ChunkStore, FieldWrite, Signal, SignalResult, chunked
from fercurate.sources import read_source
from tests import factories

CALLS: list[str] = []
FAIL_AT_CHUNK = {"k": -1}  # simulates a kill during that chunk


@dataclass
class MeanParams:
    chunk: int = 8


class MeanBrightness(Signal):
    """Test signal: mean pixel value, chunk by chunk."""

    name = "t_mean"

    def default_params(self):
        return MeanParams()

    def compute(self, ds, table, work_dir):
        store = ChunkStore(work_dir / "chunks")
        means = []
        for k, sl in chunked(len(table), self.params.chunk):
            def work(sl=sl, k=k):
                if k == FAIL_AT_CHUNK["k"]:
                    raise KeyboardInterrupt
                CALLS.append(f"chunk{k}")
                return {"mean": np.array([np.asarray(Image.open(p)).mean() / 255 for p in table.filepaths[sl]])}
            means.append(store.get(str(k), work)["mean"])
        values = np.concatenate(means)
        return SignalResult({"total": len(table), "flagged": 0, "top": []},
                            [FieldWrite("t_mean", fo.FloatField, values.tolist())])


class NeedsMean(Signal):
    """Test signal reading t_mean."""

    name = "t_needs"
    requires = ("t_mean",)
    uses_labels = True

    def compute(self, ds, table, work_dir):
        CALLS.append("needs")
        if ds.info.get("t_fail"):
            raise FercurateError("t_needs: cannot run on this dataset")
        return SignalResult({"total": len(table), "flagged": 1, "top": []})


@pytest.fixture
def signals(monkeypatch):
    monkeypatch.setattr("fercurate.signals._run_order", lambda: ["t_mean", "t_needs"])
    monkeypatch.setattr("fercurate.signals.SIGNALS", {"t_mean": MeanBrightness, "t_needs": NeedsMean})
    CALLS.clear()
    return CALLS


@pytest.fixture
def ds(tmp_path, unique_name):
    dataset.ingest(read_source(factories.fer2013_folder(tmp_path / "fer", per_class=2)), unique_name)
    return fo.load_dataset(unique_name)


def test_requirements_run_first(signals):
    assert resolve(["t_needs"]) == ["t_mean", "t_needs"]
    with pytest.raises(FercurateError, match="unknown signal"):
        resolve(["nope"])


def test_run_order_does_not_depend_on_import_order(monkeypatch):
    """Importing balance first (as fercurate.versions does) must not make it run first."""
    from fercurate.signals import SIGNALS, builtin
    shuffled = dict(reversed(list(SIGNALS.items())))
    monkeypatch.setattr("fercurate.signals.SIGNALS", shuffled)
    assert resolve(None) == list(builtin.ORDER)
    assert resolve(["balance", "quality"]) == ["quality", "balance"]


def test_second_run_is_skipped_and_recompute_forces(signals, ds):
    assert run_signals(ds, log=lambda m: None) == ["t_mean", "t_needs"]
    assert len([c for c in signals if c.startswith("chunk")]) == 6  # 42 samples / 8
    assert run_signals(ds, log=lambda m: None) == []
    info = ds.info[schema.INFO_SIGNALS]["t_mean"]
    assert info["params"] == {"chunk": 8} and info["summary"]["total"] == 42
    assert run_signals(ds, ["t_mean"], recompute=True, log=lambda m: None) == ["t_mean"]


def test_relabel_makes_label_signals_stale_only(signals, ds):
    run_signals(ds, log=lambda m: None)
    sample = ds.first()
    label = "happy" if sample.ground_truth.label != "happy" else "sad"
    with given_labels.writable(ds):  # as `ingest --update` relabels from the source
        sample[schema.GROUND_TRUTH] = fo.Classification(label=label)
        sample[schema.INGESTED_LABEL] = label
        sample.save()
    assert run_signals(ds, log=lambda m: None) == ["t_needs"]


def test_interrupted_signal_resumes_from_saved_chunks(signals, ds, monkeypatch):
    monkeypatch.setitem(FAIL_AT_CHUNK, "k", 3)
    with pytest.raises(KeyboardInterrupt):
        run_signals(ds, ["t_mean"], log=lambda m: None)
    assert signals == ["chunk0", "chunk1", "chunk2"]
    # killed inside compute: nothing was written, so there is nothing half-done to flag
    assert "t_mean" not in computed(ds) and interrupted(ds) == [] and not ds.has_sample_field("t_mean")
    signals.clear()
    FAIL_AT_CHUNK["k"] = -1
    run_signals(ds, ["t_mean"], log=lambda m: None)
    assert signals == ["chunk3", "chunk4", "chunk5"]
    assert ds.count("t_mean") == 42


def test_keep_going_skips_a_failing_signal(signals, ds):
    ds.info["t_fail"] = True
    ds.save()
    with pytest.raises(FercurateError):
        run_signals(ds, log=lambda m: None)
    logs = []
    assert run_signals(ds, keep_going=True, log=logs.append) == []  # t_mean is up to date already
    assert any("t_needs: skipped: t_needs: cannot run" in m for m in logs)
    assert "t_needs" not in computed(ds)


def test_a_signal_that_refuses_keeps_its_previous_complete_record(signals, ds):
    """A FercurateError from compute comes before any write: the last complete run stays
    the record (its fixes stay live), it is not shown as interrupted."""
    run_signals(ds, log=lambda m: None)
    before = computed(ds)["t_needs"]
    ds.info["t_fail"] = True
    ds.save()
    assert "t_needs" not in run_signals(ds, ["t_needs"], recompute=True, keep_going=True, log=lambda m: None)
    ds.reload()
    assert computed(ds)["t_needs"] == before and interrupted(ds) == []


def test_compute_must_return_what_to_write(signals, ds, monkeypatch):
    monkeypatch.setattr(NeedsMean, "compute", lambda self, ds, table, work_dir: {"total": 1})
    with pytest.raises(TypeError, match="must return a SignalResult"):
        run_signals(ds, ["t_needs"], log=lambda m: None)


def test_keep_going_records_a_broken_signal_as_failed_and_runs_the_rest(signals, ds, monkeypatch):
    def broken(self, ds, table, work_dir):
        raise OSError("No space left on device")

    working = MeanBrightness.compute
    monkeypatch.setattr(MeanBrightness, "compute", broken)
    with pytest.raises(OSError):
        run_signals(ds, log=lambda m: None)
    outcome = {}
    assert run_signals(ds, keep_going=True, log=lambda m: None, outcome=outcome) == []
    assert outcome == {"t_mean": "failed: OSError: No space left on device", "t_needs": "skipped: it needs t_mean"}
    monkeypatch.setattr(MeanBrightness, "compute", working)
    outcome.clear()
    assert run_signals(ds, keep_going=True, log=lambda m: None, outcome=outcome) == ["t_mean", "t_needs"]
    assert outcome == {"t_mean": "ran", "t_needs": "ran"}
    run_signals(ds, keep_going=True, log=lambda m: None, outcome=outcome)
    assert outcome == {"t_mean": "up to date", "t_needs": "up to date"}


def test_launch_ends_with_every_signals_outcome_and_fails_when_one_broke(tmp_path, monkeypatch, capsys, unique_name):
    from fercurate import cli
    from fercurate.signals.quality import QualitySignal

    factories.fer2013_folder(tmp_path / unique_name, per_class=1)
    monkeypatch.setenv("FERCURATE_DATA", str(tmp_path))
    monkeypatch.setattr("fercurate.signals.SIGNALS", {"quality": QualitySignal})
    monkeypatch.setattr("fercurate.signals._run_order", lambda: ["quality"])
    working = QualitySignal.compute
    monkeypatch.setattr(QualitySignal, "compute", lambda *a: (_ for _ in ()).throw(RuntimeError("bug")))
    assert cli.main(["launch", unique_name, "--no-app"]) == 1
    captured = capsys.readouterr()
    assert "signals: quality failed: RuntimeError: bug" in captured.out
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("fercurate: error")]
    assert len(errors) == 1 and "signal(s) quality failed" in errors[0]
    assert f"fercurate compute {unique_name}" in errors[0]
    assert "Traceback" not in captured.err
    monkeypatch.setattr(QualitySignal, "compute", working)
    assert cli.main(["launch", unique_name, "--no-app"]) == 0
    assert "signals: quality ran" in capsys.readouterr().out
