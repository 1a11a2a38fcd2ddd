import copy

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import claims as c
from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import session as s
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    DataRestoreError,
    ForbiddenError,
    PreflightError,
)
from ansible_collections.velero.data_restore.plugins.module_utils.pods import claim_names, is_scheduled
from fake_kube import FakeKube

VNS = "velero"
NS = "shop"
SESSION = "rollback"
PROTECTION = "kubernetes.io/pvc-protection"
MUTATING = ("create", "patch", "update", "delete")


class Killed(Exception):
    """Stands for SIGKILL: the run stops right before a request."""


class KillableKube(FakeKube):
    kill_at = 0
    mutations = 0

    def _check(self, verb, kind, name=None, namespace=None):
        if verb in MUTATING and self.kill_at:
            self.mutations += 1
            if self.mutations == self.kill_at:
                self.requests.append((verb, kind.kind))
                raise Killed("killed before %s %s" % (verb, kind.kind))
        return super(KillableKube, self)._check(verb, kind, name, namespace)


def pv_controller(fk):
    """kube-controller-manager's PV binder, pvc-protection and reclaimer, reduced to what a swap meets."""
    changed = False
    for pvc in fk.all(k.PVC):
        meta = pvc["metadata"]
        # pvc-protection's podUsesPVC: a scheduled pod that names the claim holds it, whatever its phase.
        holders = [p for p in fk.all(k.POD, meta["namespace"]) if is_scheduled(p) and meta["name"] in claim_names(p)]
        if meta.get("deletionTimestamp") and not holders:
            fk.remove(k.PVC, meta["name"], meta["namespace"])
            changed = True
    # A claim being deleted still exists: its PV stays Bound until it is gone.
    claims = dict(((p["metadata"]["namespace"], p["metadata"]["name"]), p) for p in fk.all(k.PVC))
    for pv in fk.all(k.PV):
        name, ref, phase = pv["metadata"]["name"], pv["spec"].get("claimRef"), pv["status"]["phase"]
        if ref is None:
            continue
        claim = claims.get((ref["namespace"], ref["name"]))
        if ref.get("uid"):
            if (claim is None or claim["metadata"]["uid"] != ref["uid"]) and phase == "Bound":
                fk.mutate(k.PV, name, None, lambda o: o["status"].update(phase="Released"))
                changed = True
            elif phase == "Released" and pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete":
                fk.remove(k.PV, name)  # the reclaimer: this is what Retain must prevent
                changed = True
        elif claim is not None and claim["spec"].get("volumeName") == name:
            def bind_pv(o, uid=claim["metadata"]["uid"]):
                o["spec"]["claimRef"]["uid"] = uid
                o["status"]["phase"] = "Bound"
            fk.mutate(k.PV, name, None, bind_pv)

            def bind_claim(o):
                o["status"] = {"phase": "Bound", "capacity": pv["spec"]["capacity"]}
                o["metadata"].setdefault("annotations", {})["pv.kubernetes.io/bind-completed"] = "yes"
            fk.mutate(k.PVC, ref["name"], ref["namespace"], bind_claim)
            changed = True
        elif claim is None and phase != "Available":
            fk.mutate(k.PV, name, None, lambda o: o["status"].update(phase="Available"))
            changed = True
    return changed


def bound_pair(fk, pvc_name, pv_name, sc="sim-immediate", size="1Gi", labels=None, policy="Delete",
               selector=None):
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
            "storageClassName": sc, "volumeMode": "Filesystem", "volumeName": pv_name}
    if selector:
        spec["selector"] = selector
    pvc = fk.add(k.PVC, {"metadata": {
        "name": pvc_name, "namespace": NS, "finalizers": [PROTECTION], "labels": labels or {},
        "annotations": {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                        "volume.kubernetes.io/storage-provisioner": "sim.csi", "team": "shop",
                        "volume.kubernetes.io/selected-node": "node-1"}},
        "spec": spec, "status": {"phase": "Bound", "capacity": {"storage": size}}})
    pv_annotations = {"pv.kubernetes.io/provisioned-by": "sim.csi", "pv.kubernetes.io/bound-by-controller": "yes"}
    fk.add(k.PV, {"metadata": {"name": pv_name, "annotations": pv_annotations},
                  "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                           "persistentVolumeReclaimPolicy": policy, "storageClassName": sc,
                           "volumeMode": "Filesystem",
                           "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": NS,
                                        "name": pvc_name, "uid": pvc["metadata"]["uid"]}},
                  "status": {"phase": "Bound"}})
    return pvc


def make_kube(cls=FakeKube, restored_class="sim-immediate"):
    fk = cls()
    s.ensure(fk, VNS, SESSION, mode="replace")
    fk.controllers.append(pv_controller)
    bound_pair(fk, "data", "pv-old", labels={"app": "web"})
    bound_pair(fk, "data-restored", "pv-new", sc=restored_class, size="2Gi",
               selector={"matchLabels": {"velero.io/dynamic-pv-restore": "x"}})
    return fk


@pytest.fixture
def fk():
    return make_kube()


def params(**kw):
    base = dict(velero_namespace=VNS, session=SESSION, mode="rebind", state="swapped", wait=True, wait_timeout=30,
                volumes=[{"key": "shop/data", "target_namespace": NS, "target_pvc": "data",
                          "new_pvc": {"name": "data-restored", "size": "2Gi"}, "method": "fs"}])
    base.update(kw)
    return base


def mutations(fk):
    return sum(fk.count(v) for v in MUTATING)


def assert_swapped(fk):
    pvc = fk.find(k.PVC, "data", NS)
    assert pvc["spec"]["volumeName"] == "pv-new" and pvc["status"]["phase"] == "Bound"
    assert pvc["metadata"]["labels"] == {"app": "web"}
    assert pvc["metadata"]["annotations"]["team"] == "shop"
    assert "volume.kubernetes.io/selected-node" not in pvc["metadata"]["annotations"]
    assert pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"  # written by the binder
    assert "selector" not in pvc["spec"]
    assert pvc["spec"]["resources"] == {"requests": {"storage": "1Gi"}}
    assert fk.find(k.PVC, "data-restored", NS) is None
    old, new = fk.find(k.PV, "pv-old"), fk.find(k.PV, "pv-new")
    assert old["status"]["phase"] == "Released" and old["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert new["status"]["phase"] == "Bound" and new["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert new["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    assert "pv.kubernetes.io/bound-by-controller" not in new["metadata"]["annotations"]


def assert_reverted(fk):
    pvc = fk.find(k.PVC, "data", NS)
    assert pvc["spec"]["volumeName"] == "pv-old" and pvc["status"]["phase"] == "Bound"
    restored = fk.find(k.PVC, "data-restored", NS)
    assert restored["spec"]["volumeName"] == "pv-new" and restored["status"]["phase"] == "Bound"
    for name in ("pv-old", "pv-new"):
        pv = fk.find(k.PV, name)
        assert pv["status"]["phase"] == "Bound" and pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"


# ----------------------------------------------------------------------------- rebind
def test_rebind_swaps_and_keeps_old_pv_retained(fk):
    result = c.patch_claims(fk, params())
    assert result["changed"]
    (vol,) = result["volumes"]
    assert (vol["old_pv"], vol["new_pv"], vol["pvc"], vol["mode"], vol["state"]) == (
        "pv-old", "pv-new", "data", "rebind", "swapped")
    assert_swapped(fk)
    doc = s.require(fk, VNS, SESSION).doc
    by_action = dict((r["id"], r) for r in doc["undo"])
    assert by_action["retain_pv:PersistentVolume//pv-old"]["original"] == {"persistentVolumeReclaimPolicy": "Delete"}
    assert by_action["retain_pv:PersistentVolume//pv-new"]["original"] == {"persistentVolumeReclaimPolicy": "Delete"}
    rebind = by_action["rebind:PersistentVolumeClaim/shop/data"]
    assert rebind["original"]["old_pv"] == "pv-old" and rebind["original"]["pvc"]["labels"] == {"app": "web"}
    assert rebind["status"] == "applied" and rebind["phase"] == "swapped"
    assert doc["volumes"]["shop/data"]["swap"]["state"] == "swapped"
    assert result["diff"] == {"before": {"shop/data": {"data": "pv-old"}}, "after": {"shop/data": {"data": "pv-new"}}}


def test_records_are_written_before_the_first_change(fk):
    before = len(fk.requests)
    c.patch_claims(fk, params())
    requests = fk.requests[before:]
    first_change = min(i for i, r in enumerate(requests) if r[0] in ("patch", "delete") and r[1] != "ConfigMap")
    assert requests[first_change] == ("patch", "PersistentVolume")
    assert ("update", "ConfigMap") in requests[:first_change]
    first_delete = requests.index(("delete", "PersistentVolumeClaim"))
    assert requests[:first_delete].count(("patch", "PersistentVolume")) == 2
    assert requests[:first_delete].count(("update", "ConfigMap")) >= 3


def test_rebind_is_idempotent(fk):
    c.patch_claims(fk, params())
    before = mutations(fk)
    again = c.patch_claims(fk, params())
    assert not again["changed"] and again["volumes"][0]["state"] == "swapped"
    assert mutations(fk) == before


def test_a_rebind_without_wait_becomes_idempotent_once_the_claim_is_bound(fk):
    """wait=false left the record "swapping" and every later run said changed (until 2026-12-05)."""
    first = c.patch_claims(fk, params(wait=False))
    assert first["changed"]
    while pv_controller(fk):  # the PV controller binds the recreated claim
        pass
    before = mutations(fk)
    check = c.patch_claims(fk, params(wait=False), check_mode=True)
    assert check["changed"] and mutations(fk) == before
    second = c.patch_claims(fk, params(wait=False))
    assert second["changed"] and second["volumes"][0]["state"] == "swapped"
    record = [r for r in s.require(fk, VNS, SESSION).doc["undo"] if r["action"] == "rebind"][0]
    assert (record["status"], record["phase"]) == ("applied", "swapped")
    before = mutations(fk)
    third = c.patch_claims(fk, params(wait=False))
    assert not third["changed"] and third["volumes"][0]["state"] == "swapped" and mutations(fk) == before
    assert_swapped(fk)


def claim_pod(fk, name, claim, phase="Running", node="node-1"):
    spec = {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}
    if node:
        spec["nodeName"] = node
    return fk.add(k.POD, {"metadata": {"name": name, "namespace": NS}, "spec": spec, "status": {"phase": phase}})


def test_rebind_refused_while_in_use_names_the_pods(fk):
    claim_pod(fk, "web-0", "data")
    claim_pod(fk, "never-scheduled", "data-restored", phase="Failed", node=None)
    before = mutations(fk)
    with pytest.raises(PreflightError, match="in use by pod.*shop/web-0") as err:
        c.patch_claims(fk, params())
    assert "never-scheduled" not in err.value.msg and "workload_scale" in err.value.msg
    assert mutations(fk) == before


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_rebind_refuses_finished_pods_that_still_hold_a_claim(fk, phase):
    # pvc-protection keeps a claim while a scheduled pod names it, whatever its phase: the swap would hang.
    claim_pod(fk, "backup-job-x1", "data-restored", phase=phase)
    before = mutations(fk)
    with pytest.raises(PreflightError, match="Finished pod.*shop/backup-job-x1.*still hold") as err:
        c.patch_claims(fk, params())
    assert "kubectl delete pod -n shop backup-job-x1" in err.value.msg and "workload_scale" not in err.value.msg
    assert mutations(fk) == before
    fk.remove(k.POD, "backup-job-x1", NS)
    c.patch_claims(fk, params())
    assert_swapped(fk)


def test_a_pod_of_the_stopped_app_that_is_being_deleted_does_not_refuse_the_swap(fk):
    """Kubernetes >= 1.27 gives a deleted Running pod a terminal phase before it removes it; the stop's wait ends
    then. The swap waits for it (the claim's delete does) instead of asking to delete it."""
    claim_pod(fk, "web-5d9f-0", "data", phase="Failed")
    fk.mutate(k.POD, "web-5d9f-0", NS, lambda o: o["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z"))

    def kubelet_removes_it(fake):
        if fake.find(k.POD, "web-5d9f-0", NS) is not None:
            fake.remove(k.POD, "web-5d9f-0", NS)
            return True
        return False
    fk.controllers.insert(0, kubelet_removes_it)
    c.patch_claims(fk, params())
    assert_swapped(fk)


class HeldOnDeleteKube(FakeKube):
    """A finished, scheduled pod that names claim "data" turns up once the swap deleted it: the claim stays
    Terminating and the swap times out (the state the rescue's revert then meets)."""

    held = False

    def delete(self, kind, name, namespace=None, **kw):
        if kind is k.PVC and name == "data" and not self.held:
            self.held = True
            claim_pod(self, "late-job", "data", phase="Succeeded")
        return super(HeldOnDeleteKube, self).delete(kind, name, namespace, **kw)


def test_revert_never_gives_delete_back_to_a_volume_whose_claim_is_terminating():
    fk = make_kube(HeldOnDeleteKube)
    with pytest.raises(Exception, match="to be deleted"):
        c.patch_claims(fk, params(wait_timeout=1))
    assert fk.find(k.PVC, "data", NS)["metadata"].get("deletionTimestamp")
    with pytest.raises(PreflightError, match="Finished pod.*late-job"):
        c.patch_claims(fk, params(state="reverted"))
    assert fk.find(k.PV, "pv-old")["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    patcher = c.ClaimPatcher(fk, VNS, SESSION)
    with pytest.raises(c.DataRestoreError, match="shop/data is being deleted.*keeps reclaim policy Retain"):
        patcher._create_bound(s.require(fk, VNS, SESSION).doc["undo"][-1]["original"]["pvc"], "pv-old")
    patcher._restore_policy("pv-old")
    assert fk.find(k.PV, "pv-old")["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert "bound to a claim being deleted" in patcher.warnings[0]
    fk.remove(k.POD, "late-job", NS)
    c.patch_claims(fk, params(state="reverted"))
    assert_reverted(fk)


def test_check_mode_plans_without_changes(fk):
    before = mutations(fk)
    result = c.patch_claims(fk, params(), check_mode=True)
    assert result["changed"] and result["volumes"][0]["state"] == "would_swap"
    assert mutations(fk) == before


def test_check_mode_of_a_rollback_on_a_running_app_warns_instead_of_failing(fk):
    c.patch_claims(fk, params())
    claim_pod(fk, "web-0", "data")  # the app runs again: a checked rollback does not stop it
    before = mutations(fk)
    result = c.patch_claims(fk, params(state="reverted"), check_mode=True)
    assert result["volumes"][0]["state"] == "would_revert" and mutations(fk) == before
    assert any(w.startswith("Check mode: PVC(s) data") and "shop/web-0" in w for w in result["warnings"])
    claim_pod(fk, "report-x", "data", phase="Succeeded")  # no stop would free this one: refused in check mode too
    with pytest.raises(PreflightError, match="Finished pod.*report-x"):
        c.patch_claims(fk, params(state="reverted"), check_mode=True)
    with pytest.raises(PreflightError, match="in use by pod.*web-0"):
        c.patch_claims(fk, params(state="reverted"))


def test_simple_volume_form_and_missing_claim():
    fk = make_kube()
    simple = [{"namespace": NS, "pvc": "data", "new_pvc": "data-restored"}]
    assert c.patch_claims(fk, params(volumes=simple))["volumes"][0]["state"] == "swapped"
    with pytest.raises(PreflightError, match="shop/nope not found"):
        c.patch_claims(make_kube(), params(volumes=[{"namespace": NS, "pvc": "data", "new_pvc": "nope"}]))


def test_recreated_claim_takes_the_restored_pv_storage_class():
    fk = make_kube(restored_class="fast")
    c.patch_claims(fk, params())
    assert fk.find(k.PVC, "data", NS)["spec"]["storageClassName"] == "fast"


def test_revert_swaps_back_and_restores_policies(fk):
    c.patch_claims(fk, params())
    result = c.patch_claims(fk, params(state="reverted"))
    assert result["changed"] and result["volumes"][0]["state"] == "reverted"
    assert_reverted(fk)
    assert all(r["status"] == "reverted" for r in s.require(fk, VNS, SESSION).doc["undo"])
    before = mutations(fk)
    again = c.patch_claims(fk, params(state="reverted"))
    assert not again["changed"] and mutations(fk) == before


def test_revert_keeps_retain_on_a_released_pv():
    fk = make_kube()
    c.patch_claims(fk, params())
    patcher = c.ClaimPatcher(fk, VNS, SESSION)
    patcher._restore_policy("pv-old")  # pv-old is Released now: Delete would destroy it
    assert fk.find(k.PV, "pv-old")["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert "keeps reclaim policy Retain" in patcher.warnings[0]


def test_killed_after_original_deleted_before_recreated_resumes(fk):
    fk.fail_next["create"] = Killed("SIGKILL")
    with pytest.raises(Killed):
        c.patch_claims(fk, params())
    assert fk.find(k.PVC, "data", NS) is None and fk.find(k.PVC, "data-restored", NS) is None
    result = c.patch_claims(fk, params())
    assert result["changed"] and result["volumes"][0]["state"] == "swapped"
    assert_swapped(fk)


class RacedKube(FakeKube):
    """Another run of the session (the module of a killed ansible-playbook goes on) recreates the claim
    between this run's GET and its POST."""

    def create(self, kind, body, namespace=None):
        if kind is k.PVC and body["metadata"]["name"] == "data" and self.find(k.PVC, "data", NS) is None:
            super(RacedKube, self).create(kind, body, namespace)  # the other run's identical create
        return super(RacedKube, self).create(kind, body, namespace)


def test_claim_recreated_meanwhile_by_another_run_is_taken_over():
    fk = make_kube(RacedKube)
    result = c.patch_claims(fk, params())
    assert result["volumes"][0]["state"] == "swapped"
    assert_swapped(fk)


def test_claim_recreated_meanwhile_for_another_volume_is_refused():
    class OtherVolume(FakeKube):
        def create(self, kind, body, namespace=None):
            if kind is k.PVC and body["metadata"]["name"] == "data" and self.find(k.PVC, "data", NS) is None:
                super(OtherVolume, self).create(kind, dict(body, spec=dict(body["spec"], volumeName="pv-x")), namespace)
            return super(OtherVolume, self).create(kind, body, namespace)

    fk = make_kube(OtherVolume)
    with pytest.raises(c.DataRestoreError, match="exists but names volume pv-x instead of pv-new"):
        c.patch_claims(fk, params())


def _total_mutations(state_after_swap=False):
    fk = make_kube(KillableKube)
    if state_after_swap:
        c.patch_claims(fk, params())
    fk.kill_at, fk.mutations = 10 ** 6, 0
    c.patch_claims(fk, params(state="reverted" if state_after_swap else "swapped"))
    return fk.mutations


@pytest.mark.parametrize("reverting", [False, True], ids=["swap", "revert"])
def test_killed_before_any_request_resumes_to_the_same_end_state(reverting):
    total = _total_mutations(reverting)
    assert total > 5
    for kill_at in range(1, total + 1):
        fk = make_kube(KillableKube)
        if reverting:
            c.patch_claims(fk, params())
        fk.kill_at, fk.mutations = kill_at, 0
        with pytest.raises(Killed):
            c.patch_claims(fk, params(state="reverted" if reverting else "swapped"))
        assert fk.find(k.PV, "pv-old") and fk.find(k.PV, "pv-new"), "a PV was deleted (kill at %d)" % kill_at
        fk.kill_at = 0
        c.patch_claims(fk, params(state="reverted" if reverting else "swapped"))
        (assert_reverted if reverting else assert_swapped)(fk)


def test_swap_again_after_revert_is_a_new_cycle(fk):
    c.patch_claims(fk, params())
    c.patch_claims(fk, params(state="reverted"))
    result = c.patch_claims(fk, params())
    assert result["changed"]
    assert_swapped(fk)


# ----------------------------------------------------------------------------- template
def workload(fk, kind, name, claim, **extra):
    pod_spec = {"containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}},
                            {"name": "tmp", "emptyDir": {}}]}
    spec = {"template": {"spec": pod_spec}}
    if kind is k.CRON_JOB:
        spec = {"schedule": "@daily", "jobTemplate": {"spec": spec}}
    if kind is k.KEDA_SCALED_JOB:
        spec = {"jobTargetRef": spec, "triggers": []}
    spec.update(extra)
    return fk.add(kind, {"metadata": {"name": name, "namespace": NS}, "spec": spec})


def test_template_patches_pod_templates_and_reverts(fk):
    dep = workload(fk, k.DEPLOYMENT, "web", "data")
    rs = workload(fk, k.REPLICA_SET, "web-1", "data")
    fk.mutate(k.REPLICA_SET, "web-1", NS, lambda o: o["metadata"].update(ownerReferences=[
        {"kind": "Deployment", "name": "web", "uid": dep["metadata"]["uid"], "controller": True}]))
    workload(fk, k.CRON_JOB, "report", "data")
    workload(fk, k.DAEMON_SET, "other", "logs")
    result = c.patch_claims(fk, params(mode="template"))
    (vol,) = result["volumes"]
    assert vol["state"] == "swapped" and sorted(vol["workloads"]) == ["CronJob/report", "Deployment/web"]
    assert vol["old_pv"] == "pv-old" and vol["new_pv"] == "pv-new"
    dep = fk.find(k.DEPLOYMENT, "web", NS)
    assert dep["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data-restored"
    assert dep["spec"]["template"]["spec"]["volumes"][1] == {"name": "tmp", "emptyDir": {}}
    cj = fk.find(k.CRON_JOB, "report", NS)
    assert c.template_volumes(cj)[0]["persistentVolumeClaim"]["claimName"] == "data-restored"
    assert c.template_volumes(fk.find(k.REPLICA_SET, "web-1", NS))[0]["persistentVolumeClaim"]["claimName"] == "data"
    assert fk.find(k.PVC, "data", NS) is not None  # nothing deleted in template mode
    rec = s.require(fk, VNS, SESSION).undo_record("template:Deployment/shop/web")
    assert rec["original"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data"
    before = mutations(fk)
    assert not c.patch_claims(fk, params(mode="template"))["changed"] and mutations(fk) == before

    back = c.patch_claims(fk, params(mode="template", state="reverted"))
    assert back["changed"] and sorted(back["volumes"][0]["workloads"]) == ["CronJob/report", "Deployment/web"]
    dep = fk.find(k.DEPLOYMENT, "web", NS)
    assert dep["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data"
    assert s.require(fk, VNS, SESSION).undo_record("template:Deployment/shop/web")["status"] == "reverted"


def test_template_patches_a_keda_scaled_jobs_job_template_and_reverts_it(fk):
    """KEDA's Jobs come from spec.jobTargetRef.template: patched there, like a CronJob's job template. A Job it
    started that has finished starts no pod any more and is left alone."""
    sj = workload(fk, k.KEDA_SCALED_JOB, "worker", "data")
    workload(fk, k.JOB, "worker-x1", "data", parallelism=1)
    finished = {"conditions": [{"type": "Complete", "status": "True"}]}
    started_by = [{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "name": "worker", "uid": sj["metadata"]["uid"],
                   "controller": True}]
    fk.mutate(k.JOB, "worker-x1", NS,
              lambda o: o.update(status=finished, metadata=dict(o["metadata"], ownerReferences=started_by)))
    (vol,) = c.patch_claims(fk, params(mode="template"))["volumes"]
    assert vol["state"] == "swapped" and vol["workloads"] == ["ScaledJob/worker"]
    patched = fk.find(k.KEDA_SCALED_JOB, "worker", NS)
    assert patched["spec"]["jobTargetRef"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"] == {
        "claimName": "data-restored"}
    assert patched["spec"]["triggers"] == [] and patched["spec"]["jobTargetRef"]["template"]["spec"]["containers"]
    c.patch_claims(fk, params(mode="template", state="reverted"))
    assert c.template_volumes(fk.find(k.KEDA_SCALED_JOB, "worker", NS))[0]["persistentVolumeClaim"] == {
        "claimName": "data"}


@pytest.mark.parametrize("starter", [k.CRON_JOB, k.KEDA_SCALED_JOB])
def test_a_template_swap_refuses_an_unfinished_job_of_a_cronjob_or_scaled_job(fk, starter):
    """Its pod template is immutable: stopped for the restore and started again after the swap, it would go on writing
    to the old claim (before 2026-12-07 it was skipped as "its CronJob is patched")."""
    parent = workload(fk, starter, "worker", "data")
    workload(fk, k.JOB, "worker-x1", "data", parallelism=0)  # stopped by the session's quiesce
    fk.mutate(k.JOB, "worker-x1", NS, lambda o: o["metadata"].update(ownerReferences=[{
        "apiVersion": starter.api_version, "kind": starter.kind, "name": "worker", "uid": parent["metadata"]["uid"],
        "controller": True}]))
    before = mutations(fk)
    with pytest.raises(PreflightError, match="Job shop/worker-x1, started by %s worker, mounts PVC data and has not "
                                             "finished" % starter.kind):
        c.patch_claims(fk, params(mode="template"))
    assert mutations(fk) == before
    (problem,) = c.template_swap_problems(fk, NS, ["data"])
    assert "go on writing to the old claim" in problem and "swap_mode=rebind" in problem


def test_a_template_swap_of_a_gitops_managed_workload_is_warned_about(fk):
    """Argo CD self-heal or Flux's apply puts the manifest's claim back once syncs resume: the swap would be undone."""
    workload(fk, k.DEPLOYMENT, "web", "data")
    fk.mutate(k.DEPLOYMENT, "web", NS, lambda o: o["metadata"].update(
        annotations={"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/web"}))
    workload(fk, k.CRON_JOB, "report", "data")  # not managed: no warning
    warnings = []
    assert c.template_swap_problems(fk, NS, ["data"], warnings=warnings) == []
    (warning,) = warnings
    assert "Deployment shop/web" in warning and "Argo CD" in warning and "swap_mode=rebind" in warning
    assert "put the manifest's claim data back" in warning


def test_without_keda_served_no_scaled_job_is_listed_for_a_template_swap():
    fake = make_kube(cls=lambda: FakeKube(missing_kinds=(k.KEDA_SCALED_JOB,)))
    workload(fake, k.DEPLOYMENT, "web", "data")
    c.patch_claims(fake, params(mode="template"))
    assert ("list", "ScaledJob") not in fake.requests


def test_a_template_revert_refuses_running_pods_of_the_restored_claim(fk):
    """Patched back under running pods, the Deployment would roll out onto the original volume while its old pods
    still write to the restored one: the rollback stops them first, and the revert refuses otherwise."""
    workload(fk, k.DEPLOYMENT, "web", "data")
    c.patch_claims(fk, params(mode="template"))
    pod = {"metadata": {"name": "web-7c9d-x1", "namespace": NS, "uid": "u-x1"},
           "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-restored"}}]},
           "status": {"phase": "Running"}}
    fk.add(k.POD, pod)
    before = mutations(fk)
    with pytest.raises(PreflightError, match="data-restored in namespace shop are in use by pod"):
        c.patch_claims(fk, params(mode="template", state="reverted"))
    assert mutations(fk) == before
    preview = c.patch_claims(fk, params(mode="template", state="reverted"), check_mode=True)
    assert [w for w in preview["warnings"] if w.startswith("Check mode: PVC(s) data-restored")], preview["warnings"]
    # a finished pod does not stand in the way: the revert keeps both claims
    fk.mutate(k.POD, "web-7c9d-x1", NS, lambda o: o["status"].update(phase="Succeeded"))
    assert c.patch_claims(fk, params(mode="template", state="reverted"))["changed"]
    assert c.template_volumes(fk.find(k.DEPLOYMENT, "web", NS))[0]["persistentVolumeClaim"]["claimName"] == "data"


def test_a_begun_swap_is_finished_and_rolled_back_in_its_own_mode(fk):
    workload(fk, k.DEPLOYMENT, "web", "data")
    c.patch_claims(fk, params(mode="template"))
    before = mutations(fk)
    # rebind now would delete claim data-restored, which the patched Deployment mounts.
    with pytest.raises(PreflightError, match="shop/data began with mode=template.*asks for mode=rebind") as err:
        c.patch_claims(fk, params(mode="rebind"))
    assert "rollback.yml" in err.value.msg and mutations(fk) == before
    back = c.patch_claims(fk, params(mode="rebind", state="reverted"))  # the rollback asked for the wrong mode
    assert back["volumes"][0]["mode"] == "template" and back["volumes"][0]["state"] == "reverted"
    dep = fk.find(k.DEPLOYMENT, "web", NS)
    assert dep["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data"
    assert c.patch_claims(fk, params(mode="rebind"))["volumes"][0]["state"] == "swapped"  # a new cycle, any mode


def test_template_refuses_statefulset_claim_templates(fk):
    fk.add(k.STATEFUL_SET, {"metadata": {"name": "db", "namespace": NS},
                            "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                                     "template": {"spec": {}}}})
    vols = [{"namespace": NS, "pvc": "data-db-0", "new_pvc": "data-restored"}]
    before = mutations(fk)
    with pytest.raises(PreflightError, match="mode=rebind"):
        c.patch_claims(fk, params(mode="template", volumes=vols))
    assert mutations(fk) == before


def test_template_refuses_jobs_whose_template_is_immutable(fk):
    workload(fk, k.JOB, "migrate", "data")
    with pytest.raises(PreflightError, match="immutable"):
        c.patch_claims(fk, params(mode="template"))


def test_a_finished_job_mounting_the_claim_is_left_alone_by_a_template_swap(fk):
    workload(fk, k.DEPLOYMENT, "web", "data")
    workload(fk, k.JOB, "migrate", "data")
    fk.mutate(k.JOB, "migrate", NS, lambda o: o.update(status={"conditions": [{"type": "Complete", "status": "True"}]}))
    (vol,) = c.patch_claims(fk, params(mode="template"))["volumes"]
    assert vol["workloads"] == ["Deployment/web"]
    assert c.template_volumes(fk.find(k.JOB, "migrate", NS))[0]["persistentVolumeClaim"]["claimName"] == "data"


def test_a_template_swap_that_would_patch_nothing_fails_instead_of_reporting_swapped(fk):
    """The preflight refuses a claim no workload template mounts; a workload changed since (deleted, pointed at
    another claim) made the swap say "swapped" with a warning, and the session completed on the old data."""
    workload(fk, k.DEPLOYMENT, "web", "logs")
    before = mutations(fk)
    with pytest.raises(DataRestoreError, match="mounts PVC data any more .*patch nothing.*swap_mode=rebind"):
        c.patch_claims(fk, params(mode="template"))
    assert mutations(fk) == before
    with pytest.raises(DataRestoreError, match="patch nothing"):
        c.patch_claims(fk, params(mode="template"), check_mode=True)


def test_template_check_mode(fk):
    workload(fk, k.DEPLOYMENT, "web", "data")
    before = mutations(fk)
    result = c.patch_claims(fk, params(mode="template"), check_mode=True)
    assert result["volumes"][0]["state"] == "would_swap" and mutations(fk) == before


def test_check_mode_plans_without_an_existing_session(fk):
    before = mutations(fk)
    result = c.patch_claims(fk, params(session="not-yet"), check_mode=True)
    assert result["volumes"][0]["state"] == "would_swap" and mutations(fk) == before
    with pytest.raises(PreflightError, match="not found"):
        c.patch_claims(fk, params(session="not-yet"))


# ----------------------------------------------------------------------------- state=prepared: the new claim
def replace_record(pvc="data", new="data-restored-ab12cd", restore_via="pod_volume_restore", sc="sim-fast"):
    return {"key": "%s/%s" % (NS, pvc), "source_namespace": NS, "source_pvc": pvc, "method": "fs",
            "snapshot_id": "a1b2c3", "snapshot_size": 5 * 1024 * 1024, "volume_mode": "Filesystem",
            "storage_class": "sim-immediate", "target_namespace": NS, "target_pvc": pvc, "restore_via": restore_via,
            "new_pvc": {"name": new, "storage_class": sc, "size": "2Gi", "access_modes": ["ReadWriteMany"],
                        "volume_mode": "Filesystem"}}


def prepare_params(volumes, **kw):
    p = dict(velero_namespace=VNS, session=SESSION, volumes=volumes, state="prepared", mode="rebind",
             wait=True, wait_timeout=30)
    p.update(kw)
    return p


@pytest.fixture
def sk():
    fake = FakeKube()
    s.ensure(fake, VNS, SESSION, mode="replace")
    return fake


def test_prepared_creates_the_new_claim_from_the_plan_record_and_records_it_first(sk):
    before = len(sk.requests)
    result = c.patch_claims(sk, prepare_params([replace_record()]))
    assert result["changed"] and [v["state"] for v in result["volumes"]] == ["created"]
    claim = sk.find(k.PVC, "data-restored-ab12cd", NS)
    assert claim["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "velero.data_restore",
                                           "data-restore.ansible/session": SESSION, "data-restore.ansible/role": "claim"}
    assert claim["metadata"]["annotations"] == {"data-restore.ansible/volume-key": "shop/data"}
    assert claim["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "2Gi"}},
                             "volumeMode": "Filesystem", "storageClassName": "sim-fast"}
    requests = sk.requests[before:]
    assert requests.index(("update", "ConfigMap")) < requests.index(("create", "PersistentVolumeClaim"))
    vol = s.require(sk, VNS, SESSION).doc["volumes"]["shop/data"]
    assert vol["new_pvc"] == "data-restored-ab12cd"
    assert result["diff"]["after"]["shop/data"]["metadata"]["name"] == "data-restored-ab12cd"


def test_prepared_is_idempotent_and_check_mode_changes_nothing(sk):
    before = len(sk.events)
    result = c.patch_claims(sk, prepare_params([replace_record()]), check_mode=True)
    assert result["changed"] and result["volumes"][0]["state"] == "would_create"
    assert len(sk.events) == before
    c.patch_claims(sk, prepare_params([replace_record()]))
    creates = sk.count("create")
    again = c.patch_claims(sk, prepare_params([replace_record()]))
    assert not again["changed"] and again["volumes"][0]["state"] == "exists" and sk.count("create") == creates
    assert c.patch_claims(sk, prepare_params([replace_record()]), check_mode=True)["changed"] is False


def test_prepared_refuses_a_claim_of_that_name_that_is_not_ours(sk):
    sk.add(k.PVC, {"metadata": {"name": "data-restored-ab12cd", "namespace": NS, "labels": {"app": "shop"}},
                   "spec": {}, "status": {"phase": "Bound"}})
    before = len(sk.events)
    with pytest.raises(PreflightError) as err:
        c.patch_claims(sk, prepare_params([replace_record()]))
    assert "PVC shop/data-restored-ab12cd (the new claim for shop/data) already exists" in err.value.msg
    assert "app=shop" in err.value.msg and len(sk.events) == before
    # nor one of another session
    sk.mutate(k.PVC, "data-restored-ab12cd", NS, lambda o: o["metadata"].update(labels={
        "app.kubernetes.io/managed-by": "velero.data_restore", "data-restore.ansible/session": "other"}))
    with pytest.raises(PreflightError):
        c.patch_claims(sk, prepare_params([replace_record()]))


def test_prepared_leaves_datadownload_claims_and_refuses_in_place_records(sk):
    result = c.patch_claims(sk, prepare_params([replace_record(restore_via="data_download")]))
    assert not result["changed"] and result["volumes"][0]["state"] == "skipped" and sk.all(k.PVC) == []
    rec = replace_record()
    rec["new_pvc"] = None
    with pytest.raises(PreflightError) as err:
        c.patch_claims(sk, prepare_params([rec]))
    assert "has no new_pvc" in err.value.msg


def test_one_claim_builder_for_both_paths():
    rec = replace_record(restore_via="data_download")
    plain = c.new_claim_body(rec, SESSION)
    with_selector = c.new_claim_body(rec, SESSION, selector="shop.data.x1")
    assert with_selector["spec"].pop("selector") == {"matchLabels": {"velero.io/dynamic-pv-restore": "shop.data.x1"}}
    assert with_selector == plain


# ----------------------------------------------------------------------------- a swap killed midway (review findings)
def plan_volumes(fk, new="data-restored", restore_via="pod_volume_restore"):
    rec = replace_record(new=new, restore_via=restore_via)
    s.update(fk, VNS, SESSION, lambda doc: doc.update(plan={"volumes": [rec]}))
    return rec


@pytest.mark.parametrize("kill_at", range(1, 15))
def test_a_swap_counts_as_begun_from_its_first_record(kill_at):
    fk = make_kube(KillableKube)
    plan_volumes(fk)
    fk.kill_at, fk.mutations = kill_at, 0
    try:
        c.patch_claims(fk, params())
    except Killed:
        pass
    sess = s.require(fk, VNS, SESSION)
    recorded = sess.undo_record("rebind:PersistentVolumeClaim/shop/data") is not None
    assert sess.swaps()["started"] == (["shop/data"] if recorded else [])
    assert sess.swaps()["partial"] == recorded  # killed before the swap entry, the last write
    assert sess.swap_started(NS, "data") == ("rebind" if recorded else None)


def test_a_swap_of_some_volumes_only_is_partial():
    fk = make_kube()
    bound_pair(fk, "logs", "pv-logs-old")
    bound_pair(fk, "logs-restored", "pv-logs-new")
    data, logs = replace_record(new="data-restored"), replace_record(pvc="logs", new="logs-restored")
    s.update(fk, VNS, SESSION, lambda doc: doc.update(plan={"volumes": [data, logs]}))
    assert s.require(fk, VNS, SESSION).swaps() == {"started": [], "mode": None, "partial": False}
    c.patch_claims(fk, params(volumes=[data]))
    assert s.require(fk, VNS, SESSION).swaps() == {"started": ["shop/data"], "mode": "rebind", "partial": True}
    c.patch_claims(fk, params(volumes=[logs]))
    assert s.require(fk, VNS, SESSION).swaps() == {"started": ["shop/data", "shop/logs"], "mode": "rebind",
                                                   "partial": False}


def swaps_killed_at_each_write():
    """(kill point, fake cluster) of a rebind swap killed before each of its writes, one after the other."""
    for kill_at in range(1, _total_mutations() + 1):
        fk = make_kube(KillableKube)
        plan_volumes(fk)
        fk.kill_at, fk.mutations = kill_at, 0
        with pytest.raises(Killed):
            c.patch_claims(fk, params())
        fk.kill_at = 0
        yield kill_at, fk


def test_the_rerun_of_a_swap_killed_at_any_write_leaves_it_finished_with_its_entry():
    """Killed before its last write (the volume's swap entry), a re-run found the claims swapped and returned: the swap
    stayed "partial" for good - the rescue of any later failure would roll it back - and the report had no PVs."""
    for kill_at, fk in swaps_killed_at_each_write():
        result = c.patch_claims(fk, params())
        assert_swapped(fk)
        sess = s.require(fk, VNS, SESSION)
        assert sess.swaps() == {"started": ["shop/data"], "mode": "rebind", "partial": False}, kill_at
        assert sess.doc["volumes"]["shop/data"]["swap"] == {
            "mode": "rebind", "old_pv": "pv-old", "new_pv": "pv-new", "pvc": "data", "state": "swapped"}, kill_at
        assert result["changed"], kill_at
        again = c.patch_claims(fk, params())
        assert not again["changed"], kill_at


def test_prepared_refuses_a_new_claim_for_a_volume_whose_swap_began():
    """Killed after the swap deleted the new claim: a re-run must continue the swap, not create an empty claim."""
    rec = replace_record(new="data-restored")
    for kill_at, fk in swaps_killed_at_each_write():
        if fk.find(k.PVC, "data-restored", NS) is not None and not s.require(fk, VNS, SESSION).swap_started(NS, "data"):
            continue
        before = mutations(fk)
        with pytest.raises(PreflightError, match="swap of PVC shop/data began"):
            c.patch_claims(fk, prepare_params([rec]))
        assert mutations(fk) == before, "kill at %d" % kill_at
        c.patch_claims(fk, params())  # the swap continues instead
        assert_swapped(fk)


def test_prepared_after_a_rollback_restores_again():
    fk = make_kube()
    plan_volumes(fk)
    c.patch_claims(fk, params())
    c.patch_claims(fk, params(state="reverted"))
    assert s.require(fk, VNS, SESSION).swaps() == {"started": [], "mode": "rebind", "partial": False}
    result = c.patch_claims(fk, prepare_params([replace_record(new="data-restored-2")]))
    assert result["volumes"][0]["state"] == "created"


def test_template_swap_killed_after_the_patch_is_recorded_by_the_rerun_and_rolled_back():
    fk = make_kube(KillableKube)
    plan_volumes(fk)
    workload(fk, k.DEPLOYMENT, "web", "data")
    fk.kill_at, fk.mutations = 10 ** 6, 0
    c.patch_claims(fk, params(mode="template"))
    total = fk.mutations
    for kill_at in range(1, total + 1):
        fk = make_kube(KillableKube)
        plan_volumes(fk)
        workload(fk, k.DEPLOYMENT, "web", "data")
        fk.kill_at, fk.mutations = kill_at, 0
        with pytest.raises(Killed):
            c.patch_claims(fk, params(mode="template"))
        fk.kill_at = 0
        patched = c.template_volumes(fk.find(k.DEPLOYMENT, "web", NS))[0]["persistentVolumeClaim"]["claimName"]
        assert s.require(fk, VNS, SESSION).swaps()["started"] == (["shop/data"] if patched == "data-restored" else
                                                                  s.require(fk, VNS, SESSION).swaps()["started"])
        c.patch_claims(fk, params(mode="template"))
        sess = s.require(fk, VNS, SESSION)
        assert sess.doc["volumes"]["shop/data"]["swap"]["mode"] == "template", "kill at %d" % kill_at
        assert sess.undo_record("template:Deployment/shop/web")["status"] == "applied"
        assert sess.swaps() == {"started": ["shop/data"], "mode": "template", "partial": False}
        c.patch_claims(fk, params(mode=sess.swaps()["mode"], state="reverted"))
        dep = fk.find(k.DEPLOYMENT, "web", NS)
        assert c.template_volumes(dep)[0]["persistentVolumeClaim"]["claimName"] == "data", "kill at %d" % kill_at


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_rollback_of_a_swap_killed_before_its_rebind_record_gives_the_policies_back(kill_at):
    fk = make_kube(KillableKube)
    fk.kill_at, fk.mutations = kill_at, 0
    with pytest.raises(Killed):
        c.patch_claims(fk, params())
    fk.kill_at = 0
    assert s.require(fk, VNS, SESSION).undo_record("rebind:PersistentVolumeClaim/shop/data") is None
    result = c.patch_claims(fk, params(state="reverted"))
    assert result["volumes"][0]["state"] == "not_swapped"
    for name in ("pv-old", "pv-new"):
        pv = fk.find(k.PV, name)
        assert pv["status"]["phase"] == "Bound" and pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete", kill_at


# ----------------------------------------------------------------------------- state=freed (cleanup)
def freed(fk, check_mode=False):
    return c.patch_claims(fk, dict(velero_namespace=VNS, session=SESSION, state="freed", wait_timeout=30),
                          check_mode=check_mode)


def swapped_and_completed():
    fk = make_kube()
    plan_volumes(fk)
    c.patch_claims(fk, params())
    s.set_state(fk, VNS, SESSION, "completed")
    return fk


@pytest.mark.parametrize("state", ["swapping", "failed", "restored", "rolling_back"])
def test_freed_refuses_an_unsettled_session_before_any_change(state):
    """After a kill mid-swap (or a failed run), both PVs are Released/unbound: cleanup must not delete them."""
    for _kill_at, fk in swaps_killed_at_each_write():
        s.set_state(fk, VNS, SESSION, state)
        before = mutations(fk)
        with pytest.raises(PreflightError, match="is %s, not completed or rolled back" % state):
            freed(fk)
        assert mutations(fk) == before and fk.find(k.PV, "pv-old") and fk.find(k.PV, "pv-new")


def test_freed_after_a_completed_replace_deletes_the_old_pv_and_gives_the_new_one_its_policy():
    fk = swapped_and_completed()
    preview = freed(fk, check_mode=True)
    assert preview["deleted_pvs"] == ["pv-old"] and fk.find(k.PV, "pv-old") is not None
    assert preview["diff"] == {"before": {"claims": [], "pvs": ["pv-old"], "reclaim_policies": {"pv-new": "Retain"}},
                               "after": {"claims": [], "pvs": [], "reclaim_policies": {"pv-new": "Delete"}}}
    result = freed(fk)
    assert result["changed"] and result["deleted_pvs"] == ["pv-old"] and result["deleted_claims"] == []
    assert result["policies_restored"] == [{"pv": "pv-new", "policy": "Delete"}]
    assert fk.find(k.PV, "pv-old") is None
    assert ("patch", "PersistentVolume") in fk.requests  # Delete first: the storage frees the volume too
    pv = fk.find(k.PV, "pv-new")
    assert pv["status"]["phase"] == "Bound" and pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert fk.find(k.PVC, "data", NS)["spec"]["volumeName"] == "pv-new"
    before = mutations(fk)
    again = freed(fk)
    assert not again["changed"] and mutations(fk) == before


def test_freed_leaves_a_new_pv_that_took_the_name_of_a_recorded_one():
    """The retained old PV was deleted by hand and a new static PV took its name: not the session's, not deleted.
    Before 2026-12-05 cleanup matched PVs by name, set this one to Delete and deleted it (and its storage)."""
    fk = swapped_and_completed()
    fk.remove(k.PV, "pv-old")
    fk.add(k.PV, {"metadata": {"name": "pv-old"},
                  "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"],
                           "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual",
                           "csi": {"driver": "sim.csi", "volumeHandle": "precious"}},
                  "status": {"phase": "Available"}})
    preview = freed(fk, check_mode=True)
    assert preview["deleted_pvs"] == []
    result = freed(fk)
    assert result["deleted_pvs"] == [] and result["policies_restored"] == [{"pv": "pv-new", "policy": "Delete"}]
    assert [w for w in result["warnings"] if "PersistentVolume pv-old is not the volume session" in w], result
    pv = fk.find(k.PV, "pv-old")
    assert pv is not None and pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_freed_checks_the_uid_of_an_old_pv_that_was_retain_already():
    """A static PV that was Retain before the swap has no retain record: the rebind record keeps its uid."""
    fk = make_kube()
    fk.mutate(k.PV, "pv-old", None, lambda o: o["spec"].update(persistentVolumeReclaimPolicy="Retain"))
    plan_volumes(fk)
    c.patch_claims(fk, params())
    s.set_state(fk, VNS, SESSION, "completed")
    recorded_uid = fk.find(k.PV, "pv-old")["metadata"]["uid"]
    record = [r for r in s.require(fk, VNS, SESSION).doc["undo"] if r["action"] == "rebind"][0]
    assert record["original"]["old_pv_uid"] == recorded_uid
    fk.remove(k.PV, "pv-old")
    fk.add(k.PV, {"metadata": {"name": "pv-old"}, "spec": {"persistentVolumeReclaimPolicy": "Retain"},
                  "status": {"phase": "Available"}})
    assert freed(fk)["deleted_pvs"] == [] and fk.find(k.PV, "pv-old") is not None


@pytest.mark.parametrize("old_policy", ["Delete", "Retain"])
def test_a_rollback_is_refused_once_cleanup_began(old_policy):
    """cleanup.yml killed (or timed out) after its first change: the old PV is deleting or gone. The swap back
    would fail with the workloads stopped, or bind the claim to a volume being deleted; it is refused first."""
    def completed():
        fk = make_kube(KillableKube)
        fk.mutate(k.PV, "pv-old", None, lambda o: o["spec"].update(persistentVolumeReclaimPolicy=old_policy))
        plan_volumes(fk)
        c.patch_claims(fk, params())
        s.set_state(fk, VNS, SESSION, "completed")
        return fk

    fk = completed()
    assert s.require(fk, VNS, SESSION).cleanup_began() == []
    fk.kill_at, fk.mutations = 10 ** 6, 0
    freed(fk)
    total = fk.mutations  # dry-run deletes, the intent write, patches, the delete, the last journal write
    for kill_at in range(3, total + 2):  # from right after the intent write to a cleanup that finished
        fk = completed()
        fk.kill_at, fk.mutations = kill_at, 0
        if kill_at <= total:
            with pytest.raises(Killed):
                freed(fk)
        else:
            freed(fk)
        fk.kill_at = 0
        assert s.require(fk, VNS, SESSION).result()["cleanup_began"] == ["pv-old"], kill_at
        before = mutations(fk)
        with pytest.raises(PreflightError, match="cannot be rolled back: cleanup.yml began to delete the volumes it "
                                                 r"kept \(PersistentVolume pv-old\)"):
            c.patch_claims(fk, params(state="reverted"))
        assert mutations(fk) == before
        freed(fk)  # the cleanup finishes
        assert fk.find(k.PV, "pv-old") is None and fk.find(k.PVC, "data", NS)["spec"]["volumeName"] == "pv-new"


def test_a_rollback_and_a_cleanup_that_overlap_cannot_both_begin():
    """Each checks the other on the document it writes: rollback.yml reads the session, a cleanup begins, then the
    rollback marks the session rolling back and stops the app (until 2026-12-05) - and neither could go on."""
    fk = swapped_and_completed()
    # the cleanup's intent write landed first: the rollback's mark is refused, nothing changes
    freed_first = make_kube(KillableKube)
    plan_volumes(freed_first)
    c.patch_claims(freed_first, params())
    s.set_state(freed_first, VNS, SESSION, "completed")
    freed_first.kill_at, freed_first.mutations = 3, 0
    with pytest.raises(Killed):
        freed(freed_first)
    freed_first.kill_at = 0
    before = mutations(freed_first)
    with pytest.raises(PreflightError, match="cannot be rolled back: cleanup.yml began"):
        s.set_state(freed_first, VNS, SESSION, "rolling_back")
    assert mutations(freed_first) == before and s.require(freed_first, VNS, SESSION).state == "completed"
    # the rollback's mark landed first (after the cleanup read the session): the cleanup's intent write is refused
    s.set_state(fk, VNS, SESSION, "rolling_back")
    patcher = c.ClaimPatcher(fk, VNS, SESSION)
    plan = patcher._free_plan(s.Session(fk.find(k.CONFIG_MAP, "data-restore-" + SESSION, VNS)))
    before = mutations(fk)
    with pytest.raises(PreflightError, match="moved to rolling_back while cleanup.yml was about to delete"):
        s.mark_freeing(fk, VNS, SESSION, plan["records"], plan["pvs"])
    assert mutations(fk) == before and s.require(fk, VNS, SESSION).cleanup_began() == []


def test_check_mode_of_a_revert_without_a_session_plans_nothing_to_revert():
    """Check mode plans without a session a previous task would create; the cleanup check kept that path."""
    fk = make_kube()
    s.delete(fk, VNS, SESSION, force=True)
    result = c.patch_claims(fk, params(state="reverted"), check_mode=True)
    assert not result["changed"] and result["volumes"][0]["state"] == "not_swapped"


def test_freed_after_a_rollback_deletes_the_unused_session_claim_and_its_volume():
    fk = make_kube()
    fk.mutate(k.PVC, "data-restored", NS, lambda o: o["metadata"].update(labels=dict(
        c.names.session_labels(SESSION, c.CLAIM_ROLE))))
    plan_volumes(fk)
    c.patch_claims(fk, params())
    c.patch_claims(fk, params(state="reverted"))
    s.set_state(fk, VNS, SESSION, "rolled_back")
    result = freed(fk)
    assert result["deleted_claims"] == ["shop/data-restored"] and result["deleted_pvs"] == ["pv-new"]
    assert fk.find(k.PVC, "data-restored", NS) is None and fk.find(k.PV, "pv-new") is None
    pv = fk.find(k.PV, "pv-old")
    assert pv["status"]["phase"] == "Bound" and fk.find(k.PVC, "data", NS)["spec"]["volumeName"] == "pv-old"


def test_a_cleanup_killed_between_a_claim_and_its_volume_finds_the_volume_again():
    """After a rollback, a restored PV with reclaim policy Retain (its class says so) has no retain record; killed
    after its claim was deleted, the re-run found no claim and so no PV, and cleanup.yml then deleted the session:
    the Released PV and its storage were left with no record (until 2026-12-05). The intent write keeps the PVs."""
    def rolled_back():
        fk = make_kube(KillableKube)
        fk.mutate(k.PVC, "data-restored", NS, lambda o: o["metadata"].update(labels=dict(
            c.names.session_labels(SESSION, c.CLAIM_ROLE))))
        fk.mutate(k.PV, "pv-new", None, lambda o: o["spec"].update(persistentVolumeReclaimPolicy="Retain"))
        plan_volumes(fk)
        c.patch_claims(fk, params())
        c.patch_claims(fk, params(state="reverted"))
        s.set_state(fk, VNS, SESSION, "rolled_back")
        return fk

    fk = rolled_back()
    fk.kill_at, fk.mutations = 10 ** 6, 0
    freed(fk)
    total = fk.mutations
    for kill_at in range(1, total + 1):
        fk = rolled_back()
        fk.kill_at, fk.mutations = kill_at, 0
        with pytest.raises(Killed):
            freed(fk)
        fk.kill_at = 0
        while pv_controller(fk):  # time passes: the binder releases the PV of a deleted claim
            pass
        freed(fk)
        assert fk.find(k.PVC, "data-restored", NS) is None and fk.find(k.PV, "pv-new") is None, kill_at
        assert fk.find(k.PVC, "data", NS)["spec"]["volumeName"] == "pv-old", kill_at


def test_freed_after_another_session_swapped_the_claim_again_says_so_once():
    """Session A completed; session B replaced the same claim later and was cleaned up. A keeps pv-old (the data
    from before A's swap); its message said A's swap "did not finish" and listed pv-old twice (until 2026-12-05)."""
    fk = swapped_and_completed()
    other = "second"
    s.ensure(fk, VNS, other, mode="replace")
    bound_pair(fk, "data-restored-b", "pv-b")
    c.patch_claims(fk, params(session=other, volumes=[{"namespace": NS, "pvc": "data", "new_pvc": "data-restored-b"}]))
    s.set_state(fk, VNS, other, "completed")
    c.patch_claims(fk, dict(velero_namespace=VNS, session=other, state="freed", wait_timeout=30))
    before = mutations(fk)
    with pytest.raises(PreflightError) as err:
        freed(fk)
    assert err.value.msg.count("PersistentVolume pv-old") == 1, err.value.msg
    assert "PVC shop/data is bound to pv-b now, no longer the volume pv-new this session swapped in" in err.value.msg
    assert "did not finish" not in err.value.msg
    assert mutations(fk) == before and fk.find(k.PV, "pv-old") is not None


def test_freed_keeps_retain_on_a_volume_whose_claim_is_being_deleted():
    """Giving pv-new its Delete policy back while its claim is Terminating would delete the restored data with it."""
    fk = swapped_and_completed()
    claim_pod(fk, "report-x", "data", phase="Succeeded")  # scheduled, finished: holds the claim
    fk.mutate(k.PVC, "data", NS, lambda o: o["metadata"].update(finalizers=[PROTECTION]))  # admission adds it
    fk.delete(k.PVC, "data", NS)
    before = mutations(fk)
    with pytest.raises(PreflightError, match="PV pv-new is bound to PVC shop/data, which is being deleted"):
        freed(fk)
    assert mutations(fk) == before
    assert fk.find(k.PV, "pv-new")["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_freed_keeps_everything_when_a_recorded_pv_is_claimed_again():
    fk = swapped_and_completed()
    # someone pre-binds the old PV to a claim of theirs meanwhile
    fk.mutate(k.PV, "pv-old", None, lambda o: o["spec"].update(claimRef={"namespace": NS, "name": "keep-me"}))
    fk.add(k.PVC, {"metadata": {"name": "keep-me", "namespace": NS},
                   "spec": {"volumeName": "pv-old", "resources": {"requests": {"storage": "1Gi"}}},
                   "status": {"phase": "Pending"}})
    before = mutations(fk)
    with pytest.raises(PreflightError, match="PV pv-old .* claimed by PVC shop/keep-me"):
        freed(fk)
    assert mutations(fk) == before and fk.find(k.PV, "pv-old") is not None


def test_freed_without_delete_rights_fails_before_any_change():
    """Without the optional cleanup rules the dry-run delete answers 403 before the journal is marked and the
    reclaim policies are patched (a later real delete would have failed after them)."""
    fk = swapped_and_completed()
    before = copy.deepcopy(fk.objects)
    fk.fail_next["delete"] = ForbiddenError("missing RBAC permission verb=delete resource=persistentvolumes")
    with pytest.raises(ForbiddenError, match="verb=delete resource=persistentvolumes"):
        freed(fk)
    assert fk.objects == before  # journal, reclaim policies, PVs: all untouched
    result = freed(fk)
    assert result["deleted_pvs"] == ["pv-old"] and ("PersistentVolume", None, "pv-old") in fk.dry_run_deletes


def pv_of(name, sc=None, capacity="1Gi", vac=None):
    spec = {"capacity": {"storage": capacity}}
    if sc is not None:
        spec["storageClassName"] = sc
    if vac:
        spec["volumeAttributesClassName"] = vac
    return {"metadata": {"name": name}, "spec": spec}


def test_a_recreated_claim_drops_the_beta_class_annotation_that_would_override_its_class():
    snapshot = c.claim_snapshot({"metadata": {"name": "data", "namespace": NS, "uid": "u1", "annotations": {
        "volume.beta.kubernetes.io/storage-class": "old", "team": "shop"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert c.claim_class({"metadata": snapshot, "spec": snapshot["spec"]}) == "old"
    body = c.recreate_body(snapshot, pv_of("pv-new", sc="fast"))
    assert c.claim_class(body) == "fast" and body["metadata"]["annotations"] == {"team": "shop"}


def test_a_recreated_claim_satisfies_the_pv_binder():
    # k8s pv_controller.go checkVolumeSatisfyClaim: same class (a PV without one needs ""), same volume attributes
    # class, a request of at most the capacity.
    snapshot = c.claim_snapshot({"metadata": {"name": "data", "namespace": NS, "uid": "u1"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}},
        "storageClassName": "standard", "volumeAttributesClassName": "gold", "volumeMode": "Block"}})
    warnings = []
    body = c.recreate_body(snapshot, pv_of("pv-old", capacity="5Gi"), warnings=warnings)
    assert body["spec"]["storageClassName"] == "" and "volumeAttributesClassName" not in body["spec"]
    assert body["spec"]["resources"]["requests"]["storage"] == "5Gi"  # an expansion still pending
    assert len(warnings) == 1 and "asked for 10Gi, more than the 5Gi of volume pv-old" in warnings[0]
    assert '"storage":"10Gi"' in warnings[0]  # the command that asks for it again
    assert body["spec"]["volumeMode"] == "Block" and body["spec"]["volumeName"] == "pv-old"
    body = c.recreate_body(snapshot, pv_of("pv-new", sc="fast", capacity="20Gi", vac="silver"), warnings=warnings)
    assert body["spec"]["storageClassName"] == "fast" and body["spec"]["volumeAttributesClassName"] == "silver"
    assert body["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert len(warnings) == 1  # a request within the capacity is kept, without a warning


def test_a_rollback_keeps_the_storage_class_of_a_volume_without_one():
    fk = make_kube()
    fk.mutate(k.PV, "pv-old", None, lambda o: o["spec"].pop("storageClassName"))
    fk.mutate(k.PVC, "data", NS, lambda o: o["spec"].update(storageClassName=""))
    c.patch_claims(fk, params())
    c.patch_claims(fk, params(state="reverted"))
    assert fk.find(k.PVC, "data", NS)["spec"]["storageClassName"] == ""
    assert fk.find(k.PVC, "data", NS)["spec"]["volumeName"] == "pv-old"


def owned_kube():
    fk = make_kube()
    owner = fk.add(k.STATEFUL_SET, {"metadata": {"name": "db", "namespace": NS}, "spec": {}})
    ref = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": owner["metadata"]["uid"]}
    fk.mutate(k.PVC, "data", NS, lambda o: o["metadata"].update(ownerReferences=[ref]))
    return fk, ref


def test_a_recreated_claim_takes_its_owners_from_the_live_claim():
    fk, ref = owned_kube()
    c.patch_claims(fk, params())
    assert fk.find(k.PVC, "data", NS)["metadata"]["ownerReferences"] == [ref]
    # The owner is recreated (new uid) and has adopted the claim meanwhile: the rollback keeps the live owner.
    fk.remove(k.STATEFUL_SET, "db", NS)
    owner = fk.add(k.STATEFUL_SET, {"metadata": {"name": "db", "namespace": NS}, "spec": {}})
    adopted = dict(ref, uid=owner["metadata"]["uid"])
    fk.mutate(k.PVC, "data", NS, lambda o: o["metadata"].update(ownerReferences=[adopted]))
    c.patch_claims(fk, params(state="reverted"))
    assert fk.find(k.PVC, "data", NS)["metadata"]["ownerReferences"] == [adopted]


def test_a_claim_recreated_after_a_kill_drops_owners_that_are_gone():
    fk, ref = owned_kube()
    fk.fail_next["create"] = Killed("SIGKILL")
    with pytest.raises(Killed):
        c.patch_claims(fk, params())
    assert fk.find(k.PVC, "data", NS) is None
    fk.remove(k.STATEFUL_SET, "db", NS)
    fk.add(k.STATEFUL_SET, {"metadata": {"name": "db", "namespace": NS}, "spec": {}})  # same name, new uid
    result = c.patch_claims(fk, params())
    assert "ownerReferences" not in fk.find(k.PVC, "data", NS)["metadata"]
    assert any("without its owner reference to StatefulSet db" in w for w in result.get("warnings", []))
    assert_swapped(fk)


def test_a_claim_recreated_after_a_kill_keeps_owners_that_still_exist():
    fk, ref = owned_kube()
    fk.fail_next["create"] = Killed("SIGKILL")
    with pytest.raises(Killed):
        c.patch_claims(fk, params())
    c.patch_claims(fk, params())
    assert fk.find(k.PVC, "data", NS)["metadata"]["ownerReferences"] == [ref]
