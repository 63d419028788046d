"""The plugin's operators, run through FiftyOne's operator execution API (no App).

A small dataset gets signal fields planted by hand (three label issues, one duplicate
pair, one non-face, one low-quality image), ``fixes.propose`` turns them into fixes,
and each test runs an operator the way the App does and checks the database.
"""

from __future__ import annotations

import re
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import pytest

from fercurate import decisions, queues, schema, versions
from tests import factories

PLUGIN = "@fercurate/review"
PLUGINS_DIR = Path(__file__).resolve().parent.parent / "plugins"


def op(name: str) -> str:
    return f"{PLUGIN}/{name}"


@pytest.fixture(scope="module")
def plugins_dir():
    """Point FiftyOne's operator registry at the repo's plugins/ (as ``fercurate launch`` does)."""
    before = fo.config.plugins_dir
    fo.config.plugins_dir = str(PLUGINS_DIR)
    yield fo.config.plugins_dir
    fo.config.plugins_dir = before


@pytest.fixture
def planted(tmp_path, unique_name, plugins_dir):
    ds, roles = factories.findings_dataset(tmp_path / "fer", unique_name)
    yield ds, roles
    ds.delete()


def run(uri: str, ds, params: dict | None = None, selected: list[str] | None = None, view=None):
    result = foo.execute_operator(op(uri), {"dataset": ds.name, "view": view, "selected": selected or [],
                                            "params": {"curator": "tester", **(params or {})}})
    return result.result


def status(ds, sid: str, kind: str) -> str | None:
    ds.reload()  # the operators wrote through their own dataset object
    fix = ds[sid][schema.fix_field(kind)]
    return fix[schema.FIX_STATUS] if fix is not None else None


def relabel_status(ds, sid: str) -> str | None:
    return status(ds, sid, schema.RELABEL)


def test_plugin_registers_every_operator_and_the_panel(plugins_dir):
    listed = {o.uri for o in foo.list_operators(type="operator")}
    for name in ("accept_fixes", "reject_fixes", "decide_by_score", "undo_fixes", "set_label", "freeze_version",
                 "auto_accept", "open_queue"):
        assert op(name) in listed
    assert op("review_panel") in {p.uri for p in foo.list_operators(type="panel")}


def test_accept_and_reject_selected_samples_write_status_curator_and_curated_label(planted):
    ds, roles = planted
    out = run("accept_fixes", ds, {"kind": schema.RELABEL, "target": "selected samples"}, [roles["issue0"]])
    assert out == {"changed": 1, "samples": 1}
    out = run("reject_fixes", ds, {"target": "selected samples"}, [roles["issue1"]])
    assert out["changed"] == 1
    ds.reload()
    accepted = ds[roles["issue0"]]
    assert status(ds, roles["issue0"], schema.RELABEL) == schema.ACCEPTED
    assert accepted[schema.fix_field(schema.RELABEL)][schema.FIX_CURATOR] == "tester"
    assert accepted[schema.CURATED_LABEL].label == accepted[schema.SUGGESTED_LABEL].label
    assert accepted[schema.CURATED_LABEL].label != accepted[schema.GROUND_TRUTH].label  # original kept
    rejected = ds[roles["issue1"]]
    assert status(ds, roles["issue1"], schema.RELABEL) == schema.REJECTED
    assert rejected[schema.CURATED_LABEL].label == rejected[schema.GROUND_TRUTH].label
    assert status(ds, roles["issue2"], schema.RELABEL) == schema.PENDING  # not selected, untouched
    actions = [(h["sample_id"], h["action"]) for h in decisions.history(ds)]
    assert sorted(actions) == sorted([(roles["issue0"], schema.ACCEPT), (roles["issue1"], schema.REJECT)])


def test_bulk_accept_on_the_view_counts_in_the_form_and_changes_every_pending_fix(planted):
    ds, roles = planted
    run("reject_fixes", ds, {"kind": schema.RELABEL, "target": "selected samples"}, [roles["issue2"]])
    queue = queues.queue_view(ds, schema.RELABEL)
    # the form the App shows before the bulk action says how many fixes will change
    inputs = resolve_input("accept_fixes", ds, {"kind": "all pending", "target": "current view"}, view=queue)
    assert "accept 2 fix(es)" in inputs["properties"]["summary"]["view"]["label"]
    out = run("accept_fixes", ds, {"kind": "all pending", "target": "current view"}, view=queue)
    assert out == {"changed": 2, "samples": 3}
    ds.reload()
    assert [status(ds, roles[r], schema.RELABEL) for r in ("issue0", "issue1", "issue2")] == [
        schema.ACCEPTED, schema.ACCEPTED, schema.REJECTED]  # "all pending" leaves the decided one alone
    assert status(ds, roles["dup"], schema.DROP_DUPLICATE) == schema.PENDING  # outside the view


def test_auto_accept_shows_what_passes_then_accepts_it_as_the_policy(planted):
    ds, roles = planted
    ds.set_values(f"{schema.fix_field(schema.RELABEL)}.{schema.FIX_SCORE}",
                  {roles["issue0"]: 0.1, roles["issue1"]: 0.45, roles["issue2"]: 0.25}, key_field="id")
    form = resolve_input("auto_accept", ds, {"policy": "default", "kind": schema.RELABEL, "target": "current view"})
    assert "accept 2 fix(es): label issues 2" in form["properties"]["summary"]["view"]["label"]
    out = run("auto_accept", ds, {"policy": "default", "kind": schema.RELABEL, "target": "current view"})
    assert out == {"accepted": {schema.RELABEL: 2}, "curator": "auto:default"}
    assert [relabel_status(ds, roles[r]) for r in ("issue0", "issue1", "issue2")] == [
        schema.ACCEPTED, schema.PENDING, schema.ACCEPTED]
    assert ds[roles["issue0"]][schema.fix_field(schema.RELABEL)][schema.FIX_CURATOR] == "auto:default"
    assert status(ds, roles["dup"], schema.DROP_DUPLICATE) == schema.PENDING  # only the chosen kind


def test_a_queue_is_accepted_or_rejected_by_score_with_the_count_shown_first(planted):
    ds, roles = planted
    ds.set_values(f"{schema.fix_field(schema.RELABEL)}.{schema.FIX_SCORE}",
                  {roles["issue0"]: 0.1, roles["issue1"]: 0.45, roles["issue2"]: 0.25}, key_field="id")
    params = {"queue": schema.RELABEL, "action": schema.ACCEPT, "threshold": 0.3}
    form = resolve_input("decide_by_score", ds, params)
    assert "accept 2 of the 3 pending 'label issues' fixes (score ≤ 0.300)" in form["properties"]["summary"]["view"]["label"]
    assert run("decide_by_score", ds, params)["changed"] == 2
    assert [relabel_status(ds, roles[r]) for r in ("issue0", "issue1", "issue2")] == [
        schema.ACCEPTED, schema.PENDING, schema.ACCEPTED]
    # the weakest evidence the other way, only pending fixes of that queue
    params = {"queue": schema.RELABEL, "action": schema.REJECT, "threshold": 0.2}
    form = resolve_input("decide_by_score", ds, params)
    assert "reject 1 of the 1 pending" in form["properties"]["summary"]["view"]["label"]
    assert run("decide_by_score", ds, params)["changed"] == 1
    assert [relabel_status(ds, roles[r]) for r in ("issue0", "issue1", "issue2")] == [
        schema.ACCEPTED, schema.REJECTED, schema.ACCEPTED]
    assert status(ds, roles["dup"], schema.DROP_DUPLICATE) == schema.PENDING
    assert ds[roles["issue1"]][schema.fix_field(schema.RELABEL)][schema.FIX_CURATOR] == "tester"


def test_undo_restores_the_previous_status_and_the_curated_fields(planted):
    ds, roles = planted
    sid = roles["dup"]
    run("accept_fixes", ds, {"kind": schema.DROP_DUPLICATE}, [sid])
    ds.reload()
    assert ds[sid][schema.CURATED_DROP] is True
    out = run("undo_fixes", ds, {"kind": schema.DROP_DUPLICATE, "target": "selected samples"}, [sid])
    assert out["changed"] == 1
    ds.reload()
    assert status(ds, sid, schema.DROP_DUPLICATE) == schema.PENDING
    assert ds[sid][schema.CURATED_DROP] is False
    assert [h["action"] for h in decisions.history(ds, sid)] == [schema.UNDO, schema.ACCEPT]


def test_set_label_relabels_the_selected_samples_by_hand(planted):
    ds, roles = planted
    sid = roles["clean"]
    given = ds[sid][schema.GROUND_TRUTH].label
    new = next(c for c in schema.EMOTIONS if c != given)
    form = resolve_input("set_label", ds, {}, selected=[sid])
    assert form["properties"]["label"]["type"]["values"] == list(schema.EMOTIONS)
    assert run("set_label", ds, {"label": new}, [sid]) == {"changed": 1, "label": new}
    ds.reload()
    fix = ds[sid][schema.fix_field(schema.RELABEL)]
    assert (fix[schema.FIX_STATUS], fix[schema.FIX_PROPOSED_BY], fix[schema.FIX_TARGET]) == (
        schema.ACCEPTED, "manual", new)
    assert ds[sid][schema.CURATED_LABEL].label == new and ds[sid][schema.GROUND_TRUTH].label == given


def test_freeze_version_defaults_to_the_next_free_name_and_refuses_an_existing_one(planted):
    ds, roles = planted
    run("accept_fixes", ds, {"kind": schema.DROP_NONFACE}, [roles["nonface"]])
    form = resolve_input("freeze_version", ds, {})
    assert form["properties"]["name"]["default"] == "clean_v1"
    assert "5 fix(es) are still pending" in form["properties"]["summary"]["view"]["label"]
    out = run("freeze_version", ds, {"name": "clean_v1", "policy": "class_weights"})
    assert out["name"] == "clean_v1"
    assert versions.version_names(ds) == [schema.RAW_VERSION, "clean_v1"]
    assert ds.has_saved_view("clean_v1")
    assert len(ds.load_saved_view("clean_v1")) == len(ds) - 1  # the accepted non-face is dropped
    assert resolve_input("freeze_version", ds, {})["properties"]["name"]["default"] == "clean_v2"
    with pytest.raises(foo.executor.ExecutionError, match="clean_v1' exists"):
        run("freeze_version", ds, {"name": "clean_v1"})
    assert versions.version_names(ds) == [schema.RAW_VERSION, "clean_v1"]


def test_open_queue_sets_the_apps_view_to_the_saved_queue(planted):
    ds, _ = planted
    result = foo.execute_operator(op("open_queue"), {"dataset": ds.name, "params": {"queue": schema.DROP_QUALITY}})
    assert result.result == {"queue": schema.DROP_QUALITY, "view": schema.QUEUE_VIEWS[schema.DROP_QUALITY]}
    triggered = [(r["operator_uri"], r["params"]) for r in result.executor.to_json()["requests"]]
    assert ("set_view", {"name": "review-quality"}) in triggered


@pytest.mark.parametrize("uri,params,selected,message", [
    ("accept_fixes", {"kind": "relabel", "target": "selected samples"}, [], "no samples are selected"),
    ("accept_fixes", {"kind": "recolour"}, None, "Path: kind. Reason: Invalid enum value"),
    ("reject_fixes", {"target": "everything"}, None, "Path: target. Reason: Invalid enum value"),
    ("set_label", {"label": "bored"}, "ROLE", "Path: label. Reason: Invalid enum value"),
    ("set_label", {"label": "happy"}, [], "no samples are selected"),
    ("freeze_version", {"name": "clean v1!"}, None, "version name 'clean v1!' is not allowed"),
    ("freeze_version", {"name": "v2", "policy": "smote"}, None, "Path: policy. Reason: Invalid enum value"),
])
def test_bad_parameters_give_a_clear_error_and_change_nothing(planted, uri, params, selected, message):
    ds, roles = planted
    selected = [roles["issue0"]] if selected == "ROLE" else selected
    before = queues.counts(ds)
    with pytest.raises(foo.executor.ExecutionError, match=message):
        run(uri, ds, params, selected)
    assert queues.counts(ds) == before and versions.version_names(ds) == [schema.RAW_VERSION]


def resolve_input(uri: str, ds, params: dict, selected: list[str] | None = None, view=None) -> dict:
    """The operator's form as the App receives it (JSON), for given parameters."""
    request = {"dataset_name": ds.name, "view": view._serialize() if view is not None else None,
               "selected": selected or [], "params": params}
    ctx = foo.ExecutionContext(request_params=request)
    return foo.get_operator(op(uri)).resolve_input(ctx).to_json()["type"]


def panel_event(ds, method: str, state: dict, selected: list[str] | None = None):
    """Run a review-panel event the way the App does; ``state`` is updated in place."""
    params = {"panel_id": "test-panel", "__method__": method, "panel_state": state, "state": state}
    return foo.execute_operator(op("review_panel"), {"dataset": ds.name, "selected": selected or [], "params": params})


def test_review_panel_accepts_rejects_skips_and_undoes_along_the_queue(planted):
    ds, roles = planted
    state: dict = {}
    panel_event(ds, "on_load", state)
    assert state["queue"] == schema.RELABEL and state["sample_id"] == roles["issue0"]  # strongest case first
    assert state["evidence"]["probs"][state["evidence"]["fixes"][schema.RELABEL][schema.FIX_TARGET]] == 0.8
    assert re.search(r"label issues +3 +0 +0\n", state["md_counts"])

    panel_event(ds, "accept", state)
    assert relabel_status(ds, roles["issue0"]) == schema.ACCEPTED
    assert state["sample_id"] == roles["issue1"] and state["message"].startswith("accepted 1 fix(es)")
    panel_event(ds, "skip", state)
    assert state["sample_id"] == roles["issue2"] and state["skipped"] == [roles["issue1"]]
    panel_event(ds, "reject", state)
    assert relabel_status(ds, roles["issue2"]) == schema.REJECTED
    assert state["sample_id"] == roles["issue1"]  # only the skipped one is left
    panel_event(ds, "undo", state)
    assert relabel_status(ds, roles["issue2"]) == schema.PENDING and state["sample_id"] == roles["issue2"]
    assert state["counts"][schema.RELABEL] == {schema.PENDING: 2, schema.ACCEPTED: 1, schema.REJECTED: 0}
    assert re.search(r"label issues +2 +1 +0\n", state["md_counts"])


def test_review_panel_follows_the_selection_and_shows_the_duplicate_group(planted):
    ds, roles = planted
    state: dict = {}
    panel_event(ds, "on_load", state)
    panel_event(ds, "on_change_selected", state, selected=[roles["dup"]])
    assert state["sample_id"] == roles["dup"]
    assert {m["id"] for m in state["evidence"]["group"]} == {roles["keeper"], roles["dup"]}
    result = panel_event(ds, "show_group", state)
    views = [r["params"]["view"] for r in result.executor.to_json()["requests"] if r["operator_uri"] == "set_view"]
    assert views and roles["keeper"] in str(views[0]) and roles["dup"] in str(views[0])
    panel_event(ds, "accept", state)  # the sample is not in the open queue: its pending fixes are decided
    assert status(ds, roles["dup"], schema.DROP_DUPLICATE) == schema.ACCEPTED
