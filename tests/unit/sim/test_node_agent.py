"""Unit tests of the node-agent simulator's data-path mechanics (tests/cluster/sim/node_agent.py): progress
throttling, cancel while throttled, a start that fails on an API error, and what a cancel or a lost data path
does in each phase. No cluster: the API calls are
replaced by recorders."""
from __future__ import annotations

import threading

import pytest
from kubernetes.client.rest import ApiException

from sim import contract as C
from sim import node_agent as na
from sim.config import SimConfig


class StubInformer:
    def __init__(self, objects=()):
        self.objects = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}

    def add_handler(self, _fn):
        pass

    def get(self, namespace, name):
        return self.objects.get((namespace, name))

    def items(self):
        return list(self.objects.values())


def make_agent(bytes_per_second=None):
    config = SimConfig()
    if bytes_per_second:
        config.update({"bytesPerSecond": str(bytes_per_second)})
    informers = {"PodVolumeRestore": StubInformer(), "DataDownload": StubInformer(), "Pod": StubInformer()}
    return na.NodeAgent(kube=None, state_dir="/nonexistent", informers=informers, config=config)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_progress_is_written_at_start_then_at_most_every_ten_seconds(monkeypatch):
    """Velero's restoreProgressCheckInterval (pkg/uploader/provider/provider.go) is 10 s."""
    clock = FakeClock()
    monkeypatch.setattr(na.time, "monotonic", clock)
    agent = make_agent(bytes_per_second=1 << 40)  # never throttled: only the progress rule acts
    writes = []
    monkeypatch.setattr(agent, "_transition", lambda kind, name, expect, status=None, **_kw: writes.append(
        (clock.now, status["progress"]["bytesDone"])))
    dp = na.DataPath("PodVolumeRestore", "pvr-1", "node-1")
    on_bytes, _st, _report = agent._throttle(dp, "PodVolumeRestore", "pvr-1", total=100)
    assert writes == [(1000.0, 0)]  # the start
    for _chunk in range(10):  # 10 chunks, 3 s apart
        clock.now += 3.0
        on_bytes(10)
    times = [t for t, _done in writes]
    assert times == [1000.0, 1012.0, 1024.0]
    assert all(b - a >= na.PROGRESS_INTERVAL for a, b in zip(times, times[1:]))
    assert writes[-1][1] == 80


def test_a_throttled_chunk_ends_at_once_on_cancel():
    agent = make_agent(bytes_per_second=1)  # a 100-byte chunk would wait 100 s
    agent._transition = lambda *a, **kw: None
    dp = na.DataPath("PodVolumeRestore", "pvr-1", "node-1")
    on_bytes, _st, _report = agent._throttle(dp, "PodVolumeRestore", "pvr-1", total=100)
    timer = threading.Timer(0.2, dp.cancel.set)
    timer.start()
    try:
        with pytest.raises(na.Cancelled):
            on_bytes(100)
    finally:
        timer.cancel()


def test_start_that_fails_on_an_api_error_is_forgotten_and_starts_on_the_next_try(monkeypatch):
    """A 503 on the Prepared -> InProgress update (apiserver restart) requeues the key, as Velero's reconciler
    does; the data path must not stay registered as running, else the PVR stays Prepared forever."""
    agent = make_agent()
    answers = [ApiException(status=503, reason="Service Unavailable"),
               {"metadata": {"name": "pvr-1"}, "status": {"phase": C.IN_PROGRESS}}]

    def transition(kind, name, expect, status=None, **_kw):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(agent, "_transition", transition)
    started = threading.Event()
    seen = []

    def target(dp, obj):
        seen.append(obj)
        started.set()

    with pytest.raises(ApiException):
        agent._start_path("PodVolumeRestore", "pvr-1", "node-1", target)
    assert "pvr-1" not in agent.paths
    monkeypatch.setattr(agent.queue, "add", lambda key: None)  # the finished path requeues its key
    agent._start_path("PodVolumeRestore", "pvr-1", "node-1", target)
    assert started.wait(5)
    # the data path starts from the object its InProgress update returned (no second read)
    assert seen == [{"metadata": {"name": "pvr-1"}, "status": {"phase": C.IN_PROGRESS}}]


def _pvr(phase, cancel=False, node="node-1", **status):
    return {"metadata": {"name": "pvr-1", "namespace": C.VELERO_NS, "finalizers": [C.PVR_FINALIZER]},
            "spec": {"uploaderType": "kopia", "cancel": cancel, "pod": {"namespace": "app", "name": "helper"}},
            "status": dict(status, phase=phase, node=node)}


def _recording_agent(monkeypatch, pvr):
    agent = make_agent()
    agent.running_na = {"node-1"}
    agent.pvrs.objects[(C.VELERO_NS, "pvr-1")] = pvr
    writes = []
    monkeypatch.setattr(agent, "_transition", lambda kind, name, expect, status=None, labels=None, spec=None:
                        writes.append((expect, status, spec)) or {"metadata": {"name": name}})
    return agent, writes


def test_cancel_of_a_prepared_pvr_is_one_update_to_canceled(monkeypatch):
    """Velero's Prepared branch: OnDataPathCancelled, no Canceling phase; startTimestamp filled in."""
    agent, writes = _recording_agent(monkeypatch, _pvr(C.PREPARED, cancel=True))
    agent.reconcile_pvr("pvr-1")
    assert len(writes) == 1
    expect, status, _spec = writes[0]
    assert expect == (C.PREPARED,) and status["phase"] == C.CANCELED
    assert status["startTimestamp"] and status["completionTimestamp"] and "message" not in status


def test_cancel_of_an_accepted_pvr_waits_for_prepared_then_is_forced_after_five_minutes(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(na.time, "time", clock)
    agent, writes = _recording_agent(monkeypatch, _pvr(C.ACCEPTED, cancel=True, acceptedTimestamp=na.now_iso()))
    agent.reconcile_pvr("pvr-1")
    # the exposer goes on: Accepted → Prepared, not Canceling
    assert [status["phase"] for _expect, status, _spec in writes] == [C.PREPARED]
    writes.clear()  # the stub keeps it Accepted: an exposer that never reaches Prepared
    clock.now += C.CANCEL_DELAY_OTHERS_SECONDS + 1
    agent.reconcile_pvr("pvr-1")
    assert [status["phase"] for _expect, status, _spec in writes] == [C.CANCELED]


def test_in_progress_pvr_without_a_data_path_is_canceled_as_a_failed_resume(monkeypatch):
    """Velero AttemptPVRResume: resume fails → spec.cancel + message; then InProgress + cancel without a data
    path → Canceled at once."""
    agent, writes = _recording_agent(monkeypatch, _pvr(C.IN_PROGRESS, startTimestamp="t"))
    agent.reconcile_pvr("pvr-1")
    (_expect, status, spec), = writes
    assert spec == {"cancel": True} and status["message"].startswith("Resume InProgress PVR failed with error ")
    writes.clear()
    agent.pvrs.objects[(C.VELERO_NS, "pvr-1")] = _pvr(C.IN_PROGRESS, cancel=True, startTimestamp="t")
    agent.reconcile_pvr("pvr-1")
    (expect, status, _spec), = writes
    assert C.IN_PROGRESS in expect and status["phase"] == C.CANCELED and "startTimestamp" not in status


def test_deleting_a_running_pvr_sets_cancel_with_velero_s_message(monkeypatch):
    pvr = _pvr(C.IN_PROGRESS, startTimestamp="t")
    pvr["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    agent, writes = _recording_agent(monkeypatch, pvr)
    agent.reconcile_pvr("pvr-1")
    (_expect, status, spec), = writes
    assert spec == {"cancel": True} and status == {"message": "Cancel PVR because it is being deleted"}


class StubKube:
    """The few API calls the node-agent makes outside _transition; creates and deletes are recorded."""

    def __init__(self, objects=()):
        self.objects = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
        self.deleted = []
        self.created = []

    def create(self, kind, body):
        self.created.append((kind, body["metadata"]["name"]))
        return body

    def get_or_none(self, kind, namespace, name):
        return self.objects.get((kind, namespace, name))

    def list(self, kind, namespace=None, **_kw):
        return [o for (k, _ns, _n), o in self.objects.items() if k == kind]

    def delete(self, kind, namespace, name, **_kw):
        self.deleted.append((kind, name))


def _agent_recording_labels(monkeypatch, kube=None, running=("node-1",)):
    agent = make_agent()
    agent.kube = kube or StubKube()
    agent.running_na = set(running)
    writes = []
    monkeypatch.setattr(agent, "_transition", lambda kind, name, expect, status=None, labels=None, spec=None:
                        writes.append({"expect": expect, "status": status, "labels": labels, "spec": spec})
                        or {"metadata": {"name": name}})
    return agent, writes


def _old_accepted_timestamp():
    return na.time.strftime("%Y-%m-%dT%H:%M:%SZ", na.time.gmtime(na.time.time() - 2 * C.DEFAULT_PREPARE_TIMEOUT))


def test_accepted_pvr_of_a_vanished_node_agent_times_out_on_another_node_without_completion_timestamp(monkeypatch):
    """v1.18.1 Accepted branch: no node check; onPrepareTimeout sets phase Failed and the message only."""
    agent, writes = _agent_recording_labels(monkeypatch, running=("node-2",))
    agent.pvrs.objects[(C.VELERO_NS, "pvr-1")] = _pvr(C.ACCEPTED, node="node-1",
                                                      acceptedTimestamp=_old_accepted_timestamp())
    agent.reconcile_pvr("pvr-1")
    (write,) = writes
    assert write["expect"] == (C.ACCEPTED,)
    assert write["status"] == {"phase": C.FAILED, "message": "timeout on preparing PVR"}
    assert write["labels"] == {C.LABEL_EXPOSE_ON_GOING: None}


def _dd(phase, cancel=False, **status):
    return {"metadata": {"name": "dd-1", "namespace": C.VELERO_NS, "uid": "ddu", "finalizers": [C.DD_FINALIZER]},
            "spec": {"cancel": cancel, "targetVolume": {"namespace": "app", "pvc": "data"},
                     "operationTimeout": "10m0s"},
            "status": dict(status, phase=phase)}


def test_accepted_dd_of_a_vanished_node_agent_times_out_on_another_node_without_completion_timestamp(monkeypatch):
    agent, writes = _agent_recording_labels(monkeypatch, running=("node-2",))
    agent.dds.objects[(C.VELERO_NS, "dd-1")] = _dd(C.ACCEPTED, acceptedByNode="node-1",
                                                   acceptedTimestamp=_old_accepted_timestamp())
    agent.reconcile_dd("dd-1")
    (write,) = writes
    assert write["status"] == {"phase": C.FAILED, "message": "timeout on preparing data download"}
    assert ("Pod", "dd-1") in agent.kube.deleted  # the exposer is cleaned up after the update


def _restore_pod(phase):
    return {"kind": "Pod", "metadata": {"name": "dd-1", "namespace": C.VELERO_NS},
            "spec": {"nodeName": "node-1"}, "status": {"phase": phase}}


def test_failed_restore_pod_cancels_the_dd_which_ends_canceled(monkeypatch):
    """v1.18.1 findSnapshotRestoreForPod sets spec.cancel; the Accepted branch's PeekExposed error makes it
    Canceled (tryCancelDataDownload), not Failed."""
    agent, writes = _agent_recording_labels(monkeypatch)
    agent.pods.objects[(C.VELERO_NS, "dd-1")] = _restore_pod("Failed")
    agent.dds.objects[(C.VELERO_NS, "dd-1")] = _dd(C.ACCEPTED, acceptedByNode="node-1", acceptedTimestamp=na.now_iso())
    agent.reconcile_dd("dd-1")
    cancel, canceled = writes
    assert cancel["spec"] == {"cancel": True}
    assert cancel["status"]["message"] == ("Cancel datadownload because the exposing pod velero/dd-1 is in abnormal "
                                           "status for reason Pod is in abnormal state [Failed], message []")
    assert canceled["status"]["phase"] == C.CANCELED and canceled["status"]["message"] == (
        "found a datadownload velero/dd-1 with expose error: Pod is in abnormal state [Failed], message []. "
        "mark it as cancel")
    assert canceled["labels"] == {C.LABEL_EXPOSE_ON_GOING: None}
    assert ("Pod", "dd-1") in agent.kube.deleted


def test_succeeded_restore_pod_is_not_abnormal_and_the_dd_keeps_waiting(monkeypatch):
    agent, writes = _agent_recording_labels(monkeypatch)
    agent.pods.objects[(C.VELERO_NS, "dd-1")] = _restore_pod("Succeeded")
    agent.dds.objects[(C.VELERO_NS, "dd-1")] = _dd(C.ACCEPTED, acceptedByNode="node-1", acceptedTimestamp=na.now_iso())
    assert agent.reconcile_dd("dd-1") == 1.0
    assert writes == [] and agent.kube.deleted == []


@pytest.mark.parametrize("class_name", ["", "gone"])
def test_dd_fails_when_the_target_pvc_names_a_storage_class_that_cannot_be_read(monkeypatch, class_name):
    """v1.18.1 WaitPVCConsumed GETs the class whenever the PVC names one (even ""); the error fails the DD."""
    target = {"kind": "PersistentVolumeClaim", "metadata": {"namespace": "app", "name": "data"},
              "spec": {"storageClassName": class_name}}
    node = {"kind": "Node", "metadata": {"name": "node-1", "labels": {"kubernetes.io/os": "linux"}}}
    agent, writes = _agent_recording_labels(monkeypatch, kube=StubKube([target, node]))
    agent.dds.objects[(C.VELERO_NS, "dd-1")] = _dd(C.ACCEPTED, acceptedByNode="node-1", acceptedTimestamp=na.now_iso())
    agent.reconcile_dd("dd-1")
    assert agent.kube.created == []  # nothing exposed
    (write,) = writes
    assert write["status"]["phase"] == C.FAILED
    assert write["status"]["message"] == C.dd_storage_class_error(target, class_name)


def test_expose_on_going_label_stays_at_prepared_and_goes_at_in_progress(monkeypatch):
    agent, writes = _agent_recording_labels(monkeypatch)
    agent.pvrs.objects[(C.VELERO_NS, "pvr-1")] = _pvr(C.ACCEPTED, acceptedTimestamp=na.now_iso())
    agent.reconcile_pvr("pvr-1")
    agent.pods.objects[(C.VELERO_NS, "dd-1")] = _restore_pod("Running")
    agent.dds.objects[(C.VELERO_NS, "dd-1")] = _dd(C.ACCEPTED, acceptedByNode="node-1", acceptedTimestamp=na.now_iso())
    agent.reconcile_dd("dd-1")
    assert [(w["status"]["phase"], w["labels"]) for w in writes] == [(C.PREPARED, None), (C.PREPARED, None)]
    writes.clear()
    monkeypatch.setattr(agent.queue, "add", lambda key: None)
    done = threading.Event()
    agent._start_path("PodVolumeRestore", "pvr-1", "node-1", lambda dp, obj: done.set())
    assert done.wait(5)
    assert writes[0]["status"]["phase"] == C.IN_PROGRESS and writes[0]["labels"] == {C.LABEL_EXPOSE_ON_GOING: None}


def test_pvr_with_an_empty_uploader_type_is_taken_and_fails_in_the_data_path(monkeypatch):
    """v1.18.1: "" is not a legacy (restic) PVR; the data path's restic provider has no repository."""
    pvr = _pvr(C.IN_PROGRESS, startTimestamp="t")
    pvr["spec"].update(uploaderType="", backupStorageLocation="default", snapshotID="s1")
    bsl = {"kind": "BackupStorageLocation", "metadata": {"namespace": C.VELERO_NS, "name": "default"}}
    agent, _writes = _agent_recording_labels(monkeypatch, kube=StubKube([bsl]))
    queued = []
    monkeypatch.setattr(agent.queue, "add", queued.append)
    agent._on_pvr("ADDED", pvr, None)
    assert queued == ["pvr:pvr-1"]
    with pytest.raises(na._Failure, match="error getting snapshot size"):
        agent._run_pvr(na.DataPath("PodVolumeRestore", "pvr-1", "node-1"), pvr)
