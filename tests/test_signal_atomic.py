"""A signal killed while it writes its fields is redone by the next run, and its pending
fixes are neither withdrawn nor replaced from the half-written fields meanwhile."""

import fiftyone as fo
import pytest

from fercurate import dataset, fixes, schema
from fercurate.signals import computed, interrupted, run_signals
from fercurate.sources import read_source
from tests.test_signal_duplicates import plant

DUP_FIELDS = (schema.DUP_GROUP, schema.DUP_KIND, schema.DUP_KEEPER, schema.IS_DUPLICATE,
              schema.DUP_LABEL_CONFLICT, schema.DUP_CROSS_SPLIT, schema.DUP_SCORE)


def snapshot(ds: fo.Dataset) -> dict:
    ds.reload()
    fields = dict(zip(DUP_FIELDS, ds.values(list(DUP_FIELDS))))
    drops = [d.to_dict() if d is not None else None for d in ds.values(fixes.FIX_FIELDS[schema.DROP_DUPLICATE])]
    return {"fields": fields, "drops": drops}


@pytest.fixture
def planted(tmp_path, unique_name):
    root = tmp_path / "fer"
    plant(root)
    dataset.ingest(read_source(root), unique_name)
    ds = fo.load_dataset(unique_name)
    assert run_signals(ds, ["duplicates"], log=lambda m: None) == ["duplicates"]
    fixes.propose(ds)
    return ds


def test_kill_between_two_writes_is_redone_and_keeps_pending_fixes(planted, monkeypatch):
    ds = planted
    whole = snapshot(ds)
    pending = sum(d is not None and d[schema.FIX_STATUS] == schema.PENDING for d in whole["drops"])
    assert pending >= 4  # the planted copies

    real_set_values = fo.Dataset.set_values
    calls = {"n": 0}

    def killed_after_first_write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the process dies between two field writes
        return real_set_values(self, *args, **kwargs)

    monkeypatch.setattr(fo.Dataset, "set_values", killed_after_first_write)
    with pytest.raises(KeyboardInterrupt):
        run_signals(ds, ["duplicates"], recompute=True, log=lambda m: None)
    monkeypatch.setattr(fo.Dataset, "set_values", real_set_values)

    ds.reload()
    assert snapshot(ds)["fields"] != whole["fields"]  # the kill did leave half-written fields
    assert interrupted(ds) == ["duplicates"] and "duplicates" not in computed(ds)

    fixes.propose(ds)  # e.g. the rest of a launch: the half-written fields must not withdraw the drops
    assert snapshot(ds)["drops"] == whole["drops"]

    logs: list[str] = []
    assert run_signals(ds, ["duplicates"], log=logs.append) == ["duplicates"]  # not "up to date"
    fixes.propose(ds)
    after = snapshot(ds)
    assert after["fields"] == whole["fields"]
    assert [d and d[schema.FIX_STATUS] for d in after["drops"]] == [d and d[schema.FIX_STATUS] for d in whole["drops"]]
    assert interrupted(ds) == [] and computed(ds)["duplicates"]["state"] == "complete"
