import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    ApiError,
    DataRestoreError,
    ForbiddenError,
    WaitTimeout,
)
from ansible_collections.velero.data_restore.plugins.module_utils.waiting import WaitState, wait_for
from fake_kube import FakeKube

NS = "velero"


class Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def pvr(name, phase=None, done=0):
    return {"metadata": {"name": name, "namespace": NS, "labels": {"s": "1"}},
            "status": {"phase": phase, "progress": {"bytesDone": done, "totalBytes": 100}} if phase else {}}


def all_completed(objs):
    pending = [o["metadata"]["name"] for o in objs if (o.get("status") or {}).get("phase") != "Completed"]
    for o in objs:
        if (o.get("status") or {}).get("phase") == "Failed":
            raise DataRestoreError("%s failed" % o["metadata"]["name"])
    done = sum(((o.get("status") or {}).get("progress") or {}).get("bytesDone", 0) for o in objs)
    return WaitState(bool(objs) and not pending, pending, progress=done)


def advancing_controller(steps):
    """Each call moves one PVR one step forward: phases then progress."""
    def run(kube):
        for obj in kube.all(k.POD_VOLUME_RESTORE, NS):
            phase = (obj.get("status") or {}).get("phase")
            nxt = steps.get(phase)
            if nxt:
                def change(o, nxt=nxt):
                    o["status"] = {"phase": nxt[0], "progress": {"bytesDone": nxt[1], "totalBytes": 100}}
                kube.mutate(k.POD_VOLUME_RESTORE, obj["metadata"]["name"], NS, change)
                return True
        return False
    return run


STEPS = {None: ("Accepted", 0), "Accepted": ("InProgress", 50), "InProgress": ("Completed", 100)}


def test_wait_completes_through_watch_events_with_few_requests():
    kube = FakeKube()
    for i in range(50):
        kube.add(k.POD_VOLUME_RESTORE, pvr("v%d" % i))
    kube.controllers.append(advancing_controller(STEPS))
    seen = []
    objs = wait_for(kube, k.POD_VOLUME_RESTORE, all_completed, namespace=NS, label_selector="s=1",
                    timeout=60, on_progress=lambda st: seen.append(st.progress))
    assert len(objs) == 50
    assert seen[-1] == 5000 and seen == sorted(seen)
    # One LIST and one WATCH for 50 volumes: no per-volume polling.
    assert kube.count("list") == 1 and kube.count("watch") == 1


def test_wait_times_out_with_pending_names():
    kube = FakeKube()
    kube.add(k.POD_VOLUME_RESTORE, pvr("stuck"))
    clock = Clock()

    def advance_clock(_kube):
        clock.now += 100
        return False

    kube.controllers.append(advance_clock)
    with pytest.raises(WaitTimeout) as err:
        wait_for(kube, k.POD_VOLUME_RESTORE, all_completed, namespace=NS, timeout=30, clock=clock,
                 what="PodVolumeRestores of session s")
    assert err.value.pending == ["stuck"]
    assert "still pending: stuck" in err.value.msg and "PodVolumeRestores of session s" in err.value.msg
    # What the wait saw is there to continue from, but never in the details (they become the module's failure
    # result, and a pod wait sees whole pods of the namespace, environment values included).
    assert [o["metadata"]["name"] for o in err.value.objects] == ["stuck"] and err.value.version
    assert set(err.value.details) == {"pending"}


def test_predicate_errors_end_the_wait():
    kube = FakeKube()
    kube.add(k.POD_VOLUME_RESTORE, pvr("bad", "Failed"))
    with pytest.raises(DataRestoreError) as err:
        wait_for(kube, k.POD_VOLUME_RESTORE, all_completed, namespace=NS, timeout=5)
    assert "bad failed" in err.value.msg


def test_expired_watch_relists():
    kube = FakeKube()
    kube.add(k.POD_VOLUME_RESTORE, pvr("v", "Completed", 100))
    kube.add(k.POD_VOLUME_RESTORE, pvr("w"))
    kube.expire_before = 10 ** 9  # every watch is "too old" until the first re-list

    def complete_and_unexpire(fk):
        fk.expire_before = 0
        fk.mutate(k.POD_VOLUME_RESTORE, "w", NS, lambda o: o.update(status={"phase": "Completed"}))
        return False

    calls = {"n": 0}
    original_list = kube.list

    def list_and_fix(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            complete_and_unexpire(kube)
        return original_list(*a, **kw)

    kube.list = list_and_fix
    objs = wait_for(kube, k.POD_VOLUME_RESTORE, all_completed, namespace=NS, timeout=5)
    assert calls["n"] == 2 and len(objs) == 2


def test_dropped_connection_is_retried_then_completes():
    kube = FakeKube()
    kube.add(k.POD_VOLUME_RESTORE, pvr("v"))
    kube.controllers.append(advancing_controller(STEPS))
    kube.fail_next["watch"] = ApiError("Cannot reach the Kubernetes API", status=None)
    slept = []
    objs = wait_for(kube, k.POD_VOLUME_RESTORE, all_completed, namespace=NS, timeout=60,
                    sleep=slept.append)
    assert objs[0]["status"]["phase"] == "Completed" and slept == [1.0]


@pytest.mark.parametrize("status", [None, 429, 503])
def test_a_watch_ended_by_throttling_or_a_drop_is_re_established(status):
    kube = FakeKube()
    kube.add(k.POD_VOLUME_RESTORE, pvr("v"))
    kube.controllers.append(advancing_controller(STEPS))
    kube.fail_next["watch"] = ApiError("Too many requests", status=status)
    objs = wait_for(kube, k.POD_VOLUME_RESTORE, all_completed, namespace=NS, timeout=60, sleep=lambda s: None)
    assert objs[0]["status"]["phase"] == "Completed"


def test_a_drop_at_the_deadline_is_a_timeout_not_an_outage():
    kube = FakeKube()
    kube.add(k.POD_VOLUME_RESTORE, pvr("stuck"))
    clock = Clock()
    kube.fail_next["watch"] = ApiError("Cannot reach the Kubernetes API", status=None)
    clock.now = 0.0
    with pytest.raises(WaitTimeout) as err:
        wait_for(kube, k.POD_VOLUME_RESTORE, all_completed, namespace=NS, timeout=0.5, clock=clock,
                 sleep=lambda s: None)
    assert err.value.pending == ["stuck"] and "the last watch ended with: Cannot reach" in err.value.msg


def test_forbidden_is_not_retried():
    kube = FakeKube()
    kube.add(k.POD_VOLUME_RESTORE, pvr("v"))
    kube.fail_next["watch"] = ForbiddenError("Forbidden: cannot watch", status=403)
    with pytest.raises(ForbiddenError):
        wait_for(kube, k.POD_VOLUME_RESTORE, all_completed, namespace=NS, timeout=60, sleep=lambda s: None)
