"""pod_volume_restore against the test cluster: the node-agent simulator applies Velero's rules."""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_path_helpers as h  # noqa: E402
from data_path_helpers import run_module  # noqa: E402
import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = pytest.mark.integration


def helper(kubeconfig, namespace, pvcs):
    result = run_module("restore_helper_pod", {"session": namespace, "namespace": namespace, "pvcs": pvcs,
                                               "wait_timeout": 60}, kubeconfig=kubeconfig)
    assert not result.get("failed"), result
    return result["pods"]


def _stopped_app_in_a_session(kube, kubeconfig, namespace, app_factory, backup_factory, wait_for):
    """A one-volume app with its fs backup, scaled to 0, and a session of the namespace's name: (app, pvc, records)."""
    app = app_factory(volumes=[{"name": "data"}])
    [pvc] = app["pvcs"]
    backup = backup_factory(method="fs")
    h.scale(kube, namespace, "app", 0, wait_for)
    h.session(kubeconfig, namespace)
    return app, pvc, h.fs_records(kube, backup, namespace)


def test_in_place_fs_restore(kubeconfig, kube, api_client, state_dir, namespace, app_factory, backup_factory, wait_for):
    from sim.storage import pvc_volume_path
    from sim.velero import read_tree, write_files

    app = app_factory(volumes=[{"name": "data"}])
    [pvc] = app["pvcs"]
    backup = backup_factory(method="fs")
    path = pvc_volume_path(api_client, state_dir, namespace, pvc)
    write_files(path, {"hello.txt": b"changed after the backup\n", "after.txt": b"created after the backup\n"})
    h.scale(kube, namespace, "app", 0, wait_for)
    h.session(kubeconfig, namespace)
    records = h.fs_records(kube, backup, namespace)
    pods = helper(kubeconfig, namespace, [pvc])
    args = {"session": namespace, "volumes": records, "pods": pods, "wait_timeout": 120}
    check = run_module("pod_volume_restore", args, kubeconfig=kubeconfig, check=True)
    assert check["changed"] is True and not kube.list("PodVolumeRestore", "velero", label_selector="data-restore.ansible/session=%s" % namespace)
    result = run_module("pod_volume_restore", args, kubeconfig=kubeconfig)
    assert not result.get("failed"), result
    [vol] = result["volumes"]
    assert vol["phase"] == "Completed" and vol["bytes_done"] == vol["total_bytes"] > 0 and vol["node"]
    tree = read_tree(path)
    for rel, data in app["files"][pvc].items():
        assert tree[rel] == data, rel  # backup content restored (hello.txt overwritten back)
    assert tree["after.txt"] == b"created after the backup\n"  # kopia never deletes extra files
    assert ph.session_journal(kube, namespace)["volumes"]["%s/%s" % (namespace, pvc)]["phase"] == "Completed"
    # restore-wait saw the done file .velero/<session uid> and finished
    wait_for(lambda: run_module("restore_helper_pod", {"session": namespace, "namespace": namespace, "pvcs": [pvc]},
                                kubeconfig=kubeconfig)["pods"][0]["restore_wait"] == "completed", 30)
    again = run_module("pod_volume_restore", args, kubeconfig=kubeconfig)
    assert again["changed"] is False and again["done"] is True
    absent = run_module("pod_volume_restore", {"session": namespace, "state": "absent"}, kubeconfig=kubeconfig)
    assert absent["changed"] is True
    assert not kube.list("PodVolumeRestore", "velero", label_selector="data-restore.ansible/session=%s" % namespace)


def test_a_retry_after_a_data_path_that_completed_under_the_session_says_to_use_a_new_session(
        kubeconfig, kube, api_client, state_dir, namespace, app_factory, backup_factory, wait_for):
    """The volume holds the session's done file (its data path completed) but the PodVolumeRestore ended Failed
    (its status update lost): restore-wait exits at once in any helper pod of the session, and Velero never takes a
    new PodVolumeRestore. The retry fails with that cause and the way out - before, a PVR created while restore-wait
    was still starting stayed New until restore_timeout."""
    from sim.storage import pvc_volume_path

    _app, pvc, records = _stopped_app_in_a_session(kube, kubeconfig, namespace, app_factory, backup_factory,
                                                   wait_for)
    args = {"session": namespace, "volumes": records, "pods": helper(kubeconfig, namespace, [pvc]),
            "wait_timeout": 120}
    assert run_module("pod_volume_restore", args, kubeconfig=kubeconfig)["volumes"][0]["phase"] == "Completed"
    assert os.listdir(os.path.join(pvc_volume_path(api_client, state_dir, namespace, pvc), ".velero"))
    [done] = kube.list("PodVolumeRestore", "velero", label_selector="data-restore.ansible/session=%s" % namespace)
    kube.patch("PodVolumeRestore", "velero", done["metadata"]["name"],
               {"status": {"phase": "Failed", "message": "status update lost"}})
    assert run_module("restore_helper_pod", {"session": namespace, "namespace": namespace, "state": "absent"},
                      kubeconfig=kubeconfig)["changed"] is True
    retry = dict(args, pods=helper(kubeconfig, namespace, [pvc]), retry_failed=True, wait_timeout=600,
                 fail_on_timeout=False)
    started = time.monotonic()
    result = run_module("pod_volume_restore", retry, kubeconfig=kubeconfig)
    # refused before the create (restore-wait seen exited) or by the wait (it exited just after being seen running)
    assert result.get("failed") and "new session name" in result["msg"], result
    assert "has already exited (completed)" in result["msg"] or "will never start" in result["msg"], result["msg"]
    assert time.monotonic() - started < 60, "the wait went on although the PodVolumeRestore could never start"


def test_data_mover_filesystem_snapshot_through_pvr(kubeconfig, kube, api_client, state_dir, namespace, app_factory,
                                                    backup_factory, wait_for):
    from sim.storage import pvc_volume_path
    from sim.velero import read_tree, write_files

    app = app_factory(volumes=[{"name": "data"}])
    [pvc] = app["pvcs"]
    backup = backup_factory(method="data_mover")
    path = pvc_volume_path(api_client, state_dir, namespace, pvc)
    write_files(path, {"dir/data.bin": b"overwritten"})
    h.scale(kube, namespace, "app", 0, wait_for)
    h.session(kubeconfig, namespace)
    records = h.du_records(kube, backup, namespace, via="pod_volume_restore")
    pods = helper(kubeconfig, namespace, [pvc])
    result = run_module("pod_volume_restore", {"session": namespace, "volumes": records, "pods": pods,
                                               "wait_timeout": 120}, kubeconfig=kubeconfig)
    assert not result.get("failed"), result
    assert read_tree(path)["dir/data.bin"] == app["files"][pvc]["dir/data.bin"]


def test_without_pod_uid_label_the_pvr_stays_new_and_a_rerun_recreates_it(
        kubeconfig, kube, api_client, state_dir, namespace, app_factory, backup_factory, wait_for):
    """Contract §7.4: a PVR created before restore-wait runs is only re-triggered through velero.io/pod-uid.

    The helper pod's PVC is bound only after the PVR exists: the module's timeout names the pending volume. With the
    label stripped the PVR stays New although restore-wait runs; a re-run of the module recreates it with the label
    (it had not started), and that lets it complete.
    """
    from sim.storage import PROVISIONER
    from sim.velero import read_tree

    app = app_factory(volumes=[{"name": "data"}])
    backup = backup_factory(method="fs")
    h.session(kubeconfig, namespace)
    kube.create("PersistentVolumeClaim", {"metadata": {"name": "late", "namespace": namespace}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "sim-immediate", "resources": {"requests": {"storage": "1Gi"}},
        "selector": {"matchLabels": {"data-restore.test/late": namespace}}}})  # never provisioned: stays unbound
    helper_result = run_module("restore_helper_pod", {"session": namespace, "namespace": namespace, "pvcs": ["late"],
                                                      "wait": False}, kubeconfig=kubeconfig)
    assert not helper_result.get("failed"), helper_result
    [rec] = h.fs_records(kube, backup, namespace)
    rec.update(key="%s/late" % namespace, target_pvc="late")
    args = {"session": namespace, "volumes": [rec], "pods": helper_result["pods"], "wait": False}
    created = run_module("pod_volume_restore", args, kubeconfig=kubeconfig)
    assert not created.get("failed"), created
    name = created["volumes"][0]["name"]
    # the helper pod cannot start (PVC unbound): the wait times out and names the pending volume
    pending = run_module("pod_volume_restore", dict(args, wait=True, wait_timeout=5), kubeconfig=kubeconfig)
    assert pending["failed"] and "still pending: %s/late (%s, New, 0/0 bytes)" % (namespace, name) in pending["msg"]
    kube.patch("PodVolumeRestore", "velero", name, {"metadata": {"labels": {"velero.io/pod-uid": None}}})
    # now let the helper pod start: a pre-bound PV for the claim
    pv_name = "pv-late-" + namespace
    os.makedirs(os.path.join(state_dir, "volumes", pv_name), exist_ok=True)
    kube.create("PersistentVolume", {"metadata": {"name": pv_name, "labels": {"data-restore.test/late": namespace}},
                                     "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                              "volumeMode": "Filesystem", "persistentVolumeReclaimPolicy": "Delete",
                                              "storageClassName": "sim-immediate",
                                              "csi": {"driver": PROVISIONER, "volumeHandle": pv_name, "fsType": "ext4"},
                                              "claimRef": {"namespace": namespace, "name": "late"}}})
    running = run_module("restore_helper_pod", {"session": namespace, "namespace": namespace, "pvcs": ["late"],
                                                "wait_timeout": 60}, kubeconfig=kubeconfig)
    assert running["pods"][0]["restore_wait"] == "running", running
    # the node-agent never picks it up although restore-wait runs: pod events reach only PVRs labelled with the UID
    time.sleep(10)
    stuck = kube.get("PodVolumeRestore", "velero", name)
    assert (stuck.get("status") or {}).get("phase", "New") == "New"
    # a PVR that has not started is recreated with the label, and that is what makes it work
    done = run_module("pod_volume_restore", dict(args, wait=True, wait_timeout=60), kubeconfig=kubeconfig)
    assert not done.get("failed") and done["changed"], done
    again = kube.get("PodVolumeRestore", "velero", name)
    assert again["metadata"]["uid"] != stuck["metadata"]["uid"]
    assert again["metadata"]["labels"]["velero.io/pod-uid"] == running["pods"][0]["uid"]
    assert read_tree(os.path.join(state_dir, "volumes", pv_name))["hello.txt"] == app["files"][app["pvcs"][0]]["hello.txt"]
    run_module("restore_helper_pod", {"session": namespace, "state": "absent", "namespace": namespace}, kubeconfig=kubeconfig)


def test_cancel_a_running_restore(kubeconfig, kube, namespace, app_factory, backup_factory, sim_config, wait_for):
    """state=absent on a PodVolumeRestore still copying: merge-patch spec.cancel=true (Velero >= v1.17),
    the node-agent ends it Canceled and lets it go; the CR is deleted."""
    _app, pvc, records = _stopped_app_in_a_session(kube, kubeconfig, namespace, app_factory, backup_factory, wait_for)
    pods = helper(kubeconfig, namespace, [pvc])
    sim_config.set(bytesPerSecond=100)  # ~40 s for the volume's 4 KiB: still running when canceled
    started = run_module("pod_volume_restore", {"session": namespace, "volumes": records, "pods": pods, "wait": True,
                                                "wait_timeout": 3, "fail_on_timeout": False}, kubeconfig=kubeconfig)
    assert not started.get("failed") and started["done"] is False, started
    [name] = [v["name"] for v in started["volumes"]]
    selector = "data-restore.ansible/session=%s" % namespace
    wait_for(lambda: [o for o in kube.list("PodVolumeRestore", "velero", label_selector=selector)
                      if (o.get("status") or {}).get("phase") == "InProgress"], 30, message="PVR InProgress")
    canceled = run_module("pod_volume_restore", {"session": namespace, "state": "absent", "wait_timeout": 60},
                          kubeconfig=kubeconfig)
    assert not canceled.get("failed") and canceled["changed"], canceled
    assert canceled["canceled"] == [name] and canceled["deleted"] == [name]
    assert not kube.list("PodVolumeRestore", "velero", label_selector=selector)
