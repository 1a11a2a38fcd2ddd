"""The pod rules shared by the workload, claim and helper-pod layers."""

from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import pods


def _pod(name, claims, phase="Running", node="n1", labels=None, deleting=False):
    meta = {"name": name, "namespace": "app", "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node, "volumes": [
        {"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims] + [{"name": "tmp", "emptyDir": {}}]},
        "status": {"phase": phase}}


def _helper(name, session, claims):
    return _pod(name, claims, labels={names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_SESSION: session})


def test_claim_names_skips_other_volume_kinds():
    assert pods.claim_names(_pod("a", ["data", "logs"])) == ["data", "logs"]


def test_pods_using_leaves_out_finished_pods_and_the_sessions_own_helpers():
    listed = [_pod("app-0", ["data"]), _pod("job", ["data"], phase="Succeeded"), _helper("mine", "s1", ["data"]),
              _helper("other", "s2", ["data"]), _pod("web", ["logs"])]
    found = [p["metadata"]["name"] for p in pods.pods_using(listed, ["data"], exclude_session="s1")]
    assert found == ["app-0", "other"]
    assert [p["metadata"]["name"] for p in pods.pods_using(listed, ["data"])] == ["app-0", "mine", "other"]


def test_a_session_label_without_the_managed_by_label_is_not_a_helper():
    lookalike = _pod("lookalike", ["data"], labels={names.LABEL_SESSION: "s1"})
    assert pods.pod_session(lookalike) is None
    assert pods.pods_using([lookalike], ["data"], exclude_session="s1") == [lookalike]


def test_pods_holding_counts_scheduled_finished_pods_but_not_ones_being_deleted():
    listed = [_pod("done", ["data"], phase="Succeeded"), _pod("never-ran", ["data"], phase="Failed", node=None),
              _pod("going", ["data"], deleting=True), _pod("app-0", ["data"])]
    assert [p["metadata"]["name"] for p in pods.pods_holding(listed, ["data"])] == ["done", "app-0"]
