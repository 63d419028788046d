"""Fixes, decisions, undo, freeze and export, without the App."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from fercurate import cli, decisions, export, fixes, manifest, queues, schema, versions
from fercurate.errors import FercurateError
from tests.factories import planted_review_dataset


@pytest.fixture
def planted(tmp_path, unique_name):
    ds, ids = planted_review_dataset(tmp_path / "fer2013", unique_name)
    fixes.propose(ds)
    ds.reload()
    yield ds, ids
    from fercurate import dataset
    dataset.delete(ds.name)


def fix(ds, sample_id, kind):
    doc = ds[sample_id][schema.fix_field(kind)]
    return doc.to_dict() if doc is not None else None


def curated(ds, sample_id):
    s = ds[sample_id]
    return s[schema.CURATED_LABEL].label, s[schema.CURATED_DROP]


def test_each_signal_becomes_a_pending_fix_on_exactly_its_samples(planted):
    ds, ids = planted
    expected = {schema.RELABEL: "mislabeled", schema.DROP_AMBIGUOUS: "ambiguous",
                schema.DROP_DUPLICATE: "duplicate", schema.DROP_NONFACE: "nonface",
                schema.DROP_QUALITY: "blank", schema.USE_CROP: "tilted"}
    for kind, role in expected.items():
        assert ds.exists(schema.fix_field(kind)).values("id") == [ids[role]], kind
        assert fix(ds, ids[role], kind)[schema.FIX_STATUS] == schema.PENDING
    assert fix(ds, ids["mislabeled"], schema.RELABEL)[schema.FIX_TARGET] == "happy"
    assert fix(ds, ids["duplicate"], schema.DROP_DUPLICATE)["group"] == "g1"
    assert queues.counts(ds)[schema.RELABEL] == {"pending": 1, "accepted": 0, "rejected": 0}
    # nothing is decided yet: curated = given
    assert curated(ds, ids["mislabeled"]) == ("angry", False)
    assert set(ds.list_saved_views()) >= set(schema.QUEUE_VIEWS.values())
    assert ds.load_saved_view(schema.QUEUE_VIEWS[schema.RELABEL]).values("id") == [ids["mislabeled"]]


def test_accept_relabels_and_drops_without_touching_the_given_label(planted):
    ds, ids = planted
    assert fixes.decide(ds, [ids["mislabeled"], ids["duplicate"]], schema.ACCEPT, curator="ana") == 2
    ds.reload()
    assert curated(ds, ids["mislabeled"]) == ("happy", False)
    assert ds[ids["mislabeled"]][schema.GROUND_TRUTH].label == "angry"
    assert curated(ds, ids["duplicate"]) == ("sad", True)
    f = fix(ds, ids["mislabeled"], schema.RELABEL)
    assert f[schema.FIX_STATUS] == schema.ACCEPTED and f[schema.FIX_CURATOR] == "ana" and f[schema.FIX_DECIDED_AT]
    record = decisions.history(ds, ids["mislabeled"])[0]
    assert (record["action"], record["from_status"], record["to_status"], record["curator"]) == \
        ("accept", "pending", "accepted", "ana")


def test_undo_walks_back_one_decision_at_a_time(planted):
    ds, ids = planted
    sid = ids["mislabeled"]
    fixes.decide(ds, [sid], schema.ACCEPT, [schema.RELABEL], curator="ana")
    fixes.decide(ds, [sid], schema.REJECT, [schema.RELABEL], curator="ana")
    assert fix(ds, sid, schema.RELABEL)[schema.FIX_STATUS] == schema.REJECTED
    assert fixes.undo(ds, [sid]) == 1
    assert fix(ds, sid, schema.RELABEL)[schema.FIX_STATUS] == schema.ACCEPTED
    assert curated(ds, sid) == ("happy", False)
    assert fixes.undo(ds, [sid]) == 1
    assert fix(ds, sid, schema.RELABEL)[schema.FIX_STATUS] == schema.PENDING
    assert curated(ds, sid) == ("angry", False)
    assert fixes.undo(ds, [sid]) == 0  # nothing left to take back
    assert [r["action"] for r in decisions.history(ds, sid)] == ["undo", "undo", "reject", "accept"]


def test_bulk_without_kinds_decides_only_pending_fixes(planted):
    ds, ids = planted
    fixes.decide(ds, [ids["nonface"]], schema.REJECT, curator="ana")
    changed = fixes.decide(ds, ds.values("id"), schema.ACCEPT, curator="bo")
    assert changed == 5  # relabel, ambiguous, duplicate, blank, crop: the rejected non-face stays rejected
    assert fix(ds, ids["nonface"], schema.DROP_NONFACE)[schema.FIX_STATUS] == schema.REJECTED
    assert queues.counts(ds)[schema.USE_CROP]["accepted"] == 1
    assert fixes.decide(ds, ds.values("id"), schema.ACCEPT) == 0


def test_two_curators_on_one_fix_both_stay_on_record_and_the_later_wins(planted):
    ds, ids = planted
    sid = ids["blank"]
    fixes.decide(ds, [sid], schema.ACCEPT, [schema.DROP_QUALITY], curator="ana")
    fixes.decide(ds, [sid], schema.REJECT, [schema.DROP_QUALITY], curator="bo")
    f = fix(ds, sid, schema.DROP_QUALITY)
    assert (f[schema.FIX_STATUS], f[schema.FIX_CURATOR]) == (schema.REJECTED, "bo")
    assert [(r["curator"], r["to_status"]) for r in decisions.history(ds, sid)] == [("bo", "rejected"), ("ana", "accepted")]
    assert curated(ds, sid) == ("neutral", False)


def test_set_label_by_hand_and_unknown_class(planted):
    ds, ids = planted
    sid = ids["clean"]
    assert fixes.set_label(ds, [sid], "disgust", curator="ana") == 1
    assert curated(ds, sid) == ("disgust", False)
    assert fix(ds, sid, schema.RELABEL)[schema.FIX_PROPOSED_BY] == "manual"
    fixes.undo(ds, [sid])
    assert fix(ds, sid, schema.RELABEL) is None and curated(ds, sid) == ("surprise", False)
    with pytest.raises(FercurateError, match="not a class"):
        fixes.set_label(ds, [sid], "bored")
    with pytest.raises(FercurateError, match="not in dataset"):
        fixes.decide(ds, ["0" * 24], schema.ACCEPT)


def test_repropose_keeps_decisions_and_withdraws_stale_pending_fixes(planted):
    ds, ids = planted
    fixes.decide(ds, [ids["nonface"]], schema.ACCEPT, curator="ana")
    # the signals change their minds: nothing is flagged any more
    ds.set_values(schema.IS_UNUSABLE, {i: False for i in ds.values("id")}, key_field="id")
    ds.set_values(schema.IS_LOW_QUALITY, {i: False for i in ds.values("id")}, key_field="id")
    fixes.propose(ds)
    assert fix(ds, ids["nonface"], schema.DROP_NONFACE)[schema.FIX_STATUS] == schema.ACCEPTED
    assert fix(ds, ids["blank"], schema.DROP_QUALITY) is None
    assert curated(ds, ids["nonface"]) == ("fear", True)


def read_manifest(data: bytes) -> tuple[dict, list[dict], list[str]]:
    lines = data.decode().splitlines(keepends=True)
    return json.loads(lines[0]), [json.loads(x) for x in lines[1:]], lines[1:]


def test_freeze_applies_decisions_and_later_decisions_do_not_change_it(planted):
    ds, ids = planted
    fixes.decide(ds, [ids["mislabeled"], ids["duplicate"], ids["tilted"]], schema.ACCEPT, curator="ana")
    header = versions.freeze(ds, "clean_v1", policy="class_weights", curator="ana")
    first = versions.manifest_bytes(ds, "clean_v1")
    head, samples, lines = read_manifest(first)
    assert head == header and head["num_samples"] == len(samples) == len(ds) - 1
    assert head["content_hash"] == manifest.content_hash(lines)
    assert head["decisions"]["pending_left"] == 3  # non-face, blank and the ambiguous label were not decided
    by_id = {s["id"]: s for s in samples}
    assert ids["duplicate"] not in by_id
    assert (by_id[ids["mislabeled"]]["label"], by_id[ids["mislabeled"]]["original_label"]) == ("happy", "angry")
    assert by_id[ids["tilted"]]["filepath"].endswith("aligned.png")
    assert by_id[ids["tilted"]]["original_filepath"] != by_id[ids["tilted"]]["filepath"]
    assert ids["nonface"] in by_id  # pending: kept, original label
    # each line carries the out-of-fold distribution as its soft label, in the header's class order
    happy = head["classes"].index("happy")
    soft = by_id[ids["mislabeled"]]["soft_label"]
    assert len(soft) == len(head["classes"]) and abs(sum(soft) - 1) < 1e-3 and soft[happy] == 0.8
    assert all(len(s["soft_label"]) == len(head["classes"]) for s in samples)
    weights = head["policy"]["class_weights"]
    assert all(s["weight"] == weights[s["label"]] for s in samples)
    assert weights["happy"] < weights["angry"]  # happy gained a train sample, angry lost one
    assert set(ds.load_saved_view("clean_v1").values("id")) == set(by_id)
    # later decisions do not touch it
    fixes.decide(ds, [ids["nonface"], ids["blank"]], schema.ACCEPT)
    fixes.undo(ds, [ids["mislabeled"]])
    assert versions.manifest_bytes(ds, "clean_v1") == first
    with pytest.raises(FercurateError, match="exists"):
        versions.freeze(ds, "clean_v1")
    assert versions.next_name(ds) == "clean_v2"
    assert versions.freeze(ds, "clean_v2")["num_samples"] == len(ds) - 3


def test_an_ambiguous_label_is_dropped_not_relabelled_and_the_drop_is_logged_frozen_and_undone(planted):
    ds, ids = planted
    sid = ids["ambiguous"]
    amb = fix(ds, sid, schema.DROP_AMBIGUOUS)
    assert fix(ds, sid, schema.RELABEL) is None  # no clear answer: never a relabel
    assert amb[schema.FIX_RUNNER_UP] == "angry" and amb[schema.FIX_GIVEN_PROB] == 0.33
    assert amb[schema.FIX_MARGIN] == pytest.approx(0.09) and amb[schema.FIX_SCORE] == 0.55
    assert ds.load_saved_view(schema.QUEUE_VIEWS[schema.DROP_AMBIGUOUS]).values("id") == [sid]
    assert fixes.decide(ds, [sid], schema.ACCEPT, curator="ana") == 1
    ds.reload()
    assert curated(ds, sid) == ("disgust", True)  # dropped, its label untouched
    assert [(r["action"], r["kind"], r["curator"]) for r in decisions.history(ds, sid)] == [
        ("accept", schema.DROP_AMBIGUOUS, "ana")]
    versions.freeze(ds, "clean_v1")
    _, samples, _ = read_manifest(versions.manifest_bytes(ds, "clean_v1"))
    assert sid not in {s["id"] for s in samples} and len(samples) == len(ds) - 1
    fixes.undo(ds, [sid])
    ds.reload()
    assert curated(ds, sid) == ("disgust", False)
    assert fix(ds, sid, schema.DROP_AMBIGUOUS)[schema.FIX_STATUS] == schema.PENDING


def test_auto_accept_takes_only_what_passes_each_threshold_as_auto_curator_and_can_be_undone(planted):
    from fercurate import policy
    ds, ids = planted
    fixes.decide(ds, [ids["nonface"]], schema.REJECT, curator="ana")  # a person's decision stays
    accepted = fixes.decide_auto(ds, "cautious")
    ds.reload()
    # relabel score 1 - 0.8 = 0.2 passes 0.3; the ambiguous label, 55 % likely right, does not pass 0.5
    assert accepted == {schema.RELABEL: 1, schema.DROP_AMBIGUOUS: 0, schema.DROP_DUPLICATE: 1,
                        schema.DROP_NONFACE: 0, schema.DROP_QUALITY: 1}
    assert policy.POLICIES["cautious"].max_score[schema.DROP_AMBIGUOUS] < 0.55
    assert fix(ds, ids["ambiguous"], schema.DROP_AMBIGUOUS)[schema.FIX_STATUS] == schema.PENDING
    assert fix(ds, ids["tilted"], schema.USE_CROP)[schema.FIX_STATUS] == schema.PENDING  # never automatic
    assert fix(ds, ids["nonface"], schema.DROP_NONFACE)[schema.FIX_CURATOR] == "ana"
    relabel = fix(ds, ids["mislabeled"], schema.RELABEL)
    assert relabel[schema.FIX_STATUS] == schema.ACCEPTED and relabel[schema.FIX_CURATOR] == "auto:cautious"
    assert curated(ds, ids["mislabeled"]) == ("happy", False)
    assert decisions.history(ds, ids["duplicate"])[-1]["curator"] == "auto:cautious"
    assert fixes.decide_auto(ds, "cautious") == {k: 0 for k in accepted}  # idempotent
    # the default takes every label proposal (what trained the better model on crowd votes), never a crop
    assert fixes.decide_auto(ds, "default")[schema.DROP_AMBIGUOUS] == 1
    assert fix(ds, ids["ambiguous"], schema.DROP_AMBIGUOUS)[schema.FIX_CURATOR] == "auto:default"
    assert fix(ds, ids["tilted"], schema.USE_CROP)[schema.FIX_STATUS] == schema.PENDING
    fixes.undo(ds, [ids["mislabeled"]], curator="ana")
    assert fix(ds, ids["mislabeled"], schema.RELABEL)[schema.FIX_STATUS] == schema.PENDING
    with pytest.raises(FercurateError, match="unknown auto-accept policy 'nope'; choose from default"):
        fixes.decide_auto(ds, "nope")


def test_cli_auto_accept_and_its_errors(planted, capsys):
    ds, ids = planted
    assert cli.main(["decide", ds.name, "accept", "--auto", "drops", "--kind", schema.DROP_DUPLICATE]) == 0
    out = capsys.readouterr().out
    assert "auto:drops" in out and "drop_duplicate 1" in out
    assert fix(ds, ids["duplicate"], schema.DROP_DUPLICATE)[schema.FIX_CURATOR] == "auto:drops"
    assert fix(ds, ids["nonface"], schema.DROP_NONFACE)[schema.FIX_STATUS] == schema.PENDING  # not that kind
    assert cli.main(["decide", ds.name, "reject", "--auto"]) == 2
    assert "--auto goes with accept" in capsys.readouterr().err
    assert cli.main(["decide", ds.name, "accept"]) == 2
    assert "--ids" in capsys.readouterr().err


def test_cli_decides_a_queue_by_score_and_names_its_errors(planted, capsys):
    ds, ids = planted
    assert cli.main(["decide", ds.name, "accept", "--kind", schema.DROP_NONFACE, "--max-score", "0.05"]) == 0
    assert "accept: 0 pending drop_nonface" in capsys.readouterr().out  # its usability is 0.1
    assert fix(ds, ids["nonface"], schema.DROP_NONFACE)[schema.FIX_STATUS] == schema.PENDING
    assert cli.main(["decide", ds.name, "accept", "--kind", schema.DROP_NONFACE, "--max-score", "0.1",
                     "--curator", "ana"]) == 0
    assert "accept: 1 pending drop_nonface fix(es) with score <= 0.1 changed" in capsys.readouterr().out
    assert fix(ds, ids["nonface"], schema.DROP_NONFACE)[schema.FIX_CURATOR] == "ana"
    # a queue view names the kind; the weakest evidence is rejected
    assert cli.main(["decide", ds.name, "reject", "--view", schema.QUEUE_VIEWS[schema.DROP_AMBIGUOUS],
                     "--min-score", "0.5"]) == 0
    assert fix(ds, ids["ambiguous"], schema.DROP_AMBIGUOUS)[schema.FIX_STATUS] == schema.REJECTED
    assert fix(ds, ids["mislabeled"], schema.RELABEL)[schema.FIX_STATUS] == schema.PENDING
    for bad, says in ((["accept", "--max-score", "0.3"], "add --kind KIND"),
                      (["undo", "--kind", schema.RELABEL, "--max-score", "0.3"], "not undo")):
        assert cli.main(["decide", ds.name, *bad]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1


def test_raw_is_every_sample_with_its_original_label(planted):
    ds, ids = planted
    fixes.decide(ds, ds.values("id"), schema.ACCEPT)
    head, samples, _ = read_manifest(versions.manifest_bytes(ds, schema.RAW_VERSION))
    assert head["num_samples"] == len(ds) and all(s["label"] == s["original_label"] for s in samples)
    assert all(s["filepath"] == s["original_filepath"] for s in samples)
    assert {s["split"] for s in samples} == {"train", "val", "test"}
    assert samples[0]["source"]["usage"] == "Training"


def test_an_interrupted_freeze_leaves_no_version_and_the_name_stays_usable(planted, monkeypatch):
    ds, _ = planted

    def crash(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(versions, "_encode", crash)
    with pytest.raises(KeyboardInterrupt):
        versions.freeze(ds, "clean_v1")
    assert versions.version_names(ds) == ["raw"]
    with pytest.raises(FercurateError, match="no version"):
        versions.manifest_bytes(ds, "clean_v1")
    monkeypatch.undo()
    assert versions.freeze(ds, "clean_v1")["version"] == "clean_v1"


@pytest.mark.parametrize("name", ["raw", "", "a b", "../x", "-v1"])
def test_bad_version_names_are_refused(planted, name):
    ds, _ = planted
    with pytest.raises(FercurateError):
        versions.freeze(ds, name)


def test_export_formats(planted, tmp_path):
    ds, ids = planted
    fixes.decide(ds, [ids["mislabeled"]], schema.ACCEPT)
    versions.freeze(ds, "v1")
    out = tmp_path / "m.jsonl"
    export.export(ds, "v1", out)
    assert out.read_bytes() == versions.manifest_bytes(ds, "v1")
    export.export(ds, "v1", tmp_path / "m.csv", "csv")
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert len(rows) == len(ds) and {r["id"]: r["label"] for r in rows}[ids["mislabeled"]] == "happy"
    folder = tmp_path / "folder"
    export.export(ds, "v1", folder, "folder")
    assert len(list((folder / "train" / "happy").glob(f"{ids['mislabeled']}.*"))) == 1
    assert len(list(folder.glob("*/*/*.*"))) == len(ds)
    assert (folder / "manifest.jsonl").read_bytes() == out.read_bytes()
    with pytest.raises(FercurateError, match="not empty"):
        export.export(ds, "v1", folder, "folder")


def test_cli_review_round_trip(planted, tmp_path, capsysbinary):
    ds, ids = planted
    assert cli.main(["decide", ds.name, "accept", "--view", schema.QUEUE_VIEWS[schema.DROP_DUPLICATE]]) == 0
    assert cli.main(["set-label", ds.name, "fear", "--ids", ids["clean"], "--curator", "cy"]) == 0
    assert cli.main(["freeze", "clean_v1", "--dataset", ds.name, "--policy", "oversample"]) == 0
    capsysbinary.readouterr()
    assert cli.main(["export", "--view", "clean_v1", "--dataset", ds.name]) == 0
    once = capsysbinary.readouterr().out
    assert cli.main(["export", "--view", "clean_v1", "--dataset", ds.name]) == 0
    assert capsysbinary.readouterr().out == once  # byte-identical
    head, samples, _ = read_manifest(once)
    assert head["policy"]["name"] == "oversample" and head["num_samples"] == len(ds) - 1
    assert cli.main(["export", "--view", "nope", "--dataset", ds.name]) == 2
    err = capsysbinary.readouterr().err.decode()
    assert err.count("\n") == 1 and "clean_v1" in err and "raw" in err
    assert cli.main(["decisions", ds.name, "--out", str(tmp_path / "d.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "d.csv").open()))
    assert [(r["action"], r["kind"]) for r in rows] == [("accept", "drop_duplicate"), ("set_label", "relabel")]
    assert rows[1]["curator"] == "cy" and rows[1]["to_target"] == "fear" and rows[1]["filepath"]
    assert cli.main(["versions", "--dataset", ds.name]) == 0
    assert b"clean_v1" in capsysbinary.readouterr().out
    assert cli.main(["status", ds.name]) == 0
    status = capsysbinary.readouterr().out.decode()
    assert "drop_duplicate  0 pending, 1 accepted, 0 rejected" in status and "versions: raw, clean_v1" in status


def test_decide_on_a_review_queue_decides_only_that_queues_kind(planted, capsys):
    """As the panel does: a sample in two queues is decided in the queue being reviewed only."""
    ds, ids = planted
    both = ids["mislabeled"]
    ds.set_values(schema.IS_LOW_QUALITY, {both: True}, key_field="id")
    ds.set_values(schema.QUALITY_SCORE, {both: 0.2}, key_field="id")
    fixes.propose(ds)

    def status(kind):
        ds.reload()
        return ds[both][fixes.FIX_FIELDS[kind]][schema.FIX_STATUS]

    assert (status(schema.RELABEL), status(schema.DROP_QUALITY)) == (schema.PENDING, schema.PENDING)
    assert cli.main(["decide", ds.name, "accept", "--view", schema.QUEUE_VIEWS[schema.RELABEL]]) == 0
    assert "(relabel)" in capsys.readouterr().out
    assert (status(schema.RELABEL), status(schema.DROP_QUALITY)) == (schema.ACCEPTED, schema.PENDING)
    assert cli.main(["decide", ds.name, "reject", "--view", schema.QUEUE_VIEWS[schema.DROP_QUALITY]]) == 0
    assert (status(schema.RELABEL), status(schema.DROP_QUALITY)) == (schema.ACCEPTED, schema.REJECTED)
    assert ds[ids["blank"]][fixes.FIX_FIELDS[schema.DROP_QUALITY]][schema.FIX_STATUS] == schema.REJECTED
    # a bulk pass over a queue leaves decided fixes of its kind alone; --kind still overrides
    assert cli.main(["decide", ds.name, "accept", "--view", schema.QUEUE_VIEWS[schema.DROP_QUALITY]]) == 0
    assert status(schema.DROP_QUALITY) == schema.REJECTED
    assert cli.main(["decide", ds.name, "accept", "--view", schema.QUEUE_VIEWS[schema.DROP_QUALITY],
                     "--kind", schema.DROP_QUALITY]) == 0
    assert status(schema.DROP_QUALITY) == schema.ACCEPTED


def test_export_into_a_closed_pipe_is_quiet(planted):
    ds, _ = planted
    proc = subprocess.Popen([sys.executable, "-m", "fercurate.cli", "export", "--view", "raw", "--dataset", ds.name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and err.decode().strip() == ""
