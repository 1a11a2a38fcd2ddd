# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input is refused in PREFLIGHT with a specific message and ZERO mutations (issue 6 §3).

Table-driven: every case is one ``restore_plan`` task (the preflight step of both playbooks) in ONE
playbook run against one prepared scenario, plus a few cases through the playbooks themselves
(preflight role). Around the whole table every object of the target namespace(s), the Velero
namespace and every PV is snapshotted (uid, resourceVersion, content) and compared: no case may
create, delete or modify anything. (DownloadRequests that backup reading creates are deleted again
by the collection, so they leave nothing behind either.)
"""

import gzip
import json
import os
import secrets
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ansible_run  # noqa: E402 pylint: disable=wrong-import-position
import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]

MI = 1024 * 1024


def _rewrite_volume_info(state_dir, backup, change):
    from sim.velero import backup_dir  # pylint: disable=import-error
    name = backup["metadata"]["name"]
    path = os.path.join(backup_dir(state_dir, name), "%s-volumeinfo.json.gz" % name)
    with open(path, "rb") as handle:
        infos = json.loads(gzip.decompress(handle.read()))
    infos = [change(dict(i)) for i in infos]
    with open(path, "wb") as handle:
        handle.write(gzip.compress(json.dumps(infos).encode()))


def _native(info):
    info.pop("pvbInfo", None)
    info.update(backupMethod="NativeSnapshot", nativeSnapshotInfo={
        "snapshotHandle": "snap-0123", "volumeType": "gp3", "volumeAZ": "eu-1a", "iops": "", "Phase": "Completed"})
    return info


def _csi_only(info):
    info.pop("pvbInfo", None)
    info.update(backupMethod="CSISnapshot", snapshotDataMoved=False, csiSnapshotInfo={
        "snapshotHandle": "snaphandle-1", "size": 1024, "driver": "sim.csi.data-restore.test",
        "vscName": "snapcontent-1", "operationID": "", "ReadyToUse": True})
    return info


def _pvc(kube, ns, name, size="1Gi", mode="Filesystem", selector=False):
    spec = {"accessModes": ["ReadWriteOnce"], "storageClassName": "sim-immediate", "volumeMode": mode,
            "resources": {"requests": {"storage": size}}}
    if selector:
        spec["selector"] = {"matchLabels": {"never": "provisioned"}}
    kube.create("PersistentVolumeClaim", {"metadata": {"name": name, "namespace": ns}, "spec": spec})


def _namespace(kube, made, prefix):
    name = "%s-%s" % (prefix, secrets.token_hex(3))
    kube.create("Namespace", {"metadata": {"name": name, "labels": {"data-restore.test/ephemeral": "true"}}})
    made.append(name)
    return name


@pytest.fixture
def scenario(kube, api_client, kubeconfig, namespace, app_factory, backup_factory, state_dir, wait_for):
    """One application, backups of every bad kind, target namespaces in every bad state."""
    app = app_factory(kind="Deployment", name="web", volumes=[{"name": "data", "files": {
        "big.bin": secrets.token_bytes(3 * MI), "hello.txt": b"hello\n"}}])
    made = []
    s = {"ns": namespace, "app": app}
    s["good"] = backup_factory(method="fs")["metadata"]["name"]
    for phase in ("InProgress", "Failed", "PartiallyFailed"):
        s[phase] = backup_factory(method="fs", phase=phase)["metadata"]["name"]
    s["restic"] = backup_factory(method="fs", uploader_type="restic")["metadata"]["name"]
    s["nobsl"] = backup_factory(method="fs", storage_location="nowhere")["metadata"]["name"]
    native = backup_factory(method="fs")
    _rewrite_volume_info(state_dir, native, _native)
    s["native"] = native["metadata"]["name"]
    csi = backup_factory(method="fs")
    _rewrite_volume_info(state_dir, csi, _csi_only)
    s["csi"] = csi["metadata"]["name"]
    s["other_ns"] = backup_factory(namespaces=["default"])["metadata"]["name"]
    s["missing"] = _namespace(kube, made, "bi-missing")            # no claims at all
    s["unbound"] = _namespace(kube, made, "bi-unbound")            # web-data Pending
    _pvc(kube, s["unbound"], "web-data", selector=True)
    s["small"] = _namespace(kube, made, "bi-small")                # web-data 1Mi < 3 MiB snapshot
    _pvc(kube, s["small"], "web-data", size="1Mi")
    s["block"] = _namespace(kube, made, "bi-block")                # web-data in Block mode
    _pvc(kube, s["block"], "web-data", mode="Block")
    s["finished"] = _namespace(kube, made, "bi-finished")          # a finished pod still holds web-data
    _pvc(kube, s["finished"], "web-data")
    kube.create("Pod", {"metadata": {"name": "report", "namespace": s["finished"]}, "spec": {
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "report", "image": "busybox:1.36", "command": ["true"],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}]}})
    s["cron_job"] = _namespace(kube, made, "bi-cronjob")        # a CronJob's unfinished Job mounts web-data
    _pvc(kube, s["cron_job"], "web-data")
    cron = kube.create("CronJob", {"metadata": {"name": "compact", "namespace": s["cron_job"]}, "spec": {
        "schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "compact", "image": "busybox:1.36"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}]}}}}}})
    # stopped by an earlier quiesce (parallelism 0): unfinished, no pod
    kube.create("Job", {"metadata": {"name": "compact-manual", "namespace": s["cron_job"], "ownerReferences": [{
        "apiVersion": "batch/v1", "kind": "CronJob", "name": "compact", "uid": cron["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}]}, "spec": {"parallelism": 0, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "compact", "image": "busybox:1.36"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}]}}}})
    for ns in (s["small"], s["block"], s["finished"], s["cron_job"]):
        wait_for(lambda ns=ns: (kube.get("PersistentVolumeClaim", ns, "web-data").get("status") or {}).get("phase")
                 == "Bound", 60, message="PVC %s/web-data Bound" % ns)
    wait_for(lambda: (kube.get("Pod", s["finished"], "report").get("status") or {}).get("phase") == "Succeeded", 60,
             message="pod %s/report Succeeded" % s["finished"])
    # the Job controller's first status write (startTime), before the snapshot of resourceVersions; the CronJob
    # controller writes no status for a Job it did not start (an "UnexpectedJob" event only)
    wait_for(lambda: (kube.get("Job", s["cron_job"], "compact-manual").get("status") or {}).get("startTime"), 60,
             message="Job %s/compact-manual started" % s["cron_job"])
    # another unfinished session already holds <ns>/web-data
    s["holder"] = "holder-" + secrets.token_hex(3)
    held = ansible_run.run_module("restore_session", dict(
        session=s["holder"], mode="in_place", backup={"name": s["good"]},
        plan={"volumes": [{"key": "%s/web-data" % namespace}]}), kubeconfig=kubeconfig)
    assert not held.get("failed"), held.get("msg")
    # a foreign claim with the name replace mode would give the new claim of session "collide"
    sys.path.insert(0, os.path.join(ph.REPO, "collections"))
    from ansible_collections.velero.data_restore.plugins.module_utils import names  # pylint: disable=import-error
    s["collision"] = names.stable_name("web-data", "restored", names.short_hash("collide", length=6))
    _pvc(kube, namespace, s["collision"])
    s["namespaces"] = [namespace] + made
    yield s
    ansible_run.run_module("restore_session", dict(session=s["holder"], state="absent", force=True),
                           kubeconfig=kubeconfig)
    for ns in made:
        kube.delete("Namespace", None, ns)


def cases(s):
    """(id, restore_plan args, distinctive substring of the failure message)."""
    ns, good = s["ns"], s["good"]
    base = dict(backup=good, mode="in_place", source_namespace=ns)

    def c(case_id, expect, **args):
        return (case_id, dict(base, **args), expect)
    return [
        c("unknown-backup", "not found", backup="no-such-backup-%s" % secrets.token_hex(2)),
        c("backup-in-progress", "is still InProgress", backup=s["InProgress"]),
        c("backup-failed", "is Failed: it cannot be restored", backup=s["Failed"]),
        c("backup-partially-failed-no-opt-in", "is PartiallyFailed", backup=s["PartiallyFailed"]),
        c("backup-without-namespace", "does not include namespace", backup=s["other_ns"]),
        c("pvc-not-in-backup", "is not in backup", volumes=["no-such-claim"]),
        c("target-pvc-missing", "does not exist", target_namespace=s["missing"]),
        c("target-pvc-unbound", "not Bound", target_namespace=s["unbound"]),
        c("target-pvc-smaller-than-snapshot", "but the snapshot of", target_namespace=s["small"]),
        c("target-pvc-block-for-fs-backup", "is Block mode but", target_namespace=s["block"]),
        c("native-snapshot", "native (storage provider) snapshot", backup=s["native"]),
        c("csi-snapshot-without-data-movement", "CSI snapshot without data movement", backup=s["csi"]),
        c("restic-uploader", "uploaded with restic", backup=s["restic"]),
        c("bsl-missing", "BackupStorageLocation velero/nowhere", backup=s["nobsl"]),
        c("two-sessions-same-pvc", "is already part of restore session", session="second-" + secrets.token_hex(2)),
        c("mapping-invalid-target", "namespace_mapping entry", namespace_mapping={ns: "Not_A_Namespace"}),
        c("mapping-without-source", "has no entry for source namespace", namespace_mapping={"elsewhere": ns}),
        c("mapping-to-missing-namespace", "Target namespace nsx-missing-%s does not exist" % ns[-4:],
          namespace_mapping={ns: "nsx-missing-%s" % ns[-4:]}),
        c("mapping-and-target-namespace", "mutually exclusive", namespace_mapping={ns: ns}, target_namespace=ns),
        c("claim-mapping-unknown-claim", "claim_mapping names claim(s) no-such-claim, which backup",
          claim_mapping={"no-such-claim": "web-data"}),
        c("claim-mapping-to-missing-claim", "(claim_mapping of %s/web-data) does not exist" % ns,
          claim_mapping={"web-data": "renamed-but-not-deployed"}),
        c("claim-mapping-two-into-one", "to the same claim web-data",
          claim_mapping={"web-data": "web-data", "other-data": "web-data"}),
        c("name-collision-new-claim", "already exists and does not belong to this restore", mode="replace",
          session="collide"),
        c("finished-pod-holds-a-claim-replace-swaps", "finished pods still hold", mode="replace",
          target_namespace=s["finished"], session="fin-" + secrets.token_hex(2)),
        c("template-swap-unfinished-cronjob-job", "started by CronJob compact, mounts PVC web-data and has not "
          "finished", mode="replace", swap_mode="template", target_namespace=s["cron_job"],
          session="cjt-" + secrets.token_hex(2)),
        c("storage-class-map-unknown-class", "StorageClass no-such-class", mode="replace",
          storage_class_map={"sim-immediate": "no-such-class"}, session="scm-" + secrets.token_hex(2)),
        c("storage-class-map-in-place", "applies to mode=replace only", storage_class_map={"a": "b"}),
        c("mode-invalid", "value of mode must be one of", mode="sideways"),
        c("volumes-empty-list", "volumes must be a non-empty list", volumes=[]),
        c("volumes-wrong-type", "volumes entry", volumes=[{"name": "web-data"}]),
        c("volumes-and-selector", "mutually exclusive: volumes|volume_selector", volumes=["web-data"],
          volume_selector="app=web"),
        c("volume-selector-matches-nothing", "matches no claim", volume_selector="app=nothing-here"),
        c("source-namespace-invalid", "is not a valid namespace name", source_namespace="Bad_Namespace"),
        c("allow-partially-failed-not-bool", "allow_partially_failed", allow_partially_failed="sometimes"),
        c("backup-dict-without-name", "backup is a dict without a name", backup={"phase": "Completed"}),
        c("backup-wrong-type", "backup must be a backup name", backup=42),
        c("session-name-invalid", "session", session="Bad Session!"),
    ]


def test_bad_input_fails_in_preflight_with_zero_mutations(api_client, kubeconfig, scenario, tmp_path):
    table = cases(scenario)
    assert len(table) >= 25
    tasks = [{"name": case_id, "velero.data_restore.restore_plan": args, "ignore_errors": True}
             for case_id, args, _expect in table]
    path = tmp_path / "bad_input.yml"
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    namespaces = scenario["namespaces"] + [ph.VELERO_NS]
    tokens = [v for k, v in scenario.items() if isinstance(v, str)]
    before = ph.snapshot(api_client, namespaces, tokens=tokens)
    rc, data, stdout, stderr = ansible_run.run_playbook(str(path), kubeconfig=kubeconfig, timeout=600)
    after = ph.snapshot(api_client, namespaces, tokens=tokens)
    results = dict(ansible_run.task_results(data))
    assert results, "no results (rc=%s): %s %s" % (rc, stdout[-2000:], stderr[-2000:])
    problems = []
    for case_id, _args, expect in table:
        result = results.get(case_id)
        if result is None:
            problems.append("%s: no result" % case_id)
        elif not result.get("failed"):
            problems.append("%s: did NOT fail (changed=%s)" % (case_id, result.get("changed")))
        elif expect not in (result.get("msg") or ""):
            problems.append("%s: message lacks %r: %s" % (case_id, expect, result.get("msg")))
        elif "Traceback" in (result.get("module_stderr") or "") + (result.get("exception") or ""):
            problems.append("%s: traceback" % case_id)
    mutations = ph.diff_snapshots(before, after, status_tolerant_namespaces=(ph.VELERO_NS,))
    assert not problems, "\n".join(problems)
    assert not mutations, "bad input mutated the cluster:\n" + "\n".join(mutations)


def test_velero_not_installed_fails_in_preflight(api_client, kubeconfig, namespace, tmp_path):
    """CRDs missing: a proxy hides the velero.io API group (the shared cluster keeps its CRDs)."""
    before = ph.snapshot(api_client, [namespace, ph.VELERO_NS])
    with ph.HideVeleroProxy(kubeconfig, tmp_path) as proxy:
        plan = ansible_run.run_module("restore_plan", dict(backup="any", mode="in_place", source_namespace=namespace),
                                      kubeconfig=proxy.kubeconfig)
        info = ansible_run.run_module("backup_info", dict(name="any"), kubeconfig=proxy.kubeconfig)
    after = ph.snapshot(api_client, [namespace, ph.VELERO_NS])
    for result in (plan, info):
        assert result.get("failed"), result
        assert "Velero's CRDs are not installed" in result["msg"] or "is not installed" in result["msg"], result["msg"]
    assert not ph.diff_snapshots(before, after, (ph.VELERO_NS,))


def _playbook_case(api_client, kubeconfig, namespaces, playbook, extra_vars, tmp_path):
    before = ph.snapshot(api_client, namespaces + [ph.VELERO_NS])
    rc, results, failed, stdout, stderr = ph.run_restore(playbook, kubeconfig, dict(
        extra_vars, report_directory=str(tmp_path)))
    after = ph.snapshot(api_client, namespaces + [ph.VELERO_NS])
    assert rc != 0 and failed, "the playbook did not fail: %s" % stdout[-1500:]
    return failed[0], ph.diff_snapshots(before, after, (ph.VELERO_NS,))


def test_playbook_unknown_backup_fails_in_preflight(api_client, kubeconfig, namespace, tmp_path):
    (name, result), mutations = _playbook_case(api_client, kubeconfig, [namespace], "restore_in_place.yml",
                                               {"source_namespace": namespace, "backup": "no-such-backup"}, tmp_path)
    assert "preflight" in name.lower(), name
    assert "no-such-backup" in result.get("msg", ""), result.get("msg")
    assert not mutations, mutations


def test_statefulset_when_scaled_delete_is_refused_before_any_change(api_client, kube, kubeconfig, namespace,
                                                                     app_factory, backup_factory, tmp_path):
    app = app_factory(kind="StatefulSet", name="db")
    kube.patch("StatefulSet", namespace, "db", {"spec": {"persistentVolumeClaimRetentionPolicy": {
        "whenDeleted": "Retain", "whenScaled": "Delete"}}})
    backup = backup_factory(method="fs")["metadata"]["name"]
    (name, result), mutations = _playbook_case(api_client, kubeconfig, [namespace], "restore_in_place.yml",
                                               {"source_namespace": namespace, "backup": backup}, tmp_path)
    assert "whenScaled" in result.get("msg", ""), (name, result.get("msg"))
    # the workload and its claims are untouched; a session ConfigMap may only be what preflight made
    target_mutations = [m for m in mutations if "'%s'" % ph.VELERO_NS not in m]
    assert not target_mutations, target_mutations
    assert "preflight" in name.lower(), (
        "whenScaled: Delete was refused by step %r, after preflight (Velero namespace changes: %s)" % (name, mutations))
    try:
        assert not mutations, mutations
    finally:
        ansible_run.run_module("restore_session", dict(session="in-place-%s-%s" % (namespace, backup), state="absent",
                                                       force=True), kubeconfig=kubeconfig)
    del app


# (extra vars beyond source_namespace + an existing backup, what the message must say) - the playbooks' own
# inputs, refused by playbooks/tasks/check_inputs.yml before the preflight: no session, nothing stopped.
PLAYBOOK_INPUTS = [
    ({"on_failure": "leave-stopped"}, 'on_failure must be resume or leave_stopped; got "leave-stopped"'),
    ({"restore_timeout": "soon"}, 'restore_timeout must be a whole number of seconds, at least 1; got "soon"'),
    ({"restore_timeout": 0}, "restore_timeout must be a whole number of seconds"),
    ({"workload_timeout": "long"}, 'workload_timeout must be a whole number of seconds, at least 1; got "long"'),
    ({"quiesce": "stop"}, 'quiesce must be scale or none; got "stop"'),
    ({"max_volumes_per_pod": -2}, "max_volumes_per_pod must be a whole number of claims (0 splits to the CSI attach limit of the nodes); got -2"),
    ({"pre_restore_hooks": [{"name": "flush", "command": ["sync"], "pod_selector": "app=web", "on_error": "Fail"}]},
     "pre_restore_hooks[0] (flush): on_error must be fail or continue (lowercase); got 'Fail'"),
    ({"post_restore_hooks": [{"name": "warm", "command": "true"}]},
     "post_restore_hooks[0] (warm): give pod (a pod name) or pod_selector"),
    ({"post_restore_hooks": "curl http://app/warm"}, "post_restore_hooks must be a list of hooks"),
    ({"source_namespace": None}, "Set source_namespace: the namespace of the volumes at backup time."),
    ({"source_namespace": ""}, "Set source_namespace"),
    ({"namespace_mapping": ["shop:shop-copy"]}, "namespace_mapping must be a mapping of source namespace"),
    ({"claim_mapping": ["web-data:web-data-v2"]}, "claim_mapping must be a mapping of PVC name at backup time"),
    ({"latest": True}, "Give either backup (a Backup name) or latest=true, not both and not neither."),
    ({"backup": None}, "Give either backup (a Backup name) or latest=true"),
    ({"volumes": ["data"], "volume_selector": "app=web"}, "Give volumes or volume_selector, not both."),
    ({"target_namespace": "shop-qa", "namespace_mapping": {"shop": "shop-staging"}},
     'Give target_namespace or namespace_mapping, not both (target_namespace "shop-qa"'),
]


@pytest.mark.parametrize("extra,message", PLAYBOOK_INPUTS, ids=[
    "on_failure", "restore_timeout_text", "restore_timeout_zero", "workload_timeout", "quiesce", "max_volumes_per_pod", "hook_on_error",
    "hook_without_pod", "hooks_not_a_list", "source_namespace_missing", "source_namespace_empty",
    "namespace_mapping_not_a_mapping", "claim_mapping_not_a_mapping", "backup_and_latest", "neither_backup_nor_latest", "volumes_and_selector",
    "target_namespace_and_mapping"])
def test_playbook_inputs_are_refused_before_anything_changes(api_client, kubeconfig, namespace, app_factory,
                                                             backup_factory, tmp_path, extra, message):
    app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    for playbook in ("restore_in_place.yml", "restore_replace.yml"):
        given = dict({"source_namespace": namespace, "backup": backup}, **extra)
        given = dict((key, value) for key, value in given.items() if value is not None)  # None: not given at all
        (name, result), mutations = _playbook_case(api_client, kubeconfig, [namespace], playbook, given, tmp_path)
        assert name.startswith("Check the playbook inputs"), (playbook, name, result.get("msg"))
        assert message in result.get("msg", "") and "nothing was changed" in result["msg"], result.get("msg")
        assert not mutations, (playbook, mutations)


# What an AWX survey sends for the questions left blank: null (ansible-core 2.19) or "".
BLANK_ANSWERS = ["backup", "schedule", "target_namespace", "volume_selector", "session", "report_directory",
                 "kubeconfig", "kube_context", "velero_namespace", "quiesce", "on_failure", "restore_timeout",
                 "workload_timeout", "wait_slice", "max_volumes_per_pod", "swap_mode", "pre_restore_hooks",
                 "namespace_mapping", "claim_mapping", "storage_class_map", "pause_gitops", "retry_failed"]


@pytest.mark.parametrize("blank", [None, ""], ids=["null", "empty"])
def test_blank_survey_answers_count_as_not_given(api_client, kubeconfig, namespace, app_factory, backup_factory,
                                                 blank):
    app_factory(kind="Deployment", name="web")
    backup_factory(method="fs")
    for playbook in ("restore_in_place.yml", "restore_replace.yml"):
        given = dict(dict.fromkeys(BLANK_ANSWERS, blank), source_namespace=namespace, latest="true")
        before = ph.snapshot(api_client, [namespace, ph.VELERO_NS])
        rc, results, failed, stdout, _stderr = ph.run_restore(playbook, kubeconfig, given, args=("--check",))
        after = ph.snapshot(api_client, [namespace, ph.VELERO_NS])
        assert rc == 0 and not failed, (playbook, failed[:1], stdout[-1500:])
        assert ph.plan_of(results)["volumes"], playbook
        assert not ph.diff_snapshots(before, after, (ph.VELERO_NS,)), playbook


def test_rollback_workload_timeout_is_refused_before_anything_changes(api_client, kubeconfig, namespace, tmp_path):
    """"10m" would be 0 seconds to the role, and a stop that cannot wait leaves the workloads stopped."""
    (name, result), mutations = _playbook_case(api_client, kubeconfig, [namespace], "rollback.yml", dict(
        session="replace-%s-nightly" % namespace, workload_timeout="10m"), tmp_path)
    assert name == "Check workload_timeout", (name, result.get("msg"))
    assert 'workload_timeout must be a whole number of seconds, at least 1; got "10m"' in result.get("msg", "")
    assert "Nothing was changed" in result["msg"]
    assert not mutations, mutations


def test_swap_mode_is_refused_before_anything_changes(api_client, kubeconfig, namespace, app_factory, backup_factory,
                                                      tmp_path):
    app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    (name, result), mutations = _playbook_case(api_client, kubeconfig, [namespace], "restore_replace.yml", dict(
        swap_mode="rename", source_namespace=namespace, backup=backup), tmp_path)
    assert 'swap_mode must be rebind or template; got "rename"' in result.get("msg", ""), (name, result.get("msg"))
    assert not mutations, mutations


def test_a_keda_scaled_workload_without_pause_gitops_is_refused_in_preflight(
        api_client, kube, kubeconfig, namespace, app_factory, backup_factory, tmp_path):
    """KEDA would start the stopped Deployment again while its volumes are restored (a stand-in KEDA CRD: the real
    API server serves keda.sh/v1alpha1, no KEDA controller runs)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "modules"))
    import stand_in_apis  # pylint: disable=import-error,import-outside-toplevel

    app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    keda = stand_in_apis.crd("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects")
    with stand_in_apis.served_for_module(api_client, [keda]) as custom:
        custom.create_namespaced_custom_object("keda.sh", "v1alpha1", namespace, "scaledobjects", {
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "web-scaler", "namespace": namespace},
            "spec": {"scaleTargetRef": {"name": "web"}, "minReplicaCount": 1}})
        (name, result), mutations = _playbook_case(api_client, kubeconfig, [namespace], "restore_in_place.yml",
                                                   {"source_namespace": namespace, "backup": backup}, tmp_path)
    assert "preflight" in name.lower(), (name, result.get("msg"))
    assert "Deployment %s/web is scaled by KEDA ScaledObject %s/web-scaler" % (namespace, namespace) \
        in result.get("msg", ""), result.get("msg")
    assert "Set pause_gitops=true" in result["msg"], result["msg"]
    assert not mutations, mutations
    assert kube.get("Deployment", namespace, "web")["spec"]["replicas"] == 1
